"""``tunegate init DIR``: a team's project folder from the packaged defaults (like ``prefect init``).

    DIR/README.md               next steps, in order
    DIR/gate-run.yaml           a gate-run config that runs as written (example data, offline MiniLM)
    DIR/data/example-tickets.jsonl   synthetic tickets with fake PII (unless example_data=False)
    DIR/gates/policy.yaml       the default policy, commented, fitted to the task kind
    DIR/gates/approvers/README.md    where reviewers' public keys go (no keys are created)
    DIR/flows/                  the Prefect flows and prefect.yaml (deploy from DIR)

Nothing is written unless everything is: the project is built in a temporary folder beside DIR
and renamed into place. An existing non-empty DIR is refused.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path
from typing import Literal

import yaml

from tunegate import __version__, defaults
from tunegate.errors import InputError

Task = Literal["classification", "instruction", "chat"]
POLICY_REL = "gates/policy.yaml"

_README = """\
# {name}: a tunegate project

Written by `tunegate init` (tunegate {version}). Everything here is yours to edit; the files
tunegate ships stay inside the package (`tunegate.defaults`).

| file | what it is |
| --- | --- |
| `gate-run.yaml` | the whole gate for one data export: `tunegate run gate-run.yaml` |
| `gates/policy.yaml` | the gate policy: data checks, PII, thresholds, approvals (commented) |
| `gates/approvers/` | trusted reviewers' public keys (`*.pub`); no keys yet |
| `data/` | your data ({example}) |
| `flows/` | the Prefect flows and `flows/prefect.yaml` (scheduled deployments) |

## Next steps

1. Set the key that pseudonymizes PII (keep it in a secret store, not in this folder):
   `export TUNEGATE_PII_KEY=$(python -c "import secrets; print(secrets.token_hex(32))")`
2. Check the policy: `tunegate validate-policy gates/policy.yaml`
3. Run the gate on the example data (about 5 minutes on 2 CPU cores):
   `tunegate run gate-run.yaml`. A passing gate stops at `approval` (a failing one says which
   checks failed); the report is `work/first-run/runs/<run id>/report.html`.
4. Reviewers: each creates a key pair on their own machine (`tunegate keygen --name alice --out
   ~/.tunegate/keys`), sends you the `.pub`, which you copy into `gates/approvers/`; each then signs
   after reading the report (`tunegate sign work/first-run --key ~/.tunegate/keys/alice.key
   --decision approve --policy gates/policy.yaml --approvers gates/approvers`).
5. Run `tunegate run gate-run.yaml` again: finished stages verify and are skipped, the approval
   verifies, the adapter is promoted into `registry/`.
6. Your own data: point `data` in `gate-run.yaml` at your export, `model` at a local model folder,
   and use a new `workdir` for each new data set (the hold-out of a workdir is frozen).
7. On a schedule: start a Prefect server and worker and deploy from this folder
   (`prefect deploy --prefect-file flows/prefect.yaml --all`); see `flows/DEPLOY.md`.
"""


def _policy_text(task: Task) -> str:
    text = (defaults.gates_dir() / "default.yaml").read_text(encoding="utf-8")
    header = (
        f"# The gate policy of this project, written by `tunegate init` (tunegate {__version__}) from the\n"
        "# packaged default. Check it with:  tunegate validate-policy gates/policy.yaml\n#\n"
    )
    if task == "classification":
        # an encoder classifier has no lm-eval benchmark to regress on: a check that can never run
        # would fail every gate ("tunegate_piqa was not evaluated")
        text, n = re.subn(
            r"(?m)^(\s*)regression_tasks:.*$",
            r"\1regression_tasks: []   # a classifier has no lm-eval benchmark; for a causal LM list tasks"
            r" (gates/lm_eval_tasks/ or lm-eval names)",
            text,
            count=1,
        )
        if n != 1:  # pragma: no cover - guarded by the policy test
            raise InputError("the packaged default policy has no evaluation.regression_tasks key")
    return header + text


def _gate_run_config(task: Task, example_data: bool) -> str:
    from tunegate.demo import ENCODER_OVERRIDES, minilm_path

    model = str(minilm_path()) if task == "classification" else "/path/to/a/local/causal-lm"
    data = "data/example-tickets.jsonl" if example_data else "data/your-export.jsonl"
    cfg = {
        "data": data,
        "task": task,
        "workdir": "work/first-run",
        "model": model,
        "method": "lora",
        "fields": {"group": "customer_id"} if example_data else {},
        "policy": POLICY_REL,
        "train_config": None,
        "train_overrides": list(ENCODER_OVERRIDES) if task == "classification" else [],
        "registry": "registry",
        "approvers_dir": "gates/approvers",
        "approval_timeout_s": 0,
        "name": "my-model",
    }
    head = (
        "# One gate run: prepare, baseline, train, evaluate, decide, report, approval, promote.\n"
        "#   tunegate run gate-run.yaml\n"
        "# Paths are relative to this file. Fields: tunegate.pipeline.GateRunConfig. `model` is a local\n"
        "# folder (tunegate never downloads; the default is the offline MiniLM encoder shipped as a\n"
        "# package). Use a new `workdir` for new data: a workdir's hold-out is frozen.\n"
    )
    return head + yaml.safe_dump(cfg, sort_keys=False)


def scaffold_project(
    dest: str | Path, *, task: Task = "classification", example_data: bool = True
) -> list[Path]:
    """Write a project into ``dest`` (absent or empty); returns the files written, under ``dest``."""
    dest = Path(dest).absolute()
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise InputError(
            "already exists and is not an empty folder; tunegate init writes a new project",
            path=dest,
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.init.", dir=dest.parent))
    try:
        (tmp / "gates").mkdir()
        (tmp / POLICY_REL).write_text(_policy_text(task), encoding="utf-8")
        defaults.copy_tree("gates", tmp / "gates", only=("approvers/README.md",))
        flows = defaults.copy_tree("flows", tmp / "flows")
        for path in flows:  # the deployments' policy is this project's
            if path.suffix == ".yaml":
                path.write_text(
                    path.read_text(encoding="utf-8").replace("gates/default.yaml", POLICY_REL),
                    encoding="utf-8",
                )
        (tmp / "data").mkdir()
        if example_data:
            from tunegate.demo_data import write_demo_tickets

            write_demo_tickets(tmp / "data" / "example-tickets.jsonl", 600, seed=7)
        (tmp / "gate-run.yaml").write_text(_gate_run_config(task, example_data), encoding="utf-8")
        example = "synthetic example tickets with fake PII" if example_data else "put your export here"
        (tmp / "README.md").write_text(
            _README.format(name=dest.name, version=__version__, example=example), encoding="utf-8"
        )
        if dest.exists():
            dest.rmdir()
        tmp.rename(dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return sorted(p for p in dest.rglob("*") if p.is_file())
