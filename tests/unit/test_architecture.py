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
