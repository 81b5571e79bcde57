"""Property: any single mutation of a workdir is either refused by `verify`, or leaves its answer
(approved or not, and the approval digest) unchanged. A mutation never turns "no" into "yes".

Run on two starting points: fully approved (alice + bob) and one short (alice only). Mutations:
flip a byte, truncate, delete, append, add a new file beside an existing one, replace a file by
a symlink to itself copied outside, chmod, and add or remove a line of a JSONL file.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from adv_support import Env
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tunegate.approval.verify import verify_run
from tunegate.errors import TunegateError

OPS = ("flip", "truncate", "delete", "append", "add_sibling", "symlink", "chmod", "drop_line")


def _files(wd: Path) -> list[str]:
    out = []
    for p in sorted(wd.rglob("*")):
        rel = p.relative_to(wd).as_posix()
        if p.is_file() and not p.is_symlink() and not rel.endswith(".lock") and rel != ".tunegate.owner":
            out.append(rel)
    return out


def _answer(env: Env) -> tuple[bool, str | None] | str:
    try:
        r = verify_run(env.wd, policy=env.policy, run_id="run-a")
    except TunegateError as exc:
        return f"refused: {type(exc).__name__}"
    return r.approved, r.approval_digest


def _mutate(env: Env, rel: str, op: str, pos: int, byte: int) -> None:
    p = env.wd / rel
    os.chmod(p, 0o644)
    data = p.read_bytes()
    if op == "flip" and data:
        b = bytearray(data)
        b[pos % len(b)] ^= byte or 1
        p.write_bytes(bytes(b))
    elif op == "truncate":
        p.write_bytes(data[: pos % (len(data) or 1)])
    elif op == "delete":
        p.unlink()
    elif op == "append":
        p.write_bytes(data + bytes([byte]))
    elif op == "add_sibling":
        (p.parent / f"planted-{pos % 7}.json").write_bytes(data)
    elif op == "symlink":
        outside = env.tmp / "outside" / rel.replace("/", "_")
        outside.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(p, outside)
        p.unlink()
        os.symlink(outside, p)
    elif op == "chmod":
        os.chmod(p, 0o600 if pos % 2 else 0o666)
    elif op == "drop_line":
        lines = data.splitlines(keepends=True)
        if lines:
            del lines[pos % len(lines)]
        p.write_bytes(b"".join(lines))


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["signed", "partial"])
def test_any_mutation_is_refused_or_changes_nothing(make_env: Callable[[str], Env], kind: str) -> None:
    base = make_env(kind)
    before = _answer(base)
    assert before == (kind == "signed", before[1])  # type: ignore[index]
    files = _files(base.wd)

    @settings(
        max_examples=35,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(
        rel=st.sampled_from(files),
        op=st.sampled_from(OPS),
        pos=st.integers(min_value=0, max_value=1 << 16),
        byte=st.integers(min_value=0, max_value=255),
    )
    def check(rel: str, op: str, pos: int, byte: int) -> None:
        env = make_env(kind)
        _mutate(env, rel, op, pos, byte)
        after = _answer(env)
        assert isinstance(after, str) or after == before, (rel, op, before, after)
        if kind == "partial":  # "no" never becomes "yes"
            assert isinstance(after, str) or not after[0]
        shutil.rmtree(env.wd, ignore_errors=True)

    check()
