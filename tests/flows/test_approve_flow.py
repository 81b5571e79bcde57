"""The ``approve`` flow on Prefect's local test server: it waits, two reviewers sign, it promotes.

The wait is ``tunegate.pipeline.wait_for_approval`` (the gate-run flow's too): reviewers only
write signatures; nobody resumes anything.
"""

from __future__ import annotations

import ast
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
from helpers.approval_fixtures import make_policy, write_data, write_run  # noqa: E402

pytestmark = pytest.mark.slow


def test_flow_imports_only_prefect_tunegate_stdlib() -> None:
    tree = ast.parse((REPO / "flows" / "approve.py").read_text())
    mods = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    mods |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert mods <= {"prefect", "tunegate", "__future__"} | set(sys.stdlib_module_names), mods


def test_approve_flow_waits_for_signatures_then_promotes(tmp_path: Path) -> None:
    from helpers.prefect_server import local_prefect_server

    from flows.approve import approve
    from tunegate.approval.keys import generate_keypair
    from tunegate.approval.sign import sign_run

    wd, reg, approvers = tmp_path / "wd", tmp_path / "registry", tmp_path / "approvers"
    approvers.mkdir()
    keys = {}
    for name in ("alice", "bob"):
        priv, pub = generate_keypair(name, tmp_path / "keys")
        (approvers / pub.name).write_bytes(pub.read_bytes())
        keys[name] = priv
    write_data(wd)
    write_run(wd, "run-a", policy=make_policy(approvers))  # decided under the policy the flow uses
    policy_yaml = tmp_path / "policy.yaml"
    policy_yaml.write_text(
        f"checks:\n  allow_regression_limit: true\napproval:\n  approvers_dir: {approvers}\n"
    )
    policy = make_policy(approvers)

    with local_prefect_server():
        # nobody signs: the wait ends at its timeout and nothing is promoted
        out = approve(str(wd), str(reg), policy_path=str(policy_yaml), timeout_s=0)
        assert out["promoted"] is False and out["reasons"], out
        assert not reg.exists()

        result: dict[str, Any] = {}

        def run() -> None:
            try:
                result["out"] = approve(
                    str(wd), str(reg), policy_path=str(policy_yaml), poll_interval_s=1, timeout_s=120
                )
            except BaseException as exc:  # surfaced by the assertion below
                result["err"] = exc

        t = threading.Thread(target=run, daemon=True)
        t.start()
        assert (wd / "runs/run-a/report.html").is_file()  # rendered by the first call, not again
        time.sleep(3)
        assert t.is_alive(), result  # still waiting: no signature yet
        for name in ("alice", "bob"):
            sign_run(wd, keys[name], "approve", policy=policy, run_id="run-a", registry=reg)
        t.join(timeout=90)
        assert "err" not in result, result.get("err")
        out = result["out"]
        assert out["promoted"] is True and out["version"] == 1
        assert (reg / "banking77-intent" / "v1" / "manifest.json").is_file()
