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


def baseline_candidates(evidence: Evidence, metric: str) -> list[tuple[str, MetricComparison]]:
    """(baseline name, comparison of ``metric``) for every scored baseline, base model first."""
    out: list[tuple[str, MetricComparison]] = []
    if evidence.baselines is not None:
        for b in evidence.baselines:
            m = None if b.skipped else b.metrics.get(metric)
            if m is not None:
                out.append((b.name, m))
    if not any(name == "base_model" for name, _ in out) and metric in evidence.metrics:
        out.insert(0, ("base_model", evidence.metrics[metric]))
    return out


def strongest_baseline(evidence: Evidence, metric: str) -> tuple[str, MetricComparison] | None:
    """The baseline with the best ``metric`` (ties: the earlier one, base model first)."""
    cands = baseline_candidates(evidence, metric)
    if not cands:
        return None
    best = cands[0]
    for name, m in cands[1:]:
        better = m.baseline > best[1].baseline if m.higher_is_better else m.baseline < best[1].baseline
        if better:
            best = (name, m)
    return best


@CHECKS.register("min_improvement_lcb")
def min_improvement_lcb(policy: GatePolicy, evidence: Evidence) -> GateCheckResult:
    name = "min_improvement_lcb"
    metric = primary_metric_name(policy, evidence)
    need = policy.checks.min_improvement_lcb
    if policy.checks.improvement_baseline == "base_model":
        picked = ("base_model", evidence.metrics[metric]) if metric in evidence.metrics else None
    else:
        picked = strongest_baseline(evidence, metric)
    if picked is None:
        return _r(name, False, f"primary metric {metric} was not measured", metric=metric, required=need)
    which, m = picked
    lcb = _improvement_bound(m)
    others = {
        b: {"baseline": c.baseline, "improvement_lcb": _improvement_bound(c)}
        for b, c in baseline_candidates(evidence, metric)
    }
    figures: dict[str, Any] = {
        "metric": metric,
        "compared_with": which,
        "baseline": m.baseline,
        "tuned": m.tuned,
        "delta": m.delta,
        "ci_low": m.ci_low,
        "ci_high": m.ci_high,
        "confidence": m.confidence,
        "improvement_lcb": lcb,
        "required": need,
        "n": m.n,
        "baselines": others,
    }
    pct = round(m.confidence * 100)
    picked_by = "strongest baseline" if policy.checks.improvement_baseline == "strongest" else "baseline"
    text = (
        f"{metric} vs {picked_by} {which}: {_fmt(m.baseline)} -> tuned {_fmt(m.tuned)}, delta {m.delta:+.4f} "
        f"({pct}% CI [{m.ci_low:+.4f}, {m.ci_high:+.4f}], n={m.n}); improvement lower bound {lcb:+.4f}"
    )
    # Strictly above: with the default threshold 0 the improvement must be significant at the
    # interval's level; a tuned model identical to the baseline (interval [0, 0]) does not pass.
    if lcb > need:
        return _r(name, True, f"{text} > {need}", **figures)
    return _r(name, False, f"{text}, not above required {need}", **figures)


def _not_classification(name: str, evidence: Evidence) -> GateCheckResult | None:
    if evidence.task != "classification":
        return _r(name, True, f"not applicable: a {evidence.task} run has no classes", applicable=False)
    return None


@CHECKS.register("min_per_class_f1")
def min_per_class_f1(policy: GatePolicy, evidence: Evidence) -> GateCheckResult:
    """Every label's tuned F1 at or above the floor: a good macro-F1 must not hide a dead class."""
    name = "min_per_class_f1"
    floor = policy.checks.min_per_class_f1
    na = _not_classification(name, evidence)
    if na is not None:
        return na
    if floor is None:
        return _r(name, True, "off (checks.min_per_class_f1: null)", floor=None)
    per = ((evidence.classification or {}).get("tuned") or {}).get("per_class")
    if not per:
        return _r(name, False, "the evidence has no per-class figures for the tuned model", floor=floor)
    failing = {
        lab: {"f1": float(v["f1"]), "support": int(v.get("support", 0))}
        for lab, v in sorted(per.items(), key=lambda kv: (float(kv[1]["f1"]), kv[0]))
        if float(v["f1"]) < floor and int(v.get("support", 0)) > 0
    }
    figures: dict[str, Any] = {"floor": floor, "n_classes": len(per), "failing": failing}
    if failing:
        listed = ", ".join(f"{k} {v['f1']:.2f} (n={v['support']})" for k, v in failing.items())
        return _r(name, False, f"{len(failing)} of {len(per)} classes below F1 {floor}: {listed}", **figures)
    worst = min(per.items(), key=lambda kv: (float(kv[1]["f1"]), kv[0]))
    return _r(
        name,
        True,
        f"every class has F1 >= {floor} (lowest: {worst[0]} {float(worst[1]['f1']):.2f})",
        **figures,
    )


@CHECKS.register("max_per_class_drop")
def max_per_class_drop(policy: GatePolicy, evidence: Evidence) -> GateCheckResult:
    """No label's F1 drops versus the strongest baseline by more than allowed (paired intervals)."""
    name = "max_per_class_drop"
    cfg = policy.checks
    na = _not_classification(name, evidence)
    if na is not None:
        return na
    if cfg.max_per_class_drop is None:
        return _r(name, True, "off (checks.max_per_class_drop: null)", allowed_drop=None)
    metric = primary_metric_name(policy, evidence)
    picked = strongest_baseline(evidence, metric) if cfg.improvement_baseline == "strongest" else None
    which = picked[0] if picked is not None else "base_model"
    entry = next((b for b in evidence.baselines or [] if b.name == which and not b.skipped), None)
    if entry is None or not entry.per_class:
        return _r(name, False, f"the evidence has no per-class deltas versus {which}", compared_with=which)
    allowed = cfg.max_per_class_drop
    bound = cfg.per_class_drop_bound
    failing: dict[str, Any] = {}
    for lab, d in sorted(entry.per_class.items()):
        read = {"lower": d.ci_low, "point": d.delta, "upper": d.ci_high}[bound]
        drop = max(0.0, -read)
        if drop > allowed:
            failing[lab] = {
                "baseline_f1": d.baseline_f1,
                "tuned_f1": d.tuned_f1,
                "delta": d.delta,
                "ci_low": d.ci_low,
                "ci_high": d.ci_high,
                "support": d.support,
                "drop": drop,
            }
    failing = dict(sorted(failing.items(), key=lambda kv: (-kv[1]["drop"], kv[0])))
    figures: dict[str, Any] = {
        "compared_with": which,
        "bound": bound,
        "allowed_drop": allowed,
        "n_classes": len(entry.per_class),
        "failing": failing,
    }
    if failing:
        listed = ", ".join(
            f"{k} {v['baseline_f1']:.2f} -> {v['tuned_f1']:.2f} "
            f"(CI [{v['ci_low']:+.2f}, {v['ci_high']:+.2f}])"
            for k, v in failing.items()
        )
        return _r(
            name,
            False,
            f"{len(failing)} class(es) drop more than {allowed} F1 versus {which} ({bound} bound): {listed}",
            **figures,
        )
    return _r(
        name,
        True,
        f"no class drops more than {allowed} F1 versus {which} ({bound} bound of the paired interval)",
        **figures,
    )


@CHECKS.register("max_regression_drop")
def max_regression_drop(policy: GatePolicy, evidence: Evidence) -> GateCheckResult:
    name = "max_regression_drop"
    cfg = policy.checks
    if evidence.regression is None:
        return _r(name, False, "the general-capability regression was not run")
    if not evidence.regression:
        return _r(name, True, "no regression tasks are configured", tasks={})
    if evidence.model_kind == "seq_cls":
        tasks = [t.task for t in evidence.regression]
        if cfg.regression_causal_only:
            return _r(
                name,
                True,
                f"not applicable: the regression tasks ({', '.join(tasks)}) need a causal LM and this "
                "run is a sequence-classification model (checks.regression_causal_only: true)",
                "warning",
                applicable=False,
                tasks=tasks,
            )
        return _r(
            name,
            False,
            f"the regression tasks ({', '.join(tasks)}) need a causal LM and were not evaluated on this "
            "sequence-classification model; set checks.regression_causal_only: true to treat them as "
            "not applicable to encoders, or evaluation.regression_tasks: [] to run none",
            applicable=False,
            tasks=tasks,
        )
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
    """lm-eval's ``limit`` and over-long items left out or truncated both make a partial benchmark;
    never silent, and blocking unless the policy allows it."""
    name = "regression_limit_disclosed"
    if evidence.regression is None:
        return _r(name, False, "the general-capability regression was not run")
    limited = {
        t.task: {
            "limit": t.limit,
            "n": t.n,
            "n_available": t.n_available,
            "n_overlong": t.n_overlong,
            "overlong_rule": t.overlong_rule if t.n_overlong else None,
            "context_length": t.context_length if t.n_overlong else None,
        }
        for t in evidence.regression
        if t.limit is not None or t.n_overlong
    }
    if not limited:
        return _r(name, True, "every regression task ran on its full item set", limited={})
    parts = []
    for k, v in limited.items():
        bits = []
        if v["limit"] is not None:
            bits.append(f"limit={v['limit']}")
        if v["n_overlong"]:
            how = "left out" if v["overlong_rule"] == "skip" else "context-truncated or left out"
            bits.append(f"{v['n_overlong']} item(s) over the {v['context_length']}-token context {how}")
        parts.append(f"{k} on {v['n']} of {v['n_available']} items ({'; '.join(bits)})")
    text = ", ".join(parts)
    if policy.checks.allow_regression_limit:
        return _r(name, True, f"partial benchmark allowed by the policy: {text}", "warning", limited=limited)
    return _r(
        name,
        False,
        f"partial benchmark and the policy does not allow it (checks.allow_regression_limit): {text}",
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
