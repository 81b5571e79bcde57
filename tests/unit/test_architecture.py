"""Layering rules from docs/architecture.md, enforced."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ALLOWED_FLOW_IMPORTS = {"prefect", "prefect_dask", "tunegate", "__future__"}


def _top_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("flow", sorted((REPO / "flows").glob("*.py")), ids=lambda p: p.name)
def test_flows_import_only_prefect_tunegate_and_stdlib(flow: Path) -> None:
    bad = {
        n for n in _top_imports(flow) if n not in ALLOWED_FLOW_IMPORTS and n not in sys.stdlib_module_names
    }
    assert not bad, f"{flow.name} imports {sorted(bad)}: flows only orchestrate"


def test_core_modules_do_not_import_prefect() -> None:
    offenders = [
        str(p.relative_to(REPO))
        for p in (REPO / "src" / "tunegate").rglob("*.py")
        if "prefect" in _top_imports(p) and "defaults/flows" not in p.as_posix()  # flows as package data
    ]
    assert not offenders, f"core modules must not import prefect: {offenders}"


def test_gates_hold_no_code_and_no_private_keys() -> None:
    for p in (REPO / "gates").rglob("*"):
        if not p.is_file():
            continue
        if p.suffix == ".py":
            # lm-eval task folders may carry the harness's process_docs hooks next to their YAML
            assert p.parent.parent.name == "lm_eval_tasks" or p.parent.name == "lm_eval_tasks", p
        text = p.read_text(encoding="utf-8", errors="replace")
        assert "PRIVATE KEY" not in text, f"{p} holds a private key"


def test_no_runtime_download_calls_in_library() -> None:
    needles = ("spacy.cli.download", "snapshot_download(", "hf_hub_download(", "urlopen(", "requests.get(")
    for p in [*(REPO / "src").rglob("*.py"), *(REPO / "flows").rglob("*.py")]:
        text = p.read_text(encoding="utf-8")
        for n in needles:
            assert n not in text, f"{p} calls {n}: tunegate must work offline"


# -- import rules inside src/tunegate (docs/architecture.md, "Inside src/tunegate") -------------

SRC = REPO / "src"
LAYER0 = {
    "tunegate.errors",
    "tunegate._offline",
    "tunegate.provenance",
    "tunegate.workdir",
    "tunegate.yamlio",
}
LAYER1 = {"tunegate.records", "tunegate.ledger", "tunegate.resources", "tunegate.models"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _tunegate_imports(path: Path) -> set[str]:
    """Every tunegate module imported anywhere in the file (functions included)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.split(".")[0] == "tunegate")
        elif (
            isinstance(node, ast.ImportFrom)
            and node.module
            and node.level == 0
            and node.module.split(".")[0] == "tunegate"
        ):
            out.add(node.module)
            # `from tunegate.x import y` may import the submodule tunegate.x.y
            out.update(f"{node.module}.{a.name}" for a in node.names)
    return out


def _modules() -> dict[str, set[str]]:
    mods = {_module_name(p): p for p in (SRC / "tunegate").rglob("*.py")}
    return {m: {d for d in _tunegate_imports(p) if d in mods} for m, p in mods.items()}


def test_lower_layers_do_not_import_higher_ones() -> None:
    graph = _modules()
    problems = []
    for mod, deps in graph.items():
        allowed = LAYER0 if mod in LAYER0 else (LAYER0 | LAYER1) if mod in LAYER1 else None
        if allowed is None:
            continue
        bad = sorted(d for d in deps if d not in allowed and d != "tunegate")
        if bad:
            problems.append(f"{mod} imports {bad}")
    assert not problems, "layer rule broken: " + "; ".join(problems)


def test_only_the_cli_imports_command_modules() -> None:
    graph = _modules()
    offenders = [
        f"{mod} -> {d}"
        for mod, deps in graph.items()
        for d in deps
        if d.endswith(".commands") and mod not in ("tunegate.cli",) and not mod.endswith(".commands")
    ]
    flow_offenders = [
        f"{p.name} -> {n}"
        for p in sorted((REPO / "flows").glob("*.py"))
        for n in _tunegate_imports(p)
        if n.endswith(".commands") or n == "tunegate.cli"
    ]
    assert not offenders and not flow_offenders, (
        "command modules parse and print; library code goes in the stage package: "
        f"{offenders + flow_offenders}"
    )


def test_approval_modules_form_no_import_cycle() -> None:
    """annex_iv -> report -> sign -> annex_iv was a cycle (through a function-level import); the
    approval package's modules, counting imports inside functions, must form none."""
    graph = _modules()
    approval = {m: {d for d in deps if d.startswith("tunegate.approval.")} for m, deps in graph.items()}
    approval = {m: deps for m, deps in approval.items() if m.startswith("tunegate.approval.")}
    state: dict[str, int] = {}

    def visit(mod: str, path: list[str]) -> list[str] | None:
        state[mod] = 1
        for dep in sorted(approval.get(mod, ())):
            if state.get(dep) == 1:
                return [*path, mod, dep]
            if dep not in state and (cycle := visit(dep, [*path, mod])):
                return cycle
        state[mod] = 2
        return None

    for mod in sorted(approval):
        if mod not in state:
            cycle = visit(mod, [])
            assert cycle is None, " -> ".join(cycle)
