"""The training stage: one shared loop for every method, reproducible and resumable.

``train_run`` reads ``WORKDIR/data`` (from ``tunegate prepare``), refuses to start unless the
hold-out manifest verifies and no train/validation record is in it, trains with the method
chosen in :mod:`tunegate.training.methods`, keeps the checkpoint with the best validation loss
(early stopping), and writes ``WORKDIR/runs/<run_id>/`` with ``run.json`` (everything an
auditor needs to tie the artifact to its exact data and base weights), ``config.json`` and the
adapter (peft format) or full model, plus a ledger event.

Why a small hand-written loop rather than ``transformers.Trainer``: padding-free packed batches
with a response-only loss, a per-step seed (so a resumed run is bit-identical to an
uninterrupted one on CPU), and exact token accounting are each a few lines here and a subclass
with overrides there. ``bench/train.py`` compares the two on the same data.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import os
import resource
import shutil
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from tunegate.errors import ConfigError, InputError, IntegrityError, StageError
from tunegate.ledger import append_event
from tunegate.provenance import (
    atomic_path,
    atomic_write_json,
    digest_json,
    git_info,
    package_versions,
    sha256_file,
    sha256_tree,
)
from tunegate.training.config import METHODS, TrainConfig, config_warnings, resolve_config
from tunegate.training.dataset import (
    Batch,
    Encoded,
    SplitData,
    collate,
    encode_records,
    guard_holdout,
    iter_batches,
    label_set,
    micro_batches,
    read_split,
    task_of,
)
from tunegate.training.distributed import (
    DistContext,
    distributed_context,
    full_state,
    grad_sync,
    load_optimizer,
    load_trainable,
    optimizer_state,
    shard,
    trainable_state,
    unwrap,
    wrap_model,
)
from tunegate.training.methods import apply_method, trainable_parameters
from tunegate.training.model_io import (
    ModelSource,
    detect_kind,
    load_pretrained,
    load_tokenizer,
    resolve_device,
    resolve_model,
    write_base_record,
)


def cpu_threads() -> int:
    """CPU training threads: at most 2 (CI has two cores), ``TUNEGATE_CPU_THREADS`` to change.
    Tiny models are often fastest on one thread: OpenMP spin-waits cost more than they save."""
    import os

    try:
        return max(1, int(os.environ.get("TUNEGATE_CPU_THREADS", "2")))
    except ValueError:
        raise ConfigError("TUNEGATE_CPU_THREADS must be a positive integer") from None


@dataclass(frozen=True)
class TrainResult:
    run_id: str
    run_dir: Path
    metrics: dict[str, Any] = field(default_factory=dict)
    #: the process's rank in a distributed run (0 otherwise); only rank 0 has the full metrics
    rank: int = 0


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def _compute_dtype(cfg: TrainConfig, device: str) -> Any:
    import torch

    if cfg.precision == "fp32":
        return torch.float32
    if cfg.precision == "bf16":
        if device.startswith("cuda") and not torch.cuda.is_bf16_supported():
            raise ConfigError(f"precision bf16 was asked for but {device} does not support bf16")
        return torch.bfloat16
    if device.startswith("cuda") and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32  # CPU bf16 is slow and numerically rough for tiny models: fp32


def _loss_sum(model: Any, batch: Batch, *, kind: str, device: str, autocast: Any) -> Any:
    """Summed token (or example) cross-entropy; the caller divides by the step's target count."""
    import torch.nn.functional as F

    t = {k: v.to(device) for k, v in batch.tensors.items()}
    labels = t.pop("labels")
    if kind == "causal":
        # No KV cache: transformers only derives the packed block-diagonal mask when there is none.
        t["use_cache"] = False
    with autocast():
        logits = model(**t).logits
    if kind == "seq_cls":
        return F.cross_entropy(logits.float(), labels, reduction="sum")
    shift_logits = logits[:, :-1, :].float()
    shift_labels = labels[:, 1:]
    return F.cross_entropy(
        shift_logits.reshape(-1, shift_logits.size(-1)),
        shift_labels.reshape(-1),
        ignore_index=-100,
        reduction="sum",
    )


def evaluate_loss(
    model: Any,
    examples: list[Any],
    *,
    kind: str,
    batch_size: int,
    pad_id: int,
    device: str,
    autocast: Any = contextlib.nullcontext,
    max_examples: int | None = None,
    row_capacity: int | None = None,
    ctx: DistContext | None = None,
) -> float:
    """Mean loss per target token (causal) or per example (seq_cls) over ``examples``.

    In a distributed run each process scores its share of the batches and the sums are reduced,
    so every process gets the same value (and the same early-stopping decision)."""
    import torch

    ctx = ctx or DistContext()
    was_training = model.training
    model.eval()
    total = 0.0
    n = 0
    first = None
    mine = seen = 0
    with torch.no_grad():
        # Streamed (validation sets can be large): process r scores batches r, r+W, ...
        for i, batch in enumerate(
            iter_batches(examples, batch_size=batch_size, kind=kind, pad_id=pad_id, max_examples=max_examples)
        ):
            first = first if first is not None else batch
            seen += 1
            if i % ctx.world != ctx.rank:
                continue
            mine += 1
            total += float(_loss_sum(model, batch, kind=kind, device=device, autocast=autocast))
            n += batch.targets
        # A process with a shorter share repeats an uncounted pass: FSDP's forwards are collective.
        for _ in range(-(-seen // ctx.world) - mine):
            _loss_sum(model, first, kind=kind, device=device, autocast=autocast)
    if ctx.active:
        total, n_f = ctx.sum([total, n], device)
        n = int(n_f)
    if was_training:
        model.train()
    return total / max(n, 1)


def _save_torch(obj: Any, path: Path) -> None:
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def _peak_memory(device: str) -> dict[str, Any]:
    import torch

    if device.startswith("cuda"):
        return {
            "kind": "cuda_max_memory_reserved",
            "bytes": int(torch.cuda.max_memory_reserved()),
            "allocated_bytes": int(torch.cuda.max_memory_allocated()),
        }
    # ru_maxrss is KiB on Linux: the whole process's peak resident set (includes Python and torch).
    return {
        "kind": "process_peak_rss",
        "bytes": int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024,
    }


def _find_resumable(runs: Path, fingerprint: str, resume: str) -> Path | None:
    import torch

    candidates = [runs / resume] if resume != "auto" else sorted(runs.glob("*"), reverse=True)
    for run_dir in candidates:
        state = run_dir / "checkpoints" / "last.pt"
        if (run_dir / "run.json").exists() or not state.is_file():
            if resume != "auto":
                raise InputError(
                    "no resumable checkpoint (finished, or never checkpointed)",
                    path=run_dir,
                    hint="start a new run without --resume",
                )
            continue
        meta = torch.load(state, map_location="cpu", weights_only=False)["fingerprint"]
        if meta == fingerprint:
            return run_dir
        if resume != "auto":
            raise IntegrityError(
                f"run {run_dir.name} was started with different data, base model or config "
                f"(fingerprint {meta[:12]} != {fingerprint[:12]}); it cannot be resumed with these inputs"
            )
    return None


def _load_splits(data_dir: Path) -> tuple[SplitData, SplitData | None]:
    train = read_split(data_dir / "train.jsonl")
    vpath = data_dir / "validation.jsonl"
    val = read_split(vpath) if vpath.is_file() and vpath.stat().st_size > 0 else None
    return train, val


def train_run(
    workdir: str | Path,
    *,
    model: str,
    method: str,
    config: TrainConfig | None = None,
    progress: bool = True,
    resume: str | None = None,
    on_step: Callable[[int, float], None] | None = None,
) -> TrainResult:
    """Train ``model`` on ``WORKDIR/data`` with ``method``; return the run id, folder and metrics.

    ``resume``: a run id, or "auto" (the newest unfinished run with the same data, base and
    config), continues from that run's last checkpoint. ``on_step(step, loss)`` is called after
    every optimizer step (and after that step's checkpoint): tests use it to simulate a crash.
    Started by ``torchrun`` or ``accelerate launch`` on several processes, the run is data
    parallel or sharded (:mod:`tunegate.training.distributed`); every process returns the result.
    """
    if method not in METHODS:
        raise ConfigError(
            f"The 'method' parameter of train must be one of {list(METHODS)}. Got {method!r} instead."
        )
    cfg0 = config or TrainConfig.model_validate({})
    with distributed_context(cfg0.distributed, resolve_device(cfg0.device)) as (ctx, device):
        return _train(
            Path(workdir),
            model=model,
            method=method,
            cfg0=cfg0,
            device=device,
            ctx=ctx,
            progress=progress and ctx.is_main,
            resume=resume,
            on_step=on_step,
        )


def _train(
    workdir: Path,
    *,
    model: str,
    method: str,
    cfg0: TrainConfig,
    device: str,
    ctx: DistContext,
    progress: bool,
    resume: str | None,
    on_step: Callable[[int, float], None] | None,
) -> TrainResult:
    import torch
    from transformers import AutoConfig, get_scheduler, set_seed

    started = time.perf_counter()
    world = ctx.world
    data_dir = workdir / "data"
    train_split, val_split = _load_splits(data_dir)
    manifest_digest = guard_holdout(data_dir, [s for s in (train_split, val_split) if s is not None])
    task = task_of(train_split.records, train_split.path)
    if val_split is not None and task_of(val_split.records, val_split.path) != task:
        raise InputError(
            "validation holds a different task kind than train", path=val_split.path, field="task"
        )

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cfg = resolve_config(cfg0, method=method, n_train=len(train_split.records))
    config_notes = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    for note in config_notes:
        warnings.warn(note, UserWarning, stacklevel=2)

    src: ModelSource = resolve_model(model)
    hf_config = AutoConfig.from_pretrained(str(src.path))
    kind = detect_kind(hf_config, task, cfg.model_kind)
    labels = label_set(train_split.records) if task == "classification" else None
    if task == "classification" and labels is not None and len(labels) < 2:
        raise InputError(
            "classification needs at least two labels in train", path=train_split.path, field="label"
        )
    if device == "cpu":
        torch.set_num_threads(min(cpu_threads(), torch.get_num_threads()))
    dtype = _compute_dtype(cfg, device)
    use_autocast = dtype == torch.bfloat16 and device.startswith("cuda")

    def autocast() -> Any:
        if use_autocast:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    tok = load_tokenizer(src.path)
    enc_train: Encoded = encode_records(
        train_split.records, tok, kind=kind, max_len=cfg.max_seq_len, labels=labels, path=train_split.path
    )
    enc_val: Encoded | None = (
        encode_records(
            val_split.records, tok, kind=kind, max_len=cfg.max_seq_len, labels=labels, path=val_split.path
        )
        if val_split is not None
        else None
    )
    if not enc_train.examples:
        raise InputError(
            "no training example has a target token left after truncation", path=train_split.path
        )
    pad_id = int(tok.pad_token_id)

    resolved = cfg.model_dump(mode="json")
    fingerprint = digest_json(
        {
            "config": resolved,
            "method": method,
            "base": src.digest,
            "train": train_split.digest,
            "validation": val_split.digest if val_split else None,
            "manifest": manifest_digest,
            # only when distributed, so single-process fingerprints (and resumability) are unchanged
            **({"distributed": ctx.describe()} if ctx.active else {}),
        }
    )
    runs = workdir / "runs"
    start = _utc_now()
    run_dir: Path | None = None
    if ctx.is_main:  # one process decides the run folder; the others are told
        run_dir = _find_resumable(runs, fingerprint, resume) if resume else None
        if run_dir is None:
            run_id = f"{start:%Y%m%dT%H%M%S}-{method}-{fingerprint[:8]}"
            run_dir = runs / run_id
            n = 1
            while run_dir.exists():
                n += 1
                run_dir = runs / f"{run_id}-{n}"
            run_dir.mkdir(parents=True)
            atomic_write_json(run_dir / "config.json", resolved)
    start, run_dir = ctx.from_main((start, run_dir))
    assert run_dir is not None
    run_id = run_dir.name
    ckpt_dir = run_dir / "checkpoints"

    # -- model, optimizer, schedule ------------------------------------------------------------------
    set_seed(cfg.seed)
    loader = partial(load_pretrained, src.path, kind=kind, labels=labels)
    # FSDP shards from CPU onto the GPUs (the unsharded model need not fit one GPU).
    load_device = "cpu" if ctx.strategy == "fsdp" else device
    net = apply_method(loader, cfg, method=method, kind=kind, device=load_device, dtype=dtype)
    net = wrap_model(net, ctx, device=device, method=method, bf16=use_autocast)
    params = [p for p in net.parameters() if p.requires_grad]  # after wrapping: FSDP swaps them
    optimizer: Any
    if cfg.optimizer == "adamw":
        optimizer = torch.optim.AdamW(params, lr=cfg.learning_rate or 0.0, weight_decay=cfg.weight_decay)
    else:
        import bitsandbytes as bnb

        opt_cls = bnb.optim.PagedAdamW8bit if cfg.optimizer == "paged_adamw_8bit" else bnb.optim.AdamW8bit
        optimizer = opt_cls(params, lr=cfg.learning_rate or 0.0, weight_decay=cfg.weight_decay)
    n_micro = math.ceil(len(enc_train.examples) / cfg.batch_size)
    per_step = cfg.grad_accum * world  # micro-batches per optimizer step, over all processes
    steps_per_epoch = max(1, math.ceil(n_micro / per_step))
    total_steps = cfg.max_steps or max(1, math.ceil(cfg.epochs * steps_per_epoch))
    scheduler = get_scheduler(
        cfg.lr_scheduler,
        optimizer=optimizer,
        num_warmup_steps=math.ceil(cfg.warmup_ratio * total_steps),
        num_training_steps=total_steps,
    )
    # CUDA: one packed row per micro-batch (flash/SDPA varlen attention costs per example).
    # CPU: SDPA falls back to a dense masked kernel whose cost is O(row^2), so one example per
    # row with length-grouped micro-batches is cheapest there (padding stays small).
    row_capacity = cfg.pack_row_tokens or (None if device.startswith("cuda") else 1)
    group_by_length = kind == "causal" and row_capacity == 1
    eval_every = cfg.eval_steps or steps_per_epoch
    ckpt_every = cfg.checkpoint_steps or eval_every

    state: dict[str, Any] = {
        "step": 0,
        "loss_curve": [],
        "eval_curve": [],
        "best": None,
        "bad_evals": 0,
        "tokens": 0,
        "padded": 0,
        "train_time_s": 0.0,
        "resumed_from_step": None,
    }
    last_pt = ckpt_dir / "last.pt"
    if last_pt.is_file():
        saved = torch.load(last_pt, map_location="cpu", weights_only=False)
        load_trainable(net, saved["params"], ctx)
        load_optimizer(net, optimizer, saved["optimizer"], ctx)
        scheduler.load_state_dict(saved["scheduler"])
        state = saved["state"]
        state["resumed_from_step"] = state["step"]

    def save_last() -> None:
        # Gathering is collective (every process); writing is rank 0's.
        params_now, optim_now = trainable_state(net, ctx), optimizer_state(net, optimizer, ctx)
        if ctx.is_main:
            _save_torch(
                {
                    "fingerprint": fingerprint,
                    "params": params_now,
                    "optimizer": optim_now,
                    "scheduler": scheduler.state_dict(),
                    "state": state,
                },
                last_pt,
            )
        ctx.barrier()

    def run_eval() -> float | None:
        if enc_val is None or not enc_val.examples:
            return None
        return evaluate_loss(
            net,
            enc_val.examples,
            kind=kind,
            batch_size=cfg.batch_size,
            pad_id=pad_id,
            device=device,
            autocast=autocast,
            max_examples=cfg.max_eval_examples,
            row_capacity=row_capacity,
            ctx=ctx,
        )

    # -- the loop ----------------------------------------------------------------------------------
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    stopped_early = False
    epoch_batches: dict[int, list[list[int]]] = {}
    prog_ctx: Any = contextlib.nullcontext(None)
    if progress:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        prog_ctx = Progress(
            TextColumn(f"[bold]{run_id}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}  val {task.fields[val]}"),
            TimeRemainingColumn(),
            transient=False,
        )
    with prog_ctx as prog:
        bar = (
            prog.add_task("train", total=total_steps, completed=state["step"], loss="-", val="-")
            if prog is not None
            else None
        )
        net.train()
        while state["step"] < total_steps and not stopped_early:
            step = state["step"]
            epoch, within = divmod(step, steps_per_epoch)
            if epoch not in epoch_batches:
                epoch_batches = {
                    epoch: micro_batches(
                        enc_train.examples,
                        batch_size=cfg.batch_size,
                        seed=cfg.seed,
                        epoch=epoch,
                        kind=kind,
                        group_by_length=group_by_length,
                    )
                }
            chunk = epoch_batches[epoch][within * per_step : (within + 1) * per_step]
            if not chunk:  # grad_accum does not divide the epoch: start the next epoch
                state["step"] = (epoch + 1) * steps_per_epoch
                continue
            # Dropout noise depends on the step (and the process) only.
            torch.manual_seed(cfg.seed * 100_003 + step + ctx.rank * 1_000_003)
            t0 = time.perf_counter()
            mine, slots = shard(chunk, ctx)

            def batch_of(idx: list[int]) -> Batch:
                ex = [enc_train.examples[i] for i in idx]
                return collate(ex, kind=kind, pad_id=pad_id, row_capacity=row_capacity)

            batches = [batch_of(idx) for idx in mine]
            n_local = sum(b.targets for b in batches)
            n_targets = ctx.sum([n_local], device)[0] if ctx.active else n_local
            step_loss = 0.0
            for i in range(slots):
                with grad_sync(net, ctx, enabled=i == slots - 1):
                    if i >= len(batches):  # this process's share ran out: a zero-weighted pass
                        pad_loss = _loss_sum(
                            net, batch_of(chunk[0]), kind=kind, device=device, autocast=autocast
                        )
                        (pad_loss * 0.0).backward()
                        continue
                    loss = _loss_sum(net, batches[i], kind=kind, device=device, autocast=autocast) / max(
                        n_targets, 1
                    )
                    # DDP and FSDP average gradients over processes; x world makes it the step's sum.
                    (loss * world if ctx.active else loss).backward()
                    step_loss += float(loss.detach())
            n_tokens = sum(b.tokens for b in batches)
            n_padded = sum(b.padded for b in batches)
            if ctx.active:
                step_loss, n_tokens_f, n_padded_f = ctx.sum([step_loss, n_tokens, n_padded], device)
                n_tokens, n_padded = int(n_tokens_f), int(n_padded_f)
            if not math.isfinite(step_loss):
                raise StageError(
                    f"training loss became {step_loss} at step {step + 1}",
                    hint="lower the learning rate or use precision fp32",
                )
            entry: dict[str, Any] = {"step": step + 1, "loss": round(step_loss, 6)}
            if cfg.max_grad_norm is not None:
                # The pre-clip norm is logged: a spike is the first sign of a diverging run.
                norm = torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
                full = getattr(norm, "full_tensor", None)  # FSDP: a DTensor (replicated value)
                entry["grad_norm"] = round(float(full() if full is not None else norm), 6)
            lr = float(scheduler.get_last_lr()[0])
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            state["train_time_s"] += time.perf_counter() - t0
            state["tokens"] += n_tokens
            state["padded"] += n_padded
            state["step"] = step + 1
            state["loss_curve"].append({**entry, "lr": lr})

            done = state["step"] >= total_steps
            if state["step"] % eval_every == 0 or done:
                val = run_eval()
                if val is not None:
                    state["eval_curve"].append({"step": state["step"], "val_loss": round(val, 6)})
                    best = state["best"]
                    if best is None or val < best["val_loss"] - cfg.early_stopping_min_delta:
                        # One file per best step: a crash between this save and the next "last"
                        # checkpoint must not leave a best file that the resumed state does not name.
                        best_file = f"best-{state['step']}.pt"
                        best_now = trainable_state(net, ctx)
                        if ctx.is_main:
                            _save_torch(best_now, ckpt_dir / best_file)
                        state["best"] = {"step": state["step"], "val_loss": val, "file": best_file}
                        state["bad_evals"] = 0
                    else:
                        state["bad_evals"] += 1
                        patience = cfg.early_stopping_patience
                        if patience is not None and state["bad_evals"] >= patience:
                            stopped_early = True
                    if bar is not None:
                        prog.update(bar, val=f"{val:.4f}")
            if not done and not stopped_early and state["step"] % ckpt_every == 0:
                save_last()
            if bar is not None:
                prog.update(bar, completed=state["step"], loss=f"{step_loss:.4f}")
            if on_step is not None:
                on_step(state["step"], step_loss)

    # -- the artifact ---------------------------------------------------------------------------------
    ctx.barrier()  # rank 0's best file is on disk before anyone reads it
    if state["best"] is not None:
        best_pt = ckpt_dir / state["best"].pop("file")
        load_trainable(net, torch.load(best_pt, map_location="cpu", weights_only=True), ctx)
    model_obj = unwrap(net)
    model_obj.config.use_cache = True
    artifact = "model" if method == "full" else "adapter"
    out_dir = run_dir / artifact
    # Sharded weights are gathered (collectively) into one ordinary checkpoint written by rank 0.
    save_kwargs: dict[str, Any] = {}
    if ctx.strategy == "fsdp":
        save_kwargs["state_dict"] = full_state(net) if method == "full" else trainable_state(net, ctx)
    peak = _peak_memory(device)
    if ctx.active:
        peak["bytes"] = ctx.max(peak["bytes"], device)
        peak["per_process"] = True
    if not ctx.is_main:
        ctx.barrier()  # wait for rank 0 to write the artifact and the run record
        return TrainResult(run_id=run_id, run_dir=run_dir, metrics={"steps": state["step"]}, rank=ctx.rank)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    model_obj.save_pretrained(str(out_dir), **save_kwargs)
    tok.save_pretrained(str(out_dir))
    write_base_record(out_dir, src, method=method)
    artifact_digest = digest_json(sha256_tree(out_dir))
    trainable, total_params = trainable_parameters(model_obj)  # DTensor.numel() is the full size
    train_time = state["train_time_s"]
    seen = state["tokens"] + state["padded"]
    run: dict[str, Any] = {
        "run_id": run_id,
        "date": start.isoformat().replace("+00:00", "Z"),
        # who ran training: approval's separation of duties keeps them from approving alone
        "operator": os.environ.get("TUNEGATE_OPERATOR") or os.environ.get("USER") or "unknown",
        "method": method,
        "task": task,
        "model_kind": kind,
        "labels": labels,
        "seed": cfg.seed,
        "config": resolved,
        "config_digest": digest_json(resolved),
        "config_warnings": config_notes
        or config_warnings(cfg, method=method, n_train=len(train_split.records)),
        "fingerprint": fingerprint,
        "base_model": src.to_json(),
        "data": {
            "train": {
                "digest": train_split.digest,
                "records": len(train_split.records),
                "examples": len(enc_train.examples),
                "dropped_no_target": enc_train.dropped,
                "truncated": enc_train.truncated,
            },
            "validation": (
                {
                    "digest": val_split.digest,
                    "records": len(val_split.records),
                    "examples": len(enc_val.examples),
                }
                if val_split is not None and enc_val is not None
                else None
            ),
            "holdout_manifest_digest": manifest_digest,
        },
        "versions": package_versions(),
        "git": git_info(),
        "device": device if not device.startswith("cuda") else f"{device} ({torch.cuda.get_device_name()})",
        "precision": str(dtype).replace("torch.", ""),
        **({"distributed": ctx.describe()} if ctx.active else {}),
        "batching": (
            (
                "one example per row, length-grouped batches"
                if row_capacity == 1
                else f"packed rows of ~{row_capacity or 'all'} tokens, no cross-example attention"
            )
            if kind == "causal"
            else "length-grouped padding"
        ),
        "steps": state["step"],
        "total_steps_planned": total_steps,
        "steps_per_epoch": steps_per_epoch,
        "stopped_early": stopped_early,
        "best": state["best"],
        "resumed_from_step": state["resumed_from_step"],
        "loss_curve": state["loss_curve"],
        "eval_curve": state["eval_curve"],
        "tokens": state["tokens"],
        "padding_fraction": (state["padded"] / seen) if seen else 0.0,
        "train_time_s": round(train_time, 3),
        "wall_time_s": round(time.perf_counter() - started, 3),
        "tokens_per_s": round(state["tokens"] / train_time, 2) if train_time > 0 else None,
        "peak_memory": peak,
        "trainable_params": trainable,
        "total_params": total_params,
        "artifact": artifact,
        "artifact_digest": artifact_digest,
    }
    atomic_write_json(run_dir / "run.json", run)
    shutil.rmtree(ckpt_dir, ignore_errors=True)
    append_event(
        workdir,
        "train",
        inputs={
            "train": train_split.digest,
            **({"validation": val_split.digest} if val_split is not None else {}),
            "holdout_manifest": manifest_digest,
            "base_model": src.digest,
        },
        outputs={"run_json": sha256_file(run_dir / "run.json"), artifact: artifact_digest},
        config_digest=run["config_digest"],
        details={
            "run_id": run_id,
            "method": method,
            "steps": state["step"],
            "best_val_loss": state["best"]["val_loss"] if state["best"] else None,
        },
    )
    metrics = {
        "final_loss": state["loss_curve"][-1]["loss"] if state["loss_curve"] else None,
        "best_val_loss": state["best"]["val_loss"] if state["best"] else None,
        "steps": state["step"],
        "tokens_per_s": run["tokens_per_s"],
        "padding_fraction": run["padding_fraction"],
        "peak_memory_bytes": peak["bytes"],
        "wall_time_s": run["wall_time_s"],
    }
    ctx.barrier()
    return TrainResult(run_id=run_id, run_dir=run_dir, metrics=metrics)
