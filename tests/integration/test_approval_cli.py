"""The approval commands end to end through ``tunegate.cli.main`` (exit codes and messages).

keygen two reviewers -> report -> annex-iv -> sign x2 -> verify -> promote -> audit verify, then
tamper cases through the CLI: each exits 2 and names the cause. Synthetic workdir from the
approval unit tests' generator.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from helpers.approval_fixtures import make_policy, write_data, write_run

from tunegate.cli import main

pytestmark = pytest.mark.slow


def _tg(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in args])
    out = capsys.readouterr()
    return int(exc.value.code or 0), out.out + out.err


def test_cli_full_approval_path_and_tampering(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    wd, keys, approvers, reg = tmp_path / "wd", tmp_path / "keys", tmp_path / "approvers", tmp_path / "reg"
    write_data(wd)
    write_run(wd, "run-a", policy=make_policy(approvers, min_approvals=2))  # decided under the policy below
    approvers.mkdir()
    for name in ("alice", "bob"):
        code, out = _tg(capsys, "keygen", "--name", name, "--out", keys)
        assert code == 0, out
        shutil.copy(keys / f"{name}.pub", approvers)
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "checks:\n  allow_regression_limit: true\n"
        f"approval:\n  approvers_dir: {approvers}\n  min_approvals: 2\n"
    )
    p = ["--policy", str(policy)]
    code, out = _tg(capsys, "sign", wd, "--key", keys / "alice.key", "--decision", "approve", *p)
    assert code == 1 and "required artifacts are missing" in out and "report.html" in out
    assert _tg(capsys, "report", wd, *p)[0] == 0
    assert _tg(capsys, "annex-iv", wd, *p)[0] == 0
    code, out = _tg(capsys, "verify", wd, *p)
    assert code == 1 and "no approvals yet" in out
    for name in ("alice", "bob"):
        code, out = _tg(
            capsys,
            "sign",
            wd,
            "--key",
            keys / f"{name}.key",
            "--decision",
            "approve",
            "--comment",
            "looks good",
            "--registry",
            reg,
            *p,
        )
        assert code == 0, out
    code, out = _tg(capsys, "verify", wd, "--registry", reg, *p)
    assert code == 0 and "approved" in out and "2 signature(s) verified" in out
    code, out = _tg(capsys, "audit", "verify", wd, *p)
    assert code == 0 and "audit trail verified" in out

    # a changed byte in the adapter: verify names the file, promote refuses
    saved = tmp_path / "saved"
    shutil.copytree(wd, saved)
    f = wd / "runs/run-a/adapter/adapter_model.safetensors"
    f.write_bytes(b"\x00" + f.read_bytes()[1:])
    code, out = _tg(capsys, "verify", wd, *p)
    assert code == 2 and "adapter/adapter_model.safetensors changed after signing" in out
    code, out = _tg(capsys, "promote", wd, "--registry", reg, *p)
    assert code == 2 and "changed after signing" in out
    shutil.rmtree(wd)
    shutil.copytree(saved, wd)

    code, out = _tg(capsys, "promote", wd, "--registry", reg, *p)
    assert code == 0 and "version 1" in out
    code, out = _tg(capsys, "promote", wd, "--registry", reg, *p)
    assert code == 2 and "replayed or stale approval" in out

    # truncating the ledger after approval is caught by the checkpoints embedded in the approvals
    lp = wd / "audit/ledger.jsonl"
    lp.write_text("".join(lp.read_text().splitlines(keepends=True)[:2]))
    (wd / "audit/checkpoints.jsonl").unlink()
    code, out = _tg(capsys, "audit", "verify", wd, *p)
    assert code == 2 and "truncated" in out
    code, out = _tg(capsys, "verify", wd, *p)
    assert code == 2 and "truncated" in out
