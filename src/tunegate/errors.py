"""One exception tree for tunegate.

::

    TunegateError                      base; ``exit_code`` says how the CLI exits
    ├── InputError          (exit 2)   unusable input: file, line and field are named
    ├── ConfigError         (exit 2)   a bad run config or policy value
    ├── DependencyError     (exit 2)   a configured model/package/key is missing (fail closed)
    ├── IntegrityError      (exit 2)   a digest, manifest, ledger or signature does not verify
    │   └── LeakageError               a hold-out record reached training
    ├── LockError           (exit 2)   another writer holds the workdir lock
    └── StageError          (exit 2)   a stage could not be evaluated (the gate fails closed)

A failing gate is *not* an exception: it is a result with reasons (exit 1).
Messages say where, what was expected, what was found and how to fix it. They never
contain raw record text: only field names, line numbers, entity types, counts and digests.
"""

from __future__ import annotations

from pathlib import Path


class TunegateError(Exception):
    """Base of every error tunegate raises on purpose."""

    exit_code: int = 2

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(message if hint is None else f"{message}\n  hint: {hint}")


class InputError(TunegateError):
    """Unusable input data. Names the file, the 1-based line (or row) and the field."""

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        line: int | None = None,
        field: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.path = str(path) if path is not None else None
        self.line = line
        self.field = field
        where = []
        if self.path is not None:
            where.append(self.path)
        if line is not None:
            where.append(f"line {line}")
        if field is not None:
            where.append(f"field '{field}'")
        prefix = ", ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message, hint=hint)


class ConfigError(TunegateError):
    """A run config or policy value is invalid."""


class DependencyError(TunegateError):
    """Something the configuration names is not installed or not available offline."""


class IntegrityError(TunegateError):
    """A digest, manifest, ledger entry or signature does not verify."""


class LeakageError(IntegrityError):
    """A frozen hold-out record would reach training or hyperparameter choice."""


class LockError(TunegateError):
    """Another process holds the workdir's writer lock."""


class StageError(TunegateError):
    """A stage could not produce its result; the gate fails closed."""


def param_error(owner: str, name: str, expected: str, got: object) -> ConfigError:
    """The one template for invalid parameters (scikit-learn style)."""
    return ConfigError(f"The '{name}' parameter of {owner} must be {expected}. Got {got!r} instead.")
