"""Format, length, label, role and duplicate checks run as Great Expectations (GX 1.x) suites.

The suites are data, not code: ``gates/expectations/<task>.json`` (one per task kind) are GX
``ExpectationSuite`` documents whose policy-dependent values are GX suite parameters
(``{"$PARAMETER": "label_set"}``). :func:`run_expectations` fills them from the
:class:`~tunegate.data.config.DataPolicy` at run time, so one reviewed suite serves every policy.
An expectation whose ``meta.requires`` names a parameter the policy leaves unset (no label set,
no output template) is skipped and listed as skipped — never silently passed.

GX validates columns, so :func:`records_frame` flattens records to one row per record: one column
per field plus computed columns (``*_len`` character counts, ``roles_known``/``roles_alternate``
and turn lengths for chat, ``output_matches_template`` from the regex and/or ``jsonschema``,
``is_exact_duplicate`` from :mod:`tunegate.data.duplicates`). The suites are run on an
*ephemeral* GX context (nothing written to disk, analytics off via ``GX_ANALYTICS_ENABLED``), built
once per process because building one costs seconds; GX's own logging and progress bars are
silenced. Results keep counts and unexpected *record ids* only (``exclude_unexpected_values``):
record text never reaches a report.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunegate import defaults
from tunegate.data.agreement import check_agreement
from tunegate.data.config import DataPolicy
from tunegate.data.duplicates import exact_key
from tunegate.data.results import CheckResult, id_list, short_ids
from tunegate.data.sizes import check_sizes
from tunegate.errors import ConfigError, DependencyError, StageError
from tunegate.records import CHAT_ROLES, TASK_KINDS, Record

if TYPE_CHECKING:
    import pandas as pd

#: Re-exported for callers that import every data check from here.
__all__ = ["ValidationReport", "check_agreement", "check_sizes", "records_frame", "run_expectations"]

#: Where the shipped suites live (the repo's ``gates/expectations``, beside ``gates/default.yaml``).
EXPECTATIONS_DIR = defaults.gates_dir() / "expectations"  # package data (importlib.resources)
_DATASOURCE = "tunegate"
_ASSET = "records"
_BATCH = "whole_frame"
_lock = threading.Lock()


# -- GX context ------------------------------------------------------------------------------
@dataclass(frozen=True)
class GXRunner:
    """An ephemeral GX context with one pandas data source and a whole-frame batch definition."""

    context: Any
    batch_definition: Any
    version: str


@cache
def gx_runner() -> GXRunner:
    """The process's GX context, built on first use (a few seconds) and reused afterwards."""
    import os

    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    for name in ("great_expectations", "great_expectations.core", "great_expectations.data_context"):
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig
    except ImportError as exc:  # pragma: no cover - a hard dependency
        raise DependencyError("great_expectations is not installed", hint="pip install tunegate") from exc
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    asset = context.data_sources.add_pandas(_DATASOURCE).add_dataframe_asset(_ASSET)
    batch_definition = asset.add_batch_definition_whole_dataframe(_BATCH)
    return GXRunner(context=context, batch_definition=batch_definition, version=gx.__version__)


# -- suites ----------------------------------------------------------------------------------
def suite_path(task: str, directory: Path | None = None) -> Path:
    if task not in TASK_KINDS:
        raise ConfigError(f"unknown task kind {task!r}; expected one of {list(TASK_KINDS)}")
    return (directory or EXPECTATIONS_DIR) / f"{task}.json"


@cache
def _suite_document(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"{path}: expectation suite not found", hint="restore gates/expectations/")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: line {exc.lineno}: the expectation suite is not valid JSON") from None
    checks = [e.get("meta", {}).get("check") for e in doc.get("expectations", [])]
    if None in checks or len(set(checks)) != len(checks):
        raise ConfigError(f"{path}: every expectation needs a unique meta.check name")
    return doc


def suite_parameters(task: str, policy: DataPolicy) -> dict[str, Any]:
    """The values the suite templates' ``$PARAMETER`` placeholders take under ``policy``."""
    params: dict[str, Any] = {
        "label_set": list(policy.label_set) if policy.label_set is not None else None,
        "max_chat_turns": policy.max_chat_turns,
        "unique_mostly": 1.0 - policy.max_duplicate_rate,
        "output_check": True if (policy.output_template or policy.output_json_schema) else None,
    }
    for name, b in policy.lengths.items():
        params[f"{name}_min_chars"] = b.min_chars
        params[f"{name}_max_chars"] = b.max_chars
    return params


def load_suite(task: str, policy: DataPolicy, *, directory: Path | None = None) -> tuple[Any, list[dict]]:
    """A GX ``ExpectationSuite`` for ``task`` without the expectations ``policy`` cannot fill.

    Returns the suite and the skipped expectations (``check``, ``type``, ``reason``).
    """
    import great_expectations as gx

    doc = _suite_document(suite_path(task, directory))
    params = suite_parameters(task, policy)
    kept, skipped = [], []
    for exp in doc["expectations"]:
        missing = [p for p in exp.get("meta", {}).get("requires", []) if params.get(p) is None]
        if missing:
            skipped.append(
                {
                    "check": exp["meta"]["check"],
                    "type": exp["type"],
                    "reason": f"policy leaves {missing} unset",
                }
            )
        else:
            kept.append(exp)
    try:
        suite = gx.ExpectationSuite(name=doc["name"], expectations=kept, meta=doc.get("meta", {}))
    except Exception as exc:  # GX raises several types for a malformed document
        raise ConfigError(f"{suite_path(task, directory)}: not a valid GX expectation suite: {exc}") from None
    return suite, skipped


# -- flattening ------------------------------------------------------------------------------
def roles_alternate(roles: Sequence[str]) -> bool:
    """``system``? then ``user``/``assistant`` strictly alternating, starting with user, ending with
    assistant, with at least one exchange."""
    rest = list(roles[1:] if roles and roles[0] == "system" else roles)
    if len(rest) < 2 or len(rest) % 2:
        return False
    return all(r == ("user" if i % 2 == 0 else "assistant") for i, r in enumerate(rest))


def _template_checker(policy: DataPolicy) -> Any:
    """A function ``str -> bool`` for the policy's output template/schema, or ``None``."""
    pattern = re.compile(policy.output_template, re.DOTALL) if policy.output_template else None
    validator = None
    if policy.output_json_schema is not None:
        import jsonschema

        cls = jsonschema.validators.validator_for(policy.output_json_schema)
        validator = cls(policy.output_json_schema)
    if pattern is None and validator is None:
        return None

    def check(value: str | None) -> bool:
        if value is None:
            return False
        if pattern is not None and pattern.fullmatch(value) is None:
            return False
        if validator is not None:
            try:
                doc = json.loads(value)
            except json.JSONDecodeError:
                return False
            return bool(validator.is_valid(doc))
        return True

    return check


def _exact_duplicate_flags(records: Sequence[Record]) -> list[bool]:
    """True for every record but the smallest id (first occurrence) of its exact-duplicate group."""
    best: dict[str, tuple[str, int]] = {}
    for pos, r in enumerate(records):
        k = exact_key(r)
        if k not in best or r.id < best[k][0]:
            best[k] = (r.id, pos)
    keep = {pos for _, pos in best.values()}
    return [pos not in keep for pos in range(len(records))]


_INT_COLUMNS = (
    "text_len",
    "instruction_len",
    "input_len",
    "output_len",
    "n_messages",
    "min_message_len",
    "max_message_len",
)
_COLUMNS: dict[str, list[str]] = {
    "classification": ["id", "group", "text", "label", "label_2", "text_len"],
    "instruction": [
        "id",
        "group",
        "instruction",
        "input",
        "output",
        "instruction_len",
        "input_len",
        "output_len",
        "output_matches_template",
    ],
    "chat": [
        "id",
        "group",
        "n_messages",
        "roles_known",
        "roles_alternate",
        "min_message_len",
        "max_message_len",
        "output_matches_template",
    ],
}


def _len(value: str | None) -> int | None:
    return None if value is None else len(value)


def records_frame(records: Sequence[Record], task: str, policy: DataPolicy) -> pd.DataFrame:
    """One row per record: the fields of ``task`` plus the computed columns the suite checks."""
    import pandas as pd

    check = _template_checker(policy)
    rows: list[dict[str, Any]] = []
    for r in records:
        row: dict[str, Any] = {"id": r.id, "group": r.group}
        if task == "classification":
            row.update(text=r.text, label=r.label, label_2=r.label_2, text_len=_len(r.text))
        elif task == "instruction":
            row.update(
                instruction=r.instruction,
                input=r.input,
                output=r.output,
                instruction_len=_len(r.instruction),
                input_len=len(r.input or ""),
                output_len=_len(r.output),
            )
            row["output_matches_template"] = check(r.output) if check else True
        else:
            msgs = r.messages
            roles = [m.role for m in msgs] if msgs is not None else []
            lens = [len(m.content) for m in msgs] if msgs else []
            row.update(
                n_messages=len(msgs) if msgs is not None else None,
                roles_known=all(role in CHAT_ROLES for role in roles),
                roles_alternate=roles_alternate(roles),
                min_message_len=min(lens) if lens else None,
                max_message_len=max(lens) if lens else None,
            )
            answer = r.target_text() if msgs else None
            row["output_matches_template"] = check(answer) if check else True
        rows.append(row)
    frame = pd.DataFrame(rows, columns=_COLUMNS[task])
    frame["is_exact_duplicate"] = _exact_duplicate_flags(records) if records else []
    for col in _INT_COLUMNS:
        if col in frame:
            frame[col] = frame[col].astype("Int64")
    return frame


# -- results ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class ExpectationOutcome:
    """One expectation's result: figures and unexpected record ids, never values."""

    check: str
    expectation_type: str
    severity: str
    success: bool
    column: str | None = None
    element_count: int | None = None
    unexpected_count: int | None = None
    missing_count: int | None = None
    unexpected_ids: list[str] = field(default_factory=list)
    observed_value: Any = None
    parameters: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


@dataclass(frozen=True)
class ValidationReport:
    """Every expectation of one suite run on one split."""

    suite: str
    task: str
    split: str
    n_records: int
    success: bool
    gx_version: str
    results: list[ExpectationOutcome]
    skipped: list[dict[str, str]] = field(default_factory=list)

    @property
    def failed(self) -> list[ExpectationOutcome]:
        return [r for r in self.results if not r.success]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def checks(self) -> list[CheckResult]:
        """The gate checks of this report: one summary check per split (see :meth:`to_check`)."""
        return [self.to_check()]

    def to_check(self) -> CheckResult:
        """This report as one gate check: fails when a critical expectation fails."""
        blocking = [r for r in self.failed if r.severity == "critical"]
        warn = [r for r in self.failed if r.severity != "critical"]
        bad_ids = {i for r in self.failed for i in r.unexpected_ids}
        figures = {
            "split": self.split,
            "suite": self.suite,
            "gx_version": self.gx_version,
            "n_records": self.n_records,
            "evaluated": len(self.results),
            "failed_checks": sorted(r.check for r in self.failed),
            "skipped_checks": sorted(s["check"] for s in self.skipped),
            "unexpected": {r.check: r.unexpected_count for r in self.failed},
            "unexpected_ids": id_list(bad_ids),
        }
        if self.failed:
            parts = [
                f"{r.check} ({r.unexpected_count if r.unexpected_count is not None else '-'})"
                for r in self.failed
            ]
            msg = f"{self.split}: {len(self.failed)} expectation(s) failed: " + ", ".join(parts)
            if bad_ids:
                msg += f"; ids {short_ids(bad_ids)}"
        else:
            msg = f"{self.split}: all {len(self.results)} expectations passed"
        if self.skipped:
            msg += f"; skipped {len(self.skipped)} (policy leaves them unset)"
        return CheckResult(
            name=f"expectations_{self.split}",
            passed=not blocking,
            figures=figures,
            message=msg,
            severity="error" if blocking or not warn else "warning",
        )


def _unexpected_ids(result: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for entry in result.get("unexpected_index_list") or []:
        value = entry.get("id") if isinstance(entry, dict) else None
        if isinstance(value, list):
            out.extend(str(v) for v in value)
        elif value is not None:
            out.append(str(value))
    return id_list(out)


def _observed(result: dict[str, Any]) -> Any:
    value = result.get("observed_value")
    return value if isinstance(value, (int, float, bool)) or value is None else str(value)


def run_expectations(
    records: Sequence[Record],
    task: str,
    policy: DataPolicy,
    *,
    split: str,
    suites_dir: Path | None = None,
) -> ValidationReport:
    """Run the ``task`` suite on ``records`` (one split) and report every expectation."""
    suite, skipped = load_suite(task, policy, directory=suites_dir)
    params = {k: v for k, v in suite_parameters(task, policy).items() if v is not None}
    frame = records_frame(records, task, policy)
    runner = gx_runner()
    result_format = {
        "result_format": "COMPLETE",
        "unexpected_index_column_names": ["id"],
        "exclude_unexpected_values": True,
        "return_unexpected_index_query": False,
    }
    with _lock:  # one GX context: serialize its batch registry
        try:
            batch = runner.batch_definition.get_batch(batch_parameters={"dataframe": frame})
            res = batch.validate(suite, expectation_parameters=params, result_format=result_format)
        except Exception as exc:
            raise StageError(
                f"Great Expectations could not run suite {suite.name!r} on {split}: {exc}"
            ) from exc
    by_check = {}
    for r in res.results:
        cfg = r.expectation_config
        check = cfg.meta.get("check", cfg.type)
        kwargs = {k: v for k, v in cfg.kwargs.items() if k not in ("batch_id", "column")}
        info = r.exception_info or {}
        raised = info.get("raised_exception") if isinstance(info, dict) else False
        result = r.result or {}
        by_check[check] = ExpectationOutcome(
            check=check,
            expectation_type=cfg.type,
            severity=str(getattr(cfg.severity, "value", cfg.severity)),
            success=bool(r.success),
            column=cfg.kwargs.get("column"),
            element_count=result.get("element_count"),
            unexpected_count=result.get("unexpected_count"),
            missing_count=result.get("missing_count"),
            unexpected_ids=_unexpected_ids(result),
            observed_value=_observed(result),
            parameters=json.loads(json.dumps(kwargs, default=str)),
            error=str(info.get("exception_message")) if raised else None,
        )
    ordered = [by_check[e.meta["check"]] for e in suite.expectations if e.meta["check"] in by_check]
    return ValidationReport(
        suite=suite.name,
        task=task,
        split=split,
        n_records=len(records),
        success=all(o.success for o in ordered),
        gx_version=runner.version,
        results=ordered,
        skipped=skipped,
    )
