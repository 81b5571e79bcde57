"""Hand-built records and a CLI runner for the data-gate tests (a uniquely named module: tests
have no packages)."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

from tunegate.records import Message, Record, content_id

# Real words so texts look like text; random 8-word draws share almost no 5-char shingles.
_WORDS = """
account balance card transfer refund payment limit branch mobile app password reset statement
interest loan mortgage deposit cheque exchange rate currency travel abroad fraud alert pin block
unblock freeze cancel charge fee dispute merchant pending declined contactless wallet salary
overdraft savings joint holder address verify identity upload document passport license phone
email notification delay weekend holiday transfer swift iban sort code beneficiary recurring
standing order direct debit subscription cashback reward points voucher coupon receipt invoice
"""
VOCAB = tuple(_WORDS.split())


def sentence(i: int, n_words: int = 9, salt: str = "") -> str:
    rnd = random.Random(f"{salt}{i}")
    return " ".join(rnd.choice(VOCAB) for _ in range(n_words)) + f" {i}"


def cls(
    text: str,
    label: str,
    *,
    label_2: str | None = None,
    group: str | None = None,
    extra: dict[str, Any] | None = None,
) -> Record:
    return Record(
        id=content_id("classification", {"text": text, "label": label}),
        task="classification",
        text=text,
        label=label,
        label_2=label_2,
        group=group,
        extra=extra or {},
    )


def inst(instruction: str, output: str, inp: str | None = None, **kw: Any) -> Record:
    fields = {"instruction": instruction, "input": inp, "output": output}
    return Record(id=content_id("instruction", fields), task="instruction", **fields, **kw)


def chat(*turns: tuple[str, str]) -> Record:
    msgs = tuple(Message(role=r, content=c) for r, c in turns)
    return Record(id=content_id("chat", {"messages": msgs}), task="chat", messages=msgs)


def labelled(counts: dict[str, int], salt: str = "") -> list[Record]:
    """Distinct classification records: ``counts[label]`` of each label."""
    out: list[Record] = []
    i = 0
    for label, n in sorted(counts.items()):
        for _ in range(n):
            out.append(cls(sentence(i, salt=salt), label))
            i += 1
    return out


def ids(records: Sequence[Record]) -> list[str]:
    return [r.id for r in records]


def cli_subprocess(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m tunegate.cli ARGS`` in a fresh process, with ``env`` added to this one's."""
    return subprocess.run(
        [sys.executable, "-m", "tunegate.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=300,
    )
