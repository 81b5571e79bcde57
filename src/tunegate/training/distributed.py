"""Several processes, one training run: data parallel (DDP) or fully sharded (FSDP2).

``tunegate train`` becomes distributed when a launcher starts it on several processes:
``torchrun --nproc_per_node N -m tunegate.cli train ...`` or ``accelerate launch --config_file
gates/accelerate/{ddp,fsdp}.yaml -m tunegate.cli train ...`` (both set ``WORLD_SIZE``, ``RANK``,
``LOCAL_RANK`` and the rendezvous address). The loop in :mod:`tunegate.training.train` then

* gives every process its own share of each optimizer step's micro-batches (a step consumes
  ``batch_size * grad_accum * world_size`` examples, the usual convention), with one gradient
  reduction per step;
* scales each process's loss so the reduced gradient is exactly the single-process gradient of
  the same micro-batches (a token-weighted sum over the whole step, not a mean of means);
* gathers full, unsharded state on rank 0 for checkpoints and the artifact, so the run folder
  holds an ordinary peft adapter or HF model whatever the strategy;
* writes files, the run record and the ledger event on rank 0 only.

Why plain ``torch.distributed`` rather than ``accelerate.Accelerator``: Accelerate only builds
FSDP on GPUs, so its FSDP path could never run in CI; torch's FSDP2 (``fully_shard``) and DDP run
on CPU over gloo exactly as on GPUs over NCCL, so the same code is tested here. Accelerate stays
the launcher: its config's ``distributed_type`` picks the strategy when the run config says
``distributed: auto``. DeepSpeed is refused with a clear message rather than half supported.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from tunegate.errors import ConfigError

STRATEGIES = ("auto", "ddp", "fsdp")


@dataclass(frozen=True)
class DistContext:
    """Where this process stands: world size 1 means an ordinary single-process run."""

    world: int = 1
    rank: int = 0
    local_rank: int = 0
    strategy: str = "single"  # single | ddp | fsdp
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1

    def describe(self) -> dict[str, Any] | None:
        """For run.json; None for a single process (keeps single-process records unchanged)."""
        if not self.active:
            return None
        return {"world_size": self.world, "strategy": self.strategy, "backend": self.backend}

    # -- collectives (no-ops in a single process) ----------------------------------------------------
    def barrier(self) -> None:
        if self.active:
            import torch.distributed as dist

            dist.barrier()

    def sum(self, values: Sequence[float], device: str) -> list[float]:
        """Element-wise sum over all processes (float64, so token counts stay exact)."""
        if not self.active:
            return [float(v) for v in values]
        import torch
        import torch.distributed as dist

        t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=device)
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return [float(v) for v in t.tolist()]

    def max(self, value: int, device: str) -> int:
        if not self.active:
            return int(value)
        import torch
        import torch.distributed as dist

        t = torch.tensor([int(value)], dtype=torch.int64, device=device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return int(t.item())

    def from_main(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every process (run ids, resume decisions: one answer for all)."""
        if not self.active:
            return obj
        import torch.distributed as dist

        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]


def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        raise ConfigError(f"environment variable {name} must be an integer") from None


def _pick_strategy(configured: str) -> str:
    if os.environ.get("ACCELERATE_USE_DEEPSPEED", "").lower() == "true":
        raise ConfigError(
            "this run was launched with an accelerate DeepSpeed config; tunegate's training loop supports "
            "DDP and FSDP",
            hint="launch with gates/accelerate/fsdp.yaml (sharded) or gates/accelerate/ddp.yaml",
        )
    if configured not in STRATEGIES:
        raise ConfigError(f"distributed must be one of {list(STRATEGIES)}, got {configured!r}")
    if configured != "auto":
        return configured
    return "fsdp" if os.environ.get("ACCELERATE_USE_FSDP", "").lower() == "true" else "ddp"


@contextlib.contextmanager
def distributed_context(configured: str, device: str) -> Iterator[tuple[DistContext, str]]:
    """Join the process group when launched on several processes; yield (context, device).

    ``device`` is the resolved device ("cpu", "cuda"); on CUDA each process takes the GPU of
    its ``LOCAL_RANK``. The group is torn down on exit only if this call created it.
    """
    world = _env_int("WORLD_SIZE", 1)
    if world <= 1:
        yield DistContext(), device
        return
    import torch
    import torch.distributed as dist

    strategy = _pick_strategy(configured)
    rank, local_rank = _env_int("RANK", 0), _env_int("LOCAL_RANK", 0)
    if device.startswith("cuda"):
        if ":" in device:
            raise ConfigError(
                f"device {device!r} names one GPU, but this run has {world} processes; use device auto or "
                "cuda (each process takes the GPU of its LOCAL_RANK)"
            )
        torch.cuda.set_device(local_rank)
        device, backend = f"cuda:{local_rank}", "nccl"
    else:
        backend = "gloo"
    created = not dist.is_initialized()
    if created:
        dist.init_process_group(backend=backend)
    try:
        yield DistContext(world, rank, local_rank, strategy, backend), device
    finally:
        if created and dist.is_initialized():
            dist.destroy_process_group()


def _block_classes(model: Any) -> set[str]:
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    names = set(getattr(base, "_no_split_modules", None) or [])
    if not names:
        raise ConfigError(
            f"{type(base).__name__} does not declare its transformer blocks (_no_split_modules); "
            "FSDP cannot shard it per block",
            hint="use distributed: ddp",
        )
    return names


def wrap_model(net: Any, ctx: DistContext, *, device: str, method: str, bf16: bool) -> Any:
    """DDP wrapper, or FSDP2 sharding per transformer block then the root (in place)."""
    if not ctx.active:
        return net
    import torch

    if ctx.strategy == "ddp":
        from torch.nn.parallel import DistributedDataParallel

        ids = [torch.device(device).index] if device.startswith("cuda") else None
        return DistributedDataParallel(net, device_ids=ids)
    if method == "qlora":
        raise ConfigError(
            "qlora cannot be sharded with FSDP here (bitsandbytes 4-bit weights are not FSDP2 parameters)",
            hint="use distributed: ddp (each GPU holds the 4-bit base; only the adapters are reduced)",
        )
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    mesh = init_device_mesh("cuda" if device.startswith("cuda") else "cpu", (ctx.world,))
    # bf16 all-gathers halve the traffic; gradients are reduced in fp32 so the sum stays exact.
    mp = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32) if bf16 else None
    kwargs: dict[str, Any] = {"mesh": mesh, **({"mp_policy": mp} if mp is not None else {})}
    blocks = _block_classes(net)
    for module in net.modules():
        if type(module).__name__ in blocks:
            fully_shard(module, **kwargs)
    fully_shard(net, **kwargs)
    return net


def unwrap(net: Any) -> Any:
    """The model itself (DDP keeps it in ``.module``; FSDP2 shards in place)."""
    return getattr(net, "module", net) if type(net).__name__ == "DistributedDataParallel" else net


def grad_sync(net: Any, ctx: DistContext, enabled: bool) -> contextlib.AbstractContextManager[Any]:
    """Skip the gradient reduction on all but a step's last micro-batch."""
    if not ctx.active or enabled:
        if ctx.strategy == "fsdp":
            net.set_requires_gradient_sync(True)
        return contextlib.nullcontext()
    if ctx.strategy == "ddp":
        return net.no_sync()
    net.set_requires_gradient_sync(False)
    return contextlib.nullcontext()


def _options(**kw: Any) -> Any:
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, cpu_offload=True, **kw)


def trainable_state(net: Any, ctx: DistContext) -> dict[str, Any]:
    """Full (unsharded) trainable parameters on CPU, keyed like the unwrapped model's
    ``named_parameters``. Collective in a distributed run: rank 0 gets the dict, others {}."""
    if not ctx.active:
        return {n: p.detach().to("cpu").clone() for n, p in net.named_parameters() if p.requires_grad}
    from torch.distributed.checkpoint.state_dict import get_model_state_dict

    return dict(get_model_state_dict(net, options=_options(ignore_frozen_params=True)))


def full_state(net: Any) -> dict[str, Any]:
    """The whole model's full state dict (rank 0), for saving a full fine-tune under FSDP.

    Tied copies (an ``lm_head`` sharing the embedding) are left out, as ``save_pretrained``
    does for an unsharded model, so the checkpoint is the same shape whatever the strategy."""
    from torch.distributed.checkpoint.state_dict import get_model_state_dict

    state = dict(get_model_state_dict(net, options=_options()))
    for tied in getattr(unwrap(net), "all_tied_weights_keys", None) or {}:
        state.pop(tied, None)
    return state


def optimizer_state(net: Any, optimizer: Any, ctx: DistContext) -> dict[str, Any]:
    if not ctx.active:
        return dict(optimizer.state_dict())
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

    return dict(get_optimizer_state_dict(net, optimizer, options=_options()))


def load_trainable(net: Any, state: dict[str, Any], ctx: DistContext) -> None:
    """Load a :func:`trainable_state` dict (every process passes the same full dict)."""
    if not ctx.active:
        net.load_state_dict(state, strict=False)
        return
    from torch.distributed.checkpoint.state_dict import set_model_state_dict

    set_model_state_dict(net, state, options=_options(strict=False))


def load_optimizer(net: Any, optimizer: Any, state: dict[str, Any], ctx: DistContext) -> None:
    if not ctx.active:
        optimizer.load_state_dict(state)
        return
    from torch.distributed.checkpoint.state_dict import set_optimizer_state_dict

    set_optimizer_state_dict(net, optimizer, state, options=_options())


def shard(items: Sequence[Any], ctx: DistContext) -> tuple[list[Any], int]:
    """This process's items of one step, and how many every process must run.

    Rank r takes items r, r+W, ...; a process with fewer than the longest share repeats a
    zero-weighted item so that every process runs the same number of forward/backward passes
    (FSDP all-gathers and DDP reductions are collective: a missing pass would hang the rest).
    """
    mine = list(items[ctx.rank :: ctx.world]) if ctx.active else list(items)
    slots = -(-len(items) // ctx.world) if ctx.active else len(items)
    return mine, slots
