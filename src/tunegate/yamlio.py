"""The one YAML -> pydantic loader: policies, run configs, gate-run configs, Annex IV inputs.

One error format for all of them::

    gates/x.yaml: not found
    gates/x.yaml line 4: is not valid YAML (mapping values are not allowed here)
    gates/x.yaml: the policy is invalid:
      data.holdout_fraction: Input should be less than 0.5

A path that is a directory, unreadable or not UTF-8 is a :class:`~tunegate.errors.ConfigError`
too, never a traceback.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from tunegate.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


def read_yaml_mapping(path: str | Path, *, what: str = "config", hint: str | None = None) -> dict[str, Any]:
    """Parse ``path`` as a YAML mapping (an empty file is ``{}``), with one-line errors."""
    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"{p}: is a directory, expected a {what} YAML file", hint=hint)
    if not p.is_file():
        raise ConfigError(f"{p}: {what} file not found", hint=hint)
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{p}: {what} file is not UTF-8 text") from None
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read the {what} file ({exc.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None)
        raise ConfigError(f"{p}{where}: is not valid YAML" + (f" ({problem})" if problem else "")) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: a {what} must be a YAML mapping, got {type(data).__name__}")
    return data


def format_validation_error(
    source: str, exc: ValidationError, *, what: str = "config", show_input: bool = False
) -> str:
    """``source: the <what> is invalid:`` then one ``  loc: message`` line per problem
    (``(got <value>)`` appended with ``show_input``: configs, never data records)."""
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "<root>"
        got = f" (got {err.get('input')!r})" if show_input and err.get("type") != "missing" else ""
        lines.append(f"  {loc}: {err['msg']}{got}")
    return f"{source}: the {what} is invalid:\n" + "\n".join(lines)


def validate_mapping(
    model: type[M], data: Mapping[str, Any], *, source: str, what: str = "config", show_input: bool = False
) -> M:
    """``model.model_validate(data)`` with the one error format."""
    try:
        return model.model_validate(dict(data))
    except ValidationError as exc:
        raise ConfigError(format_validation_error(source, exc, what=what, show_input=show_input)) from None


def load_yaml_model(path: str | Path, model: type[M], *, what: str = "config", hint: str | None = None) -> M:
    """Read a YAML mapping from ``path`` and validate it as ``model``."""
    return validate_mapping(model, read_yaml_mapping(path, what=what, hint=hint), source=str(path), what=what)
