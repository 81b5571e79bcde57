"""General-capability regression with lm-evaluation-harness, offline and paired per item.

The same task list runs on the base and on the tuned model (a peft adapter is evaluated through
the loaded ``PeftModel``; a full fine-tune as is) with ``lm_eval.simple_evaluate`` and
``log_samples=True``. Items are matched by ``doc_id`` and the delta of the per-item metric gets a
paired-bootstrap interval, like the hold-out metrics. Every task records its lm-eval version, a
hash of the config actually run and of the items' ``doc_hash`` values, the item counts, and the
``limit`` if one was used (the gate's ``regression_limit_disclosed`` check flags it).

Items longer than the model's context window are handled by an explicit rule
(``evaluation.regression_overlong``) instead of lm-eval's bare ``AssertionError`` (an answer
longer than the window) or its silent left-truncation (a context that does not fit):

* ``skip`` (default): every request of such an item is left unscored and the item is dropped
  from the per-item results of both models;
* ``truncate_context``: an item whose context does not fit is kept with its context
  left-truncated (lm-eval's own rule); an item whose *answer* alone exceeds the window cannot be
  scored and is skipped.

Either way the items are counted, their ``doc_id``s recorded, and the gate's
``regression_limit_disclosed`` check treats them like a ``limit`` (a partial benchmark).
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from tunegate.errors import ConfigError, StageError
from tunegate.evaluation.config import EvaluationPolicy, resolve_shared_dir, resolve_task_dir
from tunegate.evaluation.evidence import RegressionTaskEvidence
from tunegate.evaluation.stats import paired_mean_bootstrap
from tunegate.provenance import atomic_write_text, digest_json, sha256_file

_PLACEHOLDER = re.compile(r"\$\{(TUNEGATE_SHARED|TUNEGATE_CACHE|TUNEGATE_TASK_DIR)\}")


@dataclass
class TaskSpec:
    """One task ready for lm-eval: its config (dict) or a standard task name, or a skip reason."""

    name: str
    config: dict[str, Any] | None = None  # None: a standard lm-eval task name
    metric: str = "acc"
    filter: str = "none"
    skip_reason: str | None = None
    data_sha256: dict[str, str] = field(default_factory=dict)


@dataclass
class TaskRun:
    """One model's per-item results on one task."""

    task: str
    metric: str
    version: str | None
    items: dict[int, float]
    n_available: int | None
    limit: int | None
    task_hash: str
    higher_is_better: bool = True
    overlong_skipped: list[int] = field(default_factory=list)
    overlong_truncated: list[int] = field(default_factory=list)
    context_length: int | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["items"] = {str(k): v for k, v in sorted(self.items.items())}
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TaskRun:
        d = dict(d)
        d["items"] = {int(k): float(v) for k, v in d["items"].items()}
        return cls(**d)


def _substitute(obj: Any, values: dict[str, str]) -> Any:
    if isinstance(obj, str):
        return _PLACEHOLDER.sub(lambda m: values[m.group(1)], obj)
    if isinstance(obj, dict):
        return {k: _substitute(v, values) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_substitute(v, values) for v in obj]
    return obj


def task_files(task_dir: Path) -> dict[str, Path]:
    """Task name -> YAML file for every task config in ``task_dir``."""
    out: dict[str, Path] = {}
    for path in sorted(task_dir.glob("*.yaml")):
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError:
            raise ConfigError(f"{path}: is not valid YAML") from None
        if isinstance(data, dict) and isinstance(data.get("task"), str):
            out[data["task"]] = path
    return out


def _join_labels(spec: dict[str, str]) -> Path:
    """Write ``questions`` (JSONL) with line i of ``labels`` added as ``label_field`` (PIQA layout)."""
    q, lab, out = Path(spec["questions"]), Path(spec["labels"]), Path(spec["out"])
    field_name = spec.get("label_field", "label")
    questions = q.read_text(encoding="utf-8").splitlines()
    labels = lab.read_text(encoding="utf-8").split()
    if len(questions) != len(labels):
        raise StageError(f"{q.name} has {len(questions)} lines but {lab.name} has {len(labels)}")
    lines = []
    for i, (line, label) in enumerate(zip(questions, labels, strict=True), start=1):
        row = json.loads(line)
        try:
            row[field_name] = int(label)
        except ValueError:
            raise StageError(f"{lab}: line {i} is not an integer label") from None
        lines.append(json.dumps(row, ensure_ascii=False, sort_keys=True))
    if not out.exists() or out.read_text(encoding="utf-8") != "\n".join(lines) + "\n":
        atomic_write_text(out, "\n".join(lines) + "\n")
    return out


def resolve_tasks(policy: EvaluationPolicy, cache_dir: Path) -> list[TaskSpec]:
    """Load, resolve and (where needed) materialize each configured task; skip missing data with a reason."""
    task_dir = resolve_task_dir(policy)
    files = task_files(task_dir) if task_dir.is_dir() else {}
    values = {
        "TUNEGATE_SHARED": str(resolve_shared_dir(policy)),
        "TUNEGATE_CACHE": str(cache_dir),
        "TUNEGATE_TASK_DIR": str(task_dir),
    }
    specs = []
    for name in policy.regression_tasks:
        if name not in files:
            specs.append(TaskSpec(name=name, config=None))
            continue
        raw = yaml.safe_load(files[name].read_text(encoding="utf-8"))
        cfg = _substitute(copy.deepcopy(raw), values)
        extra = cfg.pop("tunegate", {}) or {}
        spec = TaskSpec(
            name=name, config=cfg, metric=extra.get("metric", "acc"), filter=extra.get("filter", "none")
        )
        sources: list[Path] = []
        join = extra.get("join_labels")
        if join:
            sources += [Path(join["questions"]), Path(join["labels"])]
        data_files = (cfg.get("dataset_kwargs") or {}).get("data_files") or {}
        if not join:
            sources += [Path(p) for p in data_files.values()]
        missing = [str(p) for p in sources if not p.is_file()]
        if missing:
            spec.skip_reason = (
                f"data not found: {', '.join(missing)} (set TUNEGATE_SHARED or evaluation.shared_dir)"
            )
            specs.append(spec)
            continue
        spec.data_sha256 = {p.name: sha256_file(p) for p in sources}
        if join:
            _join_labels(join)
        cfg.setdefault("dataset_kwargs", {})["cache_dir"] = str(cache_dir / "hf_datasets")
        specs.append(spec)
    return specs


def _lm_for(model: Any, tokenizer: Any, batch_size: int, overlong_rule: str = "skip") -> Any:
    """lm-eval's HF model over an already loaded model, with the over-long rule applied."""
    from lm_eval.models.huggingface import HFLM

    class WindowedHFLM(HFLM):  # type: ignore[misc]
        """HFLM that applies ``overlong_rule`` before lm-eval sees an item that does not fit."""

        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            #: task -> doc_id -> "skipped" | "truncated"
            self.overlong: dict[str, dict[int, str]] = {}

        def _pair(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
            if context == "":  # lm-eval's rule for an empty context
                cont = self.tok_encode(continuation, add_special_tokens=False)
                if self.prefix_token_id != cont[0]:
                    return [self.prefix_token_id], cont
                return cont[:1], cont[1:]
            return self._encode_pair(context, continuation)  # type: ignore[no-any-return]

        def loglikelihood(self, requests: list[Any], disable_tqdm: bool = False) -> list[tuple[float, bool]]:
            window = int(self.max_length)
            status: dict[tuple[str, int], str] = {}
            for req in requests:
                ctx, cont = self._pair(*req.args)
                key = (str(req.task_name), int(req.doc_id))
                if len(cont) > window:
                    status[key] = "skipped"  # the answer alone does not fit: cannot be scored
                elif len(ctx) + len(cont) > window + 1 and status.get(key) != "skipped":
                    status[key] = "skipped" if overlong_rule == "skip" else "truncated"
            for (task, doc), how in status.items():
                self.overlong.setdefault(task, {})[doc] = how
            keep = [
                i
                for i, r in enumerate(requests)
                if status.get((str(r.task_name), int(r.doc_id))) != "skipped"
            ]
            # a skipped item's requests are never run; its placeholder result is dropped later
            out: list[tuple[float, bool]] = [(0.0, False)] * len(requests)
            if keep:
                done = super().loglikelihood([requests[i] for i in keep], disable_tqdm=disable_tqdm)
                for i, res in zip(keep, done, strict=True):
                    out[i] = res
            return out

    device = str(next(model.parameters()).device)
    return WindowedHFLM(pretrained=model, tokenizer=tokenizer, device=device, batch_size=batch_size)


def run_tasks(
    model: Any, tokenizer: Any, specs: list[TaskSpec], policy: EvaluationPolicy
) -> dict[str, TaskRun | str]:
    """Run every runnable task on one model. Returns task -> TaskRun, or task -> skip reason."""
    import lm_eval
    from lm_eval.tasks import TaskManager

    out: dict[str, TaskRun | str] = {}
    runnable = [s for s in specs if s.skip_reason is None]
    for s in specs:
        if s.skip_reason is not None:
            out[s.name] = s.skip_reason
    if not runnable:
        return out
    lm = _lm_for(model, tokenizer, policy.regression_batch_size, policy.regression_overlong)
    tm = TaskManager(include_defaults=any(s.config is None for s in runnable))
    for spec in runnable:
        task_arg: Any = spec.config if spec.config is not None else spec.name
        try:
            res = lm_eval.simple_evaluate(
                model=lm,
                tasks=[task_arg],
                task_manager=tm,
                num_fewshot=policy.regression_num_fewshot,
                limit=policy.regression_limit,
                log_samples=True,
                bootstrap_iters=0,
                random_seed=policy.seed,
                numpy_random_seed=policy.seed,
                torch_random_seed=policy.seed,
                fewshot_random_seed=policy.seed,
            )
        except Exception as exc:  # a standard task without local data, a broken config, ...
            out[spec.name] = f"lm-eval could not run the task ({type(exc).__name__}: {str(exc)[:200]})"
            continue
        if res is None or spec.name not in res.get("samples", {}):
            out[spec.name] = "lm-eval returned no samples"
            continue
        overlong = lm.overlong.pop(spec.name, {})
        out[spec.name] = _task_run(spec, res, policy, overlong, int(lm.max_length))
    return out


def _task_run(
    spec: TaskSpec,
    res: dict[str, Any],
    policy: EvaluationPolicy,
    overlong: dict[int, str] | None = None,
    context_length: int | None = None,
) -> TaskRun:
    samples = res["samples"][spec.name]
    rows = [s for s in samples if s.get("filter", "none") == spec.filter] or samples
    if spec.metric not in rows[0]:
        raise StageError(f"lm-eval task {spec.name} has no per-item metric {spec.metric!r}")
    overlong = overlong or {}
    skipped = sorted(d for d, how in overlong.items() if how == "skipped")
    items = {int(s["doc_id"]): float(s[spec.metric]) for s in rows if int(s["doc_id"]) not in set(skipped)}
    doc_hashes = sorted(str(s.get("doc_hash", "")) for s in rows)
    n_info = res.get("n-samples", {}).get(spec.name, {})
    hib = res.get("higher_is_better", {}).get(spec.name, {}).get(spec.metric, True)
    version = res.get("versions", {}).get(spec.name)
    task_hash = digest_json({"config": spec.config or spec.name, "doc_hashes": doc_hashes})
    return TaskRun(
        task=spec.name,
        metric=spec.metric,
        version=None if version is None else str(version),
        items=items,
        n_available=n_info.get("original"),
        limit=policy.regression_limit,
        task_hash=task_hash,
        higher_is_better=bool(hib),
        overlong_skipped=skipped,
        overlong_truncated=sorted(d for d, how in overlong.items() if how == "truncated"),
        context_length=context_length,
    )


def compare_tasks(
    specs: list[TaskSpec],
    base: dict[str, TaskRun | str],
    tuned: dict[str, TaskRun | str],
    policy: EvaluationPolicy,
) -> list[RegressionTaskEvidence]:
    """Per task: paired per-item delta (tuned - base) with its bootstrap interval."""
    out = []
    for spec in specs:
        b, t = base.get(spec.name), tuned.get(spec.name)
        if not isinstance(b, TaskRun) or not isinstance(t, TaskRun):
            reason = b if isinstance(b, str) else t if isinstance(t, str) else "not run"
            out.append(
                RegressionTaskEvidence(
                    task=spec.name,
                    skipped=True,
                    reason=reason,
                    limit=policy.regression_limit,
                    data_sha256=spec.data_sha256,
                )
            )
            continue
        if b.task_hash != t.task_hash:
            out.append(
                RegressionTaskEvidence(
                    task=spec.name,
                    skipped=True,
                    reason="base and tuned ran different items (task hash differs)",
                )
            )
            continue
        ids = sorted(set(b.items) & set(t.items))
        over = sorted(
            set(b.overlong_skipped)
            | set(t.overlong_skipped)
            | set(b.overlong_truncated)
            | set(t.overlong_truncated)
        )
        bs = np.array([b.items[i] for i in ids])
        ts = np.array([t.items[i] for i in ids])
        iv = paired_mean_bootstrap(
            bs, ts, resamples=policy.bootstrap_samples, confidence=policy.confidence, seed=policy.seed
        )
        out.append(
            RegressionTaskEvidence(
                task=spec.name,
                metric=spec.metric,
                higher_is_better=t.higher_is_better,
                version=t.version,
                baseline=float(bs.mean()),
                tuned=float(ts.mean()),
                delta=iv.delta,
                ci_low=iv.low,
                ci_high=iv.high,
                confidence=iv.confidence,
                n=len(ids),
                n_available=t.n_available,
                limit=t.limit,
                n_overlong=len(over),
                overlong_rule=policy.regression_overlong if over else None,
                overlong_doc_ids=over[:50],
                context_length=t.context_length,
                task_hash=t.task_hash,
                data_sha256=spec.data_sha256,
            )
        )
    return out
