"""The PII report: counts per entity type and field family, never a raw value.

``counts`` are the detections that were anonymized; ``residual`` the detections the re-scan
found in the anonymized output. The policy's ``max_residual`` limits the latter per entity.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tunegate.pii.config import PIIPolicy

#: Residual locations kept in a report (record id, field path, entity; never the value).
MAX_LOCATIONS = 100


def _totals(counts: dict[str, dict[str, int]]) -> dict[str, int]:
    return {e: sum(per.values()) for e, per in sorted(counts.items())}


class PIIReport(BaseModel):
    """Counts only: entity types, field families and numbers. Safe to log, ledger and publish."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str = Field(description="spaCy pipeline used for NER ('regex-only' if none).")
    model_version: str | None = Field(None, description="Installed version of that pipeline.")
    language: str = "en"
    regex_only: bool = Field(False, description="True if NER was off (policy allow_regex_only).")
    entities: tuple[str, ...] = ()
    operators: dict[str, str] = Field(default_factory=dict, description="Operator per entity.")
    key_fingerprint: str | None = Field(None, description="Keyed digest of a constant: same key, same value.")
    records_scanned: int = 0
    texts_scanned: int = 0
    records_with_pii: int = 0
    counts: dict[str, dict[str, int]] = Field(
        default_factory=dict, description="entity -> field family -> detections anonymized."
    )
    residual: dict[str, dict[str, int]] = Field(
        default_factory=dict, description="entity -> field family -> detections left in the output."
    )
    residual_locations: list[dict[str, str]] = Field(
        default_factory=list,
        description=f"Where residuals are: record id, field path, entity (first {MAX_LOCATIONS}; no values).",
    )

    @property
    def totals(self) -> dict[str, int]:
        return _totals(self.counts)

    @property
    def residual_totals(self) -> dict[str, int]:
        return _totals(self.residual)

    def violations(self, policy: PIIPolicy) -> list[str]:
        """One readable line per entity whose residual count exceeds ``policy.max_residual``."""
        out = []
        residual = self.residual_totals
        for entity, limit in sorted(policy.max_residual.items()):
            found = residual.get(entity, 0)
            if found > limit:
                fields = ", ".join(f"{f}={n}" for f, n in sorted(self.residual.get(entity, {}).items()))
                where = [f"record {loc['record']} field {loc['field']}" for loc in self.residual_locations
                         if loc.get("entity") == entity][:3]  # fmt: skip
                out.append(
                    f"{entity}: {found} residual detection(s) after anonymization, the policy allows "
                    f"{limit} ({fields})" + (f"; e.g. {'; '.join(where)}" if where else "")
                )
        return out

    def residual_ok(self, policy: PIIPolicy) -> bool:
        return not self.violations(policy)

    def to_json(self) -> dict[str, Any]:
        data = self.model_dump(mode="json")
        data["totals"] = self.totals
        data["residual_totals"] = self.residual_totals
        return data

    def summary_lines(self) -> list[str]:
        """Human-readable summary (counts per entity and field only)."""
        head = f"PII: model {self.model}" + (f" {self.model_version}" if self.model_version else "")
        if self.regex_only:
            head += " (REGEX-ONLY: NER disabled by policy)"
        lines = [
            head,
            f"  records scanned: {self.records_scanned}, texts: {self.texts_scanned}, "
            f"records with PII: {self.records_with_pii}",
        ]
        if not self.counts:
            lines.append("  no PII detected")
        for entity, per in sorted(self.counts.items()):
            fields = ", ".join(f"{f}={n}" for f, n in sorted(per.items()))
            lines.append(f"  {entity}: {sum(per.values())} ({fields})")
        res = self.residual_totals
        lines.append(
            "  residual after anonymization: "
            + (", ".join(f"{e}={n}" for e, n in res.items() if n) or "none")
        )
        return lines
