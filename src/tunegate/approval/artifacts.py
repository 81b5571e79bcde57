"""Which files a signature covers, and how a run directory is found and read.

Covered (the in-toto subjects, named by their path relative to WORKDIR):

* every regular file under ``runs/<id>/`` except ``approvals/`` — so ``adapter/`` or ``model/``,
  ``run.json``, ``config.json``, ``evidence.json``, ``decision.json``, ``report.html``,
  ``report.pdf``, ``report_evidence.json``, ``policy.json`` (the policy snapshot the report was
  rendered under), plots and Annex IV files; enumerating the directory is what makes an added
  or removed file detectable;
* ``data/holdout.manifest.json`` and, when present, ``data/data_report.json``.

Signing refuses while a required artifact is missing (:data:`REQUIRED_RUN_FILES`). A symlink or a
non-regular file anywhere in the run (or above a covered data file) is refused, never followed
or skipped: a link would leave its target outside the signature.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from tunegate import workdir as workdir_layout
from tunegate.errors import InputError, IntegrityError
from tunegate.provenance import sha256_file

REQUIRED_RUN_FILES = (
    "run.json",
    "config.json",
    "evidence.json",
    "decision.json",
    "report.html",
    "report.pdf",
    "report_evidence.json",
    "policy.json",
)
REQUIRED_DATA_FILES = ("data/holdout.manifest.json",)
OPTIONAL_DATA_FILES = ("data/data_report.json", "annex_iv_human.yaml")
WEIGHT_DIRS = ("adapter", "model")
EXCLUDED_RUN_DIRS = ("approvals",)


def runs_dir(workdir: str | Path) -> Path:
    return workdir_layout.runs_dir(workdir)


def resolve_run(workdir: str | Path, run_id: str | None) -> str:
    """The run id to act on: the given one (a plain name of an existing run), or the newest run.

    Delegates to :func:`tunegate.workdir.resolve_run`, the one run resolver.
    """
    return workdir_layout.resolve_run(workdir, run_id)


def run_dir(workdir: str | Path, run_id: str) -> Path:
    return workdir_layout.run_dir(workdir, run_id)


def refuse_links(workdir: str | Path, rel: str) -> None:
    """Refuse ``rel`` (WORKDIR-relative) if it or any folder above it inside WORKDIR is a symlink,
    or if it exists and is neither a regular file nor a folder. Never follows, never skips."""
    wd = Path(workdir)
    cur = wd
    for part in Path(rel).parts:
        cur = cur / part
        if cur.is_symlink():
            raise IntegrityError(
                f"{cur}: is a symbolic link; links inside a signed run or workdir are refused "
                "(they would leave their target outside the signature)",
                hint="replace the link by the file itself",
            )
        if cur.exists() and not (cur.is_file() or cur.is_dir()):
            raise IntegrityError(f"{cur}: is not a regular file or folder (device, socket or pipe)")


def check_tree(root: str | Path, *, label: str | None = None) -> None:
    """Refuse any symlink or non-regular entry anywhere under ``root`` (``root`` included)."""
    r = Path(root)
    if r.is_symlink():
        raise IntegrityError(f"{label or r}: is a symbolic link; refused")
    if not r.exists():
        return
    for dirpath, dirnames, filenames in os.walk(r, followlinks=False):
        for n in sorted(dirnames + filenames):
            p = Path(dirpath) / n
            if p.is_symlink():
                raise IntegrityError(
                    f"{p}: is a symbolic link; links inside a signed run, workdir or registry entry are "
                    "refused (they would leave their target outside the signature)",
                    hint="replace the link by the file itself",
                )
            if not (p.is_file() or p.is_dir()):
                raise IntegrityError(f"{p}: is not a regular file or folder (device, socket or pipe)")


def read_json(path: Path, *, required: bool = False) -> Any:
    """Parsed JSON, or ``None`` when the file is absent and not required."""
    if not path.is_file():
        if required:
            raise InputError("required file is missing", path=path)
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"not valid JSON ({exc})", path=path) from None


def covered_files(workdir: str | Path, run_id: str) -> list[str]:
    """Sorted WORKDIR-relative paths of every covered file that exists now.

    Raises :class:`IntegrityError` naming the path when the run (approvals included), a covered
    data file, or a folder above one is a symlink or a non-regular file.
    """
    wd = Path(workdir)
    rd = run_dir(wd, run_id)
    refuse_links(wd, rd.relative_to(wd).as_posix())
    check_tree(rd)
    out: list[str] = []
    for p in sorted(rd.rglob("*")):
        rel_run = p.relative_to(rd)
        if rel_run.parts[0] in EXCLUDED_RUN_DIRS or not p.is_file():
            continue
        if (p.name.startswith(".") and p.name.endswith(".tmp")) or p.name.endswith(".lock"):
            continue  # an atomic write in progress, or a lock file (empty, not an artifact)
        out.append(p.relative_to(wd).as_posix())
    for rel in REQUIRED_DATA_FILES + OPTIONAL_DATA_FILES:
        refuse_links(wd, rel)
        if (wd / rel).is_file():
            out.append(rel)
    return sorted(out)


def missing_required(workdir: str | Path, run_id: str) -> list[str]:
    wd = Path(workdir)
    rd = run_dir(wd, run_id)
    check_tree(rd)
    missing = [f"runs/{run_id}/{n}" for n in REQUIRED_RUN_FILES if not (rd / n).is_file()]
    missing += [rel for rel in REQUIRED_DATA_FILES if not (wd / rel).is_file()]
    if not any((rd / d).is_dir() and any(x.is_file() for x in (rd / d).rglob("*")) for d in WEIGHT_DIRS):
        missing.append(f"runs/{run_id}/adapter/ (or model/)")
    return missing


def subjects(workdir: str | Path, run_id: str) -> list[dict[str, Any]]:
    """in-toto subjects ``[{name, digest: {sha256}}]`` for every covered file, sorted by name."""
    wd = Path(workdir)
    return [{"name": rel, "digest": {"sha256": sha256_file(wd / rel)}} for rel in covered_files(wd, run_id)]


def weight_dir(workdir: str | Path, run_id: str) -> Path:
    rd = run_dir(workdir, run_id)
    for d in WEIGHT_DIRS:
        if (rd / d).is_dir():
            return rd / d
    raise InputError("the run has neither adapter/ nor model/", path=rd)
