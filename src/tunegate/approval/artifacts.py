"""Which files a signature covers, and how a run directory is found and read.

Covered (the in-toto subjects, named by their path relative to WORKDIR):

* every regular file under ``runs/<id>/`` except ``approvals/`` — so ``adapter/`` or ``model/``,
  ``run.json``, ``config.json``, ``evidence.json``, ``decision.json``, ``report.html``,
  ``report.pdf``, ``report_evidence.json``, ``policy.json`` (the policy snapshot the report was
  rendered under), plots and Annex IV files; enumerating the directory is what makes an added
  or removed file detectable;
* ``data/holdout.manifest.json`` and, when present, ``data/data_report.json``.

Signing refuses while a required artifact is missing (:data:`REQUIRED_RUN_FILES`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tunegate.errors import InputError
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
    return Path(workdir) / "runs"


def resolve_run(workdir: str | Path, run_id: str | None) -> str:
    """The run id to act on: the given one (must exist), or the only run in the workdir."""
    rd = runs_dir(workdir)
    if run_id is not None:
        if "/" in run_id or run_id in ("", ".", "..") or not (rd / run_id).is_dir():
            found = sorted(p.name for p in rd.iterdir() if p.is_dir()) if rd.is_dir() else []
            raise InputError(f"run {run_id!r} not found; runs here: {found or 'none'}", path=rd)
        return run_id
    found = sorted(p.name for p in rd.iterdir() if p.is_dir()) if rd.is_dir() else []
    if len(found) != 1:
        raise InputError(
            f"expected exactly one run, found {len(found)}: {found}", path=rd, hint="pass --run RUN_ID"
        )
    return found[0]


def run_dir(workdir: str | Path, run_id: str) -> Path:
    return runs_dir(workdir) / run_id


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
    """Sorted WORKDIR-relative paths of every covered file that exists now."""
    wd = Path(workdir)
    rd = run_dir(wd, run_id)
    out: list[str] = []
    for p in sorted(rd.rglob("*")):
        rel_run = p.relative_to(rd)
        if rel_run.parts[0] in EXCLUDED_RUN_DIRS or not p.is_file() or p.is_symlink():
            continue
        if (p.name.startswith(".") and p.name.endswith(".tmp")) or p.name.endswith(".lock"):
            continue  # an atomic write in progress, or a lock file (empty, not an artifact)
        out.append(p.relative_to(wd).as_posix())
    for rel in REQUIRED_DATA_FILES + OPTIONAL_DATA_FILES:
        if (wd / rel).is_file():
            out.append(rel)
    return sorted(out)


def missing_required(workdir: str | Path, run_id: str) -> list[str]:
    wd = Path(workdir)
    rd = run_dir(wd, run_id)
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
