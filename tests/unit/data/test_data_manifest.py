"""The frozen hold-out manifest: byte-identical re-runs, verification, refusal, training guard."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from helpers.datagate_helpers import cls, labelled

from tunegate.data.config import DataPolicy
from tunegate.data.split import (
    MANIFEST_NAME,
    HoldoutManifest,
    assert_not_in_holdout,
    freeze_holdout,
    load_holdout_manifest,
    split_records,
    verify_holdout,
    write_holdout_manifest,
)
from tunegate.errors import IntegrityError, LeakageError
from tunegate.provenance import sha256_file
from tunegate.records import Record, record_hash, write_records

DIGEST = "d" * 64


def _freeze(data_dir: Path, recs: list[Record], policy: DataPolicy) -> HoldoutManifest:
    return freeze_holdout(data_dir, split_records(recs, policy), policy=policy, policy_digest=DIGEST)


@pytest.fixture()
def frozen(tmp_path: Path, policy: DataPolicy) -> tuple[Path, HoldoutManifest, list[Record]]:
    recs = labelled({"a": 40, "b": 40})
    data = tmp_path / "data"
    return data, _freeze(data, recs, policy), recs


def test_manifest_is_byte_identical_for_shuffled_input(tmp_path: Path, policy: DataPolicy) -> None:
    recs = labelled({"a": 50, "b": 30, "c": 20})
    shuffled = recs[:]
    random.Random(7).shuffle(shuffled)
    _freeze(tmp_path / "one", recs, policy)
    _freeze(tmp_path / "two", shuffled, policy)
    for name in (MANIFEST_NAME, "holdout.jsonl", "train.jsonl", "validation.jsonl"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes(), name


def test_manifest_content(frozen: tuple[Path, HoldoutManifest, list[Record]], policy: DataPolicy) -> None:
    data, manifest, _ = frozen
    doc = json.loads((data / MANIFEST_NAME).read_text())
    assert set(doc) == {
        "schema_version",
        "tunegate_version",
        "holdout_file",
        "holdout_sha256",
        "seed",
        "policy_digest",
        "fractions",
        "counts",
        "records",
    }
    assert doc["schema_version"] == 1 and doc["seed"] == policy.seed and doc["policy_digest"] == DIGEST
    assert doc["holdout_file"] == "holdout.jsonl"
    assert doc["holdout_sha256"] == sha256_file(data / "holdout.jsonl")
    assert doc["fractions"] == {"holdout": 0.15, "validation": 0.1}
    assert doc["counts"] == {"total": 12, "per_label": {"a": 6, "b": 6}}
    lines = (data / "holdout.jsonl").read_text().splitlines()
    for n, (entry, line) in enumerate(zip(doc["records"], lines, strict=True), start=1):
        rec = Record.model_validate_json(line)
        assert entry == {"id": rec.id, "hash": record_hash(rec), "line": n}
    assert verify_holdout(data) == manifest == load_holdout_manifest(data)


def _rewrite(path: Path, lines: list[str], trailing_newline: bool = True) -> None:
    path.write_text("\n".join(lines) + ("\n" if trailing_newline else ""), encoding="utf-8")


def test_verify_catches_an_edited_line(frozen: tuple[Path, HoldoutManifest, list[Record]]) -> None:
    data, manifest, _ = frozen
    path = data / "holdout.jsonl"
    lines = path.read_text().splitlines()
    rec = Record.model_validate_json(lines[1])
    lines[1] = rec.model_copy(update={"label": "b" if rec.label == "a" else "a"}).to_json()
    _rewrite(path, lines)
    with pytest.raises(
        IntegrityError, match=rf"line 2 changed: expected record {manifest.records[1].id[:12]}"
    ):
        verify_holdout(data)


def test_verify_catches_an_added_line(frozen: tuple[Path, HoldoutManifest, list[Record]]) -> None:
    data, _, _ = frozen
    path = data / "holdout.jsonl"
    lines = path.read_text().splitlines()
    extra = (data / "train.jsonl").read_text().splitlines()[0]
    _rewrite(path, [*lines, extra])
    with pytest.raises(IntegrityError, match=rf"line {len(lines) + 1} added"):
        verify_holdout(data)


def test_verify_catches_a_removed_line(frozen: tuple[Path, HoldoutManifest, list[Record]]) -> None:
    data, _, _ = frozen
    path = data / "holdout.jsonl"
    lines = path.read_text().splitlines()
    _rewrite(path, lines[:-1])
    with pytest.raises(IntegrityError, match=rf"line {len(lines)} removed"):
        verify_holdout(data)


def test_verify_catches_a_byte_change_outside_lines(
    frozen: tuple[Path, HoldoutManifest, list[Record]],
) -> None:
    data, _, _ = frozen
    path = data / "holdout.jsonl"
    _rewrite(path, path.read_text().splitlines(), trailing_newline=False)
    with pytest.raises(IntegrityError, match="file sha256"):
        verify_holdout(data)


def test_verify_without_manifest_or_file(
    tmp_path: Path, frozen: tuple[Path, HoldoutManifest, list[Record]]
) -> None:
    with pytest.raises(IntegrityError, match="no frozen hold-out manifest"):
        verify_holdout(tmp_path)
    data, _, _ = frozen
    (data / "holdout.jsonl").unlink()
    with pytest.raises(IntegrityError, match="missing"):
        verify_holdout(data)


def test_malformed_manifest_is_an_integrity_error(frozen: tuple[Path, HoldoutManifest, list[Record]]) -> None:
    data, _, _ = frozen
    doc = json.loads((data / MANIFEST_NAME).read_text())
    del doc["records"][0]["hash"]
    (data / MANIFEST_NAME).write_text(json.dumps(doc))
    with pytest.raises(IntegrityError, match=r"malformed at records\.0\.hash"):
        load_holdout_manifest(data)


def test_a_frozen_hold_out_is_never_replaced(
    frozen: tuple[Path, HoldoutManifest, list[Record]], policy: DataPolicy
) -> None:
    data, manifest, _ = frozen
    before = (data / MANIFEST_NAME).read_bytes()
    holdout = [Record.model_validate_json(x) for x in (data / "holdout.jsonl").read_text().splitlines()]
    same = write_holdout_manifest(
        data,
        holdout,
        policy_digest=DIGEST,
        seed=policy.seed,
        holdout_file=data / "holdout.jsonl",
        fractions={"holdout": 0.15, "validation": 0.1},
    )
    assert same == manifest and (data / MANIFEST_NAME).read_bytes() == before
    write_records(data / "holdout.jsonl", holdout[:-1])
    with pytest.raises(IntegrityError, match="already frozen"):
        write_holdout_manifest(
            data, holdout[:-1], policy_digest=DIGEST, seed=policy.seed, holdout_file=data / "holdout.jsonl"
        )
    assert (data / MANIFEST_NAME).read_bytes() == before


def test_manifest_refuses_records_that_are_not_the_file(tmp_path: Path) -> None:
    a, b = cls("one two three", "a"), cls("four five six", "b")
    write_records(tmp_path / "holdout.jsonl", [a, b])
    with pytest.raises(IntegrityError, match="line 1: does not hold record"):
        write_holdout_manifest(
            tmp_path, [b, a], policy_digest=DIGEST, seed=1, holdout_file=tmp_path / "holdout.jsonl"
        )
    with pytest.raises(IntegrityError, match="holds 2 line"):
        write_holdout_manifest(
            tmp_path, [a], policy_digest=DIGEST, seed=1, holdout_file=tmp_path / "holdout.jsonl"
        )


def test_assert_not_in_holdout(frozen: tuple[Path, HoldoutManifest, list[Record]]) -> None:
    data, manifest, _ = frozen
    train = [Record.model_validate_json(x) for x in (data / "train.jsonl").read_text().splitlines()]
    holdout = [Record.model_validate_json(x) for x in (data / "holdout.jsonl").read_text().splitlines()]
    assert_not_in_holdout(train, manifest)  # no error
    # Same id with a changed extra (a different hash) is still refused: ids name the example.
    renamed = holdout[0].model_copy(update={"extra": {"note": "copied"}})
    assert record_hash(renamed) != record_hash(holdout[0])
    with pytest.raises(LeakageError, match=r"2 record\(s\)") as exc:
        assert_not_in_holdout([*train, renamed, holdout[3]], manifest)
    assert holdout[3].id[:12] in str(exc.value) and holdout[0].id[:12] in str(exc.value)
    # A manifest entry matched by hash alone (its id differs) still refuses the record.
    by_hash = manifest.model_copy(
        update={"records": [manifest.records[1].model_copy(update={"id": "x" * 64})]}
    )
    assert holdout[1].id not in by_hash.ids
    with pytest.raises(LeakageError, match=r"1 record\(s\)"):
        assert_not_in_holdout([*train, holdout[1]], by_hash)


def test_freeze_into_a_relative_data_dir(
    tmp_path: Path, policy: DataPolicy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A relative data dir (``wd/data`` from the current folder) is not joined onto itself."""
    recs = labelled({"a": 40, "b": 40})
    _freeze(tmp_path / "absolute", recs, policy)
    monkeypatch.chdir(tmp_path)
    manifest = _freeze(Path("wd") / "data", recs, policy)
    assert manifest.holdout_file == "holdout.jsonl"
    assert (tmp_path / "wd" / "data" / MANIFEST_NAME).read_bytes() == (
        tmp_path / "absolute" / MANIFEST_NAME
    ).read_bytes()
