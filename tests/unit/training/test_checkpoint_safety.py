"""A checkpoint found in a workdir is data, never code (issue 10, item 5).

``tunegate run`` resumes training with ``resume="auto"``: whatever lies in ``runs/*/checkpoints``
is read. These tests plant pickles with a ``__reduce__`` payload where the old format looked for
them, forge and tamper with the new format, and check that no payload ever runs, that tampered
tensors are never loaded, and that an honest checkpoint still resumes."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pytest
from conftest import instruction

from tunegate.errors import IntegrityError
from tunegate.training.checkpoint import RECORD
from tunegate.training.config import TrainConfig
from tunegate.training.train import train_run

CFG = TrainConfig.model_validate(
    {"max_steps": 3, "batch_size": 8, "eval_steps": 1, "checkpoint_steps": 1, "max_seq_len": 96,
     "lora": {"rank": 2}, "early_stopping_patience": None}
)  # fmt: skip


class Payload:
    """Unpickling this creates ``marker``: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


class Crash(Exception):
    pass


def _records() -> tuple[list, list, list]:
    return (
        [instruction(i) for i in range(16)],
        [instruction(i) for i in range(16, 20)],
        [instruction(i) for i in range(20, 24)],
    )


def _crashed_run(wd: Path, tiny_llama: Path) -> Path:
    def crash(step: int, loss: float) -> None:
        if step == 2:
            raise Crash

    with pytest.raises(Crash):
        train_run(wd, model=str(tiny_llama), method="lora", config=CFG, progress=False, on_step=crash)
    (run_dir,) = (wd / "runs").iterdir()
    return run_dir


def test_planted_pickles_never_run(tiny_llama: Path, make_workdir, tmp_path: Path) -> None:
    wd = make_workdir(*_records())
    marker = tmp_path / "pwned"
    payload = pickle.dumps({"fingerprint": Payload(marker), "params": {}})
    # the old format's place, in an unfinished run folder that sorts after any new run
    legacy = wd / "runs" / "99999999T999999-lora-planted" / "checkpoints"
    legacy.mkdir(parents=True)
    (legacy / "last.pt").write_bytes(payload)
    # a forged record in the new format whose "tensors" file is a pickle with a matching sha256
    forged = wd / "runs" / "99999999T999998-lora-forged" / "checkpoints"
    forged.mkdir(parents=True)
    (forged / "step-000001.safetensors").write_bytes(payload)
    import hashlib

    record = {
        "format": "tunegate-checkpoint/1", "run_id": forged.parent.name, "fingerprint": "x", "step": 1,
        "tensors": "step-000001.safetensors", "tensors_sha256": hashlib.sha256(payload).hexdigest(),
        "optimizer": {"state": [], "param_groups": []}, "scheduler": {}, "state": {},
    }  # fmt: skip
    (forged / RECORD).write_text(json.dumps(record))

    with pytest.warns(UserWarning, match="never loaded"):
        res = train_run(wd, model=str(tiny_llama), method="lora", config=CFG, progress=False, resume="auto")
    assert not marker.exists()
    assert res.run_dir.name not in {legacy.parent.name, forged.parent.name}
    assert json.loads((res.run_dir / "run.json").read_text())["resumed_from_step"] is None

    # named explicitly, neither is resumed, and neither runs its payload
    with pytest.raises(Exception, match="no resumable checkpoint"):
        train_run(
            wd, model=str(tiny_llama), method="lora", config=CFG, progress=False, resume=legacy.parent.name
        )
    with pytest.raises(IntegrityError, match="different data, base model or config"):
        train_run(
            wd, model=str(tiny_llama), method="lora", config=CFG, progress=False, resume=forged.parent.name
        )
    assert not marker.exists()


def test_forged_tensors_file_with_matching_record_is_not_unpickled(tmp_path: Path) -> None:
    """Even a record that names these inputs cannot make the loader unpickle: tensors are
    read with safetensors only."""
    from tunegate.training.checkpoint import load_tensors

    marker = tmp_path / "pwned"
    blob = pickle.dumps(Payload(marker))
    path = tmp_path / "step-000001.safetensors"
    path.write_bytes(blob)
    import hashlib

    with pytest.raises(IntegrityError, match="not a safetensors file"):
        load_tensors(path, hashlib.sha256(blob).hexdigest())
    assert not marker.exists()


def test_tampered_checkpoint_is_not_resumed(tiny_llama: Path, make_workdir) -> None:
    wd = make_workdir(*_records())
    run_dir = _crashed_run(wd, tiny_llama)
    ckpt = run_dir / "checkpoints"
    record = json.loads((ckpt / RECORD).read_text())
    tensors = ckpt / record["tensors"]
    data = bytearray(tensors.read_bytes())
    data[-1] ^= 0xFF  # one flipped bit in the last tensor
    tensors.write_bytes(bytes(data))

    with pytest.raises(IntegrityError, match="sha256"):
        train_run(wd, model=str(tiny_llama), method="lora", config=CFG, progress=False, resume=run_dir.name)
    with pytest.warns(UserWarning, match=f"not resuming {run_dir.name}"):
        res = train_run(wd, model=str(tiny_llama), method="lora", config=CFG, progress=False, resume="auto")
    assert res.run_dir != run_dir
    assert json.loads((res.run_dir / "run.json").read_text())["resumed_from_step"] is None


def test_record_copied_from_another_run_is_refused(tiny_llama: Path, make_workdir) -> None:
    wd = make_workdir(*_records())
    run_dir = _crashed_run(wd, tiny_llama)
    copy = run_dir.with_name(run_dir.name + "-copy")
    (copy / "checkpoints").mkdir(parents=True)
    for f in (run_dir / "checkpoints").iterdir():
        (copy / "checkpoints" / f.name).write_bytes(f.read_bytes())
    with pytest.raises(IntegrityError, match="copied from another run"):
        train_run(wd, model=str(tiny_llama), method="lora", config=CFG, progress=False, resume=copy.name)
    # the honest run still resumes from its verified checkpoint
    res = train_run(wd, model=str(tiny_llama), method="lora", config=CFG, progress=False, resume=run_dir.name)
    assert res.run_dir == run_dir
    assert json.loads((run_dir / "run.json").read_text())["resumed_from_step"] == 2
