"""Ingest: every supported format, and every kind of hostile input named by file, line and field."""

from __future__ import annotations

import codecs
import csv
import json
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tunegate.errors import InputError
from tunegate.provenance import sha256_file
from tunegate.records import (
    Record,
    content_id,
    iter_rows,
    record_hash,
    replace_texts,
    text_fields,
    write_records,
)
from tunegate.records import read_records as _read_records

KEY = "records-test-key-0123456789abcdef"
KEY_BYTES = KEY.encode()


def read_records(*args: Any, **kwargs: Any) -> Iterator[Record]:
    """``tunegate.records.read_records`` with this module's PII key unless one is given."""
    kwargs.setdefault("key", KEY_BYTES)
    return _read_records(*args, **kwargs)


ROWS = [
    {"text": "my card was declined", "label": "card_declined", "ticket": 1},
    {"text": "where is my refund", "label": "refund"},
]


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _jsonl(tmp_path: Path, lines: list[str], name: str = "in.jsonl") -> Path:
    return _write(tmp_path / name, ("\n".join(lines) + "\n").encode("utf-8"))


def test_all_formats_give_the_same_ids(tmp_path: Path) -> None:
    import datasets
    import pandas as pd

    jl = _jsonl(tmp_path, [json.dumps(r) for r in ROWS])
    js = _write(tmp_path / "in.json", json.dumps(ROWS, indent=2).encode())
    cs = tmp_path / "in.csv"
    with open(cs, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=["text", "label"])
        w.writeheader()
        for r in ROWS:
            w.writerow({"text": r["text"], "label": r["label"]})
    pq = tmp_path / "in.parquet"
    pd.DataFrame([{"text": r["text"], "label": r["label"]} for r in ROWS]).to_parquet(pq)
    ds_dir = tmp_path / "ds"
    datasets.Dataset.from_list([{"text": r["text"], "label": r["label"]} for r in ROWS]).save_to_disk(
        str(ds_dir)
    )

    ids = {}
    for p in (jl, js, cs, pq, ds_dir):
        recs = list(read_records(p, "classification"))
        assert [r.label for r in recs] == ["card_declined", "refund"]
        ids[p.name] = [r.id for r in recs]
    assert len({tuple(v) for v in ids.values()}) == 1
    assert ids["in.jsonl"][0] == content_id(
        "classification", {"text": ROWS[0]["text"], "label": "card_declined"}, KEY_BYTES
    )
    # Unmapped columns are kept in extra; the source names file and line.
    first = next(read_records(jl, "classification"))
    assert first.extra == {"ticket": 1} and first.source and first.source.line == 1
    assert next(read_records(js, "classification")).source.line == 2  # type: ignore[union-attr]


def test_instruction_and_chat_and_field_mapping(tmp_path: Path) -> None:
    p = _jsonl(
        tmp_path,
        [
            json.dumps({"q": "Summarize", "ctx": "a b c", "a": "abc"}),
            json.dumps({"q": "Say hi", "a": "hi"}),
        ],
    )
    recs = list(read_records(p, "instruction", fields={"instruction": "q", "input": "ctx", "output": "a"}))
    assert recs[0].input == "a b c" and recs[1].input is None
    chat = _jsonl(
        tmp_path,
        [
            json.dumps(
                {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
            )
        ],
        "chat.jsonl",
    )
    (rec,) = read_records(chat, "chat")
    assert rec.prompt_text() == "hi" and rec.target_text() == "hello"


HOSTILE = {
    "empty": (b"", None, None, "empty"),
    "blank_line": (b'{"text":"a","label":"x"}\n\n{"text":"b","label":"y"}\n', 2, None, "blank"),
    "bom_mid_file": (
        codecs.BOM_UTF8 + b'{"text":"a","label":"x"}\n' + codecs.BOM_UTF8 + b'{"text":"b","label":"y"}\n',
        2,
        None,
        "byte-order mark (BOM) in the middle",
    ),
    "utf16_without_bom": (
        '{"text":"a","label":"x"}\n'.encode("utf-16-le"),
        1,
        None,
        "without a byte-order mark",
    ),
    "invalid_utf8": (b'{"text":"a","label":"x"}\n{"text":"\xff\xfe","label":"y"}\n', 2, None, "UTF-8"),
    "lone_surrogate": (b'{"text":"a\\ud800b","label":"x"}\n', 1, "text", "surrogate"),
    "nan": (b'{"text":"a","label":"x","score":NaN}\n', 1, None, "NaN"),
    "infinity": (b'{"text":"a","label":"x","score":-Infinity}\n', 1, None, "Infinity"),
    "duplicate_key": (b'{"text":"a","text":"b","label":"x"}\n', 1, None, "duplicate key 'text'"),
    "not_object": (b'{"text":"a","label":"x"}\n["text","b"]\n', 2, None, "expected an object"),
    "missing_field": (b'{"text":"a","label":"x"}\n{"text":"b"}\n', 2, "label", "missing"),
    "empty_field": (b'{"text":"  ","label":"x"}\n', 1, "text", "empty"),
    "wrong_type": (b'{"text":["a"],"label":"x"}\n', 1, "text", "must be a string"),
    "broken_json": (b'{"text":"a","label":"x"\n', 1, None, "not valid JSON"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_jsonl_is_named_precisely(tmp_path: Path, case: str) -> None:
    data, line, field, needle = HOSTILE[case]
    p = _write(tmp_path / "bad.jsonl", data)
    before = p.read_bytes()
    with pytest.raises(InputError) as ei:
        list(read_records(p, "classification"))
    err = ei.value
    assert err.path == str(p)
    assert err.line == line
    if field is not None:
        assert err.field == field
    assert needle.lower() in str(err).lower()
    assert p.read_bytes() == before  # the input is never modified


def test_line_over_cap(tmp_path: Path) -> None:
    p = _jsonl(
        tmp_path, [json.dumps({"text": "a", "label": "x"}), json.dumps({"text": "b" * 5000, "label": "y"})]
    )
    with pytest.raises(InputError, match="line cap") as ei:
        list(read_records(p, "classification", max_line_bytes=1000))
    assert ei.value.line == 2


def test_csv_wrong_columns_and_ragged_rows(tmp_path: Path) -> None:
    p = _write(tmp_path / "b.csv", b"text,category\nhello,x\n")
    with pytest.raises(InputError, match=r"required column\(s\) \['label'\] not found") as ei:
        list(read_records(p, "classification"))
    assert "--field" in str(ei.value)
    assert [r.label for r in read_records(p, "classification", fields={"label": "category"})] == ["x"]
    ragged = _write(tmp_path / "r.csv", b"text,label\nhello,x\nbye,y,z\n")
    with pytest.raises(InputError, match="3 columns") as ei:
        list(read_records(ragged, "classification"))
    assert ei.value.line == 3


def test_json_array_errors_name_the_line(tmp_path: Path) -> None:
    p = _write(tmp_path / "a.json", b'[\n  {"text": "a", "label": "x"},\n  {"text": "b", "label": NaN}\n]')
    with pytest.raises(InputError, match="NaN") as ei:
        list(read_records(p, "classification"))
    assert ei.value.line == 3
    with pytest.raises(InputError, match="array"):
        list(read_records(_write(tmp_path / "o.json", b'{"text": "a"}'), "classification"))


def test_chat_roles_checked(tmp_path: Path) -> None:
    p = _jsonl(tmp_path, [json.dumps({"messages": [{"role": "robot", "content": "x"}]})])
    with pytest.raises(InputError, match="role 'robot'") as ei:
        list(read_records(p, "chat"))
    assert ei.value.field == "messages.0.role"


def test_unknown_extension_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="unknown file type"):
        list(iter_rows(_write(tmp_path / "x.txt", b"hi")))
    with pytest.raises(InputError, match="does not exist"):
        list(iter_rows(tmp_path / "nope.jsonl"))


def test_write_and_load_roundtrip_is_byte_stable(tmp_path: Path) -> None:
    from tunegate.data.splits import read_split, seal_splits

    recs = list(read_records(_jsonl(tmp_path, [json.dumps(r) for r in ROWS]), "classification"))
    out = write_records(tmp_path / "wd" / "data" / "train.jsonl", recs)
    seal_splits(tmp_path / "wd")
    again = read_split(tmp_path / "wd", "train")
    assert again == recs
    write_records(tmp_path / "split2.jsonl", again)
    assert (tmp_path / "split2.jsonl").read_bytes() == out.read_bytes()
    assert [record_hash(r) for r in again] == [record_hash(r) for r in recs]


def test_replace_texts_keeps_id_and_structure() -> None:
    rec = Record(
        id="x",
        task="chat",
        messages=({"role": "user", "content": "I am Ann"}, {"role": "assistant", "content": "Hi Ann"}),  # type: ignore[arg-type]
        extra={"note": "Ann's ticket", "n": 3},
    )
    paths = text_fields(rec)
    assert sorted(paths) == ["extra.note", "messages.0.content", "messages.1.content"]
    new = replace_texts(rec, {p: v.replace("Ann", "<PERSON_1>") for p, v in paths.items()})
    assert new.id == "x" and new.messages[1].content == "Hi <PERSON_1>"  # type: ignore[index]
    assert new.extra == {"note": "<PERSON_1>'s ticket", "n": 3}


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.text(min_size=1).filter(lambda s: s.strip()), st.sampled_from(["a", "b"])),
        min_size=1,
        max_size=8,
    )
)
def test_jsonl_roundtrip_property(
    tmp_path_factory: pytest.TempPathFactory, rows: list[tuple[str, str]]
) -> None:
    d = tmp_path_factory.mktemp("prop")
    lines = [json.dumps({"text": t, "label": lab}) for t, lab in rows]
    p = _jsonl(d, lines)
    recs = list(read_records(p, "classification"))
    assert [(r.text, r.label) for r in recs] == rows
    assert [r.id for r in recs] == [
        content_id("classification", {"text": t, "label": lab}, KEY_BYTES) for t, lab in rows
    ]


@pytest.mark.slow
def test_large_file_streams_in_bounded_memory(tmp_path: Path) -> None:
    """250,000 lines (18 MB): reading them all must allocate under 1 MiB at peak (about 8 KB
    measured), so nothing holds the file or its rows; tracemalloc makes each line slow, hence not 1M."""
    p = tmp_path / "big.jsonl"
    line = json.dumps({"text": "please reset my online banking password", "label": "password"}) + "\n"
    with open(p, "w", encoding="utf-8") as fh:
        for _ in range(5):
            fh.write(line * 50_000)
    tracemalloc.start()
    n = 0
    for _ in iter_rows(p):
        n += 1
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert n == 250_000
    assert peak < 1024 * 1024, f"peak {peak / 1e6:.2f} MB while streaming"


# -- keyed ids: an id must not re-identify an anonymized record (issue 10, item 6) ----------------
PEOPLE = [
    ("Anna Kowalska", "anna.kowalska@example.org"),
    ("Piotr Nowak", "p.nowak@example.com"),
    ("Maria Garcia", "mgarcia@example.net"),
    ("John Smith", "john.smith@example.co.uk"),
]


def _template(name: str, email: str) -> str:
    return f"Hi, I am {name}, please reset my password and write to {email}"


def test_ids_do_not_reidentify_without_the_key(tmp_path: Path) -> None:
    """The attack: hold the hold-out file and a candidate list of names and e-mails, recompute ids
    of guessed raw records, and look them up. Without the key no guess matches."""
    rows = [{"text": _template(n, e), "label": "password"} for n, e in PEOPLE]
    src = _jsonl(tmp_path, [json.dumps(r) for r in rows])
    holdout = write_records(tmp_path / "holdout.jsonl", read_records(src, "classification"))
    published = {json.loads(line)["id"] for line in holdout.read_text().splitlines()}

    def guesses(key: bytes | None) -> set[str]:
        return {
            content_id("classification", {"text": _template(n, e), "label": "password"}, key)
            for n, _ in PEOPLE
            for _, e in PEOPLE
        }

    assert not published & guesses(None)  # unkeyed content digests: nothing
    assert not published & guesses(b"a-guessed-key-0123456789")  # a wrong key: nothing
    assert published <= guesses(KEY_BYTES)  # the test can fail: with the key, every record matches


def test_ids_are_deterministic_per_key_and_differ_across_keys(tmp_path: Path) -> None:
    src = _jsonl(tmp_path, [json.dumps(r) for r in ROWS])
    a = [r.id for r in read_records(src, "classification")]
    assert a == [r.id for r in read_records(src, "classification")]
    b = [r.id for r in read_records(src, "classification", key=b"another-records-test-key-0123456789abcdef")]
    assert not set(a) & set(b)


def test_source_names_the_dataset_not_the_file(tmp_path: Path) -> None:
    src = _jsonl(tmp_path, [json.dumps(r) for r in ROWS], name="jan.kowalski@example.org.jsonl")
    rec = next(read_records(src, "classification"))
    assert rec.source is not None and "kowalski" not in rec.to_json()
    assert rec.source.dataset == sha256_file(src)[:12]
    named = next(read_records(src, "classification", dataset="tickets-2026"))
    assert named.source is not None and named.source.dataset == "tickets-2026"


# -- encodings a spreadsheet writes (issue 13) ------------------------------------------------------
def _csv_bytes(rows: list[dict[str, str]]) -> str:
    return "text,label\r\n" + "".join(f"{r['text']},{r['label']}\r\n" for r in rows)


@pytest.mark.parametrize(
    ("codec", "bom", "expected"),
    [
        ("utf-8", codecs.BOM_UTF8, "utf-8-sig"),  # Excel "CSV UTF-8"
        ("utf-16-le", codecs.BOM_UTF16_LE, "utf-16"),  # Excel "Unicode text"
        ("utf-16-be", codecs.BOM_UTF16_BE, "utf-16"),
        ("utf-32-le", codecs.BOM_UTF32_LE, "utf-32"),
    ],
)
def test_leading_bom_is_accepted(tmp_path: Path, codec: str, bom: bytes, expected: str) -> None:
    rows = [{"text": "zażółć gęślą jaźń", "label": "pl"}, {"text": "ça va", "label": "fr"}]
    plain_csv = _write(tmp_path / "plain.csv", _csv_bytes(rows).encode("utf-8"))
    for name, text in (
        ("in.csv", _csv_bytes(rows)),
        ("in.jsonl", "".join(json.dumps(r) + "\n" for r in rows)),
    ):
        p = _write(tmp_path / name, bom + text.encode(codec))
        from tunegate.records import text_encoding

        assert text_encoding(p) == expected
        recs = list(read_records(p, "classification"))
        assert [(r.text, r.label) for r in recs] == [(r["text"], r["label"]) for r in rows], name
        assert next(read_records(plain_csv, "classification")).id == recs[0].id  # same ids
    js = _write(tmp_path / "in.json", bom + json.dumps(rows).encode(codec))
    assert [r.label for r in read_records(js, "classification")] == ["pl", "fr"]


def test_bom_in_the_middle_of_a_csv_is_an_error(tmp_path: Path) -> None:
    data = codecs.BOM_UTF8 + b"text,label\r\na,x\r\n" + codecs.BOM_UTF8 + b"b,y\r\n"
    with pytest.raises(InputError, match="middle of the file") as ei:
        list(read_records(_write(tmp_path / "cat.csv", data), "classification"))
    assert ei.value.line == 3


CLINC_LIKE = {
    "train": [["what is my balance", "balance"], ["text william i'm late", "text"]],
    "val": [["how much money do i have", "balance"]],
    "oos_train": [["how old is the sun", "oos"]],
}


def test_split_pairs_format(tmp_path: Path) -> None:
    p = _write(tmp_path / "data_full.json", json.dumps(CLINC_LIKE).encode())
    with pytest.raises(InputError, match="CLINC150") as ei:  # the shape is named, with the fix
        list(read_records(p, "classification"))
    assert "--format split-pairs" in str(ei.value) and "python -c" in str(ei.value)
    recs = list(read_records(p, "classification", fmt="split-pairs"))
    assert [(r.text, r.label, r.extra["split"]) for r in recs] == [
        (t, lab, s) for s, pairs in CLINC_LIKE.items() for t, lab in pairs
    ]
    assert [r.source.line for r in recs if r.source] == [1, 2, 3, 4]
    bad = _write(tmp_path / "bad.json", json.dumps({"train": [["only text"]]}).encode())
    with pytest.raises(InputError, match=r"\[text, label\] pair") as ei:
        list(read_records(bad, "classification", fmt="split-pairs"))
    assert ei.value.field == "train.0"
    with pytest.raises(InputError, match="not one of"):
        list(read_records(p, "classification", fmt="xml"))
