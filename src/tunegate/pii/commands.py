"""CLI commands of tunegate.pii, registered on the main typer app by ``tunegate.cli``.

``tunegate anonymize IN --out OUT [--fields a,b] [--policy gates/default.yaml] [--report R.json]``
uses the same engine as ``tunegate prepare``: rows from :func:`tunegate.records.iter_rows`; every
string leaf at any depth (nested objects, lists, message lists) and every number that looks like
an identifier (:func:`tunegate.records.leaf_texts`) of the named fields (default: all) anonymized
and re-scanned, JSONL written atomically. It prints counts per entity and field only. Exit 1 if
the residual re-scan exceeds the policy, 2 on bad input, a missing model or a missing key.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import typer

#: Rows anonymized per engine call (pseudonyms stay consistent across chunks: one engine).
CHUNK_ROWS = 5_000


def _selected(path: str, fields: Sequence[str] | None) -> bool:
    """Whether ``--fields`` names this leaf: its top-level key, its family (``messages.content``)
    or a parent of it (``meta`` covers ``meta.contact.phone``)."""
    from tunegate.records import field_family, path_parts

    if fields is None:
        return True
    key, fam = path_parts(path)[0], field_family(path)
    return key in fields or any(fam == f or fam.startswith(f + ".") for f in fields)


def _row_items(row: dict[str, Any], ri: int, fields: Sequence[str] | None) -> Iterator[tuple[int, str, str]]:
    """Every string leaf and identifier-like number of the row at any depth, lists included."""
    from tunegate.records import leaf_texts

    for path, text in leaf_texts(row).items():
        if _selected(path, fields):
            yield ri, path, text


def same_file(src: Path, out: Path) -> bool:
    """True when ``out`` names the input itself: the same path, a symlink to it or a hard link."""
    import os

    try:
        if Path(os.path.realpath(src)) == Path(os.path.realpath(out)):
            return True
        return out.exists() and os.path.samefile(src, out)
    except OSError:
        return False


def anonymize_file(
    src: Path,
    out: Path,
    *,
    fields: Sequence[str] | None = None,
    policy_path: Path | None = None,
) -> tuple[Any, Any]:
    """Anonymize a data file to JSONL. Returns ``(PIIReport, PIIPolicy)``. Model and key are checked first."""
    from tunegate.errors import InputError
    from tunegate.pii.anonymize import PIIEngine, merge_reports
    from tunegate.policy.schema import load_policy
    from tunegate.provenance import atomic_path
    from tunegate.records import escape_key, iter_rows, key_texts, set_leaf

    if same_file(src, out):
        raise InputError(
            "the output is the input file; anonymizing in place would destroy the original",
            path=src.name,
            hint="write to a new file with --out, then replace the input yourself if you mean to",
        )
    policy = load_policy(policy_path).pii
    engine = PIIEngine(policy)
    engine.prepare(need_key=True)  # missing model or key: fail before reading any data
    reports = []
    with atomic_path(out) as tmp, tmp.open("w", encoding="utf-8") as fh:
        rows: list[dict[str, Any]] = []

        def flush() -> None:
            # a key holding PII would reach the output raw: the row is refused, nothing is written
            engine.refuse_pii_keys(
                [
                    (f"row {first_row + ri}", top, key)
                    for ri, row in enumerate(rows)
                    for top, key in key_texts(row)
                    if _selected(escape_key(top if top is not None else key), fields)
                ],
                source=src.name,
            )
            items = [it for ri, row in enumerate(rows) for it in _row_items(row, ri, fields)]
            items = [it for it in items if engine.selects(it[1], None)]
            new_texts, report = engine.anonymize_items(
                items, len(rows), record_ids=[f"row {first_row + i}" for i in range(len(rows))]
            )
            for (ri, path, _), text in zip(items, new_texts, strict=True):
                rows[ri] = set_leaf(rows[ri], path, text)
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")
            reports.append(report)
            rows.clear()

        first_row = 1
        for _, row in iter_rows(src):
            rows.append(row)
            if len(rows) >= CHUNK_ROWS:
                flush()
                first_row += CHUNK_ROWS
        flush()
    return merge_reports(reports), policy


def register(app: typer.Typer) -> None:
    """Add this area's commands to ``app``."""

    @app.command("anonymize")
    def anonymize(
        src: Path = typer.Argument(..., help="Input data: JSONL, JSON, CSV, Parquet or a datasets folder."),
        out: Path = typer.Option(..., "--out", "-o", help="Output JSONL file (written atomically)."),
        fields: list[str] | None = typer.Option(
            None,
            "--fields",
            help="Fields to anonymize, repeatable or comma-separated (default: every string and "
            "identifier-like number at any depth; 'meta' covers its nested leaves, 'messages.content' "
            "the contents of a chat message list).",
        ),
        policy: Path | None = typer.Option(None, "--policy", help="Gate policy YAML (default: shipped)."),
        report: Path | None = typer.Option(None, "--report", help="Also write the PII report JSON here."),
    ) -> None:
        """Detect and pseudonymize PII with Presidio (key from TUNEGATE_PII_KEY); print counts only."""
        from tunegate.provenance import atomic_write_json

        names = [n.strip() for f in fields for n in f.split(",") if n.strip()] if fields else None
        pii_report, pii_policy = anonymize_file(src, out, fields=names, policy_path=policy)
        for line in pii_report.summary_lines():
            typer.echo(line)
        if report is not None:
            atomic_write_json(report, pii_report.to_json())
        violations = pii_report.violations(pii_policy)
        if violations:
            for v in violations:
                typer.echo(f"FAIL residual PII: {v}", err=True)
            raise typer.Exit(1)
        typer.echo(f"wrote {out}")
