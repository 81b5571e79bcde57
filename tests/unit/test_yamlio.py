"""The one YAML -> pydantic loader: every failure is a one-line ConfigError naming the file."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict

from tunegate.errors import ConfigError
from tunegate.yamlio import load_yaml_model, read_yaml_mapping


class _Cfg(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rank: int = 8


def test_valid_file_and_empty_file(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("rank: 4\n", encoding="utf-8")
    (tmp_path / "b.yaml").write_text("", encoding="utf-8")
    assert load_yaml_model(tmp_path / "a.yaml", _Cfg).rank == 4
    assert load_yaml_model(tmp_path / "b.yaml", _Cfg).rank == 8


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("rank: [1\n", "line 2: is not valid YAML"),
        ("- 1\n- 2\n", "must be a YAML mapping, got list"),
        ("rnak: 4\n", "rnak: Extra inputs are not permitted"),
        ("rank: abc\n", "rank: Input should be a valid integer"),
    ],
)
def test_bad_content_names_file_and_problem(tmp_path: Path, content: str, expected: str) -> None:
    p = tmp_path / "c.yaml"
    p.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError) as exc:
        load_yaml_model(p, _Cfg, what="run config")
    assert str(p) in str(exc.value) and expected in str(exc.value)


def test_directory_missing_and_binary_paths(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a directory"):
        read_yaml_mapping(tmp_path)
    with pytest.raises(ConfigError, match="not found"):
        read_yaml_mapping(tmp_path / "nope.yaml")
    (tmp_path / "bin.yaml").write_bytes(b"\xff\xfe\x00rank")
    with pytest.raises(ConfigError, match="not UTF-8"):
        read_yaml_mapping(tmp_path / "bin.yaml")
