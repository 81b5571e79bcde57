"""Drift detection on real data (shared/data): quiet on a held-back sample, loud on a shift.

Reference: half of Banking77 train (split by content hash). Unshifted: the other half.
Shifted: GSM8K questions (another domain) and Banking77 restricted to five card intents (a
label-mix shift inside the same domain). ``bench/drift.py`` runs the same at 2,000 prompts.
"""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import pytest

from tunegate.data.splits import seal_splits
from tunegate.drift.commands import check_drift
from tunegate.drift.config import DriftPolicy
from tunegate.drift.detect import PromptEncoder
from tunegate.records import Record, content_id

pytestmark = [pytest.mark.slow, pytest.mark.needs_shared]
POLICY = DriftPolicy(max_samples=200, permutations=100)
CARD_INTENTS = {"card_arrival", "card_linking", "card_not_working", "lost_or_stolen_card", "card_swallowed"}


@pytest.fixture(scope="module")
def banking_halves(shared_data: Path) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    with open(shared_data / "banking77" / "train.csv", encoding="utf-8", newline="") as fh:
        rows = [(r["text"], r["category"]) for r in csv.DictReader(fh)]
    first = [r for r in rows if hashlib.sha256(r[0].encode()).digest()[0] < 128]
    second = [r for r in rows if hashlib.sha256(r[0].encode()).digest()[0] >= 128]
    return first, second


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory, banking_halves: tuple) -> Path:
    wd = tmp_path_factory.mktemp("drift-banking")
    (wd / "data").mkdir()
    with open(wd / "data" / "train.jsonl", "w", encoding="utf-8") as fh:
        for text, label in banking_halves[0]:
            fields = {"text": text, "label": label}
            fh.write(
                Record(id=content_id("classification", fields), task="classification", **fields).to_json()
            )
            fh.write("\n")
    seal_splits(wd)  # assembled by hand: record the split in the ledger
    return wd


def _current(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_banking77_held_back_half_is_not_drift(workdir: Path, banking_halves: tuple, tmp_path: Path) -> None:
    cur = _current(tmp_path / "b.jsonl", [{"text": t, "label": lab} for t, lab in banking_halves[1]])
    rep = check_drift(workdir, cur, policy=POLICY, encoder=PromptEncoder()).report
    assert not rep.drifted, [c.reason for c in rep.checks]
    by = {c.name: c for c in rep.checks}
    assert by["domain_auc"].value is not None and by["domain_auc"].value < 0.6
    assert by["embedding_mmd"].p_value is not None and by["embedding_mmd"].p_value > POLICY.alpha
    assert by["label_mix"].status == "ok"


def test_gsm8k_questions_are_drift(workdir: Path, shared_data: Path, tmp_path: Path) -> None:
    lines = (shared_data / "gsm8k" / "test.jsonl").read_text(encoding="utf-8").splitlines()
    cur = _current(tmp_path / "g.jsonl", [{"text": json.loads(line)["question"]} for line in lines])
    rep = check_drift(workdir, cur, policy=POLICY, encoder=PromptEncoder()).report
    assert rep.drifted and {"embedding_mmd", "domain_auc", "length_ks"} <= set(rep.alarms)
    by = {c.name: c for c in rep.checks}
    assert by["domain_auc"].value is not None and by["domain_auc"].value > 0.95
    assert by["label_mix"].status == "skipped"


def test_label_mix_shift_is_drift(workdir: Path, banking_halves: tuple, tmp_path: Path) -> None:
    rows = [{"text": t, "label": lab} for t, lab in banking_halves[1] if lab in CARD_INTENTS]
    rep = check_drift(
        workdir, _current(tmp_path / "l.jsonl", rows), policy=POLICY, encoder=PromptEncoder()
    ).report
    assert "label_mix" in rep.alarms and "embedding_mmd" in rep.alarms
    label = {c.name: c for c in rep.checks}["label_mix"]
    assert label.value is not None and label.value > 0.8 and label.details["unseen_label_share"] == 0.0
