"""The ``approve`` flow on Prefect's local test server: pause, two reviewers sign, resume, promote."""

from __future__ import annotations

import ast
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "unit" / "approval"))
sys.path.insert(0, str(REPO))
from approval_fixtures import make_policy, write_data, write_run  # noqa: E402

pytestmark = pytest.mark.slow


def test_flow_imports_only_prefect_tunegate_stdlib() -> None:
    tree = ast.parse((REPO / "flows" / "approve.py").read_text())
    mods = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    mods |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert mods <= {"prefect", "tunegate", "__future__"} | set(sys.stdlib_module_names), mods


def test_approve_flow_pauses_then_promotes(tmp_path: Path) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.sorting import FlowRunSort
    from prefect.flow_runs import resume_flow_run
    from prefect.testing.utilities import prefect_test_harness

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

    with prefect_test_harness(server_startup_timeout=120):
        result: dict[str, Any] = {}

        def run() -> None:
            try:
                result["out"] = approve(
                    str(wd), str(reg), policy_path=str(policy_yaml), poll_interval_s=1, pause_timeout_s=120
                )
            except BaseException as exc:  # surfaced by the assertion below
                result["err"] = exc

        t = threading.Thread(target=run, daemon=True)
        t.start()
        paused = None
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and paused is None:
            with get_client(sync_client=True) as client:
                for fr in client.read_flow_runs(limit=20, sort=FlowRunSort.ID_DESC):
                    if fr.state is not None and fr.state.is_paused():
                        paused = fr
            time.sleep(0.5)
        assert paused is not None, result
        assert (wd / "runs/run-a/report.html").is_file()  # the flow rendered the report before pausing
        for name in ("alice", "bob"):
            sign_run(wd, keys[name], "approve", policy=policy, run_id="run-a", registry=reg)
        resume_flow_run(paused.id)
        t.join(timeout=90)
        assert "err" not in result, result.get("err")
        out = result["out"]
        assert out["promoted"] is True and out["version"] == 1
        assert (reg / "banking77-intent" / "v1" / "manifest.json").is_file()
