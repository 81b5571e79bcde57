"""What the user sees on the console: tunegate's progress and findings; library noise goes to a log.

Libraries write a lot to stderr while tunegate works: transformers' "LOAD REPORT" tables,
``FutureWarning``\\ s, bitsandbytes' kernel warnings, Prefect's server notes, raw tqdm bars.
:func:`library_output` moves all of it into ``WORKDIR/logs/<command>.log`` (``--verbose`` keeps
it on the console):

* ``sys.stderr`` is replaced by a stream that, while the context is open, sends what libraries
  write to the log file and what tunegate writes (its errors, warnings, echo lines) to the
  terminal; the writer is the first frame outside logging/warnings/click/rich. Logging
  handlers, ``warnings`` and tqdm resolve ``sys.stderr`` when they are created or when they
  write, so what libraries set up or print inside the context lands in the log;
* Python warnings are captured into logging (``py.warnings``), and the library loggers that
  exist already (transformers, bitsandbytes, prefect, ...) get the log file as their handler.

tunegate's own messages go to :func:`user_stream` (the real terminal). :class:`Progress` prints a
rich bar with ETA on a terminal and plain periodic lines ("train: 40/200 (20%), 1m02s elapsed,
about 4m10s left") when output goes to a file or a pipe, so a log is never silent for long.

The workdir is often known only once a command parsed its arguments: output is buffered in
memory until :func:`bind_workdir` names it (or written to a temporary log when none is named).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from tunegate.workdir import logs_dir

#: loggers of the libraries whose messages belong in the log, not on the console
NOISY_LOGGERS = (
    "transformers",
    "accelerate",
    "peft",
    "bitsandbytes",
    "datasets",
    "huggingface_hub",
    "torch",
    "lm_eval",
    "prefect",
    "httpx",
    "urllib3",
    "presidio-analyzer",
    "presidio-anonymizer",
    "great_expectations",
    "evaluate",
    "py.warnings",
)
ENV_VERBOSE = "TUNEGATE_VERBOSE"
#: seconds between plain progress lines when output is not a terminal
PLAIN_INTERVAL = 30.0


class _LogStream(io.TextIOBase):
    """A text stream that buffers until a file is bound, then appends to it."""

    def __init__(self) -> None:
        self._buf: list[str] = []
        self._fh: IO[str] | None = None
        self.path: Path | None = None
        self.chars = 0

    def bind(self, path: Path) -> None:
        if self._fh is not None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed by close()
        self.path = path
        self._fh.write(f"--- {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} pid {os.getpid()}\n")
        self._fh.write("".join(self._buf))
        self._buf.clear()
        self._fh.flush()

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False  # libraries then draw no carriage-return animations into the log

    def write(self, s: str) -> int:
        self.chars += len(s)
        if self._fh is not None:
            self._fh.write(s)
        else:
            self._buf.append(s)
        return len(s)

    def flush(self) -> None:
        if self._fh is not None:
            self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        super().close()


#: modules a write passes through on its way from the code that wrote it
_VIA = frozenset(("logging", "warnings", "io", "_io", "codecs", "click", "typer", "rich", "contextlib"))


def _written_by_tunegate(depth: int = 2) -> bool:
    """Whether the first frame outside the plumbing (logging, warnings, click, rich) is tunegate's."""
    f: Any = sys._getframe(depth)
    for _ in range(40):
        if f is None:
            break
        name = str(f.f_globals.get("__name__", ""))
        if name != __name__ and name.split(".")[0] not in _VIA:
            return name.split(".")[0] == "tunegate"
        f = f.f_back
    return False


class _Redirect(io.TextIOBase):
    """Stands in for ``sys.stderr`` while active: what tunegate writes goes to the real stream,
    what libraries write goes to the log. After the context, everything goes to the real stream."""

    def __init__(self, real: IO[str], log: _LogStream) -> None:
        self.real, self.log, self.active = real, log, True

    @property
    def _target(self) -> IO[str]:
        return self.log if self.active and not self.log.closed else self.real  # type: ignore[return-value]

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return self._target.isatty()

    def fileno(self) -> int:
        return self.real.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.real, "encoding", "utf-8")

    def write(self, s: str) -> int:
        if self.active and _written_by_tunegate():
            return self.real.write(s)
        return self._target.write(s)

    def flush(self) -> None:
        self._target.flush()
        self.real.flush()


_state: dict[str, Any] = {"log": None, "real": None, "command": "tunegate"}


def user_stream() -> IO[str]:
    """Where tunegate's own progress and findings go: the real stderr, even inside the context."""
    real = _state.get("real")
    return real if real is not None else sys.stderr


class _UserStderr:
    """A file-like view of :func:`user_stream` resolved at each write, for a rich ``Console`` that
    must reach the user even while library output is captured (errors, stop messages)."""

    def write(self, text: str) -> int:
        return user_stream().write(text)

    def flush(self) -> None:
        user_stream().flush()

    def isatty(self) -> bool:
        return bool(getattr(user_stream(), "isatty", lambda: False)())

    def fileno(self) -> int:
        return user_stream().fileno()

    @property
    def encoding(self) -> str:
        return getattr(user_stream(), "encoding", None) or "utf-8"


#: tunegate's own stderr: the terminal (or the caller's stderr), never the library log.
USER_STDERR = _UserStderr()


def log_path() -> Path | None:
    log = _state.get("log")
    return log.path if log is not None else None


def bind_workdir(workdir: str | Path) -> Path | None:
    """Send the captured library output to ``WORKDIR/logs/<command>.log`` (buffered until now)."""
    log: _LogStream | None = _state.get("log")
    if log is None or log.closed:
        return None
    log.bind(logs_dir(workdir) / f"{_state['command']}.log")
    return log.path


def is_verbose(verbose: bool | None = None) -> bool:
    if verbose is not None:
        return verbose
    return os.environ.get(ENV_VERBOSE, "").strip().lower() in ("1", "true", "yes", "on")


@contextlib.contextmanager
def library_output(
    workdir: str | Path | None = None, *, command: str = "tunegate", verbose: bool | None = None
) -> Iterator[Path | None]:
    """Capture library output into ``WORKDIR/logs/<command>.log`` for the duration (a no-op with
    ``verbose``). Yields nothing useful until a workdir is bound; see :func:`log_path`."""
    if is_verbose(verbose) or _state.get("log") is not None:
        yield None
        return
    real = sys.stderr
    log = _LogStream()
    redirect = _Redirect(real, log)
    handler = logging.StreamHandler(log)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    saved: dict[str, tuple[list[logging.Handler], bool, int]] = {}
    for name in NOISY_LOGGERS:
        lg = logging.getLogger(name)
        saved[name] = (list(lg.handlers), lg.propagate, lg.level)
        lg.handlers = [handler]
        lg.propagate = False
        if lg.level == logging.NOTSET or lg.level > logging.INFO:
            lg.setLevel(logging.INFO)
    env_saved = {k: os.environ.get(k) for k in ("TQDM_DISABLE", "HF_HUB_DISABLE_PROGRESS_BARS")}
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    _state.update(log=log, real=real, command=command)
    logging.captureWarnings(True)
    sys.stderr = redirect  # type: ignore[assignment]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("default")  # each warning once per location, into the log
            if workdir is not None:
                bind_workdir(workdir)
            yield log.path
    finally:
        # a command that fails prints exactly one error line: no pointer to the log then
        failing = sys.exc_info()[0] is not None
        sys.stderr = real
        redirect.active = False
        logging.captureWarnings(False)
        for name, (handlers, propagate, level) in saved.items():
            lg = logging.getLogger(name)
            lg.handlers, lg.propagate, lg.level = handlers, propagate, level
        for k, v in env_saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        if log.path is None and log.chars:
            fd, tmp = tempfile.mkstemp(prefix=f"tunegate-{command}-", suffix=".log")
            os.close(fd)
            log.bind(Path(tmp))
        path = log.path
        log.close()
        _state.update(log=None, real=None)
        if path is not None and log.chars and not failing:
            real.write(f"library messages: {path} (--verbose shows them)\n")


def _fmt_s(s: float) -> str:
    s = round(s)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


class Progress:
    """Progress of one stage: a rich bar with ETA on a terminal, plain periodic lines otherwise.

    >>> with Progress("train", total=200) as p:  # doctest: +SKIP
    ...     for batch in batches:
    ...         p.advance()
    """

    def __init__(
        self,
        stage: str,
        total: int | None,
        *,
        unit: str = "steps",
        stream: IO[str] | None = None,
        interval: float | None = None,
        tty: bool | None = None,
        lazy: bool = False,
    ) -> None:
        self.stage, self.total, self.unit = stage, total, unit
        self.interval = PLAIN_INTERVAL if interval is None else interval
        self.stream = stream
        self.tty = tty
        #: plain lines only once the stage has run for ``interval`` (no bar on a terminal until
        #: then either): a short pass, or one that fails fast, prints nothing, so the one-line
        #: error contract holds; a long one still reports periodically
        self.lazy = lazy
        self._printed = False
        self.done = 0
        #: a short note appended to plain progress lines (e.g. "loss 1.2345")
        self.note = ""
        self._bar: Any = None
        self._task: Any = None
        self._t0 = 0.0
        self._last = 0.0

    def __enter__(self) -> Progress:
        self.stream = self.stream or user_stream()
        if self.tty is None:
            self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._t0 = self._last = time.monotonic()
        if not self.lazy:
            self._start()
        return self

    def _start(self) -> None:
        if self.tty:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("eta"),
                TimeRemainingColumn(),
                console=Console(file=self.stream),
                transient=False,
            )
            self._bar.start()
            self._task = self._bar.add_task(self.stage, total=self.total, completed=self.done)
        else:
            self._line(f"{self.stage}: started" + (f", {self.total} {self.unit}" if self.total else ""))
        self._printed = True

    def _line(self, text: str) -> None:
        assert self.stream is not None
        self.stream.write(text + "\n")
        self.stream.flush()

    def status(self) -> str:
        el = time.monotonic() - self._t0
        if self.total:
            pct = 100.0 * self.done / self.total
            left = el / self.done * (self.total - self.done) if self.done else None
            eta = f", about {_fmt_s(left)} left" if left is not None else ""
            note = f", {self.note}" if self.note else ""
            return (
                f"{self.stage}: {self.done}/{self.total} {self.unit} ({pct:.0f}%){note}, "
                f"{_fmt_s(el)} elapsed{eta}"
            )
        return (
            f"{self.stage}: {self.done} {self.unit}"
            + (f", {self.note}" if self.note else "")
            + (f", {_fmt_s(el)} elapsed")
        )

    def advance(self, n: int = 1) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.update(self._task, advance=n)
            return
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            if not self._printed:
                self._start()
                if self._bar is not None:
                    return
            self._line(self.status())

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            self._bar.stop()
        elif not self._printed:
            return
        elif exc[0] is None:
            self._line(self.status().replace(" elapsed", " in total").split(", about")[0] + ": done")
        else:
            self._line(self.status() + ": stopped")


class _NoProgress:
    """What :func:`progress` returns outside the CLI: library callers and tests see nothing."""

    done = 0
    note = ""

    def __enter__(self) -> _NoProgress:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def advance(self, n: int = 1) -> None:
        self.done += n


def progress(
    stage: str, total: int | None, *, unit: str = "items", lazy: bool = False
) -> Progress | _NoProgress:
    """A :class:`Progress` while a ``tunegate`` command runs (inside :func:`library_output`), so
    long library loops (prediction, generation, the PII pass) report to the user; a no-op
    elsewhere. ``lazy``: nothing until the loop has run for :data:`PLAIN_INTERVAL` seconds."""
    if _state.get("command") is None or _state.get("log") is None:
        return _NoProgress()
    return Progress(stage, total, unit=unit, lazy=lazy)
