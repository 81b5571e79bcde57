"""``prepare-data-dask`` on a local Dask cluster (2 worker processes) equals the one-process gate."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from tunegate.data.prepare import prepare_data
from tunegate.demo_data import write_demo_tickets
from tunegate.policy.schema import load_policy

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow
COMPARED = ("train.jsonl", "validation.jsonl", "holdout.jsonl", "holdout.manifest.json")


def test_dask_sharded_prepare_equals_single_process(pii_key: str, tmp_path: Path) -> None:
    from helpers.prefect_server import local_prefect_server
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import TaskRunFilter, TaskRunFilterName
    from prefect.client.schemas.sorting import TaskRunSort

    from flows.prepare_dask import prepare_data_dask_flow

    data = write_demo_tickets(tmp_path / "tickets.jsonl", n=300, seed=7)
    fields = {"group": "customer_id"}
    single = prepare_data(data, "classification", tmp_path / "single", policy=load_policy(), fields=fields)

    with local_prefect_server():
        report = prepare_data_dask_flow(
            str(data), "classification", str(tmp_path / "dask"), None, fields, n_workers=2, n_shards=4
        )

        async def shard_task_runs() -> int:
            async with get_client() as client:
                # explicit limit and sort: Prefect 3.8.8's client sends null defaults, which the
                # server (fastapi 0.154) rejects with 422
                runs = await client.read_task_runs(
                    task_run_filter=TaskRunFilter(name=TaskRunFilterName(like_="anonymize-shard")),
                    sort=TaskRunSort.EXPECTED_START_TIME_DESC,
                    limit=100,
                )
            return len(runs)

        n_task_runs = asyncio.run(shard_task_runs())

    assert report["verdict"] == single.report["verdict"] == "pass"
    assert len(report["shards"]) == 4 and sum(report["shards"]) == 300
    assert n_task_runs == 4, "one Prefect task per shard, not per record"
    for name in COMPARED:
        a = (single.data_dir / name).read_bytes()
        b = (tmp_path / "dask" / "data" / name).read_bytes()
        assert a == b, f"{name} differs between the sharded and the one-process gate"
    assert report["pii"]["totals"] == single.report["pii"]["totals"]
    assert report["pii"]["records_scanned"] == 300
    # the placeholders really are HMAC pseudonyms (the data carried PII), not untouched text
    assert "<EMAIL_ADDRESS_" in (tmp_path / "dask" / "data" / "train.jsonl").read_text(encoding="utf-8")


def test_existing_cluster_by_address(pii_key: str, tmp_path: Path, free_port: int) -> None:
    """``address=``: a Dask scheduler and worker started on their own (`dask scheduler`, `dask
    worker`), as on a real cluster; the flow connects to it and the output is byte-identical."""
    import os
    import subprocess

    from distributed import Client
    from helpers.policies import mechanics_policy, mechanics_policy_file
    from helpers.prefect_server import local_prefect_server

    from flows.prepare_dask import prepare_data_dask_flow

    # what is tested here is the cluster connection; PII of shards is the test above
    data = write_demo_tickets(tmp_path / "tickets.jsonl", n=240, seed=11)
    fields = {"group": "customer_id"}
    single = prepare_data(
        data, "classification", tmp_path / "single", policy=mechanics_policy(), fields=fields
    )
    address = f"tcp://127.0.0.1:{free_port}"
    env = {**os.environ, "PYTHONPATH": str(REPO)}  # the worker imports the flow's task by name
    with local_prefect_server():
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                 "--port", address.rsplit(":", 1)[1], "--no-dashboard"],
                env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            ),
            subprocess.Popen(
                [sys.executable, "-m", "distributed.cli.dask_worker", address, "--nworkers", "1",
                 "--nthreads", "1", "--no-dashboard"],
                env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            ),
        ]  # fmt: skip
        try:
            with Client(address, timeout="60s") as client:
                client.wait_for_workers(1, timeout=120)
                workers = list(client.scheduler_info()["workers"])
            report = prepare_data_dask_flow(
                str(data),
                "classification",
                str(tmp_path / "dask"),
                str(mechanics_policy_file(tmp_path)),
                fields=fields,
                address=address,
            )
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait(timeout=60)
    assert len(workers) == 1
    assert report["verdict"] == single.report["verdict"] == "pass"
    assert len(report["shards"]) == 8 and sum(report["shards"]) == 240  # 8 shards on an existing cluster
    for name in COMPARED:
        assert (single.data_dir / name).read_bytes() == (tmp_path / "dask" / "data" / name).read_bytes(), name
