"""The README's two fresh-machine commands are the ones the project really runs."""

from __future__ import annotations

import re
from pathlib import Path

from typer.testing import CliRunner

from tunegate.cli import app

REPO = Path(__file__).resolve().parents[2]


def _bash_blocks(text: str) -> list[str]:
    return re.findall(r"```bash\n(.*?)```", text, flags=re.S)


def test_ci_runs_exactly_the_readme_test_command() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    blocks = _bash_blocks(readme)
    test_cmd = next(b.strip() for b in blocks if "pytest" in b)
    # README: `bash .ci/setup && . .venv/bin/activate && python -m pytest -q`
    steps = [s.strip() for s in test_cmd.split("&&")]
    ci = [
        ln.strip()
        for ln in (REPO / ".ci" / "run").read_text().splitlines()
        if ln.strip() and not ln.startswith("#")
    ]
    assert steps == ci[-3:], f"README test command {steps} != .ci/run tail {ci[-3:]}"


def test_readme_demo_command_exists() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    demo = next(b.strip() for b in _bash_blocks(readme) if "tunegate demo" in b)
    assert demo.startswith("bash .ci/setup && . .venv/bin/activate && tunegate demo")
    out = CliRunner().invoke(app, ["demo", "--help"])
    assert out.exit_code == 0 and "--out" in out.output


def test_every_command_in_the_readme_table_exists() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    names = set(re.findall(r"`tunegate ([a-z][a-z-]+)", readme))
    out = CliRunner().invoke(app, ["--help"])
    for name in sorted(names):
        assert name in out.output, f"README names `tunegate {name}` but the CLI has no such command"
