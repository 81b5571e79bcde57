"""Headless Debian Chromium for report tests: one binary lookup, one set of offline flags."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
#: slow, and skipped with a reason where Chromium is not installed
BROWSER_MARKS = [
    pytest.mark.slow,
    pytest.mark.skipif(
        CHROMIUM is None, reason="headless chromium is not installed (apt-get install chromium)"
    ),
]
# no background networking: this machine (and air-gapped users') refuse it, and the report test
# checks that the page itself requests nothing
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
    "--disable-features=NetworkTimeServiceQuerying,OptimizationHints,MediaRouter",
]
#: counts the images that decoded, after load (the report itself carries no script)
PROBE = """<script>
window.addEventListener('load', () => {
  const imgs = Array.from(document.images);
  document.body.setAttribute('data-images', imgs.length);
  document.body.setAttribute('data-loaded', imgs.filter(i => i.complete && i.naturalWidth > 0).length);
});
</script>"""


def chromium(tmp: Path, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """Run Chromium once with a fresh profile under ``tmp``."""
    profile = tmp / f"profile-{len(list(tmp.glob('profile-*')))}"
    return subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args],  # type: ignore[list-item]
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
