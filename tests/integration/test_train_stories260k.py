"""The real pretrained tiny Llama (stories260k) fine-tuned on a small Alpaca instruction set, with
LoRA and with full fine-tuning: each lowers the loss on that set's frozen hold-out versus the base.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import tunegate  # noqa: F401
from tunegate.training.config import TrainConfig
from tunegate.training.dataset import encode_records, read_split
from tunegate.training.model_io import load_base_model, load_run_model
from tunegate.training.train import evaluate_loss, train_run

pytestmark = [pytest.mark.slow, pytest.mark.needs_shared]


def _holdout_loss(loaded, workdir: Path) -> float:
    hold = read_split(workdir / "data" / "holdout.jsonl")
    enc = encode_records(hold.records, loaded.tokenizer, kind="causal", max_len=512)
    return evaluate_loss(loaded.model, enc.examples, kind="causal", batch_size=8, pad_id=0, device="cpu")


@pytest.mark.parametrize(("method", "lr"), [("lora", 3e-3), ("full", 1e-3)])
def test_training_lowers_holdout_loss(
    method: str, lr: float, stories260k: Path, alpaca_workdir: Path
) -> None:
    base = load_base_model(str(stories260k), kind="causal")
    base_loss = _holdout_loss(base, alpaca_workdir)
    cfg = TrainConfig.model_validate(
        {"max_steps": 20, "batch_size": 8, "eval_steps": 10, "max_seq_len": 512, "learning_rate": lr,
         "lora": {"rank": 8}, "gradient_checkpointing": False}
    )  # fmt: skip
    res = train_run(alpaca_workdir, model=str(stories260k), method=method, config=cfg, progress=False)
    tuned_loss = _holdout_loss(load_run_model(res.run_dir), alpaca_workdir)
    run = json.loads((res.run_dir / "run.json").read_text())
    assert run["padding_fraction"] < 0.05 and run["tokens_per_s"] > 0
    assert tuned_loss < base_loss - 0.1, (base_loss, tuned_loss)
