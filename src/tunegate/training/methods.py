"""full | lora | qlora | dora: the one place where the training methods differ.

Everything else in the stage (data, loop, evaluation, checkpoints, run record) is shared.
:func:`apply_method` takes a *loader* rather than a model because qlora changes how the base is
loaded (bitsandbytes quantization), not only what is wrapped around it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tunegate.errors import DependencyError
from tunegate.training.config import TrainConfig

#: ``loader(**from_pretrained_kwargs) -> PreTrainedModel``
Loader = Callable[..., Any]


def quantization_config(cfg: TrainConfig, compute_dtype: Any) -> Any:
    """bitsandbytes config for the frozen qlora base: NF4 + double quantization, or 8-bit."""
    try:
        import bitsandbytes  # noqa: F401
        from transformers import BitsAndBytesConfig
    except ImportError as exc:  # pragma: no cover - bitsandbytes is a dependency
        raise DependencyError(f"qlora needs bitsandbytes ({exc})") from None
    q = cfg.quant
    if q.bits == 8:
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=q.quant_type,
        bnb_4bit_use_double_quant=q.double_quant,
        bnb_4bit_compute_dtype=compute_dtype,
    )


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


def apply_method(loader: Loader, cfg: TrainConfig, *, method: str, kind: str, device: str, dtype: Any) -> Any:
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
            quantization_config=quantization_config(cfg, dtype), device_map={"": device}, dtype=dtype
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
