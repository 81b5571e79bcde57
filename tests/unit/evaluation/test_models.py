"""Real model scoring: batched vs per-example generation, label log-likelihoods, seq-cls, BERTScore,
intruder dimensions on a LoRA model with a non-zero update."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch

from tunegate.evaluation.config import EvaluationPolicy
from tunegate.evaluation.intruder import count_intruders, intruder_dimensions
from tunegate.evaluation.metrics import BertScorer
from tunegate.evaluation.predict import generate_batched, generate_loop, label_logliks
from tunegate.evaluation.scoring import predict
from tunegate.records import Record, content_id

PROMPTS = ["Once upon a time", "Lily and Tom went to the", "The dog", "One day, a little bird saw a big"]


def test_batched_generation_equals_the_per_example_loop(stories: tuple[Any, Any]) -> None:
    model, tok = stories
    a = generate_batched(model, tok, PROMPTS, max_new_tokens=12, batch_size=3)
    b = generate_loop(model, tok, PROMPTS, max_new_tokens=12)
    assert a == b
    assert all(a)


def _alpaca(shared_data: Any, n: int) -> tuple[list[str], list[str]]:
    import json

    from tunegate.evaluation.scoring import build_prompt

    rows = json.loads((shared_data / "alpaca_demo" / "alpaca_en_demo.json").read_text())[:n]
    recs = []
    for r in rows:
        f = {"instruction": r["instruction"], "input": r["input"] or None, "output": r["output"]}
        recs.append(Record(id=content_id("instruction", f), task="instruction", **f))
    policy = EvaluationPolicy(prompt_style="template")
    return [build_prompt(r, policy) for r in recs], [r.target_text() for r in recs]


def test_batched_generation_equals_plain_hf_generate_on_alpaca(
    stories: tuple[Any, Any], shared_data: Any
) -> None:
    """The evaluation path (one tokenizer call, length-sorted, left-padded batches of mixed lengths)
    gives exactly the greedy outputs of one plain ``model.generate`` per prompt."""
    model, tok = stories
    prompts, _ = _alpaca(shared_data, 20)
    a = generate_batched(model, tok, prompts, max_new_tokens=24, batch_size=8)
    b = generate_loop(model, tok, prompts, max_new_tokens=24)
    assert a == b
    assert sum(bool(x) for x in a) >= 15


def test_label_logliks_match_a_direct_forward(stories: tuple[Any, Any]) -> None:
    model, tok = stories
    ll = label_logliks(model, tok, ["Lily was sad and started to", "The sun was"], ["cry", "bright", "fly"])
    ids = tok("The sun was bright", return_tensors="pt")["input_ids"]
    n_ctx = len(tok("The sun was")["input_ids"])
    with torch.no_grad():
        logp = torch.log_softmax(model(ids).logits[0], -1)
    want = sum(float(logp[i - 1, ids[0, i]]) for i in range(n_ctx, ids.shape[1]))
    assert ll[1, 1] == pytest.approx(want, abs=1e-4)
    assert ll[0].argmax() == 0  # the pretrained story model prefers "cry"


def test_seq_cls_head_argmax_is_remapped_to_run_labels() -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast

    torch.manual_seed(0)
    vocab = {"[PAD]": 0, "[UNK]": 1, "good": 2, "bad": 3, "movie": 4}
    t = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    t.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(tokenizer_object=t, pad_token="[PAD]", unk_token="[UNK]")
    cfg = BertConfig(
        vocab_size=5,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=16,
        num_labels=2,
    )
    model = BertForSequenceClassification(cfg).eval()
    recs = [
        Record(
            id=content_id("classification", {"text": x, "label": "pos"}),
            task="classification",
            text=x,
            label="pos",
        )
        for x in ["good movie", "bad movie", "good"]
    ]
    handle = SimpleNamespace(model=model, tokenizer=tok, kind="seq_cls", labels=["neg", "pos"])
    with torch.no_grad():
        enc = tok(["good movie", "bad movie", "good"], return_tensors="pt", padding=True)
        head = model(**enc).logits.argmax(-1).tolist()
    # the run's label order differs from the head's: predictions come back in the run's order
    preds = predict(handle, recs, EvaluationPolicy(), ["pos", "neg"])
    assert preds.pred == [{0: 1, 1: 0}[h] for h in head]


def test_bertscore_minilm_offline_matches_bert_score() -> None:
    from bert_score import BERTScorer as Reference

    from tunegate.evaluation.metrics import default_bertscore_model

    scorer = BertScorer()
    preds = ["the cat sat on the mat", "hello there general", "a quick brown fox"]
    refs = ["a cat sat on a mat", "the stock market fell today", "the quick brown fox jumps"]
    ref = Reference(model_type=str(default_bertscore_model()), num_layers=6, lang="en", device="cpu")
    want = ref.score(preds, refs)[2].numpy()
    assert scorer.score_f1(preds, refs) == pytest.approx(want, abs=1e-5)
    assert scorer.score_f1(["", "x"], ["a b", " "]).tolist() == [0.0, 0.0]  # empty side scores 0
    f1 = scorer.score_f1(
        ["the cat sat on the mat", "hello there", "a b c"],
        ["a cat sat on a mat", "the stock market fell", "a b c"],
    )
    assert f1[2] == pytest.approx(1.0, abs=1e-4)
    assert f1[0] > f1[1]
    assert scorer.describe()["num_layers"] == 6
    # one scorer, reused: the model is loaded once
    model = scorer._scorer
    scorer.score_f1(["x"], ["y"])
    assert scorer._scorer is model


def test_bertscore_equals_bert_score_on_long_references_and_any_batching(shared_data: Any) -> None:
    """Long alpaca references (some past the 512-token window), batched by padded tokens at two caps,
    score what ``bert_score``'s own ``BERTScorer.score`` gives for the same pairs."""
    from bert_score import BERTScorer as Reference

    from tunegate.evaluation.metrics import default_bertscore_model

    _, refs = _alpaca(shared_data, 64)
    refs = [*refs[:23], refs[63]]  # record 63's output is 554 MiniLM tokens: truncated at 512
    # other references cut to varied lengths (never empty: bert_score cannot embed "")
    preds = [(refs[(k + 1) % len(refs)] + " x")[: 20 + (37 * k) % 600] for k in range(len(refs))]
    ref = Reference(model_type=str(default_bertscore_model()), num_layers=6, lang="en", device="cpu")
    want = ref.score(preds, refs)[2].numpy()
    for cap in (512, 4096):
        scorer = BertScorer(batch_size=8)
        scorer.tokens_per_batch = cap
        assert scorer.score_f1(preds, refs) == pytest.approx(want, abs=1e-5)
        # the second model's outputs reuse the references' embeddings
        assert scorer.score_f1(preds[::-1], refs[::-1]) == pytest.approx(want[::-1], abs=1e-5)


def test_seq_cls_predict_equals_plain_hf_on_minilm(shared_data: Any) -> None:
    """MiniLM with a 77-way head on Banking77 texts: the batched path's predictions are the argmax of
    one plain forward per text."""
    import csv

    from tunegate.evaluation.metrics import default_bertscore_model
    from tunegate.evaluation.predict import seq_cls_predict
    from tunegate.training.model_io import load_pretrained, load_tokenizer

    with open(shared_data / "banking77" / "test.csv", newline="", encoding="utf-8") as fh:
        texts = [row["text"] for row in csv.DictReader(fh)][::40]
    torch.manual_seed(0)
    labels = [f"l{k}" for k in range(77)]
    model = load_pretrained(default_bertscore_model(), kind="seq_cls", labels=labels).eval()
    tok = load_tokenizer(default_bertscore_model())
    with torch.no_grad():
        want = [int(model(**tok(t, return_tensors="pt")).logits.argmax(-1)) for t in texts]
    assert seq_cls_predict(model, tok, texts, batch_size=16).tolist() == want
    assert len(set(want)) > 1


def test_intruder_counts_a_new_high_ranking_direction() -> None:
    rng = np.random.default_rng(0)
    u, _, vt = np.linalg.svd(rng.normal(size=(32, 32)))
    s = np.linspace(10, 1, 32)
    base = torch.tensor(u @ np.diag(s) @ vt)
    assert count_intruders(base, base, top_k=5, base_top_k=None, threshold=0.5)[0] == 0
    # add a rank-1 update along a direction spread evenly over the base's singular vectors
    direction = u.sum(axis=1) / np.sqrt(32)
    tuned = base + torch.tensor(50 * np.outer(direction, vt[0]))
    n, sims = count_intruders(base, tuned, top_k=5, base_top_k=None, threshold=0.5)
    assert n == 1 and min(sims) < 0.5


def test_intruder_dimensions_on_a_lora_model(stories: tuple[Any, Any]) -> None:
    import copy

    from peft import LoraConfig, get_peft_model

    base, _ = stories
    tuned = get_peft_model(copy.deepcopy(base), LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    torch.manual_seed(0)
    with torch.no_grad():
        for n, p in tuned.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 2.0)
    ev = intruder_dimensions(base, tuned, top_k=8, threshold=0.5)
    assert ev.applicable and ev.layers == 10  # 5 layers x (q, v)
    assert ev.total == sum(ev.per_layer.values()) and ev.total > 0
    same = intruder_dimensions(base, copy.deepcopy(base))
    assert not same.applicable
