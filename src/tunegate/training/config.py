"""The run config of the training stage: one frozen pydantic model, validated on construction.

Defaults come from practice (rank 16, alpha 2x rank, dropout 0.05 under 1,000 examples and 0
above, learning rate 2e-4 for adapters and 1e-5 for full fine-tuning, cosine schedule with 3 %
warmup, 3 epochs, gradient checkpointing on, bf16 where the device supports it). Fields whose
default depends on the method or the data are ``None`` here and resolved by :func:`resolve_config`
once the method and the number of examples are known; the *resolved* config is what a run saves.

This module imports nothing heavy (no torch), so the CLI and the policy loader can use it cheaply.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

from tunegate.errors import ConfigError
from tunegate.yamlio import read_yaml_mapping, validate_mapping

Method = Literal["full", "lora", "qlora", "dora"]
METHODS: tuple[str, ...] = ("full", "lora", "qlora", "dora")
ADAPTER_METHODS: tuple[str, ...] = ("lora", "qlora", "dora")

#: Learning rates by method family; used for defaults and for the "full-FT rate on LoRA" warning.
ADAPTER_LR = 2e-4
FULL_LR = 1e-5
SMALL_DATASET = 1000


class LoraSettings(BaseModel):
    """Adapter settings shared by lora, qlora and dora (ignored by full fine-tuning)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    rank: int = Field(16, ge=1, le=1024, description="LoRA rank r.")
    alpha: float | None = Field(
        None, gt=0, description="LoRA alpha; null = 2 x rank (scaling alpha/r, or alpha/sqrt(r) with rsLoRA)."
    )
    dropout: float | None = Field(
        None, ge=0.0, lt=1.0, description="Adapter dropout; null = 0.05 under 1,000 examples, else 0."
    )
    rslora: bool = Field(
        False, description="Rank-stabilized LoRA: scale by alpha/sqrt(r) instead of alpha/r."
    )
    target_modules: str | list[str] = Field(
        "all-linear", description="Modules to adapt: 'all-linear' or a list of module-name suffixes."
    )


class QuantSettings(BaseModel):
    """bitsandbytes quantization of the frozen base (qlora only)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    bits: Literal[4, 8] = Field(4, description="4 = NF4/FP4 (QLoRA), 8 = LLM.int8().")
    quant_type: Literal["nf4", "fp4"] = Field("nf4", description="4-bit data type.")
    double_quant: bool = Field(True, description="Quantize the 4-bit quantization constants too.")


class TrainConfig(BaseModel):
    """Everything a training run needs besides the data and the base model. Unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    seed: int = Field(0, ge=0, description="Seed for data order, dropout and initialization.")
    epochs: float = Field(3.0, gt=0, description="Passes over the training split.")
    max_steps: int | None = Field(
        None, ge=1, description="Stop after this many optimizer steps (overrides epochs)."
    )
    batch_size: int = Field(
        8, ge=1, description="Examples per micro-batch (packed, padding-free for causal LMs)."
    )
    grad_accum: int = Field(1, ge=1, description="Micro-batches per optimizer step.")
    max_seq_len: int = Field(1024, ge=8, description="Examples longer than this (tokens) are truncated.")
    pack_row_tokens: int | None = Field(
        None,
        ge=1,
        description="Causal LMs: pack a micro-batch into rows of about this many tokens (1 = one "
        "example per row, length-grouped); null = one packed row on CUDA, 1 on CPU (where dense "
        "masked attention costs O(row^2)).",
    )
    learning_rate: float | None = Field(None, gt=0, description="null = 2e-4 for adapters, 1e-5 for full.")
    lr_scheduler: Literal["cosine", "linear", "constant"] = Field(
        "cosine", description="Schedule after warmup."
    )
    warmup_ratio: float = Field(0.03, ge=0.0, lt=1.0, description="Share of steps spent warming up linearly.")
    weight_decay: float = Field(0.0, ge=0.0, description="AdamW weight decay.")
    max_grad_norm: float | None = Field(1.0, gt=0, description="Gradient clipping norm; null = no clipping.")
    optimizer: Literal["adamw", "adamw_8bit", "paged_adamw_8bit"] = Field(
        "adamw", description="AdamW (torch), or bitsandbytes 8-bit / paged 8-bit AdamW (CUDA only)."
    )
    gradient_checkpointing: bool = Field(
        True, description="Recompute activations in backward to save memory."
    )
    precision: Literal["auto", "bf16", "fp32"] = Field(
        "auto", description="auto = bf16 on a device that supports it (CUDA with bf16), else fp32."
    )
    device: str = Field(
        "auto",
        pattern=r"^(auto|cpu|cuda(:\d+)?)$",
        description="auto (CUDA when present), cpu, cuda or cuda:N; see tunegate.resources.resolve_device.",
    )
    distributed: Literal["auto", "ddp", "fsdp"] = Field(
        "auto",
        description="Strategy when torchrun / accelerate launch starts several processes: ddp "
        "(replicas, gradients reduced; qlora/lora on models that fit one GPU) or fsdp (parameters, "
        "gradients and optimizer state sharded; full fine-tuning of models that do not fit); auto = "
        "fsdp under an accelerate FSDP config, else ddp. Ignored in a single process.",
    )
    model_kind: Literal["auto", "causal", "seq_cls"] = Field(
        "auto", description="auto = sequence-classification head for encoders, causal LM otherwise."
    )
    eval_steps: int | None = Field(None, ge=1, description="Evaluate every N steps; null = once per epoch.")
    checkpoint_steps: int | None = Field(
        None, ge=1, description="Save a resumable checkpoint every N steps; null = at every evaluation."
    )
    early_stopping_patience: int | None = Field(
        3, ge=1, description="Stop after this many evaluations without improvement; null = never stop early."
    )
    early_stopping_min_delta: float = Field(
        0.0, ge=0.0, description="Smallest validation-loss drop that counts."
    )
    max_eval_examples: int | None = Field(
        None, ge=1, description="Cap on validation examples per evaluation."
    )
    lora: LoraSettings = Field(
        default_factory=lambda: LoraSettings.model_validate({}), description="Adapters."
    )
    quant: QuantSettings = Field(
        default_factory=lambda: QuantSettings.model_validate({}), description="qlora base quantization."
    )


def resolve_config(cfg: TrainConfig, *, method: str, n_train: int) -> TrainConfig:
    """Fill the method- and data-dependent defaults (learning rate, alpha, dropout) and warn on
    known mistakes in plain words. The result has no ``None`` among those fields."""
    if method not in METHODS:
        raise ConfigError(
            f"The 'method' parameter of train must be one of {list(METHODS)}. Got {method!r} instead."
        )
    adapter = method in ADAPTER_METHODS
    lr = cfg.learning_rate if cfg.learning_rate is not None else (ADAPTER_LR if adapter else FULL_LR)
    lora = cfg.lora
    alpha = lora.alpha if lora.alpha is not None else 2.0 * lora.rank
    dropout = lora.dropout if lora.dropout is not None else (0.05 if n_train < SMALL_DATASET else 0.0)
    resolved = cfg.model_copy(
        update={"learning_rate": lr, "lora": lora.model_copy(update={"alpha": alpha, "dropout": dropout})}
    )
    for message in config_warnings(resolved, method=method, n_train=n_train):
        warnings.warn(message, UserWarning, stacklevel=2)
    return resolved


def config_warnings(cfg: TrainConfig, *, method: str, n_train: int) -> list[str]:
    """Plain-word warnings for settings that practice says are usually mistakes."""
    out: list[str] = []
    lr = cfg.learning_rate or 0.0
    if method in ADAPTER_METHODS and lr <= 2e-5:
        out.append(
            f"learning rate {lr:g} is a full fine-tuning rate; adapters ({method}) usually need about "
            f"{ADAPTER_LR:g} (10-20x higher) or they barely move"
        )
    if method == "full" and lr >= 1e-4:
        out.append(
            f"learning rate {lr:g} is an adapter rate; full fine-tuning at this rate usually destroys the "
            f"base model's abilities (try {FULL_LR:g})"
        )
    if method in ADAPTER_METHODS and cfg.lora.rank > 64 and n_train < SMALL_DATASET:
        out.append(
            f"rank {cfg.lora.rank} on {n_train} examples: ranks above 64 rarely help on small datasets and "
            "overfit faster; try 8-32"
        )
    if method == "qlora" and cfg.optimizer == "adamw" and cfg.device.startswith("cuda"):
        out.append("qlora with 32-bit AdamW: paged_adamw_8bit saves optimizer memory at no measurable cost")
    if method != "qlora" and cfg.quant != QuantSettings.model_validate({}):
        out.append(f"quant settings are ignored by method {method!r} (only qlora quantizes the base)")
    return out


# -- loading ---------------------------------------------------------------------------------------
def _parse_value(raw: str) -> Any:
    """``--set key=value`` values are YAML scalars/flow collections: 1e-4, true, null, [q_proj, v_proj]."""
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw


def apply_overrides(data: dict[str, Any], overrides: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Apply ``a.b=value`` overrides to a nested mapping (a copy)."""
    out = json.loads(json.dumps(data))
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected key=value (for example --set lora.rank=8)")
        key, raw = item.split("=", 1)
        parts = [p for p in key.strip().split(".") if p]
        if not parts:
            raise ConfigError(f"--set {item!r}: the key is empty")
        node = out
        for p in parts[:-1]:
            child = node.setdefault(p, {})
            if not isinstance(child, dict):
                raise ConfigError(f"--set {item!r}: {p!r} is not a section")
            node = child
        node[parts[-1]] = _parse_value(raw)
    return out


def config_from_mapping(data: Any, *, source: str = "<config>") -> TrainConfig:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: a run config must be a YAML mapping, got {type(data).__name__}")
    return validate_mapping(TrainConfig, data, source=source, what="run config", show_input=True)


def load_run_config(
    path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()
) -> TrainConfig:
    """Load a run-config YAML (or none: defaults) and apply ``key=value`` overrides."""
    data: dict[str, Any] = {}
    source = "<defaults>"
    if path is not None:
        source = str(path)
        data = read_yaml_mapping(path, what="run config", hint="see gates/training/*.yaml for examples")
    if overrides:
        data = apply_overrides(data, overrides)
        source = f"{source} with --set {' '.join(overrides)}"
    return config_from_mapping(data, source=source)
