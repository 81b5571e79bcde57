"""The data gate end to end, for real: Presidio, GX, split, manifest, ledger, CLI exit codes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tunegate.data.prepare import prepare_data
from tunegate.data.split import verify_holdout
from tunegate.data.splits import read_split
from tunegate.demo_data import generate_tickets
from tunegate.errors import InputError, IntegrityError
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
def small_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Just above the default policy's min_pairs (200): for tests of paths, not of PII."""
    path = tmp_path_factory.mktemp("small") / "tickets.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in generate_tickets(220, seed=11)), encoding="utf-8")
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


def test_rerun_verifies_frozen_holdout_and_refuses_a_changed_one(
    prepared: tuple[Path, object], canary_data: Path
) -> None:
    work, _ = prepared
    holdout = work / "data" / "holdout.jsonl"
    original = holdout.read_bytes()
    try:
        lines = original.decode().splitlines(keepends=True)
        holdout.write_text("".join(lines[1:]), encoding="utf-8")  # a record silently removed
        with pytest.raises(IntegrityError):
            prepare_data(
                canary_data, "classification", work, policy=load_policy(), fields={"group": "customer_id"}
            )
    finally:
        holdout.write_bytes(original)
    # unchanged: a re-run on the same inputs verifies and keeps the same manifest
    manifest = (work / "data" / "holdout.manifest.json").read_bytes()
    prepare_data(canary_data, "classification", work, policy=load_policy(), fields={"group": "customer_id"})
    assert (work / "data" / "holdout.manifest.json").read_bytes() == manifest
    assert verify_ledger(work).ok


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "tunegate.cli", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=300,
    )


def test_cli_exit_codes(tmp_path: Path) -> None:
    key = {"TUNEGATE_PII_KEY": "integration-test-key-0123456789abcdef"}
    # 2: hostile input, named precisely, no traceback, no partial output
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b'{"text": "a", "label": "x"}\n{"text": "b", "label": "y", "label": "z"}\n')
    r = _cli("prepare", str(bad), "--task", "classification", "--out", str(tmp_path / "w1"), env=key)
    assert r.returncode == 2, r.stderr
    assert "bad.jsonl" in r.stderr and "line 2" in r.stderr and "duplicate key" in r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "w1" / "data").exists()
    # 1: the gate fails (too few pairs), with the reason
    small = tmp_path / "small.jsonl"
    small.write_text("".join(json.dumps(t) + "\n" for t in generate_tickets(60, seed=3)), encoding="utf-8")
    r = _cli("prepare", str(small), "--task", "classification", "--out", str(tmp_path / "w2"), env=key)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "min_pairs" in r.stdout
    # 2: no PII key -> stops before reading data
    env = {k: v for k, v in os.environ.items() if k != "TUNEGATE_PII_KEY"}
    r = subprocess.run(
        [sys.executable, "-m", "tunegate.cli", "prepare", str(DEMO), "--task", "classification",
         "--out", str(tmp_path / "w3")],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert r.returncode == 2 and "TUNEGATE_PII_KEY" in r.stderr, r.stderr
    assert not (tmp_path / "w3" / "data").exists()


def test_missing_spacy_model_fails_closed(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("version: 1\npii:\n  spacy_model: en_core_web_lg\n", encoding="utf-8")
    r = _cli(
        "prepare", str(DEMO), "--task", "classification", "--out", str(tmp_path / "w"),
        "--policy", str(policy),
        env={"TUNEGATE_PII_KEY": "integration-test-key-0123456789abcdef"},
    )  # fmt: skip
    assert r.returncode == 2, r.stdout + r.stderr
    assert "en_core_web_lg" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "w" / "data").exists()


def test_frozen_holdout_cannot_be_replaced_silently(tmp_path: Path, canary_data: Path) -> None:
    """The ledger is the source of truth: removing data/ does not unfreeze the hold-out."""
    work = tmp_path / "wd"
    policy = load_policy()
    fields = {"group": "customer_id"}
    more = tmp_path / "more.jsonl"  # other data, same policy: a different hold-out
    extra = "".join(json.dumps(t) + "\n" for t in generate_tickets(30, seed=99))
    more.write_text(canary_data.read_text(encoding="utf-8") + extra, encoding="utf-8")
    prepare_data(canary_data, "classification", work, policy=policy, fields=fields)
    frozen = sha256_file(work / "data" / "holdout.manifest.json")
    shutil.rmtree(work / "data")
    with pytest.raises(IntegrityError, match="ledger records a frozen hold-out") as err:
        prepare_data(more, "classification", work, policy=policy, fields=fields)
    assert frozen in str(err.value)
    assert not (work / "data").exists() and not list(work.glob(".data*"))  # nothing half-written
    with pytest.raises(InputError, match="--reason"):
        prepare_data(more, "classification", work, policy=policy, fields=fields, refreeze=True)
    prepare_data(
        more, "classification", work, policy=policy, fields=fields, refreeze=True, reason="more data"
    )
    event = read_entries(work)[-1]
    assert event["details"]["refreeze"] == {"reason": "more data", "replaced_manifest": frozen}
    assert event["outputs"]["data/holdout.manifest.json"] != frozen
    assert verify_ledger(work).ok


def test_text_mapped_as_label_fails_and_writes_nothing(tmp_path: Path, canary_data: Path) -> None:
    """`--field label=text` must not copy raw text into labels, the report or the ledger."""
    key = {"TUNEGATE_PII_KEY": "integration-test-key-0123456789abcdef"}
    work = tmp_path / "wd"
    r = _cli("prepare", str(canary_data), "--task", "classification", "--out", str(work),
             "--field", "label=text", "--name", "tickets", env=key)  # fmt: skip
    assert r.returncode == 1, r.stdout + r.stderr
    assert "closed_labels" in r.stdout and "no splits were written" in r.stdout
    assert not (work / "data").exists() and not list(work.glob(".data*"))
    event = read_entries(work)[-1]
    assert event["outputs"] == {} and event["details"]["refused"] == "closed_labels"
    for value in CANARIES.values():
        assert value not in r.stdout + r.stderr
        assert value not in (work / "audit" / "ledger.jsonl").read_text(encoding="utf-8")


OUT_CASES = {
    # case: (cwd relative to base, --out as typed, workdir relative to base)
    "relative": (".", "wd", "wd"),
    "absolute": (".", None, "abs"),
    "dot_slash": (".", "./x", "x"),
    "dot_dot": ("sub", "../up", "up"),
    "spaces": (".", "my work dir", "my work dir"),
    "symlinked_cwd": ("link", "via-link", "via-link"),
}


def test_out_works_from_any_cwd(
    tmp_path: Path, small_data: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`tunegate prepare DATA --task classification --out wd` from any directory (issue 13)."""
    from tunegate.cli import main

    monkeypatch.setenv("TUNEGATE_PII_KEY", "integration-test-key-0123456789abcdef")
    base = tmp_path / "base"
    (base / "sub").mkdir(parents=True)
    (base / "link").symlink_to(base, target_is_directory=True)
    for case, (cwd, out, expected) in OUT_CASES.items():
        monkeypatch.chdir(base / cwd)
        arg = out if out is not None else str(base / expected)
        with pytest.raises(SystemExit) as exc:
            main(["prepare", str(small_data), "--task", "classification", "--out", arg,
                  "--field", "group=customer_id"])  # fmt: skip
        captured = capsys.readouterr()
        assert exc.value.code == 0, (case, captured.out, captured.err)
        wd = base / expected
        assert verify_holdout(wd / "data").counts["total"] > 0, case
        assert read_split(wd, "train"), case
        assert not list(wd.glob(".data*")) and not (wd / "data" / wd.name).exists(), case
        assert verify_ledger(wd).ok, case
