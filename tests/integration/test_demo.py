"""The README's main command, for real: `tunegate demo` signs, verifies and promotes offline."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tunegate.approval.verify import verify_run
from tunegate.ledger import verify_ledger
from tunegate.policy.schema import load_policy

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


def test_demo_end_to_end(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "TUNEGATE_PII_KEY"}  # the demo makes its own
    out = tmp_path / "demo"
    r = subprocess.run(
        [sys.executable, "-m", "tunegate.cli", "demo", "--out", str(out), "--no-full", "--no-generation"],
        capture_output=True,
        text=True,
        env=env,
        timeout=1200,
    )
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    assert "using the demo key file" in r.stdout
    assert "where everything is" in r.stdout and "promoted" in r.stdout

    wd = out / "classification"
    (run_dir,) = sorted((wd / "runs").iterdir())
    decision = json.loads((run_dir / "decision.json").read_text())
    assert decision["passed"] is True, decision["reasons"]
    evidence = json.loads((run_dir / "evidence.json").read_text())
    assert evidence  # baseline and tuned scored

    # two demo reviewers signed; the approval verifies offline; the registry holds version 1
    policy = load_policy(REPO / "gates" / "demo.yaml")
    res = verify_run(wd, policy=policy, run_id=run_dir.name, approvers_dir=out / "approvers")
    assert res.approved and len({a.reviewer for a in res.approvals}) == 2  # type: ignore[attr-defined]
    entries = list((out / "registry").rglob("v1"))
    assert entries, "nothing was promoted"
    assert verify_ledger(wd).ok

    # the audit command agrees, and no raw demo PII reached the ledger or the report
    a = subprocess.run(
        [sys.executable, "-m", "tunegate.cli", "audit", "verify", str(wd)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert a.returncode == 0, a.stdout + a.stderr
    tickets = (out / "input" / "tickets.jsonl").read_text(encoding="utf-8")
    emails = set(re.findall(r"[\w.+-]+@[\w-]+\.\w+", tickets))
    assert len(emails) > 100
    for path in [wd / "audit" / "ledger.jsonl", run_dir / "report.html", *wd.glob("data/*.jsonl")]:
        text = path.read_text(encoding="utf-8")
        leaked = [e for e in emails if e in text]
        assert not leaked, f"{len(leaked)} raw e-mail(s) in {path.name}"
