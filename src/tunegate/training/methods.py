"""full | lora | qlora | dora: the one place where the training methods differ.

Everything else in the stage (data, loop, evaluation, checkpoints, run record) is shared.
:func:`apply_method` takes a *loader* rather than a model because qlora changes how the base is
loaded (bitsandbytes quantization), not only what is wrapped around it.
"""

from __future__ import annotations

import contextlib
import re
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from tunegate.errors import ConfigError, DependencyError
from tunegate.training.config import TrainConfig

#: ``loader(**from_pretrained_kwargs) -> PreTrainedModel``
Loader = Callable[..., Any]
#: per-call Python warnings about bitsandbytes ops (message regexes); see :func:`quiet_bitsandbytes`
BNB_NOISE: tuple[str, ...] = (r"bitsandbytes::",)


#: bitsandbytes 0.50 runs no-grad 4-bit forwards on CPU (validation, evaluation; on CPUs with
#: AVX512-BF16) through a packed kernel that needs ``out_features`` to be a multiple of 32
#: ("N must be divisible by block_n") and ``in_features`` a multiple of the quantization block,
#: 64 (else a reshape of the block scales fails). Found by trying every shape class on bnb 0.50;
#: ``tests/unit/training/test_qlora_cpu.py`` keeps the rule honest. Training forwards and CUDA
#: have no such limit.
CPU_4BIT_OUT_MULTIPLE = 32
CPU_4BIT_IN_MULTIPLE = 64


@dataclass(frozen=True)
class QuantPlan:
    """Which linear layers the qlora base keeps unquantized, and why."""

    bits: int
    #: module names handed to transformers (its own defaults, e.g. the LM head, plus ``not_quantized``)
    skip_modules: tuple[str, ...] = ()
    #: layers left in the compute dtype because the CPU 4-bit kernel cannot run them
    not_quantized: tuple[dict[str, Any], ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "bits": self.bits,
            "skip_modules": list(self.skip_modules),
            "not_quantized": [dict(x) for x in self.not_quantized],
        }


def plan_quantization(cfg: TrainConfig, skeleton: Any, *, device: str) -> QuantPlan:
    """The qlora base's quantization plan for ``skeleton`` (the model on the meta device).

    On CUDA, and for 8-bit, every linear layer transformers quantizes is quantized. For 4-bit
    on CPU, layers whose shape the CPU kernel cannot run stay unquantized (they still get
    adapters); if no layer is left to quantize, qlora is refused (``ConfigError``) naming one."""
    import torch
    from transformers.quantizers.base import get_keys_to_not_convert

    bits = cfg.quant.bits
    if bits != 4 or device.startswith("cuda"):
        return QuantPlan(bits)
    defaults = set(get_keys_to_not_convert(skeleton))
    linear = {
        n: m for n, m in skeleton.named_modules() if isinstance(m, torch.nn.Linear) and n not in defaults
    }
    bad: list[dict[str, Any]] = []
    for name, m in linear.items():
        if m.out_features % CPU_4BIT_OUT_MULTIPLE:
            why = f"out_features {m.out_features} is not a multiple of {CPU_4BIT_OUT_MULTIPLE}"
        elif m.in_features % CPU_4BIT_IN_MULTIPLE:
            why = f"in_features {m.in_features} is not a multiple of {CPU_4BIT_IN_MULTIPLE}"
        else:
            continue
        bad.append(
            {"module": name, "in_features": m.in_features, "out_features": m.out_features, "reason": why}
        )
    if linear and len(bad) == len(linear):
        first = bad[0]
        raise ConfigError(
            f"4-bit qlora on CPU: no linear layer of this model can be quantized by bitsandbytes' CPU kernel "
            f"(e.g. {first['module']}: {first['reason']})",
            hint="use method lora on CPU, quant.bits 8, or a CUDA device",
        )
    return QuantPlan(bits, tuple(sorted(defaults | {b["module"] for b in bad})), tuple(bad))


def quantization_config(cfg: TrainConfig, compute_dtype: Any, plan: QuantPlan | None = None) -> Any:
    """bitsandbytes config for the frozen qlora base: NF4 + double quantization, or 8-bit."""
    try:
        import bitsandbytes  # noqa: F401
        from transformers import BitsAndBytesConfig
    except ImportError as exc:  # pragma: no cover - bitsandbytes is a dependency
        raise DependencyError(f"qlora needs bitsandbytes ({exc})") from None
    # transformers matches these as regular expressions: escape the exact module names
    skip = [re.escape(n) for n in plan.skip_modules] if plan is not None and plan.skip_modules else None
    q = cfg.quant
    if q.bits == 8:
        return BitsAndBytesConfig(load_in_8bit=True, llm_int8_skip_modules=skip)
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=q.quant_type,
        bnb_4bit_use_double_quant=q.double_quant,
        bnb_4bit_compute_dtype=compute_dtype,
        llm_int8_skip_modules=skip,
    )


@contextlib.contextmanager
def quiet_bitsandbytes() -> Iterator[None]:
    """bitsandbytes logs "MatMul8bitLt: inputs will be cast ... to float16" on every 8-bit
    forward on CPU (thousands of lines per run) and torch warns about its 4-bit ops' autograd.
    Silenced for the block only: its loggers' level and a warnings filter, both restored after."""
    import logging

    loggers = [logging.getLogger(n) for n in ("bitsandbytes", "transformers.integrations.bitsandbytes")]
    levels = [lg.level for lg in loggers]
    with warnings.catch_warnings():
        for pattern in BNB_NOISE:
            warnings.filterwarnings("ignore", message=pattern)
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for lg, level in zip(loggers, levels, strict=True):
                lg.setLevel(level)


def lora_config(cfg: TrainConfig, *, method: str, kind: str) -> Any:
    """peft ``LoraConfig`` from the resolved run config (alpha and dropout already filled)."""
    from peft import LoraConfig, TaskType

    lo = cfg.lora
    return LoraConfig(
        r=lo.rank,
        lora_alpha=lo.alpha if lo.alpha is not None else 2 * lo.rank,  # type: ignore[arg-type]  # peft accepts floats
        lora_dropout=lo.dropout if lo.dropout is not None else 0.0,
        use_rslora=lo.rslora,
        use_dora=method == "dora",
        target_modules=lo.target_modules,
        bias="none",
        # SEQ_CLS makes peft train and save the new classifier head (modules_to_save) with the adapter.
        task_type=TaskType.SEQ_CLS if kind == "seq_cls" else TaskType.CAUSAL_LM,
    )


def apply_method(
    loader: Loader,
    cfg: TrainConfig,
    *,
    method: str,
    kind: str,
    device: str,
    dtype: Any,
    quant: QuantPlan | None = None,
) -> Any:
    """Load the base for ``method`` and make exactly the right parameters trainable.

    * full: weights in float32 (the optimizer's master copy; bf16 compute comes from autocast);
    * lora / dora: base in the compute dtype, frozen; fp32 adapters on all linear layers;
    * qlora: base quantized by bitsandbytes (4-bit NF4 + double quant, or 8-bit), then adapters.
    Gradient checkpointing is enabled here because peft and quantized models need it set up
    in a particular order (before wrapping, with non-reentrant checkpoints).
    """
    import torch

    gc_kwargs = {"use_reentrant": False}
    if method == "full":
        model = loader(dtype=torch.float32).to(device)
        if cfg.gradient_checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=gc_kwargs)
        model.config.use_cache = False
        model.train()
        return model

    from peft import get_peft_model, prepare_model_for_kbit_training

    if method == "qlora":
        model = loader(
            quantization_config=quantization_config(cfg, dtype, quant), device_map={"": device}, dtype=dtype
        )
        model = prepare_model_for_kbit_training(
            model,
            use_gradient_checkpointing=cfg.gradient_checkpointing,
            gradient_checkpointing_kwargs=gc_kwargs,
        )
    elif method in ("lora", "dora"):
        model = loader(dtype=dtype).to(device)
        if cfg.gradient_checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=gc_kwargs)
    else:  # resolve_config already rejected it; keep the branch total
        raise ValueError(method)
    model.config.use_cache = False
    peft_model = get_peft_model(model, lora_config(cfg, method=method, kind=kind))
    peft_model.train()
    return peft_model


def trainable_parameters(model: Any) -> tuple[int, int]:
    """(trainable, total) parameter counts (a 4-bit weight counts its logical elements once)."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = 0
    for p in model.parameters():
        n = p.numel()
        quant_state = getattr(p, "quant_state", None)
        if quant_state is not None and getattr(quant_state, "shape", None) is not None:
            n = int(torch_numel(quant_state.shape))
        total += n
    return trainable, total


def torch_numel(shape: Any) -> int:
    out = 1
    for s in shape:
        out *= int(s)
    return out


def quiet_forward(model: Any) -> Any:
    """Make every forward (and so every ``generate`` step) of a quantized ``model`` run inside
    :func:`quiet_bitsandbytes`; returns the model."""
    import functools

    inner = model.forward

    @functools.wraps(inner)
    def forward(*args: Any, **kwargs: Any) -> Any:
        with quiet_bitsandbytes():
            return inner(*args, **kwargs)

    model.forward = forward
    return model
