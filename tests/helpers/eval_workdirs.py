"""A tiny, real classification workdir (stories-style sentences, two labels), sealed like the data
gate would leave it: used by evaluation and regression-flow tests."""

from __future__ import annotations

from pathlib import Path

from tunegate.provenance import atomic_write_json

NAMES = ["Lily", "Tom", "Sue", "Ben", "Mia", "Max", "Anna", "Tim", "Sam", "Zoe", "Leo", "Amy", "Jack", "Kim"]
FEELINGS = {
    "happy": ["got a new puppy", "ate a big cake", "played in the sun"],
    "sad": ["lost a red ball", "broke a toy", "missed the bus"],
}


def classification_workdir(tmp_path: Path) -> Path:
    from tunegate.data.split import write_holdout_manifest
    from tunegate.records import Record, content_id, write_records

    recs = []
    for name in NAMES:
        for label, events in FEELINGS.items():
            for ev in events:
                f = {"text": f"{name} {ev}.", "label": label}
                recs.append(Record(id=content_id("classification", f), task="classification", **f))
    holdout = recs[::5][:16]
    rest = [r for r in recs if r not in holdout]
    data = tmp_path / "data"
    write_records(data / "train.jsonl", rest[:-8])
    write_records(data / "validation.jsonl", rest[-8:])
    write_records(data / "holdout.jsonl", holdout)
    write_holdout_manifest(data, holdout, policy_digest="0" * 64, seed=0, holdout_file=data / "holdout.jsonl")
    atomic_write_json(
        data / "data_report.json",
        {"verdict": "pass", "checks": [], "pii": {"residual": {}, "residual_ok": True}},
    )
    from tunegate.data.splits import seal_splits

    seal_splits(tmp_path)
    return tmp_path
