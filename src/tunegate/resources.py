"""Which device a stage runs on, and how many CPU threads it may use.

Device: one setting, ``auto | cpu | cuda | cuda:N`` (``auto`` = CUDA when present), resolved by
:func:`resolve_device` for every stage (training, evaluation, baseline) and recorded in run.json.

Threads: torch (and OpenMP under it) start one worker per *visible* core, whatever the process
is allowed to use. Two training processes on a 2-core machine then run 4 spinning threads on 2
cores, and each is ~10x slower instead of 2x. :func:`intra_op_threads` sizes the pool from the
cores this process may really use (CPU affinity and the cgroup v2 ``cpu.max`` quota), divided by
the number of stages that run at once, unless ``TUNEGATE_THREADS`` says otherwise. How many run
at once: the ``concurrent`` argument, else ``TUNEGATE_CONCURRENT_STAGES``, else the number of
live processes registered by :func:`cpu_stage` (every CPU training run registers itself in a
per-user folder for its lifetime, so two gate-runs started by one Prefect worker see each
other without configuration). :func:`set_process_defaults` (called when
``tunegate`` is imported, before torch is) makes idle OpenMP threads sleep instead of spin.
This module imports torch only inside :func:`configure_threads` and :func:`resolve_device`.
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from tunegate.errors import ConfigError, DependencyError

#: override for the thread count (``TUNEGATE_CPU_THREADS`` is the older name, still read)
THREADS_ENV = "TUNEGATE_THREADS"
LEGACY_THREADS_ENV = "TUNEGATE_CPU_THREADS"
#: how many stages share this machine right now (a worker running several flows sets it)
CONCURRENT_ENV = "TUNEGATE_CONCURRENT_STAGES"
CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")
#: where running CPU stages register (one empty file per process id)
RUNTIME_ENV = "TUNEGATE_RUNTIME_DIR"


def set_process_defaults() -> None:
    """OpenMP reads its wait policy once, when torch loads it: idle threads sleep (PASSIVE)
    rather than spin, so two processes on the same cores do not burn each other's time.
    An explicit ``OMP_WAIT_POLICY`` in the environment wins."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def resolve_device(setting: str = "auto") -> str:
    """``auto`` -> ``cuda`` when CUDA is present, else ``cpu``; ``cpu``, ``cuda`` and ``cuda:N``
    are checked (a CUDA device that is not there is a ``DependencyError``)."""
    import torch

    value = (setting or "auto").strip().lower()
    if value == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if value == "cpu":
        return "cpu"
    if value == "cuda" or (value.startswith("cuda:") and value[5:].isdigit()):
        if not torch.cuda.is_available():
            raise DependencyError(f"device {setting!r} was asked for but CUDA is not available")
        if ":" in value and int(value[5:]) >= torch.cuda.device_count():
            raise DependencyError(
                f"device {setting!r} was asked for but only {torch.cuda.device_count()} CUDA device(s) exist"
            )
        return value
    raise ConfigError(f"The 'device' setting must be auto, cpu, cuda or cuda:N. Got {setting!r} instead.")


def cgroup_cpu_limit(path: Path = CGROUP_CPU_MAX) -> int | None:
    """Cores allowed by the cgroup v2 quota (``cpu.max`` = "QUOTA PERIOD" or "max PERIOD"),
    rounded up; None when there is no quota or no cgroup v2."""
    try:
        quota, period = path.read_text().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    try:
        return max(1, math.ceil(int(quota) / int(period)))
    except (ValueError, ZeroDivisionError):
        return None


def available_cores() -> int:
    """Cores this process may use: its CPU affinity, capped by the cgroup quota."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cores = os.cpu_count() or 1
    quota = cgroup_cpu_limit()
    return max(1, min(cores, quota) if quota is not None else cores)


def _positive_env(name: str) -> int | None:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ConfigError(f"The environment variable {name} must be a positive integer. Got {raw!r} instead.")
    return value


def _registry() -> Path:
    base = os.environ.get(RUNTIME_ENV) or tempfile.gettempdir()
    return Path(base) / f"tunegate-{os.getuid()}" / "cpu-stages"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process with that id: alive
        return True
    return True


def running_cpu_stages() -> int:
    """Live processes registered by :func:`cpu_stage` (stale entries of killed ones are removed)."""
    folder = _registry()
    live = 0
    for entry in folder.glob("*") if folder.is_dir() else ():
        if entry.name.isdigit() and _alive(int(entry.name)):
            live += 1
        else:
            entry.unlink(missing_ok=True)
    return live


@contextlib.contextmanager
def cpu_stage() -> Iterator[None]:
    """Register this process as a running CPU stage for the duration of the block."""
    folder = _registry()
    me = folder / str(os.getpid())
    try:
        folder.mkdir(parents=True, exist_ok=True)
        me.touch()
    except OSError:  # a read-only temp folder only loses the automatic fair share
        yield
        return
    try:
        yield
    finally:
        me.unlink(missing_ok=True)


def intra_op_threads(concurrent: int | None = None) -> int:
    """Threads for one process: ``TUNEGATE_THREADS`` if set, else its fair share of the usable
    cores when ``concurrent`` stages share them (default: ``TUNEGATE_CONCURRENT_STAGES``, else
    the live stages registered by :func:`cpu_stage`, at least 1)."""
    override = _positive_env(THREADS_ENV) or _positive_env(LEGACY_THREADS_ENV)
    if override is not None:
        return override
    share = concurrent if concurrent is not None else _positive_env(CONCURRENT_ENV)
    if share is None:
        share = max(1, running_cpu_stages())
    if share < 1:
        raise ConfigError(f"The 'concurrent' parameter must be a positive integer. Got {share!r} instead.")
    return max(1, available_cores() // share)


def configure_threads(concurrent: int | None = None) -> int:
    """Size torch's intra-op pool (and keep one inter-op thread when the pool is not started yet);
    returns the thread count used."""
    import torch

    n = intra_op_threads(concurrent)
    torch.set_num_threads(n)
    with contextlib.suppress(RuntimeError):  # the inter-op pool is already running (set once)
        torch.set_num_interop_threads(1)
    return n
