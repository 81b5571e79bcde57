"""The data gate end to end, for real: Presidio, GX, split, manifest, ledger, CLI exit codes."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from helpers.datagate_helpers import cli_subprocess

from tunegate.data.prepare import prepare_data
from tunegate.data.split import verify_holdout
from tunegate.data.splits import read_split
from tunegate.demo_data import generate_tickets
from tunegate.ledger import read_entries, verify_ledger
from tunegate.policy.schema import load_policy
from tunegate.provenance import sha256_file
from tunegate.records import content_id

pytestmark = pytest.mark.slow

DEMO = Path(__file__).resolve().parents[2] / "src" / "tunegate" / "assets" / "demo_tickets.jsonl"
CANARIES = {
    "email": "quill.canary.7731@example.org",
    "phone": "+48 601 733 991",
    "iban": "DE89 3704 0044 0532 0130 00",
    "pesel": "44051401359",
    "person": "Quentin Zabrowski",
    "ip": "203.0.113.77",
    "nested_email": "nested.canary.4410@example.com",
    "int_phone": "2025550143",  # stored as a number in the input
}


def _canary_rows() -> list[dict[str, Any]]:
    c = CANARIES
    texts = [
        f"Hello, my name is {c['person']} and my card was declined. Call me on {c['phone']}.",
        f"Please refund to IBAN {c['iban']}, my PESEL is {c['pesel']}. Thanks, {c['person']}",
        f"I cannot log in from IP address {c['ip']}. Reach me at {c['email']}.",
    ]
    labels = ["card_issue", "refund", "account_access"]
    rows: list[dict[str, Any]] = [
        {"text": t, "label": lab, "customer_id": f"CAN{i}"}
        for i, (t, lab) in enumerate(zip(texts, labels, strict=True))
    ]
    # every shape (issue 12): a nested object, a list of strings, a phone stored as an integer
    rows[0]["meta"] = {"contacts": ["n/a", c["nested_email"]], "callback": int(c["int_phone"])}
    return rows


@pytest.fixture(scope="module")
def canary_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("in") / "tickets.jsonl"
    rows = list(generate_tickets(360, seed=11)) + _canary_rows()
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory, canary_data: Path) -> tuple[Path, object]:
    os.environ["TUNEGATE_PII_KEY"] = "integration-test-key-0123456789abcdef"
    work = tmp_path_factory.mktemp("wd")
    before = canary_data.read_bytes()
    result = prepare_data(
        canary_data, "classification", work, policy=load_policy(), fields={"group": "customer_id"}
    )
    assert canary_data.read_bytes() == before  # the input is never modified
    return work, result


def test_demo_gate_passes_and_writes_everything(prepared: tuple[Path, object]) -> None:
    work, result = prepared
    assert result.passed, result.reasons  # type: ignore[attr-defined]
    data = work / "data"
    for name in (
        "train.jsonl",
        "validation.jsonl",
        "holdout.jsonl",
        "holdout.manifest.json",
        "data_report.json",
        "data_report.md",
    ):
        assert (data / name).is_file(), name
    report = json.loads((data / "data_report.json").read_text())
    assert report["verdict"] == "pass"
    names = {c["name"] for c in report["checks"]}
    assert {"holdout_leakage", "min_pairs", "label_agreement", "residual_pii", "expectations_train"} <= names
    n = report["sizes"]
    assert n["holdout"] / (n["train"] + n["validation"] + n["holdout"]) == pytest.approx(0.15, abs=0.03)
    # every entity type of the canaries was found and counted
    for ent in ("EMAIL_ADDRESS", "PHONE_NUMBER", "IBAN_CODE", "PL_PESEL", "PERSON", "IP_ADDRESS"):
        assert report["pii"]["totals"].get(ent, 0) > 0, ent
    assert verify_holdout(data).counts["total"] == n["holdout"]
    assert verify_ledger(work).ok


def test_ids_are_keyed_and_no_file_name_is_recorded(prepared: tuple[Path, object], canary_data: Path) -> None:
    work, _ = prepared
    rows = [json.loads(line) for line in canary_data.read_text(encoding="utf-8").splitlines()]
    unkeyed = {content_id("classification", {"text": r["text"], "label": r["label"]}) for r in rows}
    for split in ("train", "validation", "holdout"):
        ids = {r.id for r in read_split(work, split)}
        assert ids and not ids & unkeyed, split  # an id cannot be recomputed from raw content
    report = json.loads((work / "data" / "data_report.json").read_text())
    assert report["sources"] == [
        {
            "name": sha256_file(canary_data)[:12],
            "sha256": sha256_file(canary_data),
            "rows": len(rows),
            "format": "jsonl",
            "encoding": "utf-8",
        }
    ]
    for path in work.rglob("*"):
        if path.is_file():
            assert canary_data.name not in path.read_text(encoding="utf-8", errors="replace"), path


def test_no_canary_in_any_output(prepared: tuple[Path, object]) -> None:
    work, _ = prepared
    for path in work.rglob("*"):
        if path.is_file():
            text = path.read_text(encoding="utf-8", errors="replace")
            for kind, value in CANARIES.items():
                assert value not in text, f"raw {kind} canary in {path.relative_to(work)}"


def test_same_inputs_give_byte_identical_manifest(
    prepared: tuple[Path, object], canary_data: Path, tmp_path: Path
) -> None:
    work, _ = prepared
    prepare_data(
        canary_data, "classification", tmp_path, policy=load_policy(), fields={"group": "customer_id"}
    )
    for name in ("holdout.manifest.json", "holdout.jsonl", "train.jsonl"):
        assert (tmp_path / "data" / name).read_bytes() == (work / "data" / name).read_bytes(), name


def test_text_mapped_as_label_fails_and_writes_nothing(tmp_path: Path, canary_data: Path) -> None:
    """`--field label=text` must not copy raw text into labels, the report or the ledger."""
    key = {"TUNEGATE_PII_KEY": "integration-test-key-0123456789abcdef"}
    work = tmp_path / "wd"
    r = cli_subprocess("prepare", str(canary_data), "--task", "classification", "--out", str(work),
             "--field", "label=text", "--name", "tickets", env=key)  # fmt: skip
    assert r.returncode == 1, r.stdout + r.stderr
    assert "closed_labels" in r.stdout and "no splits were written" in r.stdout
    assert not (work / "data").exists() and not list(work.glob(".data*"))
    event = read_entries(work)[-1]
    assert event["outputs"] == {} and event["details"]["refused"] == "closed_labels"
    for value in CANARIES.values():
        assert value not in r.stdout + r.stderr
        assert value not in (work / "audit" / "ledger.jsonl").read_text(encoding="utf-8")
