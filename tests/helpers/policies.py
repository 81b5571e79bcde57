"""The default policy with a cheaper PII pass, for tests of mechanics (paths, hold-out freezing,
exit codes, crashes), not of PII detection.

Without the PERSON tagger and with one PII process, a CLI prepare of 220 tickets took 19.8 s
against 31.6 s. The tests that measure PII (the `prepared` fixture, the demo, the Prefect flows,
the Dask sharded run, tests/unit/pii/) keep the default policy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tunegate.policy.schema import DEFAULT_POLICY_PATH, GatePolicy, load_policy

MECHANICS_PII: dict[str, Any] = {"person_tagger": "disabled", "n_process": 1}


def mechanics_policy() -> GatePolicy:
    """The shipped default policy with :data:`MECHANICS_PII` applied."""
    policy = load_policy()
    return policy.model_copy(update={"pii": policy.pii.model_copy(update=MECHANICS_PII)})


def mechanics_policy_file(directory: Path) -> Path:
    """The shipped default policy file with :data:`MECHANICS_PII`, written to ``directory``."""
    data = yaml.safe_load(DEFAULT_POLICY_PATH.read_text(encoding="utf-8"))
    data["pii"].update(MECHANICS_PII)
    path = directory / "mechanics-policy.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path
