"""Human evaluation export (stratified, blind) and import (unblinding, kappa)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

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


def _fill(src: Path, dst: Path, rater: str, choose: Any) -> None:
    """What a reviewer does with the exported CSV: write their name and a preference per row."""
    with src.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        fields, rows = list(reader.fieldnames or []), list(reader)
    with dst.open("w", newline="", encoding="utf-8-sig") as fh:  # as Excel saves "CSV UTF-8"
        w = csv.DictWriter(fh, fieldnames=fields)
        w.writeheader()
        for i, row in enumerate(rows):
            pref = choose(i, row)
            w.writerow({**row, "rater": rater if pref else "", "preference": pref})


def test_exported_csv_is_the_rating_form(tmp_path: Path) -> None:
    """human-export's CSV, filled in by two reviewers, imports as is (it used to lack 'rater')."""
    recs = _recs(60)
    ids = [r.id for r in recs]
    base = Predictions(ids, [f"base {i}\nsecond line" for i in range(60)])
    tuned = Predictions(ids, [f"tuned {i}" for i in range(60)])
    paths = export_human_sample(recs, base, tuned, tmp_path / "out", n=20, seed=0)
    header = paths["csv"].read_text().splitlines()[0].split(",")
    assert header[:2] == ["rater", "item"] and "preference" in header
    a, b = tmp_path / "alice.csv", tmp_path / "bob.csv"

    def tuned_side(i: int, row: dict[str, str]) -> str:
        return "A" if row["output_a"].startswith("tuned") else "B"

    _fill(paths["csv"], a, "alice", tuned_side)
    # bob agrees except on the first two items (tie), and leaves the last item unrated
    _fill(paths["csv"], b, "bob", lambda i, row: "" if i == 19 else ("tie" if i < 2 else tuned_side(i, row)))
    ev = import_human_ratings([a, b], paths["key"])
    assert (ev.n_items, ev.n_raters, ev.n_ratings) == (20, 2, 39)
    assert ev.tuned_win_rate == pytest.approx(37 / 39) and ev.tie_rate == pytest.approx(2 / 39)
    assert ev.cohen_kappa_mean is not None and ev.fleiss_kappa is not None
    # the untouched export has no ratings yet: said so, not "missing column"
    with pytest.raises(InputError, match="no ratings"):
        import_human_ratings(paths["csv"], paths["key"])
    # a rated row without a rater names its line and field
    bad = tmp_path / "bad.csv"
    bad.write_text("rater,item,preference\nalice,item-001,A\n,item-002,B\n")
    with pytest.raises(InputError, match=r"line 3.*rater"):
        import_human_ratings(bad, paths["key"])
