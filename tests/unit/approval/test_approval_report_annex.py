"""The approval report (HTML + PDF + evidence JSON) and the Annex IV documentation."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from approval_fixtures import Reviewers, redecide

from tunegate.approval.annex_iv import HUMAN_FIELDS, MARK, write_annex_iv
from tunegate.approval.report import CSP, write_report
from tunegate.approval.sign import ApprovalRefusedError, sign_run

SECTIONS = (
    "data-card",
    "split-manifest",
    "training-config",
    "vram-plan",
    "metrics",
    "confusion-matrix",
    "regression",
    "forgetting",
    "human-eval",
    "gate-checks",
    "decision",
)


def test_report_is_self_contained_with_all_sections(workdir: Path) -> None:
    html = (workdir / "runs/run-a/report.html").read_text()
    for s in SECTIONS:
        assert f'id="{s}"' in html
    assert CSP in html
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", html, re.I)
    imgs = re.findall(r'<img id="(plot-[a-z]+)" alt="[^"]*" src="([^"]+)"', html)
    assert {i for i, _ in imgs} == {"plot-loss", "plot-metrics", "plot-confusion"}
    assert all(src.startswith("data:image/png;base64,") and len(src) > 1000 for _, src in imgs)
    assert "macro_f1" in html and "0.88" in html and "PERSON" in html and "piqa" in html
    ev = json.loads((workdir / "runs/run-a/report_evidence.json").read_text())
    rows = {r["metric"]: r for r in ev["metrics"]}
    assert ev["run_id"] == "run-a" and rows["macro_f1"]["tuned"] == pytest.approx(0.88)
    assert rows["accuracy"]["delta"] == pytest.approx(0.45)
    assert "runs/run-a/adapter/adapter_model.safetensors" in ev["artifact_digests"]


def test_missing_optional_sections_render_not_available(workdir: Path, policy) -> None:  # type: ignore[no-untyped-def]
    (workdir / "data/data_report.json").unlink()
    ev_path = workdir / "runs/run-a/evidence.json"
    ev_path.write_text(json.dumps({"run_id": "run-a", "task": "classification"}))
    (workdir / "runs/run-a/confusion_matrix.png").unlink()
    redecide(workdir, "run-a", policy)  # the report renders only the decision decide() makes
    write_report(workdir, policy=policy, run_id="run-a")
    html = (workdir / "runs/run-a/report.html").read_text()
    assert html.count("not available") >= 6
    assert 'id="plot-confusion"' not in html


@pytest.mark.skipif(shutil.which("pdftoppm") is None, reason="poppler-utils (pdftoppm) is not installed")
def test_pdf_renders_to_png_pages(workdir: Path, tmp_path: Path) -> None:
    pdf = workdir / "runs/run-a/report.pdf"
    assert pdf.read_bytes().startswith(b"%PDF")
    subprocess.run(["pdftoppm", "-png", "-r", "40", str(pdf), str(tmp_path / "page")], check=True, timeout=60)
    pages = sorted(tmp_path.glob("page*.png"))
    assert len(pages) >= 2
    assert all(p.stat().st_size > 1000 and p.read_bytes().startswith(b"\x89PNG") for p in pages)


def test_annex_iv_points_and_human_fields(workdir: Path, policy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = write_annex_iv(workdir, policy=policy, run_id="run-a")
    md = out["markdown"].read_text()
    for n in range(1, 10):
        assert f"\n## {n}. " in md
    assert md.count(MARK) >= len(HUMAN_FIELDS)
    assert "Art. 12 logging" in md and "Art. 14 human oversight" in md
    assert "runs/run-a/adapter/adapter_model.safetensors" in md
    assert out["pdf"].read_bytes().startswith(b"%PDF")
    assert (workdir / "annex_iv_human.yaml").is_file()
    filled = {k: f"Filled by the compliance team: {k}" for k in HUMAN_FIELDS}
    (workdir / "annex_iv_human.yaml").write_text(yaml.safe_dump(filled))
    md2 = write_annex_iv(workdir, policy=policy, run_id="run-a")["markdown"].read_text()
    assert (
        md2.count(MARK) == 1
        and "Missing human input" not in md2
        and "Filled by the compliance team: risk_management" in md2
    )


def test_high_risk_refuses_approval_until_human_fields_filled(
    workdir: Path, reviewers: Reviewers, policy_factory
) -> None:  # type: ignore[no-untyped-def]
    pol = policy_factory(high_risk=True)
    redecide(workdir, "run-a", pol)  # a decision is only valid under the policy it was made with
    write_annex_iv(workdir, policy=pol, run_id="run-a")
    write_report(workdir, policy=pol, run_id="run-a")
    with pytest.raises(
        ApprovalRefusedError, match=r"high-risk system: Annex IV human-only fields .*intended_purpose"
    ):
        sign_run(workdir, reviewers.keys["alice"], "approve", policy=pol, run_id="run-a")
    filled = {k: "TODO" if k == "dpia_reference" else f"text for {k}" for k in HUMAN_FIELDS}
    (workdir / "annex_iv_human.yaml").write_text(yaml.safe_dump(filled))
    with pytest.raises(ApprovalRefusedError, match=r"placeholders: dpia_reference\n"):
        sign_run(workdir, reviewers.keys["alice"], "approve", policy=pol, run_id="run-a")
    filled["dpia_reference"] = "DPIA-2026-017"
    (workdir / "annex_iv_human.yaml").write_text(yaml.safe_dump(filled))
    write_annex_iv(workdir, policy=pol, run_id="run-a")
    write_report(workdir, policy=pol, run_id="run-a")
    sign_run(workdir, reviewers.keys["alice"], "approve", policy=pol, run_id="run-a")
