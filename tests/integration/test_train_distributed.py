"""Several processes, one run: DDP (torchrun) and FSDP2 (accelerate launch with the shipped
config) on CPU over gloo, the same code path as NCCL on GPUs.

The contract: 2 processes with ``grad_accum=1`` see the same micro-batches per optimizer step as
1 process with ``grad_accum=2``, so they must produce the same loss curve and the same weights
(up to float reduction order), and the run folder must look exactly like a single-process one:
one run, one ordinary peft adapter or HF model, one ledger event.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tunegate.ledger import read_entries, verify_ledger
from tunegate.training.config import TrainConfig
from tunegate.training.model_io import load_run_model
from tunegate.training.train import train_run

pytestmark = [pytest.mark.slow, pytest.mark.needs_shared]

REPO = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).with_name("train_driver.py")
COMMON: dict[str, Any] = {
    "max_steps": 6,
    "batch_size": 4,
    "eval_steps": 3,
    "checkpoint_steps": 3,
    "max_seq_len": 512,
    "warmup_ratio": 0.0,
    "gradient_checkpointing": False,
    "early_stopping_patience": None,
    "device": "cpu",
}


def _run(cmd: list[str], *, expect: int = 0) -> str:
    env = {**os.environ, "TUNEGATE_CPU_THREADS": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == expect, out[-4000:]
    return out


def _torchrun(args: dict[str, Any], *, expect: int = 0) -> str:
    return _run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         str(DRIVER), json.dumps(args)],
        expect=expect,
    )  # fmt: skip


def _only_run(workdir: Path) -> Path:
    runs = [p for p in (workdir / "runs").iterdir() if p.is_dir()]
    assert len(runs) == 1, runs
    return runs[0]


def _weights(run_dir: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    (path,) = [*run_dir.glob("adapter/*.safetensors"), *run_dir.glob("model/*.safetensors")]
    return load_file(str(path))


def _assert_same_training(single: Path, multi: Path, *, steps: int, atol: float) -> dict[str, Any]:
    a = json.loads((single / "run.json").read_text())
    b = json.loads((multi / "run.json").read_text())
    assert b["distributed"]["world_size"] == 2 and "distributed" not in a
    assert b["steps"] == a["steps"] == steps
    assert b["steps_per_epoch"] == a["steps_per_epoch"]  # 2 processes x grad_accum 1 == 1 x 2
    assert b["tokens"] == a["tokens"]
    for x, y in zip(a["loss_curve"], b["loss_curve"], strict=True):
        assert y["loss"] == pytest.approx(x["loss"], abs=1e-5), (a["loss_curve"], b["loss_curve"])
        # The pre-clip gradient norm: catches a wrong loss scale that Adam and clipping would hide.
        assert y["grad_norm"] == pytest.approx(x["grad_norm"], rel=1e-5), (x, y)
    for x, y in zip(a["eval_curve"], b["eval_curve"], strict=True):
        assert y["val_loss"] == pytest.approx(x["val_loss"], abs=1e-5)
    wa, wb = _weights(single), _weights(multi)
    assert sorted(wa) == sorted(wb)  # the same checkpoint layout (no wrapper prefixes, no tied copies)
    worst = max(float((wa[k] - wb[k]).abs().max()) for k in wa)
    assert worst <= atol, worst
    moved = max(float(v.abs().max()) for v in wa.values())
    assert moved > 0
    return b


def _train_events(workdir: Path) -> list[dict[str, Any]]:
    verify_ledger(workdir)  # one writer: the hash chain is intact
    return [e for e in read_entries(workdir) if e["stage"] == "train"]


def test_ddp_crash_and_resume_matches_one_process(
    stories260k: Path, alpaca_workdir: Path, tmp_path: Path
) -> None:
    """LoRA under torchrun (DDP): killed after the step-3 checkpoint, resumed with --resume auto,
    it ends with the single-process run's losses and adapter; rank 0 alone wrote run and ledger."""
    cfg = {**COMMON, "learning_rate": 3e-3, "lora": {"rank": 8, "dropout": 0.0}}
    multi_wd = tmp_path / "multi"
    shutil.copytree(alpaca_workdir, multi_wd)
    single = train_run(
        alpaca_workdir,
        model=str(stories260k),
        method="lora",
        config=TrainConfig.model_validate({**cfg, "grad_accum": 2}),
        progress=False,
    )
    args = {"workdir": str(multi_wd), "model": str(stories260k), "method": "lora",
            "config": {**cfg, "grad_accum": 1}}  # fmt: skip
    _torchrun({**args, "crash_at": 3}, expect=1)  # torchrun exits 1 when its workers fail
    crashed = _only_run(multi_wd)
    assert not (crashed / "run.json").exists() and (crashed / "checkpoints" / "last.json").is_file()
    out = _torchrun({**args, "resume": "auto"})
    assert f"rank 0 run {crashed.name}" in out and f"rank 1 run {crashed.name}" in out
    run = _assert_same_training(single.run_dir, _only_run(multi_wd), steps=6, atol=1e-6)
    assert run["resumed_from_step"] == 3
    assert run["distributed"] == {"world_size": 2, "strategy": "ddp", "backend": "gloo"}
    assert not (crashed / "checkpoints").exists()
    assert len(_train_events(multi_wd)) == 1


def test_fsdp_full_finetune_via_accelerate_launch(
    stories260k: Path, alpaca_workdir: Path, tmp_path: Path, free_port: int
) -> None:
    """Full fine-tuning, `accelerate launch --config_file gates/accelerate/fsdp.yaml` (made CPU: no
    GPU in CI) running the `tunegate train` CLI: FSDP2-sharded, the same weights as one process
    (across an epoch end where one process has no micro-batch), saved as an ordinary HF model."""
    # 64 examples in micro-batches of 5: 13 per epoch, so step 7 has one micro-batch and rank 1
    # runs a zero-weighted pass (the padding that keeps FSDP's collectives in step).
    cfg = {**COMMON, "learning_rate": 1e-3, "batch_size": 5, "max_steps": 8, "eval_steps": 4}
    multi_wd = tmp_path / "multi"
    shutil.copytree(alpaca_workdir, multi_wd)
    single = train_run(
        alpaca_workdir,
        model=str(stories260k),
        method="full",
        config=TrainConfig.model_validate({**cfg, "grad_accum": 2}),
        progress=False,
    )
    launch_cfg = yaml.safe_load((REPO / "gates" / "accelerate" / "fsdp.yaml").read_text())
    launch_cfg.update(use_cpu=True, num_processes=2)
    launch_cfg.pop("gpu_ids", None)
    cpu_yaml = tmp_path / "fsdp-cpu.yaml"
    cpu_yaml.write_text(yaml.safe_dump(launch_cfg))
    sets = [f"--set={k}={json.dumps(v)}" for k, v in {**cfg, "grad_accum": 1}.items()]
    out = _run(
        [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(cpu_yaml),
         "--main_process_port", str(free_port), "-m", "tunegate.cli", "train", str(multi_wd),
         "--model", str(stories260k), "--method", "full", "--quiet", *sets],
    )  # fmt: skip
    multi = _only_run(multi_wd)
    assert out.count(f"run id: {multi.name}") == 1  # rank 0 reports, rank 1 stays quiet
    run = _assert_same_training(single.run_dir, multi, steps=8, atol=1e-5)
    assert run["distributed"] == {"world_size": 2, "strategy": "fsdp", "backend": "gloo"}
    assert run["trainable_params"] == run["total_params"] > 0
    loaded = load_run_model(multi)  # base digest recorded, weights readable without FSDP
    assert loaded.model is not None
    assert len(_train_events(multi_wd)) == 1
