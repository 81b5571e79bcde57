"""One way for tests to start Prefect's local (ephemeral) server."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

# Two xdist workers share 2 cores: while one trains, the other's server start-up (a subprocess
# that imports the whole Prefect API and migrates SQLite) took over Prefect's 30 s default in CI.
STARTUP_TIMEOUT_S = 300


@contextmanager
def local_prefect_server() -> Iterator[None]:
    """`prefect_test_harness` with a start-up timeout that survives a loaded 2-core machine."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=STARTUP_TIMEOUT_S):
        yield
