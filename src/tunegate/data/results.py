"""The result type every data check returns.

A failing check is a result, not an exception (the gate decides what blocks): ``passed`` says
whether the check held, ``severity`` whether a failure blocks (``error``) or only warns
(``warning``). ``figures`` hold counts, rates and record *ids* — never record text, so a result can
go into a report, the ledger or an exception message without leaking data.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Severity = Literal["error", "warning"]

#: At most this many ids are listed in one figure; the full count is always given beside it.
MAX_IDS = 1000


@dataclass(frozen=True)
class CheckResult:
    """One data check's outcome: a name, whether it held, the figures behind it and a sentence."""

    name: str
    passed: bool
    figures: dict[str, Any] = field(default_factory=dict)
    message: str = ""
    severity: Severity = "error"

    @property
    def blocking(self) -> bool:
        """True when this result fails the gate."""
        return not self.passed and self.severity == "error"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def id_list(ids: Iterable[str], limit: int = MAX_IDS) -> list[str]:
    """Sorted, de-duplicated ids, capped at ``limit`` (callers report the full count separately)."""
    return sorted(set(ids))[:limit]


def short_ids(ids: Iterable[str], n: int = 5) -> str:
    """A few ids for a message: ``"3f2a9c1b0d4e, 77ab01cd9e2f (+3 more)"``."""
    items = sorted(set(ids))
    head = ", ".join(i[:12] for i in items[:n])
    return head + (f" (+{len(items) - n} more)" if len(items) > n else "")
