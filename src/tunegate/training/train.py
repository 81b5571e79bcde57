"""The training stage: one shared loop for every method, reproducible and resumable.

``train_run`` reads ``WORKDIR/data`` (from ``tunegate prepare``), refuses to start unless the
hold-out manifest verifies and no train/validation record is in it, trains with the method
chosen in :mod:`tunegate.training.methods`, keeps the checkpoint with the best validation loss
(early stopping), and writes ``WORKDIR/runs/<run_id>/`` with ``run.json`` (everything an
auditor needs to tie the artifact to its exact data and base weights), ``config.json`` and the
adapter (peft format) or full model, plus a ledger event.

The recipe is split the way torchtune's single-device recipes are: :class:`TrainRecipe` sets up
the data, the run folder, the model and optimizer (``setup``), then :meth:`TrainRecipe.train`
reads top to bottom: one :meth:`~TrainRecipe.train_step`, :meth:`~TrainRecipe.evaluate` and
:meth:`~TrainRecipe.save_checkpoint` per step, around a typed :class:`TrainState` (the one thing
a checkpoint carries besides tensors), and :meth:`~TrainRecipe.finish` writes the artifact.

Why a small hand-written loop rather than ``transformers.Trainer``: padding-free packed batches
with a response-only loss, a per-step seed (so a resumed run is bit-identical to an
uninterrupted one on CPU), and exact token accounting are each a few lines here and a subclass
with overrides there. ``bench/train.py`` compares the two on the same data.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import math
import os
import resource
import shutil
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from functools import partial
from pathlib import Path
from typing import Any

from tunegate.errors import ConfigError, InputError, IntegrityError, StageError
from tunegate.ledger import append_event
from tunegate.provenance import (
    atomic_write_json,
    atomic_write_text,
    digest_json,
    git_info,
    package_versions,
    pretty_json,
    sha256_bytes,
    sha256_file,
    sha256_tree,
)
from tunegate.resources import configure_threads, cpu_stage, resolve_device
from tunegate.training.checkpoint import (
    RECORD,
    check_record,
    load_checkpoint,
    load_tensors,
    read_record,
    save_checkpoint,
    save_tensors,
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
from tunegate.training.methods import (
    QuantPlan,
    apply_method,
    plan_quantization,
    quiet_bitsandbytes,
    trainable_parameters,
)
from tunegate.training.model_io import (
    ModelSource,
    detect_kind,
    load_pretrained,
    load_skeleton,
    load_tokenizer,
    resolve_model,
    write_base_record,
)
from tunegate.workdir import data_dir, run_dir, runs_dir

log = logging.getLogger(__name__)


def operator_identity() -> str:
    """Who runs training (for separation of duties): ``TUNEGATE_OPERATOR`` or the OS user."""
    return os.environ.get("TUNEGATE_OPERATOR") or os.environ.get("USER") or "unknown"


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

    ``row_capacity`` packs rows as training does (:func:`~tunegate.training.dataset.collate`), so
    the validation loss is measured on batches shaped like the training batches.

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
        batches = iter_batches(
            examples,
            batch_size=batch_size,
            kind=kind,
            pad_id=pad_id,
            max_examples=max_examples,
            row_capacity=row_capacity,
        )
        for i, batch in enumerate(batches):
            first = first if first is not None else batch
            seen += 1
            if i % ctx.world != ctx.rank:
                continue
            mine += 1
            total += float(_loss_sum(model, batch, kind=kind, device=device, autocast=autocast))
            n += batch.targets
        # A process with a shorter share repeats an uncounted pass: FSDP's forwards are collective.
        for _ in range(-(-seen // ctx.world) - mine):
            assert first is not None  # a shorter share means some batch exists
            _loss_sum(model, first, kind=kind, device=device, autocast=autocast)
    if ctx.active:
        total, n_f = ctx.sum([total, n], device)
        n = int(n_f)
    if was_training:
        model.train()
    return total / max(n, 1)


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


def _find_resumable(workdir: Path, fingerprint: str, resume: str) -> Path | None:
    """The run folder to continue: ``resume`` (a run id) or, for "auto", the newest unfinished
    run whose checkpoint record names these inputs and whose tensors file still has the recorded
    sha256. With "auto" a checkpoint that fails a check is skipped with a warning; a named run
    that fails one is an error. Only JSON is read here; nothing is unpickled."""
    explicit = resume != "auto"
    candidates = [run_dir(workdir, resume)] if explicit else sorted(runs_dir(workdir).glob("*"), reverse=True)
    for candidate in candidates:
        ckpt = candidate / "checkpoints"
        record = None
        if candidate.is_dir() and not candidate.is_symlink() and not (candidate / "run.json").exists():
            try:
                record = read_record(ckpt)
            except IntegrityError as exc:
                if explicit:
                    raise
                warnings.warn(f"not resuming {candidate.name}: {exc}", UserWarning, stacklevel=2)
                continue
        if record is None:
            if explicit:
                raise InputError(
                    "no resumable checkpoint (finished, or never checkpointed)",
                    path=candidate,
                    hint="start a new run without --resume",
                )
            continue
        if not explicit and record.get("fingerprint") != fingerprint:
            continue  # another configuration's run: not ours to continue
        try:
            check_record(record, run_id=candidate.name, fingerprint=fingerprint, path=ckpt / RECORD)
            tensors = ckpt / str(record.get("tensors", ""))
            if not tensors.is_file() or sha256_file(tensors) != record.get("tensors_sha256"):
                raise IntegrityError(
                    f"{tensors}: checkpoint tensors are missing or differ from the sha256 its record holds"
                )
        except IntegrityError as exc:
            if explicit:
                raise
            warnings.warn(f"not resuming {candidate.name}: {exc}", UserWarning, stacklevel=2)
            continue
        return candidate
    return None


def _load_splits(data: Path) -> tuple[SplitData, SplitData | None]:
    train = read_split(data / "train.jsonl")
    vpath = data / "validation.jsonl"
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
    device0 = resolve_device(cfg0.device)
    # A CPU run registers itself so that runs started beside it take a fair share of the cores.
    slot = cpu_stage() if device0 == "cpu" else contextlib.nullcontext()
    with slot, distributed_context(cfg0.distributed, device0) as (ctx, device):
        recipe = TrainRecipe(
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
        # bitsandbytes logs on every quantized forward: silenced for this call (qlora only)
        with quiet_bitsandbytes() if method == "qlora" else contextlib.nullcontext():
            recipe.setup()
            return recipe.train()


# -- the recipe's typed pieces ------------------------------------------------------------------------


@dataclass
class TrainState:
    """Everything the loop mutates; saved as JSON in every checkpoint record."""

    step: int = 0
    loss_curve: list[dict[str, Any]] = field(default_factory=list)
    eval_curve: list[dict[str, Any]] = field(default_factory=list)
    #: {"step", "val_loss", "file", "sha256"} of the best validation loss so far
    best: dict[str, Any] | None = None
    bad_evals: int = 0
    tokens: int = 0
    padded: int = 0
    train_time_s: float = 0.0
    resumed_from_step: int | None = None
    stopped_early: bool = False
    #: torch's intra-op threads on CPU (None on an accelerator). A CPU matmul's result depends on
    #: how many threads split it, so a resumed run keeps the count its checkpoint was made with.
    cpu_threads: int | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrainState:
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})


@dataclass(frozen=True)
class RunData:
    """The encoded splits and what was learned about them (task, labels, model kind)."""

    train: SplitData
    val: SplitData | None
    manifest_digest: str
    task: str
    kind: str
    labels: list[str] | None
    tokenizer: Any
    enc_train: Encoded
    enc_val: Encoded | None
    pad_id: int


@dataclass(frozen=True)
class Schedule:
    """How examples become steps: micro-batches per step, step counts, eval/checkpoint cadence."""

    per_step: int  # micro-batches per optimizer step, over all processes
    steps_per_epoch: int
    total_steps: int
    eval_every: int
    ckpt_every: int
    # CUDA: one packed row per micro-batch (flash/SDPA varlen attention costs per example).
    # CPU: SDPA falls back to a dense masked kernel whose cost is O(row^2), so one example per
    # row with length-grouped micro-batches is cheapest there (padding stays small).
    row_capacity: int | None
    group_by_length: bool


class _Progress:
    """Training progress: a rich bar on a terminal; plain periodic lines (step, loss, ETA) when the
    output goes to a file or a pipe, so a 20-minute run in a log is never silent; else nothing."""

    def __init__(self, run_id: str, total: int, done: int, enabled: bool) -> None:
        self._bar: Any = None
        self._task: Any = None
        self._plain: Any = None
        self._args = (run_id, total, done)
        self._enabled = enabled
        self._fields: dict[str, str] = {}

    def __enter__(self) -> _Progress:
        if not self._enabled:
            return self
        import sys

        run_id, total, done = self._args
        if not sys.stdout.isatty():
            from tunegate.console import Progress

            self._plain = Progress(f"train {run_id}", total, unit="steps").__enter__()
            self._plain.done = done
            return self
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
        from rich.progress import Progress as RichProgress

        self._bar = RichProgress(
            TextColumn(f"[bold]{run_id}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}  val {task.fields[val]}"),
            TimeRemainingColumn(),
            transient=False,
        ).__enter__()
        self._task = self._bar.add_task("train", total=total, completed=done, loss="-", val="-")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)
        if self._plain is not None:
            self._plain.__exit__(*exc)

    def update(self, **fields_: Any) -> None:
        if self._bar is not None:
            self._bar.update(self._task, **fields_)
        if self._plain is not None:
            self._fields.update({k: str(v) for k, v in fields_.items() if k in ("loss", "val")})
            self._plain.note = "  ".join(f"{k} {v}" for k, v in self._fields.items())
            completed = fields_.get("completed")
            if isinstance(completed, int) and completed > self._plain.done:
                self._plain.advance(completed - self._plain.done)


class TrainRecipe:
    """One training run. The constructor stores its arguments; :meth:`setup` does the work of
    loading, :meth:`train` runs the loop and returns the :class:`TrainResult`."""

    def __init__(
        self,
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
    ) -> None:
        self.workdir, self.model_name, self.method, self.cfg0 = workdir, model, method, cfg0
        self.device, self.ctx, self.progress = device, ctx, progress
        self.resume, self.on_step = resume, on_step
        self._epoch: tuple[int, list[list[int]]] | None = None  # this epoch's micro-batches

    # -- setup ------------------------------------------------------------------------------------------
    def setup(self) -> None:
        self.started = time.perf_counter()
        self.data, self.cfg, self.config_notes, self.src = self._setup_data()
        if self.device == "cpu":
            self.threads: int | None = configure_threads()
        else:
            self.threads = None
        self._setup_precision()
        # qlora's layer-by-layer plan is checked before any folder is made (a refusal leaves nothing)
        self.quant = self._plan_quantization() if self.method == "qlora" else None
        self.resolved = self.cfg.model_dump(mode="json")
        self.fingerprint = self._fingerprint()
        self.start, self.run_dir = self._setup_run_dir()
        self.run_id, self.ckpt_dir = self.run_dir.name, self.run_dir / "checkpoints"
        self._setup_model()
        self.schedule = self._setup_schedule()
        self._setup_optimizer()
        self.state = self._load_checkpoint()

    def _setup_data(self) -> tuple[RunData, TrainConfig, list[str], ModelSource]:
        from transformers import AutoConfig

        train, val = _load_splits(data_dir(self.workdir))
        manifest_digest = guard_holdout(data_dir(self.workdir), [s for s in (train, val) if s is not None])
        task = task_of(train.records, train.path)
        if val is not None and task_of(val.records, val.path) != task:
            raise InputError("validation holds a different task kind than train", path=val.path, field="task")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            cfg = resolve_config(self.cfg0, method=self.method, n_train=len(train.records))
        notes = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
        for note in notes:
            warnings.warn(note, UserWarning, stacklevel=3)
        src = resolve_model(self.model_name)
        kind = detect_kind(AutoConfig.from_pretrained(str(src.path)), task, cfg.model_kind)
        labels = label_set(train.records) if task == "classification" else None
        if task == "classification" and labels is not None and len(labels) < 2:
            raise InputError(
                "classification needs at least two labels in train", path=train.path, field="label"
            )
        tok = load_tokenizer(src.path)
        enc = partial(encode_records, tokenizer=tok, kind=kind, max_len=cfg.max_seq_len, labels=labels)
        enc_train: Encoded = enc(train.records, path=train.path)
        enc_val = enc(val.records, path=val.path) if val is not None else None
        if not enc_train.examples:
            raise InputError("no training example has a target token left after truncation", path=train.path)
        data = RunData(
            train, val, manifest_digest, task, kind, labels, tok, enc_train, enc_val, int(tok.pad_token_id)
        )
        return data, cfg, notes, src

    def _setup_precision(self) -> None:
        import torch

        self.dtype = _compute_dtype(self.cfg, self.device)
        self.use_autocast = self.dtype == torch.bfloat16 and self.device.startswith("cuda")

    def _plan_quantization(self) -> QuantPlan:
        d = self.data
        skeleton = load_skeleton(self.src.path, kind=d.kind, labels=d.labels)
        return plan_quantization(self.cfg, skeleton, device=self.device)

    def autocast(self) -> Any:
        import torch

        if self.use_autocast:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _fingerprint(self) -> str:
        d = self.data
        return digest_json(
            {
                "config": self.resolved,
                "method": self.method,
                "base": self.src.digest,
                "train": d.train.digest,
                "validation": d.val.digest if d.val else None,
                "manifest": d.manifest_digest,
                # only when distributed, so single-process fingerprints (and resumability) are unchanged
                **({"distributed": self.ctx.describe()} if self.ctx.active else {}),
            }
        )

    def _setup_run_dir(self) -> tuple[dt.datetime, Path]:
        """A resumable run of these inputs, or a new folder. One process decides; the others are told."""
        start = _utc_now()
        folder: Path | None = None
        if self.ctx.is_main:
            folder = _find_resumable(self.workdir, self.fingerprint, self.resume) if self.resume else None
            if folder is None:
                run_id = f"{start:%Y%m%dT%H%M%S}-{self.method}-{self.fingerprint[:8]}"
                folder, n = runs_dir(self.workdir) / run_id, 1
                while folder.exists():
                    n += 1
                    folder = runs_dir(self.workdir) / f"{run_id}-{n}"
                folder.mkdir(parents=True)
                atomic_write_json(folder / "config.json", self.resolved)
        start, folder = self.ctx.from_main((start, folder))
        assert folder is not None
        return start, folder

    def _setup_model(self) -> None:
        from transformers import set_seed

        set_seed(self.cfg.seed)
        d = self.data
        loader = partial(load_pretrained, self.src.path, kind=d.kind, labels=d.labels)
        # FSDP shards from CPU onto the GPUs (the unsharded model need not fit one GPU).
        load_device = "cpu" if self.ctx.strategy == "fsdp" else self.device
        net = apply_method(
            loader,
            self.cfg,
            method=self.method,
            kind=d.kind,
            device=load_device,
            dtype=self.dtype,
            quant=self.quant,
        )
        self.net = wrap_model(net, self.ctx, device=self.device, method=self.method, bf16=self.use_autocast)
        self.params = [p for p in self.net.parameters() if p.requires_grad]  # after wrapping: FSDP swaps them

    def _setup_schedule(self) -> Schedule:
        cfg = self.cfg
        n_micro = math.ceil(len(self.data.enc_train.examples) / cfg.batch_size)
        per_step = cfg.grad_accum * self.ctx.world
        steps_per_epoch = max(1, math.ceil(n_micro / per_step))
        eval_every = cfg.eval_steps or steps_per_epoch
        row_capacity = cfg.pack_row_tokens or (None if self.device.startswith("cuda") else 1)
        return Schedule(
            per_step=per_step,
            steps_per_epoch=steps_per_epoch,
            total_steps=cfg.max_steps or max(1, math.ceil(cfg.epochs * steps_per_epoch)),
            eval_every=eval_every,
            ckpt_every=cfg.checkpoint_steps or eval_every,
            row_capacity=row_capacity,
            group_by_length=self.data.kind == "causal" and row_capacity == 1,
        )

    def _setup_optimizer(self) -> None:
        import torch
        from transformers import get_scheduler

        cfg, lr = self.cfg, self.cfg.learning_rate or 0.0
        if cfg.optimizer == "adamw":
            self.optimizer: Any = torch.optim.AdamW(self.params, lr=lr, weight_decay=cfg.weight_decay)
        else:
            import bitsandbytes as bnb

            paged = cfg.optimizer == "paged_adamw_8bit"
            opt_cls = bnb.optim.PagedAdamW8bit if paged else bnb.optim.AdamW8bit
            self.optimizer = opt_cls(self.params, lr=lr, weight_decay=cfg.weight_decay)
        total = self.schedule.total_steps
        self.scheduler = get_scheduler(
            cfg.lr_scheduler,
            optimizer=self.optimizer,
            num_warmup_steps=math.ceil(cfg.warmup_ratio * total),
            num_training_steps=total,
        )

    def _load_checkpoint(self) -> TrainState:
        """Continue from the run's verified checkpoint, if it has one (every process loads it)."""
        if not (self.ckpt_dir / RECORD).is_file():
            return TrainState(cpu_threads=self.threads)
        saved = load_checkpoint(self.ckpt_dir, run_id=self.run_id, fingerprint=self.fingerprint)
        load_trainable(self.net, saved.params, self.ctx)
        load_optimizer(self.net, self.optimizer, saved.optimizer, self.ctx)
        self.scheduler.load_state_dict(saved.scheduler)
        state = TrainState.from_json(saved.state)
        state.resumed_from_step = state.step
        if self.threads is not None and state.cpu_threads and state.cpu_threads != self.threads:
            # The fair share (or TUNEGATE_THREADS) may differ now; the run's own count makes the
            # continuation bit-identical to an uninterrupted run, whatever else runs beside it.
            import torch

            log.info(
                "run %s resumes with the %d CPU threads it started with (this machine's share now: %d)",
                self.run_id,
                state.cpu_threads,
                self.threads,
            )
            torch.set_num_threads(state.cpu_threads)
            self.threads = state.cpu_threads
        return state

    # -- the loop -----------------------------------------------------------------------------------------
    def train(self) -> TrainResult:
        import torch

        sched, state = self.schedule, self.state
        if self.device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        with _Progress(self.run_id, sched.total_steps, state.step, self.progress) as bar:
            self.net.train()
            while state.step < sched.total_steps and not state.stopped_early:
                chunk = self._step_batches(state.step)
                if not chunk:  # grad_accum does not divide the epoch: start the next epoch
                    state.step = (state.step // sched.steps_per_epoch + 1) * sched.steps_per_epoch
                    continue
                loss = self.train_step(chunk)
                done = state.step >= sched.total_steps
                if state.step % sched.eval_every == 0 or done:
                    val = self.evaluate()
                    if val is not None:
                        self._track_best(val)
                        bar.update(val=f"{val:.4f}")
                if not done and not state.stopped_early and state.step % sched.ckpt_every == 0:
                    self.save_checkpoint()
                bar.update(completed=state.step, loss=f"{loss:.4f}")
                if self.on_step is not None:
                    self.on_step(state.step, loss)
        return self.finish()

    def _step_batches(self, step: int) -> list[list[int]]:
        """The micro-batches (example index lists) of one optimizer step, over all processes."""
        sched = self.schedule
        epoch, within = divmod(step, sched.steps_per_epoch)
        if self._epoch is None or self._epoch[0] != epoch:
            batches = micro_batches(
                self.data.enc_train.examples,
                batch_size=self.cfg.batch_size,
                seed=self.cfg.seed,
                epoch=epoch,
                kind=self.data.kind,
                group_by_length=sched.group_by_length,
            )
            self._epoch = (epoch, batches)
        return self._epoch[1][within * sched.per_step : (within + 1) * sched.per_step]

    def _collate(self, idx: list[int]) -> Batch:
        d = self.data
        ex = [d.enc_train.examples[i] for i in idx]
        return collate(ex, kind=d.kind, pad_id=d.pad_id, row_capacity=self.schedule.row_capacity)

    def _loss(self, batch: Batch) -> Any:
        return _loss_sum(self.net, batch, kind=self.data.kind, device=self.device, autocast=self.autocast)

    def train_step(self, chunk: list[list[int]]) -> float:
        """Forward/backward over this process's micro-batches, one optimizer step; returns the
        step's loss (mean per target token over all processes)."""
        import torch

        ctx, state, step = self.ctx, self.state, self.state.step
        # Dropout noise depends on the step (and the process) only.
        torch.manual_seed(self.cfg.seed * 100_003 + step + ctx.rank * 1_000_003)
        t0 = time.perf_counter()
        mine, slots = shard(chunk, ctx)
        batches = [self._collate(idx) for idx in mine]
        n_local = sum(b.targets for b in batches)
        n_targets = ctx.sum([n_local], self.device)[0] if ctx.active else n_local
        step_loss = 0.0
        for i in range(slots):
            with grad_sync(self.net, ctx, enabled=i == slots - 1):
                if i >= len(batches):  # this process's share ran out: a zero-weighted pass
                    (self._loss(self._collate(chunk[0])) * 0.0).backward()
                    continue
                loss = self._loss(batches[i]) / max(n_targets, 1)
                # DDP and FSDP average gradients over processes; x world makes it the step's sum.
                (loss * ctx.world if ctx.active else loss).backward()
                step_loss += float(loss.detach())
        n_tokens, n_padded = sum(b.tokens for b in batches), sum(b.padded for b in batches)
        if ctx.active:
            step_loss, n_tokens_f, n_padded_f = ctx.sum([step_loss, n_tokens, n_padded], self.device)
            n_tokens, n_padded = int(n_tokens_f), int(n_padded_f)
        if not math.isfinite(step_loss):
            raise StageError(
                f"training loss became {step_loss} at step {step + 1}",
                hint="lower the learning rate or use precision fp32",
            )
        entry: dict[str, Any] = {"step": step + 1, "loss": round(step_loss, 6)}
        if self.cfg.max_grad_norm is not None:
            # The pre-clip norm is logged: a spike is the first sign of a diverging run.
            norm = torch.nn.utils.clip_grad_norm_(self.params, self.cfg.max_grad_norm)
            full = getattr(norm, "full_tensor", None)  # FSDP: a DTensor (replicated value)
            entry["grad_norm"] = round(float(full() if full is not None else norm), 6)
        lr = float(self.scheduler.get_last_lr()[0])
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        state.train_time_s += time.perf_counter() - t0
        state.tokens += n_tokens
        state.padded += n_padded
        state.step = step + 1
        state.loss_curve.append({**entry, "lr": lr})
        return step_loss

    def evaluate(self) -> float | None:
        """Validation loss, batched and packed exactly like training (None without validation)."""
        enc_val = self.data.enc_val
        if enc_val is None or not enc_val.examples:
            return None
        return evaluate_loss(
            self.net,
            enc_val.examples,
            kind=self.data.kind,
            batch_size=self.cfg.batch_size,
            pad_id=self.data.pad_id,
            device=self.device,
            autocast=self.autocast,
            max_examples=self.cfg.max_eval_examples,
            row_capacity=self.schedule.row_capacity,
            ctx=self.ctx,
        )

    def _track_best(self, val: float) -> None:
        """Record the eval; keep the weights when it is the best so far; early stopping."""
        state, cfg = self.state, self.cfg
        state.eval_curve.append({"step": state.step, "val_loss": round(val, 6)})
        if state.best is None or val < state.best["val_loss"] - cfg.early_stopping_min_delta:
            # One file per best step: a crash between this save and the next checkpoint record
            # must not leave a best file that the resumed state does not name.
            name = f"best-{state.step}.safetensors"
            weights = trainable_state(self.net, self.ctx)  # collective
            digest = save_tensors(self.ckpt_dir / name, weights) if self.ctx.is_main else None
            state.best = {"step": state.step, "val_loss": val, "file": name, "sha256": digest}
            state.bad_evals = 0
            return
        state.bad_evals += 1
        patience = cfg.early_stopping_patience
        if patience is not None and state.bad_evals >= patience:
            state.stopped_early = True

    def save_checkpoint(self) -> None:
        """Tensors (safetensors) then the record that vouches for them. Gathering is collective;
        writing is rank 0's."""
        params = trainable_state(self.net, self.ctx)
        optim = optimizer_state(self.net, self.optimizer, self.ctx)
        if self.ctx.is_main:
            save_checkpoint(
                self.ckpt_dir,
                run_id=self.run_id,
                fingerprint=self.fingerprint,
                step=self.state.step,
                params=params,
                optimizer=optim,
                scheduler=self.scheduler.state_dict(),
                state=self.state.to_json(),
            )
        self.ctx.barrier()

    # -- the artifact ------------------------------------------------------------------------------------
    def finish(self) -> TrainResult:
        """Best weights back in, artifact + run.json + ledger event (rank 0), checkpoints removed."""
        ctx, state = self.ctx, self.state
        ctx.barrier()  # rank 0's best file is on disk before anyone reads it
        saved, best = state.best, None
        if saved is not None:
            best = {k: v for k, v in saved.items() if k not in ("file", "sha256")}  # for run.json
            sha = ctx.from_main(saved["sha256"])  # rank 0 computed it when it wrote the file
            load_trainable(self.net, load_tensors(self.ckpt_dir / saved["file"], sha), ctx)
        artifact = "model" if self.method == "full" else "adapter"
        save_kwargs: dict[str, Any] = {}
        if ctx.strategy == "fsdp":  # sharded weights are gathered (collectively) for rank 0
            save_kwargs["state_dict"] = (
                full_state(self.net) if self.method == "full" else trainable_state(self.net, ctx)
            )
        peak = _peak_memory(self.device)
        if ctx.active:
            peak["bytes"] = ctx.max(peak["bytes"], self.device)
            peak["per_process"] = True
        if not ctx.is_main:
            ctx.barrier()  # wait for rank 0 to write the artifact and the run record
            return TrainResult(self.run_id, self.run_dir, metrics={"steps": state.step}, rank=ctx.rank)
        artifact_digest = self._save_artifact(artifact, save_kwargs)
        run = self._run_record(artifact, artifact_digest, best, peak)
        # Ledger first, then run.json (what makes the run "finished"): a crash in between leaves an
        # unfinished run that resumes from its checkpoint, never a finished run the ledger never saw.
        text = pretty_json(run)
        self._ledger_event(run, artifact, artifact_digest, sha256_bytes(text.encode("utf-8")))
        atomic_write_text(self.run_dir / "run.json", text)
        shutil.rmtree(self.ckpt_dir, ignore_errors=True)
        metrics = {
            "final_loss": state.loss_curve[-1]["loss"] if state.loss_curve else None,
            "best_val_loss": best["val_loss"] if best else None,
            "steps": state.step,
            "tokens_per_s": run["tokens_per_s"],
            "padding_fraction": run["padding_fraction"],
            "peak_memory_bytes": peak["bytes"],
            "wall_time_s": run["wall_time_s"],
        }
        ctx.barrier()
        return TrainResult(run_id=self.run_id, run_dir=self.run_dir, metrics=metrics)

    def _save_artifact(self, artifact: str, save_kwargs: dict[str, Any]) -> str:
        model_obj = unwrap(self.net)
        model_obj.config.use_cache = True
        out_dir = self.run_dir / artifact
        if out_dir.exists():
            shutil.rmtree(out_dir)
        model_obj.save_pretrained(str(out_dir), **save_kwargs)
        self.data.tokenizer.save_pretrained(str(out_dir))
        write_base_record(out_dir, self.src, method=self.method)
        return digest_json(sha256_tree(out_dir))

    def _device_label(self) -> str:
        import torch

        if self.device.startswith("cuda"):
            return f"{self.device} ({torch.cuda.get_device_name()})"
        return self.device

    def _run_record(
        self, artifact: str, artifact_digest: str, best: dict[str, Any] | None, peak: dict[str, Any]
    ) -> dict[str, Any]:
        d, cfg, state, sched = self.data, self.cfg, self.state, self.schedule
        trainable, total_params = trainable_parameters(unwrap(self.net))  # DTensor.numel() is the full size
        seen = state.tokens + state.padded
        return {
            "run_id": self.run_id,
            "date": self.start.isoformat().replace("+00:00", "Z"),
            # who ran training: approval's separation of duties keeps them from approving alone
            "operator": operator_identity(),
            "method": self.method,
            "task": d.task,
            "model_kind": d.kind,
            "labels": d.labels,
            "seed": cfg.seed,
            "config": self.resolved,
            "config_digest": digest_json(self.resolved),
            "config_warnings": self.config_notes
            or config_warnings(cfg, method=self.method, n_train=len(d.train.records)),
            "fingerprint": self.fingerprint,
            "base_model": self.src.to_json(),
            "data": {
                "train": {
                    "digest": d.train.digest,
                    "records": len(d.train.records),
                    "examples": len(d.enc_train.examples),
                    "dropped_no_target": d.enc_train.dropped,
                    "truncated": d.enc_train.truncated,
                },
                "validation": (
                    {
                        "digest": d.val.digest,
                        "records": len(d.val.records),
                        "examples": len(d.enc_val.examples),
                    }
                    if d.val is not None and d.enc_val is not None
                    else None
                ),
                "holdout_manifest_digest": d.manifest_digest,
            },
            "versions": package_versions(),
            "git": git_info(),
            "device": self._device_label(),
            "device_setting": self.cfg0.device,
            "cpu_threads": self.threads,
            "precision": str(self.dtype).replace("torch.", ""),
            "quantization": self.quant.to_json() if self.quant is not None else None,
            **({"distributed": self.ctx.describe()} if self.ctx.active else {}),
            "batching": _batching_label(d.kind, sched.row_capacity),
            "steps": state.step,
            "total_steps_planned": sched.total_steps,
            "steps_per_epoch": sched.steps_per_epoch,
            "stopped_early": state.stopped_early,
            "best": best,
            "resumed_from_step": state.resumed_from_step,
            "loss_curve": state.loss_curve,
            "eval_curve": state.eval_curve,
            "tokens": state.tokens,
            "padding_fraction": (state.padded / seen) if seen else 0.0,
            "train_time_s": round(state.train_time_s, 3),
            "wall_time_s": round(time.perf_counter() - self.started, 3),
            "tokens_per_s": round(state.tokens / state.train_time_s, 2) if state.train_time_s > 0 else None,
            "peak_memory": peak,
            "trainable_params": trainable,
            "total_params": total_params,
            "artifact": artifact,
            "artifact_digest": artifact_digest,
        }

    def _ledger_event(
        self, run: dict[str, Any], artifact: str, artifact_digest: str, run_json_digest: str
    ) -> None:
        d, best = self.data, run["best"]
        append_event(
            self.workdir,
            "train",
            inputs={
                "train": d.train.digest,
                **({"validation": d.val.digest} if d.val is not None else {}),
                "holdout_manifest": d.manifest_digest,
                "base_model": self.src.digest,
            },
            outputs={"run_json": run_json_digest, artifact: artifact_digest},
            config_digest=run["config_digest"],
            details={
                "run_id": self.run_id,
                "method": self.method,
                "steps": self.state.step,
                "best_val_loss": best["val_loss"] if best else None,
            },
        )


def _batching_label(kind: str, row_capacity: int | None) -> str:
    if kind != "causal":
        return "length-grouped padding"
    if row_capacity == 1:
        return "one example per row, length-grouped batches"
    return f"packed rows of ~{row_capacity or 'all'} tokens, no cross-example attention"
