"""The Prefect side of stopping a local run (``tunegate run`` / ``tunegate demo`` load this file).

Not a flow: two pieces of Prefect glue that only a process running flows in-process needs, kept
in the flows layer because the core package never imports Prefect. ``tunegate.cli`` calls
:func:`bridge_prefect_sigterm` before the flow starts and :func:`stop_prefect_services` when a
signal stopped it (``tunegate.pipeline.stop_on_signals`` does the rest).
"""

from __future__ import annotations

import contextlib
from typing import Any

import prefect.utilities.engine as prefect_engine
from prefect.events.worker import EventsWorker
from prefect.logging.handlers import APILogWorker
from prefect.server.api.server import SubprocessASGIServer

from tunegate.pipeline import note_stop_request


def bridge_prefect_sigterm() -> None:
    """Let the stop watchdog see a SIGTERM that Prefect's flow engine handles.

    While a flow runs, Prefect's SIGTERM handler replaces ours. Its exception can be swallowed
    (raised inside a finalizer: "Exception ignored in ... __del__"), and the run would go on; the
    wrapper records the stop so that it is raised again until the run has unwound. Prefect looks
    its handler up by this module attribute each time it installs it.
    """
    original = prefect_engine._prefect_sigterm_handler
    if getattr(original, "__tunegate_bridge__", False):
        return

    def bridged(signum: int, frame: Any) -> None:
        note_stop_request(signum)
        original(signum, frame)

    bridged.__tunegate_bridge__ = True  # type: ignore[attr-defined]
    prefect_engine._prefect_sigterm_handler = bridged


def stop_prefect_services(timeout_s: float = 5.0) -> None:
    """Flush Prefect's log and event workers, then stop its temporary API server.

    In that order: with the server gone first, the workers retried sending to it at exit for a
    minute ("Error logging to API"). Each step is bounded; a failure only loses a log line.
    """
    for service in (APILogWorker, EventsWorker):
        with contextlib.suppress(Exception):
            service.drain_all(timeout=timeout_s)
    for server in list(SubprocessASGIServer._instances.values()):
        with contextlib.suppress(Exception):
            server.stop()
