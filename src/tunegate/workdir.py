"""The workdir: the one place that knows its layout, how a run is named, and the writer lock.

::

    WORKDIR/
      policy/    policy.json (the pinned policy, canonical JSON) pin.json (its digest, source, trust root)
      data/      train.jsonl validation.jsonl holdout.jsonl holdout.manifest.json data_report.{json,md}
      runs/<run_id>/   run.json config.json adapter/|model/ evidence.json decision.json report.* approvals/
      baselines/<digest>/   cached baseline scores (base model + hold-out + eval config)
      audit/     ledger.jsonl checkpoints.jsonl
      pipeline/  state.json (digest-keyed stage records of a gate-run)
      drift/     drift reports
      logs/      library output (transformers, Prefect, ...) kept off the console
      cache/     per-example model outputs, lm-eval items, diagnostics (keyed by content digests)

Every other module asks this one for a path; none joins ``"runs"`` or ``"data"`` itself. Names
that come from a user (a run id, a registry name) are names: :func:`check_name` refuses path
separators, ``.``/``..`` and anything that could leave the folder it is joined onto.

A second tunegate process on the same workdir fails fast with a clear message instead of waiting
or interleaving writes; different workdirs never contend.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from pathlib import Path

from filelock import FileLock, Timeout

from tunegate.errors import InputError, LockError

LOCK_NAME = ".tunegate.lock"
SPLITS = ("train", "validation", "holdout")
MANIFEST_NAME = "holdout.manifest.json"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def check_name(name: str, what: str = "name") -> str:
    """Return ``name`` if it is a plain name (no separators, not ``.``/``..``); else ``InputError``."""
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name) or name in (".", ".."):
        raise InputError(
            f"{what} {name!r} is not a plain name: use letters, digits, '.', '_' or '-' "
            "(at most 128, starting with a letter or digit; no '/', '\\' or '..')"
        )
    return name


# -- the layout -----------------------------------------------------------------------------------


def data_dir(workdir: str | Path) -> Path:
    return Path(workdir) / "data"


def split_path(workdir: str | Path, split: str) -> Path:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; splits are {SPLITS}")
    return data_dir(workdir) / f"{split}.jsonl"


def manifest_path(workdir: str | Path) -> Path:
    return data_dir(workdir) / MANIFEST_NAME


def data_report_path(workdir: str | Path) -> Path:
    return data_dir(workdir) / "data_report.json"


def runs_dir(workdir: str | Path) -> Path:
    return Path(workdir) / "runs"


def run_dir(workdir: str | Path, run_id: str) -> Path:
    return runs_dir(workdir) / check_name(run_id, "run id")


def approvals_dir(workdir: str | Path, run_id: str) -> Path:
    return run_dir(workdir, run_id) / "approvals"


#: An approval envelope is staged as ``.<name>.pending`` beside its final name, then its ledger
#: ``sign`` event is appended, then it is renamed into place (see :mod:`tunegate.approval.recovery`).
PENDING_PREFIX, PENDING_SUFFIX = ".", ".pending"


def pending_path(final: str | Path) -> Path:
    """The staged (pending) name of the file ``final``: ``.<name>.pending`` in the same folder."""
    final = Path(final)
    return final.with_name(f"{PENDING_PREFIX}{final.name}{PENDING_SUFFIX}")


def pending_target(name: str) -> str | None:
    """The final name a staged file name stands for (``.X.pending`` -> ``X``), or ``None``."""
    if not (name.startswith(PENDING_PREFIX) and name.endswith(PENDING_SUFFIX)):
        return None
    final = name[len(PENDING_PREFIX) : -len(PENDING_SUFFIX)]
    return final if _NAME_RE.fullmatch(final) else None


def annex_dir(workdir: str | Path, run_id: str) -> Path:
    """Annex IV documents of a run written after it was signed (outside the signed set)."""
    return Path(workdir) / "annex_iv" / check_name(run_id, "run id")


def baselines_dir(workdir: str | Path) -> Path:
    return Path(workdir) / "baselines"


def audit_dir(workdir: str | Path) -> Path:
    return Path(workdir) / "audit"


def pipeline_dir(workdir: str | Path) -> Path:
    return Path(workdir) / "pipeline"


def drift_dir(workdir: str | Path) -> Path:
    return Path(workdir) / "drift"


def policy_dir(workdir: str | Path) -> Path:
    return Path(workdir) / "policy"


def logs_dir(workdir: str | Path) -> Path:
    return Path(workdir) / "logs"


def cache_dir(workdir: str | Path, kind: str) -> Path:
    """Derived, re-computable results keyed by content digests (``predictions``, ``regression``,
    ``intruder``, ``lm_eval``): deleting the folder only costs time."""
    return Path(workdir) / "cache" / check_name(kind, "cache kind")


# -- runs -----------------------------------------------------------------------------------------


def list_runs(workdir: str | Path, *, finished: bool = True) -> list[str]:
    """Run ids, oldest first (a run id starts with its UTC start time). ``finished``: has run.json."""
    rd = runs_dir(workdir)
    if not rd.is_dir():
        return []
    out = []
    for p in rd.iterdir():
        if p.is_symlink() or not p.is_dir() or not _NAME_RE.fullmatch(p.name):
            continue
        if finished and not (p / "run.json").is_file():
            continue
        out.append(p.name)
    return sorted(out)


def resolve_run(workdir: str | Path, run_id: str | None = None) -> str:
    """The run to act on: ``run_id`` (a plain name of an existing, finished run), or else the
    newest finished run. Every command (evaluate, decide, report, sign, verify, promote, merge)
    resolves its ``--run`` here, so they all agree on which run "the run" is."""
    found = list_runs(workdir)
    if run_id is not None:
        check_name(run_id, "run id")
        if run_id not in found:
            raise InputError(
                f"run {run_id!r} not found (no finished run with this id); runs here: "
                f"{', '.join(found) or 'none'}",
                path=runs_dir(workdir),
            )
        return run_id
    if not found:
        raise InputError(
            "no finished training run found", path=runs_dir(workdir), hint="run `tunegate train` first"
        )
    return found[-1]


# -- the writer lock ------------------------------------------------------------------------------


@contextlib.contextmanager
def workdir_lock(workdir: str | Path, *, stage: str, timeout: float = 0.0) -> Iterator[None]:
    """Hold the workdir's writer lock for one stage; fail fast (``LockError``) when it is taken."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(workdir / LOCK_NAME), timeout=timeout)
    try:
        lock.acquire()
    except Timeout:
        raise LockError(
            f"{workdir} is locked by another tunegate process; '{stage}' did not start",
            hint="wait for the other run to finish, or use a different workdir",
        ) from None
    try:
        (workdir / ".tunegate.owner").write_text(f"{os.getpid()} {stage}\n", encoding="utf-8")
        yield
    finally:
        lock.release()
