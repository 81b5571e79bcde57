"""Checkpoints, `tunegate audit verify`, retention, and property tests for canonical JSON and the ledger."""

from __future__ import annotations

import json
import shutil
import stat
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tunegate import ledger
from tunegate.approval.checkpoint import verify_checkpoints, write_checkpoint
from tunegate.cli import main
from tunegate.provenance import canonical_json

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=20,
)


@given(json_values)
def test_canonical_json_round_trips_and_is_stable(value: object) -> None:
    text = canonical_json(value)
    back = json.loads(text)
    assert canonical_json(back) == text
    if isinstance(value, dict):
        assert canonical_json(dict(reversed(list(value.items())))) == text


def _ledger(tmp: Path, n: int) -> Path:
    wd = tmp / "wd"
    for i in range(n):
        ledger.append_event(wd, f"stage{i}", outputs={"f": f"{i:064x}"}, time="2026-01-01T00:00:00Z")
    write_checkpoint(wd, "test")
    return wd


_TEMPLATE: dict[int, Path] = {}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    n=st.integers(min_value=2, max_value=6),
    op=st.sampled_from(["edit", "delete", "reorder", "truncate"]),
    data=st.data(),
)
def test_any_ledger_edit_is_detected(tmp_path_factory, n: int, op: str, data: st.DataObject) -> None:  # type: ignore[no-untyped-def]
    if n not in _TEMPLATE:
        _TEMPLATE[n] = _ledger(tmp_path_factory.mktemp("ledger"), n)
    wd = tmp_path_factory.mktemp("case") / "wd"
    shutil.copytree(_TEMPLATE[n], wd)
    lp = ledger.ledger_path(wd)
    lines = lp.read_text().splitlines(keepends=True)
    i = data.draw(st.integers(min_value=0, max_value=n - 1))
    if op == "edit":
        ev = json.loads(lines[i])
        ev["details"] = {"edited": data.draw(st.text(min_size=1, max_size=5))}
        lines[i] = canonical_json(ev) + "\n"
    elif op == "delete":
        del lines[i]
    elif op == "reorder":
        j = data.draw(st.integers(min_value=0, max_value=n - 1).filter(lambda j: j != i))
        lines[i], lines[j] = lines[j], lines[i]
    else:
        lines = lines[: data.draw(st.integers(min_value=0, max_value=n - 1))]
    lp.write_text("".join(lines))
    rep = verify_checkpoints(wd)
    assert not rep.ok, (op, i)
    if op in ("edit", "reorder"):
        assert rep.first_bad == min(i, j if op == "reorder" else i) + 1


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    out = capsys.readouterr()
    return int(exc.value.code or 0), out.out + out.err


def test_audit_verify_cli_names_first_bad_entry_and_checkpoint_key_mode(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wd = _ledger(tmp_path, 4)
    key = wd / "audit/checkpoint_key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    code, out = _cli(capsys, "audit", "verify", str(wd))
    assert code == 0 and "audit trail verified" in out
    assert _cli(capsys, "audit", "checkpoint", str(wd))[0] == 0
    lp = ledger.ledger_path(wd)
    lines = lp.read_text().splitlines(keepends=True)
    ev = json.loads(lines[2])
    ev["stage"] = "forged"
    lines[2] = canonical_json(ev) + "\n"
    lp.write_text("".join(lines))
    code, out = _cli(capsys, "audit", "verify", str(wd))
    assert code == 2
    assert "first bad entry: 3" in out and "entry 3 was edited" in out


def test_forged_checkpoint_and_front_pruning_detected(tmp_path: Path) -> None:
    wd = _ledger(tmp_path, 3)
    cpath = wd / "audit/checkpoints.jsonl"
    cp = json.loads(cpath.read_text().splitlines()[-1])
    cp["size"] = 2
    cpath.write_text(canonical_json(cp) + "\n")
    rep = verify_checkpoints(wd)
    assert any("checkpoint signature does not verify" in p for p in rep.problems)
    wd2 = _ledger(tmp_path / "b", 3)
    lp = ledger.ledger_path(wd2)
    lp.write_text("".join(lp.read_text().splitlines(keepends=True)[1:]))
    rep2 = verify_checkpoints(wd2)
    assert not rep2.ok and rep2.first_bad == 1
