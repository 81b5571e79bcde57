"""The files tunegate ships, found with :mod:`importlib.resources` (so a wheel works anywhere).

    tunegate/defaults/gates/   policies (default.yaml, demo*.yaml), GX suites (expectations/),
                               lm-eval task files and data (lm_eval_tasks/), training and
                               accelerate configs, the approvers folder's README (never keys)
    tunegate/defaults/flows/   the Prefect flows, prefect.yaml / prefect.k8s.yaml, the k8s template

A checkout's top-level ``gates/`` and ``flows/`` are the user-editable copies and the deployment
entry points; a test keeps them equal to these (``.ci/sync-defaults`` copies them over after an
edit). ``tunegate init DIR`` copies them into a team's own project. Nothing here finds a file
through ``Path(__file__).parents[N]``: an installed package has no repository around it.
"""

from __future__ import annotations

import filecmp
import importlib.util
import shutil
from importlib.resources import files
from pathlib import Path
from types import ModuleType
from typing import Literal

from tunegate.errors import DependencyError

Kind = Literal["gates", "flows"]
KINDS: tuple[Kind, ...] = ("gates", "flows")
#: Never shipped, never compared: private material, caches, local state.
_SKIP_SUFFIXES = (".pub", ".key", ".pyc")
_SKIP_PARTS = ("__pycache__", ".prefect-local")


def root() -> Path:
    """The package folder that holds ``gates/`` and ``flows/``."""
    return Path(str(files(__name__)))


def gates_dir() -> Path:
    return root() / "gates"


def flows_dir() -> Path:
    return root() / "flows"


def gate_path(rel: str) -> Path:
    """A shipped file under ``gates/`` (e.g. ``default.yaml``, ``expectations``), or a clear error."""
    p = gates_dir() / rel
    if not p.exists():
        raise DependencyError(
            f"{p}: shipped file not found in the installed tunegate",
            hint="reinstall tunegate (pip install --force-reinstall tunegate)",
        )
    return p


def _listing(base: Path) -> dict[str, Path]:
    out: dict[str, Path] = {}
    if not base.is_dir():
        return out
    for p in sorted(base.rglob("*")):
        rel = p.relative_to(base)
        if p.is_file() and p.suffix not in _SKIP_SUFFIXES and not set(rel.parts) & set(_SKIP_PARTS):
            out[rel.as_posix()] = p
    return out


def shipped_files(kind: Kind) -> dict[str, Path]:
    """Every packaged file of ``kind``, by its path relative to ``gates/`` or ``flows/``."""
    return _listing(root() / kind)


def checkout_differences(repo: str | Path) -> list[str]:
    """Where a checkout's ``gates/`` and ``flows/`` differ from the packaged copies (empty: equal)."""
    problems: list[str] = []
    for kind in KINDS:
        mine, shipped = _listing(Path(repo) / kind), shipped_files(kind)
        for rel in sorted(set(mine) | set(shipped)):
            if rel not in shipped:
                problems.append(f"{kind}/{rel}: in the checkout, not in the package")
            elif rel not in mine:
                problems.append(f"{kind}/{rel}: in the package, not in the checkout")
            elif not filecmp.cmp(mine[rel], shipped[rel], shallow=False):
                problems.append(f"{kind}/{rel}: differs from the packaged copy")
    return problems


def sync_from_checkout(repo: str | Path) -> list[str]:
    """Make the packaged copies equal to the checkout's ``gates/`` and ``flows/``; says what changed."""
    changed = checkout_differences(repo)
    for kind in KINDS:
        src, dst = Path(repo) / kind, root() / kind
        mine = _listing(src)
        for rel, path in _listing(dst).items():
            if rel not in mine:
                path.unlink()
        for rel, path in mine.items():
            target = dst / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
    return changed


def copy_tree(kind: Kind, dest: str | Path, *, only: tuple[str, ...] | None = None) -> list[Path]:
    """Copy packaged files of ``kind`` into ``dest`` (``only``: relative paths or folder prefixes)."""
    written: list[Path] = []
    for rel, path in shipped_files(kind).items():
        if only is not None and not any(rel == o or rel.startswith(o.rstrip("/") + "/") for o in only):
            continue
        target = Path(dest) / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        written.append(target)
    return written


def load_flow_module(name: str) -> ModuleType:
    """Import the packaged ``flows/<name>.py`` (flows are orchestration files, not modules)."""
    path = flows_dir() / f"{name}.py"
    if not path.is_file():
        raise DependencyError(f"{path}: flow file not found", hint="reinstall tunegate")
    spec = importlib.util.spec_from_file_location(f"tunegate_flow_{name}", path)
    if spec is None or spec.loader is None:  # pragma: no cover - a .py file always has a loader
        raise DependencyError(f"{path}: cannot be imported as a flow")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
