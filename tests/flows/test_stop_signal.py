"""SIGTERM to ``tunegate run`` and ``tunegate demo``: children ended, lock free, where it stopped, prompt.

Real subprocesses, no Prefect server configured, so Prefect starts its temporary API server (a
uvicorn child). Before the fix the signal killed the CLI outright and left that server running as
an orphan (and a stopped demo took 160 s more to die). Each test starts the command in its own
session, sends SIGTERM to the CLI process only (as ``timeout``, systemd or a Prefect worker do),
and checks: exit 143 within 60 s, no process of the session left a few seconds later, the workdir
lock can be taken, the stage that was running is named, and it is not recorded as complete.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tunegate.demo import minilm_path
from tunegate.demo_data import write_demo_tickets
from tunegate.pipeline import read_state
from tunegate.workdir import workdir_lock

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
KEY = "stop-signal-test-key-0123456789abcdef"
STOP_LIMIT_S = 60


def _session_pids(sid: int) -> list[int]:
    """Live (non-zombie) processes of a session, from /proc."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[3]) == sid and fields[0] not in ("Z", "X"):
            out.append(int(stat.parent.name))
    return out


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env.update(TUNEGATE_PII_KEY=KEY, PYTHONUNBUFFERED="1")
    return env


def _start(args: list[str], cwd: Path, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as fh:
        return subprocess.Popen(
            [sys.executable, "-m", "tunegate.cli", *args],
            cwd=cwd,
            env=_env(),
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _wait_for(cond, proc: subprocess.Popen[bytes], log: Path, limit_s: float = 420) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + limit_s
    while not cond():
        if proc.poll() is not None:
            pytest.fail(f"exited {proc.returncode} before the stop point:\n{log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail(f"the stop point was not reached in {limit_s} s:\n{log.read_text()[-3000:]}")
        time.sleep(0.5)


def _sigterm_and_check(proc: subprocess.Popen[bytes], log: Path, workdir: Path) -> str:
    """SIGTERM; then the promises: prompt exit 143, no leftover process, the lock is free."""
    sid = proc.pid
    children_before = [p for p in _session_pids(sid) if p != proc.pid]
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        rc = proc.wait(timeout=STOP_LIMIT_S)
    except subprocess.TimeoutExpired:
        os.killpg(sid, signal.SIGKILL)
        pytest.fail(f"still running {STOP_LIMIT_S} s after SIGTERM:\n{log.read_text()[-3000:]}")
    took = time.monotonic() - t0
    time.sleep(3)
    leftover = _session_pids(sid)
    for pid in leftover:  # never leave them to the next test, even when failing
        os.kill(pid, signal.SIGKILL)
    out = log.read_text(encoding="utf-8", errors="replace")
    assert children_before, "expected Prefect's temporary API server as a child before the stop"
    assert not leftover, f"processes left after the stop: {leftover}\n{out[-2000:]}"
    assert rc == 128 + signal.SIGTERM, f"exit {rc}:\n{out[-3000:]}"
    with workdir_lock(workdir / "pipeline", stage="test"):
        pass  # free: LockError otherwise
    print(f"stopped {took:.1f} s after SIGTERM; {len(children_before)} child process(es) before")
    return " ".join(out.split())


def test_sigterm_stops_a_gate_run_during_a_stage(tmp_path: Path) -> None:
    tickets = write_demo_tickets(tmp_path / "tickets.jsonl", 240, seed=7)
    workdir = tmp_path / "wd"
    config = tmp_path / "run.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "data": str(tickets),
                "task": "classification",
                "workdir": str(workdir),
                "model": str(minilm_path()),
                "method": "lora",
                "fields": {"group": "customer_id"},
                "policy": str(REPO / "gates" / "demo.yaml"),
                "train_overrides": ["epochs=30", "max_seq_len=64", "batch_size=16"],
            }
        ),
        encoding="utf-8",
    )
    log = tmp_path / "run.log"
    proc = _start(["run", str(config)], tmp_path, log)
    # stop while training runs: the data gate and the baseline are recorded as complete
    _wait_for(lambda: "baseline" in read_state(workdir), proc, log)
    time.sleep(2)
    out = _sigterm_and_check(proc, log, workdir)
    assert f"stopped by SIGTERM during stage 'train' (not recorded as complete), in {workdir}" in out, out
    assert f"Resume with: tunegate run {config}" in out, out
    state = read_state(workdir)
    assert "prepare" in state and "baseline" in state and "train" not in state, sorted(state)


def test_sigterm_stops_the_demo(tmp_path: Path) -> None:
    out_dir = tmp_path / "demo"
    log = tmp_path / "demo.log"
    proc = _start(["demo", "--out", str(out_dir), "--no-full", "--no-generation"], tmp_path, log)
    workdir = out_dir / "classification"
    # the flow holds the workdir lock; the data gate (20 s or more on 2 cores) starts at once
    _wait_for(lambda: (workdir / ".tunegate.owner").is_file(), proc, log)
    time.sleep(5)
    out = _sigterm_and_check(proc, log, workdir)
    assert f"stopped by SIGTERM during stage 'prepare' (not recorded as complete), in {workdir}" in out, out
    assert f"Resume with: tunegate demo --out {out_dir}" in out, out
    assert read_state(workdir) == {}
    assert not (workdir / "data").exists(), "a stopped data gate must leave no data folder"
