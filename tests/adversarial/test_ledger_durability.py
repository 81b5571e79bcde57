"""Promise: ledger durability (issue 10, item 8).

An append is all-or-nothing; a crash or a full disk never leaves the audit trail unusable; a
torn final line is reported AS a torn tail (not as tampering) by ``tunegate audit verify``;
``tunegate audit repair`` removes only an unacknowledged torn tail and records that it did, and
refuses everything else. Crashes are real (a subprocess that dies inside the write, at the
``TUNEGATE_FAULT_AT`` point), and the full disk is the kernel's (``RLIMIT_FSIZE``: EFBIG).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from _safety_helpers import assert_clean_error, base_env, file_size_limit, run_tunegate
from helpers.approval_fixtures import write_data, write_run

from tunegate import ledger


@pytest.fixture(scope="module")
def _template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    wd = tmp_path_factory.mktemp("durability") / "wd"
    write_data(wd)
    write_run(wd, "run-a")
    return wd


@pytest.fixture()
def wd(tmp_path: Path, _template: Path) -> Path:
    import shutil

    dst = tmp_path / "wd"
    shutil.copytree(_template, dst)
    return dst


def _append_in_child(wd: Path, stage: str, **kw: object) -> subprocess.CompletedProcess[str]:
    """``ledger.append_event`` in a separate process (which may die or hit a file size limit)."""
    code = "import sys; from tunegate import ledger; ledger.append_event(sys.argv[1], sys.argv[2])"
    env = base_env(kw.pop("env", None))  # type: ignore[arg-type]
    return subprocess.run(
        [sys.executable, "-c", code, str(wd), stage],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        **kw,
    )  # type: ignore[call-overload]


def test_crash_mid_append_is_reported_as_torn_tail_and_repaired(wd: Path) -> None:
    path = ledger.ledger_path(wd)
    before = path.read_bytes()
    proc = _append_in_child(wd, "evaluate", env={"TUNEGATE_FAULT_AT": "ledger:evaluate:mid-write"})
    assert proc.returncode == 137, proc.stderr
    torn = path.read_bytes()
    assert torn.startswith(before) and len(torn) > len(before) and not torn.endswith(b"\n")

    res = run_tunegate("audit", "verify", wd)
    assert_clean_error(res, 2, contains=["torn final line", "audit repair"])
    assert "edited" not in res.err and "truncated" not in res.err and "reordered" not in res.err, res.err
    # every command that reads the ledger refuses with the same pointer to the repair
    res = run_tunegate("audit", "checkpoint", wd)
    assert_clean_error(res, 2, contains=["torn final line", "audit repair"])
    assert path.read_bytes() == torn

    res = run_tunegate("audit", "repair", wd)
    assert res.code == 0 and "removed torn line" in res.out, str(res)
    after = path.read_bytes()
    assert after.startswith(before)
    last = json.loads(after.splitlines()[-1])
    assert last["stage"] == "ledger-repair" and last["details"]["removed_torn_tails"][0]["bytes"] == len(
        torn
    ) - len(before)
    res = run_tunegate("audit", "verify", wd)
    assert res.code == 0 and "audit trail verified" in res.out, str(res)


def test_crash_before_fsync_leaves_a_complete_entry(wd: Path) -> None:
    """Killed after the write, before fsync: the kernel keeps the line; the ledger verifies."""
    proc = _append_in_child(wd, "evaluate", env={"TUNEGATE_FAULT_AT": "ledger:evaluate:before-fsync"})
    assert proc.returncode == 137
    assert ledger.verify_ledger(wd).ok
    assert ledger.read_entries(wd)[-1]["stage"] == "evaluate"


def test_full_disk_append_is_rolled_back(wd: Path) -> None:
    """The file may grow by only 100 bytes: the kernel writes a part of the line (a short write),
    then refuses the rest. The append fails with one clear error and the ledger is unchanged."""
    path = ledger.ledger_path(wd)
    before = path.read_bytes()
    proc = _append_in_child(wd, "evaluate", preexec_fn=file_size_limit(len(before) + 100))
    assert proc.returncode != 0
    assert "LedgerWriteError" in proc.stderr and "the entry was not recorded" in proc.stderr
    assert "restored to its previous size" in proc.stderr
    assert path.read_bytes() == before
    assert ledger.verify_ledger(wd).ok


def test_full_disk_through_the_cli_is_one_line_and_leaves_the_ledger_valid(wd: Path) -> None:
    """``audit repair`` on a torn ledger with no room for the repair event: refused cleanly, the
    torn tail is gone but no half event is left; running it again with room finishes the job."""
    path = ledger.ledger_path(wd)
    good = path.read_bytes()
    path.write_bytes(good + b'{"seq":9,"pre')
    res = run_tunegate("audit", "repair", wd, preexec_fn=file_size_limit(len(good) + 50))
    assert_clean_error(res, 2, contains=["ledger.jsonl", "not recorded"])
    assert path.read_bytes() == good  # tail removed, nothing half-written
    res = run_tunegate("audit", "verify", wd)
    assert res.code == 0, str(res)


def test_repair_refuses_tampering(wd: Path) -> None:
    """Three ways to dress tampering up as a torn tail; each is refused and nothing is changed."""
    path = ledger.ledger_path(wd)
    lines = path.read_bytes().split(b"\n")[:-1]
    edited = lines[1].replace(b'"stage":"train"', b'"stage":"trained"')
    forged = lines[-1].replace(b'"stage":"decide"', b'"stage":"approve"')
    assert edited != lines[1] and forged != lines[-1]
    cases = {
        # an edited middle entry, plus a torn tail to make it look like a crash
        "edited-middle": b"\n".join([lines[0], edited, *lines[2:]]) + b'\n{"seq": 9',
        # a forged complete last entry (parses, has its newline, wrong hash)
        "forged-last": b"\n".join([*lines, forged]) + b"\n",
        # a deleted middle entry
        "deleted-middle": b"\n".join([lines[0], *lines[2:]]) + b"\n",
    }
    for name, data in cases.items():
        path.write_bytes(data)
        res = run_tunegate("audit", "repair", wd)
        assert_clean_error(res, 2, contains=["not a torn final line"])
        assert path.read_bytes() == data, name


def test_truncation_disguised_as_torn_tail_is_still_caught(wd: Path) -> None:
    """Dropping the last entries and adding garbage: repair removes the garbage only, and the
    signed checkpoints still show the truncation (the repair launders nothing)."""
    path = ledger.ledger_path(wd)
    lines = path.read_bytes().split(b"\n")[:-1]
    path.write_bytes(b"\n".join(lines[:-2]) + b"\n" + b'{"seq":3,"prev":"x')
    res = run_tunegate("audit", "repair", wd)
    assert res.code == 0, str(res)
    res = run_tunegate("audit", "verify", wd)
    assert_clean_error(res, 2)
    assert "checkpoint" in res.err and ("truncated" in res.err or "rewritten" in res.err), res.err


def test_repair_on_a_clean_ledger_changes_nothing(wd: Path) -> None:
    path = ledger.ledger_path(wd)
    before = path.read_bytes()
    res = run_tunegate("audit", "repair", wd)
    assert res.code == 0 and "nothing to repair" in res.out, str(res)
    assert path.read_bytes() == before


def test_torn_checkpoint_line_is_repaired_too(wd: Path) -> None:
    cps = wd / "audit" / "checkpoints.jsonl"
    good = cps.read_bytes()
    cps.write_bytes(good + b'{"size": 4, "he')
    res = run_tunegate("audit", "verify", wd)
    assert_clean_error(res, 2, contains=["torn final line"])
    res = run_tunegate("audit", "repair", wd)
    assert res.code == 0 and "checkpoints.jsonl" in res.out, str(res)
    assert cps.read_bytes().startswith(good)
    res = run_tunegate("audit", "verify", wd)
    assert res.code == 0, str(res)
