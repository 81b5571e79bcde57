"""The ``tunegate`` command line: a thin typer app over the library.

Exit codes: 0 pass, 1 a gate failed (with reasons), 2 unusable input or configuration.
Errors print as one readable message, never a traceback (set ``TUNEGATE_DEBUG=1`` for one).
"""

from __future__ import annotations

import os
import sys

import typer
from rich.console import Console
from rich.markup import escape

from tunegate import __version__
from tunegate.approval import commands as approval_commands
from tunegate.data import commands as data_commands
from tunegate.drift import commands as drift_commands
from tunegate.errors import TunegateError
from tunegate.evaluation import commands as evaluation_commands
from tunegate.pii import commands as pii_commands
from tunegate.training import commands as training_commands

err_console = Console(stderr=True)

app = typer.Typer(
    name="tunegate",
    help="A quality gate for LLM fine-tuning: clean data, a frozen hold-out, measured improvement, "
    "no regressions, a signed approval.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback(invoke_without_command=True)
def _root(
    version: bool = typer.Option(False, "--version", help="Print the version and exit."),
) -> None:
    if version:
        typer.echo(__version__)
        raise typer.Exit(0)


for _module in (
    data_commands,
    pii_commands,
    training_commands,
    evaluation_commands,
    approval_commands,
    drift_commands,
):
    _module.register(app)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: map tunegate errors to exit codes without tracebacks."""
    try:
        # standalone_mode=False *returns* the code of a typer.Exit instead of raising it.
        rv = app(args=argv, standalone_mode=False)
    except TunegateError as exc:
        if os.environ.get("TUNEGATE_DEBUG"):
            raise
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        err_console.print("aborted")
        sys.exit(130)
    except Exception as exc:  # click usage errors and the like
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(2)
        raise
    sys.exit(rv if isinstance(rv, int) else 0)


if __name__ == "__main__":
    main()
