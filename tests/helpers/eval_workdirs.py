"""Tiny, real workdirs sealed like the data gate would leave them: a classification one
(stories-style sentences, two labels) for evaluation and regression-flow tests, and an instruction
one (one-line stories) for the stories260k evaluation and device tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tunegate.provenance import atomic_write_json

NAMES = ["Lily", "Tom", "Sue", "Ben", "Mia", "Max", "Anna", "Tim", "Sam", "Zoe", "Leo", "Amy", "Jack", "Kim"]
FEELINGS = {
    "happy": ["got a new puppy", "ate a big cake", "played in the sun"],
    "sad": ["lost a red ball", "broke a toy", "missed the bus"],
}


def _sealed(tmp_path: Path, recs: list[Any], holdout: list[Any], report: dict[str, Any]) -> Path:
    """Write train (all but the hold-out and the last 8), validation (8) and hold-out splits, the
    hold-out manifest and the data report, then seal the splits as the data gate would."""
    from tunegate.data.split import write_holdout_manifest
    from tunegate.data.splits import seal_splits
    from tunegate.records import write_records

    rest = [r for r in recs if r not in holdout]
    data = tmp_path / "data"
    write_records(data / "train.jsonl", rest[:-8])
    write_records(data / "validation.jsonl", rest[-8:])
    write_records(data / "holdout.jsonl", holdout)
    write_holdout_manifest(data, holdout, policy_digest="0" * 64, seed=0, holdout_file=data / "holdout.jsonl")
    atomic_write_json(data / "data_report.json", report)
    seal_splits(tmp_path)
    return tmp_path


def classification_workdir(tmp_path: Path) -> Path:
    from tunegate.records import Record, content_id

    recs = []
    for name in NAMES:
        for label, events in FEELINGS.items():
            for ev in events:
                f = {"text": f"{name} {ev}.", "label": label}
                recs.append(Record(id=content_id("classification", f), task="classification", **f))
    report = {"verdict": "pass", "checks": [], "pii": {"residual": {}, "residual_ok": True}}
    return _sealed(tmp_path, recs, recs[::5][:16], report)


STORY_NAMES = [
    "Lily",
    "Tom",
    "Sue",
    "Ben",
    "Mia",
    "Max",
    "Anna",
    "Tim",
    "Sam",
    "Zoe",
    "Leo",
    "Amy",
    "Jack",
    "Kim",
    "Joe",
    "Eve",
    "Dan",
    "Meg",
    "Ray",
    "Liv",
]
THINGS = ["ball", "kite", "cake", "dog", "boat"]


def _story_records() -> list:
    from tunegate.records import Record, content_id

    out = []
    for name in STORY_NAMES:
        for thing in THINGS:
            fields = {
                "instruction": f"Tell a short story about {name}.",
                "input": f"{name} has a {thing}.",
                "output": f"{name} played with the {thing} all day and was very happy.",
            }
            out.append(Record(id=content_id("instruction", fields), task="instruction", **fields))
    return out


def instruction_workdir(tmp_path: Path) -> Path:
    """100 instruction records (a name, a thing, a one-line story), 16 held out, sealed."""

    recs = _story_records()  # 100
    report = {
        "verdict": "pass",
        "checks": [{"name": "sizes", "passed": True, "figures": {}, "message": "", "severity": "error"}],
        "pii": {"residual": {}, "residual_ok": True, "regex_only": False},
    }
    return _sealed(tmp_path, recs, [r for k, r in enumerate(recs) if k % 4 == 0][:16], report)
