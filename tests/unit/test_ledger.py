"""The audit ledger: hash chain, all-or-nothing appends, torn-tail detection and repair."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tunegate import ledger
from tunegate.errors import IntegrityError


def _ledger(tmp_path: Path, n: int = 3) -> Path:
    wd = tmp_path / "wd"
    for i in range(n):
        ledger.append_event(wd, f"stage{i}", outputs={f"f{i}": "ab" * 32}, details={"i": i})
    return wd


def test_append_read_verify_roundtrip(tmp_path: Path) -> None:
    wd = _ledger(tmp_path)
    entries = ledger.read_entries(wd)
    assert [e["seq"] for e in entries] == [1, 2, 3]
    assert entries[1]["prev"] == entries[0]["entry_hash"]
    rep = ledger.verify_ledger(wd)
    assert rep.ok and rep.entries == 3 and rep.head == entries[-1]["entry_hash"] and rep.torn_tail is None
    assert ledger.ledger_path(wd).read_bytes().endswith(b"\n")


@pytest.mark.parametrize(
    ("tail", "reason"),
    [
        (b'{"seq": 4, "prev": "ab', "no trailing newline"),
        (b"\x00\x00\x00\x00", "no trailing newline"),
        (b"{not json}\n", "not valid JSON"),
        (b"\n", "not valid JSON"),
    ],
)
def test_torn_tail_is_reported_as_such(tmp_path: Path, tail: bytes, reason: str) -> None:
    wd = _ledger(tmp_path)
    path = ledger.ledger_path(wd)
    good = path.read_bytes()
    path.write_bytes(good + tail)
    rep = ledger.verify_ledger(wd)
    assert not rep.ok and rep.torn_tail is not None
    assert rep.first_bad == 4 and rep.entries == 3
    assert "torn final line" in str(rep.reason) and "audit repair" in str(rep.reason)
    assert rep.torn_tail.reason == reason and rep.torn_tail.offset == len(good)
    with pytest.raises(ledger.TornTailError, match="torn final line"):
        ledger.read_entries(wd)
    assert len(ledger.read_entries(wd, allow_torn_tail=True)) == 3
    # nothing is ever appended after a torn tail (it would glue onto the torn bytes)
    with pytest.raises(ledger.TornTailError):
        ledger.append_event(wd, "more")
    assert path.read_bytes() == good + tail


def test_bad_line_in_the_middle_is_not_a_torn_tail(tmp_path: Path) -> None:
    wd = _ledger(tmp_path)
    path = ledger.ledger_path(wd)
    lines = path.read_bytes().split(b"\n")
    lines[1] = lines[1][:-5]  # entry 2 cut short, entry 3 intact after it
    path.write_bytes(b"\n".join(lines))
    rep = ledger.verify_ledger(wd)
    assert not rep.ok and rep.torn_tail is None and rep.first_bad == 2
    assert "not valid JSON" in str(rep.reason)
    before = path.read_bytes()
    with pytest.raises(IntegrityError, match="not a torn final line"):
        ledger.repair_torn_tail(wd)
    assert path.read_bytes() == before


def test_edited_last_entry_is_tampering_not_torn(tmp_path: Path) -> None:
    """A complete, parseable last line whose hash is wrong was edited: never removed by repair."""
    wd = _ledger(tmp_path)
    path = ledger.ledger_path(wd)
    lines = path.read_text().splitlines()
    ev = json.loads(lines[-1])
    ev["details"] = {"i": 99}
    lines[-1] = json.dumps(ev, sort_keys=True, separators=(",", ":"))
    path.write_text("\n".join(lines) + "\n")
    rep = ledger.verify_ledger(wd)
    assert rep.torn_tail is None and rep.first_bad == 3 and "edited" in str(rep.reason)
    before = path.read_bytes()
    with pytest.raises(IntegrityError, match="only ever"):
        ledger.repair_torn_tail(wd)
    assert path.read_bytes() == before


def test_repair_removes_only_the_tail_and_records_itself(tmp_path: Path) -> None:
    wd = _ledger(tmp_path)
    path = ledger.ledger_path(wd)
    good = path.read_bytes()
    path.write_bytes(good + b'{"seq": 4, "pr')
    res = ledger.repair_torn_tail(wd)
    assert len(res.removed) == 1 and res.removed[0].size == len(b'{"seq": 4, "pr')
    assert res.event is not None and res.event["stage"] == ledger.REPAIR_STAGE and res.event["seq"] == 4
    removed = res.event["details"]["removed_torn_tails"]
    assert removed[0]["file"] == "audit/ledger.jsonl" and removed[0]["bytes"] == 14
    data = path.read_bytes()
    assert data.startswith(good) and data.count(b"\n") == 4
    assert ledger.verify_ledger(wd).ok
    # a second repair has nothing to do and writes nothing
    again = ledger.repair_torn_tail(wd)
    assert again.removed == () and again.event is None and path.read_bytes() == data


def test_repair_of_a_torn_only_line(tmp_path: Path) -> None:
    """The very first append was torn: the repair leaves a one-entry ledger (the repair event)."""
    wd = tmp_path / "wd"
    path = ledger.ledger_path(wd)
    path.parent.mkdir(parents=True)
    path.write_bytes(b'{"seq":1,"prev":"000')
    res = ledger.repair_torn_tail(wd)
    assert res.event is not None and res.event["seq"] == 1
    assert ledger.verify_ledger(wd).ok and ledger.verify_ledger(wd).entries == 1


def test_repair_also_cleans_another_append_only_file(tmp_path: Path) -> None:
    wd = _ledger(tmp_path)
    other = wd / "audit" / "checkpoints.jsonl"
    other.write_bytes(b'{"size":3}\n{"size":')
    res = ledger.repair_torn_tail(wd, also=(other,))
    assert [t.path for t in res.removed] == [other]
    assert other.read_bytes() == b'{"size":3}\n'
    assert res.event is not None and res.event["details"]["removed_torn_tails"][0]["file"] == (
        "audit/checkpoints.jsonl"
    )


def test_split_jsonl_of_clean_and_empty_files(tmp_path: Path) -> None:
    p = tmp_path / "x.jsonl"
    p.write_bytes(b"")
    assert ledger.split_jsonl(p) == ([], None)
    p.write_bytes(b'{"a":1}\n{"b":2}\n')
    assert ledger.split_jsonl(p) == ([b'{"a":1}', b'{"b":2}'], None)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(min_value=0, max_value=10_000))
def test_any_crash_point_is_clean_or_a_repairable_torn_tail(
    tmp_path_factory: pytest.TempPathFactory, cut: int
) -> None:
    """Property: cutting the ledger at ANY byte (a crash at any point of any append) leaves a
    ledger that verifies or reports a torn tail (never "edited" or "reordered"), and the repair
    gives back a verifying ledger whose entries are a prefix of the original ones."""
    wd = _ledger(tmp_path_factory.mktemp("cut"), n=4)
    path = ledger.ledger_path(wd)
    full = path.read_bytes()
    original = ledger.read_entries(wd)
    cut = cut % (len(full) + 1)
    path.write_bytes(full[:cut])
    rep = ledger.verify_ledger(wd)
    assert rep.ok or rep.torn_tail is not None, rep
    ledger.repair_torn_tail(wd)
    after = ledger.read_entries(wd)
    assert ledger.verify_ledger(wd).ok
    kept = [e for e in after if e["stage"] != ledger.REPAIR_STAGE]
    assert kept == original[: len(kept)]
    assert len(kept) == full[:cut].count(b"\n")
