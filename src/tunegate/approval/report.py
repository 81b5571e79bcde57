"""``tunegate report``: the page a reviewer decides from and signs (HTML + PDF + evidence JSON).

Page 1 is the decision brief: the verdict with every failed or borderline check in one line,
the primary metric baseline -> tuned with its interval, regression deltas, the data gate with its
PII counts, the warnings a reviewer must read, and exactly what a signature covers. The body
follows (per-class scores sorted by the biggest drop, confusion matrices side by side, hold-out
examples whose prediction changed, regression tasks, intruder dimensions, human evaluation,
training curve, run record); raw tables go to the appendix.

Everything shown is read from the run's artifacts in their real shapes (``evidence.json`` as
:class:`~tunegate.evaluation.evidence.Evidence`, ``decision.json`` as ``GateDecision``,
``data/data_report.json``, ``run.json``, ``predictions.jsonl``); every figure and table names the
artifact and sha256 it came from. Example texts come from the anonymized hold-out only and are
truncated; PII appears as entity types and counts. Plots are PNGs embedded as ``data:`` URIs and
the page carries a strict CSP (``default-src 'none'``), so opening it makes no network request.
The PDF is rendered from the same HTML by WeasyPrint.
"""

from __future__ import annotations

import base64
import io
import json
import math
import tempfile
from pathlib import Path
from typing import Any, TypeGuard

from tunegate import __version__, ledger
from tunegate.approval import artifacts
from tunegate.approval.checkpoint import write_checkpoint
from tunegate.approval.render import render_pdf
from tunegate.approval.sign import OVERRIDE_FILE
from tunegate.policy.schema import GatePolicy
from tunegate.provenance import (
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    digest_json,
    pretty_json,
    sha256_file,
)
from tunegate.workdir import data_report_path, drift_dir, manifest_path, runs_dir, split_path, workdir_lock

NA = "not available"
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
FORMAT = "tunegate-report-evidence/v2"
MAX_STR = 200
#: above this many labels the body shows tables (worst classes, most-confused pairs), the appendix the rest
MANY_LABELS = 20
#: hold-out examples shown per kind (fixed / broken / worst generation changes)
N_EXAMPLES = 5
#: a hold-out below this size gets a warning on page 1
SMALL_HOLDOUT = 200
#: a passed check within this fraction of its bound is "borderline"
BORDERLINE = 0.2
#: files rendered by the report itself (not inputs of it)
REPORT_OUTPUTS = ("report.html", "report.pdf", "report_evidence.json", "policy.json", "override.json")
_PII_KEYS = (
    "text",
    "input",
    "output",
    "prompt",
    "response",
    "completion",
    "value",
    "raw",
    "example",
    "examples",
    "unexpected_ids",
    "dropped_ids",
    "records",
)


def _jinja_env() -> Any:
    from tunegate.approval.render import jinja_env

    return jinja_env(filters={"num": fmt_num, "signed": fmt_signed, "pct": fmt_pct, "pvalue": fmt_p})


def fmt_num(v: Any, digits: int = 4) -> str:
    if not _num(v):
        return "–" if v is None else str(v)
    if isinstance(v, int):
        return f"{v:,}"
    return f"{v:.{digits}f}"


def fmt_signed(v: Any, digits: int = 4) -> str:
    return f"{v:+.{digits}f}" if _num(v) else "–"


def fmt_p(v: Any) -> str:
    """A p-value as people read it: 0.0312, or < 0.0001."""
    if not _num(v):
        return "–"
    return "< 0.0001" if v < 1e-4 else f"{v:.4f}"


def model_name(path: Any) -> str | None:
    """A readable model name from its path (``.../all-MiniLM-L6-v2/model`` -> the folder above)."""
    if not path:
        return None
    p = Path(str(path))
    return p.parent.name if p.name in ("model", "weights", "snapshot") and p.parent.name else p.name


def fmt_pct(v: Any) -> str:
    return f"{100 * v:.1f}%" if _num(v) else "–"


def _num(v: Any) -> TypeGuard[int | float]:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _scrub(obj: Any, depth: int = 0) -> Any:
    """Keep structure and figures; drop free-text record fields and truncate long strings."""
    if depth > 6:
        return "…"
    if isinstance(obj, dict):
        return {str(k): _scrub(v, depth + 1) for k, v in obj.items() if str(k).lower() not in _PII_KEYS}
    if isinstance(obj, list):
        return [_scrub(v, depth + 1) for v in obj[:200]]
    if isinstance(obj, str):
        return _clip(obj)
    return obj


def _clip(s: str, n: int = MAX_STR) -> str:
    return s if len(s) <= n else s[: n - 1] + "…"


def _dict(v: Any) -> dict[str, Any]:
    return v if isinstance(v, dict) else {}


def _list(v: Any) -> list[Any]:
    return v if isinstance(v, list) else []


# ---------------------------------------------------------------------------------------------
# plots (PNG data URIs)
# ---------------------------------------------------------------------------------------------


def _png_data_uri(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _figure(w: float = 6.0, h: float = 3.0) -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(w, h))


def _curve(curve: Any, key: str) -> list[tuple[float, float]]:
    pts: list[tuple[float, float]] = []
    for i, item in enumerate(_list(curve), start=1):
        if _num(item) and key == "loss":
            pts.append((float(i), float(item)))
        elif isinstance(item, dict) and _num(item.get(key)):
            step = item.get("step", i)
            pts.append((float(step) if _num(step) else float(i), float(item[key])))
    return pts


def plot_training(run: dict[str, Any]) -> str | None:
    """Training loss per step and validation loss per evaluation, on one axis."""
    train = _curve(run.get("loss_curve"), "loss")
    val = _curve(run.get("eval_curve"), "val_loss")
    if not train and not val:
        return None
    fig, ax = _figure(6.0, 2.6)
    if train:
        ax.plot([p[0] for p in train], [p[1] for p in train], color="#1f5fa8", lw=1.2, label="train loss")
    if val:
        ax.plot(
            [p[0] for p in val], [p[1] for p in val], "o-", color="#c0392b", ms=3, label="validation loss"
        )
    best = _dict(run.get("best"))
    if _num(best.get("step")):
        ax.axvline(float(best["step"]), color="#777", ls=":", lw=1)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _png_data_uri(fig)


def plot_metrics(rows: list[dict[str, Any]]) -> str | None:
    """Delta of each metric with its interval (a forest plot): the question is "did it improve?"."""
    usable = [r for r in rows if _num(r.get("delta"))]
    if not usable:
        return None
    fig, ax = _figure(5.0, 0.4 * len(usable) + 0.9)
    ys = list(range(len(usable)))[::-1]
    for y, r in zip(ys, usable, strict=True):
        lo, hi = r.get("ci_low"), r.get("ci_high")
        good = (r["delta"] >= 0) == bool(r.get("higher_is_better", True))
        color = "#11772f" if good else "#b3141b"
        if _num(lo) and _num(hi):
            ax.plot([lo, hi], [y, y], color=color, lw=2)
        ax.plot([r["delta"]], [y], "o", color=color)
    ax.axvline(0.0, color="#444", lw=0.8)
    ax.set_yticks(ys, [str(r["metric"]) for r in usable], fontsize=10)
    ax.tick_params(axis="x", labelsize=9)
    ax.set_ylim(-0.6, len(usable) - 0.4)
    ax.set_xlabel("change, tuned - baseline (dot), with its interval (bar)", fontsize=9)
    ax.grid(axis="x", alpha=0.3)
    return _png_data_uri(fig)


def _png_file_uri(path: Path) -> str | None:
    if not path.is_file() or path.is_symlink():
        return None
    data = path.read_bytes()
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return None
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _confusion_figure(
    rd: Path, name: str, counts: Any, labels: list[str], title: str, source: str
) -> dict[str, Any] | None:
    """The evaluation stage's PNG when it exists (with its digest), else drawn by the same plotter."""
    wd = rd.parent.parent
    p = rd / name
    uri = _png_file_uri(p)
    if uri is not None:
        return {"src": uri, "file": p.relative_to(wd).as_posix(), "sha256": sha256_file(p), "title": title}
    if not isinstance(counts, list) or not counts:
        return None
    from tunegate.evaluation.run import plot_confusion

    with tempfile.TemporaryDirectory() as tmp:
        out = plot_confusion(counts, labels, Path(tmp) / name, title)
        uri = _png_file_uri(out)
    return {"src": uri, "file": source, "sha256": None, "title": title} if uri else None


# ---------------------------------------------------------------------------------------------
# the sections, each read from the artifact that holds it
# ---------------------------------------------------------------------------------------------


def _source(wd: Path, p: Path) -> dict[str, Any]:
    rel = p.relative_to(wd).as_posix()
    return {"file": rel, "sha256": sha256_file(p) if p.is_file() else None}


def metric_rows(metrics: Any) -> list[dict[str, Any]]:
    """``evidence.metrics`` (name -> MetricComparison) as rows; legacy nested shapes are read too."""
    rows: list[dict[str, Any]] = []
    for name, m in _dict(metrics).items():
        if not isinstance(m, dict):
            continue
        row: dict[str, Any] = {"metric": str(m.get("name", name))}
        for side in ("baseline", "tuned"):
            v = m.get(side)
            row[side] = v.get("value") if isinstance(v, dict) else v
        d = m.get("delta")
        if isinstance(d, dict):
            ci = d.get("ci") or [None, None]
            row["delta"], row["ci_low"], row["ci_high"] = d.get("value"), ci[0], ci[1]
        else:
            row["delta"] = d if _num(d) else None
            row["ci_low"], row["ci_high"] = m.get("ci_low"), m.get("ci_high")
        if row["delta"] is None and _num(row.get("tuned")) and _num(row.get("baseline")):
            row["delta"] = row["tuned"] - row["baseline"]
        row["confidence"] = m.get("confidence")
        row["n"] = m.get("n")
        row["higher_is_better"] = m.get("higher_is_better", True)
        rows.append(row)
    return rows


def _pii_card(data_report: dict[str, Any]) -> dict[str, Any] | None:
    """Entity types and counts only (anonymized, residual, per field family); never a value."""
    pii = _dict(data_report.get("pii"))
    if not pii:
        return None
    counts = _dict(pii.get("counts"))
    totals = _dict(pii.get("totals")) or {
        e: sum(v for v in _dict(per).values() if _num(v)) for e, per in counts.items()
    }
    residual = pii.get("residual_totals") or pii.get("residual")
    if isinstance(residual, dict):
        residual = {
            e: (sum(x for x in v.values() if _num(x)) if isinstance(v, dict) else v)
            for e, v in residual.items()
        }
    entities = sorted(set(totals) | set(_dict(residual)) | set(_list(pii.get("entities"))))
    rows: list[dict[str, Any]] = [
        {
            "entity": e,
            "anonymized": int(totals.get(e, 0) or 0),
            "residual": int(_dict(residual).get(e, 0) or 0),
            "by_field": {str(f): n for f, n in sorted(_dict(counts.get(e)).items()) if _num(n)},
            "operator": _dict(pii.get("operators")).get(e),
        }
        for e in entities
    ]
    rows.sort(key=lambda r: (-int(r["anonymized"]), str(r["entity"])))
    return {
        "model": pii.get("model"),
        "model_version": pii.get("model_version"),
        "regex_only": pii.get("regex_only"),
        "records_scanned": pii.get("records_scanned"),
        "texts_scanned": pii.get("texts_scanned"),
        "records_with_pii": pii.get("records_with_pii"),
        "total_anonymized": sum(r["anonymized"] for r in rows),
        "total_residual": sum(r["residual"] for r in rows),
        "residual_ok": pii.get("residual_ok"),
        "entities": rows,
    }


def _data_card(wd: Path) -> dict[str, Any] | None:
    p = data_report_path(wd)
    dr = _dict(artifacts.read_json(p))
    if not dr:
        return None
    checks = []
    for c in _list(dr.get("checks")):
        if isinstance(c, dict):
            checks.append(
                {
                    "name": c.get("name"),
                    "passed": c.get("passed"),
                    "severity": c.get("severity"),
                    "message": _clip(str(c.get("message", "")), 300),
                }
            )
    gx = []
    for split, g in sorted(_dict(dr.get("gx")).items()):
        if isinstance(g, dict):
            res = _list(g.get("results"))
            gx.append(
                {
                    "split": split,
                    "suite": g.get("suite"),
                    "success": g.get("success"),
                    "evaluated": len(res),
                    "failed": [r.get("check") for r in res if isinstance(r, dict) and not r.get("success")],
                    "skipped": len(_list(g.get("skipped"))),
                }
            )
    sizes = _dict(dr.get("sizes"))
    return {
        "source": _source(wd, p),
        "verdict": dr.get("verdict"),
        "task": dr.get("task"),
        "sources": [
            {k: s.get(k) for k in ("file", "rows", "sha256")}
            for s in _list(dr.get("sources"))
            if isinstance(s, dict)
        ],
        "sizes": {k: v for k, v in sizes.items() if _num(v)},
        "pii": _pii_card(dr),
        "checks": checks,
        "gx": gx,
        "agreement": _scrub(dr.get("agreement")),
        "holdout_manifest_sha256": dr.get("holdout_manifest_sha256"),
    }


def _per_class(classification: dict[str, Any]) -> list[dict[str, Any]]:
    base = _dict(_dict(classification.get("baseline")).get("per_class"))
    tuned = _dict(_dict(classification.get("tuned")).get("per_class"))
    rows = []
    for lab in sorted(set(base) | set(tuned)):
        b, t = _dict(base.get(lab)), _dict(tuned.get(lab))
        row: dict[str, Any] = {"label": lab, "support": t.get("support", b.get("support"))}
        for k in ("precision", "recall", "f1"):
            row[f"{k}_baseline"], row[f"{k}_tuned"] = b.get(k), t.get(k)
        row["delta_f1"] = (
            row["f1_tuned"] - row["f1_baseline"]
            if _num(row["f1_tuned"]) and _num(row["f1_baseline"])
            else None
        )
        rows.append(row)
    rows.sort(key=lambda r: (r["delta_f1"] if _num(r["delta_f1"]) else 0.0, r["label"]))
    return rows


def _confused_pairs(counts: Any, cols: list[str], labels: list[str], top: int = 15) -> list[dict[str, Any]]:
    pairs: list[dict[str, Any]] = []
    for i, row in enumerate(_list(counts)):
        if i >= len(labels) or not isinstance(row, list):
            continue
        support = sum(v for v in row if _num(v)) or 1
        for j, v in enumerate(row):
            if j != i and _num(v) and v > 0 and j < len(cols):
                pairs.append({"true": labels[i], "predicted": cols[j], "count": int(v), "share": v / support})
    pairs.sort(key=lambda p: (-int(p["count"]), str(p["true"]), str(p["predicted"])))
    return pairs[:top]


def _classification(rd: Path, ev: dict[str, Any]) -> dict[str, Any] | None:
    cls = _dict(ev.get("classification"))
    if not cls:
        return None
    wd = rd.parent.parent
    labels = [str(x) for x in _list(_dict(cls.get("tuned")).get("labels"))]
    rows = _per_class(cls)
    cm_t = _dict(_dict(cls.get("tuned")).get("confusion_matrix"))
    cm_b = _dict(_dict(cls.get("baseline")).get("confusion_matrix"))
    cols = [str(c) for c in _list(cm_t.get("columns"))] or [*labels, "<invalid>"]
    src = f"runs/{rd.name}/evidence.json (classification.*.confusion_matrix)"
    figs = [
        f
        for f in (
            _confusion_figure(
                rd, "confusion_matrix_baseline.png", cm_b.get("counts"), labels, "baseline", src
            ),
            _confusion_figure(rd, "confusion_matrix.png", cm_t.get("counts"), labels, "tuned", src),
        )
        if f
    ]
    many = len(labels) > MANY_LABELS
    return {
        "source": _source(wd, rd / "evidence.json"),
        "n_labels": len(labels),
        "many_labels": many,
        "per_class": rows,
        "worst": rows[: min(15, len(rows))] if many else rows,
        "confusion_figures": figs,
        "confused_pairs_tuned": _confused_pairs(cm_t.get("counts"), cols, labels),
        "confused_pairs_baseline": _confused_pairs(cm_b.get("counts"), cols, labels),
        "confusion_tuned": {"columns": cols, "rows": labels, "counts": cm_t.get("counts")},
    }


def _holdout_records(wd: Path) -> dict[str, Any]:
    from tunegate.records import Record

    manifest = _dict(artifacts.read_json(manifest_path(wd)))
    p = split_path(wd, "holdout")
    if manifest.get("holdout_file"):
        p = p.parent / str(manifest["holdout_file"])
    out: dict[str, Any] = {}
    if not p.is_file() or p.is_symlink():
        return out
    with open(p, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                try:
                    r = Record.model_validate_json(line)
                except ValueError:
                    continue
                out[r.id] = r
    return out


def _read_predictions(p: Path) -> list[dict[str, Any]]:
    rows = []
    if p.is_file():
        with open(p, encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError:
                        continue
    return rows


def _label_of(pred: Any, labels: list[str]) -> str:
    if isinstance(pred, int) and 0 <= pred < len(labels):
        return labels[pred]
    if isinstance(pred, str) and pred in labels:
        return pred
    return "<invalid>"


def _changed_examples(wd: Path, rd: Path, ev: dict[str, Any], labels: list[str]) -> dict[str, Any] | None:
    """Hold-out records whose prediction changed (classification) or whose score moved most
    (generation), from the anonymized hold-out, truncated. A stable sample: sorted by record id."""
    pred_path = rd / "predictions.jsonl"
    preds = _read_predictions(pred_path)
    if not preds:
        return None
    records = _holdout_records(wd)
    hold = manifest_path(wd).parent / str(
        _dict(artifacts.read_json(manifest_path(wd))).get("holdout_file", "holdout.jsonl")
    )
    sources = [_source(wd, pred_path)] + ([_source(wd, hold)] if hold.is_file() else [])
    if ev.get("task") == "classification":
        fixed, broken = [], []
        for row in sorted(preds, key=lambda r: str(r.get("id"))):
            rec = records.get(str(row.get("id")))
            if rec is None or "pred_tuned" not in row:
                continue
            gold = rec.label
            b, t = _label_of(row.get("pred_baseline"), labels), _label_of(row.get("pred_tuned"), labels)
            if b == t:
                continue
            item = {
                "id": rec.id[:12],
                "text": _clip(rec.prompt_text(), 240),
                "label": gold,
                "baseline": b,
                "tuned": t,
            }
            if t == gold and b != gold:
                fixed.append(item)
            elif b == gold and t != gold:
                broken.append(item)
        return {
            "kind": "classification",
            "sources": sources,
            "n_fixed": len(fixed),
            "n_broken": len(broken),
            "fixed": fixed[:N_EXAMPLES],
            "broken": broken[:N_EXAMPLES],
        }
    metric = next((m for m in ("rouge_l", "bertscore_f1") if f"{m}_tuned" in preds[0]), None)
    if metric is None:
        return None
    scored = []
    for row in preds:
        bs, ts = row.get(f"{metric}_baseline"), row.get(f"{metric}_tuned")
        rec = records.get(str(row.get("id")))
        if not (_num(bs) and _num(ts)) or rec is None:
            continue
        item = {
            "id": rec.id[:12],
            "prompt": _clip(rec.prompt_text(), 240),
            "reference": _clip(rec.target_text(), 240),
            "baseline": _clip(str(row.get("baseline", "")), 240),
            "tuned": _clip(str(row.get("tuned", "")), 240),
            "scores": {
                m: (row.get(f"{m}_baseline"), row.get(f"{m}_tuned"))
                for m in ("rouge_l", "bertscore_f1")
                if f"{m}_tuned" in row
            },
            "delta": ts - bs,
        }
        scored.append(item)
    scored.sort(key=lambda x: (x["delta"], x["id"]))
    return {
        "kind": "generation",
        "metric": metric,
        "sources": sources,
        "n_worse": sum(1 for x in scored if x["delta"] < 0),
        "n_better": sum(1 for x in scored if x["delta"] > 0),
        "worst": scored[:N_EXAMPLES],
        "best": sorted(scored, key=lambda x: (-x["delta"], x["id"]))[:N_EXAMPLES],
    }


def _regression(ev: dict[str, Any]) -> list[dict[str, Any]] | None:
    rows = []
    for t in _list(ev.get("regression")):
        if not isinstance(t, dict):
            continue
        rows.append(
            {
                k: t.get(k)
                for k in (
                    "task",
                    "skipped",
                    "reason",
                    "metric",
                    "version",
                    "baseline",
                    "tuned",
                    "delta",
                    "ci_low",
                    "ci_high",
                    "confidence",
                    "n",
                    "n_available",
                    "limit",
                    "higher_is_better",
                )
            }
        )
    return rows if ev.get("regression") is not None else None


def _intruder(ev: dict[str, Any]) -> dict[str, Any] | None:
    it = _dict(ev.get("intruder"))
    if not it:
        return None
    per = _dict(it.get("per_layer"))
    top = sorted(((k, v) for k, v in per.items() if _num(v) and v > 0), key=lambda kv: (-kv[1], kv[0]))
    out = {
        k: it.get(k)
        for k in (
            "applicable",
            "reason",
            "top_k",
            "base_top_k",
            "threshold",
            "total",
            "max_per_layer",
            "layers",
        )
    }
    out["top_layers"] = [{"layer": k, "count": v} for k, v in top[:10]]
    return out


def _human(rd: Path, ev: dict[str, Any]) -> dict[str, Any] | None:
    """Status of the blind A/B sample: exported, rated (imported ratings), in the evidence."""
    wd = rd.parent.parent
    hdir = rd / "human"
    status: dict[str, Any] = {"exported": None, "ratings": None, "in_evidence": ev.get("human") is not None}
    csv_p, key_p, hev_p = hdir / "human_eval.csv", hdir / "human_eval_key.json", hdir / "human_evidence.json"
    if key_p.is_file():
        key = _dict(artifacts.read_json(key_p))
        status["exported"] = {
            "items": len(_dict(key.get("items"))),
            **_source(wd, csv_p if csv_p.is_file() else key_p),
        }
    hum = ev.get("human")
    src = f"runs/{rd.name}/evidence.json (human)"
    if hev_p.is_file():
        hum = artifacts.read_json(hev_p)
        src = hev_p.relative_to(wd).as_posix()
    if isinstance(hum, dict):
        status["ratings"] = {**_scrub(hum), "source": src}
    if status["exported"] is None and status["ratings"] is None:
        return None
    return status


def _vram_plan(run: dict[str, Any]) -> dict[str, Any] | None:
    """The memory plan for this run's method and shapes, from the base model's config (no weights)."""
    plan = run.get("vram_plan") or run.get("plan")
    if isinstance(plan, dict):
        return {"source": "run.json", **_scrub(plan)}
    base = _dict(run.get("base_model"))
    path = base.get("path") or base.get("name")
    method = run.get("method")
    cfg = _dict(run.get("config"))
    if not path or method not in ("full", "lora", "qlora", "dora") or not Path(str(path)).exists():
        return None
    try:
        from tunegate.training.plan import plan_memory

        quant = _dict(cfg.get("quant"))
        rep = plan_memory(
            str(path),
            methods=(str(method),),
            seq_len=int(cfg.get("max_seq_len") or 512),
            batch=int(cfg.get("batch_size") or 1),
            rank=int(_dict(cfg.get("lora")).get("rank") or 16),
            gradient_checkpointing=bool(cfg.get("gradient_checkpointing", True)),
            quant_bits=int(quant.get("bits") or 4),
        ).to_json()
    except Exception as exc:  # the plan is informative; a model it cannot describe is said so
        return {"source": "tunegate plan", "error": f"{type(exc).__name__}: {_clip(str(exc), 160)}"}
    m = _dict(_dict(rep.get("methods")).get(str(method)))
    return {
        "source": f"tunegate plan --model {model_name(path)} --method {method} (base model config)",
        "model": model_name(rep.get("model")),
        "params": rep.get("params"),
        "method": method,
        "seq_len": int(cfg.get("max_seq_len") or 512),
        "batch": int(cfg.get("batch_size") or 1),
        "peak_gib": m.get("peak_gib"),
        "components": m.get("components"),
        "fits_24gib": m.get("fits"),
        "max_batch_24gib": m.get("max_batch"),
        "measured_peak": _scrub(run.get("peak_memory")),
    }


_RUN_KEYS = (
    "run_id",
    "name",
    "method",
    "model_kind",
    "date",
    "device",
    "precision",
    "seed",
    "operator",
    "git",
    "config_digest",
    "fingerprint",
    "artifact",
    "artifact_digest",
    "wall_time_s",
    "tokens_per_s",
    "peak_memory",
    "best",
    "resumed_from_step",
    "padding_fraction",
    "batching",
    "config_warnings",
)


def _run_record(rd: Path, run: dict[str, Any]) -> dict[str, Any] | None:
    if not run:
        return None
    rec = {k: _scrub(run[k]) for k in _RUN_KEYS if k in run}
    base = _dict(run.get("base_model"))
    if base:
        rec["base_model"] = {
            "name": model_name(base.get("name") or base.get("path")),
            "digest": base.get("digest") or base.get("sha256"),
        }
    data = _dict(run.get("data"))
    if data:
        rec["data"] = _scrub(data)
    return rec


def _borderline(c: dict[str, Any]) -> str | None:
    """A passed check whose figure is within BORDERLINE of its bound, said in one line."""
    f = _dict(c.get("figures"))
    lcb, req = f.get("improvement_lcb"), f.get("required")
    if c.get("name") == "min_improvement_lcb" and _num(lcb) and _num(req):
        scale = max(abs(f.get("delta") or 0.0), 1e-9)
        if lcb - req < BORDERLINE * scale:
            return f"improvement lower bound {lcb:+.4f} is close to the required {req:+.4f}"
    if c.get("name") == "max_regression_drop":
        close = []
        for task, t in _dict(f.get("tasks")).items():
            t = _dict(t)
            drop, allowed = t.get("drop"), t.get("allowed_drop")
            if _num(drop) and _num(allowed) and 0 < allowed < drop / (1 - BORDERLINE):
                close.append(f"{task} drop {t['drop']:.4f} of allowed {t['allowed_drop']:.4f}")
        if close:
            return "; ".join(close)
    tuned, allowed = f.get("tuned"), f.get("allowed")
    if _num(tuned) and _num(allowed) and 0 < allowed < tuned / (1 - BORDERLINE):
        return f"{f.get('metric', 'value')} {f['tuned']:.4f} is close to the allowed {f['allowed']:.4f}"
    return None


def _gate_checks(decision: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for c in _list(decision.get("checks")):
        if not isinstance(c, dict):
            continue
        passed = bool(c.get("passed"))
        sev = c.get("severity", "error")
        status = "pass" if passed else ("warn" if sev == "warning" else "fail")
        border = _borderline(c) if passed else None
        if border:
            status = "borderline"
        out.append(
            {
                "name": c.get("name"),
                "status": status,
                "severity": sev,
                "message": _clip(str(c.get("message") or c.get("reason") or ""), 400),
                "borderline": border,
                "figures": _scrub(c.get("figures")),
            }
        )
    return out


def _warnings(
    wd: Path,
    ev: dict[str, Any],
    decision: dict[str, Any],
    data: dict[str, Any] | None,
    regression: list[dict[str, Any]] | None,
    primary: dict[str, Any] | None,
    cls: dict[str, Any] | None,
    override: str | None,
) -> list[str]:
    w: list[str] = []
    if override:
        w.append(f"This report carries an override justification for a failed gate: {_clip(override, 300)}")
    n = _dict(ev.get("holdout")).get("n_records") or (primary or {}).get("n")
    if _num(n) and 0 < n < SMALL_HOLDOUT:
        half = 1.96 * math.sqrt(0.25 / n)
        w.append(
            f"Small hold-out: {n} records. A proportion measured on it is uncertain by up to "
            f"±{half:.2f} (95%); read the intervals, not the point values."
        )
    lo, hi = (primary or {}).get("ci_low"), (primary or {}).get("ci_high")
    if primary and _num(lo) and _num(hi) and lo <= 0 <= hi:
        w.append(
            f"The interval of the {primary['metric']} change [{primary['ci_low']:+.4f}, "
            f"{primary['ci_high']:+.4f}] includes zero: the improvement is not established."
        )
    for t in regression or []:
        if t.get("skipped"):
            w.append(f"Regression task {t['task']} was not evaluated: {t.get('reason') or 'skipped'}.")
        elif _num(t.get("limit")) or (
            _num(t.get("n_available")) and _num(t.get("n")) and t["n"] < t["n_available"]
        ):
            w.append(
                f"Regression task {t['task']} ran on {t.get('n')} of {t.get('n_available')} items "
                "(limit set): its interval is wider than the full task's."
            )
    for msg in _list(decision.get("warnings")):
        w.append(str(msg))
    pii = (data or {}).get("pii") or {}
    if pii.get("regex_only"):
        w.append(
            "PII detection ran regex-only (NER disabled by policy): names and addresses are not detected."
        )
    if _num(pii.get("total_residual")) and pii["total_residual"] > 0:
        w.append(
            f"{pii['total_residual']} PII detection(s) remain after anonymization (within the policy's "
            "limits if the gate passed); the hold-out examples below may contain them."
        )
    marker = drift_dir(wd) / "holdout_not_representative.json"
    if marker.is_file():
        info = _dict(artifacts.read_json(marker))
        alarms = ", ".join(map(str, _list(info.get("alarms")))) or "see drift/"
        w.append(f"Drift: the hold-out is no longer representative of current traffic ({alarms}).")
    if cls:
        drops = [r for r in cls["per_class"] if _num(r["delta_f1"]) and r["delta_f1"] <= -0.05]
        if drops:
            names = ", ".join(f"{r['label']} ({r['delta_f1']:+.2f})" for r in drops[:5])
            w.append(f"{len(drops)} class(es) lost 0.05 F1 or more: {names}.")
    return w


def _production(
    wd: Path, rid: str, run: dict[str, Any], rows: list[dict[str, Any]], registry: Path | None
) -> dict[str, Any] | None:
    """The promoted version of this name in the registry, and the new run's metric deltas against it."""
    name = run.get("name")
    if registry is None or not name:
        return None
    reg = Path(registry) / str(name)
    head = _dict(artifacts.read_json(reg / "HEAD.json")) if (reg / "HEAD.json").is_file() else {}
    if not head:
        return {"name": name, "registry": str(registry), "version": None}
    version, prod_run = head.get("version"), head.get("run_id")
    out: dict[str, Any] = {
        "name": name,
        "version": version,
        "run_id": prod_run,
        "rows": [],
        "same_holdout": None,
    }
    if prod_run == rid:
        out["same_run"] = True
        return out
    bundle = reg / f"v{version}" / "bundle"
    pev = _dict(artifacts.read_json(runs_dir(bundle) / str(prod_run) / "evidence.json"))
    if not pev:
        return out
    out["source"] = {
        "file": f"{name}/v{version}/bundle/runs/{prod_run}/evidence.json",
        "sha256": sha256_file(runs_dir(bundle) / str(prod_run) / "evidence.json"),
    }
    prod = {r["metric"]: r for r in metric_rows(pev.get("metrics"))}
    cur_hold = _dict(artifacts.read_json(manifest_path(wd))).get("holdout_sha256")
    prod_hold = _dict(pev.get("inputs")).get("holdout_sha256")
    out["same_holdout"] = bool(cur_hold and cur_hold == prod_hold)
    for r in rows:
        p = prod.get(r["metric"])
        if p and _num(p.get("tuned")) and _num(r.get("tuned")):
            out["rows"].append(
                {
                    "metric": r["metric"],
                    "production": p["tuned"],
                    "new": r["tuned"],
                    "delta": r["tuned"] - p["tuned"],
                    "higher_is_better": r.get("higher_is_better", True),
                }
            )
    return out


def build_report_evidence(
    workdir: str | Path,
    run_id: str,
    policy: GatePolicy,
    *,
    override_justification: str | None = None,
    registry: str | Path | None = None,
) -> dict[str, Any]:
    """Everything the report shows, as one JSON-serializable dict (written as report_evidence.json).

    Figures (PNG data) are not part of it; ``plots`` are rendered from it and the run folder."""
    wd = Path(workdir)
    rd = artifacts.run_dir(wd, run_id)
    run = _dict(artifacts.read_json(rd / "run.json"))
    ev = _dict(artifacts.read_json(rd / "evidence.json"))
    decision = _dict(artifacts.read_json(rd / "decision.json"))
    manifest = _dict(artifacts.read_json(manifest_path(wd)))

    digests: dict[str, str] = {}
    for rel in artifacts.covered_files(wd, run_id):
        if rel.startswith(f"runs/{run_id}/") and rel.rsplit("/", 1)[-1] in REPORT_OUTPUTS:
            continue
        digests[rel] = sha256_file(wd / rel)

    rows = metric_rows(ev.get("metrics"))
    primary_name = ev.get("primary_metric") or (rows[0]["metric"] if rows else None)
    primary = next((r for r in rows if r["metric"] == primary_name), None)
    data = _data_card(wd)
    cls = _classification(rd, ev)
    labels = [r["label"] for r in cls["per_class"]] if cls else []
    if cls:
        labels = [
            str(x) for x in _list(_dict(_dict(ev["classification"]).get("tuned")).get("labels"))
        ] or labels
    regression = _regression(ev)
    checks = _gate_checks(decision)
    verdict = decision.get("verdict") or (
        "pass" if decision.get("passed") is True else "fail" if decision.get("passed") is False else None
    )
    warnings = _warnings(wd, ev, decision, data, regression, primary, cls, override_justification)
    input_digest = digest_json(digests)
    n_signed = len(digests) + 4  # + report.html, report.pdf, report_evidence.json, policy.json
    sign_cmd = f"tunegate sign WORKDIR --run {run_id} --key YOU.key --decision approve"
    if override_justification:
        sign_cmd += ' --override-justification "<the justification above>"'
    split = None
    if manifest:
        split = {k: v for k, v in manifest.items() if not isinstance(v, (list, dict))}
        split["records"] = len(_list(manifest.get("records")))
        for k in ("counts", "fractions"):
            if isinstance(manifest.get(k), dict):
                split[k] = _scrub(manifest[k])
    brief = {
        "verdict": verdict,
        "passed": verdict == "pass",
        "failed": [c for c in checks if c["status"] == "fail"],
        "borderline": [c for c in checks if c["status"] in ("borderline", "warn")],
        "n_checks": len(checks),
        "n_passed": sum(1 for c in checks if c["status"] in ("pass", "borderline")),
        "primary": primary,
        "mcnemar": _scrub(ev.get("mcnemar")),
        "regression": [t for t in regression or []],
        "warnings": warnings,
        "signed": {
            "run_id": run_id,
            "policy_name": policy.name,
            "policy_digest": policy.digest(),
            "artifacts": n_signed,
            "inputs": len(digests),
            "input_digest": input_digest,
            "command": sign_cmd,
            "min_approvals": policy.approval.min_approvals,
        },
    }
    return {
        "format": FORMAT,
        "tunegate_version": __version__,
        "run_id": run_id,
        "task": ev.get("task") or run.get("task") or (data or {}).get("task"),
        "method": ev.get("method") or run.get("method"),
        "base_model": model_name(
            _dict(run.get("base_model")).get("name") or _dict(run.get("base_model")).get("path")
        ),
        "policy": {
            "name": policy.name,
            "digest": policy.digest(),
            "high_risk": policy.high_risk,
            "approval": policy.approval.model_dump(mode="json"),
        },
        "brief": brief,
        "data_card": data,
        "split_manifest": split,
        "holdout": _scrub(ev.get("holdout")),
        "training_config": _scrub(run.get("config") or artifacts.read_json(rd / "config.json")),
        "vram_plan": _vram_plan(run),
        "run_record": _run_record(rd, run),
        "loss_curve_points": len(_curve(run.get("loss_curve"), "loss")),
        "metrics": rows or None,
        "metrics_source": _source(wd, rd / "evidence.json") if rows else None,
        "mcnemar": _scrub(ev.get("mcnemar")),
        "classification": cls,
        "per_class_f1": {r["label"]: r["f1_tuned"] for r in cls["per_class"]} if cls else None,
        "examples": _changed_examples(wd, rd, ev, labels),
        "regression": regression,
        "forgetting": _intruder(ev),
        "human_eval": _human(rd, ev),
        "production": _production(wd, run_id, run, rows, Path(registry) if registry else None),
        "checks": checks,
        "decision": {
            "verdict": verdict,
            "passed": verdict == "pass" if verdict else None,
            "reasons": [_clip(str(r), 400) for r in _list(decision.get("reasons"))],
            "warnings": [_clip(str(r), 400) for r in _list(decision.get("warnings"))],
            "policy_digest": decision.get("policy_digest"),
            "evidence_digest": decision.get("evidence_digest"),
            "source": _source(wd, rd / "decision.json"),
            "override_justification": override_justification,
        },
        "provenance": _scrub(ev.get("provenance")),
        "artifact_digests": digests,
        "input_digest": input_digest,
    }


def render_plots(ev: dict[str, Any], run: dict[str, Any]) -> dict[str, str | None]:
    return {"training": plot_training(run), "metrics": plot_metrics(ev["metrics"] or [])}


def render_html(ev: dict[str, Any], plots: dict[str, Any], generated: str) -> str:
    tpl = _jinja_env().get_template("report.html.j2")
    return str(tpl.render(ev=ev, plots=plots, na=NA, csp=CSP, generated=generated))


def write_report(
    workdir: str | Path,
    *,
    policy: GatePolicy,
    run_id: str | None = None,
    override_justification: str | None = None,
    registry: str | Path | None = None,
) -> dict[str, Path]:
    """Write report.html, report.pdf, report_evidence.json and policy.json into ``runs/<id>/``.

    ``registry``: when it holds a promoted version of this run's name, the report compares the
    new run with it (metric deltas; whether both used the same hold-out)."""
    wd = Path(workdir)
    rid = artifacts.resolve_run(wd, run_id)
    with workdir_lock(wd, stage="report"):
        # a re-render starts a new approval round: a crashed sign of this round is settled first
        from tunegate.approval.recovery import recover_approvals, tell

        tell(recover_approvals(wd, rid))
        return _write_report(wd, rid, policy, override_justification, registry)


def _write_report(
    wd: Path,
    rid: str,
    policy: GatePolicy,
    override_justification: str | None,
    registry: str | Path | None = None,
) -> dict[str, Path]:
    rd = artifacts.run_dir(wd, rid)
    from tunegate.approval.decision import verified_decision

    verified_decision(wd, rid, policy)  # never render a decision that decide(policy, evidence) did not make
    if override_justification is not None:
        if not override_justification.strip():
            from tunegate.errors import ConfigError

            raise ConfigError("--override-justification must not be empty")
        atomic_write_json(rd / OVERRIDE_FILE, {"justification": override_justification})
    override = artifacts.read_json(rd / OVERRIDE_FILE)
    justification = override.get("justification") if isinstance(override, dict) else None
    ev = build_report_evidence(wd, rid, policy, override_justification=justification, registry=registry)
    run = _dict(artifacts.read_json(rd / "run.json"))
    plots = render_plots(ev, run)
    generated = ledger.now_utc()
    html = render_html(ev, plots, generated)
    out = {
        "policy": atomic_write_text(rd / "policy.json", pretty_json(policy.model_dump(mode="json"))),
        "evidence": atomic_write_json(rd / "report_evidence.json", ev),
        "html": atomic_write_text(rd / "report.html", html),
        "pdf": atomic_write_bytes(rd / "report.pdf", render_pdf(html)),
    }
    ledger.append_event(
        wd,
        "report",
        inputs={k: v for k, v in ev["artifact_digests"].items()},
        outputs={p.relative_to(wd).as_posix(): sha256_file(p) for p in out.values()},
        config_digest=policy.digest(),
        details={"run_id": rid},
    )
    write_checkpoint(wd, "report", key_rel=policy.approval.checkpoint_key)
    return out
