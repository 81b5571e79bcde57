"""Promise: the command line contract (issue 10, item 12).

Exit 0 pass; 1 only "the gate failed / the approval was refused"; 2 "could not do it" (usage,
input, configuration, integrity, disk) with ONE ``error:`` line on stderr (a tunegate error may
add one ``hint:`` line) and never a traceback; ``--help`` exits 0. Every case runs the installed
``tunegate`` console script in a subprocess, as a user or a CI script would.
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest
from _safety_helpers import (
    Result,
    assert_clean_error,
    error_lines,
    file_size_limit,
    listing,
    run_tunegate,
)
from helpers.policies import mechanics_policy_file


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder, a file, a data file, and a workdir with one finished run (run.json only)."""
    root = tmp_path_factory.mktemp("cli")
    (root / "a_dir").mkdir()
    (root / "a_file").write_text("not a folder\n")
    rows = [{"text": f"ticket {i} about my card", "label": ["a", "b"][i % 2]} for i in range(40)]
    (root / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    run = root / "wd" / "runs" / "20261129T000000Z-lora"
    run.mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({"run_id": run.name, "name": "m", "method": "lora"}))
    return root


# (id, argv with {d} = scratch folder, expected code, texts the stderr must contain)
USAGE = [
    ("no-args", [], 2, ["missing command", "tunegate --help"]),
    ("group-no-args", ["audit"], 2, ["missing command", "tunegate audit --help"]),
    ("missing-argument", ["prepare"], 2, ["Missing argument", "tunegate prepare --help"]),
    ("missing-option-value", ["prepare", "{d}/data.jsonl", "--task"], 2, ["--task"]),
    ("missing-required-option", ["sign", "{d}/wd", "--decision", "approve"], 2, ["--key"]),
    ("unknown-option", ["--bogus"], 2, ["No such option: --bogus"]),
    ("unknown-sub-option", ["verify", "{d}/wd", "--bogus"], 2, ["--bogus", "tunegate verify --help"]),
    ("unknown-command", ["bogus"], 2, ["No such command 'bogus'"]),
    ("unknown-subcommand", ["audit", "bogus"], 2, ["No such command 'bogus'"]),
    ("not-an-int", ["plan", "--model", "llama-2-7b", "--seq-len", "abc"], 2, ["--seq-len"]),
    ("not-a-float", ["plan", "--model", "llama-2-7b", "--gpu-gb", "lots"], 2, ["--gpu-gb"]),
]

BAD_VALUES = [
    ("out-dir-for-file", ["demo-data", "--out", "{d}/a_dir", "--n", "5"], 2, ["a_dir", "directory"]),
    ("keygen-out-file", ["keygen", "--name", "bob", "--out", "{d}/a_file"], 2, ["a_file", "not a directory"]),
    ("policy-is-dir", ["validate-policy", "{d}/a_dir"], 2, ["a_dir", "directory"]),
    (
        "prepare-policy-is-dir",
        [
            "prepare",
            "{d}/data.jsonl",
            "--task",
            "classification",
            "--out",
            "{d}/wd2",
            "--policy",
            "{d}/a_dir",
        ],
        2,
        ["a_dir"],
    ),
    (
        "registry-is-file-promote",
        ["promote", "{d}/wd", "--registry", "{d}/a_file"],
        2,
        ["a_file", "--registry"],
    ),
    (
        "registry-is-file-verify",
        ["verify", "{d}/wd", "--registry", "{d}/a_file"],
        2,
        ["a_file", "--registry"],
    ),
    (
        "prepare-out-file",
        ["prepare", "{d}/data.jsonl", "--task", "classification", "--out", "{d}/a_file"],
        2,
        ["a_file"],
    ),
    ("merge-out-file", ["merge", "{d}/wd", "--out", "{d}/a_file"], 2, ["a_file", "not a directory"]),
    ("set-overflow", ["train", "{d}/wd", "--model", "x", "--set", "epochs=1e400"], 2, ["epochs", "finite"]),
    ("set-inf", ["train", "{d}/wd", "--model", "x", "--set", "learning_rate=inf"], 2, ["finite"]),
    ("set-nan", ["train", "{d}/wd", "--model", "x", "--set", "lora.alpha=nan"], 2, ["lora.alpha", "finite"]),
    ("set-neg-overflow", ["train", "{d}/wd", "--model", "x", "--set", "epochs=-1e999"], 2, ["finite"]),
    ("plan-gpu-inf", ["plan", "--model", "llama-2-7b", "--gpu-gb", "inf"], 2, ["gpu-gb", "finite"]),
    ("plan-gpu-overflow", ["plan", "--model", "llama-2-7b", "--gpu-gb", "1e400"], 2, ["gpu-gb"]),
    ("plan-gpu-nan", ["plan", "--model", "llama-2-7b", "--gpu-gb", "nan"], 2, ["gpu-gb"]),
    ("empty-path", ["validate-policy", ""], 2, ["directory"]),
    ("non-utf8-path", ["validate-policy", os.fsdecode(b"{d}/\xff\xfe.yaml")], 2, ["not found"]),
    ("set-no-equals", ["train", "{d}/wd", "--model", "x", "--set", "epochs"], 2, ["key=value"]),
    ("audit-verify-missing", ["audit", "verify", "{d}/nowhere"], 2, ["ledger.jsonl"]),
]


def _argv(argv: list[str], d: Path) -> list[str]:
    return [a.replace("{d}", str(d)) for a in argv]


@pytest.mark.parametrize(("argv", "code", "texts"), [c[1:] for c in USAGE], ids=[c[0] for c in USAGE])
def test_usage_error_is_one_line_exit_2(scratch: Path, argv: list[str], code: int, texts: list[str]) -> None:
    res = run_tunegate(*_argv(argv, scratch), cwd=scratch)
    assert_clean_error(res, code, contains=texts)
    assert len(error_lines(res)) == 1, str(res)


@pytest.mark.slow  # 15 subprocesses
@pytest.mark.parametrize(
    ("argv", "code", "texts"), [c[1:] for c in BAD_VALUES], ids=[c[0] for c in BAD_VALUES]
)
def test_bad_value_is_one_error_exit_2(scratch: Path, argv: list[str], code: int, texts: list[str]) -> None:
    # WORKDIR/logs/<command>.log is a command's diagnostic log (library output), not an output
    def outputs() -> dict[str, int]:
        return {k: v for k, v in listing(scratch).items() if "logs" not in Path(k).parts}

    before = outputs()
    res = run_tunegate(*_argv(argv, scratch), cwd=scratch)
    assert_clean_error(res, code, contains=texts)
    assert outputs() == before, "a refused command changed files"


@pytest.mark.parametrize(
    "argv", [["--help"], ["prepare", "--help"], ["audit", "repair", "--help"], ["--version"]]
)
def test_help_and_version_exit_0(argv: list[str]) -> None:
    res = run_tunegate(*argv)
    assert res.code == 0 and res.out.strip() and "Traceback" not in res.err, str(res)


def test_gate_refusal_keeps_exit_1(scratch: Path, tmp_path: Path) -> None:
    """Exit 1 stays "refused": a run without its report cannot be signed."""
    from tunegate.approval.keys import generate_keypair

    priv, _ = generate_keypair("alice", tmp_path / "keys")
    res = run_tunegate("sign", scratch / "wd", "--key", priv, "--decision", "approve", cwd=tmp_path)
    assert res.code == 1 and "Traceback" not in res.err, str(res)


def test_unexpected_exception_is_one_line_without_input_text(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug (an exception tunegate did not raise on purpose) exits 2 with one line naming its type
    and place, never its text (which may quote input data); TUNEGATE_DEBUG=1 shows the traceback."""
    import typer

    from tunegate import cli

    def boom() -> None:
        raise ValueError("could not parse 'jane.doe@example.com'")

    cli.app.command("zz-boom")(boom)
    try:
        monkeypatch.delenv("TUNEGATE_DEBUG", raising=False)
        lines: list[str] = []
        monkeypatch.setattr(cli, "_print_error", lines.append)
        assert cli.run_cli(["zz-boom"]) == 2
        assert len(lines) == 1 and "ValueError" in lines[0] and "TUNEGATE_DEBUG=1" in lines[0]
        assert "jane.doe" not in lines[0]
        monkeypatch.setenv("TUNEGATE_DEBUG", "1")
        with pytest.raises(ValueError):
            cli.run_cli(["zz-boom"])
    finally:
        cli.app.registered_commands[:] = [c for c in cli.app.registered_commands if c.callback is not boom]
    assert isinstance(cli.app, typer.Typer)


def test_closed_stdout_is_not_a_gate_failure(tmp_path: Path) -> None:
    """``tunegate ... | head`` closing the pipe early: exit 141 (as SIGPIPE), never 1 ("gate failed")."""
    import subprocess

    from _safety_helpers import base_env, tunegate_script

    read_end, write_end = os.pipe()
    os.close(read_end)  # every write to stdout now fails with EPIPE
    try:
        proc = subprocess.run(
            [tunegate_script(), "--help"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            env=base_env(),
            text=True,
            timeout=120,
        )
    finally:
        os.close(write_end)
    assert proc.returncode == 141, proc.stderr
    assert "Traceback" not in proc.stderr


def test_os_error_names_path_and_hint() -> None:
    from tunegate.cli import _describe_os_error

    text = _describe_os_error(OSError(errno.ENOSPC, "No space left on device", "/wd/data/train.jsonl"))
    assert text.startswith("/wd/data/train.jsonl: No space left on device") and "disk space" in text


@pytest.mark.slow
def test_prepare_on_full_disk_is_one_line_and_leaves_nothing(scratch: Path, tmp_path: Path) -> None:
    """Writes beyond 16 KiB fail (RLIMIT_FSIZE, the kernel's EFBIG: what ENOSPC is to a full disk):
    prepare exits 2 with one line, and leaves no data folder, no temp folder, input unchanged."""
    from tunegate.demo_data import write_demo_tickets

    data = tmp_path / "tickets.jsonl"
    write_demo_tickets(data, 300, seed=3)
    before = data.read_bytes()
    wd = tmp_path / "wd"
    fast = mechanics_policy_file(tmp_path)
    res: Result = run_tunegate(
        "prepare", data, "--task", "classification", "--out", wd, "--policy", fast,
        cwd=tmp_path, preexec_fn=file_size_limit(16 * 1024),
    )  # fmt: skip
    assert_clean_error(res, 2, contains=["File too large"])
    assert data.read_bytes() == before
    left = listing(wd) if wd.exists() else {}
    assert not any(k.startswith(("data", ".data")) for k in left), left
    # the same command without the limit completes: nothing half-done blocks it
    ok = run_tunegate(
        "prepare", data, "--task", "classification", "--out", wd, "--policy", fast, cwd=tmp_path
    )
    assert ok.code in (0, 1) and "Traceback" not in ok.err, str(ok)
    assert (wd / "data" / "holdout.manifest.json").is_file()
