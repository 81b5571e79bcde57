"""The pure gate decision: each check's figures, fail-closed behaviour, and golden decision.json files.

Golden files are compared byte for byte; regenerate them only on purpose with
``TUNEGATE_REGEN_GOLDEN=1 python -m pytest tests/unit/policy``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tunegate.errors import ConfigError
from tunegate.evaluation.evidence import Evidence
from tunegate.policy.checks import CHECKS
from tunegate.policy.decide import decide
from tunegate.policy.schema import policy_from_mapping
from tunegate.provenance import pretty_json

GOLDEN = Path(__file__).resolve().parents[2] / "golden"


def _evidence(**over: object) -> Evidence:
    base: dict[str, object] = {
        "run_id": "20260101T000000Z-lora-abc123",
        "task": "classification",
        "method": "lora",
        "model_kind": "causal",
        "primary_metric": "macro_f1",
        "inputs": {"holdout_sha256": "a" * 64, "base_model_digest": "b" * 64},
        "data_gate": {
            "verdict": "pass",
            "residual_pii": {"PERSON": 0},
            "residual_ok": True,
            "regex_only": False,
        },
        "holdout": {"verified": True, "manifest_sha256": "c" * 64, "n_records": 200},
        "metrics": {
            "macro_f1": {
                "name": "macro_f1",
                "higher_is_better": True,
                "baseline": 0.41,
                "tuned": 0.78,
                "delta": 0.37,
                "ci_low": 0.3,
                "ci_high": 0.44,
                "confidence": 0.95,
                "n": 200,
            },
            "invalid_output_rate": {
                "name": "invalid_output_rate",
                "higher_is_better": False,
                "baseline": 0.0,
                "tuned": 0.0,
                "delta": 0.0,
                "ci_low": 0.0,
                "ci_high": 0.0,
                "confidence": 0.95,
                "n": 200,
            },
        },
        "regression": [
            {
                "task": "tunegate_piqa",
                "metric": "acc",
                "baseline": 0.6,
                "tuned": 0.59,
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
            "per_layer": {"l0.q": 2, "l0.v": 1},
            "total": 3,
            "max_per_layer": 2,
            "layers": 2,
        },
    }
    base.update(over)
    return Evidence.model_validate(base)


def _by_name(decision: object) -> dict[str, object]:
    return {c.name: c for c in decision.checks}  # type: ignore[attr-defined]


CASES = {
    "pass_default": (_evidence, {}),
    "fail_regression_and_limit": (
        lambda: _evidence(
            regression=[
                {
                    "task": "tunegate_piqa",
                    "metric": "acc",
                    "baseline": 0.6,
                    "tuned": 0.5,
                    "delta": -0.1,
                    "ci_low": -0.14,
                    "ci_high": -0.06,
                    "confidence": 0.95,
                    "n": 50,
                    "n_available": 1838,
                    "limit": 50,
                    "version": "1.0",
                }
            ]
        ),
        {},
    ),
    "fail_closed_missing_sections": (
        lambda: Evidence(run_id="r1", task="instruction"),
        {"checks": {"min_absolute": {"rouge_l": 0.2}, "max_intruder_dimensions": 5}},
    ),
    "fail_intruders_and_floor": (
        _evidence,
        {"checks": {"min_absolute": {"macro_f1": 0.9}, "max_intruder_dimensions": 2}},
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden_decisions(case: str) -> None:
    make, pol = CASES[case]
    policy = policy_from_mapping(pol)
    decision = decide(policy, make())
    body = decision.model_dump(mode="json")
    # The full policy digest covers every area's section, so it moves whenever any area's defaults
    # change; it is checked here and masked in the file. The checks section the decision actually
    # read is pinned by checks_policy_digest, which stays in the golden file.
    assert body["policy_digest"] == policy.digest()
    body["policy_digest"] = "<GatePolicy.digest()>"
    text = pretty_json(body)
    path = GOLDEN / "decisions" / f"{case}.json"
    if os.environ.get("TUNEGATE_REGEN_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.is_file(), f"missing golden file {path}; regenerate with TUNEGATE_REGEN_GOLDEN=1"
    assert text == path.read_text(encoding="utf-8")


def test_pass_case_reads_the_lower_bound() -> None:
    d = decide(policy_from_mapping({}), _evidence())
    assert d.verdict == "pass", d.reasons
    assert [c.name for c in d.checks] == list(policy_from_mapping({}).checks.enabled)
    assert _by_name(d)["min_improvement_lcb"].figures["improvement_lcb"] == 0.3  # type: ignore[attr-defined]


def test_positive_point_estimate_with_negative_lower_bound_fails() -> None:
    m = {
        "name": "macro_f1",
        "higher_is_better": True,
        "baseline": 0.5,
        "tuned": 0.53,
        "delta": 0.03,
        "ci_low": -0.02,
        "ci_high": 0.08,
        "confidence": 0.95,
        "n": 40,
    }
    ev = _evidence(metrics={**_evidence().model_dump()["metrics"], "macro_f1": m})
    d = decide(policy_from_mapping({}), ev)
    assert d.verdict == "fail"
    assert any(r.startswith("min_improvement_lcb:") for r in d.reasons)


def test_regression_point_vs_lower_bound() -> None:
    ev = _evidence(
        regression=[
            {
                "task": "t",
                "metric": "acc",
                "baseline": 0.6,
                "tuned": 0.59,
                "delta": -0.01,
                "ci_low": -0.09,
                "ci_high": 0.07,
                "confidence": 0.95,
                "n": 60,
            }
        ]
    )
    assert not _by_name(decide(policy_from_mapping({}), ev))["max_regression_drop"].passed  # type: ignore[attr-defined]
    point = policy_from_mapping({"checks": {"regression_bound": "point"}})
    assert _by_name(decide(point, ev))["max_regression_drop"].passed  # type: ignore[attr-defined]


def test_every_missing_section_fails_closed_with_a_reason() -> None:
    d = decide(policy_from_mapping({}), Evidence(run_id="r", task="classification"))
    assert d.verdict == "fail"
    failed = {c.name for c in d.checks if not c.passed}
    assert failed >= {
        "data_gate_passed",
        "residual_pii_within_bounds",
        "holdout_manifest_verified",
        "min_improvement_lcb",
        "max_regression_drop",
        "max_invalid_output_rate",
        "max_intruder_dimensions",
    }
    assert len(d.reasons) == len([c for c in d.checks if c.blocking])


def test_residual_pii_and_data_gate_failures() -> None:
    ev = _evidence(
        data_gate={
            "verdict": "fail",
            "failed_checks": ["duplicates"],
            "residual_pii": {"EMAIL_ADDRESS": 2},
            "residual_ok": False,
        }
    )
    d = _by_name(decide(policy_from_mapping({}), ev))
    assert not d["data_gate_passed"].passed and "duplicates" in d["data_gate_passed"].message  # type: ignore[attr-defined]
    assert not d["residual_pii_within_bounds"].passed  # type: ignore[attr-defined]
    assert d["residual_pii_within_bounds"].figures["total"] == 2  # type: ignore[attr-defined]


def test_limit_allowed_is_a_warning_not_silent() -> None:
    ev = _evidence(
        regression=[
            {
                "task": "t",
                "metric": "acc",
                "baseline": 0.6,
                "tuned": 0.6,
                "delta": 0.0,
                "ci_low": 0.0,
                "ci_high": 0.0,
                "confidence": 0.95,
                "n": 30,
                "n_available": 1838,
                "limit": 30,
            }
        ]
    )
    d = decide(policy_from_mapping({"checks": {"allow_regression_limit": True}}), ev)
    assert d.verdict == "pass"
    assert any("limit used" in w for w in d.warnings)


def test_lower_is_better_primary_metric_uses_upper_bound() -> None:
    ev = _evidence()
    d = decide(policy_from_mapping({"checks": {"primary_metric": "invalid_output_rate"}}), ev)
    assert _by_name(d)["min_improvement_lcb"].figures["improvement_lcb"] == 0.0  # type: ignore[attr-defined]


def test_a_raising_check_fails_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(policy: object, evidence: object) -> object:
        raise RuntimeError("broken")

    monkeypatch.setitem(CHECKS._items, "data_gate_passed", boom)
    d = decide(policy_from_mapping({}), _evidence())
    assert d.verdict == "fail"
    assert "could not be evaluated (RuntimeError: broken)" in d.reasons[0]


def test_unknown_check_name_suggests_the_right_one() -> None:
    with pytest.raises(ConfigError, match="Did you mean 'max_regression_drop'"):
        policy_from_mapping({"checks": {"enabled": ["max_regresion_drop"]}})


def test_decide_is_deterministic_and_digests_inputs() -> None:
    a = decide(policy_from_mapping({}), _evidence())
    b = decide(policy_from_mapping({}), _evidence())
    assert a.model_dump() == b.model_dump()
    assert a.evidence_digest == _evidence().digest()
    assert a.policy_digest == policy_from_mapping({}).digest()
