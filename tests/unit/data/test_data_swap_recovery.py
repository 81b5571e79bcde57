"""A `data/` swap interrupted by a crash is finished or rolled back on the next start: the ledger decides."""

from __future__ import annotations

from pathlib import Path

from helpers.datagate_helpers import labelled

from tunegate import ledger
from tunegate.data.config import DataPolicy
from tunegate.data.prepare import recover_data_swap
from tunegate.data.split import SplitResult, freeze_holdout
from tunegate.data.splits import read_split
from tunegate.provenance import atomic_write_json, sha256_file


def _data(folder: Path, salt: str) -> None:
    """A complete data folder as prepare writes it (splits, manifest, report), not yet ledgered."""
    recs = labelled({"a": 10, "b": 10}, salt=salt)
    build = folder.parent / f"build-{salt}"  # not named data/: nothing is ledgered here
    build.mkdir(parents=True)
    freeze_holdout(
        build, SplitResult(recs[:14], recs[14:16], recs[16:]), policy=DataPolicy(), policy_digest="t"
    )
    outputs = {f"data/{p.name}": sha256_file(p) for p in sorted(build.iterdir())}
    atomic_write_json(build / "data_report.json", {"verdict": "pass", "outputs": outputs})
    build.rename(folder)


def _record(wd: Path, folder: Path) -> None:
    """Append the ledger event prepare appends after a swap, for the outputs in ``folder``."""
    outputs = {f"data/{p.name}": sha256_file(p) for p in sorted(folder.iterdir())}
    ledger.append_event(wd, "prepare", outputs=outputs, details={"verdict": "pass"})


def _recorded_workdir(tmp_path: Path) -> Path:
    wd = tmp_path / "wd"
    wd.mkdir()
    _data(wd / "data", "old")
    _record(wd, wd / "data")
    return wd


def test_crash_between_the_renames_rolls_back_to_the_recorded_data(tmp_path: Path) -> None:
    wd = _recorded_workdir(tmp_path)
    before = read_split(wd, "train")
    # the crash: old data/ moved aside, the new folder not yet renamed into place
    (wd / ".data.old.x1").mkdir()
    (wd / "data").rename(wd / ".data.old.x1" / "data")
    _data(wd / ".data.n3w", "new")
    actions = recover_data_swap(wd)
    assert any("restored" in a for a in actions)
    assert sorted(p.name for p in wd.iterdir() if p.name.startswith(".data")) == []
    assert read_split(wd, "train") == before


def test_crash_after_the_swap_before_the_ledger_event_rolls_back(tmp_path: Path) -> None:
    wd = _recorded_workdir(tmp_path)
    before = read_split(wd, "train")
    (wd / ".data.old.x2").mkdir()
    (wd / "data").rename(wd / ".data.old.x2" / "data")
    _data(wd / "data", "new")  # swapped in, but the ledger never heard of it
    actions = recover_data_swap(wd)
    assert "removed an unrecorded data/" in actions
    assert read_split(wd, "train") == before and not list(wd.glob(".data.*"))


def test_recorded_swap_is_finished(tmp_path: Path) -> None:
    wd = _recorded_workdir(tmp_path)
    # the ledger records the new folder, which a crash left outside data/ (old one moved aside)
    (wd / ".data.old.x3").mkdir()
    (wd / "data").rename(wd / ".data.old.x3" / "data")
    _data(wd / ".data.f1n", "new")
    _record(wd, wd / ".data.f1n")
    new_train = (wd / ".data.f1n" / "train.jsonl").read_bytes()
    assert any("restored" in a and ".data.f1n" in a for a in recover_data_swap(wd))
    assert (wd / "data" / "train.jsonl").read_bytes() == new_train
    assert read_split(wd, "validation") and not list(wd.glob(".data.*"))


def test_temp_leftovers_are_removed_and_recorded_data_kept(tmp_path: Path) -> None:
    wd = _recorded_workdir(tmp_path)
    before = (wd / "data" / "train.jsonl").read_bytes()
    _data(wd / ".data.half", "new")
    assert recover_data_swap(wd) == ["removed leftover .data.half"]
    assert (wd / "data" / "train.jsonl").read_bytes() == before
    assert recover_data_swap(wd) == []
