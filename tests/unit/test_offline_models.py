"""Offline model names: `--model minilm` / `stories260k` resolve locally, and are listed in --help."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tunegate.errors import DependencyError
from tunegate.models import OFFLINE_MODELS, named_model_dir
from tunegate.training.model_io import resolve_model


def test_minilm_by_name_is_the_packaged_encoder() -> None:
    src = resolve_model("minilm")
    assert (src.path / "config.json").is_file() and src.files
    assert src.path == named_model_dir("MiniLM")
    assert named_model_dir("no-such-model") is None


def test_stories260k_by_name_follows_tunegate_shared(
    stories260k: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TUNEGATE_SHARED", str(stories260k.parents[1]))
    assert resolve_model("stories260k").path == stories260k.resolve()
    monkeypatch.setenv("TUNEGATE_SHARED", str(tmp_path))
    with pytest.raises(DependencyError, match="stories260k is not on this machine"):
        resolve_model("stories260k")


def test_train_help_lists_every_offline_name() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "tunegate.cli", "train", "--help"],
        capture_output=True,
        text=True,
        check=True,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    ).stdout
    for name in OFFLINE_MODELS:
        assert f"'{name}'" in out
