"""The drift report (JSON + Markdown), the hold-out marker, and which approval a drift check concerns.

A drift report says whether the hold-out metrics that approved the deployed adapter still
describe production. It names that adapter: the latest ``promote`` event of the workdir's audit
ledger (run id, registry version, approval digest), the sha256 of every approval envelope of
that run, and, when a registry is given, its ``HEAD.json`` and manifest. Without a promotion it
says "no promoted adapter" (and lists approvals that were signed but never promoted).

Reports hold statistics, counts, file names and digests only: never a prompt.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from tunegate.errors import TunegateError
from tunegate.provenance import atomic_write_json, atomic_write_text, sha256_file
from tunegate.workdir import runs_dir

DRIFT_REPORT_FORMAT = "tunegate-drift-report/v1"
MARKER_REL = Path("drift") / "holdout_not_representative.json"
NO_PROMOTION = "no promoted adapter"


class DriftCheck(BaseModel):
    """One statistic, its threshold and its verdict."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    status: Literal["drift", "ok", "skipped"]
    gating: bool = Field(description="Whether an alarm of this check marks the hold-out unrepresentative.")
    statistic: str
    value: float | None = None
    threshold: float
    p_value: float | None = None
    alpha: float | None = None
    n_reference: int
    n_current: int
    details: dict[str, Any] = {}
    reason: str


class ApprovalFile(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    file: str  # WORKDIR-relative
    sha256: str


class PromotionRef(BaseModel):
    """The promoted adapter and the approval a drift check concerns (best effort)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    status: Literal["promoted", "approved_not_promoted", "none", "unknown"]
    summary: str
    run_id: str | None = None
    registry_name: str | None = None
    version: int | None = None
    approval_digest: str | None = None
    manifest_sha256: str | None = None
    ledger_seq: int | None = None
    ledger_entry_hash: str | None = None
    approvals: list[ApprovalFile] = []
    registry_head: dict[str, Any] | None = None


class DriftReport(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    format: str = DRIFT_REPORT_FORMAT
    time: str
    drifted: bool
    holdout_representative: bool
    alarms: list[str]
    checks: list[DriftCheck]
    reference: dict[str, Any]
    current: dict[str, Any]
    promotion: PromotionRef
    marker: str | None = Field(
        None,
        description="WORKDIR-relative hold-out marker, when one exists after this check (this or earlier).",
    )
    policy: dict[str, Any]
    policy_digest: str
    encoder: dict[str, Any]
    provenance: dict[str, Any]


def _approval_files(workdir: Path, run_id: str) -> list[ApprovalFile]:
    adir = runs_dir(workdir) / run_id / "approvals"
    if not adir.is_dir():
        return []
    return [
        ApprovalFile(file=p.relative_to(workdir).as_posix(), sha256=sha256_file(p))
        for p in sorted(adir.glob("*.dsse.json"))
        if p.is_file()
    ]


def _latest_mtime(folder: Path) -> float:
    return max(p.stat().st_mtime for p in folder.glob("*.dsse.json"))


def _read_head(registry: Path, name: str) -> dict[str, Any] | None:
    head = registry / name / "HEAD.json"
    if not head.is_file():
        return None
    data = json.loads(head.read_text(encoding="utf-8"))
    keep = ("version", "approval_digest", "run_id")
    return {k: data[k] for k in keep if k in data} | {"sha256": sha256_file(head)}


def find_promotion(workdir: str | Path, registry: str | Path | None = None) -> PromotionRef:
    """The adapter this drift check concerns; never raises (a broken record is reported as such).

    Source of truth is the ledger's latest ``promote`` event (written by ``tunegate promote``);
    the approval envelopes are hashed from ``runs/<id>/approvals/``.
    """
    wd = Path(workdir)
    try:
        from tunegate.ledger import read_entries

        promotes = [e for e in read_entries(wd) if e.get("stage") == "promote"]
        if promotes:
            ev = promotes[-1]
            details = ev.get("details") or {}
            run_id = str(details.get("run_id")) if details.get("run_id") else None
            outputs = ev.get("outputs") or {}
            reg_name = version_s = manifest_sha = None
            for key, digest in sorted(outputs.items()):
                # "registry:<name>/v<N>/manifest.json"
                if key.startswith("registry:") and key.endswith("/manifest.json"):
                    parts = key[len("registry:") :].split("/")
                    if len(parts) >= 3:
                        reg_name, version_s, manifest_sha = parts[-3], parts[-2], str(digest)
            version = details.get("version")
            if version is None and version_s and version_s[1:].isdigit():
                version = int(version_s[1:])
            head = _read_head(Path(registry), reg_name) if registry is not None and reg_name else None
            label = f"{reg_name or 'adapter'} v{version}" if version is not None else (reg_name or "adapter")
            return PromotionRef(
                status="promoted",
                summary=f"{label} from run {run_id}, approval {str(details.get('approval_digest'))[:16]}…",
                run_id=run_id,
                registry_name=reg_name,
                version=int(version) if isinstance(version, int) else None,
                approval_digest=str(details["approval_digest"]) if details.get("approval_digest") else None,
                manifest_sha256=manifest_sha,
                ledger_seq=int(ev["seq"]) if isinstance(ev.get("seq"), int) else None,
                ledger_entry_hash=str(ev.get("entry_hash")) if ev.get("entry_hash") else None,
                approvals=_approval_files(wd, run_id) if run_id else [],
                registry_head=head,
            )
        runs = runs_dir(wd)
        signed = (
            sorted((p.parent.parent.name for p in runs.glob("*/approvals/*.dsse.json")), key=str)
            if runs.is_dir()
            else []
        )
        if signed:
            run_id = max(set(signed), key=lambda r: (_latest_mtime(runs / r / "approvals"), r))
            return PromotionRef(
                status="approved_not_promoted",
                summary=f"{NO_PROMOTION}; run {run_id} has signed approvals but no promote event",
                run_id=run_id,
                approvals=_approval_files(wd, run_id),
            )
        return PromotionRef(status="none", summary=NO_PROMOTION)
    except (TunegateError, OSError, ValueError, KeyError, TypeError) as exc:
        why = type(exc).__name__
        return PromotionRef(status="unknown", summary=f"could not read the promotion record ({why})")


def render_markdown(report: DriftReport) -> str:
    """A short human summary of the JSON report (same facts, no prompt text)."""
    verdict = (
        "**Drift detected: the hold-out metrics are no longer representative of production.**"
        if report.drifted
        else "No drift above the policy's thresholds: the hold-out metrics still describe production."
    )
    p = report.promotion
    lines = [
        "# tunegate drift report",
        "",
        verdict,
        "",
        f"- Time: {report.time}",
        f"- Adapter: {p.summary}",
    ]
    for a in p.approvals:
        lines.append(f"  - approval `{a.file}` sha256 `{a.sha256}`")
    lines += [
        f"- Reference: `{report.reference['file']}` ({report.reference['rows']} records, "
        f"{report.reference['sampled']} sampled), sha256 `{report.reference['sha256']}`",
        f"- Current: `{report.current['file']}` ({report.current['rows']} rows, "
        f"{report.current['sampled']} sampled), sha256 `{report.current['sha256']}`",
        f"- Policy digest: `{report.policy_digest}`",
        "",
        "| check | status | gating | statistic | value | threshold | p-value | n ref / cur |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for c in report.checks:
        value = "" if c.value is None else f"{c.value:.4f}"
        pv = "" if c.p_value is None else f"{c.p_value:.3g}"
        lines.append(
            f"| {c.name} | {c.status} | {'yes' if c.gating else 'no'} | {c.statistic} | {value} | "
            f"{c.threshold} | {pv} | {c.n_reference} / {c.n_current} |"
        )
    lines += ["", "## Reasons", ""]
    lines += [f"- **{c.name}** ({c.status}): {c.reason}" for c in report.checks]
    if report.drifted:
        lines += [
            "",
            f"The marker `{MARKER_REL.as_posix()}` was written in the reference workdir. It stays until the "
            "hold-out is re-frozen from current data or the adapter is retrained and re-approved.",
        ]
    return "\n".join(lines) + "\n"


def write_report(report: DriftReport, out_dir: str | Path) -> dict[str, Path]:
    """``drift_report.json`` and ``drift_report.md`` in ``out_dir``, written atomically."""
    out = Path(out_dir)
    json_path = atomic_write_json(out / "drift_report.json", report.model_dump(mode="json"))
    md_path = atomic_write_text(out / "drift_report.md", render_markdown(report))
    return {"json": json_path, "markdown": md_path}


def write_marker(workdir: str | Path, report: DriftReport, report_json: Path) -> Path:
    """Mark the workdir's hold-out metrics as not representative of production any more."""
    wd = Path(workdir)
    try:
        rel = report_json.resolve().relative_to(wd.resolve()).as_posix()
    except ValueError:
        rel = report_json.name
    marker = {
        "format": "tunegate-holdout-marker/v1",
        "holdout_representative": False,
        "time": report.time,
        "report": rel,
        "report_sha256": sha256_file(report_json),
        "alarms": report.alarms,
        "current_sha256": report.current["sha256"],
        "run_id": report.promotion.run_id,
        "approval_digest": report.promotion.approval_digest,
    }
    return atomic_write_json(wd / MARKER_REL, marker)
