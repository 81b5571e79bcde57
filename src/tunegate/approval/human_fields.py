"""The Annex IV fields only people can write (``WORKDIR/annex_iv_human.yaml``).

Its own module so that signing (which refuses a high-risk approval while a field is empty) does
not import the Annex IV renderer, which imports the report, which imports signing.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from tunegate.errors import InputError

HUMAN_FILE = "annex_iv_human.yaml"
#: field -> (Annex IV point, what to write)
HUMAN_FIELDS: dict[str, tuple[str, str]] = {
    "provider": ("1(a)", "Provider name and contact."),
    "intended_purpose": (
        "1(a)",
        "Intended purpose of the system, the persons it is used on, its context of use.",
    ),
    "human_oversight_measures": (
        "2(e), 3",
        "Human oversight measures under Art. 14 beyond the signed approval.",
    ),
    "known_limitations": (
        "3",
        "Foreseeable unintended outcomes, risks to health, safety and fundamental rights.",
    ),
    "risk_management": ("5", "The Art. 9 risk management system, or a reference to it."),
    "dpia_reference": ("2(d)", "Reference to the data protection impact assessment (GDPR Art. 35)."),
    "legal_basis": ("2(d)", "Legal basis for processing the training data."),
    "standards_applied": ("7", "Harmonised standards or other specifications applied."),
    "declaration_of_conformity": ("8", "Reference to the EU declaration of conformity (Art. 47)."),
    "post_market_monitoring": ("9", "The post-market monitoring plan (Art. 72)."),
}
PLACEHOLDER_RE = re.compile(
    r"^\s*(|todo|tbd|tbc|n/?a|none|fill ?in.*|placeholder|xxx+|\?+|-+|<.*>|\[.*\])\s*$", re.IGNORECASE
)
MARK = "HUMAN INPUT REQUIRED"


def human_template() -> str:
    lines = [
        "# EU AI Act Annex IV: fields only people can write. Replace every TODO.",
        "# Read by: tunegate annex-iv WORKDIR; a high-risk policy refuses approval while one is TODO.",
    ]
    for k, (point, what) in HUMAN_FIELDS.items():
        lines.append(f"# Annex IV {point}: {what}")
        lines.append(f"{k}: TODO")
    return "\n".join(lines) + "\n"


def read_human_fields(workdir: str | Path) -> dict[str, str]:
    p = Path(workdir) / HUMAN_FILE
    if not p.is_file():
        return {}
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise InputError("not valid YAML", path=p, line=mark.line + 1 if mark else None) from None
    if not isinstance(data, dict):
        raise InputError("expected a mapping of field: text", path=p)
    unknown = sorted(set(map(str, data)) - set(HUMAN_FIELDS))
    if unknown:
        raise InputError(f"unknown field(s) {unknown}; expected {sorted(HUMAN_FIELDS)}", path=p)
    return {str(k): "" if v is None else str(v) for k, v in data.items()}


def is_placeholder(text: str | None) -> bool:
    return text is None or bool(PLACEHOLDER_RE.match(text))


def missing_human_fields(workdir: str | Path) -> list[str]:
    fields = read_human_fields(workdir)
    return [k for k in HUMAN_FIELDS if is_placeholder(fields.get(k))]
