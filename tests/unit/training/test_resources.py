"""One device setting and CPU thread sizing (tunegate.resources)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tunegate.errors import ConfigError, DependencyError
from tunegate.resources import (
    available_cores,
    cgroup_cpu_limit,
    intra_op_threads,
    resolve_device,
)
from tunegate.training.config import TrainConfig


def test_resolve_device() -> None:
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ConfigError, match=r"must be auto, cpu, cuda or cuda:N\. Got .gpu."):
        resolve_device("gpu")
    if not torch.cuda.is_available():
        with pytest.raises(DependencyError, match="CUDA is not available"):
            resolve_device("cuda:0")


def test_train_config_checks_the_device_setting() -> None:
    assert TrainConfig.model_validate({"device": "cuda:1"}).device == "cuda:1"
    with pytest.raises(ValueError, match="device"):
        TrainConfig.model_validate({"device": "gpu0"})


@pytest.mark.parametrize(
    ("text", "cores"),
    [
        ("max 100000\n", None),
        ("150000 100000\n", 2),
        ("50000 100000", 1),
        ("400000 100000", 4),
        ("junk", None),
    ],
)
def test_cgroup_quota(tmp_path: Path, text: str, cores: int | None) -> None:
    f = tmp_path / "cpu.max"
    f.write_text(text)
    assert cgroup_cpu_limit(f) == cores
    assert cgroup_cpu_limit(tmp_path / "absent") is None


def test_threads_fair_share_and_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TUNEGATE_THREADS", raising=False)
    monkeypatch.delenv("TUNEGATE_CPU_THREADS", raising=False)
    monkeypatch.delenv("TUNEGATE_CONCURRENT_STAGES", raising=False)
    cores = available_cores()
    assert len(os.sched_getaffinity(0)) >= cores >= 1
    assert intra_op_threads() == cores
    assert intra_op_threads(concurrent=2) == max(1, cores // 2)
    assert intra_op_threads(concurrent=cores * 4) == 1  # never zero
    monkeypatch.setenv("TUNEGATE_CONCURRENT_STAGES", "2")
    assert intra_op_threads() == max(1, cores // 2)
    monkeypatch.setenv("TUNEGATE_THREADS", "3")
    assert intra_op_threads(concurrent=2) == 3  # an explicit count wins
    monkeypatch.setenv("TUNEGATE_THREADS", "0")
    with pytest.raises(ConfigError, match=r"TUNEGATE_THREADS must be a positive integer\. Got .0."):
        intra_op_threads()


def test_affinity_limits_a_fresh_process() -> None:
    """A process pinned to one core sizes its pool to one thread, and its OpenMP threads sleep
    when idle (OMP_WAIT_POLICY=PASSIVE is set when tunegate is imported, before torch)."""
    code = (
        "import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))});"
        "import tunegate, torch; from tunegate.resources import configure_threads;"
        "print(configure_threads(), torch.get_num_threads(), torch.get_num_interop_threads(),"
        " os.environ['OMP_WAIT_POLICY'])"
    )
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("TUNEGATE_THREADS", "TUNEGATE_CPU_THREADS", "OMP_WAIT_POLICY")
    }
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["1", "1", "1", "PASSIVE"]


def test_running_stages_share_the_cores(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from tunegate.resources import cpu_stage, running_cpu_stages

    for name in ("TUNEGATE_THREADS", "TUNEGATE_CPU_THREADS", "TUNEGATE_CONCURRENT_STAGES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TUNEGATE_RUNTIME_DIR", str(tmp_path))
    registry = tmp_path / f"tunegate-{os.getuid()}" / "cpu-stages"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        with cpu_stage():
            assert running_cpu_stages() == 1 and intra_op_threads() == available_cores()
            (registry / str(dead.pid)).touch()  # a killed run's leftover: not counted, removed
            (registry / str(other.pid)).touch()  # another live stage
            assert running_cpu_stages() == 2
            assert intra_op_threads() == max(1, available_cores() // 2)
            assert not (registry / str(dead.pid)).exists()
        assert not (registry / str(os.getpid())).exists()
    finally:
        other.kill()
        other.wait()
    assert running_cpu_stages() == 0
