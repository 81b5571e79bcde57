"""The approval report of a real run, read in headless Chromium for what a reviewer needs.

The workdir is built by the real stages on the demo's synthetic tickets (fake PII from Faker):
the data gate with Presidio anonymizes them, LoRA trains MiniLM for a few CPU steps, the
evaluation scores both models on the frozen hold-out, the policy decides, and the report is
written. Chromium (``--dump-dom``) then reads the rendered page: page 1's verdict, primary
metric with its interval and its figure, non-zero PII counts, every label's F1, and no section
that has evidence saying "not available". Page-1 screenshots (HTML and PDF) are written for
people to look at when ``TUNEGATE_REPORT_SHOTS`` names a folder (``reports/examples/`` in the
repository holds the committed ones).

Needs Debian's ``chromium`` and ``pdftoppm`` (poppler-utils); skips with a reason otherwise.
"""

from __future__ import annotations

import html as htmlmod
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers.chromium import BROWSER_MARKS, PROBE, chromium

REPO = Path(__file__).resolve().parents[2]
pytestmark = BROWSER_MARKS


def text_of(fragment: str) -> str:
    """Visible text of an HTML fragment (tags dropped, entities decoded, whitespace folded)."""
    return re.sub(r"\s+", " ", htmlmod.unescape(re.sub(r"<[^>]+>", " ", fragment))).strip()


@pytest.fixture(scope="module")
def real_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from tunegate.approval.report import write_report
    from tunegate.data.prepare import prepare_data
    from tunegate.demo import minilm_path
    from tunegate.demo_data import write_demo_tickets
    from tunegate.evaluation.run import decide_run, evaluate_run
    from tunegate.pii.keys import create_pii_key_file
    from tunegate.policy.schema import load_policy, policy_from_mapping
    from tunegate.training.config import LoraSettings, TrainConfig
    from tunegate.training.train import train_run

    root = tmp_path_factory.mktemp("report-content")
    key_file = root / "pii.key"
    create_pii_key_file(key_file)
    old = os.environ.get("TUNEGATE_PII_KEY")
    os.environ["TUNEGATE_PII_KEY"] = key_file.read_text(encoding="utf-8").strip()
    try:
        tickets = write_demo_tickets(root / "tickets.jsonl", n=160, seed=7)
        demo = load_policy(REPO / "gates" / "demo.yaml").model_dump(mode="json")
        demo["evaluation"].update({"bootstrap_samples": 300, "regression_tasks": []})
        policy = policy_from_mapping(demo)
        wd = root / "wd"
        prepare_data(tickets, "classification", wd, policy=policy)
        cfg = TrainConfig(
            max_steps=12,
            learning_rate=1e-3,
            eval_steps=12,
            checkpoint_steps=12,
            batch_size=16,
            max_seq_len=64,
            warmup_ratio=0.0,
            lr_scheduler="constant",
            early_stopping_patience=None,
            device="cpu",
            precision="fp32",
            gradient_checkpointing=False,
            lora=LoraSettings(rank=8),
        )
        res = train_run(wd, model=str(minilm_path()), method="lora", config=cfg, progress=False)
        evaluate_run(wd, run_id=res.run_id, policy=policy)
        decide_run(wd, run_id=res.run_id, policy=policy)
        out = write_report(wd, policy=policy, run_id=res.run_id)
        yield {"wd": wd, "run_id": res.run_id, "html": out["html"], "pdf": out["pdf"], "root": root}
    finally:
        if old is None:
            os.environ.pop("TUNEGATE_PII_KEY", None)
        else:
            os.environ["TUNEGATE_PII_KEY"] = old


@pytest.fixture(scope="module")
def dom(real_run: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> str:
    """The DOM after Chromium loaded the page (with a probe script that counts decoded images)."""
    tmp = tmp_path_factory.mktemp("dom")
    page = real_run["html"].read_text(encoding="utf-8")
    probe = tmp / "probe.html"
    probe.write_text(
        page.replace(
            "style-src 'unsafe-inline'", "style-src 'unsafe-inline'; script-src 'unsafe-inline'"
        ).replace("</body>", PROBE + "</body>"),
        encoding="utf-8",
    )
    res = chromium(tmp, "--dump-dom", "--virtual-time-budget=5000", probe.as_uri())
    assert "<body" in res.stdout, res.stderr[-2000:]
    return res.stdout


def _section(dom: str, sid: str) -> str:
    m = re.search(rf'<section id="{sid}">(.*?)</section>', dom, re.S)
    assert m, f"section {sid} is missing"
    return m.group(1)


def test_page_one_reads_as_a_decision_brief(real_run: dict[str, Any], dom: str) -> None:
    wd, rid = real_run["wd"], real_run["run_id"]
    ev = json.loads((wd / "runs" / rid / "evidence.json").read_text())
    decision = json.loads((wd / "runs" / rid / "decision.json").read_text())
    brief = text_of(_section(dom, "brief"))
    verdict = "GATE PASSED" if decision["verdict"] == "pass" else "GATE FAILED"
    assert verdict in brief
    for c in decision["checks"]:
        if not c["passed"] and c["severity"] == "error":
            assert c["name"] in brief  # every failed check has its line
    m = ev["metrics"][ev["primary_metric"]]
    assert f"Primary metric: {ev['primary_metric']}" in brief
    assert f"{m['baseline']:.4f} → {m['tuned']:.4f}" in brief
    assert f"[{m['ci_low']:+.4f}, {m['ci_high']:+.4f}]" in brief
    assert 'id="plot-metrics"' in _section(dom, "brief")
    # the data gate anonymized the fake PII: non-zero counts per entity, on page 1
    dr = json.loads((wd / "data" / "data_report.json").read_text())
    totals = dr["pii"]["totals"]
    assert sum(totals.values()) > 0
    assert f"PII anonymized: {sum(totals.values()):,} detection(s)" in brief
    for entity, n in totals.items():
        if n:
            assert f"{entity} {n:,}" in brief
    # what is signed, and how
    assert rid in brief and f"policy {decision['policy_name']}" in brief
    assert f"tunegate sign WORKDIR --run {rid} --key YOU.key --decision approve" in brief
    assert re.search(r"\d+ artifacts: \d+ inputs \(digest over them [0-9a-f]{64}", brief)
    # images decoded in the browser, and nothing was fetched from elsewhere
    n = int(re.search(r'data-images="(\d+)"', dom).group(1))  # type: ignore[union-attr]
    assert n >= 4 and f'data-loaded="{n}"' in dom


def test_every_label_has_its_f1(real_run: dict[str, Any], dom: str) -> None:
    wd, rid = real_run["wd"], real_run["run_id"]
    ev = json.loads((wd / "runs" / rid / "evidence.json").read_text())
    per_class = ev["classification"]["tuned"]["per_class"]
    assert len(per_class) >= 3
    table = _section(dom, "appendix-per-class")
    rows = dict(re.findall(r'<tr data-label="([^"]+)">.*?<td class="n f1">([^<]+)</td>', table, re.S))
    assert set(rows) == set(per_class)
    for label, m in per_class.items():
        assert rows[htmlmod.escape(label)] == f"{m['f1']:.3f}", label
    # the body's table is sorted by the change in F1, biggest drop first
    body = _section(dom, "per-class")
    deltas = [float(x) for x in re.findall(r'<td class="n (?:up|down|flat)">([+-]\d\.\d{3})</td>', body)]
    assert deltas == sorted(deltas)


def test_sections_with_evidence_never_say_not_available(real_run: dict[str, Any], dom: str) -> None:
    sections = dict(re.findall(r'<section id="([a-z0-9-]+)">(.*?)</section>', dom, re.S))
    assert {
        "brief",
        "metrics",
        "per-class",
        "confusion-matrix",
        "examples",
        "forgetting",
        "data-card",
    } <= set(sections)
    said = {k for k, body in sections.items() if "not available" in body}
    # no human sample was exported in this run; everything else has its evidence
    assert said <= {"human-eval"}, said
    ex = text_of(sections["examples"])
    assert re.search(r"\d+ record\(s\) fixed by tuning, \d+ broken", ex)


def test_page_one_screenshots(real_run: dict[str, Any], tmp_path: Path) -> None:
    """Page 1 as a browser shows it and as the PDF prints it (PNG files for people to look at)."""
    out = Path(os.environ.get("TUNEGATE_REPORT_SHOTS") or tmp_path)
    out.mkdir(parents=True, exist_ok=True)
    shot = out / "report-page1-html.png"
    res = chromium(tmp_path, f"--screenshot={shot}", "--window-size=1100,1560", real_run["html"].as_uri())
    assert shot.is_file() and shot.stat().st_size > 50_000, res.stderr[-2000:]
    if shutil.which("pdftoppm") is None:
        pytest.skip("poppler-utils (pdftoppm) is not installed")
    subprocess.run(
        [
            "pdftoppm",
            "-png",
            "-r",
            "80",
            "-f",
            "1",
            "-l",
            "1",
            "-singlefile",
            str(real_run["pdf"]),
            str(out / "report-page1-pdf"),
        ],
        check=True,
        timeout=120,
    )
    assert (out / "report-page1-pdf.png").stat().st_size > 30_000
    # the gate-check table fits the page: its result column is in the PDF's text layer
    if shutil.which("pdftotext"):
        txt = subprocess.run(
            ["pdftotext", "-layout", str(real_run["pdf"]), "-"], capture_output=True, text=True, check=True
        ).stdout
        block = txt[txt.index("11. Gate checks") :]
        assert re.search(r"min_improvement_lcb\s+(PASS|FAIL|BORDERLINE)", block), block[:1500]


def test_no_raw_pii_from_the_input_reaches_the_report(real_run: dict[str, Any]) -> None:
    """The examples come from the anonymized hold-out: no e-mail address of the raw tickets shows."""
    raw = (real_run["root"] / "tickets.jsonl").read_text(encoding="utf-8")
    emails = set(re.findall(r"[\w.+-]+@[\w-]+\.[\w.]+", raw))
    assert len(emails) > 20
    for name in ("report.html", "report_evidence.json"):
        text = (real_run["wd"] / "runs" / real_run["run_id"] / name).read_text(encoding="utf-8")
        assert not {e for e in emails if e in text}, name
