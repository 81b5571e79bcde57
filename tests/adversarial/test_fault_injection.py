"""Fault injection: kill a real ``tunegate`` process at its write points (issue 10, item 3).

Each write point (every atomic file replace, every append to the ledger, the checkpoints file)
is named (:func:`tunegate.provenance.fault_point`). A clean run lists them
(``TUNEGATE_FAULT_LOG``); then, for each point, a fresh copy of the workdir runs the same
command with ``TUNEGATE_FAULT_AT=<point>`` and dies there with status 137, as under SIGKILL.
After each crash, the documented recovery is applied (``tunegate audit verify``, which also
settles a crashed ``sign`` or ``promote``; on a torn tail ``tunegate audit repair``) and the
command is run again. It must either complete or refuse with one clear error (exit 1 or 2, no
traceback); and afterwards nothing acknowledged is lost (the ledger entries before the crash are
a prefix of the entries after), the audit trail verifies, ``tunegate verify`` agrees (approved
or not approved, never an integrity error), no staged envelope or staging folder is left, and,
for promote, every registry version has its ledger event and HEAD names the newest.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from _safety_helpers import REPO, Result, assert_clean_error, run_tunegate
from helpers.approval_fixtures import make_policy, write_data, write_run
from helpers.policies import mechanics_policy_file

from tunegate import ledger
from tunegate.approval.checkpoint import verify_checkpoints

pytestmark = pytest.mark.slow


def _check_no_failures(stage: str, failures: list[str]) -> None:
    """Every crash point is covered: ``sign`` stages its envelope, ledgers its digest, then renames
    it; ``promote`` ledgers its intent first; the next start completes or rolls back what a crash
    left (:mod:`tunegate.approval.recovery`, ``promote.recover_promotions``)."""
    assert not failures, f"{stage}: crash points the recovery does not cover: {sorted(failures)}"


def _points(log: Path) -> list[str]:
    return [line for line in log.read_text().splitlines() if line] if log.exists() else []


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A reported run, two reviewer keys and a 2-of-n policy (the approval tests' generator).

    The policy file is the generator's policy written out, so that its digest is the one the
    run was decided under; copies keep pointing at this template's approvers folder.
    """
    import inspect

    import yaml

    from tunegate.approval.keys import generate_keypair

    root = tmp_path_factory.mktemp("faults")
    wd = root / "wd"
    (root / "approvers").mkdir()
    for name in ("alice", "bob"):
        _, pub = generate_keypair(name, root / "keys")
        shutil.copy(pub, root / "approvers" / pub.name)
    policy = make_policy(root / "approvers", min_approvals=2)
    (root / "policy.yaml").write_text(yaml.safe_dump(policy.model_dump(mode="json")), encoding="utf-8")
    write_data(wd)
    decided_under = {"policy": policy} if "policy" in inspect.signature(write_run).parameters else {}
    write_run(wd, "run-a", **decided_under)
    res = run_tunegate("report", wd, "--policy", root / "policy.yaml", cwd=root)
    assert res.code == 0, str(res)
    return root


def _copy(template: Path, dst: Path) -> Path:
    shutil.copytree(template, dst, symlinks=True)
    return dst


def _sign(root: Path, who: str) -> list[str | Path]:
    return [
        "sign", root / "wd", "--key", root / "keys" / f"{who}.key", "--decision", "approve",
        "--registry", root / "reg", "--policy", root / "policy.yaml",
    ]  # fmt: skip


def _promote(root: Path) -> list[str | Path]:
    return ["promote", root / "wd", "--registry", root / "reg", "--policy", root / "policy.yaml"]


def _recover(root: Path, wd: Path) -> None:
    """The documented recovery after a crash: audit verify; a torn tail -> audit repair."""
    res = run_tunegate("audit", "verify", wd, "--policy", root / "policy.yaml", cwd=root)
    if res.code != 0:
        assert_clean_error(res, 2, contains=["torn final line", "audit repair"])
        fixed = run_tunegate("audit", "repair", wd, "--policy", root / "policy.yaml", cwd=root)
        assert fixed.code == 0 and "removed torn line" in fixed.out, str(fixed)


def _assert_completed_or_refused(res: Result) -> None:
    if res.code != 0:
        assert res.code in (1, 2), str(res)
        assert_clean_error(res, res.code)
    assert "Traceback" not in res.err


def _stages(wd: Path) -> list[str]:
    return [str(e["stage"]) for e in ledger.read_entries(wd)]


def _audit_ok(root: Path, wd: Path) -> None:
    rep = verify_checkpoints(wd)
    assert rep.ok, rep.problems


def _nothing_left_in_flight(root: Path, wd: Path) -> None:
    """No staged envelope and no staging folder survives the recovery and the re-run."""
    staged = sorted(p.name for p in wd.glob("runs/*/approvals/.*.pending"))
    assert not staged, f"staged envelopes left: {staged}"
    staging = sorted(p.name for p in (root / "reg").glob("*/.staging-*"))
    assert not staging, f"staging folders left: {staging}"


def _verify_agrees_with_audit(root: Path, wd: Path) -> None:
    """The audit trail verifies, so `tunegate verify` answers approved (0) or not approved (1),
    never an integrity error (2)."""
    res = run_tunegate("verify", wd, "--policy", root / "policy.yaml", cwd=root)
    assert res.code in (0, 1) and "Traceback" not in res.err, f"verify: {res}"


def _registry_versions_have_ledger_events(root: Path, wd: Path) -> None:
    reg = root / "reg" / "banking77-intent"
    versions = sorted(int(p.name[1:]) for p in reg.glob("v*") if p.name[1:].isdigit()) if reg.is_dir() else []
    ledgered = {  # "promote_intent": ledgered before the version is renamed into place
        e["details"].get("version")
        for e in ledger.read_entries(wd)
        if e["stage"] in ("promote", "promote_intent")
    }
    missing = [v for v in versions if v not in ledgered]
    assert not missing, f"registry versions without a ledger event: {missing}"
    if versions:
        assert (reg / "HEAD.json").is_file(), f"v{versions[-1]} exists but HEAD.json does not"
        head = json.loads((reg / "HEAD.json").read_text())
        assert head["version"] == versions[-1], f"HEAD names v{head['version']}, newest is v{versions[-1]}"
        lines = (reg / "history.jsonl").read_text().splitlines() if (reg / "history.jsonl").is_file() else []
        hist = [json.loads(line)["version"] for line in lines]
        assert hist == versions, f"history.jsonl lists {hist}, the registry holds {versions}"


def _crash_each_point(
    template: Path,
    tmp_path: Path,
    command: Callable[[Path], list[str | Path]],
    check: Callable[[Path, Path], None] | None = None,
    skip: Callable[[str], bool] = lambda p: False,
) -> list[str]:
    """Crash ``command`` at each of its write points in a fresh copy; recover; run it again."""
    clean = _copy(template, tmp_path / "clean")
    log = tmp_path / "points.log"
    res = run_tunegate(*command(clean), cwd=clean, env={"TUNEGATE_FAULT_LOG": str(log)})
    assert res.code == 0, str(res)
    points = _points(log)
    assert points, "the command reached no write point"
    failures = []
    for k, point in enumerate(points, start=1):
        if skip(point):
            continue
        root = _copy(template, tmp_path / f"crash{k}")
        wd = root / "wd"
        before = ledger.read_entries(wd)
        crashed = run_tunegate(*command(root), cwd=root, env={"TUNEGATE_FAULT_AT": f"*@{k}"})
        assert crashed.code == 137, f"{point}: {crashed}"
        try:
            _recover(root, wd)
            again = run_tunegate(*command(root), cwd=root)
            _assert_completed_or_refused(again)
            after = ledger.read_entries(wd)
            assert after[: len(before)] == before, "acknowledged ledger entries were lost"
            _audit_ok(root, wd)
            _nothing_left_in_flight(root, wd)
            _verify_agrees_with_audit(root, wd)
            if check is not None:
                check(root, wd)
        except AssertionError as exc:
            failures.append(f"{point}: {str(exc).splitlines()[0]}")
        shutil.rmtree(root, ignore_errors=True)
    return failures


def _same_path_as_tested_elsewhere(point: str) -> bool:
    """``*:before-fsync`` runs the code of ``*:before-write`` plus a complete write, which
    test_ledger_durability kills directly; skipping it keeps this file near 3 minutes."""
    return point.endswith(":before-fsync")


def test_crash_at_each_write_point_of_sign(template: Path, tmp_path: Path) -> None:
    failures = _crash_each_point(
        template, tmp_path, command=lambda root: _sign(root, "alice"), skip=_same_path_as_tested_elsewhere
    )
    _check_no_failures("sign", failures)


@pytest.fixture(scope="module")
def signed_template(template: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = _copy(template, tmp_path_factory.mktemp("signed") / "root")
    for who in ("alice", "bob"):
        res = run_tunegate(*_sign(root, who), cwd=root)
        assert res.code == 0, str(res)
    return root


def test_crash_at_each_write_point_of_promote(signed_template: Path, tmp_path: Path) -> None:
    failures = _crash_each_point(
        signed_template,
        tmp_path,
        command=_promote,
        check=_registry_versions_have_ledger_events,
        skip=_same_path_as_tested_elsewhere,
    )
    _check_no_failures("promote", failures)


def test_crash_in_prepare_ledger_append(tmp_path: Path) -> None:
    """prepare killed in the middle of its ledger append (the data folder is already renamed into
    place): audit repair removes the torn line, and prepare run again completes or refuses."""
    from tunegate.demo_data import write_demo_tickets

    data = tmp_path / "tickets.jsonl"
    write_demo_tickets(data, 200, seed=5)
    wd = tmp_path / "wd"
    argv = [
        "prepare",
        data,
        "--task",
        "classification",
        "--out",
        wd,
        "--policy",
        mechanics_policy_file(tmp_path),
    ]
    crashed = run_tunegate(*argv, cwd=tmp_path, env={"TUNEGATE_FAULT_AT": "ledger:prepare:mid-write"})
    assert crashed.code == 137, str(crashed)
    assert not ledger.verify_ledger(wd).ok and ledger.verify_ledger(wd).torn_tail is not None
    res = run_tunegate("audit", "repair", wd, cwd=tmp_path)
    assert res.code == 0, str(res)
    again = run_tunegate(*argv, cwd=tmp_path)
    _assert_completed_or_refused(again)
    assert ledger.verify_ledger(wd).ok
    assert not list(wd.glob(".data*")), "temp folders were left behind"
    if again.code in (0, 1):
        assert "prepare" in _stages(wd)


@pytest.fixture()
def train_workdir(tmp_path: Path) -> Path:
    """48 short Alpaca examples frozen through the real split code (32 / 8 / 8)."""
    from tunegate.data.config import DataPolicy
    from tunegate.data.split import SplitResult, freeze_holdout
    from tunegate.records import Record, content_id

    src = Path(__import__("os").environ.get("TUNEGATE_SHARED", REPO.parent / "shared"))
    alpaca = src / "data" / "alpaca_demo" / "alpaca_en_demo.json"
    if not (src / "models" / "stories260k" / "config.json").is_file() or not alpaca.is_file():
        pytest.skip(f"stories260k or alpaca_demo not under {src} (set TUNEGATE_SHARED)")
    rows = json.loads(alpaca.read_text(encoding="utf-8"))
    short = [r for r in rows if len(r["instruction"]) + len(r["input"]) + len(r["output"]) < 200][:48]
    recs = []
    for r in short:
        fields = {"instruction": r["instruction"], "input": r["input"] or None, "output": r["output"]}
        recs.append(Record(id=content_id("instruction", fields), task="instruction", **fields))
    wd = tmp_path / "wd"
    (wd / "data").mkdir(parents=True)
    split = SplitResult(recs[:32], recs[32:40], recs[40:])
    freeze_holdout(wd / "data", split, policy=DataPolicy(), policy_digest="test")
    return wd


@pytest.mark.parametrize(
    "point",
    [
        "atomic:last.*:after-replace",  # the resumable checkpoint's record (last.pt or last.json)
        # the train event is appended before run.json exists (ledger first): a crash in the middle
        # of it leaves a torn tail and an unfinished run that resumes, never an unledgered run
        "ledger:train:mid-write",
    ],
)
def test_crash_in_train(train_workdir: Path, point: str) -> None:
    """train (stories260k, 4 LoRA steps) killed after its resumable checkpoint, or in the middle
    of its ledger append: after the recovery, train --resume auto completes or refuses clearly,
    the ledger verifies, and every finished run (run.json) has its train event in the ledger."""
    wd = train_workdir
    model = (
        Path(__import__("os").environ.get("TUNEGATE_SHARED", REPO.parent / "shared")) / "models/stories260k"
    )
    argv = [
        "train", wd, "--model", model, "--method", "lora", "--quiet",
        "--config", REPO / "gates" / "training" / "stories260k-ci.yaml",
        "--set", "max_steps=4", "--set", "eval_steps=2", "--set", "checkpoint_steps=2",
    ]  # fmt: skip
    crashed = run_tunegate(*argv, cwd=wd.parent, env={"TUNEGATE_FAULT_AT": point})
    assert crashed.code == 137, str(crashed)
    if ledger.ledger_path(wd).exists() and not ledger.verify_ledger(wd).ok:
        res = run_tunegate("audit", "repair", wd, cwd=wd.parent)
        assert res.code == 0, str(res)
    again = run_tunegate(*argv, "--resume", "auto", cwd=wd.parent)
    _assert_completed_or_refused(again)
    assert ledger.verify_ledger(wd).ok
    ledgered = {e["details"].get("run_id") for e in ledger.read_entries(wd) if e["stage"] == "train"}
    finished = {p.parent.name for p in (wd / "runs").glob("*/run.json")}
    assert finished <= ledgered, f"finished runs without a train ledger event: {sorted(finished - ledgered)}"
