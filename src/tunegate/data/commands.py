"""CLI commands of the data gate: ``prepare``, ``validate-policy``, ``demo-data``."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from tunegate.errors import InputError

console = Console()


def parse_field_overrides(values: list[str] | None) -> dict[str, str]:
    """``["label=category", ...]`` -> ``{"label": "category"}`` with a clear error on bad syntax."""
    out: dict[str, str] = {}
    for item in values or []:
        name, sep, column = item.partition("=")
        if not sep or not name.strip() or not column.strip():
            raise InputError(f"--field {item!r}: expected NAME=COLUMN, e.g. --field label=category")
        out[name.strip()] = column.strip()
    return out


def register(app: typer.Typer) -> None:
    """Add the data-gate commands to ``app``."""

    @app.command("prepare")
    def prepare_cmd(
        data: Path = typer.Argument(
            ...,
            help="Input: .jsonl, .json, .csv, .parquet or a datasets folder (UTF-8; a leading UTF-8 or "
            "UTF-16 byte-order mark is accepted).",
        ),
        task: str = typer.Option(..., "--task", help="classification | instruction | chat"),
        out: Path = typer.Option(..., "--out", help="The workdir; outputs go to WORKDIR/data/."),
        policy: Path | None = typer.Option(
            None, "--policy", help="Gate policy YAML (default: gates/default.yaml)."
        ),
        field: list[str] | None = typer.Option(None, "--field", help="Map a field to a column: NAME=COLUMN."),
        max_line_bytes: int = typer.Option(1 << 20, "--max-line-bytes", help="Largest line/row accepted."),
        refreeze: bool = typer.Option(
            False,
            "--refreeze",
            help="Freeze a hold-out other than the one the ledger records (needs --reason; ledgered).",
        ),
        reason: str | None = typer.Option(
            None, "--reason", help="Why the frozen hold-out is replaced (with --refreeze; ledgered)."
        ),
        input_format: str | None = typer.Option(
            None,
            "--format",
            help="Input layout when the file name does not say it: jsonl | json | csv | parquet | "
            "datasets | split-pairs (a JSON object of split -> [[text, label], ...], CLINC150's layout).",
        ),
        name: str | None = typer.Option(
            None,
            "--name",
            help="The dataset's name in records, reports and the ledger (default: a prefix of the "
            "input's sha256; the file name is never recorded).",
        ),
        policy_change_reason: str | None = typer.Option(
            None, "--policy-change-reason", help="Needed when --policy differs from the pinned policy."
        ),
    ) -> None:
        """Run the data gate: exit 0 when it passes, 1 when it fails (with reasons), 2 for unusable input."""
        from tunegate.data.prepare import prepare_data
        from tunegate.policy.pinned import resolve_policy

        pol = resolve_policy(out, policy, change_reason=policy_change_reason)
        result = prepare_data(
            data,
            task,
            out,
            policy=pol,
            fields=parse_field_overrides(field),
            max_line_bytes=max_line_bytes,
            refreeze=refreeze,
            reason=reason,
            name=name,
            input_format=input_format,
        )
        for action in result.recovered:
            console.print(f"[yellow]recovered an interrupted prepare:[/] {action}")
        table = Table(title=f"data gate: {'PASS' if result.passed else 'FAIL'}")
        for col in ("check", "result", "message"):
            table.add_column(col)
        for c in result.checks:
            mark = (
                "[green]pass[/]"
                if c.passed
                else ("[red]FAIL[/]" if c.severity == "error" else "[yellow]warn[/]")
            )
            table.add_row(c.name, mark, c.message)
        console.print(table)
        sizes = result.report["sizes"]
        if not result.report.get("outputs"):
            console.print("no splits were written")
        else:
            console.print(
                f"train {sizes['train']}, validation {sizes['validation']}, hold-out {sizes['holdout']} -> "
                f"{result.data_dir}"
            )
        if not result.passed:
            for reason in result.reasons:
                console.print(f"[red]blocking:[/] {reason}")
            raise typer.Exit(1)

    @app.command("validate-policy")
    def validate_policy_cmd(path: Path = typer.Argument(..., help="Policy YAML to check.")) -> None:
        """Check a policy file against its schema (exit 2 with every problem listed)."""
        from tunegate.policy.schema import load_policy

        pol = load_policy(path)
        console.print(f"{path}: valid policy '{pol.name}' (version {pol.version}), digest {pol.digest()}")

    @app.command("demo-data")
    def demo_data_cmd(
        out: Path = typer.Option(..., "--out", help="Where to write the synthetic tickets (.jsonl)."),
        n: int = typer.Option(600, "--n", min=1, help="How many tickets."),
        seed: int = typer.Option(7, "--seed", help="Faker and sampling seed."),
    ) -> None:
        """Write the synthetic support-ticket dataset (fake PII only) used by the demo and tests."""
        from tunegate.demo_data import write_demo_tickets

        write_demo_tickets(out, n, seed=seed)
        console.print(f"wrote {n} synthetic tickets to {out}")
