"""`tunegate decide` over a hand-written evidence.json: exit 0 on pass, 1 on fail, 2 on bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tunegate.cli import main
from tunegate.ledger import read_entries

EVIDENCE = {
    "run_id": "r1",
    "task": "instruction",
    "method": "full",
    "data_gate": {"verdict": "pass", "residual_pii": {}, "residual_ok": True},
    "holdout": {"verified": True, "n_records": 30},
    "metrics": {
        "rouge_l": {
            "name": "rouge_l",
            "higher_is_better": True,
            "baseline": 0.1,
            "tuned": 0.4,
            "delta": 0.3,
            "ci_low": 0.2,
            "ci_high": 0.4,
            "confidence": 0.95,
            "n": 30,
        },
        "empty_output_rate": {
            "name": "empty_output_rate",
            "higher_is_better": False,
            "baseline": 0.0,
            "tuned": 0.0,
            "delta": 0.0,
            "ci_low": 0.0,
            "ci_high": 0.0,
            "confidence": 0.95,
            "n": 30,
        },
    },
    "regression": [],
    "intruder": {"applicable": False, "reason": "method 'full' is not a low-rank adapter"},
}


def _workdir(tmp_path: Path, evidence: dict) -> Path:
    run = tmp_path / "runs" / "r1"
    run.mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({"run_id": "r1", "method": "full"}))
    (run / "evidence.json").write_text(json.dumps(evidence))
    return tmp_path


def _exit(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    return int(exc.value.code or 0)


def test_decide_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    wd = _workdir(tmp_path, EVIDENCE)
    assert _exit(["decide", str(wd), "--run", "r1"]) == 0
    assert "gate: PASS" in capsys.readouterr().out
    decision = json.loads((wd / "runs" / "r1" / "decision.json").read_text())
    assert decision["verdict"] == "pass" and decision["inputs"]["evidence_sha256"]
    assert [e["stage"] for e in read_entries(wd)] == ["decide"]

    bad = {**EVIDENCE, "metrics": {**EVIDENCE["metrics"]}}
    bad["metrics"]["rouge_l"] = {**EVIDENCE["metrics"]["rouge_l"], "ci_low": -0.05}
    (wd / "runs" / "r1" / "evidence.json").write_text(json.dumps(bad))
    assert _exit(["decide", str(wd), "--run", "r1"]) == 1
    out = capsys.readouterr().out
    assert "FAIL min_improvement_lcb" in out and "gate: FAIL" in out


def test_decide_on_malformed_evidence_is_a_usage_error(tmp_path: Path) -> None:
    wd = _workdir(tmp_path, {"run_id": "r1", "task": "nonsense"})
    assert _exit(["decide", str(wd), "--run", "r1"]) == 2
