"""The one split reader: a split is read only when its bytes are the ones the data gate recorded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers.datagate_helpers import labelled

from tunegate.data.config import DataPolicy
from tunegate.data.split import SplitResult, assert_not_in_holdout, freeze_holdout, load_holdout_manifest
from tunegate.data.splits import load_split, read_split, seal_splits, split_of_path
from tunegate.errors import InputError, IntegrityError, LeakageError
from tunegate.provenance import atomic_write_json, sha256_file
from tunegate.records import Record, content_id, write_records


def _workdir(tmp_path: Path) -> tuple[Path, list[Record]]:
    recs = labelled({"a": 12, "b": 12})
    wd = tmp_path / "wd"
    (wd / "data").mkdir(parents=True)
    freeze_holdout(
        wd / "data", SplitResult(recs[:16], recs[16:18], recs[18:]), policy=DataPolicy(), policy_digest="t"
    )
    return wd, recs


def _leak_copy(holdout_record: Record) -> str:
    """A hold-out record with a trailing space and a new id: new bytes, new id, same example."""
    text = (holdout_record.text or "") + " "
    fields = {"text": text, "label": holdout_record.label}
    copy = Record(id=content_id("classification", fields), task="classification", **fields)
    assert copy.id != holdout_record.id
    return copy.to_json() + "\n"


def test_reads_the_splits_the_gate_recorded(tmp_path: Path) -> None:
    wd, recs = _workdir(tmp_path)
    assert read_split(wd, "train") == recs[:16]
    assert read_split(wd, "validation") == recs[16:18]
    hold = load_split(wd, "holdout")
    assert hold.records == recs[18:] and hold.sha256 == sha256_file(wd / "data" / "holdout.jsonl")


def test_appended_holdout_copy_is_refused_naming_file_and_digests(tmp_path: Path) -> None:
    wd, recs = _workdir(tmp_path)
    train = wd / "data" / "train.jsonl"
    recorded = sha256_file(train)
    with open(train, "a", encoding="utf-8") as fh:
        fh.write(_leak_copy(recs[20]))
    with pytest.raises(IntegrityError) as err:
        read_split(wd, "train")
    msg = str(err.value)
    assert "train.jsonl" in msg and recorded in msg and sha256_file(train) in msg


def test_digest_is_checked_before_a_record_is_parsed(tmp_path: Path) -> None:
    wd, _ = _workdir(tmp_path)
    with open(wd / "data" / "validation.jsonl", "a", encoding="utf-8") as fh:
        fh.write("this is not JSON\n")
    with pytest.raises(IntegrityError, match="differs from"):  # not the InputError a parse would give
        read_split(wd, "validation")


def test_workdir_without_a_gate_record_is_refused(tmp_path: Path) -> None:
    recs = labelled({"a": 5, "b": 5})
    wd = tmp_path / "wd"
    write_records(wd / "data" / "train.jsonl", recs)
    with pytest.raises(IntegrityError, match="no data gate record"):
        read_split(wd, "train")
    seal_splits(wd)
    assert read_split(wd, "train") == recs


def test_data_report_must_agree(tmp_path: Path) -> None:
    wd, _ = _workdir(tmp_path)
    report = wd / "data" / "data_report.json"
    atomic_write_json(report, {"outputs": {"data/train.jsonl": "0" * 64}})
    seal_splits(wd)  # the ledger now vouches for this (wrong) report
    with pytest.raises(IntegrityError, match=r"data_report\.json"):
        read_split(wd, "train")
    report.write_text("{}", encoding="utf-8")  # a report not the ledgered one
    with pytest.raises(IntegrityError, match=r"data_report\.json"):
        read_split(wd, "train")


def test_holdout_checked_against_ledger_and_manifest(tmp_path: Path) -> None:
    wd, _ = _workdir(tmp_path)
    hold = wd / "data" / "holdout.jsonl"
    lines = hold.read_text(encoding="utf-8").splitlines(keepends=True)
    hold.write_text("".join(lines[:-1]), encoding="utf-8")
    with pytest.raises(IntegrityError, match=r"holdout\.jsonl"):
        read_split(wd, "holdout")
    hold.write_text("".join(lines), encoding="utf-8")
    manifest = wd / "data" / "holdout.manifest.json"
    manifest.write_text(manifest.read_text(encoding="utf-8") + " ", encoding="utf-8")
    with pytest.raises(IntegrityError, match=r"holdout\.manifest\.json"):
        read_split(wd, "holdout")


def test_edited_ledger_is_refused(tmp_path: Path) -> None:
    wd, _ = _workdir(tmp_path)
    led = wd / "audit" / "ledger.jsonl"
    event = json.loads(led.read_text(encoding="utf-8"))
    event["outputs"]["data/train.jsonl"] = "f" * 64
    led.write_text(json.dumps(event) + "\n", encoding="utf-8")
    with pytest.raises(IntegrityError, match="ledger does not verify"):
        read_split(wd, "train")


def test_split_paths(tmp_path: Path) -> None:
    assert split_of_path(tmp_path / "wd" / "data" / "train.jsonl") == (tmp_path / "wd", "train")
    for bad in ("wd/train.jsonl", "wd/data/other.jsonl", "wd/data/train.json"):
        with pytest.raises(InputError):
            split_of_path(tmp_path / bad)
    with pytest.raises(InputError, match="unknown split"):
        read_split(tmp_path, "test")


def test_symlinked_split_is_refused(tmp_path: Path) -> None:
    wd, _ = _workdir(tmp_path)
    train = wd / "data" / "train.jsonl"
    outside = tmp_path / "elsewhere.jsonl"
    train.rename(outside)
    train.symlink_to(outside)
    with pytest.raises(IntegrityError, match="symbolic link"):
        read_split(wd, "train")


def test_training_guard_normalizes_like_the_near_duplicate_check(tmp_path: Path) -> None:
    wd, recs = _workdir(tmp_path)
    manifest = load_holdout_manifest(wd / "data")
    hold = read_split(wd, "holdout")
    copy = Record.model_validate_json(_leak_copy(recs[20]))
    assert_not_in_holdout([copy], manifest)  # by id and hash alone the copy is new...
    with pytest.raises(LeakageError, match="normalized text"):  # ...but not by its text
        assert_not_in_holdout([*recs[:16], copy], manifest, holdout=hold)
    shouted = Record(
        id="x" * 64, task="classification", text=f"  {(recs[19].text or '').upper()}!! ", label="b"
    )
    with pytest.raises(LeakageError):
        assert_not_in_holdout([shouted], manifest, holdout=hold)
    assert_not_in_holdout(recs[:18], manifest, holdout=hold)


def test_tunegate_train_refuses_a_changed_train_split(
    tmp_path: Path, stories260k: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The issue's attack, through the CLI: refused before a record is read or a run folder made."""
    from tunegate.cli import main

    wd, recs = _workdir(tmp_path)
    with open(wd / "data" / "train.jsonl", "a", encoding="utf-8") as fh:
        fh.write(_leak_copy(recs[20]))
    with pytest.raises(SystemExit) as exc:
        main(["train", str(wd), "--model", str(stories260k), "--quiet"])
    err = capsys.readouterr().err
    assert exc.value.code == 2, err
    assert "train.jsonl" in err and "recorded by the data gate" in err and "Traceback" not in err
    assert not (wd / "runs").exists()
