"""A real, offline lm-evaluation-harness run on stories260k with the bundled synthetic task."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import torch

from tunegate.evaluation import regression as R
from tunegate.evaluation.config import EvaluationPolicy
from tunegate.policy.decide import decide
from tunegate.policy.schema import policy_from_mapping


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


def _overlong_task(tmp_path: Path) -> Path:
    """A copy of the tiny task plus two items longer than stories260k's 512-token window: one whose
    context does not fit, one whose answer alone does not fit (lm-eval's bare AssertionError)."""
    import json

    repo_tasks = Path(__file__).resolve().parents[3] / "gates" / "lm_eval_tasks"
    task_dir = tmp_path / "tasks"
    (task_dir / "data").mkdir(parents=True)
    rows = [
        json.loads(x)
        for x in (repo_tasks / "data" / "tunegate_tiny_stories.jsonl").read_text().splitlines()[:6]
    ]
    story = "Tim was happy. He played with his red ball in the sun all day long. " * 40
    rows.append({"context": story + "Then he was", "choices": ["sad", "happy"], "label": 1})  # doc 6
    rows.append({"context": "Tim said", "choices": ["hi", story], "label": 0})  # doc 7
    (task_dir / "data" / "long.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = (repo_tasks / "tunegate_tiny_stories.yaml").read_text()
    cfg = cfg.replace("task: tunegate_tiny_stories", "task: tunegate_long_items")
    cfg = cfg.replace("data/tunegate_tiny_stories.jsonl", "data/long.jsonl")
    (task_dir / "long.yaml").write_text(cfg)
    return task_dir


@pytest.mark.slow
@pytest.mark.parametrize("rule", ["skip", "truncate_context"])
def test_items_over_the_context_window_follow_the_rule(
    stories: tuple[Any, Any], tmp_path: Path, rule: str
) -> None:
    model, tok = stories
    pol = EvaluationPolicy(
        regression_tasks=["tunegate_long_items"],
        task_dir=str(_overlong_task(tmp_path)),
        regression_overlong=rule,  # type: ignore[arg-type]
        bootstrap_samples=200,
    )
    specs = R.resolve_tasks(pol, tmp_path / "cache")
    base = R.run_tasks(model, tok, specs, pol)  # no AssertionError
    run = base["tunegate_long_items"]
    assert isinstance(run, R.TaskRun), run
    assert run.context_length == 512
    assert run.overlong_skipped == ([6, 7] if rule == "skip" else [7])  # an answer that does not fit: always
    assert run.overlong_truncated == ([] if rule == "skip" else [6])
    assert sorted(run.items) == ([0, 1, 2, 3, 4, 5] if rule == "skip" else [0, 1, 2, 3, 4, 5, 6])
    (ev,) = R.compare_tasks(specs, base, R.run_tasks(model, tok, specs, pol), pol)
    assert ev.n_overlong == 2 and ev.overlong_doc_ids == [6, 7] and ev.overlong_rule == rule
    assert ev.n == len(run.items) and ev.n_available == 8
    # the gate treats them like a limit: a partial benchmark, blocking unless the policy allows it
    from tunegate.evaluation.evidence import Evidence

    evidence = Evidence(run_id="r", task="instruction", model_kind="causal", regression=[ev])
    d = {c.name: c for c in decide(policy_from_mapping({}), evidence).checks}
    assert not d["regression_limit_disclosed"].passed
    assert "2 item(s) over the 512-token context" in d["regression_limit_disclosed"].message
