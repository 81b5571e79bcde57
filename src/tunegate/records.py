"""The typed record every stage works on, and the only ingest path.

A :class:`Record` normalizes one input row of a task kind (``classification``, ``instruction``,
``chat``) to fixed field names, keeps the unmapped columns in ``extra``, and carries a stable
``id``: the sha256 of the canonical task content (so the same example read from JSONL, CSV or
Parquet gets the same id). ``record_hash`` is the sha256 of the record as written; the hold-out
manifest pins both.

Readers stream (memory stays bounded on a 1,000,000-line file) and turn hostile input into an
:class:`~tunegate.errors.InputError` naming file, line and field. The input file is only read.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import math
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from tunegate.errors import InputError
from tunegate.provenance import atomic_path, canonical_json, sha256_text

TaskKind = Literal["classification", "instruction", "chat"]
TASK_KINDS: tuple[str, ...] = ("classification", "instruction", "chat")

#: Canonical field -> default input column, per task kind. ``--field NAME=COLUMN`` overrides.
DEFAULT_FIELDS: dict[str, dict[str, str]] = {
    "classification": {"text": "text", "label": "label", "label_2": "label_2", "group": "group"},
    "instruction": {"instruction": "instruction", "input": "input", "output": "output", "group": "group"},
    "chat": {"messages": "messages", "group": "group"},
}
#: Fields that must be present and non-empty, per task kind.
REQUIRED_FIELDS: dict[str, tuple[str, ...]] = {
    "classification": ("text", "label"),
    "instruction": ("instruction", "output"),
    "chat": ("messages",),
}
CHAT_ROLES = ("system", "user", "assistant")
DEFAULT_MAX_LINE_BYTES = 1 << 20  # 1 MiB per line/row


class Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    role: str
    content: str


class Source(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    file: str  # file name only: no directories of the user's machine in artifacts
    line: int  # 1-based line (JSONL), element (JSON array), data row (CSV/Parquet/datasets)


class Record(BaseModel):
    """One normalized example. ``id`` is the content hash of the task fields (see :func:`content_id`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    task: TaskKind
    text: str | None = None
    label: str | None = None
    label_2: str | None = None
    instruction: str | None = None
    input: str | None = None
    output: str | None = None
    messages: tuple[Message, ...] | None = None
    group: str | None = None
    extra: dict[str, Any] = {}
    source: Source | None = None

    # -- views used by every stage -------------------------------------------------------
    def prompt_text(self) -> str:
        """The model-facing input as one string (for dedup, drift and length checks)."""
        if self.task == "classification":
            return self.text or ""
        if self.task == "instruction":
            return f"{self.instruction or ''}\n{self.input or ''}".strip()
        return "\n".join(m.content for m in (self.messages or ()) if m.role != "assistant")

    def target_text(self) -> str:
        """The supervised target (label, output, or the last assistant turn)."""
        if self.task == "classification":
            return self.label or ""
        if self.task == "instruction":
            return self.output or ""
        turns = [m.content for m in (self.messages or ()) if m.role == "assistant"]
        return turns[-1] if turns else ""

    def to_json(self) -> str:
        return canonical_json(self.model_dump(mode="json", exclude_none=True))


def content_of(task: str, fields: Mapping[str, Any]) -> dict[str, Any]:
    """The task content that defines a record's identity (not its source position or extras)."""
    keys = {
        "classification": ("text", "label"),
        "instruction": ("instruction", "input", "output"),
        "chat": ("messages",),
    }[task]
    out: dict[str, Any] = {"task": task}
    for k in keys:
        v = fields.get(k)
        if k == "messages" and v is not None:
            v = [m.model_dump() if isinstance(m, Message) else dict(m) for m in v]
        out[k] = v
    return out


def content_id(task: str, fields: Mapping[str, Any]) -> str:
    return sha256_text(canonical_json(content_of(task, fields)))


def record_hash(record: Record) -> str:
    """sha256 of the record exactly as it is written to a JSONL split."""
    return sha256_text(record.to_json())


def text_fields(record: Record) -> dict[str, str]:
    """Every free-text value of a record by path (``text``, ``messages.2.content``, ``extra.note``).

    Labels are not included: they come from a closed set and are checked, not anonymized.
    """
    out: dict[str, str] = {}
    for name in ("text", "instruction", "input", "output"):
        v = getattr(record, name)
        if v:
            out[name] = v
    for i, m in enumerate(record.messages or ()):
        if m.content:
            out[f"messages.{i}.content"] = m.content
    for k, v in sorted(record.extra.items()):
        if isinstance(v, str) and v:
            out[f"extra.{k}"] = v
    return out


def field_family(path: str) -> str:
    """``messages.3.content`` -> ``messages.content``; used to aggregate per-field counts."""
    parts = path.split(".")
    return ".".join(p for p in parts if not p.isdigit())


def replace_texts(record: Record, new: Mapping[str, str]) -> Record:
    """A copy of ``record`` with the free-text values at the given paths replaced. The id is kept:
    it names the source example, so the hold-out manifest can refer to it across anonymization."""
    update: dict[str, Any] = {}
    messages = list(record.messages or ())
    extra = dict(record.extra)
    for path, value in new.items():
        if path.startswith("messages."):
            i = int(path.split(".")[1])
            messages[i] = Message(role=messages[i].role, content=value)
        elif path.startswith("extra."):
            extra[path[len("extra.") :]] = value
        else:
            update[path] = value
    if record.messages is not None:
        update["messages"] = tuple(messages)
    if record.extra:
        update["extra"] = extra
    return record.model_copy(update=update)
