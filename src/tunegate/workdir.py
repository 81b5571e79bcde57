"""The workdir: its layout, and the one-writer lock every stage takes.

::

    WORKDIR/
      data/      train.jsonl validation.jsonl holdout.jsonl holdout.manifest.json data_report.{json,md}
      runs/<run_id>/   run.json config.json adapter/|model/ evidence.json decision.json report.* approvals/
      baselines/<digest>/   cached baseline scores (base model + hold-out + eval config)
      audit/     ledger.jsonl checkpoints.jsonl
      drift/     drift reports

A second tunegate process on the same workdir fails fast with a clear message instead of waiting
or interleaving writes; different workdirs never contend.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from filelock import FileLock, Timeout

from tunegate.errors import LockError

LOCK_NAME = ".tunegate.lock"


def data_dir(workdir: str | Path) -> Path:
    return Path(workdir) / "data"


def runs_dir(workdir: str | Path) -> Path:
    return Path(workdir) / "runs"


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
