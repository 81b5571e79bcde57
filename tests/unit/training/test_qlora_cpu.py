"""4-bit QLoRA on CPU with shapes bitsandbytes' CPU kernel cannot run, and quiet 8-bit runs
(issue 13: stories260k and MiniLM crashed with "N must be divisible by block_n"; 8-bit printed a
line per forward)."""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path

import pytest
import torch
from conftest import CHARS, char_tokenizer, instruction

from tunegate.errors import ConfigError
from tunegate.training.config import TrainConfig
from tunegate.training.methods import CPU_4BIT_IN_MULTIPLE, CPU_4BIT_OUT_MULTIPLE
from tunegate.training.model_io import load_run_model
from tunegate.training.train import evaluate_loss, train_run

CFG = {"max_steps": 4, "batch_size": 8, "eval_steps": 2, "max_seq_len": 96, "early_stopping_patience": None,
       "learning_rate": 1e-2, "lora": {"rank": 4}}  # fmt: skip


def _llama(path: Path, hidden: int, intermediate: int, heads: int) -> Path:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(CHARS) + 3, hidden_size=hidden, intermediate_size=intermediate,
                      num_hidden_layers=2, num_attention_heads=heads, num_key_value_heads=heads // 2,
                      max_position_embeddings=512, bos_token_id=1, eos_token_id=2, pad_token_id=0,
                      tie_word_embeddings=True)  # fmt: skip
    LlamaForCausalLM(cfg).save_pretrained(path)
    char_tokenizer().save_pretrained(path)  # type: ignore[attr-defined]
    return path


@pytest.fixture(scope="module")
def llama_172(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """stories260k's shapes: hidden 64, MLP 172 (not a multiple of 32)."""
    return _llama(tmp_path_factory.mktemp("llama172"), 64, 172, 8)


def _records() -> tuple[list, list, list]:
    return (
        [instruction(i) for i in range(24)],
        [instruction(i) for i in range(24, 32)],
        [instruction(i) for i in range(32, 40)],
    )


@pytest.mark.parametrize(("out_f", "in_f"), [(172, 64), (64, 172), (48, 64), (64, 96), (160, 64), (64, 128)])
def test_the_cpu_4bit_rule_matches_bitsandbytes(out_f: int, in_f: int) -> None:
    """The shapes the rule admits run a no-grad 4-bit forward on this CPU; the others fail
    (on CPUs with AVX512-BF16, where bitsandbytes uses its packed kernel)."""
    import bitsandbytes as bnb
    from bitsandbytes.functional import has_avx512bf16

    lin = bnb.nn.Linear4bit(in_f, out_f, bias=False, compute_dtype=torch.float32, quant_type="nf4")
    lin.weight = bnb.nn.Params4bit(torch.randn(out_f, in_f), requires_grad=False, quant_type="nf4")
    lin = lin.to("cpu").eval()
    ok = out_f % CPU_4BIT_OUT_MULTIPLE == 0 and in_f % CPU_4BIT_IN_MULTIPLE == 0
    x = torch.randn(2, 3, in_f)
    if ok or not has_avx512bf16():
        with torch.no_grad():
            assert lin(x).shape == (2, 3, out_f)
    else:
        with pytest.raises((AssertionError, RuntimeError)), torch.no_grad():
            lin(x)


def test_qlora4_trains_with_incompatible_layers_left_unquantized(llama_172: Path, make_workdir) -> None:
    wd = make_workdir(*_records())
    cfg = TrainConfig.model_validate({**CFG, "quant": {"bits": 4}})
    res = train_run(wd, model=str(llama_172), method="qlora", config=cfg, progress=False)
    run = json.loads((res.run_dir / "run.json").read_text())
    q = run["quantization"]
    skipped = {x["module"] for x in q["not_quantized"]}
    assert q["bits"] == 4 and len(run["eval_curve"]) == 2
    assert skipped == {
        f"model.layers.{i}.mlp.{p}" for i in range(2) for p in ("gate_proj", "up_proj", "down_proj")
    }
    assert all("172" in x["reason"] for x in q["not_quantized"])
    # evaluation reloads the same structure (quantized attention, plain MLP) and can score it
    import bitsandbytes as bnb

    loaded = load_run_model(res.run_dir)
    kinds = {
        n: type(m).__name__
        for n, m in loaded.model.named_modules()
        if n.endswith(("q_proj.base_layer", "up_proj.base_layer"))
    }
    assert {k.split(".")[-2]: v for k, v in kinds.items()} == {
        "q_proj": bnb.nn.Linear4bit.__name__,
        "up_proj": "Linear",
    }
    from tunegate.training.dataset import encode_records, read_split

    val = read_split(wd / "data" / "validation.jsonl")
    enc = encode_records(val.records, loaded.tokenizer, kind="causal", max_len=96)
    loss = evaluate_loss(loaded.model, enc.examples, kind="causal", batch_size=8, pad_id=0, device="cpu")
    assert loss == pytest.approx(run["best"]["val_loss"], rel=1e-3)


def test_qlora4_with_nothing_quantizable_is_refused_before_any_folder(tmp_path: Path, make_workdir) -> None:
    model = _llama(tmp_path / "llama48", 48, 100, 4)  # every linear layer breaks the rule
    wd = make_workdir(*_records())
    cfg = TrainConfig.model_validate({**CFG, "quant": {"bits": 4}})
    with pytest.raises(
        ConfigError, match=r"no linear layer .* \(e\.g\. model\.layers\.0\.self_attn\.q_proj: out_features 48"
    ):
        train_run(wd, model=str(model), method="qlora", config=cfg, progress=False)
    assert not (wd / "runs").exists() or not any((wd / "runs").iterdir())


def test_qlora8_is_quiet_and_the_silence_is_scoped(tiny_llama: Path, make_workdir) -> None:
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.name.startswith("bitsandbytes"):
                records.append(record)

    handler = Keep(level=logging.DEBUG)
    logging.getLogger().addHandler(handler)
    try:
        wd = make_workdir(*_records())
        cfg = TrainConfig.model_validate({**CFG, "quant": {"bits": 8}})
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            res = train_run(wd, model=str(tiny_llama), method="qlora", config=cfg, progress=False)
            loaded = load_run_model(res.run_dir)
            with torch.no_grad():
                loaded.model(input_ids=torch.tensor([[1, 5, 6, 7]]))
        assert records == [] and not [w for w in caught if "bitsandbytes" in str(w.message)]
        # outside tunegate's calls bitsandbytes speaks as before: the silence is scoped
        assert logging.getLogger("bitsandbytes").level == logging.NOTSET
        with torch.no_grad():  # the model's own forward, without tunegate's scope around it
            loaded.model.forward.__wrapped__(input_ids=torch.tensor([[1, 5, 6, 7]]))
        assert any("MatMul8bitLt" in r.getMessage() for r in records)
    finally:
        logging.getLogger().removeHandler(handler)
