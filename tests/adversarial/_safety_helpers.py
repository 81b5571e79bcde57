"""Helpers of the safety tests (CLI contract, ledger durability, fault injection).

Every test here drives the real ``tunegate`` console script in a subprocess, so what is checked
is what a user or a script sees: the exit status, stdout, stderr, and the files left behind.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SRC = REPO / "src"
TEST_PII_KEY = "tunegate-test-key-not-secret-0123456789"


def tunegate_script() -> str:
    """The installed console script (``[project.scripts] tunegate``) of this interpreter."""
    beside = Path(sys.executable).parent / "tunegate"
    found = str(beside) if beside.is_file() else shutil.which("tunegate")
    if found is None:
        raise RuntimeError("the tunegate console script is not installed (pip install -e .)")
    return found


def base_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The test process's environment, with this checkout's sources first and no fault/debug vars."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TUNEGATE_FAULT", "TUNEGATE_DEBUG"))}
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), *filter(None, [env.get("PYTHONPATH")])])
    env.setdefault("TUNEGATE_PII_KEY", TEST_PII_KEY)
    env["COLUMNS"] = "200"
    env["TUNEGATE_CPU_THREADS"] = "1"
    env.update(extra or {})
    return env


def file_size_limit(limit_bytes: int) -> Callable[[], None]:
    """A ``preexec_fn`` that makes writes beyond ``limit_bytes`` fail with EFBIG (as a full disk
    fails with ENOSPC): the real mechanism, ``RLIMIT_FSIZE``, with SIGXFSZ ignored."""

    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    return apply


@dataclass(frozen=True)
class Result:
    args: tuple[str, ...]
    code: int
    out: str
    err: str

    def __str__(self) -> str:
        return (
            f"tunegate {' '.join(self.args)} -> {self.code}\n--- stdout\n{self.out}\n--- stderr\n{self.err}"
        )


def run_tunegate(
    *args: str | Path,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    preexec_fn: Callable[[], None] | None = None,
    timeout: float = 300,
) -> Result:
    argv = tuple(str(a) for a in args)
    proc = subprocess.run(
        [tunegate_script(), *argv],
        cwd=cwd,
        env=base_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=preexec_fn,
    )
    return Result(argv, proc.returncode, proc.stdout, proc.stderr)


def error_lines(res: Result) -> list[str]:
    return [line for line in res.err.splitlines() if line.strip()]


def assert_clean_error(res: Result, code: int = 2, *, contains: Sequence[str] = ()) -> None:
    """Exit ``code``, no traceback anywhere, one ``error:`` message on stderr: its first line starts
    with ``error: ``, any further line is an indented detail or ``hint:`` of that one error (a
    config error lists every bad field); and each of ``contains`` in that message."""
    assert res.code == code, str(res)
    assert "Traceback" not in res.out + res.err, str(res)
    lines = error_lines(res)
    assert lines and lines[0].startswith("error: "), str(res)
    assert all(line.startswith((" ", "\t")) for line in lines[1:]), str(res)
    for text in contains:
        assert text in res.err, f"{text!r} not in the error\n{res}"


def listing(root: Path) -> dict[str, int]:
    """Relative path -> size of every file and folder under ``root`` (folders: -1)."""
    out: dict[str, int] = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        out[rel] = p.stat().st_size if p.is_file() and not p.is_symlink() else -1
    return out
