"""Fixtures of the adversarial suite: signed workdirs built in seconds, no training.

The workdir generator is the approval unit tests' (``tests/unit/approval/approval_fixtures.py``):
real data files, a real ``decide()`` decision with its ledger event, a real report, real Ed25519
keys. Templates are built once per session and copied per test, so each attack starts from a
fresh, valid workdir:

* ``wd``       run-a (gate passed) and run-b (gate failed), both reported, nothing signed;
* ``signed``   the same, with run-a approved by alice and bob (m = 2): ``verify`` approves it;
* ``partial``  run-a approved by alice only: ``verify`` answers "not approved".

Each test names the promise it attacks (see docs/threat-model.md) in its module docstring.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from adv_support import Env
from helpers.approval_fixtures import Reviewers, make_policy, make_reviewers, redecide, write_data, write_run

__all__ = ["Env", "Reviewers", "redecide"]


@pytest.fixture(scope="session")
def reviewers(tmp_path_factory: pytest.TempPathFactory) -> Reviewers:
    return make_reviewers(tmp_path_factory.mktemp("adv-reviewers"), untrusted=("mallory", "Alice2"))


def _template(root: Path, reviewers: Reviewers, signers: tuple[str, ...]) -> Path:
    from tunegate.approval.report import write_report
    from tunegate.approval.sign import sign_run

    wd = root / "wd"
    write_data(wd)
    policy = make_policy(reviewers.approvers)
    write_run(wd, "run-a", passed=True, policy=policy)
    write_run(wd, "run-b", passed=False, policy=policy)
    write_report(wd, policy=policy, run_id="run-a")
    write_report(wd, policy=policy, run_id="run-b")
    for n in signers:
        sign_run(wd, reviewers.keys[n], "approve", policy=policy, run_id="run-a")
    return wd


@pytest.fixture(scope="session")
def _templates(tmp_path_factory: pytest.TempPathFactory, reviewers: Reviewers) -> dict[str, Path]:
    base = _template(tmp_path_factory.mktemp("adv-wd"), reviewers, ())
    out = {"wd": base}
    for label, signers in (("signed", ("alice", "bob")), ("partial", ("alice",))):
        dst = tmp_path_factory.mktemp(f"adv-{label}") / "wd"
        shutil.copytree(base, dst)
        from tunegate.approval.sign import sign_run

        for n in signers:
            sign_run(
                dst, reviewers.keys[n], "approve", policy=make_policy(reviewers.approvers), run_id="run-a"
            )
        out[label] = dst
    return out


@pytest.fixture()
def make_env(_templates: dict[str, Path], reviewers: Reviewers, tmp_path: Path) -> Callable[[str], Env]:
    counter = iter(range(10_000))

    def make(kind: str = "signed") -> Env:
        dst = tmp_path / f"{kind}-{next(counter)}"
        shutil.copytree(_templates[kind], dst, symlinks=True)
        return Env(dst, make_policy(reviewers.approvers), reviewers, tmp_path)

    return make


@pytest.fixture()
def env(make_env: Callable[[str], Env]) -> Env:
    return make_env("wd")


@pytest.fixture()
def signed(make_env: Callable[[str], Env]) -> Env:
    return make_env("signed")


@pytest.fixture()
def partial(make_env: Callable[[str], Env]) -> Env:
    return make_env("partial")
