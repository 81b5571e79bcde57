"""A real, offline lm-evaluation-harness run on stories260k with the bundled synthetic task."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import torch

from tunegate.evaluation import regression as R
from tunegate.evaluation.config import EvaluationPolicy


@pytest.mark.slow
def test_real_lm_eval_paired_comparison(stories: tuple[Any, Any], tmp_path: Path) -> None:
    model, tok = stories
    pol = EvaluationPolicy(
        regression_tasks=["tunegate_tiny_stories", "tunegate_missing_task_x"],
        regression_limit=None,
        bootstrap_samples=500,
    )
    specs = R.resolve_tasks(pol, tmp_path)
    base = R.run_tasks(model, tok, specs[:1], pol)
    run = base["tunegate_tiny_stories"]
    assert isinstance(run, R.TaskRun)
    assert len(run.items) == 40 and run.n_available == 40 and run.version == "1.0"
    assert 0.5 < sum(run.items.values()) / 40 <= 1.0  # the pretrained model beats chance here
    broken = copy.deepcopy(model)
    with torch.no_grad():
        broken.model.embed_tokens.weight.mul_(0.0).add_(torch.randn_like(broken.model.embed_tokens.weight))
    tuned = R.run_tasks(broken, tok, specs[:1], pol)
    base["tunegate_missing_task_x"] = "lm-eval could not run the task (KeyError)"
    ev = R.compare_tasks(specs, base, tuned, pol)
    tiny = ev[0]
    assert tiny.n == 40 and tiny.delta is not None and tiny.delta < 0  # random embeddings forget
    assert tiny.ci_low is not None and tiny.ci_low <= tiny.delta <= tiny.ci_high  # type: ignore[operator]
    assert tiny.task_hash and tiny.data_sha256
    assert ev[1].skipped and "KeyError" in (ev[1].reason or "")


def test_missing_shared_data_skips_with_reason(tmp_path: Path) -> None:
    pol = EvaluationPolicy(
        regression_tasks=["tunegate_piqa", "tunegate_gsm8k"], shared_dir=str(tmp_path / "nope")
    )
    specs = R.resolve_tasks(pol, tmp_path)
    assert all(s.skip_reason and "data not found" in s.skip_reason for s in specs)


def test_piqa_labels_are_joined(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    (shared / "data" / "piqa").mkdir(parents=True)
    (shared / "data" / "piqa" / "valid.jsonl").write_text(
        '{"goal": "g1", "sol1": "a", "sol2": "b"}\n{"goal": "g2", "sol1": "c", "sol2": "d"}\n'
    )
    (shared / "data" / "piqa" / "valid-labels.lst").write_text("1\n0\n")
    pol = EvaluationPolicy(regression_tasks=["tunegate_piqa"], shared_dir=str(shared))
    (spec,) = R.resolve_tasks(pol, tmp_path / "cache")
    assert spec.skip_reason is None
    joined = (tmp_path / "cache" / "piqa_valid.jsonl").read_text().splitlines()
    assert joined[0] == '{"goal": "g1", "label": 1, "sol1": "a", "sol2": "b"}'
    assert spec.config is not None and "tunegate" not in spec.config
    assert spec.config["dataset_kwargs"]["data_files"]["validation"].endswith("piqa_valid.jsonl")
