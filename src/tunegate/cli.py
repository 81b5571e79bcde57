"""The ``tunegate`` command line: a thin typer app over the library.

Exit codes: 0 pass, 1 a gate failed (with reasons), 2 unusable input or configuration.
Errors print as one readable message, never a traceback (set ``TUNEGATE_DEBUG=1`` for one).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

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

T = TypeVar("T")
err_console = Console(stderr=True)
out_console = Console()

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


def _load_flow(name: str, attr: str) -> Any:
    """The packaged ``flows/<name>.py`` (``tunegate.defaults``): works from a wheel, any directory."""
    from tunegate.defaults import load_flow_module

    # Prefect's temporary API server gets 20 s to start by default; on 2 busy cores it took longer
    # ("Timed out while attempting to connect to ephemeral Prefect API server").
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    return getattr(load_flow_module(name), attr)


@app.command("run")
def run_cmd(
    config: Path = typer.Argument(
        ..., help="Gate-run config YAML (example: gates/demo-run.yaml; `tunegate init DIR` writes one)."
    ),
) -> None:
    """Start the gate-run flow: prepare, baseline, train, evaluate, decide, report, approve, promote."""
    from tunegate.pipeline import load_gate_run_config
    from tunegate.workdir import workdir_lock

    cfg = load_gate_run_config(config)
    # Fail fast, before Prefect starts, when another gate-run holds this workdir (the flow
    # takes the same lock for real; this early probe only saves the server start-up).
    with workdir_lock(Path(cfg.workdir) / "pipeline", stage="gate-run"):
        pass
    gate = _load_flow("gate_run", "gate_run_flow")
    result = _stoppable(lambda: gate(cfg), resume=f"tunegate run {config}")
    _print_gate_result("gate-run", result)
    if result.get("stopped_at") is not None:
        raise typer.Exit(1)


def _stoppable(call: Callable[[], T], *, resume: str) -> T:
    """Run ``call``; on SIGTERM/SIGHUP end every child process, say where it stopped, exit 128+N
    (143 for SIGTERM, as a process killed by it would).

    The workdir lock and temp files are released by the unwinding ``with`` blocks; Prefect's
    temporary API server and any other child are ended here, so nothing outlives the run.
    """
    from tunegate.defaults import load_flow_module
    from tunegate.pipeline import GateRunStopped, end_child_processes, last_stage, stop_on_signals

    runtime = load_flow_module("_runtime")  # the Prefect side of stopping (flows/_runtime.py)
    runtime.bridge_prefect_sigterm()
    try:
        with stop_on_signals():
            return call()
    except GateRunStopped as stop:
        runtime.stop_prefect_services()
        ended = end_child_processes()
        where = last_stage()
        if not where:
            place = "before the first stage"
        elif where["finished"]:
            place = f"after stage '{where['stage']}' finished, in {where['workdir']}"
        else:
            place = f"during stage '{where['stage']}' (not recorded as complete), in {where['workdir']}"
        err_console.print(
            f"[bold]stopped[/] by {stop.signame} {escape(place)}; workdir lock released; "
            f"{len(ended)} child process(es) ended. Resume with: {escape(resume)} "
            "(completed stages verify and are skipped; training resumes from its last checkpoint)",
            highlight=False,
            soft_wrap=True,
        )
        # Everything a stop must release is released; interpreter teardown (torch, Prefect's
        # threads) took another 12-16 s on 2 cores, so leave now, the way a signal would.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(128 + stop.signum)


def _print_gate_result(title: str, result: dict[str, Any]) -> None:
    """The verdict, every gate check with its figures' summary, and the approval status."""
    import json

    stopped = result.get("stopped_at")
    decision = result.get("decide") or {}
    verdict = "PASS" if decision.get("passed") else ("FAIL" if decision else "not decided")
    out_console.print(
        f"[bold]{title}[/]: gate {verdict}; " + (f"stopped at {stopped}" if stopped else "promoted")
    )
    path = Path(result.get("workdir", "")) / "runs" / str(result.get("run_id")) / "decision.json"
    if decision and path.is_file():
        for check in json.loads(path.read_text(encoding="utf-8")).get("checks", []):
            mark = "pass" if check.get("passed") else "FAIL"
            out_console.print(
                f"  {mark} {check.get('name')}: {escape(str(check.get('message', '')))}", highlight=False
            )
    else:
        for reason in (result.get("prepare") or {}).get("reasons", []):
            out_console.print(f"  - {escape(str(reason))}", highlight=False)
    if stopped == "approval":
        for reason in (result.get("approval") or {}).get("reasons", []):
            out_console.print(f"  approval: {escape(str(reason))}", highlight=False)


@app.command("demo")
def demo_cmd(
    out: Path = typer.Option(Path("tunegate-demo"), "--out", help="Where every demo artifact is written."),
    model: Path | None = typer.Option(None, "--model", help="A local causal LM for the generation path."),
    no_full: bool = typer.Option(False, "--no-full", help="Skip the full fine-tuning comparison."),
    no_generation: bool = typer.Option(False, "--no-generation", help="Skip the causal-LM generation path."),
) -> None:
    """The whole gate offline on synthetic tickets: data gate, LoRA on MiniLM, sign, verify, promote."""
    import time

    from tunegate.demo import run_demo

    start = time.monotonic()
    gate = _load_flow("gate_run", "gate_run_flow")
    with out_console.status("running the demo (each stage is a Prefect task; see the log lines)"):
        summary = _stoppable(
            lambda: run_demo(
                out,
                gate,
                model=model,
                with_full=not no_full,
                with_generation=not no_generation,
                say=out_console.print,
            ),
            resume=f"tunegate demo --out {out}",
        )
    for key in ("classification", "classification_full", "generation"):
        if isinstance(summary.get(key), dict) and "workdir" in summary[key]:
            _print_gate_result(key, summary[key])
    _print_artifacts(Path(summary["out"]))
    out_console.print(f"demo finished in {time.monotonic() - start:.0f} s")
    cls = summary.get("classification") or {}
    if cls.get("stopped_at") is not None:
        raise typer.Exit(1)


@app.command("init")
def init_cmd(
    directory: Path = typer.Argument(..., help="New project folder (absent or empty)."),
    task: str = typer.Option(
        "classification", "--task", help="classification | instruction | chat: fits the policy to the model."
    ),
    example_data: bool = typer.Option(
        True, "--example-data/--no-example-data", help="Write synthetic example tickets (fake PII)."
    ),
) -> None:
    """Scaffold a team project: commented policy, approvers folder, gate-run config, flows, README."""
    from tunegate.defaults.project import scaffold_project
    from tunegate.errors import ConfigError

    if task not in ("classification", "instruction", "chat"):
        raise ConfigError(f"--task: expected classification, instruction or chat; got {task!r}")
    written = scaffold_project(directory, task=task, example_data=example_data)  # type: ignore[arg-type]
    root = directory.absolute()
    out_console.print(f"[bold]created[/] {escape(str(root))} ({len(written)} files):", highlight=False)
    for rel in ("README.md", "gate-run.yaml", "gates/policy.yaml", "gates/approvers/", "flows/prefect.yaml"):
        out_console.print(f"  {rel}", highlight=False)
    out_console.print(f"next: cd {escape(str(directory))} && tunegate run gate-run.yaml (see README.md)")


def _print_artifacts(out: Path) -> None:
    """One line per artifact, paths relative to the demo folder (so nothing is cut off)."""
    rows = [
        ("input data (synthetic, fake PII)", out / "input" / "tickets.jsonl"),
        ("data report", out / "classification" / "data" / "data_report.md"),
        ("frozen hold-out manifest", out / "classification" / "data" / "holdout.manifest.json"),
        ("audit ledger", out / "classification" / "audit" / "ledger.jsonl"),
        ("demo reviewer keys (private: keys/, trusted public: approvers/)", out / "keys"),
        ("registry", out / "registry"),
    ]
    for run_dir in sorted((out / "classification" / "runs").glob("*")):
        for name in (
            "run.json",
            "adapter",
            "evidence.json",
            "decision.json",
            "report.html",
            "report.pdf",
            "approvals",
        ):
            rows.append((f"run {run_dir.name}: {name}", run_dir / name))
    out_console.print(f"[bold]where everything is[/] (under {out}):")
    for label, path in rows:
        if path.exists():
            out_console.print(f"  {label}: {path.relative_to(out)}", highlight=False, soft_wrap=True)


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
