"""End to end on the real pretrained stories260k: freeze a hold-out, LoRA-train a few steps with the
training stage, ``evaluate_run`` (baseline, tuned, paired bootstrap, BERTScore, a real lm-eval run,
intruder dimensions) and ``decide_run``; the decision and its reasons are as expected."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from helpers.eval_workdirs import instruction_workdir as _workdir


@pytest.mark.slow
def test_lora_run_is_evaluated_and_decided(stories260k: Path, tmp_path: Path, quick_lora_config: Any) -> None:
    from tunegate.evaluation.evidence import load_evidence
    from tunegate.evaluation.run import decide_run, evaluate_run
    from tunegate.ledger import read_entries
    from tunegate.policy.schema import policy_from_mapping
    from tunegate.training.train import train_run

    wd = _workdir(tmp_path)
    cfg = quick_lora_config(steps=12, rank=8)
    res = train_run(wd, model=str(stories260k), method="lora", config=cfg, progress=False)

    policy = policy_from_mapping(
        {
            "evaluation": {
                "max_new_tokens": 16,
                "bootstrap_samples": 300,
                "regression_tasks": ["tunegate_tiny_stories"],
                "intruder_top_k": 4,
            },
            "checks": {"max_regression_drop": 1.0, "max_intruder_dimensions": 1000},
        }
    )
    ev = evaluate_run(wd, policy=policy)
    assert ev.run_id == res.run_id
    rouge = ev.metrics["rouge_l"]
    assert rouge.tuned > rouge.baseline and rouge.ci_low > 0, rouge  # the adapter learned the pattern
    assert "bertscore_f1" in ev.metrics and ev.metrics["bertscore_f1"].n == 16
    assert ev.regression and ev.regression[0].n == 40 and not ev.regression[0].skipped
    assert ev.intruder is not None and ev.intruder.applicable and ev.intruder.layers > 0
    run_dir = wd / "runs" / res.run_id
    assert load_evidence(run_dir / "evidence.json") == ev
    assert len((run_dir / "predictions.jsonl").read_text().splitlines()) == 16
    assert ev.inputs["holdout_sha256"] and ev.inputs["tuned_artifact_digest"]

    decision = decide_run(wd, policy=policy)
    assert decision.verdict == "pass", decision.reasons
    # a stricter policy fails, with the reasons named
    strict = policy_from_mapping(
        {
            **policy.model_dump(mode="json"),
            "checks": {
                "min_absolute": {"rouge_l": 0.99},
                "max_intruder_dimensions": 0,
                "max_regression_drop": 1.0,
            },
        }
    )
    failed = decide_run(wd, policy=strict)
    assert failed.verdict == "fail"
    assert [r.split(":")[0] for r in failed.reasons] == ["min_absolute_metric", "max_intruder_dimensions"]
    saved = json.loads((run_dir / "decision.json").read_text())
    assert saved["verdict"] == "fail" and saved["inputs"]["evidence_sha256"]

    # the baseline is cached: a second evaluation reuses it and gives the same numbers
    (bdir,) = list((wd / "baselines").iterdir())
    before = {p.name: p.stat().st_mtime_ns for p in bdir.rglob("*.json")}
    import yaml

    from tunegate.cli import main

    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(yaml.safe_dump(policy.model_dump(mode="json")))
    with pytest.raises(SystemExit) as exc:  # the CLI, over the same library call
        main(["evaluate", str(wd), "--run", res.run_id, "--policy", str(policy_file)])
    assert exc.value.code == 0
    again = load_evidence(run_dir / "evidence.json")
    assert again.regression == ev.regression and again.metrics["rouge_l"] == ev.metrics["rouge_l"]
    # BERTScore is float32 and batched: the same outputs re-scored agree to float rounding
    assert again.metrics["bertscore_f1"].tuned == pytest.approx(ev.metrics["bertscore_f1"].tuned, abs=1e-6)
    assert {p.name: p.stat().st_mtime_ns for p in bdir.rglob("*.json")} == before
    stages = [e["stage"] for e in read_entries(wd)]
    assert stages.count("evaluate") == 2 and stages.count("decide") == 2

    # human evaluation round trip through the CLI (the 16-item hold-out is exported whole)
    with pytest.raises(SystemExit) as exc:
        main(["human-export", str(wd)])
    assert exc.value.code == 0
    import csv

    with (run_dir / "human" / "human_eval.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 16 and {"input", "reference", "output_a", "output_b"} <= set(rows[0])
    ratings = tmp_path / "ratings.csv"
    ratings.write_text("rater,item,preference\n" + "".join(f"r1,item-{k:03d},tie\n" for k in range(1, 17)))
    with pytest.raises(SystemExit) as exc:
        main(["human-import", str(wd), str(ratings)])
    assert exc.value.code == 0
    human = json.loads((run_dir / "human" / "human_evidence.json").read_text())
    assert human["n_items"] == 16 and human["tie_rate"] == 1.0

    # a changed hold-out is refused
    hp = wd / "data" / "holdout.jsonl"
    hp.write_text(hp.read_text().replace("happy", "glad", 1))
    from tunegate.errors import IntegrityError

    with pytest.raises(IntegrityError):
        evaluate_run(wd, policy=policy)
