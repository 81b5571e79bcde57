"""Prefect flow ``prepare-data-dask``: the data gate with anonymization sharded over a Dask cluster.

    python flows/prepare_dask.py DATA --task classification --out WORKDIR \\
        [--address tcp://scheduler:8786 | --workers 4] [--shards 8]

Same outputs as ``prepare-data`` (byte for byte: pseudonyms are keyed HMACs, so every worker
gives a value the same placeholder), but the record-level work, PII detection and anonymization,
runs as one Prefect task per *shard* on a Dask cluster: an existing one (``address``, e.g. a
``dask-scheduler`` on Kubernetes) or a ``LocalCluster`` with ``n_workers`` started for the run.
Splitting, validation, leakage checks and the atomic write stay in the flow process: they need
the whole data set and are cheap next to NER.

Every Dask worker needs ``TUNEGATE_PII_KEY`` in its environment (the key never travels with the
task) and the same spaCy model installed; the local cluster inherits this process's environment.
"""

from __future__ import annotations

import argparse
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect_dask import DaskTaskRunner

from tunegate.data.prepare import prepare_data, render_data_report_md
from tunegate.pii.scale import ShardedAnonymizer, anonymize_shard
from tunegate.policy.pinned import resolve_policy


@task(name="anonymize-shard")
def anonymize_shard_task(policy_json: str, records_json: list[str]) -> tuple[list[str], dict[str, Any]]:
    """One shard in one Dask worker; the result is anonymized JSON and a counts-only report."""
    return anonymize_shard(policy_json, records_json)


def _submit_shards(fn: Any, args: list[tuple[str, list[str]]]) -> list[tuple[list[str], dict[str, Any]]]:
    """The ``map_fn`` of :class:`ShardedAnonymizer`: one task per shard, results in shard order."""
    del fn  # always tunegate.pii.scale.anonymize_shard, wrapped as the Prefect task above
    futures = [anonymize_shard_task.submit(policy_json, records) for policy_json, records in args]
    return [f.result() for f in futures]


@flow(name="prepare-data-dask-shards")
def _sharded_gate(
    data: str,
    task_kind: str,
    out: str,
    policy_path: str | None,
    fields: dict[str, str] | None,
    n_shards: int,
) -> dict[str, Any]:
    policy = resolve_policy(out, policy_path)
    anonymizer = ShardedAnonymizer(policy.pii, _submit_shards, n_shards)
    result = prepare_data(data, task_kind, out, policy=policy, fields=fields, anonymizer=anonymizer)
    report = dict(result.report)
    report["shards"] = anonymizer.last_shard_sizes  # the returned dict only; data_report.json is unchanged
    return report


@flow(name="prepare-data-dask")
def prepare_data_dask_flow(
    data: str,
    task_kind: str = "classification",
    out: str = "workdir",
    policy_path: str | None = None,
    fields: dict[str, str] | None = None,
    address: str | None = None,
    n_workers: int = 2,
    n_shards: int | None = None,
    processes: bool = True,
) -> dict[str, Any]:
    """Run the data gate with anonymization on Dask; returns the data report plus the shard sizes.

    ``address``: an existing Dask scheduler; otherwise a LocalCluster of ``n_workers`` workers
    (one thread each; ``processes`` False runs them as threads of this process). ``n_shards``
    defaults to twice the local worker count (a slow shard does not hold up the rest), or 8 on
    an existing cluster.
    """
    if address:
        runner = DaskTaskRunner(address=address)
    else:
        runner = DaskTaskRunner(
            cluster_kwargs={
                "n_workers": n_workers,
                "threads_per_worker": 1,
                "processes": processes,
                "dashboard_address": None,
                "host": "127.0.0.1",
            }
        )
    shards = n_shards or (8 if address else 2 * n_workers)
    # DaskTaskRunner is a TaskRunner of PrefectDaskFuture; Prefect's stub names the base future type
    sharded = _sharded_gate.with_options(task_runner=runner)  # type: ignore[arg-type]
    report = sharded(data, task_kind, out, policy_path, fields, shards)
    create_markdown_artifact(
        key="data-report",
        markdown=render_data_report_md(report),
        description=f"tunegate data gate (Dask, {len(report['shards'])} shards): {report['verdict']}",
    )
    get_run_logger().info(
        "data gate %s over %d shards %s", report["verdict"], len(report["shards"]), report["shards"]
    )
    return report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data")
    ap.add_argument("--task", default="classification")
    ap.add_argument("--out", default="workdir")
    ap.add_argument("--policy", default=None)
    ap.add_argument("--group", default=None, help="input column that groups records (kept on one side)")
    ap.add_argument("--address", default=None)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--shards", type=int, default=None)
    args = ap.parse_args()
    fields = {"group": args.group} if args.group else None
    report = prepare_data_dask_flow(
        args.data, args.task, args.out, args.policy, fields, args.address, args.workers, args.shards
    )
    raise SystemExit(0 if report["verdict"] == "pass" else 1)


if __name__ == "__main__":
    main()
