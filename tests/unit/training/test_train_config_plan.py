"""Run config defaults and warnings, shipped configs, the padding-free batching, the VRAM plan
against the published figures, and the CLI commands."""

from __future__ import annotations

import contextlib
import json
import warnings
from pathlib import Path

import pytest
import torch
import yaml
from conftest import instruction
from typer.testing import CliRunner

from tunegate.errors import ConfigError
from tunegate.training.config import TrainConfig, config_warnings, load_run_config, resolve_config
from tunegate.training.dataset import IGNORE, build_prompt, collate, encode_causal
from tunegate.training.plan import check_published, describe, plan_memory
from tunegate.training.train import _loss_sum

REPO = Path(__file__).resolve().parents[3]


def test_defaults_resolve_by_method_and_size() -> None:
    lora = resolve_config(TrainConfig(), method="lora", n_train=500)
    assert lora.learning_rate == 2e-4 and lora.lora.alpha == 32 and lora.lora.dropout == 0.05
    assert lora.lr_scheduler == "cosine" and lora.warmup_ratio == 0.03 and lora.epochs == 3
    assert lora.gradient_checkpointing and lora.lora.target_modules == "all-linear" and lora.lora.rank == 16
    full = resolve_config(TrainConfig(), method="full", n_train=5000)
    assert full.learning_rate == 1e-5 and full.lora.dropout == 0.0


def test_plain_word_warnings() -> None:
    msgs = config_warnings(TrainConfig(learning_rate=1e-5), method="lora", n_train=100)
    assert any("full fine-tuning rate" in m for m in msgs)
    msgs = config_warnings(TrainConfig(learning_rate=2e-4, lora={"rank": 128}), method="lora", n_train=300)
    assert any("rank 128 on 300 examples" in m for m in msgs)
    with pytest.warns(UserWarning, match="adapter rate"):
        resolve_config(TrainConfig(learning_rate=2e-4), method="full", n_train=100)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        resolve_config(TrainConfig(), method="lora", n_train=100)  # the defaults warn about nothing


def test_load_run_config_yaml_and_overrides(tmp_path: Path) -> None:
    p = tmp_path / "run.yaml"
    p.write_text("epochs: 2\nlora:\n  rank: 8\n")
    cfg = load_run_config(
        p, ["lora.rslora=true", "learning_rate=1e-4", "lora.target_modules=[q_proj, v_proj]"]
    )
    assert cfg.epochs == 2 and cfg.lora.rank == 8 and cfg.lora.rslora and cfg.learning_rate == 1e-4
    assert cfg.lora.target_modules == ["q_proj", "v_proj"]
    with pytest.raises(ConfigError, match=r"lora\.rnak"):
        load_run_config(None, ["lora.rnak=8"])
    with pytest.raises(ConfigError, match=r"lora\.rank"):
        load_run_config(None, ["lora.rank=0"])
    with pytest.raises(ConfigError, match="key=value"):
        load_run_config(None, ["epochs"])


def test_shipped_run_configs_validate() -> None:
    paths = sorted((REPO / "gates" / "training").glob("*.yaml"))
    assert paths
    for p in paths:
        header = p.read_text().splitlines()[0]
        assert header.startswith("# tunegate train"), p
        load_run_config(p)
        assert isinstance(yaml.safe_load(p.read_text()), dict)


def test_response_only_labels_and_packing_equals_separate(tiny_llama: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_llama))
    recs = [instruction(i) for i in range(3)]
    exs = [encode_causal(r, tok, 96) for r in recs]
    for r, ex in zip(recs, exs, strict=True):
        assert ex is not None
        trained = [t for t in ex.labels if t != IGNORE]
        pieces = [t for t in tok.convert_ids_to_tokens(trained) if t not in tok.all_special_tokens]
        assert "".join(pieces) == r.output  # loss on the response only (and its EOS)
        assert trained[-1] == tok.eos_token_id
        prompt_ids = tok(build_prompt(r, tok), add_special_tokens=False).input_ids
        assert list(ex.input_ids[: len(prompt_ids)]) == prompt_ids
        assert all(t == IGNORE for t in ex.labels[: len(prompt_ids)])
    batch = collate(exs, kind="causal", pad_id=0)
    assert batch.padded == 0 and batch.tokens == sum(len(e.input_ids) for e in exs)
    model = AutoModelForCausalLM.from_pretrained(str(tiny_llama)).eval()
    with torch.no_grad():
        packed = float(_loss_sum(model, batch, kind="causal", device="cpu", autocast=contextlib.nullcontext))
        separate = sum(
            float(_loss_sum(model, collate([e], kind="causal", pad_id=0), kind="causal", device="cpu",
                            autocast=contextlib.nullcontext))
            for e in exs
        )  # fmt: skip
    assert packed == pytest.approx(separate, rel=1e-5)  # no attention across packed examples


def test_plan_reproduces_published_figures() -> None:
    rows = check_published()
    bad = [(r["model"], r["method"], r["predicted_gb"], r["band_gb"]) for r in rows if not r["in_band"]]
    assert not bad
    by = {(r["model"], r["method"], r["optimizer"], r["seq_len"]): r["predicted_gb"] for r in rows}
    # Ordering a reader relies on: full >> lora > qlora, 8-bit AdamW below 32-bit.
    assert by[("llama-2-7b", "full", "adamw", 512)] > 5 * by[("llama-2-7b", "lora", "adamw", 512)]
    assert by[("llama-2-7b", "full", "adamw_8bit", 512)] < by[("llama-2-7b", "full", "adamw", 512)]


def test_plan_counts_real_parameters_and_recommends(tiny_llama: Path) -> None:
    from transformers import AutoModelForCausalLM

    a = describe(str(tiny_llama))
    assert a.params == sum(
        p.numel() for p in AutoModelForCausalLM.from_pretrained(str(tiny_llama)).parameters()
    )
    assert len(a.linear) == 2 * 7  # q, k, v, o, gate, up, down per layer; the LM head is excluded
    rep = plan_memory("llama-2-7b", seq_len=2048, batch=1, gpu_gb=8)
    assert not rep.methods["lora"].fits and rep.methods["qlora"].fits
    assert rep.recommended is not None and rep.recommended["method"] == "qlora"
    rep = plan_memory("llama-2-7b", seq_len=512, batch=1, gpu_gb=4)
    assert rep.recommended is not None and rep.recommended["method"] is None
    assert "nothing fits" in rep.recommended["reason"]


def test_cli_plan_json_and_train_merge(tiny_llama: Path, instruction_workdir: Path, tmp_path: Path) -> None:
    from tunegate.cli import app

    runner = CliRunner()
    res = runner.invoke(app, ["plan", "--model", "llama-2-13b", "--gpu-gb", "24", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert set(data) >= {"methods", "recommended", "assumptions"}
    assert set(data["methods"]) == {"full", "lora", "qlora", "dora"}
    for m in data["methods"].values():
        assert {"peak_gib", "components", "fits"} <= set(m)
    res = runner.invoke(
        app,
        ["train", str(instruction_workdir), "--model", str(tiny_llama), "--method", "lora", "--quiet",
         "--set", "max_steps=2", "--set", "batch_size=8", "--set", "max_seq_len=96"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    run_id = res.stdout.split("run id: ")[1].split()[0]
    assert (instruction_workdir / "runs" / run_id / "run.json").is_file()
    res = runner.invoke(app, ["merge", str(instruction_workdir), "--out", str(tmp_path / "merged")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "merged" / "model.safetensors").is_file()
