"""The gate-run's one ``device`` setting reaches every stage that loads a model: training, baseline
scoring and evaluation (base, tuned, the BERTScore model, the merged model of intruder dimensions),
and each stage records it (``run.json``, the baseline result, ``evidence.json``).

Everything runs for real on CPU with ``device: cpu``. To make a dropped setting visible on a
machine without a GPU, the test pretends CUDA is present (so ``auto`` would pick ``cuda``) and
turns the loaders' own ``device`` defaults into ``auto``: a stage that ignores the setting, or a
call that leaves it out, then places a model on ``cuda``, which the spy at the placement boundary
(``nn.Module.to`` and bert_score's scorer) records and refuses.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml


def test_device_setting_reaches_training_baseline_and_evaluation(
    stories260k: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import bert_score
    from helpers.eval_workdirs import instruction_workdir

    from tunegate import pipeline
    from tunegate.evaluation import metrics, run
    from tunegate.training import model_io

    wd = instruction_workdir(tmp_path / "wd")
    (tmp_path / "policy.yaml").write_text(
        yaml.safe_dump(
            {
                "evaluation": {
                    "max_new_tokens": 4,
                    "bootstrap_samples": 100,
                    "regression_tasks": [],
                    "intruder_top_k": 2,
                    "generation_metrics": ["rouge_l", "bertscore_f1"],
                }
            }
        )
    )
    train_yaml = tmp_path / "train.yaml"  # no device here: the gate-run's setting must reach training
    train_yaml.write_text(
        yaml.safe_dump(
            {
                "max_steps": 2,
                "eval_steps": 2,
                "checkpoint_steps": 2,
                "batch_size": 8,
                "max_seq_len": 256,
                "precision": "fp32",
                "gradient_checkpointing": False,
                "early_stopping_patience": None,
            }
        )
    )
    cfg = pipeline.GateRunConfig(
        data=str(wd / "data" / "train.jsonl"),
        task="instruction",
        workdir=str(wd),
        model=str(stories260k),
        policy=str(tmp_path / "policy.yaml"),
        train_config=str(train_yaml),
        device="cpu",
    )

    # import what the stages import lazily while torch still tells the truth about CUDA
    import peft  # noqa: F401
    from transformers import AutoModelForCausalLM, set_seed  # noqa: F401

    # "auto" now means cuda, and so does every loader default: only the setting keeps models on cpu
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    for fn in (model_io.load_run_model, model_io.load_base_model, metrics.BertScorer.__init__):
        monkeypatch.setitem(fn.__kwdefaults__, "device", "auto")
    monkeypatch.setattr(run.make_bertscorer, "__defaults__", ("auto",))

    stage = {"name": "setup"}
    placed: list[tuple[str, str]] = []
    module_to = torch.nn.Module.to

    def spy_to(self: Any, *args: Any, **kwargs: Any) -> Any:
        device = torch._C._nn._parse_to(*args, **kwargs)[0]
        if device is not None:
            placed.append((stage["name"], str(device)))
            assert device.type == "cpu", f"the {stage['name']} stage placed a model on {device}"
        return module_to(self, *args, **kwargs)

    scorer_init = bert_score.BERTScorer.__init__

    def spy_scorer(self: Any, *args: Any, device: Any = None, **kwargs: Any) -> None:
        placed.append((stage["name"] + ":bertscore", str(device)))
        assert str(device) == "cpu", f"the {stage['name']} stage built its BERTScorer on {device}"
        scorer_init(self, *args, device=device, **kwargs)

    monkeypatch.setattr(torch.nn.Module, "to", spy_to)
    monkeypatch.setattr(bert_score.BERTScorer, "__init__", spy_scorer)
    monkeypatch.setenv("TUNEGATE_THREADS", "1")

    stage["name"] = "train"
    run_id = pipeline.stage_train(cfg)["run_id"]
    stage["name"] = "baseline"
    base = pipeline.stage_baseline(cfg)
    stage["name"] = "evaluate"
    pipeline.stage_evaluate(cfg, run_id)

    stages = {name.split(":")[0] for name, _ in placed}
    assert stages == {"train", "baseline", "evaluate"}, placed
    assert ("evaluate:bertscore", "cpu") in placed and ("baseline:bertscore", "cpu") in placed
    assert {dev for _, dev in placed} == {"cpu"}
    # and each stage records it
    run_json = json.loads((wd / "runs" / run_id / "run.json").read_text())
    assert run_json["device"] == "cpu" and run_json["device_setting"] == "cpu"
    assert base["device"] == "cpu"
    evidence = json.loads((wd / "runs" / run_id / "evidence.json").read_text())
    assert evidence["provenance"]["device"] == "cpu"
