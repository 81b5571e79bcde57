"""Roll-forward recovery of ``sign``'s two-step write (issue 10: no crash leaves a file the ledger
does not know).

``sign`` writes in three steps, each durable before the next:

1. *stage*: the envelope is written (``O_EXCL``, never through a link) and fsynced as
   ``runs/<id>/approvals/.<name>.pending``; no tool counts a staged file as an approval;
2. *ledger*: the ``sign`` event is appended; its ``outputs`` name ``runs/<id>/approvals/<name>``
   and the sha256 of the staged bytes. This append is the commit point;
3. *publish*: the staged file is renamed to ``<name>``.

A crash leaves at most one staged file. :func:`recover_approvals` runs at the start of every
command that reads approvals (sign, verify, promote, report, annex-iv, ``audit verify``, the
pipeline's approval wait), under the approvals folder's ``.sign.lock`` (so never beside a
running ``sign``), and only on a ledger that verifies (after a torn tail, ``audit repair``
first). For each staged file it either

* **completes** it: renames it to ``<name>``, only when a ``sign`` event of the run's *current*
  approval round names exactly that file with exactly the staged file's sha256, and ``<name>``
  does not exist yet; or
* **discards** it (deletes it): in every other case: no such event (the crash came before the
  commit point, or the file was planted), a digest that differs from the ledgered one, an event
  of an earlier round (a replayed old approval), a final name that already exists, or a staged
  entry that is a symbolic link (the link is removed; its target is never read or moved).

Either way one ``recover`` ledger event records what was done (file, sha256, reason). Recovery
never creates bytes the ledger does not name: a completed envelope is byte-for-byte the one the
``sign`` event committed, which is exactly what ``audit verify`` expects to find.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from tunegate import ledger
from tunegate.approval.artifacts import refuse_links
from tunegate.approval.checkpoint import check_ledger, read_ledger
from tunegate.errors import IntegrityError, LockError
from tunegate.provenance import fault_point, fsync_dir
from tunegate.workdir import approvals_dir, pending_path, pending_target

RECOVER_STAGE = "recover"
SIGN_LOCK = ".sign.lock"

#: Ledger stages after which the approvals of a run start afresh: a re-rendered report changes
#: signed bytes (older approvals cannot verify any more), and a promotion consumes them.
ROUND_BOUNDARIES = ("report", "promote")


def ledgered_envelopes(entries: list[dict[str, Any]], run_id: str) -> dict[str, tuple[str, int]]:
    """WORKDIR-relative envelope path -> (sha256, ledger seq) for the run's current approval round:
    ``sign`` events after the last ``report`` or ``promote`` event of the run."""
    out: dict[str, tuple[str, int]] = {}
    for e in entries:
        d = e.get("details") or {}
        if d.get("run_id") != run_id:
            continue
        if e.get("stage") in ROUND_BOUNDARIES:
            out.clear()
        elif e.get("stage") == "sign":
            for rel, digest in (e.get("outputs") or {}).items():
                out[str(rel)] = (str(digest), int(e.get("seq") or 0))
    return out


@dataclass(frozen=True)
class Recovered:
    """What recovery did with one staged file."""

    file: str  # WORKDIR-relative final name of the envelope
    action: str  # "completed" or "discarded"
    sha256: str | None  # of the staged bytes (None for a link, which is never read)
    reason: str

    def message(self) -> str:
        return f"recovery {self.action} staged approval {self.file}: {self.reason}"


def write_pending(final: Path, data: bytes) -> Path:
    """Stage ``data`` as the pending file of ``final`` (created exclusively, never through a
    link, fsynced, read-only) and return its path. Fault point ``pending:<name>:mid-write``."""
    staged = pending_path(final)
    fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o444)
    try:
        half = data[: len(data) // 2]
        fault_point(f"pending:{final.name}:mid-write", before_exit=lambda: os.write(fd, half))
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        staged.unlink(missing_ok=True)
        raise
    os.close(fd)
    fsync_dir(final.parent)
    return staged


def publish_pending(staged: Path, final: Path) -> None:
    """Rename a staged file into place (after its ledger event). Fault points
    ``pending:<name>:before-rename`` and ``pending:<name>:after-rename``."""
    fault_point(f"pending:{final.name}:before-rename")
    if os.path.lexists(final):
        raise IntegrityError(f"{final} appeared while it was being signed; the ledgered copy is {staged}")
    os.rename(staged, final)
    fsync_dir(final.parent)
    fault_point(f"pending:{final.name}:after-rename")


def _staged(adir: Path) -> list[Path]:
    return sorted(p for p in adir.iterdir() if pending_target(p.name) is not None)


def recover_approvals(workdir: str | Path, run_id: str, *, locked: bool = False) -> list[Recovered]:
    """Complete or discard the run's staged approval envelopes (see the module docstring).

    ``locked``: the caller already holds ``approvals/.sign.lock`` (``sign`` itself). Returns what
    was done (empty, and nothing is read or locked, when no staged file exists).
    """
    wd = Path(workdir)
    adir = approvals_dir(wd, run_id)
    try:  # a linked run or approvals folder is refused by verify; recovery never acts through it
        refuse_links(wd, adir.relative_to(wd).as_posix())
    except IntegrityError:
        return []
    if not adir.is_dir() or not _staged(adir):
        return []
    if locked:
        return _recover_locked(wd, run_id, adir)
    try:
        with FileLock(str(adir / SIGN_LOCK), timeout=60):
            return _recover_locked(wd, run_id, adir)
    except Timeout:
        raise LockError(f"{adir}: a `tunegate sign` holds the approvals lock") from None


def _recover_locked(wd: Path, run_id: str, adir: Path) -> list[Recovered]:
    staged = _staged(adir)
    if not staged or not check_ledger(wd).ok:
        # a torn tail or a broken chain: every command refuses with its own message; recovery
        # waits for a ledger that verifies (`audit repair` removes an unacknowledged torn tail)
        return []
    entries = read_ledger(wd)
    current = ledgered_envelopes(entries, run_id)
    earlier = {
        (str(rel), str(digest))
        for e in entries
        if e.get("stage") == "sign" and (e.get("details") or {}).get("run_id") == run_id
        for rel, digest in (e.get("outputs") or {}).items()
    }
    done: list[Recovered] = []
    for p in staged:
        final = adir / str(pending_target(p.name))
        rel = final.relative_to(wd).as_posix()
        if p.is_symlink():
            p.unlink()
            why = "the staged entry is a symbolic link (not followed)"
            done.append(Recovered(rel, "discarded", None, why))
            continue
        if not p.is_file():
            continue  # a folder or a special file: verify refuses it as an unexpected entry
        done.append(_settle(p, final, rel, current, earlier))
    if done:
        ledger.append_event(
            wd,
            RECOVER_STAGE,
            details={
                "run_id": run_id,
                "approvals": [
                    {"file": r.file, "action": r.action, "sha256": r.sha256, "reason": r.reason} for r in done
                ],
            },
        )
    return done


def _settle(
    p: Path, final: Path, rel: str, current: dict[str, tuple[str, int]], earlier: set[tuple[str, str]]
) -> Recovered:
    """Complete (rename into place) or discard (delete) one staged regular file."""
    fd = os.open(p, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        st = os.fstat(fd)
        h = hashlib.sha256()
        while chunk := os.read(fd, 1 << 20):
            h.update(chunk)
        digest = h.hexdigest()
        want = current.get(rel)
        reason: str | None = None
        if want is None:
            reason = (
                "named only by a sign event of an earlier approval round (a replayed approval)"
                if (rel, digest) in earlier
                else "no sign event names it: the signature was never recorded (or the file was planted)"
            )
        elif want[0] != digest:
            reason = f"its sha256 {digest[:12]}… is not the {want[0][:12]}… ledgered in entry {want[1]}"
        elif os.path.lexists(final):
            reason = "the envelope is already in place"
        if reason is None and want is not None:
            os.rename(p, final)
            fsync_dir(final.parent)
            now = os.lstat(final)
            if (now.st_ino, now.st_dev) != (st.st_ino, st.st_dev):
                raise IntegrityError(f"{p}: was swapped while it was being recovered")
            return Recovered(rel, "completed", digest, f"the sign event in ledger entry {want[1]} names it")
    finally:
        os.close(fd)
    p.unlink(missing_ok=True)
    return Recovered(rel, "discarded", digest, str(reason))


def tell(done: list[Recovered]) -> list[Recovered]:
    """Print what recovery did on the user's console (stderr) as ``note:`` lines; return ``done``."""
    if done:
        from tunegate.console import user_stream

        out = user_stream()
        for r in done:
            out.write(f"note: {r.message()}\n")
        out.flush()
    return done


def staged_notes(workdir: str | Path, run_id: str) -> list[str]:
    """Staged envelopes still present (recovery waits for a ledger that verifies)."""
    adir = approvals_dir(workdir, run_id)
    try:
        refuse_links(Path(workdir), adir.relative_to(Path(workdir)).as_posix())
    except IntegrityError:
        return []
    if not adir.is_dir():
        return []
    return [
        f"{p}: a staged approval awaits recovery (completed or discarded by the next command once the "
        "ledger verifies)"
        for p in _staged(adir)
        if p.is_file() and not p.is_symlink()
    ]


__all__ = ["Recovered", "publish_pending", "recover_approvals", "staged_notes", "tell", "write_pending"]
