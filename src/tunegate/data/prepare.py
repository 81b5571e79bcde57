"""The data gate, end to end: ingest -> split -> anonymize -> check -> freeze -> write.

Order matters and is deliberate:

1. Fail closed *before reading data*: the policy validates, the PII key exists, the configured
   spaCy model is installed (never downloaded).
2. Ingest streams the input (precise errors for hostile input; the input is only read).
3. The hold-out is split off first, on the raw records, stratified and group-aware, so no later
   choice (dedup, thresholds) is made with the hold-out in view.
4. All splits are anonymized by one engine, so a value gets the same pseudonym everywhere; a
   residual re-scan counts what is left.
5. Checks: Great Expectations suites per split, duplicates, train/hold-out leakage, sizes, label
   agreement, residual PII. A failing check is a result with figures, not an exception.
6. Everything is written to a temp folder and renamed into ``WORKDIR/data`` in one step, so a
   failed run leaves no partial output; an existing frozen hold-out must verify and match.
7. One ledger event records input, output and policy digests.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunegate import ledger
from tunegate.data.duplicates import find_duplicates
from tunegate.data.labels import check_labels
from tunegate.data.results import CheckResult
from tunegate.data.split import (
    MANIFEST_NAME,
    check_leakage,
    split_records,
    verify_holdout,
    write_holdout_manifest,
)
from tunegate.data.splits import MANIFEST_KEY, REPORT_KEY, gate_outputs, last_prepare_event
from tunegate.data.validate import check_agreement, check_sizes, run_expectations
from tunegate.errors import InputError, IntegrityError, StageError
from tunegate.pii.anonymize import PIIEngine
from tunegate.pii.keys import load_pii_key
from tunegate.pii.report import PIIReport
from tunegate.policy.pinned import pin_policy
from tunegate.policy.schema import GatePolicy
from tunegate.provenance import (
    atomic_write_json,
    atomic_write_text,
    git_info,
    package_versions,
    sha256_file,
)
from tunegate.records import (
    DEFAULT_MAX_LINE_BYTES,
    Record,
    detect_format,
    input_digest,
    read_records,
    text_encoding,
    write_records,
)
from tunegate.workdir import check_name, data_dir, workdir_lock

REPORT_SCHEMA = 1
#: Records in, anonymized records (same order, same ids) and one counts-only report out.
Anonymizer = Callable[[list[Record]], tuple[list[Record], PIIReport]]
SPLITS = ("train", "validation", "holdout")


@dataclass(frozen=True)
class DataGateReport:
    """What ``prepare_data`` returns: the verdict, every check, and where the outputs are."""

    passed: bool
    checks: list[CheckResult]
    report: dict[str, Any]
    data_dir: Path
    #: what :func:`recover_data_swap` did at the start (empty when there was nothing to recover)
    recovered: tuple[str, ...] = ()

    @property
    def reasons(self) -> list[str]:
        return [f"{c.name}: {c.message}" for c in self.checks if c.blocking]


def _check_dicts(checks: Sequence[CheckResult]) -> list[dict[str, Any]]:
    return [c.to_dict() for c in checks]


def prepare_data(
    data: str | Path,
    task: str,
    out: str | Path,
    *,
    policy: GatePolicy,
    fields: Mapping[str, str] | None = None,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    refreeze: bool = False,
    reason: str | None = None,
    pii_key_file: Path | None = None,
    anonymizer: Anonymizer | None = None,
    name: str | None = None,
    input_format: str | None = None,
) -> DataGateReport:
    """Run the data gate on ``data`` and write ``out/data/``. See the module docstring.

    ``anonymizer`` replaces the in-process ``PIIEngine.anonymize_records`` call, e.g. with one
    that shards the records over a Dask cluster (``tunegate.pii.scale``); it must return the records
    in order with their ids kept, and one merged report.

    ``refreeze`` with a ``reason`` (both ledgered) is needed to freeze a hold-out other than the
    one the ledger records for this workdir, even when ``data/`` is gone.
    ``name`` names the dataset in records, reports and the ledger (default: the first 12 hex
    digits of the input's sha256); the input's file name and path are never recorded.
    ``input_format`` (``--format``) overrides detection by file name, e.g. ``split-pairs``.
    """
    src = Path(data)
    workdir = Path(out).absolute()  # a relative --out must not be joined onto itself below
    if refreeze and not (reason or "").strip():
        raise InputError("--refreeze needs --reason: replacing a frozen hold-out is recorded in the ledger")
    # 1. fail closed before touching data
    key = load_pii_key(allow_file=pii_key_file)
    engine = PIIEngine(policy.pii, key)
    engine.prepare()

    with workdir_lock(workdir, stage="prepare"):
        recovered = recover_data_swap(workdir)  # a swap a crash interrupted: the ledger decides
        # the workdir remembers its policy: pinned here, used by every later command
        pin_policy(workdir, policy, change_reason=(reason or "prepare --refreeze") if refreeze else None)
        # 2. ingest (the whole set is needed for a stratified split; the reader itself streams)
        src_digest = input_digest(src)
        dataset = check_name(name, "dataset name") if name else src_digest[:12]
        records = list(
            read_records(src, task, fields=fields, max_line_bytes=max_line_bytes, key=key, dataset=dataset,
                         fmt=input_format)
        )  # fmt: skip
        source = _source(src, dataset=dataset, digest=src_digest, rows=len(records), fmt=input_format)
        # labels and closed fields are codes: checked on the raw records, before anything is written
        label_check = check_labels(records, policy.data, engine.detect)
        if not label_check.passed:
            return _refuse(workdir, label_check, task=task, source=source, policy=policy,
                           recovered=recovered)  # fmt: skip

        # 3. split first, on raw records
        split = split_records(records, policy.data)

        # 4. anonymize every split with one engine call (consistent pseudonyms); the report
        #    includes the residual re-scan of the anonymized output
        all_raw = [*split.train, *split.validation, *split.holdout]
        anonymize = anonymizer or engine.anonymize_records
        anonymized, pii_report = anonymize(all_raw)
        if [r.id for r in anonymized] != [r.id for r in all_raw]:
            raise StageError("the anonymizer returned records out of order or changed their ids")
        n_tr, n_va = len(split.train), len(split.validation)
        parts = {
            "train": anonymized[:n_tr],
            "validation": anonymized[n_tr : n_tr + n_va],
            "holdout": anonymized[n_tr + n_va :],
        }

        # 5. checks
        checks: list[CheckResult] = [label_check]
        gx: dict[str, Any] = {}
        for name in SPLITS:
            if not parts[name]:
                continue
            vr = run_expectations(parts[name], task, policy.data, split=name)
            gx[name] = vr.to_dict()
            checks.extend(vr.checks())
        dup_reports: dict[str, Any] = {}
        for name in SPLITS:
            dr = find_duplicates(parts[name], policy.data)
            dup_reports[name] = dr.to_dict()
            checks.append(dr.check(split=name))
            if policy.data.drop_exact_duplicates:
                parts[name] = dr.drop(parts[name])
        checks.append(check_leakage([*parts["train"], *parts["validation"]], parts["holdout"], policy.data))
        checks.extend(
            check_sizes([*parts["train"], *parts["validation"]], parts["holdout"], task, policy.data)
        )
        checks.append(check_agreement(records, policy.data))
        violations = pii_report.violations(policy.pii)
        checks.append(
            CheckResult(
                name="residual_pii",
                passed=not violations,
                figures={
                    "residual": pii_report.residual_totals,
                    "max_residual": dict(policy.pii.max_residual),
                },
                message="; ".join(violations) or "no residual PII above the policy's limits after re-scan",
            )
        )
        if pii_report.regex_only:
            checks.append(
                CheckResult(
                    name="pii_regex_only",
                    passed=True,
                    severity="warning",
                    figures={"regex_only": True},
                    message="the policy allowed regex-only PII detection: names and locations are "
                    "NOT detected",
                )
            )
        passed = not any(c.blocking for c in checks)

        # 6. write everything into a temp folder, then swap it in
        final = data_dir(workdir)
        existing_manifest = final / MANIFEST_NAME
        if existing_manifest.exists() and not refreeze:
            verify_holdout(final)  # raises IntegrityError when the frozen hold-out changed
        frozen_event = last_prepare_event(workdir, with_output=MANIFEST_KEY)
        frozen = str(frozen_event["outputs"][MANIFEST_KEY]) if frozen_event else None
        tmp = Path(tempfile.mkdtemp(prefix=".data.", dir=workdir))
        try:
            outputs: dict[str, str] = {}
            for name in SPLITS:
                write_records(tmp / f"{name}.jsonl", parts[name])
            write_holdout_manifest(
                tmp,
                parts["holdout"],
                policy_digest=policy.digest(),
                seed=policy.data.seed,
                holdout_file=tmp / "holdout.jsonl",
                fractions={
                    "holdout": policy.data.holdout_fraction,
                    "validation": policy.data.validation_fraction,
                },
            )
            new_manifest = sha256_file(tmp / MANIFEST_NAME)
            replaces = frozen is not None and new_manifest != frozen
            if existing_manifest.exists() and not refreeze:
                old = existing_manifest.read_bytes()
                new = (tmp / MANIFEST_NAME).read_bytes()
                if old != new:
                    raise IntegrityError(
                        f"{existing_manifest}: a different hold-out is already frozen in this workdir "
                        "(inputs, seed or policy changed)",
                        hint="use a new workdir, or pass --refreeze --reason TEXT to replace it "
                        "(recorded in the ledger)",
                    )
            if replaces and not refreeze:
                raise IntegrityError(
                    f"{workdir}: the ledger records a frozen hold-out (manifest sha256 {frozen}, event "
                    f"#{frozen_event['seq'] if frozen_event else '?'}) and this run would freeze a different "
                    f"one (sha256 {new_manifest}); a frozen hold-out is never replaced silently, also not "
                    "when data/ was removed",
                    hint="use a new workdir, or pass --refreeze --reason TEXT (recorded in the ledger)",
                )
            for name in SPLITS:
                outputs[f"data/{name}.jsonl"] = sha256_file(tmp / f"{name}.jsonl")
            outputs[f"data/{MANIFEST_NAME}"] = sha256_file(tmp / MANIFEST_NAME)
            report = _build_report(
                source=source,
                task=task,
                policy=policy,
                parts=parts,
                checks=checks,
                passed=passed,
                pii=pii_report.to_json(),
                residual_ok=not violations,
                gx=gx,
                duplicates=dup_reports,
                manifest_sha256=outputs[f"data/{MANIFEST_NAME}"],
                outputs=outputs,
            )
            atomic_write_json(tmp / "data_report.json", report)
            atomic_write_text(tmp / "data_report.md", render_data_report_md(report))
            outputs["data/data_report.json"] = sha256_file(tmp / "data_report.json")
            if final.exists():
                backup = Path(tempfile.mkdtemp(prefix=".data.old.", dir=workdir))
                final.rename(backup / "data")
                tmp.rename(final)
                shutil.rmtree(backup, ignore_errors=True)
            else:
                tmp.rename(final)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)

        ledger.append_event(
            workdir,
            "prepare",
            inputs={"data": src_digest},
            outputs=outputs,
            config_digest=policy.digest(),
            details={
                "verdict": "pass" if passed else "fail",
                "task": task,
                "dataset": dataset,
                "counts": {k: len(v) for k, v in parts.items()},
                "pii_totals": pii_report.totals,
                "pii_residual": pii_report.residual_totals,
                "refreeze": (
                    {"reason": (reason or "").strip(), "replaced_manifest": frozen} if replaces else False
                ),
                **({"recovered": recovered} if recovered else {}),
            },
        )
    return DataGateReport(
        passed=passed, checks=checks, report=report, data_dir=final, recovered=tuple(recovered)
    )


_ENCODING_NOTES = {
    "utf-8-sig": "starts with a UTF-8 byte-order mark (as Excel's 'CSV UTF-8' writes); read as UTF-8",
    "utf-16": "is UTF-16 with a byte-order mark (as Excel's 'Unicode text' writes); decoded",
    "utf-32": "is UTF-32 with a byte-order mark; decoded",
}


def _source(src: Path, *, dataset: str, digest: str, rows: int, fmt: str | None) -> dict[str, Any]:
    """The report's record of the input: name, digest, rows, format and encoding (never the file name)."""
    kind = fmt or detect_format(src)
    out: dict[str, Any] = {"name": dataset, "sha256": digest, "rows": rows, "format": kind}
    if kind not in ("parquet", "datasets"):
        out["encoding"] = text_encoding(src)
        if out["encoding"] in _ENCODING_NOTES:
            out["note"] = f"the input {_ENCODING_NOTES[out['encoding']]}"
    return out


def _refuse(
    workdir: Path,
    check: CheckResult,
    *,
    task: str,
    source: dict[str, Any],
    policy: GatePolicy,
    recovered: Sequence[str],
) -> DataGateReport:
    """A gate failure found before any write: nothing is written to ``data/``; the ledger records it."""
    report = {
        "schema": REPORT_SCHEMA,
        "verdict": "fail",
        "task": task,
        "sources": [source],
        "policy_name": policy.name,
        "policy_digest": policy.digest(),
        "seed": policy.data.seed,
        "sizes": {"train": 0, "validation": 0, "holdout": 0, "labels": {}},
        "checks": _check_dicts([check]),
        "blocking": [f"{check.name}: {check.message}"],
        "holdout_manifest_sha256": None,
        "outputs": {},
    }
    ledger.append_event(
        workdir,
        "prepare",
        inputs={"data": source["sha256"]},
        outputs={},
        config_digest=policy.digest(),
        details={"verdict": "fail", "task": task, "dataset": source["name"], "refused": check.name},
    )
    return DataGateReport(
        passed=False, checks=[check], report=report, data_dir=data_dir(workdir), recovered=tuple(recovered)
    )


def recover_data_swap(workdir: Path) -> list[str]:
    """Finish or roll back a ``data/`` swap that a crash interrupted; return what was done.

    ``prepare`` writes the new outputs into ``.data.XXXX``, moves the old ``data/`` into
    ``.data.old.XXXX/data``, renames the new folder into place and *then* appends the ledger
    event. A crash leaves one or both leftovers behind. The ledger decides what is kept: the folder
    whose ``data_report.json`` is the one the newest ``prepare`` event records is put (or left) in
    place: that rolls back a swap the ledger never recorded, and finishes one it did. Every other
    leftover holds outputs no ledger event vouches for and is removed. A ``data/`` that matches no
    record is left untouched (reading it is refused by :func:`tunegate.data.splits.read_split`).
    """
    leftovers = sorted(
        p for p in workdir.iterdir() if p.name.startswith(".data.") and p.is_dir() and not p.is_symlink()
    )
    if not leftovers:
        return []
    recorded = gate_outputs(workdir).get(REPORT_KEY)

    def vouched(folder: Path) -> bool:
        report = folder / "data_report.json"
        return recorded is not None and report.is_file() and sha256_file(report) == recorded

    final = data_dir(workdir)
    actions: list[str] = []
    if not (final.is_dir() and vouched(final)):
        for cand in [p / "data" for p in leftovers if p.name.startswith(".data.old.")] + leftovers:
            if cand.is_dir() and vouched(cand):
                if final.exists():
                    shutil.rmtree(final)
                    actions.append("removed an unrecorded data/")
                cand.rename(final)
                actions.append(f"restored the recorded data/ from {cand.relative_to(workdir).as_posix()}")
                break
    for p in leftovers:
        if p.exists():
            shutil.rmtree(p)
            actions.append(f"removed leftover {p.name}")
    return actions


def _label_counts(records: Sequence[Record]) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in records:
        if r.label is not None:
            out[r.label] = out.get(r.label, 0) + 1
    return dict(sorted(out.items()))


def _build_report(
    *,
    source: dict[str, Any],
    task: str,
    policy: GatePolicy,
    parts: Mapping[str, Sequence[Record]],
    checks: Sequence[CheckResult],
    passed: bool,
    pii: dict[str, Any],
    residual_ok: bool,
    gx: dict[str, Any],
    duplicates: dict[str, Any],
    manifest_sha256: str,
    outputs: dict[str, str],
) -> dict[str, Any]:
    agreement = next((c.to_dict() for c in checks if c.name == "label_agreement"), None)
    return {
        "schema": REPORT_SCHEMA,
        "verdict": "pass" if passed else "fail",
        "task": task,
        # the dataset's name and digest only: a file name may itself hold personal data
        "sources": [source],
        "policy_name": policy.name,
        "policy_digest": policy.digest(),
        "seed": policy.data.seed,
        "sizes": {
            **{name: len(recs) for name, recs in parts.items()},
            "labels": {name: _label_counts(recs) for name, recs in parts.items()},
        },
        "checks": _check_dicts(checks),
        "blocking": [f"{c.name}: {c.message}" for c in checks if c.blocking],
        # `residual` is entity -> count (what the gate reads); per-field detail is kept beside it
        "pii": {
            **pii,
            "residual_by_field": pii.get("residual", {}),
            "residual": pii.get("residual_totals", {}),
            "residual_ok": residual_ok,
        },
        "gx": gx,
        "duplicates": duplicates,
        "agreement": agreement,
        "holdout_manifest_sha256": manifest_sha256,
        "outputs": outputs,
        "provenance": {"git": git_info(), "versions": package_versions()},
    }


def render_data_report_md(report: Mapping[str, Any]) -> str:
    """A short human-readable data report (figures only, no record text)."""
    lines = [
        f"# Data gate report: **{report['verdict'].upper()}**",
        "",
        f"- task: `{report['task']}`; policy `{report['policy_name']}` "
        f"(digest `{report['policy_digest'][:16]}`)",
        *(
            f"- dataset `{s['name']}`: {s['rows']} rows, sha256 `{s['sha256'][:16]}`"
            + (f" ({s['note']})" if s.get("note") else "")
            for s in report["sources"]
        ),
        f"- sizes: train {report['sizes']['train']}, validation {report['sizes']['validation']}, "
        f"hold-out {report['sizes']['holdout']}",
        (
            f"- hold-out manifest sha256 `{report['holdout_manifest_sha256']}`"
            if report.get("holdout_manifest_sha256")
            else "- no splits were written"
        ),
        "",
        "## Checks",
        "",
        "| check | result | severity | message |",
        "| --- | --- | --- | --- |",
    ]
    for c in report["checks"]:
        mark = "pass" if c["passed"] else "FAIL"
        msg = str(c.get("message", "")).replace("|", "\\|")
        lines.append(f"| {c['name']} | {mark} | {c['severity']} | {msg} |")
    pii = report.get("pii", {})
    lines += ["", "## PII (entity type: count)", ""]
    for ent, n in sorted((pii.get("totals") or {}).items()):
        lines.append(f"- {ent}: {n}")
    lines += ["", f"Residual after anonymization: {pii.get('residual') or {}}", ""]
    return "\n".join(lines) + "\n"
