"""flows/prefect.yaml: every deployment points at a real flow, with valid parameters and schedules."""

from __future__ import annotations

import ast
import asyncio
import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
PREFECT_YAML = REPO / "flows" / "prefect.yaml"
POOL = "tunegate-process"
EXPECTED = {
    "drift-check-nightly": ("drift-check", "30 2 * * *"),
    "regression-recheck-weekly": ("regression-recheck", "0 4 * * 1"),
    "gate-run-quarterly": ("gate-run", "0 3 1 */3 *"),
}


def _deployments() -> list[dict[str, Any]]:
    doc = yaml.safe_load(PREFECT_YAML.read_text(encoding="utf-8"))
    return list(doc["deployments"])


def _flow_defs(path: Path) -> dict[str, tuple[str | None, list[str]]]:
    """function name -> (the @flow(name=...) argument, parameter names), by AST (no import)."""
    out: dict[str, tuple[str | None, list[str]]] = {}
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for dec in node.decorator_list:
            call = dec if isinstance(dec, ast.Call) else None
            fn = call.func if call else dec
            if isinstance(fn, ast.Name) and fn.id == "flow":
                name = None
                for kw in call.keywords if call else []:
                    if kw.arg == "name" and isinstance(kw.value, ast.Constant):
                        name = str(kw.value.value)
                out[node.name] = (name, [a.arg for a in node.args.args + node.args.kwonlyargs])
    return out


def test_expected_deployments_and_pool() -> None:
    deps = _deployments()
    assert {d["name"] for d in deps} == set(EXPECTED)
    for d in deps:
        assert d["work_pool"]["name"] == POOL, d["name"]
        assert "pull" not in d, "process pool: prefect deploy records the working directory itself"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_entrypoint_file_and_flow_exist(name: str) -> None:
    dep = next(d for d in _deployments() if d["name"] == name)
    rel, func = dep["entrypoint"].split(":")
    path = REPO / rel
    assert not Path(rel).is_absolute() and path.is_file(), f"{rel} (relative to the repo root)"
    flows = _flow_defs(path)
    assert func in flows, f"{rel} has no @flow function {func}; flows there: {sorted(flows)}"
    flow_name, params = flows[func]
    assert flow_name == EXPECTED[name][0]
    assert set(dep.get("parameters") or {}) <= set(params), "a deployment parameter the flow does not take"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_schedules_are_valid_cron(name: str) -> None:
    from prefect.client.schemas.schedules import CronSchedule

    dep = next(d for d in _deployments() if d["name"] == name)
    (sched,) = dep["schedules"]
    assert sched["cron"] == EXPECTED[name][1]
    cron = CronSchedule(cron=sched["cron"], timezone=sched["timezone"])
    assert cron.cron == EXPECTED[name][1]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("gate-run-quarterly", [(1, 1, 3, 0), (4, 1, 3, 0), (7, 1, 3, 0), (10, 1, 3, 0)]),
        ("regression-recheck-weekly", [(1, 4, 4, 0), (1, 11, 4, 0), (1, 18, 4, 0), (1, 25, 4, 0)]),
        ("drift-check-nightly", [(1, 1, 2, 30), (1, 2, 2, 30), (1, 3, 2, 30), (1, 4, 2, 30)]),
    ],
)
def test_schedules_fire_when_documented(name: str, expected: list[tuple[int, int, int, int]]) -> None:
    # the server's own schedule model: the dates its scheduler service would create runs for
    from prefect.server.schemas.schedules import CronSchedule

    dep = next(d for d in _deployments() if d["name"] == name)
    (sched,) = dep["schedules"]
    cron = CronSchedule(cron=sched["cron"], timezone=sched["timezone"])
    start = dt.datetime(2027, 1, 1, tzinfo=dt.UTC)  # a Friday
    fires = list(cron._get_dates_generator(n=4, start=start))
    assert [(f.month, f.day, f.hour, f.minute) for f in fires] == expected


def test_gate_run_parameters_validate_as_the_run_config() -> None:
    from tunegate.pipeline import GateRunConfig

    dep = next(d for d in _deployments() if d["name"] == "gate-run-quarterly")
    cfg = GateRunConfig.model_validate(dep["parameters"]["config"])
    assert cfg.workdir and cfg.task == "classification"


@pytest.mark.parametrize(
    ("name", "kind"), [("fsdp.yaml", "FSDP"), ("ddp.yaml", "MULTI_GPU")], ids=["fsdp", "ddp"]
)
def test_accelerate_configs_load_with_accelerate(name: str, kind: str) -> None:
    """The multi-GPU configs DEPLOY.md names are read by accelerate's own loader (as `launch` does)
    and leave precision to the run config (tunegate's loop, not accelerate, applies it)."""
    from accelerate.commands.config.config_args import load_config_from_file

    cfg = load_config_from_file(str(REPO / "gates" / "accelerate" / name))
    assert str(cfg.distributed_type).endswith(kind)
    assert cfg.mixed_precision == "no" and not cfg.use_cpu
    if kind == "FSDP":
        assert cfg.fsdp_config["fsdp_version"] == 2


def test_only_supported_launch_configs_ship() -> None:
    """tunegate's loop refuses DeepSpeed (see tunegate.training.distributed): no config for it ships."""
    assert sorted(p.name for p in (REPO / "gates" / "accelerate").glob("*.yaml")) == ["ddp.yaml", "fsdp.yaml"]


# -- Kubernetes -------------------------------------------------------------------------------------
K8S_YAML = REPO / "flows" / "prefect.k8s.yaml"
K8S_TEMPLATE = REPO / "flows" / "k8s" / "base-job-template.json"
SAME_FIELDS = ("entrypoint", "description", "tags", "parameters", "schedules", "concurrency_limit")


def _k8s_deployments() -> list[dict[str, Any]]:
    return list(yaml.safe_load(K8S_YAML.read_text(encoding="utf-8"))["deployments"])


def test_k8s_deployments_are_the_process_deployments_on_another_pool() -> None:
    """prefect.k8s.yaml repeats prefect.yaml's deployments (YAML cannot include a file): a drift
    between the two would schedule different work depending on the pool."""
    process = {d["name"]: d for d in _deployments()}
    k8s = {d["name"]: d for d in _k8s_deployments()}
    assert sorted(k8s) == sorted(process)
    for name, dep in k8s.items():
        for key in SAME_FIELDS:
            assert dep.get(key) == process[name].get(key), (name, key)
        assert dep["work_pool"]["name"] == "tunegate-k8s"
        assert dep["work_pool"]["job_variables"]["image"]


def test_k8s_template_keeps_prefects_defaults() -> None:
    """The shipped template only adds to prefect-kubernetes' default (nothing upstream removed)."""
    import json

    from prefect_kubernetes.worker import KubernetesWorker

    default = KubernetesWorker.get_default_base_job_template()
    ours = json.loads(K8S_TEMPLATE.read_text(encoding="utf-8"))
    assert set(default["variables"]["properties"]) <= set(ours["variables"]["properties"])
    assert set(default["job_configuration"]) == set(ours["job_configuration"])


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_k8s_job_manifest_renders_for_every_deployment(name: str) -> None:
    """What the Kubernetes worker does with a flow run's job variables, offline: the manifest has
    the image, the GPU limit, the PII-key secret and the data volume, and the right command."""
    import json

    from prefect.client.orchestration import PrefectClient
    from prefect_kubernetes.worker import KubernetesWorkerJobConfiguration

    template = json.loads(K8S_TEMPLATE.read_text(encoding="utf-8"))
    (dep,) = [d for d in _k8s_deployments() if d["name"] == name]
    values = dep["work_pool"]["job_variables"]  # the template's defaults fill the rest
    # A client that is never called (no block or variable references in the template): without
    # one, Prefect would start a temporary API server just to resolve nothing.
    client = PrefectClient("http://127.0.0.1:9/api")
    cfg = asyncio.run(
        KubernetesWorkerJobConfiguration.from_template_and_values(template, values, client=client)
    )
    pod = cfg.job_manifest["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == dep["work_pool"]["job_variables"]["image"]
    gpus = dep["work_pool"]["job_variables"]["gpus"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == gpus
    assert container["resources"]["requests"]["memory"] == dep["work_pool"]["job_variables"]["memory_request"]
    assert container["envFrom"] == [{"secretRef": {"name": "tunegate-pii-key"}}]
    assert container["volumeMounts"] == [{"name": "tunegate-data", "mountPath": "/srv/tunegate"}]
    assert pod["volumes"][0]["persistentVolumeClaim"] == {"claimName": "tunegate-data"}
    # every path a deployment names lives on the mounted volume (or in the image's repo)
    for value in json.dumps(dep["parameters"]).split('"'):
        if value.startswith("/"):
            assert value.startswith("/srv/tunegate/"), value
