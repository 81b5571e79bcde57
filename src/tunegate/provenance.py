"""Digests, canonical JSON, atomic writes, git and package provenance.

Every stage's JSON output goes through :func:`canonical_json` so that the same inputs give
byte-identical files, and through :func:`atomic_write_bytes` so that a failed or killed run
never leaves a half-written artifact behind.
"""

from __future__ import annotations

import contextlib
import errno
import fnmatch
import hashlib
import importlib.metadata
import json
import math
import os
import subprocess
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

CHUNK = 1 << 20

#: Fault injection for crash tests (no-op unless set): ``TUNEGATE_FAULT_AT=PATTERN[@N]`` ends the
#: process with exit status 137 (as SIGKILL would) the N-th time (default 1st) a named write point
#: matching the fnmatch PATTERN is reached; ``TUNEGATE_FAULT_LOG=FILE`` appends every point reached.
FAULT_AT_ENV = "TUNEGATE_FAULT_AT"
FAULT_LOG_ENV = "TUNEGATE_FAULT_LOG"
_fault_hits = 0


def fault_point(name: str, before_exit: Callable[[], object] | None = None) -> None:
    """A named crash point inside a write (see ``FAULT_AT_ENV``); ``before_exit`` runs just before
    the process dies (e.g. to leave half a line behind, as a crash in the middle of a write would)."""
    global _fault_hits
    log = os.environ.get(FAULT_LOG_ENV)
    if log:
        with open(log, "a", encoding="utf-8") as fh:
            fh.write(name + "\n")
    spec = os.environ.get(FAULT_AT_ENV)
    if not spec:
        return
    pattern, _, nth = spec.partition("@")
    if not fnmatch.fnmatchcase(name, pattern):
        return
    _fault_hits += 1
    if _fault_hits == (int(nth) if nth.isdigit() else 1):
        if before_exit is not None:
            before_exit()
        os._exit(137)


#: Packages whose versions are recorded in every stage's provenance block.
TRACKED_PACKAGES = (
    "tunegate",
    "torch",
    "transformers",
    "peft",
    "bitsandbytes",
    "accelerate",
    "presidio-analyzer",
    "presidio-anonymizer",
    "spacy",
    "great-expectations",
    "prefect",
    "lm-eval",
    "bert-score",
    "rouge-score",
    "scikit-learn",
)


def _check_finite(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        raise ValueError(f"non-finite float {obj!r} cannot be written to canonical JSON")
    if isinstance(obj, dict):
        for v in obj.values():
            _check_finite(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            _check_finite(v)
    return obj


def canonical_json(obj: Any) -> str:
    """Deterministic JSON: sorted keys, no insignificant whitespace, UTF-8, finite floats only."""
    _check_finite(obj)
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def pretty_json(obj: Any) -> str:
    """Deterministic, human-readable JSON (sorted keys, 2-space indent, trailing newline)."""
    _check_finite(obj)
    return json.dumps(obj, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_text(text: str) -> str:
    return sha256_bytes(text.encode("utf-8"))


def digest_json(obj: Any) -> str:
    """sha256 of the canonical JSON form of ``obj``."""
    return sha256_text(canonical_json(obj))


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def sha256_tree(root: str | Path, patterns: Iterable[str] = ("*",)) -> dict[str, str]:
    """Relative path -> sha256 for every regular file under ``root`` matching a pattern (sorted)."""
    root = Path(root)
    found: set[Path] = set()
    for pat in patterns:
        found.update(p for p in root.rglob(pat) if p.is_file())
    return {p.relative_to(root).as_posix(): sha256_file(p) for p in sorted(found)}


def fsync_dir(path: str | Path) -> None:
    """Make a rename or a new file in ``path`` durable (best effort: not every OS allows it)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temp path beside ``path``; rename it over ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a directory, expected a file path", str(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb") as fh:
            os.fsync(fh.fileno())
        fault_point(f"atomic:{path.name}:before-replace")
        os.replace(tmp_path, path)
        fsync_dir(path.parent)
        fault_point(f"atomic:{path.name}:after-replace")
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    """Write pretty, deterministic JSON atomically."""
    return atomic_write_text(path, pretty_json(obj))


def git_info(cwd: str | Path | None = None) -> dict[str, Any]:
    """The git sha and dirty flag of the checkout tunegate runs from (``None`` outside git)."""
    cwd = Path(cwd) if cwd else Path(__file__).resolve().parent
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return {"sha": None, "dirty": None}
    return {"sha": sha, "dirty": bool(status.strip())}


def package_versions(names: Iterable[str] = TRACKED_PACKAGES) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out
