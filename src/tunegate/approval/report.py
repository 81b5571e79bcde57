"""``tunegate report``: one self-contained HTML page + PDF with all the evidence a reviewer signs.

Inputs are read tolerantly (a missing optional section renders "not available"), but only known
fields are copied into ``report_evidence.json``; record text is never read, so raw PII cannot
reach the report. Plots are PNGs embedded as ``data:`` URIs and the page carries a strict CSP
(``default-src 'none'``), so opening it makes no network request. The PDF is rendered from the
same HTML by WeasyPrint.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

from tunegate import __version__, ledger
from tunegate.approval import artifacts
from tunegate.approval.checkpoint import write_checkpoint
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
from tunegate.workdir import workdir_lock

NA = "not available"
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
MAX_STR = 200
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
)


def _jinja_env() -> Any:
    import jinja2

    return jinja2.Environment(
        loader=jinja2.PackageLoader("tunegate", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _scrub(obj: Any, depth: int = 0) -> Any:
    """Keep structure and figures; drop free-text record fields and truncate long strings."""
    if depth > 6:
        return "…"
    if isinstance(obj, dict):
        return {str(k): _scrub(v, depth + 1) for k, v in obj.items() if str(k).lower() not in _PII_KEYS}
    if isinstance(obj, list):
        return [_scrub(v, depth + 1) for v in obj[:200]]
    if isinstance(obj, str):
        return obj if len(obj) <= MAX_STR else obj[:MAX_STR] + "…"
    return obj


def _png_data_uri(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _figure() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(6, 3.2))


def _loss_points(curve: Any) -> list[tuple[float, float]]:
    pts: list[tuple[float, float]] = []
    if isinstance(curve, dict) and isinstance(curve.get("loss"), list):
        steps = curve.get("step") or curve.get("steps") or list(range(1, len(curve["loss"]) + 1))
        pts = [(float(s), float(v)) for s, v in zip(steps, curve["loss"], strict=False) if _num(v)]
    elif isinstance(curve, list):
        for i, item in enumerate(curve, start=1):
            if _num(item):
                pts.append((float(i), float(item)))
            elif isinstance(item, dict) and _num(item.get("loss")):
                pts.append((float(item.get("step", i)), float(item["loss"])))
    return pts


def _num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def plot_loss(curve: Any) -> str | None:
    pts = _loss_points(curve)
    if not pts:
        return None
    fig, ax = _figure()
    ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=".", color="#1f5fa8")
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    ax.set_title("Loss curve")
    ax.grid(alpha=0.3)
    return _png_data_uri(fig)


def metric_rows(metrics: Any) -> list[dict[str, Any]]:
    """Normalize ``{name: {baseline, tuned, ...interval}}`` (or a list of such rows) to rows."""
    rows: list[dict[str, Any]] = []
    items: list[tuple[str, Any]] = []
    if isinstance(metrics, dict):
        items = list(metrics.items())
    elif isinstance(metrics, list):
        items = [(str(m.get("name", m.get("metric", "?"))), m) for m in metrics if isinstance(m, dict)]
    for name, m in items:
        if not isinstance(m, dict):
            continue
        row: dict[str, Any] = {"metric": name}
        for side in ("baseline", "tuned"):
            v = m.get(side)
            if isinstance(v, dict):
                row[side] = v.get("value", v.get("mean", v.get("point")))
                lo, hi = v.get("ci_low", v.get("low")), v.get("ci_high", v.get("high"))
                ci = v.get("ci", v.get("interval"))
                if isinstance(ci, list) and len(ci) == 2:
                    lo, hi = ci
                row[f"{side}_ci"] = [lo, hi] if _num(lo) and _num(hi) else None
            else:
                row[side] = v
                ci = m.get(f"{side}_ci")
                row[f"{side}_ci"] = ci if isinstance(ci, list) and len(ci) == 2 else None
        delta = m.get("delta")
        if isinstance(delta, dict):
            row["delta"] = delta.get("value", delta.get("mean"))
            dci = delta.get("ci", delta.get("interval"))
            row["delta_ci"] = dci if isinstance(dci, list) and len(dci) == 2 else None
        else:
            row["delta"] = (
                delta
                if _num(delta)
                else (
                    row["tuned"] - row["baseline"]
                    if _num(row.get("tuned")) and _num(row.get("baseline"))
                    else None
                )
            )
            dci = m.get("delta_ci")
            row["delta_ci"] = dci if isinstance(dci, list) and len(dci) == 2 else None
        rows.append(row)
    return rows


def plot_metrics(rows: list[dict[str, Any]]) -> str | None:
    usable = [r for r in rows if _num(r.get("baseline")) and _num(r.get("tuned"))]
    if not usable:
        return None
    fig, ax = _figure()
    xs = range(len(usable))
    for off, side, color in ((-0.2, "baseline", "#999999"), (0.2, "tuned", "#1f5fa8")):
        vals = [float(r[side]) for r in usable]
        err = [[0.0] * len(usable), [0.0] * len(usable)]
        for i, r in enumerate(usable):
            ci = r.get(f"{side}_ci")
            if ci:
                err[0][i] = max(0.0, vals[i] - float(ci[0]))
                err[1][i] = max(0.0, float(ci[1]) - vals[i])
        ax.bar([x + off for x in xs], vals, width=0.4, yerr=err, capsize=3, label=side, color=color)
    ax.set_xticks(list(xs))
    ax.set_xticklabels([str(r["metric"]) for r in usable], rotation=20)
    ax.set_title("Baseline vs tuned (95% intervals)")
    ax.legend()
    return _png_data_uri(fig)


def plot_confusion(cm: Any) -> str | None:
    if not isinstance(cm, dict):
        return None
    matrix, labels = cm.get("matrix"), cm.get("labels")
    if not isinstance(matrix, list) or not matrix or not all(isinstance(r, list) for r in matrix):
        return None
    fig, ax = _figure()
    ax.imshow(matrix, cmap="Blues")
    if isinstance(labels, list) and len(labels) == len(matrix) and len(labels) <= 30:
        ax.set_xticks(range(len(labels)))
        ax.set_yticks(range(len(labels)))
        ax.set_xticklabels([str(x) for x in labels], rotation=90, fontsize=6)
        ax.set_yticklabels([str(x) for x in labels], fontsize=6)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("Confusion matrix (tuned)")
    return _png_data_uri(fig)


def _png_file_uri(path: Path) -> str | None:
    if not path.is_file():
        return None
    data = path.read_bytes()
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return None
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _pii_summary(pii: Any) -> Any:
    """Entity types and counts only (numbers and short labels); never values."""
    if not isinstance(pii, dict):
        return None

    def keep(v: Any, depth: int = 0) -> Any:
        if _num(v) or isinstance(v, bool) or v is None:
            return v
        if isinstance(v, dict) and depth < 3:
            return {str(k): keep(x, depth + 1) for k, x in v.items() if str(k).lower() not in _PII_KEYS}
        if isinstance(v, str) and len(v) <= 60:
            return v
        return "…"

    return keep(pii)


def build_report_evidence(
    workdir: str | Path, run_id: str, policy: GatePolicy, *, override_justification: str | None = None
) -> dict[str, Any]:
    """Everything the report shows, as one JSON-serializable dict (written as report_evidence.json)."""
    wd = Path(workdir)
    rd = artifacts.run_dir(wd, run_id)
    run = artifacts.read_json(rd / "run.json") or {}
    config = artifacts.read_json(rd / "config.json")
    evidence = artifacts.read_json(rd / "evidence.json") or {}
    decision = artifacts.read_json(rd / "decision.json") or {}
    data_report = artifacts.read_json(wd / "data" / "data_report.json") or {}
    manifest = artifacts.read_json(wd / "data" / "holdout.manifest.json")

    digests: dict[str, str] = {}
    for rel in artifacts.covered_files(wd, run_id):
        name = rel.rsplit("/", 1)[-1]
        if name in ("report.html", "report.pdf", "report_evidence.json", "policy.json", "override.json"):
            continue
        digests[rel] = sha256_file(wd / rel)

    split: dict[str, Any] | None = None
    if isinstance(manifest, dict):
        split = {k: v for k, v in manifest.items() if not isinstance(v, (list, dict))}
        for k, v in manifest.items():
            if isinstance(v, list):
                split[f"{k} (count)"] = len(v)
            elif isinstance(v, dict):
                split[k] = _scrub(v) if len(v) <= 40 else f"{len(v)} entries"
    run_keys = (
        "run_id",
        "method",
        "task",
        "base_model",
        "seed",
        "operator",
        "device",
        "git",
        "versions",
        "wall_time_s",
        "tokens_per_s",
        "peak_memory",
        "peak_memory_bytes",
        "started",
        "finished",
    )
    rows = metric_rows(evidence.get("metrics")) if isinstance(evidence, dict) else []
    return {
        "format": "tunegate-report-evidence/v1",
        "tunegate_version": __version__,
        "run_id": run_id,
        "policy": {
            "name": policy.name,
            "digest": policy.digest(),
            "high_risk": policy.high_risk,
            "approval": policy.approval.model_dump(mode="json"),
        },
        "data_card": {
            "verdict": data_report.get("verdict"),
            "sources": _scrub(data_report.get("sources")),
            "sizes": _scrub(data_report.get("sizes")),
            "pii": _pii_summary(data_report.get("pii")),
            "gx": _scrub(data_report.get("gx")),
            "agreement": _scrub(data_report.get("agreement")),
            "checks": _scrub(data_report.get("checks")),
            "holdout_manifest_sha256": data_report.get("holdout_manifest_sha256"),
        }
        if data_report
        else None,
        "split_manifest": split,
        "training_config": _scrub(config),
        "vram_plan": _scrub(run.get("vram_plan") or run.get("plan")) if isinstance(run, dict) else None,
        "run_record": {k: _scrub(run[k]) for k in run_keys if isinstance(run, dict) and k in run} or None,
        "loss_curve_points": len(_loss_points(run.get("loss_curve"))) if isinstance(run, dict) else 0,
        "metrics": rows or None,
        "per_class_f1": _scrub(evidence.get("per_class_f1")),
        "confusion_matrix": _scrub(evidence.get("confusion_matrix")),
        "regression": _scrub(evidence.get("regression")),
        "forgetting": _scrub(evidence.get("intruder_dimensions") or evidence.get("forgetting")),
        "human_eval": _scrub(evidence.get("human_eval")),
        "checks": _scrub(decision.get("checks")),
        "decision": {
            "passed": decision.get("passed"),
            "reasons": _scrub(decision.get("reasons")),
            "policy_digest": decision.get("policy_digest"),
            "evidence_digest": decision.get("evidence_digest"),
            "override_justification": override_justification,
        },
        "artifact_digests": digests,
        "input_digest": digest_json(digests),
    }


def render_html(ev: dict[str, Any], plots: dict[str, str | None], generated: str) -> str:
    tpl = _jinja_env().get_template("report.html.j2")
    return str(tpl.render(ev=ev, plots=plots, na=NA, csp=CSP, generated=generated))


def render_pdf(html: str) -> bytes:
    """WeasyPrint PDF of the same HTML; the fetcher allows ``data:`` URIs only (no network, no files)."""
    from weasyprint import HTML
    from weasyprint.urls import URLFetcher

    fetcher = URLFetcher(allowed_protocols=["data"], fail_on_errors=True)
    return bytes(HTML(string=html, url_fetcher=fetcher).write_pdf())


def write_report(
    workdir: str | Path,
    *,
    policy: GatePolicy,
    run_id: str | None = None,
    override_justification: str | None = None,
) -> dict[str, Path]:
    """Write report.html, report.pdf, report_evidence.json and policy.json into ``runs/<id>/``."""
    wd = Path(workdir)
    rid = artifacts.resolve_run(wd, run_id)
    with workdir_lock(wd, stage="report"):
        return _write_report(wd, rid, policy, override_justification)


def _write_report(
    wd: Path, rid: str, policy: GatePolicy, override_justification: str | None
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
    ev = build_report_evidence(wd, rid, policy, override_justification=justification)
    run = artifacts.read_json(rd / "run.json") or {}
    plots = {
        "loss": plot_loss(run.get("loss_curve") if isinstance(run, dict) else None),
        "metrics": plot_metrics(ev["metrics"] or []),
        "confusion": _png_file_uri(rd / "confusion_matrix.png") or plot_confusion(ev["confusion_matrix"]),
    }
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
