"""Human evaluation: a blind, stratified A/B sample for reviewers, and their ratings back as evidence.

Export writes ``human_eval.csv`` (rater, item, input, reference, output A, output B,
preference, comment) and ``human_eval.html`` and, separately, ``human_eval_key.json`` saying
which side is the tuned model for each item, so reviewers never see it. The side is drawn per
item from a seeded generator. The sample is stratified by label (classification), by ``group``
when records have one, else by reference length tercile, with proportional allocation (at least
one item per stratum).

The exported CSV is also the rating form: each reviewer fills ``rater`` (their name) and
``preference`` (``A``, ``B`` or ``tie``) in a copy and sends it back; import reads one or more such
files (any CSV with at least the columns ``rater,item,preference``; rows whose preference is
still empty are items not rated yet). Import unblinds with the key and reports win rates plus
inter-rater agreement: Fleiss' kappa over items rated by the same number of raters, and the
mean pairwise Cohen's kappa (scikit-learn). A UTF-8 byte-order mark (Excel) is accepted.
"""

from __future__ import annotations

import csv
import html
import io
import json
import warnings
from collections import Counter, defaultdict
from collections.abc import Sequence
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np

from tunegate.errors import InputError
from tunegate.evaluation.evidence import HumanEvidence
from tunegate.evaluation.scoring import Predictions
from tunegate.provenance import atomic_write_json, atomic_write_text, digest_json, sha256_file
from tunegate.records import Record

PREFERENCES = ("a", "b", "tie")


def _stratum(record: Record, terciles: tuple[float, float]) -> str:
    if record.task == "classification":
        return f"label:{record.label}"
    if record.group:
        return f"group:{record.group}"
    n = len(record.target_text())
    return "length:short" if n <= terciles[0] else "length:medium" if n <= terciles[1] else "length:long"


def stratified_sample(records: Sequence[Record], n: int, seed: int) -> list[int]:
    """Indices of a stratified sample (proportional allocation, largest remainder, >= 1 per stratum)."""
    if n >= len(records):
        return list(range(len(records)))
    lengths = np.array([len(r.target_text()) for r in records])
    terc = (float(np.quantile(lengths, 1 / 3)), float(np.quantile(lengths, 2 / 3)))
    strata: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(records):
        strata[_stratum(r, terc)].append(i)
    keys = sorted(strata)
    total = len(records)
    quota = {k: n * len(strata[k]) / total for k in keys}
    alloc = {k: max(1, min(len(strata[k]), int(quota[k]))) for k in keys}
    for k in sorted(keys, key=lambda k: (-(quota[k] - int(quota[k])), k)):
        if sum(alloc.values()) >= n:
            break
        if alloc[k] < len(strata[k]):
            alloc[k] += 1
    while sum(alloc.values()) > n:  # too many strata for n: trim the largest allocations
        k = max(keys, key=lambda k: (alloc[k], k))
        alloc[k] -= 1
    rng = np.random.default_rng(seed)
    chosen: list[int] = []
    for k in keys:
        if alloc[k] > 0:
            chosen += [int(i) for i in rng.choice(strata[k], size=alloc[k], replace=False)]
    return sorted(chosen)


def export_human_sample(
    records: Sequence[Record],
    baseline: Predictions,
    tuned: Predictions,
    out_dir: str | Path,
    *,
    n: int = 60,
    seed: int = 0,
    input_of: Any = None,
) -> dict[str, Path]:
    """Write the blind CSV + HTML for reviewers and the unblinding key beside them."""
    out = Path(out_dir)
    idx = stratified_sample(records, n, seed)
    rng = np.random.default_rng(seed + 1)
    rows, key = [], {}
    for k, i in enumerate(idx, start=1):
        r = records[i]
        tuned_is_a = bool(rng.integers(0, 2))
        a, b = (
            (tuned.outputs[i], baseline.outputs[i]) if tuned_is_a else (baseline.outputs[i], tuned.outputs[i])
        )
        item = f"item-{k:03d}"
        key[item] = {"record_id": r.id, "a": "tuned" if tuned_is_a else "baseline"}
        rows.append(
            {
                "rater": "",
                "item": item,
                "input": input_of(r) if input_of else r.prompt_text(),
                "reference": r.target_text(),
                "output_a": a,
                "output_b": b,
                "preference": "",
                "comment": "",
            }
        )
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]) if rows else ["item"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    paths = {
        "csv": atomic_write_text(out / "human_eval.csv", buf.getvalue()),
        "html": atomic_write_text(out / "human_eval.html", _html(rows)),
        "key": atomic_write_json(out / "human_eval_key.json", {"seed": seed, "items": key}),
    }
    return paths


def _html(rows: list[dict[str, str]]) -> str:
    esc = html.escape
    body = []
    for r in rows:
        body.append(
            f"<section><h2>{esc(r['item'])}</h2><h3>Input</h3><pre>{esc(r['input'])}</pre>"
            f"<h3>Reference</h3><pre>{esc(r['reference'])}</pre><div class='ab'>"
            f"<div><h3>Output A</h3><pre>{esc(r['output_a'])}</pre></div>"
            f"<div><h3>Output B</h3><pre>{esc(r['output_b'])}</pre></div></div></section>"
        )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>tunegate human evaluation</title>"
        "<style>body{font-family:sans-serif;max-width:70em;margin:auto}pre{white-space:pre-wrap;"
        "background:#f6f6f6;padding:.5em}.ab{display:grid;grid-template-columns:1fr 1fr;gap:1em}"
        "section{border-bottom:1px solid #ccc;padding-bottom:1em}</style></head><body>"
        "<h1>Blind A/B review</h1><p>For each item, say which output is better: A, B or tie. Record "
        "answers in a copy of human_eval.csv: your name in <b>rater</b> and A, B or tie in "
        "<b>preference</b>, then return it for <code>tunegate human-import</code>. The order is "
        "random per item.</p>" + "".join(body) + "</body></html>\n"
    )


def fleiss_kappa(counts: np.ndarray) -> float | None:
    """Fleiss' kappa from an ``[items, categories]`` count table with the same raters per item."""
    counts = np.asarray(counts, dtype=np.float64)
    if counts.shape[0] == 0:
        return None
    m = counts.sum(axis=1)
    if not np.all(m == m[0]) or m[0] < 2:
        return None
    n_items, raters = counts.shape[0], m[0]
    p_j = counts.sum(axis=0) / (n_items * raters)
    p_i = ((counts**2).sum(axis=1) - raters) / (raters * (raters - 1))
    p_bar, p_e = p_i.mean(), (p_j**2).sum()
    if p_e >= 1.0:
        return 1.0 if p_bar >= 1.0 else None
    return float((p_bar - p_e) / (1 - p_e))


def read_ratings(path: str | Path) -> list[tuple[str, str, str]]:
    """``(rater, item, preference)`` per rated row of one ratings CSV; unrated rows are skipped."""
    return [(r, i, pref) for r, i, pref, _ in _rated_rows(Path(path))]


def _rated_rows(p: Path) -> list[tuple[str, str, str, int]]:
    if not p.is_file():
        raise InputError("ratings file not found", path=p)
    out: list[tuple[str, str, str, int]] = []
    with open(p, encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        fields = [f.strip().lower() for f in (reader.fieldnames or [])]
        missing = {"rater", "item", "preference"} - set(fields)
        if missing:
            raise InputError(
                f"missing column(s) {sorted(missing)}; found {fields}",
                path=p,
                line=1,
                hint="use the human_eval.csv that `tunegate human-export` wrote: fill rater and preference",
            )
        reader.fieldnames = fields
        for row in reader:
            line = reader.line_num  # physical line (a quoted field may span several)
            pref = (row.get("preference") or "").strip().lower()
            if not pref:
                continue  # not rated (yet)
            if pref not in PREFERENCES:
                raise InputError(
                    f"preference must be A, B or tie; got {pref!r}", path=p, line=line, field="preference"
                )
            rater, item = (row.get("rater") or "").strip(), (row.get("item") or "").strip()
            if not rater:
                raise InputError(
                    "rater is empty: write the reviewer's name in this column",
                    path=p,
                    line=line,
                    field="rater",
                )
            if not item:
                raise InputError("item is empty", path=p, line=line, field="item")
            out.append((rater, item, pref, line))
    return out


def _read_all(paths: Sequence[Path]) -> list[tuple[str, str, str, Path, int]]:
    rows: list[tuple[str, str, str, Path, int]] = []
    seen: dict[tuple[str, str], tuple[Path, int]] = {}
    for p in paths:
        for rater, item, pref, line in _rated_rows(p):
            if (rater, item) in seen:
                first = seen[(rater, item)]
                raise InputError(
                    f"rater {rater!r} rated {item!r} twice (first in {first[0].name} line {first[1]})",
                    path=p,
                    field="item",
                )
            seen[(rater, item)] = (p, line)
            rows.append((rater, item, pref, p, line))
    if not rows:
        raise InputError(
            "no ratings: every preference cell is empty",
            path=paths[0],
            hint="fill preference (A, B or tie) and rater in the exported human_eval.csv",
        )
    return rows


def import_human_ratings(
    ratings_csv: str | Path | Sequence[str | Path], key_json: str | Path
) -> HumanEvidence:
    """Unblind the ratings (one CSV, or one per reviewer) and summarize them with agreement."""
    paths = [Path(ratings_csv)] if isinstance(ratings_csv, (str, Path)) else [Path(p) for p in ratings_csv]
    if not paths:
        raise InputError("no ratings file given")
    for p in paths:
        if not p.is_file():
            raise InputError("ratings file not found", path=p)
    rows = _read_all(paths)
    key_path = Path(key_json)
    if not key_path.is_file():
        raise InputError(
            "the unblinding key is missing", path=key_path, hint="run `tunegate human-export` first"
        )
    key = json.loads(key_path.read_text(encoding="utf-8"))["items"]
    unblinded: dict[tuple[str, str], str] = {}
    for rater, item, pref, path, line in rows:
        if item not in key:
            raise InputError(
                f"unknown item {item!r} (not in the exported sample)",
                path=path,
                line=line,
                field="item",
            )
        if pref == "tie":
            unblinded[(rater, item)] = "tie"
        else:
            unblinded[(rater, item)] = (
                key[item]["a"] if pref == "a" else ("baseline" if key[item]["a"] == "tuned" else "tuned")
            )
    cats = ("tuned", "baseline", "tie")
    counts = Counter(unblinded.values())
    total = max(1, len(unblinded))
    items = sorted({i for _, i in unblinded})
    raters = sorted({r for r, _ in unblinded})
    table = np.array([[sum(1 for r in raters if unblinded.get((r, it)) == c) for c in cats] for it in items])
    full = table[table.sum(axis=1) == len(raters)] if len(raters) >= 2 else table[:0]
    cohen = []
    if len(raters) >= 2:
        from sklearn.metrics import cohen_kappa_score

        for r1, r2 in combinations(raters, 2):
            common = [it for it in items if (r1, it) in unblinded and (r2, it) in unblinded]
            if len(common) >= 2:
                a = [unblinded[(r1, it)] for it in common]
                b = [unblinded[(r2, it)] for it in common]
                with warnings.catch_warnings():  # undefined (one category only) -> nan, skipped
                    warnings.simplefilter("ignore")
                    k = cohen_kappa_score(a, b, labels=list(cats))
                if np.isfinite(k):
                    cohen.append(float(k))
    return HumanEvidence(
        n_items=len(items),
        n_raters=len(raters),
        n_ratings=len(unblinded),
        tuned_win_rate=counts["tuned"] / total,
        baseline_win_rate=counts["baseline"] / total,
        tie_rate=counts["tie"] / total,
        fleiss_kappa=fleiss_kappa(full) if len(full) else None,
        cohen_kappa_mean=float(np.mean(cohen)) if cohen else None,
        ratings_sha256=sha256_file(paths[0])
        if len(paths) == 1
        else digest_json([sha256_file(p) for p in paths]),
    )
