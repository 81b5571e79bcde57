"""Human evaluation export (stratified, blind) and import (unblinding, kappa)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from tunegate.errors import InputError
from tunegate.evaluation.human import (
    export_human_sample,
    fleiss_kappa,
    import_human_ratings,
    stratified_sample,
)
from tunegate.evaluation.scoring import Predictions
from tunegate.records import Record, content_id


def _recs(n: int) -> list[Record]:
    out = []
    for i in range(n):
        label = ["a", "b", "c"][i % 3] if i % 10 else "rare"
        text = f"text number {i}"
        out.append(
            Record(
                id=content_id("classification", {"text": text, "label": label}),
                task="classification",
                text=text,
                label=label,
            )
        )
    return out


def test_stratified_sample_covers_every_label() -> None:
    recs = _recs(300)
    idx = stratified_sample(recs, 60, seed=0)
    assert len(idx) == 60 and len(set(idx)) == 60
    assert {recs[i].label for i in idx} == {"a", "b", "c", "rare"}
    assert stratified_sample(recs, 60, seed=0) == idx


def test_fleiss_kappa_known_values() -> None:
    assert fleiss_kappa(np.array([[3, 0, 0], [0, 3, 0], [0, 0, 3]])) == pytest.approx(1.0)
    # Fleiss (1971)-style check: two raters, 4 items, chance-level agreement pattern
    table = np.array([[2, 0], [0, 2], [1, 1], [1, 1]])
    p_j = np.array([0.5, 0.5])
    p_bar = (1 + 1 + 0 + 0) / 4
    assert fleiss_kappa(table) == pytest.approx((p_bar - (p_j**2).sum()) / (1 - (p_j**2).sum()))


def test_round_trip(tmp_path: Path) -> None:
    recs = _recs(120)
    ids = [r.id for r in recs]
    base = Predictions(ids, [f"base {i}" for i in range(120)])
    tuned = Predictions(ids, [f"tuned {i}" for i in range(120)])
    paths = export_human_sample(recs, base, tuned, tmp_path, n=50, seed=0)
    rows = list(csv.DictReader(paths["csv"].open()))
    assert len(rows) == 50
    assert "tuned" not in paths["html"].read_text().split("<body>")[1].replace("tuned ", "")  # blind
    key = json.loads(paths["key"].read_text())["items"]
    sides = {v["a"] for v in key.values()}
    assert sides == {"tuned", "baseline"}
    # two raters who always prefer the tuned output -> win rate 1, perfect agreement
    ratings = tmp_path / "ratings.csv"
    with ratings.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["rater", "item", "preference"])
        for rater in ("r1", "r2"):
            for row in rows:
                is_a = row["output_a"].startswith("tuned")
                w.writerow([rater, row["item"], "A" if is_a else "B"])
    ev = import_human_ratings(ratings, paths["key"])
    assert (ev.n_items, ev.n_raters, ev.n_ratings) == (50, 2, 100)
    assert ev.tuned_win_rate == 1.0 and ev.baseline_win_rate == 0.0
    assert ev.fleiss_kappa == pytest.approx(1.0)


def test_bad_preference_names_line_and_field(tmp_path: Path) -> None:
    p = tmp_path / "r.csv"
    p.write_text("rater,item,preference\nr1,item-001,maybe\n")
    with pytest.raises(InputError, match=r"line 2.*preference"):
        import_human_ratings(p, tmp_path / "key.json")
