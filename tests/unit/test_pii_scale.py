"""tunegate.pii.scale: contiguous shards, and a sharded anonymizer equal to the one-engine run."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from tunegate.demo_data import write_demo_tickets
from tunegate.errors import StageError
from tunegate.pii.anonymize import PIIEngine
from tunegate.pii.keys import load_pii_key
from tunegate.pii.scale import ShardedAnonymizer, anonymize_shard, shard
from tunegate.policy.schema import load_policy
from tunegate.records import Record, content_id, read_records


def _rec(i: int) -> Record:
    fields = {"text": f"ticket number {i}", "label": "x"}
    return Record(id=content_id("classification", fields), task="classification", **fields)


@pytest.mark.parametrize(("n_records", "n"), [(10, 3), (10, 1), (10, 10), (3, 8), (7, 2), (0, 4)])
def test_shard_is_contiguous_balanced_and_order_preserving(n_records: int, n: int) -> None:
    records = [_rec(i) for i in range(n_records)]
    shards = shard(records, n)
    assert [r for s in shards for r in s] == records
    assert len(shards) == min(n, n_records)
    assert all(shards), "no empty shard"
    if shards:
        sizes = [len(s) for s in shards]
        assert max(sizes) - min(sizes) <= 1
        assert sizes == sorted(sizes, reverse=True)


def test_shard_rejects_zero() -> None:
    with pytest.raises(ValueError):
        shard([_rec(0)], 0)


def _serial_map(fn: Any, args: list[tuple[str, list[str]]]) -> list[Any]:
    return [fn(*a) for a in args]


@pytest.fixture(scope="module")
def tickets(tmp_path_factory: pytest.TempPathFactory) -> list[Record]:
    path = write_demo_tickets(tmp_path_factory.mktemp("demo") / "t.jsonl", n=40, seed=3)
    key = b"scale-test-id-key-0123456789"  # ids are keyed; the module fixture runs before pii_key
    return list(read_records(path, "classification", fields={"group": "customer_id"}, key=key))


@pytest.mark.slow
def test_sharded_anonymizer_equals_one_engine(pii_key: str, tickets: list[Record]) -> None:
    policy = load_policy().pii
    calls: list[int] = []

    def counting_map(fn: Any, args: list[tuple[str, list[str]]]) -> list[Any]:
        calls.append(len(args))
        return _serial_map(fn, args)

    sharded = ShardedAnonymizer(policy, counting_map, n_shards=3)
    got, report = sharded(tickets)
    want, want_report = PIIEngine(policy, load_pii_key()).anonymize_records(tickets)

    assert calls == [3], "one map call with one argument pair per shard, not per record"
    assert sharded.last_shard_sizes == [14, 13, 13]
    assert [r.to_json() for r in got] == [r.to_json() for r in want]
    assert [r.id for r in got] == [r.id for r in tickets]
    assert report.model_dump() == want_report.model_dump()
    assert report.totals, "the demo tickets carry PII, so the merged report must count some"
    assert got != tickets


def test_anonymize_shard_reads_the_key_in_the_worker(
    monkeypatch: pytest.MonkeyPatch, tickets: list[Record]
) -> None:
    from tunegate.errors import DependencyError

    monkeypatch.delenv("TUNEGATE_PII_KEY", raising=False)
    with pytest.raises(DependencyError):
        anonymize_shard(load_policy().pii.model_dump_json(), [tickets[0].to_json()])


@pytest.mark.slow
def test_sharded_anonymizer_rejects_a_lossy_executor(pii_key: str, tickets: list[Record]) -> None:
    def dropping_map(fn: Any, args: list[tuple[str, list[str]]]) -> Sequence[Any]:
        out = _serial_map(fn, args)
        recs, rep = out[0]
        return [(recs[:-1], rep), *out[1:]]

    with pytest.raises(StageError, match="shard 0"):
        ShardedAnonymizer(load_policy().pii, dropping_map, n_shards=2)(tickets[:6])


def test_a_name_found_in_one_shard_is_replaced_in_the_others(pii_key: str) -> None:
    """Issue 12 consistency across shards: shard 2 alone misses the lower-case name; the driver
    replaces it from shard 1's detection, which crosses the process boundary as a keyed digest."""
    import json

    def rec(instruction: str, output: str) -> Record:
        fields = {"instruction": instruction, "input": "", "output": output}
        return Record(id=content_id("instruction", fields), task="instruction", **fields)

    records = [
        rec("Please remember that my name is zorvath.", "Noted."),
        rec("Write the name on the badge.", "zorvath"),
    ]
    policy = load_policy().pii
    alone, _ = PIIEngine(policy, load_pii_key()).anonymize_records(records[1:])
    assert alone[0].output == "zorvath", "the premise: shard 2 alone misses it"
    seen: list[Any] = []

    def spying_map(fn: Any, args: list[tuple[str, list[str]]]) -> list[Any]:
        out = _serial_map(fn, args)
        seen.extend(out)
        return out

    got, report = ShardedAnonymizer(policy, spying_map, n_shards=2)(records)
    want, want_report = PIIEngine(policy, load_pii_key()).anonymize_records(records)
    assert [r.to_json() for r in got] == [r.to_json() for r in want]
    assert "zorvath" not in json.dumps([r.model_dump() for r in got]).casefold()
    assert report.totals == want_report.totals
    assert "zorvath" not in json.dumps([rep for _, rep in seen]).casefold()  # digests, never the name


MOON = (
    "1. Craters: The surface of the moon is covered in impact craters.\n\n2. Lunar Maria: The dark "
    "areas on the moon, visible from Earth, are called lunar maria.\n\n3. Lack of Atmosphere: The "
    "moon has no significant atmosphere."
)


@pytest.mark.parametrize("n_shards", [2, 3])
def test_shards_keep_a_word_its_record_writes_in_lower_case(pii_key: str, n_shards: int) -> None:
    """The lower-case rule holds across shards: ``Maria`` detected in shard 1 is replaced in
    ``Who is Maria?`` but not in ``2. Lunar Maria: ... lunar maria``, as one engine does, whether
    the driver (3 shards: one record each) or a shard's own engine (2 shards) propagates it."""

    def rec(instruction: str, output: str) -> Record:
        fields = {"instruction": instruction, "input": "", "output": output}
        return Record(id=content_id("instruction", fields), task="instruction", **fields)

    records = [
        rec("Maria invited 4 of her friends over.", "Maria gave each friend 2 balloons."),
        rec("List three features of the moon.", MOON),
        rec("Who is Maria?", "A friend of mine."),
    ]
    policy = load_policy().pii
    got, report = ShardedAnonymizer(policy, _serial_map, n_shards=n_shards)(records)
    want, want_report = PIIEngine(policy, load_pii_key()).anonymize_records(records)
    assert [r.to_json() for r in got] == [r.to_json() for r in want]
    assert report.totals == want_report.totals
    assert got[1].output == records[1].output and "Maria" not in (got[2].instruction or "")


def test_propagated_names_never_rewrite_a_placeholder() -> None:
    """A name detected in one shard ("PESEL", say) must not be replaced inside another shard's
    placeholders (``<PL_PESEL_25433533>``), only where it stands as a word."""
    text = "My PESEL is <PL_PESEL_25433533>; ask PESEL."
    spans = PIIEngine.scan_names([text], lambda key: "PERSON" if key == "PESEL" else None)[0]
    assert [text[s.start : s.end] for s in spans] == ["PESEL", "PESEL"]
    assert all(s.end <= text.index("<") or s.start > text.index(">") for s in spans)


def test_a_structured_value_found_once_is_replaced_everywhere_in_any_layout(pii_key: str) -> None:
    """``46701234567`` is a phone under ``phone`` (read with its key) but nothing in ``ref 46701234567``;
    once found it is replaced wherever it stands, in one engine and across shards (keyed digests
    only); a longer run of digits that contains it is left alone. Layouts share a key (below)."""
    import json
    import re

    def rec(text: str, extra: dict[str, Any] | None = None) -> Record:
        fields = {"text": text, "label": "x"}
        cid = content_id("classification", fields)
        return Record(id=cid, task="classification", **fields, extra=extra or {})

    records = [
        rec("please call me back", {"contact": {"phone": 46701234567}}),
        rec("ref 46701234567 logged after 467012345678"),
    ]
    policy = load_policy().pii
    alone, _ = PIIEngine(policy, load_pii_key()).anonymize_records(records[1:])
    assert "ref 46701234567 " in (alone[0].text or ""), "the premise: alone, the bare number is no phone"
    for got, _report in (
        PIIEngine(policy, load_pii_key()).anonymize_records(records),
        ShardedAnonymizer(policy, _serial_map, n_shards=2)(records),
    ):
        text = got[1].text or ""
        assert text.startswith("ref <PHONE_NUMBER_") and text.endswith(" logged after 467012345678"), text
        assert str(got[0].extra["contact"]["phone"]).startswith("<PHONE_NUMBER_")
        assert not re.search(r"\b46701234567\b", json.dumps([r.model_dump() for r in got]))


def test_value_keys_ignore_layout_and_short_values() -> None:
    from tunegate.pii.anonymize import _value_key

    assert _value_key("+46 70 123 45 67") == _value_key("46701234567") == "#46701234567"
    assert _value_key("Anna99@Gmail.com") == _value_key("anna99@gmail.com")
    assert _value_key("DE89 3704 0044 0532 0130 00") == _value_key("de89370400440532013000")
    assert _value_key("10.0.0.1") is None and _value_key("Zorvath") is None
