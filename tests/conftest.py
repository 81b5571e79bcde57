"""Shared fixtures: paths to ../shared (skip with a reason when absent), tmp workdirs, PII key."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
from helpers.prefect_server import STARTUP_TIMEOUT_S

import tunegate  # noqa: F401  (sets the offline environment before any HF import)

# The CLI's own Prefect server (tunegate run, demo, approve) waits 120 s by default; with two test
# processes on 2 cores a start took over 30 s in CI, so every Prefect start here waits longer.
os.environ["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = str(STARTUP_TIMEOUT_S)

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("TUNEGATE_SHARED", REPO.parent / "shared"))
TEST_PII_KEY = "tunegate-test-key-not-secret-0123456789"

# pytest-xdist runs two test processes at once: each gets its own CPU-stage registry, so one
# worker's training never changes the thread count (and so the last bits) of the other's runs.
_XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER")
if _XDIST_WORKER and "TUNEGATE_RUNTIME_DIR" not in os.environ:
    import atexit
    import shutil
    import tempfile

    os.environ["TUNEGATE_RUNTIME_DIR"] = tempfile.mkdtemp(prefix=f"tunegate-runtime-{_XDIST_WORKER}-")
    atexit.register(shutil.rmtree, os.environ["TUNEGATE_RUNTIME_DIR"], ignore_errors=True)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = SHARED / "data"
    if not path.is_dir():
        pytest.skip(f"shared datasets not found at {path} (set TUNEGATE_SHARED)")
    return path


@pytest.fixture(scope="session")
def stories260k() -> Path:
    path = SHARED / "models" / "stories260k"
    if not (path / "config.json").is_file():
        pytest.skip(f"the pretrained tiny Llama is not at {path} (set TUNEGATE_SHARED)")
    return path


@pytest.fixture()
def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (servers, schedulers, rendezvous)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture()
def pii_key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("TUNEGATE_PII_KEY", TEST_PII_KEY)
    return TEST_PII_KEY


@pytest.fixture()
def quick_lora_config():  # type: ignore[no-untyped-def]
    """Factory for a short, deterministic CPU LoRA run config (shared by evaluation/flow tests)."""
    from tunegate.training.config import LoraSettings, TrainConfig

    def make(steps: int = 12, rank: int = 8) -> TrainConfig:
        return TrainConfig(
            max_steps=steps,
            learning_rate=2e-2,
            eval_steps=steps,
            checkpoint_steps=steps,
            batch_size=8,
            max_seq_len=256,
            warmup_ratio=0.0,
            lr_scheduler="constant",
            early_stopping_patience=None,
            device="cpu",
            precision="fp32",
            gradient_checkpointing=False,
            lora=LoraSettings(rank=rank),
        )

    return make


@pytest.fixture()
def alpaca_workdir(shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Training tests' workdir: 96 short (< 200 characters) Alpaca examples, in file order:
    64 train, 16 validation, 16 hold-out."""
    from tunegate.data.config import DataPolicy
    from tunegate.data.split import SplitResult, freeze_holdout
    from tunegate.records import Record, content_id

    monkeypatch.setenv("TUNEGATE_CPU_THREADS", "1")
    rows = json.loads((shared_data / "alpaca_demo" / "alpaca_en_demo.json").read_text(encoding="utf-8"))
    short = [r for r in rows if len(r["instruction"]) + len(r["input"]) + len(r["output"]) < 200][:96]
    recs = []
    for r in short:
        fields = {"instruction": r["instruction"], "input": r["input"] or None, "output": r["output"]}
        recs.append(Record(id=content_id("instruction", fields), task="instruction", **fields))
    wd = tmp_path / "wd"
    (wd / "data").mkdir(parents=True)
    freeze_holdout(
        wd / "data", SplitResult(recs[:64], recs[64:80], recs[80:]), policy=DataPolicy(), policy_digest="test"
    )
    return wd
