"""Stopping a run on a signal (tunegate.pipeline): the exception, its re-delivery, child processes."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tunegate.pipeline import GateRunStopped, end_child_processes, stop_on_signals


def test_sigterm_becomes_gate_run_stopped_and_handlers_are_restored() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(GateRunStopped) as info, stop_on_signals():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(1)
    assert info.value.signame == "SIGTERM" and info.value.signum == signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) == before


def test_an_ignored_sighup_stays_ignored() -> None:
    old = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        with stop_on_signals():
            os.kill(os.getpid(), signal.SIGHUP)
            time.sleep(0.2)  # nothing raised: nohup'd runs survive a hangup
        assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, old)


def test_a_swallowed_stop_is_raised_again() -> None:
    """As when the signal lands in a finalizer ("Exception ignored in __del__"): the run must not go on."""
    swallowed = 0
    t0 = time.monotonic()
    with pytest.raises(GateRunStopped), stop_on_signals():
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)
        except GateRunStopped:
            swallowed += 1  # lost, like an exception raised inside __del__
        while time.monotonic() - t0 < 10:
            time.sleep(0.05)
    assert swallowed == 1 and time.monotonic() - t0 < 5


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_end_child_processes_ends_children_and_grandchildren() -> None:
    child = subprocess.Popen(["sh", "-c", "sleep 60 & sleep 60 & wait"])
    time.sleep(0.5)
    ended = end_child_processes(grace_s=5)
    assert child.pid in ended and len(ended) >= 3, ended  # sh and its two sleeps
    assert child.wait(timeout=5) is not None
    time.sleep(0.2)
    for pid in ended:
        stat = Path(f"/proc/{pid}/stat")
        assert not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X")
