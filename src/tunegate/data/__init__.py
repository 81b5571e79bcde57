"""tunegate.data: the data gate — format and size checks, duplicates, label agreement, and the
frozen hold-out (split, manifest, verification, leakage).

Modules: :mod:`~tunegate.data.config` (``DataPolicy``), :mod:`~tunegate.data.validate` (Great
Expectations suites), :mod:`~tunegate.data.duplicates`, :mod:`~tunegate.data.sizes`,
:mod:`~tunegate.data.agreement`, :mod:`~tunegate.data.split` (hold-out and manifest),
:mod:`~tunegate.data.leakage`, :mod:`~tunegate.data.results` (``CheckResult``),
:mod:`~tunegate.data.splits` (the one verified reader of a workdir's split files) and
:mod:`~tunegate.data.labels` (labels and closed fields are a closed set).

Names are exported lazily: ``tunegate.policy.schema`` imports ``DataPolicy`` on every policy load,
and that must not pay for pandas, scikit-learn or Great Expectations.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "DataPolicy": "config",
    "LengthBounds": "config",
    "CheckResult": "results",
    "DuplicateReport": "duplicates",
    "find_duplicates": "duplicates",
    "drop_duplicates": "duplicates",
    "check_duplicates": "duplicates",
    "normalize_text": "duplicates",
    "ValidationReport": "validate",
    "ExpectationOutcome": "validate",
    "run_expectations": "validate",
    "check_sizes": "sizes",
    "size_band": "sizes",
    "check_agreement": "agreement",
    "check_leakage": "leakage",
    "SplitResult": "split",
    "HoldoutManifest": "split",
    "split_records": "split",
    "freeze_holdout": "split",
    "write_holdout_manifest": "split",
    "load_holdout_manifest": "split",
    "verify_holdout": "split",
    "assert_not_in_holdout": "split",
    "read_split": "splits",
    "load_split": "splits",
    "seal_splits": "splits",
    "VerifiedSplit": "splits",
    "check_labels": "labels",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'tunegate.data' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"tunegate.data.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
