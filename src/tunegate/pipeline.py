"""The whole gate as resumable stages: prepare -> baseline -> train -> evaluate -> decide -> report
-> approval -> promote. Prefect composes these in ``flows/gate_run.py``; this module holds the
logic and has no Prefect import.

Resumability: each stage is keyed by a digest of its inputs (file digests, config, policy) and
records the sha256 of every output it wrote in ``WORKDIR/pipeline/state.json`` only after it
finished. A re-run recomputes the input digest, re-hashes the recorded outputs, and skips the stage
when both match; otherwise it runs the stage again. Every artifact is written atomically (temp file
+ rename) and training resumes from its last checkpoint, so a crash mid-stage, SIGKILL included,
leaves no half-written artifact and a re-run ends at the same final digests.
"""

from __future__ import annotations

import _thread
import contextlib
import json
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import FrameType
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from tunegate.errors import StageError
from tunegate.provenance import atomic_write_json, digest_json, sha256_file, sha256_tree
from tunegate.resources import resolve_device
from tunegate.training.train import operator_identity  # noqa: F401  (the one definition; re-exported)
from tunegate.workdir import data_dir, manifest_path, runs_dir
from tunegate.yamlio import read_yaml_mapping, validate_mapping

STATE_REL = Path("pipeline") / "state.json"
STAGES = ("prepare", "baseline", "train", "evaluate", "decide", "report", "approval", "promote")


class GateRunConfig(BaseModel):
    """One typed config for the whole gate (shown as a form in the Prefect UI)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    data: str = Field(..., description="Input data: .jsonl/.json/.csv/.parquet or a datasets folder.")
    task: Literal["classification", "instruction", "chat"] = Field(..., description="Task kind.")
    workdir: str = Field(..., description="Where every artifact of this gate run is written.")
    model: str = Field(..., description="Base model: a local path (offline) or a cached model id.")
    method: Literal["full", "lora", "qlora", "dora"] = Field("lora", description="Fine-tuning method.")
    fields: dict[str, str] = Field(default_factory=dict, description="Field mapping NAME -> input column.")
    policy: str | None = Field(None, description="Gate policy YAML; null = gates/default.yaml.")
    train_config: str | None = Field(None, description="Run-config YAML for training (gates/training/).")
    train_overrides: list[str] = Field(default_factory=list, description="key=value training overrides.")
    registry: str | None = Field(None, description="Registry folder to promote into; null = no promotion.")
    approvers_dir: str | None = Field(None, description="Trusted reviewer keys; null = the policy's.")
    approval_timeout_s: float = Field(
        0, ge=0, description="How long to wait for reviewers' signatures; 0 = check once and stop."
    )
    approval_poll_s: float = Field(10, gt=0, description="How often to look for new signatures.")
    name: str = Field("tunegate-model", description="Registry name of the promoted adapter.")
    device: str = Field(
        "auto",
        description="auto | cpu | cuda | cuda:N: where training, baseline and evaluation run (auto = CUDA).",
    )

    def digest(self) -> str:
        return digest_json(self.model_dump(mode="json"))


def load_gate_run_config(path: str | Path, overrides: Mapping[str, Any] | None = None) -> GateRunConfig:
    """Load a gate-run YAML; relative paths in it are resolved against the YAML's folder."""
    p = Path(path)
    data = read_yaml_mapping(p, what="gate-run config", hint="see gates/demo-run.yaml, or `tunegate init`")
    data = {**data, **(overrides or {})}
    for key in ("data", "workdir", "policy", "train_config", "registry", "approvers_dir", "model"):
        v = data.get(key)
        if not isinstance(v, str) or not v or Path(v).is_absolute():
            continue
        # every path is relative to the YAML (also one that does not exist yet, like the workdir);
        # `model` only when such a folder exists (else it may be a cached model id)
        if key != "model" or (p.parent / v).exists():
            data[key] = str((p.parent / v).resolve())
    return validate_mapping(GateRunConfig, data, source=str(p), what="gate-run config", show_input=True)


# -- stage bookkeeping ---------------------------------------------------------------------------


def _state_path(workdir: Path) -> Path:
    return workdir / STATE_REL


def read_state(workdir: str | Path) -> dict[str, Any]:
    path = _state_path(Path(workdir))
    if not path.is_file():
        return {}
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except json.JSONDecodeError:
        return {}  # a torn state file only costs a re-run: every stage re-verifies its outputs


def _digest_outputs(workdir: Path, outputs: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for rel in outputs:
        p = workdir / rel
        if p.is_dir():
            for sub, digest in sha256_tree(p).items():
                out[f"{rel}/{sub}"] = digest
        elif p.is_file():
            out[rel] = sha256_file(p)
        else:
            raise StageError(f"stage output {p} is missing after the stage finished")
    return out


def _outputs_verify(workdir: Path, recorded: Mapping[str, str]) -> bool:
    for rel, digest in recorded.items():
        p = workdir / rel
        if not p.is_file() or sha256_file(p) != digest:
            return False
    return True


def run_stage(
    workdir: str | Path,
    name: str,
    inputs: Mapping[str, Any],
    fn: Callable[[], tuple[list[str], dict[str, Any]]],
) -> dict[str, Any]:
    """Run ``fn`` unless a completed run with the same input digest verifies.

    ``fn`` returns (output paths relative to the workdir, a small JSON-able result). The stage's
    record is written only after ``fn`` returned, so a crash never marks a stage complete.
    """
    wd = Path(workdir)
    key = digest_json({"stage": name, "inputs": dict(inputs)})
    state = read_state(wd)
    prev = state.get(name)
    if prev and prev.get("inputs_digest") == key and _outputs_verify(wd, prev.get("outputs", {})):
        return {**prev.get("result", {}), "skipped": True}
    _LAST_STAGE.update(workdir=str(wd), stage=name, finished=False)
    rel_outputs, result = fn()
    _LAST_STAGE["finished"] = True
    record = {"inputs_digest": key, "outputs": _digest_outputs(wd, rel_outputs), "result": result}
    state = read_state(wd)  # re-read: stages of one run are sequential, but keep others' entries
    state[name] = record
    # stages later in the chain depend on this one: drop their records so they re-verify/re-run
    for later in STAGES[STAGES.index(name) + 1 :] if name in STAGES else ():
        state.pop(later, None)
    atomic_write_json(_state_path(wd), state)
    return {**result, "skipped": False}


def final_digests(workdir: str | Path) -> dict[str, str]:
    """Every recorded output digest of every completed stage (for comparing two runs)."""
    out: dict[str, str] = {}
    for stage, rec in sorted(read_state(workdir).items()):
        for rel, digest in rec.get("outputs", {}).items():
            out[f"{stage}:{rel}"] = digest
    return out


def file_digest_or_none(path: str | Path | None) -> str | None:
    if path is None:
        return None
    p = Path(path)
    if p.is_file():
        return sha256_file(p)
    if p.is_dir():
        return digest_json(sha256_tree(p))
    return None


# -- the stages (each a plain function; flows/gate_run.py wraps them in Prefect tasks) ----------


def _policy(cfg: GateRunConfig) -> Any:
    """The policy of this gate run: the one pinned in the workdir (a different ``policy`` in the
    config is refused with both digests named; see :mod:`tunegate.policy.pinned`)."""
    from tunegate.policy.pinned import resolve_policy

    return resolve_policy(cfg.workdir, cfg.policy)


def _checkpoint(workdir: Path, stage: str) -> None:
    """Sign the ledger head after a stage (tamper evidence for truncation)."""
    from tunegate.approval.checkpoint import write_checkpoint

    write_checkpoint(workdir, stage)


def stage_prepare(cfg: GateRunConfig) -> dict[str, Any]:
    from tunegate.data.prepare import prepare_data

    wd = Path(cfg.workdir)
    policy = _policy(cfg)
    inputs = {
        "data": file_digest_or_none(cfg.data),
        "task": cfg.task,
        "fields": dict(sorted(cfg.fields.items())),
        "policy": policy.digest(),
    }

    def run() -> tuple[list[str], dict[str, Any]]:
        res = prepare_data(cfg.data, cfg.task, wd, policy=policy, fields=cfg.fields or None)
        _checkpoint(wd, "prepare")
        return ["data"], {"passed": res.passed, "reasons": res.reasons}

    return run_stage(wd, "prepare", inputs, run)


def _data_inputs(wd: Path) -> dict[str, str | None]:
    d = data_dir(wd)
    return {
        n: file_digest_or_none(d / n) for n in ("train.jsonl", "validation.jsonl", "holdout.manifest.json")
    }


def stage_train(cfg: GateRunConfig) -> dict[str, Any]:
    from tunegate.training.config import load_run_config
    from tunegate.training.train import train_run

    wd = Path(cfg.workdir)
    inputs = {
        "data": _data_inputs(wd),
        "model": file_digest_or_none(cfg.model) or cfg.model,
        "method": cfg.method,
        "train_config": file_digest_or_none(cfg.train_config),
        "overrides": list(cfg.train_overrides),
    }

    def run() -> tuple[list[str], dict[str, Any]]:
        tc = load_run_config(cfg.train_config, cfg.train_overrides)
        # the gate-run's device, unless the run config names its own
        if cfg.device != "auto" and tc.device == "auto":
            tc = tc.model_copy(update={"device": cfg.device})
        # resume="auto": a crashed run with the same fingerprint continues from its last checkpoint
        res = train_run(wd, model=cfg.model, method=cfg.method, config=tc, progress=False, resume="auto")
        _checkpoint(wd, "train")
        rel = res.run_dir.relative_to(wd).as_posix()
        keep = [
            f"{rel}/{n}"
            for n in ("run.json", "config.json", "adapter", "model")
            if (res.run_dir / n).exists()
        ]
        return keep, {"run_id": res.run_id}

    return run_stage(wd, "train", inputs, run)


def stage_evaluate(cfg: GateRunConfig, run_id: str) -> dict[str, Any]:
    from tunegate.evaluation.run import evaluate_run

    wd = Path(cfg.workdir)
    policy = _policy(cfg)
    run_dir = runs_dir(wd) / run_id
    inputs = {
        "run": file_digest_or_none(run_dir / "run.json"),
        "holdout": file_digest_or_none(manifest_path(wd)),
        "policy": policy.digest(),
    }

    if cfg.registry is not None:  # also compare with the version in production
        inputs["registry"] = str(cfg.registry)

    def run() -> tuple[list[str], dict[str, Any]]:
        evaluate_run(
            wd, run_id=run_id, policy=policy, device=resolve_device(cfg.device), registry=cfg.registry
        )
        _checkpoint(wd, "evaluate")
        return [f"runs/{run_id}/evidence.json"], {"run_id": run_id}

    return run_stage(wd, "evaluate", inputs, run)


def stage_decide(cfg: GateRunConfig, run_id: str) -> dict[str, Any]:
    from tunegate.evaluation.run import decide_run

    wd = Path(cfg.workdir)
    policy = _policy(cfg)
    inputs = {
        "evidence": file_digest_or_none(runs_dir(wd) / run_id / "evidence.json"),
        "policy": policy.digest(),
    }

    def run() -> tuple[list[str], dict[str, Any]]:
        decision = decide_run(wd, run_id=run_id, policy=policy)
        _checkpoint(wd, "decide")
        return [f"runs/{run_id}/decision.json"], {
            "passed": bool(decision.passed),
            "reasons": list(decision.reasons),
        }

    return run_stage(wd, "decide", inputs, run)


def stage_report(cfg: GateRunConfig, run_id: str) -> dict[str, Any]:
    from tunegate.approval.report import write_report

    wd = Path(cfg.workdir)
    policy = _policy(cfg)
    rd = runs_dir(wd) / run_id
    inputs = {
        "decision": file_digest_or_none(rd / "decision.json"),
        "evidence": file_digest_or_none(rd / "evidence.json"),
        "policy": policy.digest(),
    }

    if cfg.registry is not None:  # the report compares the run with the version in production
        inputs["registry"] = str(cfg.registry)

    def run() -> tuple[list[str], dict[str, Any]]:
        paths = write_report(wd, policy=policy, run_id=run_id, registry=cfg.registry)
        rels = sorted(Path(p).resolve().relative_to(wd.resolve()).as_posix() for p in paths.values())
        return rels, {"files": rels}

    return run_stage(wd, "report", inputs, run)


def approval_status(
    workdir: str | Path, run_id: str, *, policy: Any, approvers_dir: str | Path | None = None
) -> dict[str, Any]:
    """Verify the run's signed approvals now (never cached: signatures arrive from people)."""
    from tunegate.approval.verify import verify_run

    res = verify_run(workdir, policy=policy, run_id=run_id, approvers_dir=approvers_dir)
    return {
        "approved": bool(res.approved),
        "rejected": any(a.decision == "reject" for a in res.approvals),
        "reasons": list(res.reasons),
        "approvals": len(res.approvals),
    }


def wait_for_approval(
    workdir: str | Path,
    run_id: str,
    *,
    policy: Any,
    approvers_dir: str | Path | None = None,
    timeout_s: float = 0.0,
    poll_s: float = 10.0,
    on_wait: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """The one approval wait: re-verify every ``poll_s`` until approved, rejected or ``timeout_s``.

    Reviewers only write signature files (``tunegate sign``); nobody has to resume anything.
    ``timeout_s=0`` checks once. ``on_wait`` gets each pending status (for a log line).
    """
    deadline = time.monotonic() + timeout_s
    while True:
        status = approval_status(workdir, run_id, policy=policy, approvers_dir=approvers_dir)
        if status["approved"] or status["rejected"] or time.monotonic() >= deadline:
            return status
        if on_wait is not None:
            on_wait(status)
        time.sleep(min(poll_s, max(0.0, deadline - time.monotonic())))


def promote_run(
    workdir: str | Path,
    registry: str | Path,
    run_id: str,
    *,
    policy: Any,
    approvers_dir: str | Path | None = None,
    name: str | None = None,
) -> dict[str, Any]:
    """The one promote path (the gate-run and the approve flow both call it)."""
    from tunegate.approval.promote import promote

    entry = promote(workdir, registry, policy=policy, run_id=run_id, approvers_dir=approvers_dir, name=name)
    return {
        "promoted": True,
        "name": entry.name,
        "version": entry.version,
        "path": str(entry.path),
        "approval_digest": entry.approval_digest,
    }


def stage_promote(cfg: GateRunConfig, run_id: str) -> dict[str, Any]:
    if cfg.registry is None:
        return {"promoted": False, "reason": "no registry configured"}
    return promote_run(
        cfg.workdir,
        cfg.registry,
        run_id,
        policy=_policy(cfg),
        approvers_dir=cfg.approvers_dir,
        name=cfg.name,
    )


def stage_baseline(cfg: GateRunConfig) -> dict[str, Any]:
    """Score the base model on the frozen hold-out before training (cached for evaluation)."""
    from tunegate.evaluation.run import score_baseline

    wd = Path(cfg.workdir)
    policy = _policy(cfg)
    inputs = {
        "holdout": file_digest_or_none(manifest_path(wd)),
        "model": file_digest_or_none(cfg.model) or cfg.model,
        "policy": policy.digest(),
    }

    def run() -> tuple[list[str], dict[str, Any]]:
        res = score_baseline(wd, model=cfg.model, policy=policy, device=resolve_device(cfg.device))
        return [f"{res['baseline_dir']}/predictions.json"], res

    return run_stage(wd, "baseline", inputs, run)


# -- stopping on a signal ------------------------------------------------------------------------

#: The stage this process started last: {"workdir", "stage", "finished"} (for "where it stopped").
_LAST_STAGE: dict[str, Any] = {}
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


class GateRunStopped(BaseException):
    """A gate-run was stopped by a signal (SIGTERM, SIGHUP).

    A ``BaseException`` like ``KeyboardInterrupt``: no ``except Exception`` in a stage may swallow
    it, so every ``with`` block (the workdir lock, temp files) unwinds on the way out.
    """

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.signame = signal.Signals(signum).name
        super().__init__(f"stopped by {self.signame}")


def last_stage() -> dict[str, Any]:
    """The stage this process started last (``workdir``, ``stage``, ``finished``), or ``{}``."""
    return dict(_LAST_STAGE)


class _StopRequest:
    """A stop asked for by a signal, re-delivered to the main thread until the run has unwound.

    A Python signal handler's exception can be lost: when the signal lands while the main thread
    runs a finalizer (``__del__`` of an asyncio transport, seen with Prefect), Python prints
    "Exception ignored" and the run goes on (a stopped demo took 160 s more, until SIGKILL). So
    the first signal also starts a thread that re-raises it in the main thread every second
    (``_thread.interrupt_main``) until :func:`stop_on_signals` exits.
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self.active = threading.Event()
        self.thread: threading.Thread | None = None

    def note(self, signum: int) -> None:
        if self.signum is not None or not self.active.is_set():
            return
        self.signum = signum
        self.thread = threading.Thread(target=self._redeliver, name="tunegate-stop", daemon=True)
        self.thread.start()

    def _redeliver(self) -> None:
        while not _STOP_DONE.wait(1.0):
            if self.signum is not None:
                _thread.interrupt_main(signal.Signals(self.signum))  # no-op once SIG_DFL is back


_STOP = _StopRequest()
_STOP_DONE = threading.Event()


def note_stop_request(signum: int) -> None:
    """Record that a stop signal arrived (for handlers other than ours, e.g. Prefect's bridge)."""
    _STOP.note(signum)


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """Turn SIGTERM/SIGHUP into :class:`GateRunStopped` in the main thread while the block runs.

    Prefect's flow engine installs its own SIGTERM handler while a flow runs; it marks the flow run
    crashed and then re-delivers the signal to the handler that was there before, which is this
    one. Without it the re-delivered signal kills the process outright: ``atexit`` never runs and
    Prefect's temporary API server (a uvicorn child) is left behind as an orphan. A signal whose
    exception was swallowed is raised again every second (see :class:`_StopRequest`).
    """

    def handler(signum: int, frame: FrameType | None) -> None:
        _STOP.note(signum)
        raise GateRunStopped(signum)

    # a signal the caller ignores stays ignored (``nohup tunegate run ...`` must survive a hangup)
    previous = {
        sig: signal.signal(sig, handler) for sig in STOP_SIGNALS if signal.getsignal(sig) != signal.SIG_IGN
    }
    _STOP.signum, _STOP.thread = None, None
    _STOP_DONE.clear()
    _STOP.active.set()
    try:
        yield
    finally:
        _STOP.active.clear()
        _STOP_DONE.set()
        for sig, old in previous.items():
            signal.signal(sig, old)


def _child_pids(pid: int) -> list[int]:
    """Every live descendant of ``pid`` (Linux ``/proc``; elsewhere an empty list)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # the process ended while we looked
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out: list[int] = []
    todo = list(children.get(pid, []))
    while todo:
        child = todo.pop()
        out.append(child)
        todo.extend(children.get(child, []))
    return out


def _alive(pid: int) -> bool:
    """Running (a zombie has ended: its parent reaps it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def end_child_processes(grace_s: float = 5.0) -> list[int]:
    """SIGTERM every descendant of this process, SIGKILL those still alive after ``grace_s``.

    Returns the pids that were signalled. Used when a run is stopped: Prefect's temporary API
    server, dataloader workers or an lm-eval subprocess must not outlive the run.
    """
    pids = _child_pids(os.getpid())
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    alive = [p for p in pids if _alive(p)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)
        alive = [p for p in alive if _alive(p)]
    for pid in alive:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    return pids
