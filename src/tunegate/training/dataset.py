"""Training data: read the prepared splits, guard the hold-out, render, tokenize and batch.

* Instruction and chat records are causal-LM examples with loss on the response tokens only.
  The tokenizer's chat template is used when it has one, otherwise an Alpaca (instruction) or
  ChatML (chat) template. Prompt and response are tokenized as separate segments, so the
  boundary between "not trained" and "trained" tokens is exact.
* Classification with a causal LM is "generate the label text" (same machinery, the label is
  the response); with an encoder it is a sequence-classification example (``label_id``).
* Causal batches are *padding-free*: a micro-batch's examples are concatenated into one row with
  position ids restarting at 0 per example, which transformers turns into a block-diagonal
  attention mask (flash-attention varlen on GPU). Encoder batches are length-grouped, and the
  padding share is measured either way and recorded in run.json.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunegate.errors import InputError
from tunegate.provenance import sha256_file
from tunegate.records import Record

IGNORE = -100
ALPACA_INPUT = (
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n"
)
ALPACA_NO_INPUT = (
    "Below is an instruction that describes a task. Write a response that appropriately completes the "
    "request.\n\n### Instruction:\n{instruction}\n\n### Response:\n"
)
#: Instruction used when a causal LM learns a classification task as "generate the label".
CLASSIFY_INSTRUCTION = "Classify the following text. Answer with the label only."


@dataclass(frozen=True)
class Example:
    """One tokenized example. Causal: ``labels`` aligned with ``input_ids`` (IGNORE = not trained).
    Sequence classification: ``label_id`` is the class index and ``labels`` is empty."""

    input_ids: tuple[int, ...]
    labels: tuple[int, ...] = ()
    label_id: int | None = None

    @property
    def n_target(self) -> int:
        return 1 if self.label_id is not None else sum(1 for t in self.labels if t != IGNORE)


@dataclass(frozen=True)
class SplitData:
    records: list[Record]
    digest: str  # sha256 of the JSONL file as written by `tunegate prepare`
    path: Path


# -- reading and the hold-out guard -----------------------------------------------------------------
def read_split(path: Path) -> SplitData:
    """A workdir's split (``WORKDIR/data/<split>.jsonl``), verified against the data gate's record
    before a byte is parsed (:func:`tunegate.data.splits.load_split`)."""
    from tunegate.data.splits import load_split, split_of_path

    workdir, split = split_of_path(path)
    verified = load_split(workdir, split)
    if not verified.records:
        raise InputError("the split is empty", path=path)
    return SplitData(records=verified.records, digest=verified.sha256, path=path)


def guard_holdout(data_dir: Path, splits: Sequence[SplitData]) -> str:
    """Verify the frozen hold-out manifest and refuse any training/validation record in it.

    Validation records count too: they choose the best checkpoint (a hyperparameter), so a
    hold-out record there would leak into the decision as surely as one in train.
    Returns the sha256 of the manifest file.
    """
    from tunegate.data.split import assert_not_in_holdout, verify_holdout
    from tunegate.data.splits import read_split as read_verified_split

    manifest = verify_holdout(data_dir)
    holdout = read_verified_split(data_dir.parent, "holdout")
    for split in splits:
        assert_not_in_holdout(split.records, manifest, holdout=holdout)
    return sha256_file(data_dir / "holdout.manifest.json")


def task_of(records: Sequence[Record], path: Path) -> str:
    tasks = sorted({r.task for r in records})
    if len(tasks) != 1:
        raise InputError(f"a training split must hold one task kind; found {tasks}", path=path, field="task")
    return tasks[0]


def label_set(records: Sequence[Record]) -> list[str]:
    return sorted({r.label for r in records if r.label is not None})


# -- rendering -----------------------------------------------------------------------------------------
def _messages(record: Record) -> list[dict[str, str]]:
    if record.task == "chat":
        return [{"role": m.role, "content": m.content} for m in record.messages or ()]
    if record.task == "instruction":
        user = record.instruction or ""
        if record.input:
            user = f"{user}\n\n{record.input}"
        return [{"role": "user", "content": user}, {"role": "assistant", "content": record.output or ""}]
    return [
        {"role": "user", "content": f"{CLASSIFY_INSTRUCTION}\n\n{record.text or ''}"},
        {"role": "assistant", "content": record.label or ""},
    ]


def _chatml(messages: Sequence[dict[str, str]], *, generation_prompt: bool) -> str:
    out = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
    return out + ("<|im_start|>assistant\n" if generation_prompt else "")


def _render(tokenizer: Any, messages: Sequence[dict[str, str]], *, generation_prompt: bool) -> str:
    if getattr(tokenizer, "chat_template", None):
        return str(
            tokenizer.apply_chat_template(
                list(messages), tokenize=False, add_generation_prompt=generation_prompt
            )
        )
    return _chatml(messages, generation_prompt=generation_prompt)


def segments(record: Record, tokenizer: Any) -> list[tuple[str, bool]]:
    """The example as (text, trained?) segments: prompts False, assistant responses True."""
    has_template = bool(getattr(tokenizer, "chat_template", None))
    if record.task in ("instruction", "classification") and not has_template:
        if record.task == "instruction":
            instruction, inp, out = record.instruction or "", record.input or "", record.output or ""
        else:
            instruction, inp, out = CLASSIFY_INSTRUCTION, record.text or "", record.label or ""
        tmpl = ALPACA_INPUT if inp else ALPACA_NO_INPUT
        return [(tmpl.format(instruction=instruction, input=inp), False), (out, True)]
    msgs = _messages(record)
    segs: list[tuple[str, bool]] = []
    done = ""
    for i, m in enumerate(msgs):
        if m["role"] != "assistant":
            continue
        prompt = _render(tokenizer, msgs[:i], generation_prompt=True)
        full = _render(tokenizer, msgs[: i + 1], generation_prompt=False)
        if not (prompt.startswith(done) and full.startswith(prompt)):
            # The template is not prefix-stable (some drop earlier reasoning): train the last turn only.
            last = max(j for j, mm in enumerate(msgs) if mm["role"] == "assistant")
            prompt = _render(tokenizer, msgs[:last], generation_prompt=True)
            full = _render(tokenizer, msgs[: last + 1], generation_prompt=False)
            return (
                [(prompt, False), (full[len(prompt) :], True)] if full.startswith(prompt) else [(full, True)]
            )
        segs.append((prompt[len(done) :], False))
        segs.append((full[len(prompt) :], True))
        done = full
    return [s for s in segs if s[0]]


def build_prompt(record: Record, tokenizer: Any) -> str:
    """The text a causal LM continues at inference: everything before the (last) response.
    The evaluation stage uses this so prediction sees exactly the training-time prompt."""
    segs = segments(record, tokenizer)
    last = max((i for i, (_, trained) in enumerate(segs) if trained), default=len(segs))
    return "".join(text for text, _ in segs[:last])


def _adds_bos(tokenizer: Any) -> bool:
    bos = tokenizer.bos_token_id
    if bos is None:
        return False
    ids = tokenizer("a").input_ids
    return bool(ids) and ids[0] == bos


def encode_causal(record: Record, tokenizer: Any, max_len: int) -> Example | None:
    """Tokenize segment by segment; None when truncation leaves no target token."""
    has_template = bool(getattr(tokenizer, "chat_template", None))
    ids: list[int] = []
    labels: list[int] = []
    if not has_template and _adds_bos(tokenizer):
        ids.append(tokenizer.bos_token_id)
        labels.append(IGNORE)
    for text, trained in segments(record, tokenizer):
        toks = tokenizer(text, add_special_tokens=False).input_ids
        ids.extend(toks)
        labels.extend(toks if trained else [IGNORE] * len(toks))
    if not has_template and tokenizer.eos_token_id is not None:
        ids.append(tokenizer.eos_token_id)
        labels.append(tokenizer.eos_token_id)
    ids, labels = ids[:max_len], labels[:max_len]
    if labels:
        labels[0] = IGNORE  # never predict an example's first token from the previous packed example
    ex = Example(input_ids=tuple(ids), labels=tuple(labels))
    return ex if ex.n_target > 0 else None


def encode_seq_cls(record: Record, tokenizer: Any, max_len: int, label2id: dict[str, int]) -> Example:
    ids = tokenizer(record.text or "", truncation=True, max_length=max_len).input_ids
    return Example(input_ids=tuple(ids), label_id=label2id[record.label or ""])


@dataclass(frozen=True)
class Encoded:
    examples: list[Example]
    dropped: int  # examples with no target token left after truncation
    truncated: int


def encode_records(
    records: Sequence[Record],
    tokenizer: Any,
    *,
    kind: str,
    max_len: int,
    labels: list[str] | None = None,
    path: Path | None = None,
) -> Encoded:
    out: list[Example] = []
    dropped = truncated = 0
    label2id = {lab: i for i, lab in enumerate(labels or [])}
    for n, rec in enumerate(records, start=1):
        if kind == "seq_cls":
            if rec.label not in label2id:
                raise InputError(
                    "label not in the training label set (the classification head cannot predict it)",
                    path=path,
                    line=n,
                    field="label",
                )
            ex: Example | None = encode_seq_cls(rec, tokenizer, max_len, label2id)
        else:
            ex = encode_causal(rec, tokenizer, max_len)
        if ex is None:
            dropped += 1
            continue
        if len(ex.input_ids) >= max_len:
            truncated += 1
        out.append(ex)
    return Encoded(out, dropped, truncated)


# -- batching ---------------------------------------------------------------------------------------
@dataclass
class Batch:
    tensors: dict[str, Any]
    tokens: int  # real (non-pad) tokens
    padded: int  # pad tokens added
    targets: int  # trained tokens (causal) or examples (seq_cls)


def epoch_order(n: int, *, seed: int, epoch: int) -> list[int]:
    order = list(range(n))
    random.Random(seed * 1_000_003 + epoch).shuffle(order)
    return order


def micro_batches(
    examples: Sequence[Example],
    *,
    batch_size: int,
    seed: int,
    epoch: int,
    kind: str,
    shuffle: bool = True,
    group_by_length: bool = False,
) -> list[list[int]]:
    """Index lists per micro-batch for one epoch (deterministic, so a resumed run sees the same).

    For encoders (and for causal LMs trained one example per row), indices are length-grouped
    inside windows of 50 batches (low padding), and the batches are shuffled again so length
    does not follow the step number."""
    order = epoch_order(len(examples), seed=seed, epoch=epoch) if shuffle else list(range(len(examples)))
    group = kind == "seq_cls" or group_by_length
    if group:
        window = batch_size * 50
        grouped: list[int] = []
        for start in range(0, len(order), window):
            chunk = order[start : start + window]
            grouped.extend(sorted(chunk, key=lambda i: len(examples[i].input_ids)))
        order = grouped
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    if group and shuffle:
        random.Random(seed * 7_919 + epoch).shuffle(batches)
    return batches


def pack_rows(lengths: Sequence[int], capacity: int) -> list[list[int]]:
    """``capacity`` 1 means one example per row (no packing). Otherwise: split example indices
    into ``ceil(total / capacity)`` rows of near-equal length (longest
    example first into the currently shortest row), so rows need almost no padding. A row may
    run past ``capacity`` by less than one example: capacity bounds attention cost, not tokens."""
    if capacity <= 1:
        return [[i] for i in range(len(lengths))]
    total = sum(lengths)
    k = max(1, min(len(lengths), -(-total // capacity)))
    rows: list[list[int]] = [[] for _ in range(k)]
    fill = [0] * k
    for i in sorted(range(len(lengths)), key=lambda j: (-lengths[j], j)):
        r = min(range(k), key=lambda x: (fill[x], x))
        rows[r].append(i)
        fill[r] += lengths[i]
    return [sorted(r) for r in rows if r]


def collate(examples: Sequence[Example], *, kind: str, pad_id: int, row_capacity: int | None = None) -> Batch:
    """Causal: examples packed into rows of ``row_capacity`` tokens (default: one row), position
    ids restarting per example, no attention mask; rows are right-padded to the longest row and
    the pad tail is its own "example" with IGNORE labels. One long row is ideal for
    flash-attention varlen; on CPU/SDPA the block-diagonal mask costs O(row^2), hence rows."""
    import torch

    if kind == "causal":
        cap = row_capacity or sum(len(ex.input_ids) for ex in examples)
        rows = pack_rows([len(ex.input_ids) for ex in examples], cap)
        width = max(sum(len(examples[i].input_ids) for i in row) for row in rows)
        all_ids: list[list[int]] = []
        all_labels: list[list[int]] = []
        all_pos: list[list[int]] = []
        padded = 0
        for row in rows:
            ids: list[int] = []
            labels: list[int] = []
            pos: list[int] = []
            for i in row:
                ex = examples[i]
                ids.extend(ex.input_ids)
                labels.extend(ex.labels)
                pos.extend(range(len(ex.input_ids)))
            pad = width - len(ids)
            padded += pad
            ids.extend([pad_id] * pad)
            labels.extend([IGNORE] * pad)
            pos.extend(range(pad))
            all_ids.append(ids)
            all_labels.append(labels)
            all_pos.append(pos)
        n_real = sum(len(ex.input_ids) for ex in examples)
        return Batch(
            tensors={
                "input_ids": torch.tensor(all_ids, dtype=torch.long),
                "position_ids": torch.tensor(all_pos, dtype=torch.long),
                "labels": torch.tensor(all_labels, dtype=torch.long),
            },
            tokens=n_real,
            padded=padded,
            targets=sum(1 for row in all_labels for t in row if t != IGNORE),
        )
    width = max(len(ex.input_ids) for ex in examples)
    input_ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for i, ex in enumerate(examples):
        input_ids[i, : len(ex.input_ids)] = torch.tensor(ex.input_ids, dtype=torch.long)
        mask[i, : len(ex.input_ids)] = 1
    real = int(mask.sum())
    return Batch(
        tensors={
            "input_ids": input_ids,
            "attention_mask": mask,
            "labels": torch.tensor([ex.label_id for ex in examples], dtype=torch.long),
        },
        tokens=real,
        padded=input_ids.numel() - real,
        targets=len(examples),
    )


def iter_batches(
    examples: Sequence[Example],
    *,
    batch_size: int,
    kind: str,
    pad_id: int,
    max_examples: int | None = None,
    row_capacity: int | None = None,
) -> Iterator[Batch]:
    """Fixed-order batches (for evaluation)."""
    chosen = list(examples[:max_examples] if max_examples else examples)
    grouped = row_capacity == 1
    for idx in micro_batches(
        chosen, batch_size=batch_size, seed=0, epoch=0, kind=kind, shuffle=False, group_by_length=grouped
    ):
        yield collate([chosen[i] for i in idx], kind=kind, pad_id=pad_id, row_capacity=row_capacity)
