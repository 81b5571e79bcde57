"""Promise: names are names; nothing a user or a workdir supplies makes tunegate write or read
outside the folder it belongs to (issue 10 item 10).

Attacks: promote --name ../../x, /abs/path, a name with a separator; sign --name ../x; a run
id that walks out (``../``) or into another workdir; merge --run pointing elsewhere; a policy
whose checkpoint_key climbs out of the workdir; a registry name planted in run.json.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from adv_support import Env

from tunegate.approval.promote import load_from_registry, promote
from tunegate.approval.sign import sign_run
from tunegate.approval.verify import verify_run
from tunegate.cli import main
from tunegate.errors import ConfigError, InputError
from tunegate.policy.schema import policy_from_mapping
from tunegate.provenance import atomic_write_json


@pytest.mark.parametrize("name", ["../../x", "/tmp/abs-target", "a/b", "..", ".", "a\\b", ""])
def test_promote_name_must_be_a_name(signed: Env, name: str) -> None:
    reg = signed.tmp / "deep" / "registry"
    with pytest.raises(InputError, match="not a plain name"):
        promote(signed.wd, reg, policy=signed.policy, run_id="run-a", name=name)
    assert not any(p.name == "x" for p in signed.tmp.rglob("x"))
    assert not Path("/tmp/abs-target").exists()


def test_registry_name_from_run_json_is_checked(signed: Env) -> None:
    run = signed.wd / "runs/run-a/run.json"
    data = json.loads(run.read_text())
    data["name"] = "../escape"
    atomic_write_json(run, data)
    with pytest.raises(InputError, match="not a plain name"):
        sign_run(signed.wd, signed.key("alice"), "approve", policy=signed.policy, run_id="run-a")


def test_sign_and_load_names_are_checked(signed: Env) -> None:
    with pytest.raises(InputError, match="not a plain name"):
        sign_run(
            signed.wd,
            signed.key("alice"),
            "approve",
            policy=signed.policy,
            run_id="run-a",
            registry=signed.tmp / "r",
            name="../x",
        )
    with pytest.raises(InputError, match="not a plain name"):
        load_from_registry(signed.tmp / "r", "../../etc", policy=signed.policy)


@pytest.mark.parametrize("rid", ["../run-a", "run-a/../../x", "/abs", "..", "runs/run-a"])
def test_run_id_must_be_a_name(signed: Env, rid: str) -> None:
    with pytest.raises(InputError):
        verify_run(signed.wd, policy=signed.policy, run_id=rid)
    with pytest.raises(InputError):
        sign_run(signed.wd, signed.key("alice"), "reject", policy=signed.policy, run_id=rid)


def test_merge_run_outside_workdir_is_refused(signed: Env, capsys: pytest.CaptureFixture[str]) -> None:
    other = signed.tmp / "other-wd"
    (other / "runs/victim").mkdir(parents=True)
    for rid in (f"../../{other.name}/runs/victim", str(other / "runs/victim")):
        with pytest.raises(SystemExit) as exc:
            main(["merge", str(signed.wd), "--run", rid, "--out", str(signed.tmp / "merged")])
        out = capsys.readouterr()
        assert exc.value.code == 2 and "not a plain name" in out.out + out.err
    assert not (signed.tmp / "merged").exists()


@pytest.mark.parametrize("key", ["../../../tmp/k", "/tmp/k", "audit/../../k", "..\\k", ""])
def test_checkpoint_key_must_stay_inside_the_workdir(key: str) -> None:
    with pytest.raises(ConfigError, match="checkpoint_key"):
        policy_from_mapping({"approval": {"approvers_dir": "/x", "checkpoint_key": key}})


def test_checkpoint_key_inside_is_fine() -> None:
    pol = policy_from_mapping({"approval": {"approvers_dir": "/x", "checkpoint_key": "audit/other_key"}})
    assert pol.approval.checkpoint_key == "audit/other_key"
