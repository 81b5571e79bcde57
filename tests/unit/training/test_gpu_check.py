"""bench/gpu_check.sh on a machine without a GPU: arguments, the dry run, and a clear refusal.
(The measurement itself needs CUDA; see docs/training.md.)"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[3]
SCRIPT = REPO / "bench" / "gpu_check.sh"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=120, check=False
    )


def test_script_is_valid_bash() -> None:
    assert subprocess.run(["bash", "-n", str(SCRIPT)], check=False).returncode == 0


def test_dry_run_prints_the_plan() -> None:
    out = _run("--dry-run", "--methods", "qlora,full", "--steps", "4", "--seq-len", "256")
    assert out.returncode == 0, out.stderr
    plan = json.loads(out.stdout)
    assert plan["methods"] == ["qlora", "full"] and plan["steps"] == 4
    assert {c["precision"] for c in plan["configs"].values()} == {"bf16"}
    assert plan["configs"]["full"]["learning_rate"] < plan["configs"]["qlora"]["learning_rate"]


@pytest.mark.parametrize(
    ("args", "message"),
    [(("--methods", "lora,dpo"), "--methods must be"), (("--steps", "0"), "--steps must be"),
     (("--seq-len", "abc"), "invalid int value")],
)  # fmt: skip
def test_bad_arguments_exit_2(args: tuple[str, ...], message: str) -> None:
    out = _run(*args)
    assert out.returncode == 2 and message in out.stderr and "Traceback" not in out.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_without_cuda_it_stops_with_one_line(tmp_path: Path) -> None:
    out = _run("--out", str(tmp_path / "gpu.json"))
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        "gpu_check: no CUDA device here (torch.cuda.is_available() is False); run it on a GPU machine"
    ]
    assert not (tmp_path / "gpu.json").exists()


def test_model_flops_per_token() -> None:
    import sys

    sys.path.insert(0, str(REPO / "bench"))
    try:
        import gpu_check
    finally:
        sys.path.pop(0)
    from types import SimpleNamespace

    a = SimpleNamespace(linear=((64, 64),) * 4, vocab=512, hidden=64, layers=1)
    n = 4 * 64 * 64 + 512 * 64
    att = 6 * 1 * 128 * 64
    assert gpu_check.flops_per_token("full", a, 128) == 6 * n + att
    assert gpu_check.flops_per_token("lora", a, 128) == 4 * n + att * 4 / 6
