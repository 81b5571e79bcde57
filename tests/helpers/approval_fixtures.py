"""A realistic, synthetic workdir (every stage's outputs) and test reviewer keys, made at test time.

The producers of these files are other stages; this generator writes plausible content in their
documented shapes so approval tests do not depend on them. Canary PII values are planted in the
raw data files (and in an evidence field the report must not render); tests assert they never
reach the ledger, the report or the signatures. Private keys are generated into tmp dirs, never
committed.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunegate import ledger
from tunegate.approval.checkpoint import write_checkpoint
from tunegate.policy.schema import GatePolicy, policy_from_mapping
from tunegate.provenance import atomic_write_json, digest_json, sha256_file, sha256_text, sha256_tree

CANARIES = (
    "Zebulon Quartzfeather",
    "zq-canary-4417@example.org",
    "+44 7700 900417",
    "GB82WEST12345698765432",
)
LABELS = ["card_arrival", "card_linking", "exchange_rate", "lost_or_stolen_card"]
HOLDOUT_N = 12


@dataclass(frozen=True)
class Reviewers:
    approvers: Path
    keys: dict[str, Path]


def _records(n: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        label = rng.choice(LABELS)
        text = f"my card question number {i} about {label.replace('_', ' ')}"
        if i == 0:
            text = f"I am {CANARIES[0]}, mail {CANARIES[1]}, phone {CANARIES[2]}, iban {CANARIES[3]}"
        out.append({"id": sha256_text(text), "task": "classification", "text": text, "label": label})
    return out


def _evidence(run_id: str, passed: bool) -> tuple[dict[str, Any], list[dict[str, Any]], Any]:
    """evidence.json in its real shape, scored by the real comparison code on the fixture hold-out."""
    from tunegate.evaluation.config import EvaluationPolicy
    from tunegate.evaluation.evidence import Evidence, IntruderEvidence, RegressionTaskEvidence
    from tunegate.evaluation.scoring import Predictions, baseline_evidence, compare_classification

    hold = _records(HOLDOUT_N, 3)
    y = [LABELS.index(r["label"]) for r in hold]
    ids = [r["id"] for r in hold]
    base = [(t + 1) % len(LABELS) if i % 3 else t for i, t in enumerate(y)]  # baseline: 1 in 3 right
    tuned = list(y) if passed else list(base)
    tuned[3] = (y[3] + 2) % len(LABELS)  # record 3: right before, wrong after (broken)
    base[0] = tuned[0] = y[0]  # record 0 (the canary text) never changes, so it is never an example
    comp = compare_classification(
        y,
        Predictions(ids, [LABELS[p] for p in base], base),
        Predictions(ids, [LABELS[p] for p in tuned], tuned),
        LABELS,
        EvaluationPolicy(bootstrap_samples=200),
    )
    ev = Evidence(
        run_id=run_id,
        task="classification",
        method="lora",
        model_kind="seq_cls",
        primary_metric="macro_f1",
        inputs={"holdout_sha256": "a" * 64},
        data_gate={
            "verdict": "pass",
            "residual_pii": {"PERSON": 0},
            "residual_ok": True,
            "regex_only": False,
        },
        holdout={"verified": True, "manifest_sha256": "c" * 64, "n_records": HOLDOUT_N},
        metrics=comp.metrics,
        baselines=[baseline_evidence("base_model", "the untouched base model", comp)],
        mcnemar=comp.mcnemar,
        classification=comp.classification,
        regression=[
            RegressionTaskEvidence(
                task="piqa",
                metric="acc",
                baseline=0.52,
                tuned=0.51,
                delta=-0.01,
                ci_low=-0.03,
                ci_high=0.01,
                confidence=0.95,
                n=200,
                n_available=1838,
                limit=200,
            )
        ],
        intruder=IntruderEvidence(
            applicable=True,
            top_k=10,
            threshold=0.5,
            per_layer={"layer.0.q": 1, "layer.0.v": 0},
            total=1,
            max_per_layer=1,
            layers=2,
        ),
        provenance={"git": {"sha": "0" * 40, "dirty": False}, "seed": 0},
    ).model_dump(mode="json")
    preds = [
        {"id": i, "baseline": LABELS[b], "tuned": LABELS[t], "pred_baseline": b, "pred_tuned": t}
        for i, b, t in zip(ids, base, tuned, strict=True)
    ]
    return ev, preds, comp.confusion_tuned.tolist()


def write_run(
    wd: Path,
    run_id: str,
    *,
    passed: bool = True,
    operator: str | None = "trainer",
    policy: GatePolicy | None = None,
) -> None:
    """runs/<run_id>/ as training, evaluation and the gate decision would leave it."""
    rd = wd / "runs" / run_id
    (rd / "adapter").mkdir(parents=True, exist_ok=True)
    rng = random.Random(run_id)
    (rd / "adapter" / "adapter_model.safetensors").write_bytes(bytes(rng.getrandbits(8) for _ in range(4096)))
    atomic_write_json(
        rd / "adapter" / "adapter_config.json",
        {
            "peft_type": "LORA",
            "r": 8,
            "lora_alpha": 16,
            "target_modules": ["q_proj", "v_proj"],
            "base_model_name_or_path": "stories260k",
            "task_type": "CAUSAL_LM",
        },
    )
    (rd / "adapter" / "README.md").write_text(f"adapter of {run_id}\n")
    config = {
        "method": "lora",
        "task": "classification",
        "lr": 2e-4,
        "epochs": 1,
        "batch_size": 8,
        "lora": {"r": 8, "alpha": 16, "dropout": 0.05},
        "seed": 13,
    }
    atomic_write_json(rd / "config.json", config)
    run: dict[str, Any] = {
        "run_id": run_id,
        "name": "banking77-intent",
        "method": "lora",
        "task": "classification",
        "base_model": {"path": "/work/shared/models/stories260k", "sha256": "ab" * 32},
        "config": config,
        "seed": 13,
        "versions": {"torch": "2.13.0", "peft": "0.21.0"},
        "git": {"sha": "0" * 40, "dirty": False},
        "device": "cpu",
        "wall_time_s": 12.5,
        "tokens_per_s": 4100.0,
        "peak_memory_bytes": 512_000_000,
        "vram_plan": {"weights_gb": 0.001, "optimizer_gb": 0.0005, "activations_gb": 0.01, "fits": True},
        "loss_curve": [{"step": s, "loss": 3.0 * (0.93**s)} for s in range(1, 31)],
    }
    if operator is not None:
        run["operator"] = operator
    atomic_write_json(rd / "run.json", run)
    evidence, preds, cm = _evidence(run_id, passed)
    evidence["inputs"] = {  # what `tunegate evaluate` records: the weights and hold-out it scored
        "tuned_artifact_digest": digest_json(sha256_tree(rd / "adapter")),
        "holdout_manifest_sha256": sha256_file(wd / "data" / "holdout.manifest.json"),
    }
    atomic_write_json(rd / "evidence.json", evidence)
    (rd / "predictions.jsonl").write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in preds))
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(3, 3))
    ax.imshow(cm)
    fig.savefig(rd / "confusion_matrix.png", format="png", metadata={"Software": None})
    plt.close(fig)
    for stage in ("train", "evaluate"):
        ledger.append_event(
            wd,
            stage,
            outputs={f"runs/{run_id}/run.json": sha256_file(rd / "run.json")},
            details={"run_id": run_id},
        )
        write_checkpoint(wd, stage)
    redecide(wd, run_id, policy)


def refresh_evidence(wd: Path, run_id: str, policy: GatePolicy) -> None:
    """After a test replaced the weights: record the new weights in evidence.json and decide again."""
    import json

    path = wd / "runs" / run_id / "evidence.json"
    ev = json.loads(path.read_text(encoding="utf-8"))
    ev["inputs"]["tuned_artifact_digest"] = digest_json(sha256_tree(wd / "runs" / run_id / "adapter"))
    atomic_write_json(path, ev)
    redecide(wd, run_id, policy)


def redecide(wd: Path, run_id: str, policy: GatePolicy | None) -> None:
    """decision.json and its ledger event, by the real ``decide_run`` (the pure decide over evidence)."""
    from tunegate.evaluation.run import decide_run

    decide_run(wd, run_id=run_id, policy=policy or make_policy(Path("/nonexistent-approvers")))
    write_checkpoint(wd, "decide")


def _metric(name: str, base: float, tuned: float, lo: float, hi: float, hib: bool = True) -> dict[str, Any]:
    return {
        "name": name,
        "higher_is_better": hib,
        "baseline": base,
        "tuned": tuned,
        "delta": round(tuned - base, 4),
        "ci_low": lo,
        "ci_high": hi,
        "confidence": 0.95,
        "n": 200,
    }


def make_evidence(run_id: str, *, passed: bool = True) -> dict[str, Any]:
    """A valid ``Evidence`` (tunegate.evaluation.evidence) that passes or fails the default checks."""
    from tunegate.evaluation.evidence import Evidence

    tuned, lo, hi = (0.88, 0.40, 0.54) if passed else (0.42, -0.02, 0.04)
    ev = {
        "run_id": run_id,
        "task": "classification",
        "method": "lora",
        "model_kind": "causal",
        "primary_metric": "macro_f1",
        "inputs": {"holdout_sha256": "a" * 64},
        "data_gate": {
            "verdict": "pass",
            "residual_pii": {"PERSON": 0},
            "residual_ok": True,
            "regex_only": False,
        },
        "holdout": {"verified": True, "manifest_sha256": "c" * 64, "n_records": 200},
        "metrics": {
            "macro_f1": _metric("macro_f1", 0.41, tuned, lo, hi),
            "accuracy": _metric("accuracy", 0.45, 0.90, 0.39, 0.51),
            "invalid_output_rate": _metric("invalid_output_rate", 0.0, 0.0, 0.0, 0.0, hib=False),
        },
        "classification": {"per_class_f1": {lab: round(0.8 + 0.03 * i, 3) for i, lab in enumerate(LABELS)}},
        "regression": [
            {
                "task": "piqa",
                "metric": "acc",
                "baseline": 0.52,
                "tuned": 0.51,
                "delta": -0.01,
                "ci_low": -0.03,
                "ci_high": 0.01,
                "confidence": 0.95,
                "n": 1838,
                "n_available": 1838,
                "version": "1.0",
            }
        ],
        "intruder": {
            "applicable": True,
            "top_k": 10,
            "threshold": 0.5,
            "per_layer": {"l0.q": 0},
            "total": 0,
            "max_per_layer": 0,
            "layers": 2,
        },
        # a canary in a free-text field the report must never render
        "provenance": {"samples": [{"text": CANARIES[0], "prediction": "card_arrival"}]},
    }
    return Evidence.model_validate(ev).model_dump(mode="json")


def write_data(wd: Path) -> None:
    d = wd / "data"
    d.mkdir(parents=True, exist_ok=True)
    for split, n, seed in (("train", 40, 1), ("validation", 10, 2), ("holdout", 12, 3)):
        with open(d / f"{split}.jsonl", "w", encoding="utf-8") as fh:
            for r in _records(n, seed):
                fh.write(json.dumps(r, sort_keys=True) + "\n")
    holdout = d / "holdout.jsonl"
    atomic_write_json(
        d / "holdout.manifest.json",
        {
            "count": 12,
            "sha256": sha256_file(holdout),
            "seed": 3,
            "record_ids": [r["id"] for r in _records(12, 3)],
            "frozen_at": "2026-11-23T10:00:00Z",
        },
    )
    atomic_write_json(
        d / "data_report.json",
        {
            "verdict": "pass",
            "checks": [
                {
                    "name": "min_rows",
                    "passed": True,
                    "figures": {"rows": 62, "min": 50},
                    "message": "ok",
                    "severity": "error",
                }
            ],
            "pii": {
                "counts": {
                    "PERSON": {"text": 3},
                    "EMAIL_ADDRESS": {"text": 1},
                    "PHONE_NUMBER": {"text": 1},
                    "IBAN_CODE": {"text": 1},
                },
                "totals": {"PERSON": 3, "EMAIL_ADDRESS": 1, "PHONE_NUMBER": 1, "IBAN_CODE": 1},
                "residual": {},
                "residual_totals": {},
                "records_scanned": 62,
                "records_with_pii": 1,
                "regex_only": False,
                "model": "en_core_web_sm",
            },
            "sizes": {"train": 40, "validation": 10, "holdout": 12},
            "gx": {"success": True, "evaluated_expectations": 7, "successful_expectations": 7},
            "agreement": {"kappa": 0.81, "items": 20},
            "holdout_manifest_sha256": sha256_file(d / "holdout.manifest.json"),
            "policy_digest": "cd" * 32,
            "sources": [{"file": "banking77.jsonl", "sha256": "ef" * 32, "rows": 62}],
        },
    )
    ledger.append_event(
        wd, "prepare", outputs={"data/holdout.manifest.json": sha256_file(d / "holdout.manifest.json")}
    )
    write_checkpoint(wd, "prepare")


def make_policy(approvers: Path, **approval: Any) -> GatePolicy:
    top = {k: approval.pop(k) for k in ("high_risk",) if k in approval}
    # the fixture's regression run is a disclosed partial run (200 of 1838 PIQA items)
    checks = {"allow_regression_limit": True}
    return policy_from_mapping(
        {**top, "checks": checks, "approval": {"approvers_dir": str(approvers), **approval}}
    )


def make_reviewers(root: Path, untrusted: tuple[str, ...] = ("mallory",)) -> Reviewers:
    """Test reviewer keys under ``root``: alice, bob and trainer (reviewers) and carol (an auditor)
    are trusted in ``root/approvers``; the ``untrusted`` names get keys that nothing trusts."""
    import shutil

    from tunegate.approval.keys import generate_keypair

    approvers, keys_dir = root / "approvers", root / "keys"
    approvers.mkdir(parents=True)
    keys: dict[str, Path] = {}
    for name, roles in (
        ("alice", ("reviewer",)),
        ("bob", ("reviewer",)),
        ("trainer", ("reviewer",)),
        ("carol", ("auditor",)),
    ):
        priv, pub = generate_keypair(name, keys_dir, roles=roles)
        shutil.copy(pub, approvers / pub.name)
        keys[name] = priv
    for name in untrusted:
        keys[name] = generate_keypair(name, keys_dir)[0]
    return Reviewers(approvers, keys)
