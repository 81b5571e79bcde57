"""tunegate.pii: PII detection and anonymization with Presidio (offline, keyed pseudonyms).

* :mod:`tunegate.pii.config` - :class:`PIIPolicy`, the ``pii:`` policy section.
* :mod:`tunegate.pii.detect` - :func:`build_analyzer` and batched span detection (what is detected).
* :mod:`tunegate.pii.recognizers` - EU recognizers Presidio lacks (PESEL, grouped IBAN, EU phones,
  obfuscated e-mail, Luhn cards) and name heuristics.
* :mod:`tunegate.pii.anonymize` - :class:`PIIEngine` and how pseudonyms are derived.
* :mod:`tunegate.pii.report` - :class:`PIIReport` (counts only, never a raw value).
* :mod:`tunegate.pii.keys` - :func:`load_pii_key` (``TUNEGATE_PII_KEY``).

Presidio and spaCy are heavy imports; they are loaded only when a function here is called, so
``import tunegate`` and CLI start-up stay fast. Names below resolve lazily.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tunegate.pii.anonymize import PIIEngine, normalize_value
    from tunegate.pii.config import PIIPolicy
    from tunegate.pii.detect import Span, build_analyzer
    from tunegate.pii.keys import load_pii_key
    from tunegate.pii.report import PIIReport

_EXPORTS = {
    "PIIPolicy": "tunegate.pii.config",
    "PIIEngine": "tunegate.pii.anonymize",
    "normalize_value": "tunegate.pii.anonymize",
    "Span": "tunegate.pii.detect",
    "build_analyzer": "tunegate.pii.detect",
    "load_pii_key": "tunegate.pii.keys",
    "PIIReport": "tunegate.pii.report",
}
__all__ = [
    "PIIEngine",
    "PIIPolicy",
    "PIIReport",
    "Span",
    "build_analyzer",
    "load_pii_key",
    "normalize_value",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'tunegate.pii' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
