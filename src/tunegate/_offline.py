"""Offline by construction: set before any HF, GX, Prefect or tldextract import can phone home.

Air-gapped users and CI have no network. Every library that would download a model, a
tokenizer, a suffix list or send telemetry is told not to, unless the user set the variable.
"""

from __future__ import annotations

import os

OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "GX_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_CLOUD_ENABLE_ORCHESTRATION_TELEMETRY": "false",
    "TOKENIZERS_PARALLELISM": "false",
    # Prefect's temporary API server gets 20 s to start by default; on a busy 2-core machine it
    # needs longer, and a timeout there would stop a gate-run before its first stage.
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
}


def enforce_offline() -> None:
    for key, value in OFFLINE_ENV.items():
        os.environ.setdefault(key, value)
