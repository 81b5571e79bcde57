"""`tunegate anonymize` end to end on planted canary PII: nothing raw in outputs, logs or errors."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from tunegate.cli import main

CANARIES = {
    "email": "zofia.canary.7731@example.pl",
    "phone": "+48 731 884 219",
    "iban": "PL61 1090 1014 0000 0712 1981 2874",
    "pesel": "02070803628",
    "name": "Zbigniew Canarowski",
}
ROWS = [
    {"text": f"My name is {CANARIES['name']}, write to {CANARIES['email']}", "label": "a"},
    {"text": f"Call {CANARIES['phone']} about IBAN {CANARIES['iban']}", "label": "b", "id": 7},
    {"text": "no personal data in this one", "label": "c", "note": f"PESEL {CANARIES['pesel']}"},
    {"messages": [{"role": "user", "content": f"I am {CANARIES['name']}"}], "label": "d"},
]


def _canary_free(text: str) -> None:
    for kind, value in CANARIES.items():
        assert value not in text, f"canary {kind} leaked"
    assert "Canarowski" not in text and "canary.7731" not in text


def _run(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    return int(exc.value.code or 0)


@pytest.mark.slow
def test_anonymize_cli_leaks_no_canary(
    tmp_path: Path, pii_key: str, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in ROWS), encoding="utf-8")
    out, report = tmp_path / "out.jsonl", tmp_path / "pii_report.json"

    code = _run(["anonymize", str(src), "--out", str(out), "--report", str(report)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == len(ROWS) and rows[1]["id"] == 7 and rows[0]["label"] == "a"
    # same name -> same pseudonym in a plain field and in a chat message
    name_label = rows[0]["text"].split("My name is ")[1].split(",")[0]
    assert name_label.startswith("<PERSON_") and name_label in rows[3]["messages"][0]["content"]
    data = json.loads(report.read_text(encoding="utf-8"))
    assert data["totals"]["PL_PESEL"] == 1 and data["counts"]["PL_PESEL"] == {"note": 1}
    assert data["totals"]["IBAN_CODE"] == 1 and data["residual_totals"] == {}
    assert "PERSON" in captured.out and "note=1" in captured.out
    for text in (out.read_text(encoding="utf-8"), report.read_text(encoding="utf-8"), captured.out,
                 captured.err, caplog.text):  # fmt: skip
        _canary_free(text)
    assert pii_key not in report.read_text(encoding="utf-8") + captured.out + caplog.text

    # a second run with the same key gives the same pseudonyms; --fields limits what is touched
    out2 = tmp_path / "out2.jsonl"
    assert _run(["anonymize", str(src), "--out", str(out2), "--fields", "text", "--fields", "note"]) == 0
    rows2 = [json.loads(line) for line in out2.read_text(encoding="utf-8").splitlines()]
    assert rows2[0]["text"] == rows[0]["text"] and rows2[2]["note"] == rows[2]["note"]
    assert rows2[3]["messages"] == ROWS[3]["messages"]  # not selected: left as is
    capsys.readouterr()

    # bad input after canary rows: exit 2, and the error names file/line without raw text
    bad = tmp_path / "bad.jsonl"
    bad.write_text(src.read_text(encoding="utf-8") + '{"text": "' + CANARIES["email"] + '" broken\n')
    code = _run(["anonymize", str(bad), "--out", str(tmp_path / "bad_out.jsonl")])
    captured = capsys.readouterr()
    assert code == 2
    assert "bad.jsonl" in captured.err
    _canary_free(captured.out + captured.err + caplog.text)
    assert not (tmp_path / "bad_out.jsonl").exists()  # atomic: nothing half-written


@pytest.mark.slow
def test_anonymize_cli_without_key_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("TUNEGATE_PII_KEY", raising=False)
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps(ROWS[0]) + "\n", encoding="utf-8")
    assert _run(["anonymize", str(src), "--out", str(tmp_path / "o.jsonl")]) == 2
    err = capsys.readouterr().err
    assert "TUNEGATE_PII_KEY" in err
    _canary_free(err)


@pytest.mark.slow
def test_anonymize_cli_covers_every_leaf_and_reads_keys_as_context(
    tmp_path: Path, pii_key: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Nested objects, lists of strings and numbers stored as identifiers are scanned like text; a
    short value is also read after its key (``phone: 46701234567``), which alone is no phone."""
    row = {
        "text": "see the attached contact card",
        "meta": {
            "contact": {"phone": 46701234567, "emails": ["n/a", f"backup: {CANARIES['email']}"]},
            "ssn": 536228741,
            "order_id": 1234567,  # a number that is no identifier stays a number
            "created_at": "2024-03-05 14:22:01",
        },
        "tags": ["vip", "card 4111 1111 1111 1111"],
        "odd.key": {"mobileNumber": "447911123456"},
    }
    src = tmp_path / "nested.jsonl"
    src.write_text(json.dumps(row) + "\n", encoding="utf-8")
    out, report = tmp_path / "out.jsonl", tmp_path / "report.json"
    assert _run(["anonymize", str(src), "--out", str(out), "--report", str(report)]) == 0
    capsys.readouterr()
    [new] = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    meta = new["meta"]
    assert meta["contact"]["phone"].startswith("<PHONE_NUMBER_")
    assert meta["ssn"].startswith("<US_SSN_")
    assert meta["contact"]["emails"][0] == "n/a" and meta["contact"]["emails"][1].startswith("backup: <EMAIL")
    assert meta["order_id"] == 1234567 and meta["created_at"] == "2024-03-05 14:22:01"
    assert new["tags"][0] == "vip" and new["tags"][1].startswith("card <CREDIT_CARD_")
    assert new["odd.key"]["mobileNumber"].startswith("<PHONE_NUMBER_")  # not a card: the key says phone
    data = json.loads(report.read_text(encoding="utf-8"))
    assert data["residual_totals"] == {}
    assert data["counts"]["PHONE_NUMBER"] == {"meta.contact.phone": 1, "odd\\.key.mobileNumber": 1}
    written = out.read_text(encoding="utf-8") + report.read_text(encoding="utf-8")
    for raw in ("46701234567", "536228741", "4111 1111", "447911123456", CANARIES["email"]):
        assert raw not in written
