"""Promise: a signature covers every byte of the run it approves (issue 10 item 1).

Attacks: links and special files that would leave bytes outside the signature, at sign, verify
and promote, in the run, above a covered data file, and inside a registry entry. Each must be
refused with a message naming the path; nothing is followed or skipped.
"""

from __future__ import annotations

import os
import shutil
import stat

import pytest
from adv_support import Env

from tunegate.approval.promote import load_from_registry, promote
from tunegate.approval.sign import sign_run
from tunegate.approval.verify import verify_run
from tunegate.errors import IntegrityError


def _link_out(env: Env, rel: str) -> None:
    """Replace ``rel`` (file or folder) by a symlink to a copy outside the workdir."""
    src = env.wd / rel
    outside = env.tmp / "outside" / rel.replace("/", "_")
    outside.parent.mkdir(parents=True, exist_ok=True)
    if src.is_dir():
        shutil.copytree(src, outside)
        shutil.rmtree(src)
    else:
        shutil.copy2(src, outside)
        src.unlink()
    os.symlink(outside, src)


@pytest.mark.parametrize(
    "rel",
    [
        "runs/run-a/adapter/adapter_model.safetensors",  # one weights file
        "runs/run-a/adapter",  # the whole adapter folder (rglob would not enter it)
        "data/holdout.manifest.json",  # a covered data file
        "data",  # a folder above covered data files
    ],
)
def test_sign_refuses_links(env: Env, rel: str) -> None:
    _link_out(env, rel)
    with pytest.raises(IntegrityError, match=r"symbolic link") as exc:
        sign_run(env.wd, env.key("alice"), "approve", policy=env.policy, run_id="run-a")
    assert rel.split("/")[-1] in str(exc.value)


@pytest.mark.parametrize(
    "rel", ["runs/run-a/adapter/adapter_model.safetensors", "runs/run-a/adapter", "runs/run-a/report.pdf"]
)
def test_verify_and_promote_refuse_links_added_after_signing(signed: Env, rel: str) -> None:
    _link_out(signed, rel)
    with pytest.raises(IntegrityError, match="symbolic link"):
        verify_run(signed.wd, policy=signed.policy, run_id="run-a")
    with pytest.raises(IntegrityError, match="symbolic link"):
        promote(signed.wd, signed.tmp / "registry", policy=signed.policy, run_id="run-a")


def test_fifo_in_run_is_refused(signed: Env) -> None:
    os.mkfifo(signed.wd / "runs/run-a/adapter/pipe")
    with pytest.raises(IntegrityError, match=r"pipe: is not a regular file"):
        verify_run(signed.wd, policy=signed.policy, run_id="run-a")


def test_link_in_approvals_is_refused(signed: Env) -> None:
    env_path = next((signed.wd / "runs/run-a/approvals").glob("*.dsse.json"))
    os.symlink(env_path, env_path.with_name("0099-link.dsse.json"))
    with pytest.raises(IntegrityError, match=r"0099-link.dsse.json"):
        verify_run(signed.wd, policy=signed.policy, run_id="run-a")


def test_link_planted_in_registry_entry_is_refused(signed: Env) -> None:
    reg = signed.tmp / "registry"
    e = promote(signed.wd, reg, policy=signed.policy, run_id="run-a")
    weights = e.weights / "adapter_model.safetensors"
    outside = signed.tmp / "evil.safetensors"
    outside.write_bytes(weights.read_bytes())  # same bytes: only the link itself is the attack
    os.chmod(e.weights, 0o755)
    weights.unlink()
    os.symlink(outside, weights)
    with pytest.raises(IntegrityError, match=r"adapter_model\.safetensors: is a symbolic link"):
        load_from_registry(reg, e.name, policy=signed.policy)


def test_registry_entry_stays_read_only_and_linkless(signed: Env) -> None:
    e = promote(signed.wd, signed.tmp / "registry", policy=signed.policy, run_id="run-a")
    for p in e.path.rglob("*"):
        assert not p.is_symlink()
        if p.is_file():
            assert not stat.S_IMODE(p.stat().st_mode) & 0o222
