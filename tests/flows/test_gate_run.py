"""The gate-run flow for real on Prefect's local server: crash (SIGKILL) and resume, and the lock.

A run killed mid-training leaves no half-written artifact; re-running the same config verifies
and skips completed stages, resumes training from its last checkpoint, and ends with the same
artifacts as a run that was never interrupted.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from helpers.policies import MECHANICS_PII

from tunegate.pipeline import final_digests, read_state

pytestmark = [pytest.mark.slow, pytest.mark.needs_shared]

REPO = Path(__file__).resolve().parents[2]
KEY = "gate-run-test-key-0123456789abcdef"
POLICY = """\
version: 1
name: gate-run-test
evaluation:
  generation_metrics: [rouge_l]
  regression_tasks: [tunegate_tiny_stories]
  bootstrap_samples: 300
  max_new_tokens: 24
checks:
  primary_metric: rouge_l
  min_improvement_lcb: 0.0
  max_regression_drop: 1.0
"""


def _config(tmp: Path, data: Path, model: Path, name: str) -> Path:
    # what is tested here is crash and resume: PII detection is tested elsewhere
    policy = {**yaml.safe_load(POLICY), "pii": MECHANICS_PII}
    (tmp / "policy.yaml").write_text(yaml.safe_dump(policy), encoding="utf-8")
    cfg = {
        "data": str(data),
        "task": "instruction",
        "workdir": str(tmp / name),
        "model": str(model),
        "method": "lora",
        "policy": str(tmp / "policy.yaml"),
        "train_overrides": [
            "max_steps=24",
            "checkpoint_steps=4",
            "eval_steps=8",
            "max_seq_len=128",
            "batch_size=8",
        ],
    }
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path


def _run(config: Path, **kw: object) -> subprocess.Popen[str]:
    # Threads pinned: the fair share would shrink if another tunegate run trained beside this test,
    # and a CPU matmul's bits depend on the thread count (the clean and crashed runs must compare).
    env = {**os.environ, "TUNEGATE_PII_KEY": KEY, "TUNEGATE_OPERATOR": "ci", "TUNEGATE_THREADS": "2"}
    return subprocess.Popen(
        [sys.executable, "-m", "tunegate.cli", "run", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        start_new_session=True,  # so SIGKILL reaches the temporary Prefect server too
        **kw,  # type: ignore[call-overload]
    )


@pytest.fixture(scope="module")
def alpaca_subset(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Path:
    rows = json.loads((shared_data / "alpaca_demo" / "alpaca_en_demo.json").read_text())[:230]
    path = tmp_path_factory.mktemp("in") / "alpaca.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _artifacts(workdir: Path) -> dict[str, str]:
    """Content artifacts that must be identical (run.json holds dates and timings, so not it)."""
    digests = final_digests(workdir)
    keep = ("data/", "adapter/adapter_model.safetensors", "predictions.json")
    return {
        re.sub(r"runs/[^/]+/", "runs/<id>/", k.split(":", 1)[1]): v
        for k, v in digests.items()
        if any(s in k for s in keep)
    }


def test_sigkill_mid_training_then_resume_matches_uninterrupted_run(
    tmp_path: Path, alpaca_subset: Path, stories260k: Path
) -> None:
    # 1. uninterrupted
    clean_cfg = _config(tmp_path, alpaca_subset, stories260k, "clean")
    proc = _run(clean_cfg)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 1, out  # stops at approval: nobody signed (that is the expected end)
    assert "stopped at approval" in out
    clean = tmp_path / "clean"

    # 2. killed once training has written a checkpoint, then resumed
    crash_cfg = _config(tmp_path, alpaca_subset, stories260k, "crash")
    crash = tmp_path / "crash"
    proc = _run(crash_cfg)
    deadline = time.monotonic() + 400
    while time.monotonic() < deadline:
        if any(crash.glob("runs/*/checkpoints/last.json")) and proc.poll() is None:
            break
        if proc.poll() is not None:
            pytest.fail("the run ended before it could be killed:\n" + proc.communicate()[0])
        time.sleep(0.2)
    else:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail("training never wrote a checkpoint")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    state = read_state(crash)
    assert "train" not in state and "prepare" in state  # a killed stage is never marked complete
    assert not list(crash.rglob("*.tmp")), "a half-written temp file was left behind"
    assert not list(crash.glob("runs/*/run.json")), "run.json is written only when training finished"

    proc = _run(crash_cfg)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 1 and "stopped at approval" in out, out
    resumed = read_state(crash)
    assert resumed["train"]["outputs"], "training did not complete on resume"
    runs = sorted((crash / "runs").iterdir())
    assert len(runs) == 1, f"resume started a second run instead of continuing: {runs}"

    a, b = _artifacts(clean), _artifacts(crash)
    assert a and a == b

    # 3. a third run skips every completed stage (digests verify), and says so
    proc = _run(crash_cfg)
    out, _ = proc.communicate(timeout=300)
    stages_line = next(line for line in out.splitlines() if line.strip().startswith("stages:"))
    for stage in ("prepare", "baseline", "train", "evaluate", "decide", "report"):
        assert f"{stage} skipped (verified)" in stages_line, stages_line
    state = read_state(crash)
    assert _artifacts(crash) == b
    assert state["train"] == resumed["train"]


def test_second_run_on_a_locked_workdir_fails_fast(
    tmp_path: Path, alpaca_subset: Path, stories260k: Path
) -> None:
    cfg = _config(tmp_path, alpaca_subset, stories260k, "locked")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from tunegate.workdir import workdir_lock\n"
            f"with workdir_lock({str(tmp_path / 'locked' / 'pipeline')!r}, stage='gate-run'):\n"
            "    print('held', flush=True); time.sleep(120)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        start = time.monotonic()
        proc = _run(cfg)
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 2, out
        assert "locked by another tunegate process" in out
        assert time.monotonic() - start < 60
        assert not (tmp_path / "locked" / "data").exists()
    finally:
        holder.kill()
        holder.wait()
