"""The resume engine of a gate-run (``pipeline.run_stage``), fast and without Prefect."""

from __future__ import annotations

from pathlib import Path

import pytest

from tunegate.pipeline import final_digests, read_state, run_stage


def _stage(wd: Path, calls: list[str], name: str = "prepare", content: str = "x"):  # type: ignore[no-untyped-def]
    def fn() -> tuple[list[str], dict[str, object]]:
        calls.append(name)
        (wd / "out").mkdir(exist_ok=True)
        (wd / "out" / f"{name}.txt").write_text(content, encoding="utf-8")
        return [f"out/{name}.txt"], {"n": len(calls)}

    return fn


def test_same_inputs_and_intact_outputs_skip(tmp_path: Path) -> None:
    calls: list[str] = []
    first = run_stage(tmp_path, "prepare", {"data": "d1"}, _stage(tmp_path, calls))
    second = run_stage(tmp_path, "prepare", {"data": "d1"}, _stage(tmp_path, calls))
    assert calls == ["prepare"]
    assert first["skipped"] is False and second["skipped"] is True
    assert second["n"] == 1  # the recorded result, not a new one


def test_changed_inputs_or_tampered_output_rerun(tmp_path: Path) -> None:
    calls: list[str] = []
    run_stage(tmp_path, "prepare", {"data": "d1"}, _stage(tmp_path, calls))
    run_stage(tmp_path, "prepare", {"data": "d2"}, _stage(tmp_path, calls))
    assert calls == ["prepare", "prepare"]
    (tmp_path / "out" / "prepare.txt").write_text("tampered", encoding="utf-8")
    res = run_stage(tmp_path, "prepare", {"data": "d2"}, _stage(tmp_path, calls))
    assert calls == ["prepare"] * 3 and res["skipped"] is False
    (tmp_path / "out" / "prepare.txt").unlink()
    run_stage(tmp_path, "prepare", {"data": "d2"}, _stage(tmp_path, calls))
    assert len(calls) == 4


def test_a_crash_never_marks_a_stage_complete(tmp_path: Path) -> None:
    def boom() -> tuple[list[str], dict[str, object]]:
        raise RuntimeError("killed mid-stage")

    with pytest.raises(RuntimeError):
        run_stage(tmp_path, "train", {"x": 1}, boom)
    assert "train" not in read_state(tmp_path)


def test_rerunning_a_stage_drops_the_records_of_later_stages(tmp_path: Path) -> None:
    calls: list[str] = []
    run_stage(tmp_path, "prepare", {"data": "d1"}, _stage(tmp_path, calls, "prepare"))
    run_stage(tmp_path, "train", {"k": 1}, _stage(tmp_path, calls, "train"))
    assert set(read_state(tmp_path)) == {"prepare", "train"}
    run_stage(tmp_path, "prepare", {"data": "d2"}, _stage(tmp_path, calls, "prepare", "y"))
    assert set(read_state(tmp_path)) == {"prepare"}
    assert set(final_digests(tmp_path)) == {"prepare:out/prepare.txt"}
