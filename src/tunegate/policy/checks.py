"""The closed set of gate checks, registered by snake_case name.

Each check is a pure function ``(policy, evidence) -> GateCheckResult``: it reads thresholds from
``policy.checks`` and figures from the :class:`~tunegate.evaluation.evidence.Evidence`, and says
pass or fail with the figures and one sentence. A check whose evidence is missing fails closed
(``passed=False`` with the reason), so an incomplete evaluation can never pass the gate.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict

from tunegate.evaluation.evidence import Evidence, MetricComparison
from tunegate.policy.registry import Registry

if TYPE_CHECKING:
    from tunegate.policy.schema import GatePolicy

Severity = Literal["error", "warning"]


class GateCheckResult(BaseModel):
    """One check's outcome. ``severity='warning'`` results never block."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    passed: bool
    figures: dict[str, Any] = {}
    message: str = ""
    severity: Severity = "error"

    @property
    def blocking(self) -> bool:
        return not self.passed and self.severity == "error"


CheckFn = Callable[["GatePolicy", Evidence], GateCheckResult]
CHECKS: Registry[CheckFn] = Registry("check")


def _r(
    name: str, passed: bool, message: str, severity: Severity = "error", **figures: Any
) -> GateCheckResult:
    return GateCheckResult(name=name, passed=passed, figures=figures, message=message, severity=severity)


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4f}"


def primary_metric_name(policy: GatePolicy, evidence: Evidence) -> str:
    """The metric the gate reads: the policy's choice, else the evidence's, else a task default."""
    if policy.checks.primary_metric:
        return policy.checks.primary_metric
    if evidence.primary_metric:
        return evidence.primary_metric
    return "macro_f1" if evidence.task == "classification" else "rouge_l"


@CHECKS.register("data_gate_passed")
def data_gate_passed(policy: GatePolicy, evidence: Evidence) -> GateCheckResult:
    name = "data_gate_passed"
    dg = evidence.data_gate
    if dg is None:
        return _r(name, False, "no data gate report in the evidence: cannot confirm the data gate passed")
    if dg.verdict != "pass":
        failed = ", ".join(dg.failed_checks) or "unknown checks"
        return _r(
            name, False, f"the data gate failed ({failed})", verdict=dg.verdict, failed=dg.failed_checks
        )
    return _r(name, True, "the data gate passed", verdict=dg.verdict)


@CHECKS.register("residual_pii_within_bounds")
def residual_pii_within_bounds(policy: GatePolicy, evidence: Evidence) -> GateCheckResult:
    name = "residual_pii_within_bounds"
    dg = evidence.data_gate
    if dg is None:
        return _r(name, False, "no data gate report in the evidence: residual PII is unknown")
    cfg = policy.checks
    total = sum(dg.residual_pii.values())
    over = {
        ent: n
        for ent, n in sorted(dg.residual_pii.items())
        if ent in cfg.max_residual_pii_per_entity and n > cfg.max_residual_pii_per_entity[ent]
    }
    figures: dict[str, Any] = {
        "residual": dict(sorted(dg.residual_pii.items())),
        "total": total,
        "max_total": cfg.max_residual_pii,
        "residual_ok": dg.residual_ok,
        "regex_only": dg.regex_only,
    }
    problems = []
    if dg.residual_ok is False:
        problems.append("the PII stage reported residuals beyond its own bound")
    if dg.residual_ok is None:
        problems.append("the data report does not say whether residuals are within the PII policy")
    if cfg.max_residual_pii is not None and total > cfg.max_residual_pii:
        problems.append(f"{total} residual PII entities > allowed {cfg.max_residual_pii}")
    if over:
        problems.append("per-entity bound exceeded: " + ", ".join(f"{e}={n}" for e, n in over.items()))
    if problems:
        return _r(name, False, "; ".join(problems), **figures)
    note = " (regex recognizers only: NER was unavailable)" if dg.regex_only else ""
    bound = (
        f"<= {cfg.max_residual_pii} in total"
        if cfg.max_residual_pii is not None
        else "within the PII policy's per-entity limits (pii.max_residual)"
    )
    return _r(name, True, f"{total} residual PII detection(s), {bound}{note}", **figures)


@CHECKS.register("holdout_manifest_verified")
def holdout_manifest_verified(policy: GatePolicy, evidence: Evidence) -> GateCheckResult:
    name = "holdout_manifest_verified"
    h = evidence.holdout
    if h is None:
        return _r(name, False, "the evidence does not say the hold-out was verified against its manifest")
    if not h.verified:
        return _r(
            name, False, f"hold-out not verified: {h.reason or 'unknown reason'}", n_records=h.n_records
        )
    return _r(
        name,
        True,
        f"hold-out ({h.n_records} records) matches its manifest",
        n_records=h.n_records,
        manifest_sha256=h.manifest_sha256,
    )


@CHECKS.register("min_absolute_metric")
def min_absolute_metric(policy: GatePolicy, evidence: Evidence) -> GateCheckResult:
    name = "min_absolute_metric"
    floors = policy.checks.min_absolute
    if not floors:
        return _r(name, True, "no absolute floor set in the policy", floors={})
    rows: dict[str, Any] = {}
    problems = []
    for metric, floor in sorted(floors.items()):
        m = evidence.metrics.get(metric)
        if m is None:
            problems.append(f"{metric} was not measured")
            rows[metric] = {"floor": floor, "tuned": None}
            continue
        ok = m.tuned >= floor if m.higher_is_better else m.tuned <= floor
        rows[metric] = {"floor": floor, "tuned": m.tuned, "higher_is_better": m.higher_is_better, "ok": ok}
        if not ok:
            rel = "<" if m.higher_is_better else ">"
            problems.append(f"{metric} {_fmt(m.tuned)} {rel} required {floor}")
    if problems:
        return _r(name, False, "; ".join(problems), metrics=rows)
    return _r(
        name,
        True,
        "every floor met: " + ", ".join(f"{k} {_fmt(v['tuned'])}" for k, v in rows.items()),
        metrics=rows,
    )


def _improvement_bound(m: MetricComparison) -> float:
    """Lower confidence bound of the *improvement* (sign-flipped for lower-is-better metrics)."""
    return m.ci_low if m.higher_is_better else -m.ci_high


@CHECKS.register("min_improvement_lcb")
def min_improvement_lcb(policy: GatePolicy, evidence: Evidence) -> GateCheckResult:
    name = "min_improvement_lcb"
    metric = primary_metric_name(policy, evidence)
    m = evidence.metrics.get(metric)
    need = policy.checks.min_improvement_lcb
    if m is None:
        return _r(name, False, f"primary metric {metric} was not measured", metric=metric, required=need)
    lcb = _improvement_bound(m)
    figures: dict[str, Any] = {
        "metric": metric,
        "baseline": m.baseline,
        "tuned": m.tuned,
        "delta": m.delta,
        "ci_low": m.ci_low,
        "ci_high": m.ci_high,
        "confidence": m.confidence,
        "improvement_lcb": lcb,
        "required": need,
        "n": m.n,
    }
    pct = round(m.confidence * 100)
    text = (
        f"{metric}: baseline {_fmt(m.baseline)} -> tuned {_fmt(m.tuned)}, delta {m.delta:+.4f} "
        f"({pct}% CI [{m.ci_low:+.4f}, {m.ci_high:+.4f}], n={m.n}); improvement lower bound {lcb:+.4f}"
    )
    # Strictly above: with the default threshold 0 the improvement must be significant at the
    # interval's level; a tuned model identical to the baseline (interval [0, 0]) does not pass.
    if lcb > need:
        return _r(name, True, f"{text} > {need}", **figures)
    return _r(name, False, f"{text}, not above required {need}", **figures)


@CHECKS.register("max_regression_drop")
def max_regression_drop(policy: GatePolicy, evidence: Evidence) -> GateCheckResult:
    name = "max_regression_drop"
    cfg = policy.checks
    if evidence.regression is None:
        return _r(name, False, "the general-capability regression was not run")
    if not evidence.regression:
        return _r(name, True, "no regression tasks are configured", tasks={})
    rows: dict[str, Any] = {}
    problems = []
    for t in evidence.regression:
        allowed = cfg.max_regression_drop_per_task.get(t.task, cfg.max_regression_drop)
        if t.skipped or t.delta is None or t.ci_low is None or t.ci_high is None:
            rows[t.task] = {"skipped": True, "reason": t.reason, "allowed_drop": allowed}
            problems.append(f"{t.task} was not evaluated ({t.reason or 'no result'})")
            continue
        if cfg.regression_bound == "lower":
            worst = t.ci_low if t.higher_is_better else -t.ci_high
        else:
            worst = t.delta if t.higher_is_better else -t.delta
        drop = max(0.0, -worst)
        ok = drop <= allowed
        rows[t.task] = {
            "metric": t.metric,
            "baseline": t.baseline,
            "tuned": t.tuned,
            "delta": t.delta,
            "ci_low": t.ci_low,
            "ci_high": t.ci_high,
            "drop": drop,
            "allowed_drop": allowed,
            "n": t.n,
            "limit": t.limit,
            "ok": ok,
        }
        if not ok:
            problems.append(
                f"{t.task} {t.metric}: delta {t.delta:+.4f} (CI [{t.ci_low:+.4f}, {t.ci_high:+.4f}]), "
                f"{cfg.regression_bound} drop {drop:.4f} > allowed {allowed}"
            )
    figures: dict[str, Any] = {"bound": cfg.regression_bound, "tasks": rows}
    if problems:
        return _r(name, False, "; ".join(problems), **figures)
    parts = [f"{k} drop {v['drop']:.4f} <= {v['allowed_drop']}" for k, v in rows.items()]
    return _r(name, True, "; ".join(parts), **figures)


@CHECKS.register("regression_limit_disclosed")
def regression_limit_disclosed(policy: GatePolicy, evidence: Evidence) -> GateCheckResult:
    """lm-eval's ``limit`` makes a partial benchmark; never silent, and blocking unless allowed."""
    name = "regression_limit_disclosed"
    if evidence.regression is None:
        return _r(name, False, "the general-capability regression was not run")
    limited = {
        t.task: {"limit": t.limit, "n": t.n, "n_available": t.n_available}
        for t in evidence.regression
        if t.limit is not None
    }
    if not limited:
        return _r(name, True, "every regression task ran on its full item set", limited={})
    text = ", ".join(
        f"{k} on {v['n']} of {v['n_available']} items (limit={v['limit']})" for k, v in limited.items()
    )
    if policy.checks.allow_regression_limit:
        return _r(name, True, f"limit used and allowed by the policy: {text}", "warning", limited=limited)
    return _r(
        name,
        False,
        f"limit used (partial benchmark) and the policy does not allow it: {text}",
        limited=limited,
    )


@CHECKS.register("max_invalid_output_rate")
def max_invalid_output_rate(policy: GatePolicy, evidence: Evidence) -> GateCheckResult:
    name = "max_invalid_output_rate"
    key = "invalid_output_rate" if evidence.task == "classification" else "empty_output_rate"
    m = evidence.metrics.get(key)
    allowed = policy.checks.max_invalid_output_rate
    if m is None:
        return _r(name, False, f"{key} was not measured", metric=key, allowed=allowed)
    figures: dict[str, Any] = {"metric": key, "tuned": m.tuned, "baseline": m.baseline, "allowed": allowed}
    if m.tuned > allowed:
        return _r(name, False, f"{key} {m.tuned:.4f} > allowed {allowed}", **figures)
    return _r(name, True, f"{key} {m.tuned:.4f} <= {allowed}", **figures)


@CHECKS.register("max_intruder_dimensions")
def max_intruder_dimensions(policy: GatePolicy, evidence: Evidence) -> GateCheckResult:
    name = "max_intruder_dimensions"
    cfg = policy.checks
    intr = evidence.intruder
    if intr is None:
        return _r(name, False, "the intruder-dimension analysis was not run")
    if not intr.applicable:
        return _r(name, True, f"not applicable: {intr.reason}", "warning", applicable=False)
    figures: dict[str, Any] = {
        "total": intr.total,
        "max_per_layer": intr.max_per_layer,
        "layers": intr.layers,
        "top_k": intr.top_k,
        "threshold": intr.threshold,
        "bound_total": cfg.max_intruder_dimensions,
        "bound_per_layer": cfg.max_intruder_per_layer,
    }
    problems = []
    if cfg.max_intruder_dimensions is not None and intr.total > cfg.max_intruder_dimensions:
        problems.append(f"{intr.total} intruder dimensions > allowed {cfg.max_intruder_dimensions}")
    if cfg.max_intruder_per_layer is not None and intr.max_per_layer > cfg.max_intruder_per_layer:
        problems.append(f"a layer has {intr.max_per_layer} intruders > allowed {cfg.max_intruder_per_layer}")
    if problems:
        return _r(name, False, "; ".join(problems), **figures)
    bound = (
        "no bound set (reported only)"
        if cfg.max_intruder_dimensions is None and cfg.max_intruder_per_layer is None
        else "within bounds"
    )
    return _r(name, True, f"{intr.total} intruder dimensions over {intr.layers} layers: {bound}", **figures)
