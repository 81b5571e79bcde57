"""CLI commands of tunegate.training, registered on the main typer app by ``tunegate.cli``."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this area's commands to ``app``."""
