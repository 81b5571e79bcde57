"""The ``tunegate`` command line: a thin typer app over the library.

Exit codes (docs/operations.md): 0 pass; 1 a gate failed or an approval was refused (a result,
with reasons); 2 the command could not do its work: a usage error, unusable input or
configuration, an integrity failure, a full disk, or an unexpected internal error; 130
interrupted. Errors print as one ``error:`` message on stderr, never a traceback: set
``TUNEGATE_DEBUG=1`` for one. An unexpected exception prints its type and place only, not its
text, which may quote input data.
"""

from __future__ import annotations

import contextlib
import errno
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
from tunegate.console import USER_STDERR
from tunegate.data import commands as data_commands
from tunegate.drift import commands as drift_commands
from tunegate.errors import TunegateError
from tunegate.evaluation import commands as evaluation_commands
from tunegate.pii import commands as pii_commands
from tunegate.training import commands as training_commands
from tunegate.workdir import audit_dir, data_dir, manifest_path, pipeline_dir, runs_dir

T = TypeVar("T")
# tunegate's own messages reach the user's stderr even while library output goes to WORKDIR/logs
err_console = Console(file=USER_STDERR)
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
    verbose: bool = typer.Option(
        False, "--verbose", help="Show library messages (model loading, warnings) instead of logging them."
    ),
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
    with workdir_lock(pipeline_dir(cfg.workdir), stage="gate-run"):
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


STAGE_ORDER = ("prepare", "baseline", "train", "evaluate", "decide", "report")


def _print_gate_result(title: str, result: dict[str, Any]) -> None:
    """The verdict, every gate check with its figures' summary, and the approval status."""
    import json

    stopped = result.get("stopped_at")
    decision = result.get("decide") or {}
    verdict = "PASS" if decision.get("passed") else ("FAIL" if decision else "not decided")
    out_console.print(
        f"[bold]{title}[/]: gate {verdict}; " + (f"stopped at {stopped}" if stopped else "promoted")
    )
    # which stages ran and which were skipped because their inputs and outputs verified
    stages = [s for s in STAGE_ORDER if isinstance(result.get(s), dict) and "skipped" in result[s]]
    if stages:
        out_console.print(
            "  stages: "
            + ", ".join(f"{s} {'skipped (verified)' if result[s]['skipped'] else 'ran'}" for s in stages),
            highlight=False,
            soft_wrap=True,
        )
    path = runs_dir(result.get("workdir", "")) / str(result.get("run_id")) / "decision.json"
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
        ("data report", data_dir(out / "classification") / "data_report.md"),
        ("frozen hold-out manifest", manifest_path(out / "classification")),
        ("audit ledger", audit_dir(out / "classification") / "ledger.jsonl"),
        ("demo reviewer keys (private: keys/, trusted public: approvers/)", out / "keys"),
        ("registry", out / "registry"),
    ]
    for run_dir in sorted(runs_dir(out / "classification").glob("*")):
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


#: Exit codes of every command (docs/operations.md repeats this table).
EXIT_OK, EXIT_GATE_FAILED, EXIT_ERROR, EXIT_INTERRUPTED, EXIT_BROKEN_PIPE = 0, 1, 2, 130, 141
DEBUG_ENV = "TUNEGATE_DEBUG"

#: OSError numbers that mean "the machine said no" (disk, permissions, path kinds): a one-line
#: error naming the path, never a traceback.
_OS_HINTS = {
    errno.ENOSPC: "free some disk space and run the command again; nothing was acknowledged",
    errno.EDQUOT: "free some disk space (quota) and run the command again",
    errno.EFBIG: "the file size limit was reached (ulimit -f); raise it and run the command again",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "check the permissions of this path",
    errno.EPERM: "check the permissions of this path",
    errno.EISDIR: "this path is a directory; give a file path",
    errno.ENOTDIR: "a part of this path is a file; give a directory path",
    errno.EEXIST: "this path already exists; choose another one or remove it",
    errno.ENOENT: "check that this path exists",
}


def _one_line(text: str) -> str:
    return "; ".join(part.strip() for part in str(text).splitlines() if part.strip())


def _print_error(message: str) -> None:
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)


def _usage_error_exceptions() -> tuple[type[BaseException], ...]:
    """typer's vendored click (``typer._click``) and, when present, the standalone click."""
    classes: list[type[BaseException]] = []
    try:
        from typer._click.exceptions import ClickException as TyperClickException

        classes.append(TyperClickException)
    except ImportError:  # older typer: it raises the standalone click's exceptions
        pass
    try:
        import click

        classes.append(click.ClickException)
    except ImportError:
        pass
    return tuple(classes)


def _describe_usage_error(exc: BaseException) -> str:
    ctx = getattr(exc, "ctx", None)
    path = getattr(ctx, "command_path", None) or "tunegate"
    if type(exc).__name__ == "NoArgsIsHelpError":
        return f"missing command: run '{path} --help' for the list of commands"
    text = exc.format_message() if hasattr(exc, "format_message") else str(exc)
    hint = f" (see '{path} --help')" if ctx is not None else ""
    return _one_line(text) + hint


def _describe_os_error(exc: OSError) -> str:
    where = [str(p) for p in (exc.filename, exc.filename2) if p is not None]
    what = exc.strerror or _one_line(str(exc)) or type(exc).__name__
    text = f"{' -> '.join(where)}: {what}" if where else what
    hint = _OS_HINTS.get(exc.errno or -1)
    return f"{text} ({hint})" if hint else text


def _describe_unexpected(exc: BaseException) -> str:
    """Type and place only: an unexpected exception's text may quote input data (PII)."""
    import traceback

    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if "tunegate" in f.filename] or frames
    where = f" at {Path(ours[-1].filename).name}:{ours[-1].lineno}" if ours else ""
    return (
        f"internal error: {type(exc).__name__}{where} (a tunegate bug or an unhandled case; "
        f"set {DEBUG_ENV}=1 for a traceback, which may quote input data)"
    )


def _broken_pipe() -> int:
    """stdout was closed early (``tunegate ... | head``): exit like a process ended by SIGPIPE."""
    with contextlib.suppress(OSError, ValueError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return EXIT_BROKEN_PIPE


_OUT_IS_WORKDIR = frozenset({"prepare", "demo"})


def _command_and_workdir(args: list[str]) -> tuple[str | None, Path | None]:
    """The command name, and its workdir when the arguments name one (``--out DIR`` or an
    existing folder as the first argument); commands can bind it later (console.bind_workdir)."""
    pos = [a for a in args if not a.startswith("-")]
    command = pos[0] if pos and pos[0] in {c.name for c in app.registered_commands} else None
    if command is None and pos and any(g.name == pos[0] for g in app.registered_groups):
        command = pos[0]
    if command is None:
        return None, None
    # only where --out *is* a workdir, and only once it exists: a log must never be the first
    # thing written into a folder a command then refuses (no partial output)
    outs = [args[i + 1] for i, a in enumerate(args[:-1]) if a == "--out"]
    outs += [a.split("=", 1)[1] for a in args if a.startswith("--out=")]
    if command in _OUT_IS_WORKDIR and outs and Path(outs[-1]).is_dir():
        return command, Path(outs[-1])
    rest = pos[1:]
    if rest and any((Path(rest[0]) / d).is_dir() for d in ("data", "runs", "audit")):
        return command, Path(rest[0])  # an existing workdir (not, say, a model folder)
    return command, None


def run_cli(argv: list[str] | None = None) -> int:
    """Run one command and return its exit code; never raises (except with TUNEGATE_DEBUG set).

    0 pass; 1 a gate failed or an approval was refused (a result, with reasons); 2 the command
    could not do its work (usage, input, configuration, integrity, disk, or an internal error);
    130 interrupted. Errors print as one ``error:`` line (plus a ``hint:`` line for tunegate's
    own errors) on stderr.
    """
    from tunegate.console import library_output

    debug = bool(os.environ.get(DEBUG_ENV))
    usage_errors = _usage_error_exceptions()
    args = list(sys.argv[1:] if argv is None else argv)
    command, workdir = _command_and_workdir(args)
    try:
        # library noise (model-loading tables, FutureWarnings, tqdm bars) -> WORKDIR/logs/<command>.log
        with library_output(workdir, command=command, verbose="--verbose" in args or command is None):
            # standalone_mode=False *returns* the code of a typer.Exit instead of raising it.
            rv = app(args=args, standalone_mode=False, prog_name="tunegate")
    except TunegateError as exc:
        if debug:
            raise
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        return exc.exit_code
    except typer.Exit as exc:
        return int(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        err_console.print("aborted")
        return EXIT_INTERRUPTED
    except usage_errors as exc:  # usage errors: missing/unknown argument, option or command
        _print_error(_describe_usage_error(exc))
        return EXIT_ERROR
    except BrokenPipeError:
        return _broken_pipe()
    except SystemExit as exc:
        # rich and typer turn a broken pipe into exit 1, which means "gate failed" here
        ctx = exc.__context__
        if isinstance(ctx, OSError) and ctx.errno == errno.EPIPE:
            return _broken_pipe()
        raise
    except OSError as exc:
        if debug:
            raise
        _print_error(_describe_os_error(exc))
        return EXIT_ERROR
    except Exception as exc:
        if debug:
            raise
        _print_error(_describe_unexpected(exc))
        return EXIT_ERROR
    return rv if isinstance(rv, int) else EXIT_OK


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: map tunegate errors to exit codes without tracebacks."""
    sys.exit(run_cli(argv))


if __name__ == "__main__":
    main()
