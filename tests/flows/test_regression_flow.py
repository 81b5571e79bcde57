"""``regression-recheck``: re-scores a real run in a scratch workdir and leaves the signed files alone."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tunegate.provenance import sha256_file

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def test_recheck_rescoring_a_real_run_keeps_signed_evidence(
    stories260k: Path, tmp_path: Path, quick_lora_config: Any
) -> None:
    from helpers.eval_workdirs import classification_workdir as _workdir
    from helpers.prefect_server import local_prefect_server

    from flows.regression import regression_recheck_flow
    from tunegate.evaluation.run import decide_run, evaluate_run
    from tunegate.policy.schema import policy_from_mapping
    from tunegate.training.train import train_run

    wd = _workdir(tmp_path / "wd")
    cfg = quick_lora_config(steps=4, rank=4)
    res = train_run(wd, model=str(stories260k), method="lora", config=cfg, progress=False)
    policy_yaml = tmp_path / "policy.yaml"
    policy_yaml.write_text("evaluation:\n  regression_tasks: []\n  bootstrap_samples: 100\n")
    policy = policy_from_mapping({"evaluation": {"regression_tasks": [], "bootstrap_samples": 100}})
    evaluate_run(wd, run_id=res.run_id, policy=policy)
    decide_run(wd, run_id=res.run_id, policy=policy)
    run_dir = wd / "runs" / res.run_id
    before = {p.name: sha256_file(p) for p in run_dir.iterdir() if p.is_file()}

    with local_prefect_server():
        skipped = regression_recheck_flow(str(wd), policy_path=str(policy_yaml))
        out = regression_recheck_flow(str(wd), run_id=res.run_id, policy_path=str(policy_yaml))

    assert skipped["skipped"] is True, "nothing promoted: nothing to recheck"
    assert out["skipped"] is False and out["run_id"] == res.run_id
    original = json.loads((run_dir / "decision.json").read_text())
    assert out["original_verdict"] == original["verdict"]
    assert out["verdict"] == original["verdict"] and out["changed"] is False
    # the signed run folder is byte-identical; the recheck wrote its own evidence
    assert {p.name: sha256_file(p) for p in run_dir.iterdir() if p.is_file()} == before
    new_ev = Path(out["evidence"])
    assert new_ev.is_file() and new_ev.parent != run_dir
    assert Path(out["scratch"]).parent == wd / "rechecks"
    assert json.loads(new_ev.read_text())["run_id"] == res.run_id
    events = [json.loads(x) for x in (wd / "audit" / "ledger.jsonl").read_text().splitlines() if x]
    rechecks = [e for e in events if e["stage"] == "regression-recheck"]
    assert len(rechecks) == 1 and rechecks[0]["details"]["verdict"] == out["verdict"]
    assert sha256_file(new_ev) in rechecks[0]["outputs"].values()
