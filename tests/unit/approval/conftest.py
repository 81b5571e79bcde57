"""Fixtures of the approval tests; the workdir generator lives in ``approval_fixtures.py``."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers.approval_fixtures import Reviewers, make_policy, make_reviewers, write_data, write_run

from tunegate.policy.schema import GatePolicy


@pytest.fixture(scope="session")
def reviewers(tmp_path_factory: pytest.TempPathFactory) -> Reviewers:
    return make_reviewers(tmp_path_factory.mktemp("reviewers"))


@pytest.fixture(scope="session")
def _reported_template(tmp_path_factory: pytest.TempPathFactory, reviewers: Reviewers) -> Path:
    """Two runs (run-a passes, run-b fails its gate), both reported: built once, copied per test."""
    from tunegate.approval.report import write_report

    wd = tmp_path_factory.mktemp("template") / "wd"
    write_data(wd)
    policy = make_policy(reviewers.approvers)
    write_run(wd, "run-a", passed=True, policy=policy)
    write_run(wd, "run-b", passed=False, policy=policy)
    write_report(wd, policy=policy, run_id="run-a")
    write_report(wd, policy=policy, run_id="run-b")
    return wd


@pytest.fixture()
def workdir(tmp_path: Path, _reported_template: Path) -> Path:
    dst = tmp_path / "wd"
    shutil.copytree(_reported_template, dst)
    return dst


@pytest.fixture()
def policy(reviewers: Reviewers) -> GatePolicy:
    return make_policy(reviewers.approvers)


@pytest.fixture()
def policy_factory(reviewers: Reviewers) -> Callable[..., GatePolicy]:
    return lambda **kw: make_policy(reviewers.approvers, **kw)


@pytest.fixture()
def adopt_policy() -> Callable[..., None]:
    """Re-decide and re-report runs under another policy (a decision is only valid under its policy)."""
    from helpers.approval_fixtures import redecide

    from tunegate.approval.report import write_report

    def adopt(wd: Path, pol: GatePolicy, *runs: str) -> None:
        for rid in runs or ("run-a", "run-b"):
            redecide(wd, rid, pol)
            write_report(wd, policy=pol, run_id=rid)

    return adopt
