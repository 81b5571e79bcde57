"""The README's main command, for real, as a pip user runs it: `tunegate demo` from the wheel.

The wheel is built from the checkout (src/ and pyproject.toml only) and installed into a fresh
virtualenv; every command then runs from a folder outside the checkout, with no PYTHONPATH, so
nothing can come from the source tree: the policies, GX suites and flows must come from the
wheel's package data. The venv is an overlay: tunegate comes from the wheel, its third-party
dependencies from the test environment (a `.pth` line), because a full clean install took 12.6 min
on the 2-core CI machine; `pip check` in it confirms the wheel's requirements are met there.
Then `tunegate demo` signs, verifies and promotes offline; `tunegate init` + `validate-policy`.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tunegate.approval.verify import verify_run
from tunegate.ledger import verify_ledger
from tunegate.policy.schema import load_policy

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv whose tunegate is the wheel built from this checkout; returns its bin/ folder.

    Commands run as ``bin/python -m tunegate.cli`` (what the ``tunegate`` console script calls,
    checked in the wheel's entry points)."""
    import shutil

    base = tmp_path_factory.mktemp("wheel")
    src = base / "src-copy"  # build from a copy: the wheel holds only what src/ and pyproject ship
    shutil.copytree(REPO / "src", src / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    dist = base / "dist"
    pip = [sys.executable, "-m", "pip"]
    run = {"capture_output": True, "text": True, "check": False, "timeout": 600}
    r = subprocess.run(
        [*pip, "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(dist), str(src)], **run
    )
    assert r.returncode == 0, r.stdout + r.stderr
    (wheel,) = dist.glob("tunegate-*.whl")
    venv = base / "venv"
    r = subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], **run)
    assert r.returncode == 0, r.stderr
    purelib = Path(
        subprocess.run(
            [str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            **run,
        ).stdout.strip()
    )
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (purelib / "_test_env_deps.pth").write_text("\n".join(sorted(deps)) + "\n", encoding="utf-8")
    # --target: the test environment already "has" tunegate (editable), which pip would keep
    r = subprocess.run([*pip, "install", "-q", "--no-deps", "--target", str(purelib), str(wheel)], **run)
    assert r.returncode == 0, r.stdout + r.stderr
    (entry_points,) = purelib.glob("tunegate-*.dist-info/entry_points.txt")
    assert "tunegate = tunegate.cli:main" in entry_points.read_text(encoding="utf-8")
    return venv / "bin"


def _outside_env() -> dict[str, str]:
    """No PYTHONPATH (the helpers' own setting points at src/), no PII key (the demo makes one)."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "TUNEGATE_PII_KEY")}


def test_the_wheel_is_what_runs(wheel_venv: Path, tmp_path: Path) -> None:
    py = str(wheel_venv / "python")
    r = subprocess.run(
        [py, "-c", "import tunegate, tunegate.defaults as d; print(tunegate.__file__); print(d.root())"],
        capture_output=True, text=True, cwd=tmp_path, env=_outside_env(), check=False,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    for line in r.stdout.splitlines():
        assert Path(line).is_relative_to(wheel_venv.parent), f"not from the wheel: {line}"
    r = subprocess.run(
        [py, "-m", "pip", "check"], capture_output=True, text=True, env=_outside_env(), check=False
    )
    assert "tunegate" not in r.stdout, r.stdout  # the wheel's own requirements are met


def test_init_and_validate_policy_from_the_wheel(wheel_venv: Path, tmp_path: Path) -> None:
    tg = [str(wheel_venv / "python"), "-m", "tunegate.cli"]
    env = _outside_env()
    r = subprocess.run(
        [*tg, "init", "proj"], capture_output=True, text=True, cwd=tmp_path, env=env, check=False
    )
    assert r.returncode == 0, r.stdout + r.stderr
    packaged = next(wheel_venv.parent.rglob("tunegate/defaults/gates/default.yaml"))
    for policy in ("proj/gates/policy.yaml", str(packaged)):
        r = subprocess.run(
            [*tg, "validate-policy", policy],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env=env,
            check=False,
        )
        assert r.returncode == 0 and "valid policy" in r.stdout, r.stdout + r.stderr


def test_demo_end_to_end_from_the_wheel(wheel_venv: Path, tmp_path: Path) -> None:
    env = _outside_env()
    out = tmp_path / "demo"
    cmd = [str(wheel_venv / "python"), "-m", "tunegate.cli", "demo", "--out", "demo", "--no-full"]
    proc = subprocess.Popen(
        [*cmd, "--no-generation"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,  # outside the checkout, relative --out
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=1200)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # with Prefect's temporary server: no orphan
        proc.communicate()
        raise
    r = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    assert "using the demo key file" in r.stdout
    assert "where everything is" in r.stdout and "promoted" in r.stdout

    wd = out / "classification"
    (run_dir,) = sorted((wd / "runs").iterdir())
    decision = json.loads((run_dir / "decision.json").read_text())
    assert decision["passed"] is True, decision["reasons"]
    evidence = json.loads((run_dir / "evidence.json").read_text())
    assert evidence  # baseline and tuned scored

    # two demo reviewers signed; the approval verifies offline; the registry holds version 1
    policy = load_policy(REPO / "gates" / "demo.yaml")
    res = verify_run(wd, policy=policy, run_id=run_dir.name, approvers_dir=out / "approvers")
    assert res.approved and len({a.reviewer for a in res.approvals}) == 2  # type: ignore[attr-defined]
    entries = list((out / "registry").rglob("v1"))
    assert entries, "nothing was promoted"
    assert verify_ledger(wd).ok

    # the audit command agrees, and no raw demo PII reached the ledger or the report
    a = subprocess.run(
        [str(wheel_venv / "python"), "-m", "tunegate.cli", "audit", "verify", str(wd)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert a.returncode == 0, a.stdout + a.stderr
    tickets = (out / "input" / "tickets.jsonl").read_text(encoding="utf-8")
    emails = set(re.findall(r"[\w.+-]+@[\w-]+\.\w+", tickets))
    assert len(emails) > 100
    for path in [wd / "audit" / "ledger.jsonl", run_dir / "report.html", *wd.glob("data/*.jsonl")]:
        text = path.read_text(encoding="utf-8")
        leaked = [e for e in emails if e in text]
        assert not leaked, f"{len(leaked)} raw e-mail(s) in {path.name}"
