"""The ``prepare-data`` flow on Prefect's local ephemeral server: real run, artifact published."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from tunegate.demo_data import write_demo_tickets

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


def _load_flow_module() -> object:
    spec = importlib.util.spec_from_file_location("flows_prepare", REPO / "flows" / "prepare.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_prepare_flow_runs_and_publishes_the_report(
    tmp_path: Path, pii_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from helpers.prefect_server import local_prefect_server
    from prefect.client.orchestration import get_client

    data = write_demo_tickets(tmp_path / "tickets.jsonl", 260, seed=5)
    mod = _load_flow_module()
    with local_prefect_server():
        report = mod.prepare_data_flow(  # type: ignore[attr-defined]
            str(data), "classification", str(tmp_path / "wd"), None, {"group": "customer_id"}
        )
        assert report["verdict"] == "pass"

        async def artifacts() -> list[dict[str, object]]:
            # Raw request: Prefect 3.8's client sends explicit nulls its own server rejects (422)
            # with fastapi 0.154; omitting the optional filters is accepted.
            async with get_client() as client:
                body = {"artifacts": {"key": {"any_": ["data-report"]}}, "limit": 10, "offset": 0}
                resp = await client._client.post("/artifacts/filter", json={**body, "sort": "CREATED_DESC"})
                resp.raise_for_status()
                return list(resp.json())

        import asyncio

        found = asyncio.run(artifacts())
    assert found, "the data report was not published as a Prefect artifact"
    md = str(found[0]["data"])
    assert "Data gate report" in md and "PASS" in md
    on_disk = json.loads((tmp_path / "wd" / "data" / "data_report.json").read_text())
    assert on_disk["verdict"] == "pass"
    # figures only: no raw ticket text reaches the artifact
    first_text = json.loads(data.read_text().splitlines()[0])["text"]
    assert first_text[:40] not in md
