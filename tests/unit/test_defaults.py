"""Packaged defaults (tunegate.defaults) and `tunegate init`.

The checkout's gates/ and flows/ are the user-editable copies of what the package ships; these
tests keep them equal, check that every loader reads the package (not a path above it), and run
`tunegate init` as a user would.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tunegate import defaults
from tunegate.data.validate import EXPECTATIONS_DIR
from tunegate.defaults.project import scaffold_project
from tunegate.demo import ENCODER_OVERRIDES
from tunegate.errors import InputError
from tunegate.evaluation.config import EvaluationPolicy, resolve_task_dir
from tunegate.pipeline import load_gate_run_config
from tunegate.policy.schema import DEFAULT_POLICY_PATH, load_policy

REPO = Path(__file__).resolve().parents[2]
SRC = REPO / "src" / "tunegate"


def test_checkout_copies_equal_the_packaged_defaults() -> None:
    problems = defaults.checkout_differences(REPO)
    assert problems == [], (
        "gates/ or flows/ differ from src/tunegate/defaults/ (what a pip-installed tunegate reads); "
        "after editing either, run `bash .ci/sync-defaults`:\n  " + "\n  ".join(problems)
    )


def test_the_package_ships_what_the_stages_read() -> None:
    shipped = set(defaults.shipped_files("gates"))
    for rel in (
        "default.yaml",
        "demo.yaml",
        "demo-generation.yaml",
        "demo-run.yaml",
        "expectations/classification.json",
        "expectations/instruction.json",
        "expectations/chat.json",
        "lm_eval_tasks/tunegate_tiny_stories.yaml",
        "lm_eval_tasks/data/tunegate_tiny_stories.jsonl",
        "training/lora-default.yaml",
        "accelerate/ddp.yaml",
        "approvers/README.md",
    ):
        assert rel in shipped, rel
    assert not [r for r in shipped if r.endswith((".pub", ".key"))], "keys are never shipped"
    assert {"gate_run.py", "drift.py", "regression.py", "approve.py", "prefect.yaml"} <= set(
        defaults.shipped_files("flows")
    )


def test_loaders_read_the_package_not_the_checkout() -> None:
    root = defaults.root().resolve()
    assert DEFAULT_POLICY_PATH.resolve().is_relative_to(root)
    assert EXPECTATIONS_DIR.resolve().is_relative_to(root)
    assert resolve_task_dir(EvaluationPolicy()).resolve().is_relative_to(root)
    assert load_policy().digest() == load_policy(REPO / "gates" / "default.yaml").digest()
    # no module finds a shipped file through the folders above it
    offenders = [
        f"{p.relative_to(REPO)}:{i}"
        for p in SRC.rglob("*.py")
        for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
        if re.search(r"parents\[\d\]\s*/\s*\"(gates|flows)\"", line)
    ]
    assert offenders == []


def test_the_example_gate_run_config_the_help_cites_exists_and_loads() -> None:
    cfg = load_gate_run_config(REPO / "gates" / "demo-run.yaml")
    assert cfg.task == "classification" and cfg.method == "lora"
    assert Path(cfg.policy or "") == (REPO / "gates" / "demo.yaml").resolve()
    # every path is relative to the YAML, also those that do not exist yet
    assert Path(cfg.workdir).is_absolute() and Path(cfg.workdir).parent == REPO.resolve() / "tunegate-demo"
    assert load_policy(cfg.policy).name == "demo-ticket-classification"
    # the example trains as the demo does (max_seq_len 128: a pseudonymized ticket runs to 89 tokens)
    assert cfg.train_overrides == ENCODER_OVERRIDES


def test_the_packaged_gate_run_flow_loads() -> None:
    module = defaults.load_flow_module("gate_run")
    assert module.gate_run_flow.name == "gate-run"


def test_init_writes_a_project_that_validates(tmp_path: Path) -> None:
    dest = tmp_path / "team project"
    written = scaffold_project(dest)
    rels = {p.relative_to(dest).as_posix() for p in written}
    assert {
        "README.md",
        "gate-run.yaml",
        "gates/policy.yaml",
        "gates/approvers/README.md",
        "flows/prefect.yaml",
        "flows/gate_run.py",
        "data/example-tickets.jsonl",
    } <= rels
    assert not [r for r in rels if r.endswith((".pub", ".key"))], "init creates no keys"
    policy_text = (dest / "gates" / "policy.yaml").read_text(encoding="utf-8")
    assert policy_text.count("\n#") > 20, "the policy keeps its comments"
    policy = load_policy(dest / "gates" / "policy.yaml")
    assert policy.evaluation.regression_tasks == [], "a classifier's policy must be runnable"
    cfg = load_gate_run_config(dest / "gate-run.yaml")
    for value in (cfg.data, cfg.workdir, cfg.policy, cfg.registry, cfg.approvers_dir):
        assert Path(value or "").is_relative_to(dest.resolve()), value
    assert Path(cfg.data).is_file() and Path(cfg.model, "config.json").is_file()
    deployments = yaml.safe_load((dest / "flows" / "prefect.yaml").read_text(encoding="utf-8"))
    assert "gates/default.yaml" not in str(deployments) and "gates/policy.yaml" in str(deployments)
    readme = (dest / "README.md").read_text(encoding="utf-8")
    assert "tunegate run gate-run.yaml" in readme and "tunegate validate-policy gates/policy.yaml" in readme


def test_init_for_a_causal_lm_keeps_the_regression_tasks(tmp_path: Path) -> None:
    scaffold_project(tmp_path / "p", task="instruction", example_data=False)
    assert load_policy(tmp_path / "p" / "gates" / "policy.yaml").evaluation.regression_tasks
    assert not (tmp_path / "p" / "data" / "example-tickets.jsonl").exists()


def test_init_refuses_a_non_empty_folder_and_changes_nothing(tmp_path: Path) -> None:
    dest = tmp_path / "p"
    dest.mkdir()
    (dest / "mine.txt").write_text("keep", encoding="utf-8")
    with pytest.raises(InputError, match="not an empty folder"):
        scaffold_project(dest)
    assert [p.name for p in dest.iterdir()] == ["mine.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["p"], "no temporary folder left behind"
    r = subprocess.run(
        [sys.executable, "-m", "tunegate.cli", "init", str(dest)], capture_output=True, text=True, check=False
    )
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert "not an empty folder" in r.stderr


def test_run_help_cites_the_example_config_that_exists() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "tunegate.cli", "run", "--help"], capture_output=True, text=True, check=False
    )
    assert r.returncode == 0, r.stderr
    cited = set(re.findall(r"gates/[\w./-]+\.yaml", " ".join(r.stdout.split())))
    assert cited == {"gates/demo-run.yaml"}, cited
    assert all((REPO / c).is_file() for c in cited)
