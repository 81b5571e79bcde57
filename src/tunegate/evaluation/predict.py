"""Batched inference for hold-out scoring: greedy generation, label log-likelihoods, encoder heads.

Speed comes from what the per-example loop lacks: prompts are tokenized once, sorted by length and
batched (little padding), padded on the *left* from their ids so every row's last position is its
real last token, and decoded with the KV cache (``use_cache=True``). Greedy decoding makes a
batched output identical to the unbatched one up to float rounding, so baseline and tuned see the
same decoding. ``generate_loop`` is the plain reference the tests compare with.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from tunegate.console import progress


def _device_of(model: Any) -> torch.device:
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


def ensure_pad_token(tokenizer: Any) -> None:
    if tokenizer.pad_token_id is None:
        if tokenizer.eos_token is not None:
            tokenizer.pad_token = tokenizer.eos_token
        elif tokenizer.unk_token is not None:
            tokenizer.pad_token = tokenizer.unk_token


def stop_token_ids(tokenizer: Any, *, stop_on_bos: bool = True) -> list[int]:
    """EOS, plus BOS for models that end a document by predicting BOS (llama2.c stories)."""
    ids = []
    if tokenizer.eos_token_id is not None:
        ids.append(int(tokenizer.eos_token_id))
    if stop_on_bos and tokenizer.bos_token_id is not None and int(tokenizer.bos_token_id) not in ids:
        ids.append(int(tokenizer.bos_token_id))
    return ids


def _order_by_length(tokenizer: Any, prompts: Sequence[str]) -> list[int]:
    lengths = [len(tokenizer(p, add_special_tokens=True)["input_ids"]) for p in prompts]
    return sorted(range(len(prompts)), key=lambda i: (-lengths[i], i))


@torch.inference_mode()
def generate_batched(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    *,
    max_new_tokens: int = 64,
    batch_size: int = 16,
    max_input_tokens: int = 448,
    stop_on_bos: bool = True,
) -> list[str]:
    """Greedy continuations (prompt removed, special tokens skipped), in input order."""
    if not prompts:
        return []
    ensure_pad_token(tokenizer)
    old_side, old_trunc = tokenizer.padding_side, getattr(tokenizer, "truncation_side", "right")
    tokenizer.padding_side = "left"
    tokenizer.truncation_side = "left"
    device = _device_of(model)
    stops = stop_token_ids(tokenizer, stop_on_bos=stop_on_bos)
    out: list[str] = [""] * len(prompts)
    try:
        # one tokenizer call for every prompt: the ids give the length order and are padded per
        # batch (``tokenizer.pad``, left), never tokenized again
        ids = tokenizer(list(prompts), truncation=True, max_length=max_input_tokens)["input_ids"]
        order = sorted(range(len(ids)), key=lambda i: (-len(ids[i]), i))
        bar = progress("generate", len(order), unit="prompts").__enter__()
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            bar.advance(len(idx))
            enc = tokenizer.pad({"input_ids": [ids[i] for i in idx]}, return_tensors="pt").to(device)
            gen = model.generate(
                **enc,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                num_beams=1,
                use_cache=True,
                eos_token_id=stops or None,
                pad_token_id=tokenizer.pad_token_id,
            )
            new = gen[:, enc["input_ids"].shape[1] :]
            texts = tokenizer.batch_decode(new, skip_special_tokens=True)
            for i, t in zip(idx, texts, strict=True):
                out[i] = t.strip()
        bar.__exit__(None, None, None)
    finally:
        tokenizer.padding_side = old_side
        tokenizer.truncation_side = old_trunc
    return out


@torch.inference_mode()
def generate_loop(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    *,
    max_new_tokens: int = 64,
    max_input_tokens: int = 448,
    stop_on_bos: bool = True,
) -> list[str]:
    """The plain reference: one ``generate`` call per prompt (the tests compare with it)."""
    ensure_pad_token(tokenizer)
    device = _device_of(model)
    stops = stop_token_ids(tokenizer, stop_on_bos=stop_on_bos)
    old_trunc = getattr(tokenizer, "truncation_side", "right")
    tokenizer.truncation_side = "left"
    out = []
    try:
        for p in prompts:
            enc = tokenizer(p, return_tensors="pt", truncation=True, max_length=max_input_tokens).to(device)
            gen = model.generate(
                **enc,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                eos_token_id=stops or None,
                pad_token_id=tokenizer.pad_token_id,
            )
            out.append(
                tokenizer.decode(gen[0, enc["input_ids"].shape[1] :], skip_special_tokens=True).strip()
            )
    finally:
        tokenizer.truncation_side = old_trunc
    return out


def _continuation_ids(
    tokenizer: Any, prompt: str, label: str, sep: str = " ", *, separate: bool = False
) -> tuple[list[int], list[int]]:
    """Context and continuation ids. ``separate``: tokenize the label on its own, exactly as the
    training stage tokenizes its target segment (so the scored tokens are the trained tokens).
    Otherwise split the way lm-eval does: encode the whole string and take the part after the
    context's tokens (tokenizers that merge across the boundary stay right)."""
    ctx = tokenizer(prompt, add_special_tokens=True)["input_ids"]
    if separate:
        return list(ctx), list(tokenizer(sep + label, add_special_tokens=False)["input_ids"])
    whole_text = prompt + sep + label
    whole = tokenizer(whole_text, add_special_tokens=True)["input_ids"]
    if whole[: len(ctx)] != ctx:  # a merge across the boundary: fall back to separate encodings
        cont = tokenizer(sep + label, add_special_tokens=False)["input_ids"]
        return list(ctx), list(cont)
    return list(ctx), list(whole[len(ctx) :])


@torch.inference_mode()
def label_logliks(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    labels: Sequence[str],
    *,
    sep: str = " ",
    separate: bool = False,
    batch_size: int = 16,
    max_input_tokens: int = 448,
) -> np.ndarray:
    """Sum of log-probabilities of each label's tokens after each prompt: ``[n_prompts, n_labels]``."""
    device = _device_of(model)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    pairs: list[tuple[int, int, list[int], int]] = []  # (prompt i, label j, ids, n_cont)
    for i, p in enumerate(prompts):
        for j, lab in enumerate(labels):
            ctx, cont = _continuation_ids(tokenizer, p, lab, sep, separate=separate)
            ids = (ctx + cont)[-max_input_tokens:]
            pairs.append((i, j, ids, min(len(cont), len(ids) - 1)))
    scores = np.zeros((len(prompts), len(labels)), dtype=np.float64)
    order = sorted(range(len(pairs)), key=lambda k: -len(pairs[k][2]))
    step = max(1, batch_size * 2)
    for start in range(0, len(order), step):
        chunk = [pairs[k] for k in order[start : start + step]]
        width = max(len(c[2]) for c in chunk)
        input_ids = torch.full((len(chunk), width), pad, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for r, (_, _, ids, _) in enumerate(chunk):
            input_ids[r, : len(ids)] = torch.tensor(ids)
            mask[r, : len(ids)] = 1
        logits = model(input_ids=input_ids.to(device), attention_mask=mask.to(device)).logits.float()
        logp = torch.log_softmax(logits, dim=-1).cpu()
        for r, (i, j, ids, n_cont) in enumerate(chunk):
            length = len(ids)
            pos = torch.arange(length - n_cont - 1, length - 1)
            tgt = torch.tensor(ids[length - n_cont :])
            scores[i, j] = float(logp[r, pos, tgt].sum())
    return scores


@torch.inference_mode()
def seq_cls_predict(
    model: Any, tokenizer: Any, texts: Sequence[str], *, batch_size: int = 16, max_input_tokens: int = 512
) -> np.ndarray:
    """Argmax of an encoder's classification head: label indices in the head's order.

    The texts are tokenized once (one fast-tokenizer call), sorted by token length and padded per
    batch from the ids (``tokenizer.pad``), so a batch of short intents carries almost no padding
    and no text is tokenized twice. See ``bench/evaluate.py --classification`` for the breakdown.
    """
    device = _device_of(model)
    ensure_pad_token(tokenizer)
    out = np.zeros(len(texts), dtype=np.int64)
    if not texts:
        return out
    ids = tokenizer(list(texts), truncation=True, max_length=max_input_tokens)["input_ids"]
    order = sorted(range(len(ids)), key=lambda i: (-len(ids[i]), i))
    with progress("classify", len(order), unit="texts") as bar:
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            enc = tokenizer.pad({"input_ids": [ids[i] for i in idx]}, return_tensors="pt").to(device)
            pred = model(**enc).logits.argmax(dim=-1).cpu().numpy()
            out[idx] = pred
            bar.advance(len(idx))
    return out


def seq_cls_predict_plain(
    model: Any, tokenizer: Any, texts: Sequence[str], *, batch_size: int = 16, max_input_tokens: int = 512
) -> np.ndarray:
    """The previous implementation (tokenize each text to sort, then tokenize each batch again;
    ``torch.no_grad``), kept only as the benchmark's "before" reference."""
    device = _device_of(model)
    ensure_pad_token(tokenizer)
    out = np.zeros(len(texts), dtype=np.int64)
    order = _order_by_length(tokenizer, texts) if texts else []
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            enc = tokenizer(
                [texts[i] for i in idx],
                return_tensors="pt",
                padding=True,
                truncation=True,
                max_length=max_input_tokens,
            ).to(device)
            out[idx] = model(**enc).logits.argmax(dim=-1).cpu().numpy()
    return out


def parse_label(output: str, labels: Sequence[str]) -> int:
    """Index of the allowed label a generated output names, or -1 (invalid).

    The first non-empty line is compared case-insensitively, ignoring surrounding punctuation;
    an output that starts with exactly one allowed label (longest match first) also counts.
    """
    line = next((ln.strip() for ln in output.splitlines() if ln.strip()), "")
    norm = line.strip(" \t.:;,!\"'`").lower()
    lowered = [lab.lower() for lab in labels]
    if norm in lowered:
        return lowered.index(norm)
    for j in sorted(range(len(labels)), key=lambda k: -len(lowered[k])):
        lab = lowered[j]
        if norm.startswith(lab) and (len(norm) == len(lab) or not norm[len(lab)].isalnum()):
            return j
    return -1
