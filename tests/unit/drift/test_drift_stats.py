"""Drift statistics and input handling that need no encoder (fast, always run)."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from tunegate.data.splits import seal_splits
from tunegate.drift.config import DRIFT_CHECKS, DriftPolicy
from tunegate.drift.detect import (
    _BottomK,
    ascii_letter_share,
    distribution_shift,
    domain_classifier_auc,
    language_mix,
    language_of,
    mmd_permutation_test,
    read_current,
    read_reference,
)
from tunegate.errors import InputError, IntegrityError
from tunegate.records import Record, content_id


def _naive_mmd2(x: np.ndarray, y: np.ndarray, gamma: float) -> float:
    def k(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.exp(-gamma * np.sum((a - b) ** 2)))

    n, m = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i, j in itertools.permutations(range(n), 2)) / (n * (n - 1))
    yy = sum(k(y[i], y[j]) for i, j in itertools.permutations(range(m), 2)) / (m * (m - 1))
    xy = sum(k(a, b) for a in x for b in y) / (n * m)
    return xx + yy - 2 * xy


def test_mmd_matches_the_textbook_unbiased_estimator() -> None:
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(9, 3)), rng.normal(0.5, 1.0, size=(7, 3))
    res = mmd_permutation_test(x, y, permutations=20, seed=0)
    gamma = 1.0 / (2.0 * res["bandwidth"] ** 2)
    assert res["mmd2"] == pytest.approx(_naive_mmd2(x, y, gamma), rel=1e-9, abs=1e-12)


def test_mmd_separates_shifted_from_unshifted_samples() -> None:
    rng = np.random.default_rng(0)
    same = mmd_permutation_test(rng.normal(size=(150, 8)), rng.normal(size=(150, 8)), permutations=200)
    shifted = mmd_permutation_test(
        rng.normal(size=(150, 8)), rng.normal(0.6, 1, size=(150, 8)), permutations=200
    )
    assert same["p_value"] > 0.05 and abs(same["mmd2"]) < 0.01
    assert shifted["p_value"] == pytest.approx(1 / 201) and shifted["mmd2"] > 0.05
    again = mmd_permutation_test(rng.normal(size=(3, 2)) * 0 + 1, np.ones((4, 2)))
    assert again == {"mmd2": 0.0, "p_value": 1.0, "bandwidth": 0.0}


def test_mmd_is_deterministic_for_a_seed() -> None:
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(40, 4)), rng.normal(size=(30, 4))
    assert mmd_permutation_test(x, y, seed=3) == mmd_permutation_test(x, y, seed=3)


def test_domain_classifier_auc() -> None:
    rng = np.random.default_rng(0)
    auc_same, p_same = domain_classifier_auc(rng.normal(size=(120, 16)), rng.normal(size=(120, 16)))
    auc_far, p_far = domain_classifier_auc(rng.normal(size=(120, 16)), rng.normal(1.0, 1, size=(120, 16)))
    assert auc_same < 0.65 and p_same > 0.01
    assert auc_far > 0.95 and p_far < 1e-6


def test_distribution_shift() -> None:
    same = distribution_shift({"a": 50, "b": 50}, {"a": 5, "b": 5})
    assert same["tv"] == 0.0 and same["p_value"] == pytest.approx(1.0)
    moved = distribution_shift({"a": 100, "b": 100}, {"a": 180, "c": 20})
    assert moved["tv"] == pytest.approx(0.5) and moved["p_value"] < 1e-6
    assert distribution_shift({"a": 3}, {"a": 9}) == {"tv": 0.0, "chi2": 0.0, "p_value": 1.0}
    with pytest.raises(ValueError):
        distribution_shift({}, {"a": 1})


@pytest.mark.parametrize(
    ("text", "bucket"),
    [
        ("I am still waiting on my card, why is it not here?", "en"),
        ("Ich habe meine Karte verloren, was kann ich tun?", "de"),
        ("Pourquoi ma carte est bloquée et comment je la débloque ?", "fr"),
        ("¿Por qué no puedo usar mi tarjeta en el cajero?", "es"),
        ("Perché la mia carta non funziona con il bancomat?", "it"),
        ("Waarom werkt mijn kaart niet bij de automaat?", "nl"),
        ("Почему моя карта заблокирована?", "cyrillic"),
        ("我的银行卡为什么被冻结了", "cjk"),
        ("カードが届きません", "japanese"),
        ("카드가 작동하지 않습니다", "korean"),
        ("Xyzzy plugh frobozz", "latin_other"),
        ("1234 5678 ??", "none"),
        ("", "none"),
    ],
)
def test_language_of(text: str, bucket: str) -> None:
    assert language_of(text) == bucket


def test_language_mix_and_ascii_share() -> None:
    assert language_mix(["my card is lost", "Почему моя карта", "the app"]) == {"en": 2, "cyrillic": 1}
    assert ascii_letter_share(["abc", "Почему"]) == pytest.approx(0.5)
    assert ascii_letter_share(["123"]) == 0.0


def test_bottom_k_sample_is_order_independent_and_bounded() -> None:
    texts = [f"prompt number {i}" for i in range(500)]
    a, b = _BottomK(50, seed=0), _BottomK(50, seed=0)
    for i, t in enumerate(texts):
        a.add(i + 1, t)
    for i, t in enumerate(reversed(texts)):
        b.add(i + 1, t)
    assert len(a.texts()) == 50 and a.texts() == b.texts()
    c = _BottomK(50, seed=1)
    for i, t in enumerate(texts):
        c.add(i + 1, t)
    assert c.texts() != a.texts()


def test_policy_defaults_and_validation() -> None:
    p = DriftPolicy()
    assert p.checks == list(DRIFT_CHECKS) and p.max_samples == 2000
    with pytest.raises(ValidationError):
        DriftPolicy(auc_threshold=0.5)
    with pytest.raises(ValidationError):
        DriftPolicy(checks=["embeding_mmd"])
    with pytest.raises(ValidationError):
        DriftPolicy(unknown=1)
    with pytest.raises(ValidationError, match="smallest p-value"):
        DriftPolicy(permutations=50, alpha=0.01)
    assert DriftPolicy(permutations=50, alpha=0.05).permutations == 50
    with pytest.raises(ValidationError):
        p.alpha = 0.5  # frozen
    for name, field in DriftPolicy.model_fields.items():
        assert field.description, name


# -- reading inputs -----------------------------------------------------------------------------
def _write_train(wd: Path, rows: list[tuple[str, str | None]]) -> None:
    (wd / "data").mkdir(parents=True, exist_ok=True)
    with open(wd / "data" / "train.jsonl", "w", encoding="utf-8") as fh:
        for text, label in rows:
            fields = {"text": text, "label": label}
            fh.write(
                Record(id=content_id("classification", fields), task="classification", **fields).to_json()
            )
            fh.write("\n")
    seal_splits(wd)  # a workdir assembled by hand: record its split in the ledger


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_read_reference(tmp_path: Path) -> None:
    _write_train(tmp_path, [(f"text {i}", "a" if i % 3 else "b") for i in range(30)])
    ref = read_reference(tmp_path, DriftPolicy(max_samples=50))
    assert ref.rows == 30 and len(ref.texts) == 30 and ref.label_counts == {"a": 20, "b": 10}
    with pytest.raises(InputError, match=r"train\.jsonl"):
        read_reference(tmp_path / "nowhere", DriftPolicy())
    with open(tmp_path / "data" / "train.jsonl", "a", encoding="utf-8") as fh:
        fh.write('{"id": "x", "task": "classification", "text": 3}\n')
    with pytest.raises(IntegrityError, match="differs from"):  # changed after the gate's record
        read_reference(tmp_path, DriftPolicy())
    seal_splits(tmp_path)
    with pytest.raises(InputError) as exc:
        read_reference(tmp_path, DriftPolicy())
    assert exc.value.line == 31 and exc.value.field == "text"


def test_read_current_text_messages_labels_and_predictions(tmp_path: Path) -> None:
    policy = DriftPolicy(min_samples=10)
    rows = [{"text": f"question {i}", "label": "x" if i < 15 else "y", "prediction": "z"} for i in range(20)]
    cur = read_current(_jsonl(tmp_path / "a.jsonl", rows), policy)
    assert cur.rows == 20 and cur.label_counts == {"x": 15, "y": 5} and cur.label_source == "label"

    chats = [
        {
            "messages": [
                {"role": "system", "content": "be kind"},
                {"role": "user", "content": f"hi {i}"},
                {"role": "assistant", "content": "SECRET ANSWER"},
            ],
            "prediction": 1,
        }
        for i in range(12)
    ]
    cur = read_current(_jsonl(tmp_path / "b.jsonl", chats), policy)
    assert cur.label_source == "prediction" and cur.label_counts == {"1": 12}
    assert all(t.startswith("be kind\nhi ") and "SECRET" not in t for t in cur.texts)

    csv_path = tmp_path / "c.csv"
    csv_path.write_text(
        "body,category\n" + "".join(f"row {i},c{i % 2}\n" for i in range(12)), encoding="utf-8"
    )
    cur = read_current(csv_path, DriftPolicy(min_samples=10, text_field="body", label_field="category"))
    assert cur.rows == 12 and cur.label_counts == {"c0": 6, "c1": 6}
    assert len(cur.sha256) == 64


@pytest.mark.parametrize(
    ("rows", "line", "field"),
    [
        ([{"text": "ok"}] * 11 + [{"other": "no prompt"}], 12, "text"),
        ([{"text": "ok"}] * 3 + [{"text": 5}], 4, "text"),
        ([{"messages": [{"role": "user"}]}], 1, "messages.0"),
        ([{"text": "ok", "label": [1]}], 1, "label"),
    ],
)
def test_read_current_rejects_bad_rows(tmp_path: Path, rows: list[dict], line: int, field: str) -> None:
    with pytest.raises(InputError) as exc:
        read_current(_jsonl(tmp_path / "bad.jsonl", rows), DriftPolicy(min_samples=10))
    assert exc.value.line == line and exc.value.field == field


def test_read_current_needs_enough_rows(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="at least 20"):
        read_current(_jsonl(tmp_path / "few.jsonl", [{"text": "a"}] * 5), DriftPolicy())
    with pytest.raises(InputError):
        read_current(tmp_path / "missing.jsonl", DriftPolicy())
