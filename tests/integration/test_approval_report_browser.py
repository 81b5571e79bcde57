"""The approval report in headless Chromium: it renders, its plots load, and it requests nothing.

Needs Debian's ``chromium`` (``apt-get install -y chromium poppler-utils``); skips with a reason
when it is absent. Reuses the synthetic workdir generator of the approval unit tests.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from helpers.approval_fixtures import make_policy, write_data, write_run
from helpers.chromium import BROWSER_MARKS, PROBE, chromium

from tunegate.approval.report import write_report

pytestmark = BROWSER_MARKS
BROWSER_INTERNAL = re.compile(r"^https?://([a-z0-9-]+\.)*(googleapis\.com|google\.com|gvt1\.com)/")


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("browser")
    wd = root / "wd"
    write_data(wd)
    write_run(wd, "run-a", policy=make_policy(root / "approvers"))  # decided under the report's policy
    (root / "approvers").mkdir()
    write_report(wd, policy=make_policy(root / "approvers"), run_id="run-a")
    return wd / "runs/run-a/report.html"


def test_renders_screenshot_and_makes_no_request(report: Path, tmp_path: Path) -> None:
    shot, netlog = tmp_path / "shot.png", tmp_path / "net.json"
    res = chromium(
        tmp_path,
        f"--screenshot={shot}",
        "--window-size=1200,2400",
        f"--log-net-log={netlog}",
        report.as_uri(),
    )
    assert shot.is_file() and shot.stat().st_size > 20_000, res.stderr[-2000:]
    assert shot.read_bytes().startswith(b"\x89PNG")
    text = netlog.read_text().rstrip().rstrip(",")
    log = json.loads(text if text.endswith("}") else text + "]}")
    # the net log records every URL requested (by the page or the browser): nothing may go out
    urls = {
        e["params"]["url"]
        for e in log["events"]
        if isinstance(e.get("params"), dict) and isinstance(e["params"].get("url"), str)
    }
    # Chromium's own updater/time pings (it is offline here anyway) are not requests of the page
    page = {u for u in urls if not BROWSER_INTERNAL.match(u)}
    assert not {u for u in page if not u.startswith(("file://", "data:"))}, page


def test_dom_has_sections_and_plots_load(report: Path, tmp_path: Path) -> None:
    probe = tmp_path / "probe.html"
    html = report.read_text()
    html = html.replace("style-src 'unsafe-inline'", "style-src 'unsafe-inline'; script-src 'unsafe-inline'")
    probe.write_text(html.replace("</body>", PROBE + "</body>"))
    res = chromium(tmp_path, "--dump-dom", "--virtual-time-budget=5000", probe.as_uri())
    dom = res.stdout
    for s in (
        "brief",
        "data-card",
        "split-manifest",
        "training-config",
        "metrics",
        "per-class",
        "confusion-matrix",
        "examples",
        "decision",
    ):
        assert f'id="{s}"' in dom, res.stderr[-2000:]
    # metric forest plot, training curve, baseline and tuned confusion matrices: all decode
    assert 'data-images="4"' in dom and 'data-loaded="4"' in dom
