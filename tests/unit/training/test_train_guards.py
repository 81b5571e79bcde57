"""The hold-out never reaches the optimizer; an adapter never loads onto a different base;
a crashed run resumes to exactly the result of an uninterrupted one."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from conftest import classification, instruction

from tunegate.errors import IntegrityError, LeakageError
from tunegate.ledger import read_entries, verify_ledger
from tunegate.records import Record
from tunegate.training.config import TrainConfig
from tunegate.training.model_io import load_run_model, merge_run
from tunegate.training.train import train_run

TINY = TrainConfig.model_validate(
    {"max_steps": 4, "batch_size": 8, "eval_steps": 2, "max_seq_len": 96, "lora": {"rank": 4}}
)


def test_holdout_record_in_train_is_refused(tiny_llama: Path, make_workdir) -> None:
    hold = [instruction(i) for i in range(32, 40)]
    wd = make_workdir([instruction(i) for i in range(24)] + [hold[3]], [instruction(30)], hold)
    with pytest.raises(LeakageError, match="in the frozen hold-out"):
        train_run(wd, model=str(tiny_llama), method="lora", config=TINY, progress=False)
    assert not (wd / "runs").exists()  # refused before anything was created


def test_holdout_record_in_validation_is_refused(tiny_llama: Path, make_workdir) -> None:
    hold = [instruction(i) for i in range(32, 40)]
    wd = make_workdir([instruction(i) for i in range(24)], [hold[0]], hold)
    with pytest.raises(LeakageError):
        train_run(wd, model=str(tiny_llama), method="lora", config=TINY, progress=False)


def test_tampered_holdout_is_refused(tiny_llama: Path, instruction_workdir: Path) -> None:
    path = instruction_workdir / "data" / "holdout.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:-1]))  # a hold-out record removed
    with pytest.raises(IntegrityError, match="removed"):
        train_run(instruction_workdir, model=str(tiny_llama), method="lora", config=TINY, progress=False)


def test_base_digest_mismatch_is_caught(tiny_llama: Path, instruction_workdir: Path, tmp_path: Path) -> None:
    base = tmp_path / "base"
    shutil.copytree(tiny_llama, base)
    res = train_run(instruction_workdir, model=str(base), method="lora", config=TINY, progress=False)
    recorded = json.loads((res.run_dir / "run.json").read_text())["base_model"]["digest"]
    load_run_model(res.run_dir)  # the same base loads
    from transformers import AutoModelForCausalLM

    m = AutoModelForCausalLM.from_pretrained(str(base))
    with torch.no_grad():
        m.model.norm.weight.add_(0.01)  # a different base with the same architecture
    m.save_pretrained(str(base))
    with pytest.raises(IntegrityError) as err:
        load_run_model(res.run_dir)
    assert recorded in str(err.value)
    assert "has digest" in str(err.value)
    with pytest.raises(IntegrityError, match=recorded):
        merge_run(res.run_dir, tmp_path / "merged")


def test_run_record_and_ledger(tiny_llama: Path, instruction_workdir: Path) -> None:
    res = train_run(instruction_workdir, model=str(tiny_llama), method="lora", config=TINY, progress=False)
    run = json.loads((res.run_dir / "run.json").read_text())
    for key in (
        "date",
        "base_model",
        "data",
        "config",
        "seed",
        "method",
        "versions",
        "git",
        "device",
        "wall_time_s",
        "tokens_per_s",
        "peak_memory",
        "loss_curve",
        "labels",
        "task",
        "model_kind",
    ):
        assert key in run, key
    data = instruction_workdir / "data"
    from tunegate.provenance import sha256_file

    assert run["data"]["train"]["digest"] == sha256_file(data / "train.jsonl")
    assert run["data"]["holdout_manifest_digest"] == sha256_file(data / "holdout.manifest.json")
    assert run["config"]["learning_rate"] == 2e-4 and run["config"]["lora"]["alpha"] == 8.0
    assert run["config"]["lora"]["dropout"] == 0.05  # under 1,000 examples
    assert json.loads((res.run_dir / "config.json").read_text()) == run["config"]
    # the one device setting, resolved (no CUDA here), and the thread count sized for this process
    assert (run["device_setting"], run["device"], run["cpu_threads"]) == ("auto", "cpu", 1)
    assert res.run_id.split("-")[1] == "lora" and len(res.run_id.split("-")[0]) == 15
    events = [e for e in read_entries(instruction_workdir) if e["stage"] == "train"]
    assert events[-1]["details"]["run_id"] == res.run_id
    assert events[-1]["inputs"]["base_model"] == run["base_model"]["digest"]
    assert verify_ledger(instruction_workdir).ok
    assert not (res.run_dir / "checkpoints").exists()


class Crash(Exception):
    pass


def _resume_cfg(max_steps: int) -> TrainConfig:
    """A run that checkpoints every 2 steps (so a crash leaves something to resume from)."""
    return TrainConfig.model_validate(
        {"max_steps": max_steps, "batch_size": 4, "eval_steps": 2, "checkpoint_steps": 2, "max_seq_len": 96,
         "learning_rate": 5e-3, "lora": {"rank": 4}, "early_stopping_patience": None}
    )  # fmt: skip


def _splits(n_train: int, n_other: int) -> tuple[list[Record], list[Record], list[Record]]:
    """train, validation and hold-out instruction records (n_other each for the last two)."""
    return (
        [instruction(i) for i in range(n_train)],
        [instruction(i) for i in range(n_train, n_train + n_other)],
        [instruction(i) for i in range(n_train + n_other, n_train + 2 * n_other)],
    )


def _crash_at(crash_step: int) -> Callable[[int, float], None]:
    def on_step(step: int, loss: float) -> None:
        if step == crash_step:
            raise Crash

    return on_step


def test_resume_after_crash_matches_uninterrupted(tiny_llama: Path, make_workdir) -> None:
    cfg = _resume_cfg(6)
    recs = _splits(24, 8)
    ref_wd = make_workdir(*recs, name="ref")
    ref = train_run(ref_wd, model=str(tiny_llama), method="lora", config=cfg, progress=False)

    wd = make_workdir(*recs, name="crash")

    with pytest.raises(Crash):
        train_run(wd, model=str(tiny_llama), method="lora", config=cfg, progress=False, on_step=_crash_at(5))
    (run_dir,) = (wd / "runs").iterdir()
    assert (run_dir / "checkpoints" / "last.json").is_file() and not (run_dir / "run.json").exists()
    res = train_run(wd, model=str(tiny_llama), method="lora", config=cfg, progress=False, resume="auto")
    assert res.run_dir == run_dir
    run = json.loads((run_dir / "run.json").read_text())
    assert run["resumed_from_step"] == 4 and run["steps"] == 6
    from safetensors.torch import load_file

    a = load_file(str(ref.run_dir / "adapter" / "adapter_model.safetensors"))
    b = load_file(str(run_dir / "adapter" / "adapter_model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    ref_run = json.loads((ref.run_dir / "run.json").read_text())
    assert [p["loss"] for p in run["loss_curve"]] == [p["loss"] for p in ref_run["loss_curve"]]


def test_resume_keeps_the_thread_count_the_run_started_with(
    tiny_llama: Path, make_workdir, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A CPU matmul's bits depend on how many threads split it: a run started with 2 threads and
    resumed where the fair share is now 1 (another run beside it) continues with 2."""
    cfg = _resume_cfg(4)
    recs = _splits(16, 4)
    before = torch.get_num_threads()
    try:
        monkeypatch.setenv("TUNEGATE_THREADS", "2")
        wd = make_workdir(*recs, name="threads")

        with pytest.raises(Crash):
            train_run(
                wd, model=str(tiny_llama), method="lora", config=cfg, progress=False, on_step=_crash_at(3)
            )
        record = json.loads(next(wd.glob("runs/*/checkpoints/last.json")).read_text())
        assert record["state"]["cpu_threads"] == 2
        monkeypatch.setenv("TUNEGATE_THREADS", "1")
        res = train_run(wd, model=str(tiny_llama), method="lora", config=cfg, progress=False, resume="auto")
        run = json.loads((res.run_dir / "run.json").read_text())
        assert run["resumed_from_step"] == 2 and run["cpu_threads"] == 2
        assert torch.get_num_threads() == 2
        fresh = train_run(make_workdir(*recs, name="fresh1"), model=str(tiny_llama), method="lora",
                          config=cfg, progress=False)  # fmt: skip
        assert json.loads((fresh.run_dir / "run.json").read_text())["cpu_threads"] == 1  # not sticky
    finally:
        torch.set_num_threads(before)


def test_encoder_classification_lora_and_full(tiny_bert: Path, make_workdir) -> None:
    wd = make_workdir([classification(i) for i in range(32)], [classification(i) for i in range(32, 40)],
                      [classification(i) for i in range(40, 48)])  # fmt: skip
    for method, lr in (("lora", 5e-3), ("full", 1e-3)):
        cfg = TrainConfig.model_validate(
            {"max_steps": 8, "batch_size": 8, "eval_steps": 4, "learning_rate": lr, "lora": {"rank": 4},
             "early_stopping_patience": None}
        )  # fmt: skip
        res = train_run(wd, model=str(tiny_bert), method=method, config=cfg, progress=False)
        run = json.loads((res.run_dir / "run.json").read_text())
        assert run["model_kind"] == "seq_cls" and run["labels"] == ["move", "pay"]
        assert run["padding_fraction"] < 0.05
        losses = [p["loss"] for p in run["loss_curve"]]
        assert min(losses[-3:]) < losses[0]
        loaded = load_run_model(res.run_dir)
        assert loaded.kind == "seq_cls" and loaded.labels == ["move", "pay"]
        assert loaded.model.config.id2label == {0: "move", 1: "pay"}
        enc = loaded.tokenizer(["refund my payment 7"], return_tensors="pt")
        with torch.no_grad():
            assert loaded.model(**enc).logits.shape == (1, 2)
