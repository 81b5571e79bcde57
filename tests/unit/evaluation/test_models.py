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
