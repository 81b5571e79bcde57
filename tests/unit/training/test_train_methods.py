"""Every method trains for real on a tiny random-init Llama on CPU: loss decreases, the artifact
saves and reloads to the same validation loss, merging equals the adapter's outputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tunegate.training.config import TrainConfig
from tunegate.training.dataset import encode_records, read_split
from tunegate.training.model_io import load_run_model, merge_run
from tunegate.training.train import evaluate_loss, train_run

FAST = {"max_steps": 10, "batch_size": 8, "eval_steps": 5, "max_seq_len": 96, "early_stopping_patience": None,
        "pack_row_tokens": 4096}  # fmt: skip
CASES = {
    "full": ("full", {"learning_rate": 3e-3}),
    "lora": ("lora", {"learning_rate": 1e-2, "lora": {"rank": 8}}),
    "rslora": ("lora", {"learning_rate": 1e-2, "lora": {"rank": 8, "rslora": True}}),
    "dora": ("dora", {"learning_rate": 1e-2, "lora": {"rank": 8}}),
    "qlora4": ("qlora", {"learning_rate": 1e-2, "lora": {"rank": 8}, "quant": {"bits": 4}}),
    "qlora8": ("qlora", {"learning_rate": 1e-2, "lora": {"rank": 8}, "quant": {"bits": 8}}),
}


def _val_loss(run_dir: Path, workdir: Path, loaded) -> float:
    val = read_split(workdir / "data" / "validation.jsonl")
    enc = encode_records(val.records, loaded.tokenizer, kind="causal", max_len=96)
    return evaluate_loss(loaded.model, enc.examples, kind="causal", batch_size=8, pad_id=0, device="cpu")


@pytest.mark.parametrize("case", list(CASES))
def test_method_trains_saves_reloads(case: str, tiny_llama: Path, instruction_workdir: Path) -> None:
    method, extra = CASES[case]
    cfg = TrainConfig.model_validate({**FAST, **extra})
    res = train_run(instruction_workdir, model=str(tiny_llama), method=method, config=cfg, progress=False)
    run = json.loads((res.run_dir / "run.json").read_text())
    assert run["method"] == method and run["model_kind"] == "causal" and run["task"] == "instruction"
    evals = [e["val_loss"] for e in run["eval_curve"]]
    assert len(evals) == 2
    assert run["best"]["val_loss"] < evals[0] - 0.05, evals  # validation loss really went down
    losses = [p["loss"] for p in run["loss_curve"]]
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3
    assert run["padding_fraction"] == 0.0
    artifact = res.run_dir / ("model" if method == "full" else "adapter")
    assert (artifact / ("model.safetensors" if method == "full" else "adapter_model.safetensors")).is_file()
    assert (
        json.loads((artifact / "tunegate_base.json").read_text())["base_model"]["digest"]
        == run["base_model"]["digest"]
    )
    # Reload: the best checkpoint was saved, so the reloaded model reproduces the best validation loss.
    loaded = load_run_model(res.run_dir)
    assert not loaded.model.training
    assert _val_loss(res.run_dir, instruction_workdir, loaded) == pytest.approx(
        run["best"]["val_loss"], rel=1e-4
    )
    if method != "full" and case != "qlora8":
        out = merge_run(res.run_dir, res.run_dir.parent / f"merged-{case}")
        from transformers import AutoModelForCausalLM

        merged = AutoModelForCausalLM.from_pretrained(str(out)).eval()
        # qlora merges into the full-precision base, so compare with the adapter on that base.
        ref = (
            load_run_model(res.run_dir, merged=False) if method != "qlora" else _adapter_on_fp32(res.run_dir)
        )
        x = torch.tensor([[1, 40, 41, 42, 43, 44, 45, 46, 47]])
        with torch.no_grad():
            a, b = ref.model(input_ids=x).logits, merged(input_ids=x).logits
        assert torch.allclose(a, b, atol=1e-4), (a - b).abs().max()


def _adapter_on_fp32(run_dir: Path):
    from peft import PeftModel

    from tunegate.training.model_io import LoadedModel, load_pretrained

    base_path = json.loads((run_dir / "run.json").read_text())["base_model"]["path"]
    base = load_pretrained(Path(base_path), kind="causal", dtype=torch.float32)
    model = PeftModel.from_pretrained(base, str(run_dir / "adapter")).eval()
    return LoadedModel(model, None, "causal", None, None, base_path)
