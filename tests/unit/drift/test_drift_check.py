"""``tunegate drift`` end to end on small synthetic data with the real MiniLM (always runs).

The reference is English support tickets from templates; "unshifted" is the same generator with
another seed, "shifted" is German cooking questions (another domain, language and length).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from tunegate.data.splits import seal_splits
from tunegate.drift.commands import check_drift, register
from tunegate.drift.config import DriftPolicy
from tunegate.drift.detect import PromptEncoder
from tunegate.drift.report import MARKER_REL, find_promotion
from tunegate.errors import InputError
from tunegate.ledger import append_event, read_entries, verify_ledger
from tunegate.records import Record, content_id

N = 100
POLICY = DriftPolicy(max_samples=N, permutations=100)

TICKET_TEMPLATES = [
    "I can't {verb} my {thing}, can you help?",
    "Why was my {thing} {state}?",
    "How do I {verb} the {thing} on my account?",
    "My {thing} has been {state} since {day}.",
    "Please {verb} my {thing} as soon as possible.",
    "Is there a fee to {verb} my {thing}?",
]
SLOTS = {
    "verb": ["reset", "activate", "cancel", "update", "unlock", "find"],
    "thing": ["card", "password", "order", "subscription", "invoice", "account", "payment"],
    "state": ["blocked", "declined", "delayed", "charged twice", "cancelled"],
    "day": ["Monday", "yesterday", "last week", "this morning"],
}
LABEL_OF_THING = {"card": "cards", "password": "access", "account": "access"}
COOKING = [
    "Wie lange muss ich den {food} bei {temp} Grad im Ofen backen, damit er innen saftig bleibt und "
    "außen eine schöne Kruste bekommt, und sollte ich die Form vorher einfetten?",
    "Kann ich für den {food} statt Butter auch Olivenöl nehmen, und ändert sich dann die Backzeit bei "
    "{temp} Grad oder die Menge des Mehls, das ich in den Teig gebe?",
]
FOODS = ["Apfelkuchen", "Sauerteigbrot", "Käsekuchen", "Zwiebelkuchen", "Hefezopf", "Schokoladenkuchen"]


def tickets(seed: int, n: int = N) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        slots = {k: rng.choice(v) for k, v in SLOTS.items()}
        out.append(
            (rng.choice(TICKET_TEMPLATES).format(**slots), LABEL_OF_THING.get(slots["thing"], "billing"))
        )
    return out


def cooking(seed: int, n: int = N) -> list[str]:
    rng = random.Random(seed)
    return [
        rng.choice(COOKING).format(food=rng.choice(FOODS), temp=rng.choice([160, 180, 200, 220]))
        for _ in range(n)
    ]


def make_workdir(root: Path) -> Path:
    wd = root / "wd"
    (wd / "data").mkdir(parents=True)
    with open(wd / "data" / "train.jsonl", "w", encoding="utf-8") as fh:
        for text, label in tickets(seed=1):
            fields = {"text": text, "label": label}
            fh.write(
                Record(id=content_id("classification", fields), task="classification", **fields).to_json()
            )
            fh.write("\n")
    seal_splits(wd)  # assembled by hand: record the split in the ledger
    return wd


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def encoder() -> PromptEncoder:
    return PromptEncoder()


def _all_text(wd: Path, out: Path) -> str:
    parts = [p.read_text(encoding="utf-8") for p in sorted(out.rglob("*")) if p.is_file()]
    parts.append((wd / "audit" / "ledger.jsonl").read_text(encoding="utf-8"))
    if (wd / MARKER_REL).exists():
        parts.append((wd / MARKER_REL).read_text(encoding="utf-8"))
    return "\n".join(parts)


def test_unshifted_passes_and_shifted_alarms(tmp_path: Path, encoder: PromptEncoder) -> None:
    wd = make_workdir(tmp_path)
    same = write_jsonl(
        tmp_path / "same.jsonl", [{"text": t, "prediction": lab} for t, lab in tickets(seed=2)]
    )
    ok = check_drift(wd, same, policy=POLICY, encoder=encoder)
    assert not ok.report.drifted and ok.report.holdout_representative and ok.marker is None
    assert not (wd / MARKER_REL).exists()
    by_name = {c.name: c for c in ok.report.checks}
    assert set(by_name) == {"embedding_mmd", "domain_auc", "length_ks", "language_mix", "label_mix"}
    assert all(c.status == "ok" for c in ok.report.checks), [c.reason for c in ok.report.checks]
    assert by_name["label_mix"].details["source"] == "prediction"
    assert ok.out_dir.parent == wd / "drift"
    assert ok.report.promotion.status == "none" and ok.report.promotion.summary == "no promoted adapter"

    shifted_prompts = cooking(seed=3)
    shifted = write_jsonl(tmp_path / "shifted.jsonl", [{"text": t} for t in shifted_prompts])
    out = tmp_path / "report"
    bad = check_drift(wd, shifted, policy=POLICY, encoder=encoder, out=out)
    rep = bad.report
    assert rep.drifted and not rep.holdout_representative
    assert set(rep.alarms) == {"embedding_mmd", "domain_auc", "length_ks", "language_mix"}
    assert {c.name: c.status for c in rep.checks}["label_mix"] == "skipped"
    assert bad.marker == wd / MARKER_REL
    marker = json.loads(bad.marker.read_text(encoding="utf-8"))
    assert marker["holdout_representative"] is False and marker["alarms"] == rep.alarms
    saved = json.loads((out / "drift_report.json").read_text(encoding="utf-8"))
    assert saved["drifted"] is True and saved["current"]["sha256"] == rep.current["sha256"]
    assert "Drift detected" in (out / "drift_report.md").read_text(encoding="utf-8")

    events = [e for e in read_entries(wd) if e["stage"] == "drift"]
    assert [e["details"]["drifted"] for e in events] == [False, True]
    assert events[1]["outputs"][MARKER_REL.as_posix()] and events[1]["inputs"]["current:shifted.jsonl"]
    assert verify_ledger(wd).ok
    # statistics and digests only: no prompt reaches a report, the marker or the ledger
    written = _all_text(wd, out)
    assert not any(p in written for p in shifted_prompts)
    assert not any(t in written for t, _ in tickets(seed=1))


def test_label_mix_alarm_alone(tmp_path: Path, encoder: PromptEncoder) -> None:
    """Same prompts, but the deployed model now predicts one class for everything."""
    wd = make_workdir(tmp_path)
    cur = write_jsonl(
        tmp_path / "cur.jsonl", [{"text": t, "prediction": "cards"} for t, _ in tickets(seed=2)]
    )
    out = check_drift(wd, cur, policy=POLICY.model_copy(update={"checks": ["label_mix"]}), encoder=encoder)
    assert out.report.alarms == ["label_mix"]
    label = {c.name: c for c in out.report.checks}["label_mix"]
    assert label.value is not None and label.value > 0.5 and label.gating
    assert all(not c.gating for c in out.report.checks if c.name != "label_mix")


def test_report_names_the_promoted_adapter(tmp_path: Path) -> None:
    wd = make_workdir(tmp_path)
    adir = wd / "runs" / "run-1" / "approvals"
    adir.mkdir(parents=True)
    (adir / "0001-aaaa.dsse.json").write_text('{"payload": "x"}', encoding="utf-8")
    (adir / "0002-bbbb.dsse.json").write_text('{"payload": "y"}', encoding="utf-8")
    ref = find_promotion(wd)
    assert ref.status == "approved_not_promoted" and ref.run_id == "run-1" and len(ref.approvals) == 2
    append_event(
        wd,
        "promote",
        outputs={"registry:ticket-clf/v3/manifest.json": "ab" * 32},
        details={"run_id": "run-1", "version": 3, "approval_digest": "cd" * 32},
    )
    registry = tmp_path / "registry"
    (registry / "ticket-clf").mkdir(parents=True)
    (registry / "ticket-clf" / "HEAD.json").write_text(
        json.dumps({"version": 3, "approval_digest": "cd" * 32, "run_id": "run-1"}), encoding="utf-8"
    )
    ref = find_promotion(wd, registry)
    assert ref.status == "promoted" and ref.run_id == "run-1" and ref.version == 3
    assert ref.registry_name == "ticket-clf" and ref.approval_digest == "cd" * 32
    assert ref.manifest_sha256 == "ab" * 32 and ref.registry_head is not None
    assert [a.file for a in ref.approvals] == [
        "runs/run-1/approvals/0001-aaaa.dsse.json",
        "runs/run-1/approvals/0002-bbbb.dsse.json",
    ]
    assert all(len(a.sha256) == 64 for a in ref.approvals)
    (wd / "audit" / "ledger.jsonl").write_text("not json\n", encoding="utf-8")
    assert find_promotion(wd).status == "unknown"


def _app() -> typer.Typer:
    app = typer.Typer()
    register(app)

    @app.callback()
    def _root() -> None:  # a group, so the command is named as on the real CLI
        pass

    return app


def test_cli_exit_codes(tmp_path: Path, encoder: PromptEncoder) -> None:
    wd = make_workdir(tmp_path)
    runner = CliRunner()
    same = write_jsonl(tmp_path / "same.jsonl", [{"body": t} for t, _ in tickets(seed=2)])
    policy = tmp_path / "policy.yaml"
    policy.write_text("version: 1\n", encoding="utf-8")
    args = ["drift", "--reference", str(wd), "--policy", str(policy), "--max-samples", str(N)]
    res = runner.invoke(_app(), [*args, "--current", str(same), "--text-field", "body"])
    assert res.exit_code == 0, res.output
    assert "no drift" in res.output

    shifted = write_jsonl(tmp_path / "shifted.jsonl", [{"text": t} for t in cooking(seed=3)])
    res = runner.invoke(_app(), [*args, "--current", str(shifted), "--out", str(tmp_path / "r")])
    assert res.exit_code == 1, res.output
    assert (tmp_path / "r" / "drift_report.json").is_file() and (wd / MARKER_REL).is_file()

    # bad input: rejected before the encoder is loaded, as an InputError (the CLI exits 2)
    res = runner.invoke(_app(), [*args, "--current", str(same)])
    assert isinstance(res.exception, InputError) and res.exception.exit_code == 2
    assert res.exception.field == "text" and res.exception.line == 1


def test_bad_input_fails_before_the_encoder_loads(tmp_path: Path) -> None:
    wd = make_workdir(tmp_path)
    cur = write_jsonl(tmp_path / "cur.jsonl", [{"text": 1}] * 30)
    never = PromptEncoder(tmp_path / "no-model")  # would raise DependencyError if it were used
    with pytest.raises(InputError):
        check_drift(wd, cur, policy=POLICY, encoder=never)
    with pytest.raises(InputError):
        check_drift(tmp_path / "no-workdir", cur, policy=POLICY, encoder=never)
    assert not (wd / "drift").exists()
    assert [e["stage"] for e in read_entries(wd)] == ["prepare"]  # only the seal: no drift event


def test_wired_cli_exit_code(tmp_path: Path, encoder: PromptEncoder) -> None:
    """Through ``tunegate.cli.main`` once the lead has registered the command there."""
    from tunegate import cli

    names = {getattr(c, "name", None) for c in cli.app.registered_commands}
    if "drift" not in names:
        pytest.skip("`drift` is not registered in tunegate.cli yet")
    wd = make_workdir(tmp_path)
    shifted = write_jsonl(tmp_path / "shifted.jsonl", [{"text": t} for t in cooking(seed=3)])
    with pytest.raises(SystemExit) as exc:
        cli.main(["drift", "-r", str(wd), "-c", str(shifted), "--max-samples", str(N)])
    assert exc.value.code == 1
