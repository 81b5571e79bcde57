"""The pieces of multi-process training that need no second process (the runs themselves are in
tests/integration/test_train_distributed.py)."""

from __future__ import annotations

import pytest

from tunegate.errors import ConfigError
from tunegate.training.config import TrainConfig
from tunegate.training.distributed import DistContext, distributed_context, shard, wrap_model


@pytest.fixture(autouse=True)
def _clean_launcher_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "ACCELERATE_USE_FSDP", "ACCELERATE_USE_DEEPSPEED"):
        monkeypatch.delenv(name, raising=False)


def test_single_process_is_untouched() -> None:
    with distributed_context("auto", "cpu") as (ctx, device):
        assert ctx == DistContext() and not ctx.active and ctx.is_main and device == "cpu"
        assert ctx.describe() is None
        assert ctx.sum([1.5, 2], device) == [1.5, 2.0] and ctx.from_main("x") == "x"


def test_deepspeed_launch_is_refused_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    with pytest.raises(ConfigError, match="DeepSpeed") as err, distributed_context("auto", "cpu"):
        pass
    assert "fsdp.yaml" in (err.value.hint or "")


def test_one_named_gpu_for_several_processes_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ConfigError, match="names one GPU"), distributed_context("auto", "cuda:1"):
        pass


def test_strategy_values_are_checked() -> None:
    with pytest.raises(ValueError, match="distributed"):
        TrainConfig.model_validate({"distributed": "zero3"})


def test_qlora_is_not_sharded() -> None:
    ctx = DistContext(world=2, rank=0, strategy="fsdp", backend="gloo")
    with pytest.raises(ConfigError, match="qlora cannot be sharded") as err:
        wrap_model(object(), ctx, device="cpu", method="qlora", bf16=False)
    assert "ddp" in (err.value.hint or "")


@pytest.mark.parametrize(
    ("n", "rank", "mine", "slots"),
    [(4, 0, [0, 2], 2), (4, 1, [1, 3], 2), (3, 1, [1], 2), (1, 1, [], 1), (0, 0, [], 0)],
)
def test_shard_gives_every_process_the_same_number_of_passes(
    n: int, rank: int, mine: list[int], slots: int
) -> None:
    got, got_slots = shard(list(range(n)), DistContext(world=2, rank=rank, strategy="ddp"))
    assert (got, got_slots) == (mine, slots)


def test_shard_in_one_process_takes_everything() -> None:
    assert shard([1, 2, 3], DistContext()) == ([1, 2, 3], 3)
