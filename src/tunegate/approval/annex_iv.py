"""``tunegate annex-iv``: EU AI Act (Regulation (EU) 2024/1689) Annex IV technical documentation.

The document follows Annex IV points 1-9. Where the pipeline knows the answer (versions,
compute, data provenance and digests, anonymization report, metrics, tests, change history from
the ledger) it is filled from the run. Fields only people can write are read from
``WORKDIR/annex_iv_human.yaml`` (see :data:`HUMAN_FIELDS`; a template is written on first run)
and marked "HUMAN INPUT REQUIRED" while empty. When the policy says ``high_risk: true``, sign,
verify and promote refuse approval while any human field is empty or a placeholder.

Art. 12 (record-keeping) maps to the hash-chained ledger and its signed checkpoints; Art. 14
(human oversight) maps to the signed approvals. The document names both with their digests.

Written as Markdown, HTML (offline, the report's look) and PDF, with the same summaries as the
approval report. Before a run is signed the files go into ``runs/<id>/`` and are signed with
it; once it carries an approval they go to ``WORKDIR/annex_iv/<id>/`` instead (and a missing
``annex_iv_human.yaml`` is not created), because adding files to a signed run would
invalidate every approval. The document and the command say where it went and why.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tunegate import __version__, ledger
from tunegate.approval import artifacts
from tunegate.approval.checkpoint import latest_checkpoint, write_checkpoint
from tunegate.approval.human_fields import (
    HUMAN_FIELDS,
    HUMAN_FILE,
    MARK,
    human_template,
    is_placeholder,
    read_human_fields,
)
from tunegate.approval.render import jinja_env, render_pdf
from tunegate.policy.schema import GatePolicy
from tunegate.provenance import atomic_write_bytes, atomic_write_text, sha256_file
from tunegate.workdir import annex_dir, approvals_dir, data_report_path, workdir_lock

ANNEX_FILES = ("annex_iv.md", "annex_iv.html", "annex_iv.pdf")


def _pii_rows(card: dict[str, Any] | None) -> Any:
    if not card:
        return None
    return {
        "model": card.get("model"),
        "records scanned": card.get("records_scanned"),
        "records with PII": card.get("records_with_pii"),
        "anonymized (entity: count)": {e["entity"]: e["anonymized"] for e in card["entities"]},
        "residual after re-scan": card.get("total_residual"),
    }


def _data_checks(data_report: dict[str, Any]) -> Any:
    checks = data_report.get("checks")
    if not isinstance(checks, list):
        return None
    return [
        {"check": c.get("name"), "passed": c.get("passed"), "finding": str(c.get("message", ""))[:300]}
        for c in checks
        if isinstance(c, dict)
    ]


def _no_layers(it: dict[str, Any] | None) -> Any:
    return {k: v for k, v in it.items() if k != "top_layers" and v is not None} if it else None


def is_signed(workdir: str | Path, run_id: str) -> bool:
    """True when the run carries at least one approval: its covered file set is then frozen."""
    adir = approvals_dir(workdir, run_id)
    return adir.is_dir() and any(adir.glob("*.dsse.json"))


def annex_location(workdir: str | Path, run_id: str) -> tuple[Path, bool]:
    """Where ``annex-iv`` writes: into the run (signed with it) until the run is signed; after
    that into ``WORKDIR/annex_iv/<run_id>/``, outside the signed set, so approvals stay valid."""
    if is_signed(workdir, run_id):
        return annex_dir(workdir, run_id), True
    return artifacts.run_dir(workdir, run_id), False


def build_annex_iv(workdir: str | Path, run_id: str, policy: GatePolicy) -> dict[str, Any]:
    """The document's content as data: points 1-9, each a list of (label, value, source)."""
    wd = Path(workdir)
    rd = artifacts.run_dir(wd, run_id)
    run = artifacts.read_json(rd / "run.json") or {}
    evidence = artifacts.read_json(rd / "evidence.json") or {}
    decision = artifacts.read_json(rd / "decision.json") or {}
    data_report = artifacts.read_json(data_report_path(wd)) or {}
    human = read_human_fields(wd)
    entries = ledger.read_entries(wd)
    lrep = ledger.verify_ledger(wd)
    cp = latest_checkpoint(wd)
    approvals = sorted((rd / "approvals").glob("*.dsse.json")) if (rd / "approvals").is_dir() else []

    def h(field: str) -> dict[str, Any]:
        v = human.get(field)
        return {
            "label": field.replace("_", " "),
            "value": v if not is_placeholder(v) else None,
            "human": True,
            "point": HUMAN_FIELDS[field][0],
            "hint": HUMAN_FIELDS[field][1],
        }

    def a(label: str, value: Any) -> dict[str, Any]:
        return {"label": label, "value": value, "human": False}

    from tunegate.approval import report as R

    digests = {
        rel: sha256_file(wd / rel)
        for rel in artifacts.covered_files(wd, run_id)
        if not rel.endswith(ANNEX_FILES)
    }
    base_rec = run.get("base_model") if isinstance(run, dict) else None
    base = (
        {
            "name": R.model_name(base_rec.get("name") or base_rec.get("path")),
            "digest": base_rec.get("digest"),
        }
        if isinstance(base_rec, dict)
        else base_rec
    )
    metrics = R.metric_rows(evidence.get("metrics")) or None
    cls = R._classification(rd, evidence) if isinstance(evidence, dict) else None
    per_class = (
        [
            {k: r[k] for k in ("label", "support", "f1_baseline", "f1_tuned", "delta_f1")}
            for r in cls["per_class"]
        ]
        if cls
        else None
    )
    checks = (
        [{k: c[k] for k in ("name", "status", "message")} for c in R._gate_checks(decision)]
        if isinstance(decision, dict) and decision.get("checks")
        else None
    )
    report_files = {
        rel: d
        for rel, d in sorted(digests.items())
        if rel.rsplit("/", 1)[-1] in ("report.html", "report.pdf")
    }
    pts: list[dict[str, Any]] = [
        {
            "n": 1,
            "title": "General description of the AI system",
            "items": [
                h("provider"),
                h("intended_purpose"),
                a("system version (run id)", run_id),
                a("base model", base),
                a("fine-tuning method", run.get("method")),
                a(
                    "software versions",
                    run.get("versions") or (evidence.get("provenance") or {}).get("versions"),
                ),
                a("tunegate version", __version__),
                a("hardware / device", run.get("device")),
            ],
        },
        {
            "n": 2,
            "title": "Elements of the AI system and its development process",
            "items": [
                a(
                    "development steps (ledger stages)",
                    [f"{e.get('seq')}: {e.get('stage')} @ {e.get('time')}" for e in entries],
                ),
                a("training configuration", artifacts.read_json(rd / "config.json")),
                a("seed", run.get("seed")),
                a(
                    "compute: wall time (s), tokens/s, peak memory",
                    {
                        k: run.get(k)
                        for k in ("wall_time_s", "tokens_per_s", "peak_memory", "peak_memory_bytes")
                        if k in run
                    },
                ),
                a("data provenance (sources, sha256, rows)", data_report.get("sources")),
                a(
                    "data sizes",
                    {k: v for k, v in (data_report.get("sizes") or {}).items() if not isinstance(v, dict)}
                    or None,
                ),
                a("anonymization report (entity types and counts)", _pii_rows(R._pii_card(data_report))),
                a("data validation (data gate checks)", _data_checks(data_report)),
                a("label agreement", data_report.get("agreement")),
                a("hold-out manifest sha256", data_report.get("holdout_manifest_sha256")),
                h("dpia_reference"),
                h("legal_basis"),
                h("human_oversight_measures"),
                a("validation and testing: gate checks", checks),
                a("artifact digests", digests),
            ],
        },
        {
            "n": 3,
            "title": "Monitoring, functioning and control",
            "items": [
                a("performance: baseline vs tuned", metrics),
                a("per-class F1", per_class),
                a("regression tasks", R._regression(evidence)),
                a("forgetting diagnostics (intruder dimensions)", _no_layers(R._intruder(evidence))),
                a("human evaluation", R._human(rd, evidence)),
                a("approval report (the reviewer's evidence)", report_files or None),
                h("known_limitations"),
            ],
        },
        {
            "n": 4,
            "title": "Appropriateness of the performance metrics",
            "items": [
                a(
                    "metrics and thresholds (policy)",
                    {
                        "policy": policy.name,
                        "digest": policy.digest(),
                        "evaluation": policy.evaluation.model_dump(mode="json"),
                        "checks": policy.checks.model_dump(mode="json"),
                    },
                ),
                a(
                    "gate decision",
                    {"verdict": decision.get("verdict"), "reasons": decision.get("reasons")}
                    if decision
                    else None,
                ),
            ],
        },
        {"n": 5, "title": "Risk management system (Art. 9)", "items": [h("risk_management")]},
        {
            "n": 6,
            "title": "Relevant changes through the lifecycle",
            "items": [
                a(
                    "change history (ledger)",
                    f"{len(entries)} entries, head {lrep.head}, chain "
                    f"{'verified' if lrep.ok else 'BROKEN: ' + str(lrep.reason)}",
                ),
                a("git", run.get("git")),
            ],
        },
        {"n": 7, "title": "Harmonised standards applied", "items": [h("standards_applied")]},
        {"n": 8, "title": "EU declaration of conformity", "items": [h("declaration_of_conformity")]},
        {"n": 9, "title": "Post-market monitoring (Art. 72)", "items": [h("post_market_monitoring")]},
    ]
    art = {
        "art12": {
            "ledger": ledger.LEDGER_REL.as_posix(),
            "entries": len(entries),
            "head": lrep.head,
            "chain_ok": lrep.ok,
            "latest_checkpoint": {k: cp[k] for k in ("size", "head", "time", "key_id")} if cp else None,
        },
        "art14": {
            "approvals": [{"file": p.name, "sha256": sha256_file(p)} for p in approvals],
            "min_approvals": policy.approval.min_approvals,
            "separation_of_duties": policy.approval.separation_of_duties,
        },
    }
    missing = [k for k in HUMAN_FIELDS if is_placeholder(human.get(k))]
    return {
        "run_id": run_id,
        "high_risk": policy.high_risk,
        "points": pts,
        "articles": art,
        "missing_human_fields": missing,
        "mark": MARK,
        "human_file": HUMAN_FILE,
    }


def write_annex_iv(workdir: str | Path, *, policy: GatePolicy, run_id: str | None = None) -> dict[str, Path]:
    """Write ``annex_iv.md``, ``annex_iv.html`` and ``annex_iv.pdf`` (and the human-field template
    if absent) where :func:`annex_location` says: into ``runs/<id>/`` before signing, beside the
    run (``annex_iv/<id>/``) after it, so a signed run's covered files never change."""
    wd = Path(workdir)
    rid = artifacts.resolve_run(wd, run_id)
    with workdir_lock(wd, stage="annex-iv"):
        # where the document goes depends on whether the run is signed: settle a crashed sign first
        from tunegate.approval.recovery import recover_approvals, tell

        tell(recover_approvals(wd, rid))
        return _write_annex_iv(wd, rid, policy)


def _write_annex_iv(wd: Path, rid: str, policy: GatePolicy) -> dict[str, Path]:
    out_dir, signed = annex_location(wd, rid)
    hf = wd / HUMAN_FILE
    template = None
    if not hf.exists():
        if signed:  # annex_iv_human.yaml is covered: creating it now would invalidate the approvals
            template = out_dir / HUMAN_FILE
            atomic_write_text(template, human_template())
        else:
            atomic_write_text(hf, human_template())
    doc = build_annex_iv(wd, rid, policy)
    doc["signed_note"] = (
        f"Run {rid} is already signed: this document is written to {out_dir.relative_to(wd).as_posix()}/, "
        "outside the signed artifact set, so the approvals stay valid. It is not covered by them."
        if signed
        else None
    )
    doc["template_note"] = (
        f"{HUMAN_FILE} does not exist and is part of the signed set; a template was written to "
        f"{template.relative_to(wd).as_posix()} instead."
        if template is not None
        else None
    )
    yamlish = {"yamlish": lambda v: yaml.safe_dump(v, sort_keys=True, allow_unicode=True, width=100).strip()}
    env = jinja_env(html=False, filters=yamlish)
    md = env.get_template("annex_iv.md.j2").render(doc=doc)
    html_env = jinja_env(filters=yamlish)
    html = html_env.get_template("annex_iv.html.j2").render(doc=doc, na="not available")
    out = {
        "markdown": atomic_write_text(out_dir / "annex_iv.md", md),
        "html": atomic_write_text(out_dir / "annex_iv.html", html),
        "pdf": atomic_write_bytes(out_dir / "annex_iv.pdf", render_pdf(html)),
    }
    ledger.append_event(
        wd,
        "annex-iv",
        outputs={p.relative_to(wd).as_posix(): sha256_file(p) for p in out.values()},
        config_digest=policy.digest(),
        details={
            "run_id": rid,
            "missing_human_fields": doc["missing_human_fields"],
            "outside_signed_set": signed,
        },
    )
    write_checkpoint(wd, "annex-iv", key_rel=policy.approval.checkpoint_key)
    return out
