"""Training checkpoints that cannot run code and are only resumed when the run vouches for them.

A checkpoint is two files in ``RUN/checkpoints/``:

* ``step-NNNNNN.safetensors``: every tensor (trainable parameters under ``param.<name>``,
  optimizer state under ``optim.<i>.<key>``). safetensors is a flat header + raw buffers: loading
  it never unpickles anything.
* ``last.json``: the record, written (atomically) *after* the tensors file. It names the tensors
  file and its sha256, the run id and the run fingerprint (data, base model, config), and holds
  everything that is not a tensor as plain JSON: optimizer hyper-parameters and scalar state, the
  LR scheduler's state and the loop's :class:`~tunegate.training.train.TrainState`.

Resuming reads the record (JSON), checks that it belongs to this run folder and these inputs,
re-hashes the tensors file and only then loads it. Nothing here ever calls ``torch.load``: a
pickle planted as ``last.pt`` (the format of earlier versions) is never opened. What this does not
stop: someone who can write the run folder can write a consistent pair (tensors + record) of
their own; the workdir is trusted for integrity, not for code execution (see docs/training.md).
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunegate.errors import IntegrityError, StageError
from tunegate.provenance import atomic_path, atomic_write_json, sha256_file

RECORD = "last.json"
FORMAT = "tunegate-checkpoint/1"
#: the pickle format of earlier versions: never loaded, only reported
LEGACY = "last.pt"


@dataclass(frozen=True)
class Checkpoint:
    """A verified checkpoint, ready to load into a model, optimizer and scheduler."""

    step: int
    params: dict[str, Any]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    state: dict[str, Any]


def _integrity(path: Path, message: str) -> IntegrityError:
    return IntegrityError(f"{path}: {message}")


def _cpu(t: Any) -> Any:
    return t.detach().to("cpu").contiguous().clone()


def _jsonable(value: Any, where: str) -> Any:
    """Plain JSON values only (tuples become lists); anything else is a bug worth a clear error."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, where) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v, where) for k, v in value.items()}
    raise StageError(f"checkpoint: {where} holds a {type(value).__name__}, which cannot be stored as JSON")


def split_optimizer(state_dict: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """An optimizer ``state_dict`` as (tensors, JSON). Parameter ids may be ints or names (FSDP)."""
    import torch

    tensors: dict[str, Any] = {}
    entries: list[dict[str, Any]] = []
    for i, (pid, st) in enumerate(state_dict.get("state", {}).items()):
        scalars: dict[str, Any] = {}
        keys: list[str] = []
        for k, v in st.items():
            if isinstance(v, torch.Tensor):
                tensors[f"optim.{i}.{k}"] = _cpu(v)
                keys.append(k)
            else:
                scalars[k] = _jsonable(v, f"optimizer state {k!r}")
        entries.append({"id": pid, "tensors": keys, "scalars": scalars})
    groups = _jsonable(state_dict.get("param_groups", []), "optimizer param_groups")
    return tensors, {"state": entries, "param_groups": groups}


def join_optimizer(tensors: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[Any, dict[str, Any]] = {}
    for i, entry in enumerate(meta["state"]):
        st = dict(entry["scalars"])
        for k in entry["tensors"]:
            st[k] = tensors[f"optim.{i}.{k}"]
        state[entry["id"]] = st
    return {"state": state, "param_groups": meta["param_groups"]}


def save_tensors(path: Path, tensors: dict[str, Any]) -> str:
    """Write ``tensors`` atomically as safetensors; return the file's sha256."""
    from safetensors.torch import save_file

    with atomic_path(path) as tmp:
        save_file({k: _cpu(v) for k, v in tensors.items()}, str(tmp))
    return sha256_file(path)


def load_tensors(path: Path, sha256: str) -> dict[str, Any]:
    """Load a safetensors file only if its sha256 is the one recorded (IntegrityError otherwise)."""
    from safetensors.torch import load_file

    if not path.is_file() or path.is_symlink():
        raise _integrity(path, f"checkpoint file {path.name} is missing (or not a regular file)")
    found = sha256_file(path)
    if found != sha256:
        raise _integrity(
            path,
            f"checkpoint file {path.name} was changed after it was written "
            f"(sha256 {found[:12]} != recorded {sha256[:12]}); it is not loaded",
        )
    try:
        return dict(load_file(str(path)))
    except Exception as exc:  # safetensors' own error types; the file is data, never code
        raise _integrity(path, f"checkpoint file {path.name} is not a safetensors file ({exc})") from None


def save_checkpoint(
    ckpt_dir: Path,
    *,
    run_id: str,
    fingerprint: str,
    step: int,
    params: dict[str, Any],
    optimizer: dict[str, Any],
    scheduler: dict[str, Any],
    state: dict[str, Any],
) -> None:
    """Tensors first, then the record that vouches for them, then drop older tensor files."""
    opt_tensors, opt_meta = split_optimizer(optimizer)
    tensors = {f"param.{k}": v for k, v in params.items()} | opt_tensors
    name = f"step-{step:06d}.safetensors"
    digest = save_tensors(ckpt_dir / name, tensors)
    record = {
        "format": FORMAT,
        "run_id": run_id,
        "fingerprint": fingerprint,
        "step": step,
        "tensors": name,
        "tensors_sha256": digest,
        "optimizer": opt_meta,
        "scheduler": _jsonable(scheduler, "scheduler state"),
        "state": _jsonable(state, "training state"),
    }
    atomic_write_json(ckpt_dir / RECORD, record)
    for old in ckpt_dir.glob("step-*.safetensors"):
        if old.name != name:
            old.unlink(missing_ok=True)


def read_record(ckpt_dir: Path) -> dict[str, Any] | None:
    """The checkpoint record (plain JSON), or None when the run never wrote one."""
    path = ckpt_dir / RECORD
    if not path.is_file():
        if (ckpt_dir / LEGACY).exists():
            warnings.warn(
                f"{ckpt_dir / LEGACY}: a pickle checkpoint (older format) is never loaded; "
                "this run cannot be resumed",
                UserWarning,
                stacklevel=2,
            )
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _integrity(path, f"checkpoint record is not valid JSON ({exc})") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise _integrity(path, f"checkpoint record is not a {FORMAT} record")
    return record


def check_record(record: dict[str, Any], *, run_id: str, fingerprint: str, path: Path) -> None:
    """The record must belong to this run folder and to these inputs."""
    if record.get("run_id") != run_id:
        raise _integrity(
            path,
            f"checkpoint record names run {record.get('run_id')!r}, not {run_id!r} "
            "(copied from another run?)",
        )
    theirs = str(record.get("fingerprint"))
    if theirs != fingerprint:
        raise _integrity(
            path,
            f"run {run_id} was started with different data, base model or config "
            f"(fingerprint {theirs[:12]} != {fingerprint[:12]}); it cannot be resumed with these inputs",
        )


def load_checkpoint(ckpt_dir: Path, *, run_id: str, fingerprint: str) -> Checkpoint:
    """Read and verify the run's checkpoint (IntegrityError on any mismatch; nothing is unpickled)."""
    record = read_record(ckpt_dir)
    path = ckpt_dir / RECORD
    if record is None:
        raise _integrity(path, "no checkpoint record")
    check_record(record, run_id=run_id, fingerprint=fingerprint, path=path)
    name = str(record.get("tensors", ""))
    if "/" in name or "\\" in name or not name.startswith("step-"):
        raise _integrity(path, f"checkpoint record names an unexpected file {name!r}")
    tensors = load_tensors(ckpt_dir / name, str(record.get("tensors_sha256")))
    params = {k.removeprefix("param."): v for k, v in tensors.items() if k.startswith("param.")}
    optim = {k: v for k, v in tensors.items() if k.startswith("optim.")}
    return Checkpoint(
        step=int(record["step"]),
        params=params,
        optimizer=join_optimizer(optim, record["optimizer"]),
        scheduler=record["scheduler"],
        state=record["state"],
    )
