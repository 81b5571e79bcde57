"""VRAM plan: predict peak GPU memory per method from a model's config alone (no weights).

The model is built on PyTorch's ``meta`` device, so parameter counts and the exact set of linear
layers that "all-linear" adapters attach to are read from the real architecture, not guessed
from formulas. Memory is then the sum of named components (bytes):

* weights: full fine-tuning keeps fp32 master weights (mixed precision, bf16 compute);
  lora/dora keep the frozen base in bf16; qlora stores linear layers in 4-bit NF4 (0.5 B/param
  plus quantization constants: 1 fp32 absmax per 64 weights, or with double quantization
  1 byte per 64 weights plus 1 fp32 per 256 blocks) or 8-bit (1 B/param plus 1 fp32 scale per
  output row); embeddings, norms and the LM head stay bf16.
* adapter weights + gradients: fp32 (peft's default), r * (in + out) per adapted linear (+ the
  magnitude vector for dora).
* gradients: fp32 for every trained parameter.
* optimizer: AdamW 32-bit 8 B per trained parameter; bitsandbytes 8-bit or paged 8-bit 2 B.
* activations (bf16) per token per decoder layer: the residual input and norm outputs,
  q/k/v and the attention output (memory-efficient attention: no seq x seq matrix), the MLP's
  intermediate tensors (4 x intermediate for gated SwiGLU MLPs, 2 x otherwise), and the fp32
  RMSNorm upcasts. With gradient checkpointing only each layer's input is kept, plus one
  layer's full activations while it is recomputed.
* logits: tokens x vocab x 12 B (bf16 logits, the fp32 upcast for the loss and its gradient).
* transient: qlora dequantizes one weight at a time; dora materializes one weight-sized norm.
* overhead: 10 % allocator fragmentation on the dynamic part, plus a fixed CUDA context
  (``cuda_context_gib``) which ``torch.cuda.max_memory_reserved`` does not see but nvidia-smi
  and published figures do. ``reserved_gib`` (peak without the context) is the number to
  compare with ``max_memory_reserved``.

``bench/plan_published.py`` documents which assumptions reproduce which published figure.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunegate.errors import ConfigError, InputError

GIB = 1024**3
GB = 1000**3
PLAN_METHODS: tuple[str, ...] = ("full", "lora", "qlora", "dora")
OPTIMIZER_BYTES = {"adamw": 8.0, "adamw_8bit": 2.0, "paged_adamw_8bit": 2.0}
#: Bytes per token per vocabulary entry for the logits: bf16 logits, fp32 upcast, fp32 gradient.
LOGIT_BYTES = 12.0
FRAGMENTATION = 0.10
#: Preference when several methods fit: LoRA is within noise of full fine-tuning on most narrow
#: tasks at a fraction of the memory; QLoRA when LoRA does not fit; full only when asked for.
PREFERENCE = ("lora", "qlora", "dora", "full")

_LLAMA2_COMMON: dict[str, Any] = {
    "model_type": "llama",
    "vocab_size": 32000,
    "max_position_embeddings": 4096,
    "rms_norm_eps": 1e-5,
    "tie_word_embeddings": False,
    "hidden_act": "silu",
}
#: Reference configs (the published Llama 2 config.json values) so the plan works offline by name.
REFERENCE_CONFIGS: dict[str, dict[str, Any]] = {
    "llama-2-7b": {
        **_LLAMA2_COMMON,
        "hidden_size": 4096,
        "intermediate_size": 11008,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 32,
    },
    "llama-2-13b": {
        **_LLAMA2_COMMON,
        "hidden_size": 5120,
        "intermediate_size": 13824,
        "num_hidden_layers": 40,
        "num_attention_heads": 40,
        "num_key_value_heads": 40,
    },
    "llama-2-70b": {
        **_LLAMA2_COMMON,
        "hidden_size": 8192,
        "intermediate_size": 28672,
        "num_hidden_layers": 80,
        "num_attention_heads": 64,
        "num_key_value_heads": 8,
    },
}


@dataclass(frozen=True)
class Architecture:
    """What the plan needs from a model, read from its meta-device instance."""

    name: str
    params: int
    linear: tuple[tuple[int, int], ...]  # (in, out) of every adaptable linear layer
    other_params: int  # embeddings, norms, LM head: never quantized or adapted
    layers: int
    hidden: int
    intermediate: int
    q_dim: int
    kv_dim: int
    vocab: int
    gated_mlp: bool
    causal: bool


@dataclass
class MethodPlan:
    peak_gib: float
    reserved_gib: float
    components: dict[str, float]  # GiB
    fits: bool
    max_batch: int | None

    def to_json(self) -> dict[str, Any]:
        return {
            "peak_gib": round(self.peak_gib, 3),
            "peak_gb": round(self.peak_gib * GIB / GB, 3),
            "reserved_gib": round(self.reserved_gib, 3),
            "components": {k: round(v, 4) for k, v in sorted(self.components.items())},
            "fits": self.fits,
            "max_batch": self.max_batch,
        }


@dataclass
class PlanReport:
    model: str
    params: int
    methods: dict[str, MethodPlan]
    recommended: dict[str, Any] | None
    assumptions: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "params": self.params,
            "methods": {k: v.to_json() for k, v in self.methods.items()},
            "recommended": self.recommended,
            "assumptions": self.assumptions,
        }


def load_model_config(model: Any) -> tuple[str, Any]:
    """A ``PretrainedConfig``, a reference name, a folder/config.json, or a cached hub id."""
    from transformers import AutoConfig, PretrainedConfig

    if isinstance(model, PretrainedConfig):
        return getattr(model, "name_or_path", "") or model.model_type, model
    name = str(model)
    if name.lower() in REFERENCE_CONFIGS:
        data = dict(REFERENCE_CONFIGS[name.lower()])
        return name.lower(), AutoConfig.for_model(data.pop("model_type"), **data)
    path = Path(name)
    if path.is_file() and path.suffix == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise InputError(f"not valid JSON ({exc.msg})", path=path, line=exc.lineno) from None
        if "model_type" not in data:
            raise InputError("a model config needs a model_type", path=path, field="model_type")
        return name, AutoConfig.for_model(data.pop("model_type"), **data)
    try:
        return name, AutoConfig.from_pretrained(name)
    except Exception:
        raise ConfigError(
            f"cannot read a model config from {name!r}",
            hint=f"pass a model folder, a config.json, or one of {sorted(REFERENCE_CONFIGS)}",
        ) from None


def describe(model: Any) -> Architecture:
    """Build the model on the meta device (no memory, no weights) and read its structure."""
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    from tunegate.training.model_io import ENCODER_TYPES

    name, cfg = load_model_config(model)
    causal = cfg.model_type not in ENCODER_TYPES
    with torch.device("meta"):
        auto = AutoModelForCausalLM if causal else AutoModelForSequenceClassification
        net = auto.from_config(cfg)
    out_emb = net.get_output_embeddings() if causal else None
    linear: list[tuple[int, int]] = []
    linear_params = 0
    for _, mod in net.named_modules():
        if isinstance(mod, torch.nn.Linear) and mod is not out_emb:
            linear.append((mod.in_features, mod.out_features))
            linear_params += mod.weight.numel() + (mod.bias.numel() if mod.bias is not None else 0)
    params = sum(p.numel() for p in net.parameters())
    hidden = int(cfg.hidden_size)
    heads = int(cfg.num_attention_heads)
    head_dim = int(getattr(cfg, "head_dim", None) or hidden // heads)
    kv_heads = int(getattr(cfg, "num_key_value_heads", None) or heads)
    names = " ".join(n for n, _ in net.named_modules())
    return Architecture(
        name=name,
        params=params,
        linear=tuple(linear),
        other_params=params - linear_params,
        layers=int(cfg.num_hidden_layers),
        hidden=hidden,
        intermediate=int(getattr(cfg, "intermediate_size", 4 * hidden)),
        q_dim=heads * head_dim,
        kv_dim=kv_heads * head_dim,
        vocab=int(cfg.vocab_size),
        gated_mlp="gate_proj" in names or "w3" in names,
        causal=causal,
    )


def _activation_bytes_per_token_layer(a: Architecture) -> float:
    h, i = a.hidden, a.intermediate
    bf16 = 2 * (4 * h + 2 * a.q_dim + 2 * a.kv_dim + (4 if a.gated_mlp else 2) * i)
    norm_fp32 = 2 * 2 * 4 * h  # two norms, fp32 input copy and normalized output
    return float(bf16 + norm_fp32)


def plan_method(
    a: Architecture,
    method: str,
    *,
    seq_len: int,
    batch: int,
    optimizer: str = "adamw",
    rank: int = 16,
    gradient_checkpointing: bool = True,
    quant_bits: int = 4,
    double_quant: bool = True,
    cuda_context_gib: float = 0.75,
) -> dict[str, float]:
    """Component -> bytes for one method (see the module docstring for each term)."""
    if method not in PLAN_METHODS:
        raise ConfigError(
            f"The 'method' parameter of plan must be one of {list(PLAN_METHODS)}. Got {method!r} instead."
        )
    if optimizer not in OPTIMIZER_BYTES:
        raise ConfigError(
            f"The 'optimizer' parameter of plan must be one of {sorted(OPTIMIZER_BYTES)}. "
            f"Got {optimizer!r} instead."
        )
    linear_weights = sum(i * o for i, o in a.linear)
    nonlinear = a.params - linear_weights
    c: dict[str, float] = {}
    if method == "full":
        trained = a.params
        c["weights"] = 4.0 * a.params
        c["gradients"] = 4.0 * trained
    else:
        trained = sum(rank * (i + o) for i, o in a.linear)
        if method == "dora":
            trained += sum(o for _, o in a.linear)
        if method == "qlora":
            if quant_bits == 4:
                consts = (1 / 64 + 4 / (64 * 256)) if double_quant else 4 / 64
                c["weights"] = linear_weights * (0.5 + consts) + 2.0 * nonlinear
            else:
                c["weights"] = linear_weights * 1.0 + sum(4.0 * o for _, o in a.linear) + 2.0 * nonlinear
        else:
            c["weights"] = 2.0 * a.params
        c["adapter_weights"] = 4.0 * trained
        c["gradients"] = 4.0 * trained
    c["optimizer"] = OPTIMIZER_BYTES[optimizer] * trained
    tokens = seq_len * batch
    per_layer = _activation_bytes_per_token_layer(a)
    if gradient_checkpointing:
        c["activations"] = tokens * (a.layers * 2.0 * a.hidden + per_layer)
    else:
        c["activations"] = tokens * a.layers * per_layer
    c["logits"] = tokens * a.vocab * LOGIT_BYTES if a.causal else tokens * 4.0 * a.hidden
    largest = max((i * o for i, o in a.linear), default=0)
    if method == "qlora":
        c["transient"] = 2.0 * largest
    elif method == "dora":
        c["transient"] = 2.0 * 2.0 * largest
    dynamic = c["activations"] + c["logits"] + c.get("transient", 0.0)
    c["overhead"] = FRAGMENTATION * dynamic + cuda_context_gib * GIB
    return c


def plan_memory(
    model: Any,
    *,
    methods: tuple[str, ...] | list[str] = PLAN_METHODS,
    seq_len: int = 2048,
    batch: int = 1,
    gpu_gb: float = 24.0,
    optimizer: str = "adamw",
    rank: int = 16,
    gradient_checkpointing: bool = True,
    quant_bits: int = 4,
    double_quant: bool = True,
    cuda_context_gib: float = 0.75,
) -> PlanReport:
    """Predict peak memory per method, say which fit in ``gpu_gb`` (GiB, as GPUs are sold:
    "24 GB" cards hold 24 GiB minus a little) and recommend a method and batch size."""
    if seq_len < 1 or batch < 1:
        raise ConfigError(f"seq_len and batch must be >= 1. Got seq_len={seq_len}, batch={batch} instead.")
    a = describe(model)
    kw = {
        "optimizer": optimizer,
        "rank": rank,
        "gradient_checkpointing": gradient_checkpointing,
        "quant_bits": quant_bits,
        "double_quant": double_quant,
        "cuda_context_gib": cuda_context_gib,
    }
    plans: dict[str, MethodPlan] = {}
    for m in methods:
        comps = plan_method(a, m, seq_len=seq_len, batch=batch, **kw)  # type: ignore[arg-type]
        peak = sum(comps.values()) / GIB
        max_batch = None
        for b in (64, 32, 16, 8, 4, 2, 1):
            if sum(plan_method(a, m, seq_len=seq_len, batch=b, **kw).values()) / GIB <= gpu_gb:  # type: ignore[arg-type]
                max_batch = b
                break
        plans[m] = MethodPlan(
            peak_gib=peak,
            reserved_gib=peak - cuda_context_gib,
            components={k: v / GIB for k, v in comps.items()},
            fits=peak <= gpu_gb,
            max_batch=max_batch,
        )
    recommended: dict[str, Any] | None = None
    for m in PREFERENCE:
        if m in plans and plans[m].fits:
            p = plans[m]
            why = {
                "lora": "LoRA fits; on narrow tasks it matches full fine-tuning at a fraction of the memory",
                "qlora": "LoRA does not fit"
                + (f" ({plans['lora'].peak_gib:.1f} GiB)" if "lora" in plans else "")
                + "; the 4-bit base leaves room for the adapters and activations",
                "dora": "DoRA fits where LoRA was not planned",
                "full": "full fine-tuning fits and no adapter method was planned",
            }[m]
            recommended = {
                "method": m,
                "batch": min(batch, p.max_batch or batch) if p.max_batch and p.max_batch < batch else batch,
                "max_batch": p.max_batch,
                "peak_gib": round(p.peak_gib, 3),
                "reason": f"{why}: {p.peak_gib:.1f} GiB of {gpu_gb:g} GiB at seq_len {seq_len}, batch {batch}"
                + (f"; batch up to {p.max_batch} fits" if p.max_batch else ""),
            }
            break
    if recommended is None:
        smallest = min(plans, key=lambda m: plans[m].peak_gib) if plans else None
        recommended = {
            "method": None,
            "batch": None,
            "max_batch": None,
            "peak_gib": None,
            "reason": f"nothing fits in {gpu_gb:g} GiB at seq_len {seq_len}, batch {batch}"
            + (f"; the smallest is {smallest} at {plans[smallest].peak_gib:.1f} GiB" if smallest else "")
            + ": shorten sequences, enable gradient checkpointing, or use a bigger GPU",
        }
    assumptions = {
        "seq_len": seq_len,
        "batch": batch,
        "tokens_per_step": seq_len * batch,
        "optimizer": optimizer,
        "optimizer_bytes_per_trained_param": OPTIMIZER_BYTES[optimizer],
        "lora_rank": rank,
        "target_modules": "all-linear",
        "trainable_params": {
            m: int(
                a.params
                if m == "full"
                else sum(rank * (i + o) for i, o in a.linear)
                + (sum(o for _, o in a.linear) if m == "dora" else 0)
            )
            for m in methods
        },
        "gradient_checkpointing": gradient_checkpointing,
        "qlora_bits": quant_bits,
        "qlora_double_quant": double_quant,
        "full_precision": "mixed: fp32 master weights and gradients, bf16 compute",
        "adapter_base_dtype": "bf16",
        "attention": "memory-efficient (no seq x seq matrix stored)",
        "logit_bytes_per_token_per_vocab": LOGIT_BYTES,
        "fragmentation": FRAGMENTATION,
        "cuda_context_gib": cuda_context_gib,
        "gpu_gib": gpu_gb,
        "params": a.params,
        "layers": a.layers,
        "hidden": a.hidden,
        "vocab": a.vocab,
    }
    return PlanReport(
        model=a.name, params=a.params, methods=plans, recommended=recommended, assumptions=assumptions
    )


# -- published figures ------------------------------------------------------------------------------
#: Published fine-tuning memory bands (decimal GB, as published) and the assumptions under which
#: the plan lands in them. 7B bands are the ones the issue quotes (full ~67-112 GB, LoRA ~15-26,
#: QLoRA ~5-14). 13B and 70B bands scale the 7B per-parameter band by nominal size, except where
#: fixed costs make that wrong (70B QLoRA), where published points are used: LLaMA-Factory's
#: hardware table (65B QLoRA-4 48 GB, LoRA 160 GB; 13B LoRA 32 GB, QLoRA-4 12 GB) and ms-swift's
#: llama2-70b QLoRA script (44 GB at seq 1024, batch 1, rank 8, gradient checkpointing).
#: ``tolerance`` widens each band edge (the published figures are rounded and mix GB with GiB).
PUBLISHED_TOLERANCE = 0.05
PUBLISHED_CHECKS: tuple[dict[str, Any], ...] = (
    # 7B: the bands; each end of each band is reproduced by one set of assumptions.
    {"model": "llama-2-7b", "method": "full", "band_gb": [67, 112], "optimizer": "adamw", "seq_len": 512,
     "batch": 1, "gradient_checkpointing": True,
     "why": "upper end: mixed precision, fp32 master weights + fp32 grads + AdamW 32-bit = 16 B/param"},
    {"model": "llama-2-7b", "method": "full", "band_gb": [67, 112], "optimizer": "adamw_8bit", "seq_len": 512,
     "batch": 1, "gradient_checkpointing": True,
     "why": "lower end: the same with 8-bit AdamW = 10 B/param"},
    {"model": "llama-2-7b", "method": "lora", "band_gb": [15, 26], "optimizer": "adamw", "seq_len": 512,
     "batch": 1, "gradient_checkpointing": True,
     "why": "lower end: bf16 base (13.5 GB) + r16 all-linear adapters, short sequences, checkpointing"},
    {"model": "llama-2-7b", "method": "lora", "band_gb": [15, 26], "optimizer": "adamw", "seq_len": 1024,
     "batch": 1, "gradient_checkpointing": False,
     "why": "upper end: 1k tokens per step without gradient checkpointing (~9 GB of activations)"},
    {"model": "llama-2-7b", "method": "qlora", "band_gb": [5, 14], "optimizer": "paged_adamw_8bit", "seq_len": 512,  # noqa: E501
     "batch": 1, "gradient_checkpointing": True,
     "why": "lower end: NF4 + double quant base (3.4 GB), paged 8-bit AdamW, short sequences, checkpointing"},
    {"model": "llama-2-7b", "method": "qlora", "band_gb": [5, 14], "optimizer": "adamw", "seq_len": 1024,
     "batch": 1, "gradient_checkpointing": False,
     "why": "upper end: 1k tokens per step without gradient checkpointing"},
    # 13B: 7B band scaled by 13/7; LLaMA-Factory: LoRA 32 GB, QLoRA-4 12 GB.
    {"model": "llama-2-13b", "method": "full", "band_gb": [124, 208], "optimizer": "adamw", "seq_len": 512,
     "batch": 1, "gradient_checkpointing": True, "why": "16 B/param, as the 7B upper end"},
    {"model": "llama-2-13b", "method": "full", "band_gb": [124, 208], "optimizer": "adamw_8bit", "seq_len": 512,  # noqa: E501
     "batch": 1, "gradient_checkpointing": True, "why": "10 B/param, as the 7B lower end"},
    {"model": "llama-2-13b", "method": "lora", "band_gb": [28, 48], "optimizer": "adamw", "seq_len": 2048,
     "batch": 1, "gradient_checkpointing": True, "why": "LLaMA-Factory's 32 GB point: 2k tokens, checkpointing"},  # noqa: E501
    {"model": "llama-2-13b", "method": "qlora", "band_gb": [9.3, 26], "optimizer": "adamw", "seq_len": 2048,
     "batch": 1, "gradient_checkpointing": True, "why": "LLaMA-Factory's 12 GB point: 2k tokens, checkpointing"},  # noqa: E501
    # 70B: full and LoRA scaled by 70/7; QLoRA from the published 44-48 GB points.
    {"model": "llama-2-70b", "method": "full", "band_gb": [670, 1120], "optimizer": "adamw", "seq_len": 512,
     "batch": 1, "gradient_checkpointing": True, "why": "16 B/param"},
    {"model": "llama-2-70b", "method": "full", "band_gb": [670, 1120], "optimizer": "adamw_8bit", "seq_len": 512,  # noqa: E501
     "batch": 1, "gradient_checkpointing": True, "why": "10 B/param"},
    {"model": "llama-2-70b", "method": "lora", "band_gb": [150, 260], "optimizer": "adamw", "seq_len": 2048,
     "batch": 4, "gradient_checkpointing": True, "why": "LLaMA-Factory's 160 GB point: 8k tokens per step"},
    {"model": "llama-2-70b", "method": "qlora", "band_gb": [40, 48], "optimizer": "paged_adamw_8bit",
     "seq_len": 1024, "batch": 1, "gradient_checkpointing": True, "rank": 8,
     "why": "ms-swift's measured 44 GB (seq 1024, batch 1, rank 8) and LLaMA-Factory's 48 GB"},
)  # fmt: skip


def check_published(tolerance: float = PUBLISHED_TOLERANCE) -> list[dict[str, Any]]:
    """Predict every published scenario; each row says whether it lands in its band."""
    rows = []
    arch: dict[str, Architecture] = {}
    for chk in PUBLISHED_CHECKS:
        a = arch.setdefault(chk["model"], describe(chk["model"]))
        comps = plan_method(
            a,
            chk["method"],
            seq_len=chk["seq_len"],
            batch=chk["batch"],
            optimizer=chk["optimizer"],
            rank=chk.get("rank", 16),
            gradient_checkpointing=chk["gradient_checkpointing"],
        )
        gb = sum(comps.values()) / GB
        lo, hi = chk["band_gb"]
        rows.append(
            {
                **chk,
                "predicted_gb": round(gb, 2),
                "tolerance": tolerance,
                "in_band": lo * (1 - tolerance) <= gb <= hi * (1 + tolerance),
                "components_gb": {k: round(v / GB, 3) for k, v in sorted(comps.items())},
            }
        )
    return rows
