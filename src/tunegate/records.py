"""The typed record every stage works on, and the only ingest path.

A :class:`Record` normalizes one input row of a task kind (``classification``, ``instruction``,
``chat``) to fixed field names, keeps the unmapped columns in ``extra``, and carries a stable
``id``: a keyed HMAC-SHA256 of the canonical task content (so the same example read from JSONL,
CSV or Parquet gets the same id under the same key). The key is derived from ``TUNEGATE_PII_KEY``
(domain-separated, :func:`derive_key`), so an id cannot be recomputed from a guessed raw record
without the key: ids survive into every split, the hold-out manifest and the registry, and must
not re-identify anonymized records. ``record_hash`` is the sha256 of the record as written
(anonymized); the hold-out manifest pins both.

Readers stream (memory stays bounded on a 1,000,000-line file) and turn hostile input into an
:class:`~tunegate.errors.InputError` naming file, line and field. The input file is only read.
"""

from __future__ import annotations

import codecs
import csv
import functools
import hashlib
import hmac
import json
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
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
    #: the dataset's name (``tunegate prepare --name``, default: a prefix of the input's sha256);
    #: never the file name or path, which may itself hold personal data
    dataset: str
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


@functools.lru_cache(maxsize=16)
def derive_key(key: bytes, purpose: str) -> bytes:
    """A sub-key of the PII key for one purpose (domain separation: an id key is not a pseudonym key)."""
    return hmac.new(key, b"tunegate-derived-key-v1\x1f" + purpose.encode("utf-8"), hashlib.sha256).digest()


ID_KEY_PURPOSE = "record-id"


def content_id(task: str, fields: Mapping[str, Any], key: bytes | None = None) -> str:
    """The id of a record with these task fields: HMAC-SHA256 under a key derived from ``key``
    (the PII key). Every record that comes in through :func:`read_records` gets a keyed id.

    ``key=None`` gives a plain content digest, for records built in code from synthetic text (tests,
    demos); it must never be used on user data, whose ids would then re-identify anonymized records.
    """
    msg = canonical_json(content_of(task, fields)).encode("utf-8")
    if key is None:
        return hashlib.sha256(msg).hexdigest()
    return hmac.new(derive_key(key, ID_KEY_PURPOSE), msg, hashlib.sha256).hexdigest()


def record_hash(record: Record) -> str:
    """sha256 of the record exactly as it is written to a JSONL split."""
    return sha256_text(record.to_json())


#: An integer with at least this many digits (a phone or account number stored as a number) is
#: scanned for PII like a string; shorter ones (counts, ratings, ticket numbers) are not.
IDENTIFIER_MIN_DIGITS = 7
#: Plain fields whose values are scanned and anonymized (``label`` is checked instead: it is the
#: target of a closed set, see :mod:`tunegate.data.labels`).
TEXT_FIELDS = ("text", "instruction", "input", "output", "label_2", "group")


def _escape(key: str) -> str:
    return key.replace("\\", "\\\\").replace(".", "\\.")


def escape_key(key: str) -> str:
    """A key as one component of a leaf path (a dot inside it escaped)."""
    return _escape(key)


def path_parts(path: str) -> list[str]:
    """Split a field path at its unescaped dots: ``extra.a\\.b.0`` -> ``["extra", "a.b", "0"]``."""
    parts, cur, i = [], [], 0
    while i < len(path):
        ch = path[i]
        if ch == "\\" and i + 1 < len(path):
            cur.append(path[i + 1])
            i += 2
            continue
        if ch == ".":
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
        i += 1
    parts.append("".join(cur))
    return parts


def looks_like_identifier(value: Any) -> bool:
    """An int (or integral float) of at least :data:`IDENTIFIER_MIN_DIGITS` digits."""
    if isinstance(value, bool):
        return False
    if isinstance(value, float) and value.is_integer() and math.isfinite(value):
        value = int(value)
    return isinstance(value, int) and len(str(abs(value))) >= IDENTIFIER_MIN_DIGITS


def _leaf_text(value: Any) -> str | None:
    if isinstance(value, str):
        return value or None
    if looks_like_identifier(value):
        return str(int(value))
    return None


def _walk(prefix: str, value: Any, out: dict[str, str]) -> None:
    def join(key: str) -> str:
        return f"{prefix}.{key}" if prefix else key

    if isinstance(value, Mapping):
        for k in sorted(value, key=str):
            _walk(join(_escape(str(k))), value[k], out)
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _walk(join(str(i)), v, out)
    else:
        text = _leaf_text(value)
        if text is not None:
            out[prefix] = text


def leaf_texts(node: Mapping[str, Any]) -> dict[str, str]:
    """Every string leaf and identifier-like number of a raw row at any depth, lists included, by
    path (``meta.contact.emails.0``; dots inside keys escaped): what ``tunegate anonymize`` scans,
    anonymizes and re-scans, as :func:`text_fields` is for a :class:`Record`."""
    out: dict[str, str] = {}
    _walk("", node, out)
    return out


def _walk_keys(top: str | None, value: Any, out: list[tuple[str | None, str]]) -> None:
    if isinstance(value, Mapping):
        for k in sorted(value, key=str):
            out.append((top, str(k)))
            _walk_keys(top if top is not None else str(k), value[k], out)
    elif isinstance(value, (list, tuple)):
        for v in value:
            _walk_keys(top, v, out)


def key_texts(node: Mapping[str, Any]) -> list[tuple[str | None, str]]:
    """Every key of a raw row's objects at any depth, lists included, as ``(top-level field, key)``
    (``None`` for a top-level key itself). Keys are never anonymized (renaming one would change the
    data's shape and every path below it), so :mod:`tunegate.pii` scans them and refuses a row whose
    key holds personal data (``{"contacts": {"jane@example.com": ...}}``, a phone book keyed by
    name): such a key would reach the output, and the report's field paths, raw."""
    out: list[tuple[str | None, str]] = []
    _walk_keys(None, node, out)
    return out


def record_key_texts(record: Record) -> list[tuple[str | None, str]]:
    """:func:`key_texts` of a record's ``extra`` (the row's fields outside the schema, at any depth)."""
    return key_texts(record.extra) if record.extra else []


def set_leaf(node: Mapping[str, Any], path: str, value: str) -> Any:
    """A copy of a raw row with the :func:`leaf_texts` leaf at ``path`` replaced by ``value``."""
    return _set_leaf(node, path_parts(path), value, path)


def text_fields(record: Record) -> dict[str, str]:
    """Every value of a record that can hold personal data, by path -> text.

    Paths: the plain fields of :data:`TEXT_FIELDS` (``text``, ..., ``label_2``, ``group``),
    ``messages.2.content``, and every leaf under ``extra`` at any depth, lists included
    (``extra.customer.emails.0``; a dot inside a key is escaped as ``\\.``). Strings are given as
    they are; integers that look like identifiers (:func:`looks_like_identifier`) as their digits.
    The PII engine anonymizes exactly these values and its residual re-scan covers exactly them.
    ``label`` is not included: it comes from a closed set and is checked, not anonymized.
    """
    out: dict[str, str] = {}
    for name in TEXT_FIELDS:
        v = getattr(record, name)
        if v:
            out[name] = v
    for i, m in enumerate(record.messages or ()):
        if m.content:
            out[f"messages.{i}.content"] = m.content
    if record.extra:
        _walk("extra", record.extra, out)
    return out


def field_family(path: str) -> str:
    """``messages.3.content`` -> ``messages.content``; used to aggregate per-field counts."""
    parts = path_parts(path)
    return ".".join(_escape(p) for p in parts if not p.isdigit())


def _set_leaf(node: Any, parts: Sequence[str], value: str, path: str) -> Any:
    """A copy of ``node`` with the leaf at ``parts`` replaced by ``value`` (containers are copied)."""
    if not parts:
        if looks_like_identifier(node) and value == str(int(node)):
            return node  # unchanged: an identifier-like number without PII stays a number
        return value
    head, rest = parts[0], parts[1:]
    if isinstance(node, Mapping):
        key = next((k for k in node if str(k) == head), None)
        if key is None:
            raise KeyError(f"no field {path!r} in this record")
        copy = dict(node)
        copy[key] = _set_leaf(node[key], rest, value, path)
        return copy
    if isinstance(node, (list, tuple)) and head.isdigit() and int(head) < len(node):
        items = list(node)
        items[int(head)] = _set_leaf(node[int(head)], rest, value, path)
        return items if isinstance(node, list) else tuple(items)
    raise KeyError(f"no field {path!r} in this record")


def replace_texts(record: Record, new: Mapping[str, str]) -> Record:
    """A copy of ``record`` with the values at the given :func:`text_fields` paths replaced. The id is
    kept: it names the source example, so the hold-out manifest can refer to it across anonymization.
    A number replaced by a placeholder becomes a string."""
    update: dict[str, Any] = {}
    messages = list(record.messages or ())
    extra: Any = record.extra
    for path, value in new.items():
        if path.startswith("messages."):
            i = int(path.split(".")[1])
            messages[i] = Message(role=messages[i].role, content=value)
        elif path.startswith("extra."):
            extra = _set_leaf(extra, path_parts(path)[1:], value, path)
        elif path in TEXT_FIELDS:
            update[path] = value
        else:
            raise KeyError(f"no field {path!r} in this record")
    if record.messages is not None:
        update["messages"] = tuple(messages)
    if record.extra:
        update["extra"] = extra
    return record.model_copy(update=update)


# ----------------------------------------------------------------------------------------------
# Reading: the only ingest path
# ----------------------------------------------------------------------------------------------

FORMATS = ("jsonl", "json", "csv", "parquet", "datasets", "split-pairs")
#: ``--format`` values and what they read (``split-pairs``: CLINC150's layout, see :func:`_iter_split_pairs`).
FORMAT_HELP = (
    "jsonl | json (array of objects) | csv | parquet | datasets (save_to_disk folder) | "
    "split-pairs (a JSON object mapping split names to lists of [text, label] pairs, as CLINC150 ships)"
)
_BOMS = (  # longest first: a UTF-32-LE BOM starts with the UTF-16-LE one
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
MAX_JSON_ARRAY_BYTES = 256 << 20  # a JSON array is parsed whole; larger data belongs in JSONL
_CONVERT_PAIRS = (
    'python -c "import json,sys; d=json.load(open(sys.argv[1])); '
    "[print(json.dumps({'text': t, 'label': l, 'split': s})) for s, ps in d.items() for t, l in ps]\" "
    "IN.json > OUT.jsonl"
)


def text_encoding(path: str | Path) -> str:
    """The codec a text input is read with: ``utf-8``, or from its byte-order mark ``utf-8-sig``
    (Excel's "CSV UTF-8"), ``utf-16`` (Excel's "Unicode text") or ``utf-32``."""
    with open(path, "rb") as fh:
        head = fh.read(4)
    for bom, codec in _BOMS:
        if head.startswith(bom):
            return codec
    return "utf-8"


def detect_format(path: Path) -> str:
    if path.is_dir():
        if any((path / n).exists() for n in ("dataset_info.json", "state.json", "dataset_dict.json")):
            return "datasets"
        raise InputError(
            "is a directory but not a `datasets` dataset saved with save_to_disk",
            path=path,
            hint="pass a .jsonl, .json, .csv or .parquet file, or a save_to_disk folder",
        )
    suffix = path.suffix.lower()
    fmt = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv", ".parquet": "parquet"}
    if suffix not in fmt:
        raise InputError(
            f"unknown file type '{suffix or '(none)'}'",
            path=path,
            hint="use .jsonl, .json, .csv, .parquet, or a datasets folder",
        )
    return fmt[suffix]


def _check_encoding_prefix(path: Path, head: bytes) -> str:
    """The codec for a text input (see :func:`text_encoding`); UTF-16 without a BOM is refused."""
    if not head:
        raise InputError("the file is empty", path=path, hint="provide at least one record")
    for bom, codec in _BOMS:
        if head.startswith(bom):
            if len(head) == len(bom) and path.stat().st_size == len(bom):
                raise InputError("the file is empty (only a byte-order mark)", path=path)
            return codec
    if len(head) >= 2 and (head[0] == 0 or head[1] == 0):
        raise InputError(
            "the file looks UTF-16/UTF-32 encoded without a byte-order mark; tunegate cannot tell the "
            "byte order",
            path=path,
            line=1,
            hint="save it as UTF-8 (or UTF-16 with a BOM), e.g. `iconv -f UTF-16LE -t UTF-8 IN > OUT`",
        )
    return "utf-8"


def _mid_bom(path: Path, line: int) -> InputError:
    return InputError(
        "starts with a byte-order mark (BOM) in the middle of the file; were files concatenated?",
        path=path,
        line=line,
        hint="remove the BOM at this line (only a BOM at the very start of a file is accepted)",
    )


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON (NaN/Infinity are not allowed)")


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"duplicate key '{k}'")
        out[k] = v
    return out


_DECODER = json.JSONDecoder(object_pairs_hook=_no_duplicate_keys, parse_constant=_reject_constant)


def _check_value(value: Any, path: Path, line: int, field: str) -> None:
    """Reject lone surrogates and non-finite floats anywhere inside a value."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise InputError(
                "contains a lone UTF-16 surrogate (an invalid \\ud800-\\udfff escape)",
                path=path,
                line=line,
                field=field,
            ) from None
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise InputError("is NaN or Infinity", path=path, line=line, field=field)
    elif isinstance(value, dict):
        for k, v in value.items():
            _check_value(k, path, line, field)
            _check_value(v, path, line, f"{field}.{k}")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check_value(v, path, line, f"{field}.{i}")


def _decode_object(text: str, path: Path, line: int) -> dict[str, Any]:
    try:
        obj = _DECODER.decode(text)
    except ValueError as exc:
        msg = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
        raise InputError(f"is not valid JSON: {msg}", path=path, line=line) from None
    if not isinstance(obj, dict):
        raise InputError(
            f"is a JSON {type(obj).__name__}, expected an object", path=path, line=line
        ) from None
    for k, v in obj.items():
        _check_value(k, path, line, k)
        _check_value(v, path, line, k)
    return obj


def _lines(path: Path, codec: str, max_line_bytes: int) -> Iterator[tuple[int, str, bool]]:
    """``(line_no, text, ends_with_newline)``; a line longer than the cap or not decodable is an error."""
    line_no = 0
    if codec.startswith("utf-8"):
        with open(path, "rb") as fh:
            if codec == "utf-8-sig":
                fh.read(len(codecs.BOM_UTF8))
            while raw := fh.readline(max_line_bytes + 2):
                line_no += 1
                if len(raw.rstrip(b"\r\n")) > max_line_bytes:
                    raise InputError(
                        f"is longer than the {max_line_bytes}-byte line cap",
                        path=path,
                        line=line_no,
                        hint="split the record or raise the cap (--max-line-bytes)",
                    )
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise InputError(
                        f"is not valid UTF-8 (byte {exc.start} of the line)", path=path, line=line_no
                    ) from None
                yield line_no, text, raw.endswith(b"\n")
        return
    with open(path, encoding=codec, errors="strict", newline="") as tfh:
        while True:
            try:
                text = tfh.readline(max_line_bytes + 2)
            except UnicodeDecodeError:
                raise InputError(f"is not valid {codec.upper()}", path=path, line=line_no + 1) from None
            if not text:
                break
            line_no += 1
            if len(text.rstrip("\r\n").encode("utf-8")) > max_line_bytes:
                raise InputError(
                    f"is longer than the {max_line_bytes}-byte line cap", path=path, line=line_no
                )
            yield line_no, text, text.endswith("\n")


def _iter_jsonl(path: Path, max_line_bytes: int) -> Iterator[tuple[int, dict[str, Any]]]:
    with open(path, "rb") as fh:
        codec = _check_encoding_prefix(path, fh.read(4))
    line_no = 0
    for line_no, text, newline in _lines(path, codec, max_line_bytes):
        if text.startswith("\ufeff"):
            raise _mid_bom(path, line_no)
        if not text.strip():
            if not newline and line_no > 1:
                break  # tolerate nothing after the final newline
            raise InputError("is blank", path=path, line=line_no, hint="remove empty lines")
        yield line_no, _decode_object(text, path, line_no)
    if line_no == 0:
        raise InputError("the file is empty", path=path)


def _load_json(path: Path) -> tuple[str, int]:
    """The whole text of a JSON file (capped) and the index of its first non-blank character."""
    size = path.stat().st_size
    if size > MAX_JSON_ARRAY_BYTES:
        raise InputError(
            f"is a {size}-byte JSON file; JSON files are parsed whole and capped at {MAX_JSON_ARRAY_BYTES}",
            path=path,
            hint="convert it to JSONL (one object per line), which is streamed",
        )
    data = path.read_bytes()
    codec = _check_encoding_prefix(path, data[:4])
    try:
        text = data.decode(codec)
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1 if codec.startswith("utf-8") else None
        raise InputError(f"is not valid {codec.upper().replace('-SIG', '')}", path=path, line=line) from None
    text = text.removeprefix("\ufeff")
    return text, len(text) - len(text.lstrip())


def _pairs_shape(value: Any) -> bool:
    """A ``{split: [[text, label], ...]}`` object (CLINC150's layout)."""
    return (
        isinstance(value, dict)
        and bool(value)
        and all(isinstance(v, list) for v in value.values())
        and any(v for v in value.values())
        and all(isinstance(p, list) and len(p) == 2 for v in value.values() for p in v[:5])
    )


def _iter_split_pairs(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """``--format split-pairs``: ``{"train": [[text, label], ...], "val": [...], ...}`` -> rows
    ``{"text", "label", "split"}``, numbered 1.. in file order (the original split name is kept in
    ``extra.split``; tunegate makes its own split)."""
    text, _ = _load_json(path)
    try:
        obj = _DECODER.decode(text)
    except ValueError as exc:
        msg = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
        raise InputError(f"is not valid JSON: {msg}", path=path) from None
    if not isinstance(obj, dict):
        raise InputError(
            f"--format split-pairs expects a JSON object of split -> [[text, label], ...]; found a "
            f"{type(obj).__name__}",
            path=path,
        )
    n = 0
    for split, pairs in obj.items():
        if not isinstance(pairs, list):
            raise InputError(f"must be a list of [text, label] pairs, found {type(pairs).__name__}",
                             path=path, field=split)  # fmt: skip
        for i, pair in enumerate(pairs):
            where = f"{split}.{i}"
            if not isinstance(pair, list) or len(pair) != 2:
                raise InputError("must be a [text, label] pair", path=path, field=where)
            _check_value(pair, path, n + 1, where)
            n += 1
            yield n, {"text": pair[0], "label": pair[1], "split": split}
    if n == 0:
        raise InputError("holds no [text, label] pairs", path=path)


def _iter_json_array(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    text, idx = _load_json(path)
    # Walk the array element by element so every error names its line.
    idx = len(text) - len(text.lstrip())
    if idx < len(text) and text[idx] == "{":
        try:
            whole = _DECODER.decode(text)
        except ValueError:
            whole = None
        if _pairs_shape(whole):
            raise InputError(
                "holds a JSON object mapping split names to [text, label] pairs (CLINC150's layout), "
                "not an array of objects",
                path=path,
                line=1,
                hint=f"pass --format split-pairs, or convert it: {_CONVERT_PAIRS}",
            )
    if idx >= len(text) or text[idx] != "[":
        raise InputError(
            "a .json file must hold an array of objects",
            path=path,
            line=1,
            hint="use --format split-pairs for {split: [[text, label], ...]}; see --format in --help",
        )
    idx += 1
    n = 0
    while True:
        while idx < len(text) and text[idx] in " \t\r\n":
            idx += 1
        if idx < len(text) and text[idx] == "]":
            break
        if n:
            if idx >= len(text) or text[idx] != ",":
                raise InputError("expected ',' or ']'", path=path, line=text.count("\n", 0, idx) + 1)
            idx += 1
            while idx < len(text) and text[idx] in " \t\r\n":
                idx += 1
        line = text.count("\n", 0, idx) + 1
        try:
            obj, end = _DECODER.raw_decode(text, idx)
        except ValueError as exc:
            msg = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
            raise InputError(f"is not valid JSON: {msg}", path=path, line=line) from None
        if not isinstance(obj, dict):
            raise InputError(
                f"element {n + 1} is a JSON {type(obj).__name__}, expected an object", path=path, line=line
            )
        for k, v in obj.items():
            _check_value(k, path, line, k)
            _check_value(v, path, line, k)
        n += 1
        yield line, obj
        idx = end
    if n == 0:
        raise InputError("the JSON array is empty", path=path)


def _iter_csv(path: Path, max_line_bytes: int) -> Iterator[tuple[int, dict[str, Any]]]:
    with open(path, "rb") as bfh:
        codec = _check_encoding_prefix(path, bfh.read(4))
    csv.field_size_limit(max_line_bytes)
    with open(path, encoding=codec, errors="strict", newline="") as fh:
        reader = csv.reader(fh)
        try:
            header = next(reader)
        except StopIteration:
            raise InputError("the file is empty", path=path) from None
        except UnicodeDecodeError:
            raise InputError(f"is not valid {codec.upper().replace('-SIG', '')}", path=path, line=1) from None
        if header and header[0].startswith("\ufeff"):
            raise _mid_bom(path, 1)  # a second BOM after the first one
        if len(set(header)) != len(header):
            dup = sorted({h for h in header if header.count(h) > 1})
            raise InputError(f"the header repeats column(s) {dup}", path=path, line=1)
        n = 0
        while True:
            try:
                row = next(reader)
            except StopIteration:
                break
            except UnicodeDecodeError:
                raise InputError(
                    f"is not valid {codec.upper().replace('-SIG', '')}", path=path, line=reader.line_num + 1
                ) from None
            except csv.Error as exc:
                raise InputError(f"is not valid CSV: {exc}", path=path, line=reader.line_num) from None
            line = reader.line_num
            if not row or all(not c.strip() for c in row):
                raise InputError("is blank", path=path, line=line, hint="remove empty rows")
            if row[0].startswith("\ufeff"):
                raise _mid_bom(path, line)
            if len(row) != len(header):
                raise InputError(
                    f"has {len(row)} columns, the header has {len(header)}", path=path, line=line
                )
            n += 1
            yield line, dict(zip(header, row, strict=True))
        if n == 0:
            raise InputError("has a header but no data rows", path=path)


def _iter_parquet(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for a corrupt file
        raise InputError(f"is not a readable Parquet file ({type(exc).__name__})", path=path) from None
    if pf.metadata.num_rows == 0:
        raise InputError("the Parquet file has no rows", path=path)
    row = 0
    for batch in pf.iter_batches(batch_size=2048):
        for obj in batch.to_pylist():
            row += 1
            for k, v in obj.items():
                _check_value(v, path, row, k)
            yield row, obj


def _iter_datasets(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    import datasets

    try:
        ds = datasets.load_from_disk(str(path))
    except Exception as exc:
        raise InputError(
            f"could not be loaded with datasets.load_from_disk ({type(exc).__name__})", path=path
        ) from None
    if isinstance(ds, datasets.DatasetDict):
        if "train" not in ds:
            raise InputError(f"is a DatasetDict without a 'train' split (has {sorted(ds)})", path=path)
        ds = ds["train"]
    if len(ds) == 0:
        raise InputError("the dataset has no rows", path=path)
    for row, obj in enumerate(ds, start=1):
        for k, v in obj.items():
            _check_value(v, path, row, k)
        yield row, dict(obj)


def iter_rows(
    path: str | Path, *, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES, fmt: str | None = None
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Stream ``(line_or_row_number, row_dict)`` from JSONL, JSON, CSV, Parquet or a datasets folder.

    ``fmt`` (``--format``, one of :data:`FORMATS`) overrides detection by file name. Text inputs may
    start with a UTF-8, UTF-16 or UTF-32 byte-order mark; a BOM anywhere else is an error.
    Raises :class:`InputError` naming file, line and field for hostile input. Never writes.
    """
    p = Path(path)
    if not p.exists():
        raise InputError("does not exist", path=p)
    if fmt is not None and fmt not in FORMATS:
        raise InputError(f"--format {fmt!r} is not one of {list(FORMATS)}", hint=FORMAT_HELP)
    fmt = fmt or detect_format(p)
    if fmt == "split-pairs":
        yield from _iter_split_pairs(p)
    elif fmt == "jsonl":
        yield from _iter_jsonl(p, max_line_bytes)
    elif fmt == "json":
        yield from _iter_json_array(p)
    elif fmt == "csv":
        yield from _iter_csv(p, max_line_bytes)
    elif fmt == "parquet":
        yield from _iter_parquet(p)
    else:
        yield from _iter_datasets(p)


def resolve_field_map(task: str, overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """Canonical field -> input column, from the task defaults and ``--field NAME=COLUMN`` overrides."""
    if task not in DEFAULT_FIELDS:
        raise InputError(f"unknown task kind '{task}'", hint=f"use one of {', '.join(TASK_KINDS)}")
    fmap = dict(DEFAULT_FIELDS[task])
    for name, column in (overrides or {}).items():
        if name not in fmap:
            raise InputError(
                f"--field {name}=...: '{name}' is not a field of task '{task}'",
                hint=f"fields are {', '.join(sorted(fmap))}",
            )
        fmap[name] = column
    return fmap


def _as_text(value: Any, path: Path, line: int, column: str, *, required: bool) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise InputError("is missing or empty", path=path, line=line, field=column)
        return None if value is None else value
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise InputError(f"must be a string, got {type(value).__name__}", path=path, line=line, field=column)
    return str(value)


def _messages(value: Any, path: Path, line: int, column: str) -> tuple[Message, ...]:
    if isinstance(value, str):
        try:
            value = _DECODER.decode(value)  # CSV/Parquet may carry messages as a JSON string
        except ValueError:
            raise InputError(
                "must be a list of {role, content} objects", path=path, line=line, field=column
            ) from None
    if not isinstance(value, list) or not value:
        raise InputError(
            "must be a non-empty list of {role, content} objects", path=path, line=line, field=column
        )
    out = []
    for i, m in enumerate(value):
        where = f"{column}.{i}"
        if not isinstance(m, dict) or set(m) - {"role", "content", "name"} or "role" not in m:
            raise InputError("must be an object with 'role' and 'content'", path=path, line=line, field=where)
        role = m.get("role")
        if role not in CHAT_ROLES:
            raise InputError(
                f"role {role!r} is not one of {list(CHAT_ROLES)}", path=path, line=line, field=f"{where}.role"
            )
        content = m.get("content")
        if not isinstance(content, str) or not content.strip():
            raise InputError("is missing or empty", path=path, line=line, field=f"{where}.content")
        out.append(Message(role=role, content=content))
    return tuple(out)


def row_to_record(
    row: Mapping[str, Any],
    task: str,
    field_map: Mapping[str, str],
    *,
    path: Path,
    line: int,
    key: bytes,
    dataset: str,
) -> Record:
    """Normalize one input row; the ``id`` is the keyed content id of the task fields
    (:func:`content_id` under ``key``, the PII key) and ``source`` names ``dataset``, not the file."""
    fields: dict[str, Any] = {}
    required = REQUIRED_FIELDS[task]
    for name, column in field_map.items():
        present = column in row
        if name in required and not present:
            raise InputError("is missing", path=path, line=line, field=column)
        if not present:
            continue
        value = row[column]
        if name == "messages":
            fields[name] = _messages(value, path, line, column)
        else:
            fields[name] = _as_text(value, path, line, column, required=name in required)
    mapped = set(field_map.values())
    extra = {k: v for k, v in row.items() if k not in mapped}
    rid = content_id(task, fields, key)
    return Record(
        id=rid,
        task=task,  # type: ignore[arg-type]
        extra=extra,
        source=Source(dataset=dataset, line=line),
        **{k: v for k, v in fields.items() if v is not None},
    )


def check_columns(path: Path, task: str, field_map: Mapping[str, str], first_row: Mapping[str, Any]) -> None:
    """Fail early, with the columns found, when required columns are absent (e.g. a CSV header)."""
    missing = [field_map[n] for n in REQUIRED_FIELDS[task] if field_map[n] not in first_row]
    if missing:
        raise InputError(
            f"required column(s) {missing} not found; columns are {sorted(first_row)}",
            path=path,
            line=1,
            hint="map them with --field NAME=COLUMN (e.g. --field label=category)",
        )


def read_records(
    path: str | Path,
    task: str,
    *,
    fields: Mapping[str, str] | None = None,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    key: bytes,
    dataset: str | None = None,
    fmt: str | None = None,
) -> Iterator[Record]:
    """Stream normalized :class:`Record` objects from any supported input.

    ``key``: the PII key (:func:`tunegate.pii.keys.load_pii_key`) the ids are keyed with; there is
    no unkeyed ingest. ``dataset``: the name recorded in each
    record's ``source`` (default: the first 12 hex digits of the input's sha256). ``fmt``: see
    :func:`iter_rows`.
    """
    p = Path(path)
    fmap = resolve_field_map(task, fields)
    if dataset is None:
        dataset = input_digest(p)[:12]
    first = True
    for line, row in iter_rows(p, max_line_bytes=max_line_bytes, fmt=fmt):
        if first:
            check_columns(p, task, fmap, row)
            first = False
        yield row_to_record(row, task, fmap, path=p, line=line, key=key, dataset=dataset)


def input_digest(path: str | Path) -> str:
    """sha256 of an input file, or of the sorted file digests of a ``datasets`` folder."""
    from tunegate.provenance import digest_json, sha256_file, sha256_tree

    p = Path(path)
    if not p.exists():
        raise InputError("does not exist", path=p)
    return sha256_file(p) if p.is_file() else digest_json(sha256_tree(p))


# ----------------------------------------------------------------------------------------------
# Splits: tunegate's own JSONL of Records
# ----------------------------------------------------------------------------------------------


def write_records(path: str | Path, records: Iterable[Record]) -> Path:
    """Write one canonical Record JSON per line, atomically (temp file + rename)."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as fh:
        for r in records:
            fh.write(r.to_json() + "\n")
    return Path(path)


def records_digest(records: Sequence[Record]) -> str:
    """sha256 over the record hashes in order: the digest of a split's content."""
    return sha256_text("\n".join(record_hash(r) for r in records))
