"""Sharded anonymization: the data gate's record-level work spread over a distributed engine.

``prepare_data`` calls one anonymizer over every record; at scale that is the slow part (spaCy NER
per text). :class:`ShardedAnonymizer` cuts the records into contiguous shards, hands each shard to
``map_fn`` (a Dask/Prefect task per *shard*, never per record), and merges the counts-only reports.

Why the result equals the single-process run byte for byte: each worker builds its own
:class:`~tunegate.pii.anonymize.PIIEngine` from the same policy and the same key, and pseudonyms
are keyed HMACs of the normalized value, so a value gets the same placeholder on every worker. The
one theoretical difference is a collision of two values on the same 8-digit number, which one
engine resolves by bumping the later value and separate engines cannot see (probability ~n²/2·10⁸
per entity type; with ``pseudonym_digits`` raised it vanishes).

Only JSON crosses the process boundary (the policy and the records), never the key: workers read
``TUNEGATE_PII_KEY`` from their own environment, like any other tunegate process. This module
imports no orchestration library; the flow in ``flows/prepare_dask.py`` supplies ``map_fn``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

from tunegate.errors import StageError
from tunegate.pii.anonymize import PIIEngine, merge_reports
from tunegate.pii.config import PIIPolicy
from tunegate.pii.keys import load_pii_key
from tunegate.pii.report import PIIReport
from tunegate.records import Record

#: One shard's work: ``(policy_json, records_json) -> (anonymized records_json, report dict)``.
#: The extra report field a shard returns: its detected names as ``[keyed digest, entity]``.
NAMES_FIELD = "_propagated_names"

ShardFn = Callable[[str, list[str]], tuple[list[str], dict[str, Any]]]
#: Applies the shard function to every ``(policy_json, records_json)`` argument pair, returning the
#: results in argument order (e.g. Prefect ``task.map`` + ``.result()``, or ``Client.map``).
MapFn = Callable[[ShardFn, list[tuple[str, list[str]]]], Sequence[tuple[list[str], dict[str, Any]]]]


def shard(records: Sequence[Record], n: int) -> list[list[Record]]:
    """Split ``records`` into at most ``n`` contiguous, non-empty shards, order preserved.

    Sizes differ by at most one, so no worker gets a straggler's share. Fewer records than ``n``
    gives one shard per record; no records gives no shards.
    """
    if n < 1:
        raise ValueError(f"the number of shards must be >= 1, got {n}")
    k = min(n, len(records))
    if k == 0:
        return []
    base, extra = divmod(len(records), k)
    out: list[list[Record]] = []
    start = 0
    for i in range(k):
        size = base + (1 if i < extra else 0)
        out.append(list(records[start : start + size]))
        start += size
    return out


# One analyzer (spaCy + Presidio recognizers, the slow part to load) per worker process and policy.
# The engine itself is fresh per shard, so a long-lived worker accumulates no pseudonym table and a
# shard's output never depends on what the worker saw before.
_ANALYZERS: dict[str, Any] = {}
# Shards of one process run one at a time (a threaded Dask worker, ``processes=False``, shares
# the analyzer); worker processes give the parallelism.
_LOCK = threading.Lock()


def _engine(policy_json: str) -> PIIEngine:
    key = load_pii_key()
    # the shard is the unit of parallelism: one detection process per worker (no nested pools)
    policy = PIIPolicy.model_validate_json(policy_json).model_copy(update={"n_process": 1})
    analyzer = _ANALYZERS.get(policy_json)
    engine = PIIEngine(policy, key, analyzer=analyzer)
    if analyzer is None:
        _ANALYZERS.clear()  # one policy at a time per worker: do not hold several spaCy pipelines
        _ANALYZERS[policy_json] = engine.analyzer
    return engine


def anonymize_shard(policy_json: str, records_json: list[str]) -> tuple[list[str], dict[str, Any]]:
    """Anonymize one shard in the worker: records as JSON in, anonymized JSON and the report out.

    Runs wherever ``map_fn`` sends it (a Dask worker process); the key comes from that process's
    ``TUNEGATE_PII_KEY``. The report dict holds counts only, never a value.
    """
    records = [Record.model_validate_json(r) for r in records_json]
    with _LOCK:
        engine = _engine(policy_json)
        engine.last_name_table = {}
        out, report = engine.anonymize_records(records)
        # names this shard detected, as keyed digests (never the names): the driver replaces
        # their occurrences in the other shards, as one engine over all records would
        names = sorted([engine.keyed_name(k), e] for k, e in engine.last_name_table.items())
    return [r.to_json() for r in out], {**report.model_dump(mode="json"), NAMES_FIELD: names}


class ShardedAnonymizer:
    """An ``Anonymizer`` for :func:`tunegate.data.prepare.prepare_data` that shards over ``map_fn``.

    ``map_fn(anonymize_shard, [(policy_json, records_json), ...])`` must return one result per
    argument pair, in order; any executor fits (a list comprehension in tests, Prefect tasks on a
    Dask cluster in ``flows/prepare_dask.py``).
    """

    def __init__(self, policy: PIIPolicy, map_fn: MapFn, n_shards: int) -> None:
        if n_shards < 1:
            raise ValueError(f"n_shards must be >= 1, got {n_shards}")
        self.policy = policy
        self.map_fn = map_fn
        self.n_shards = n_shards
        self.last_shard_sizes: list[int] = []

    def __call__(self, records: list[Record]) -> tuple[list[Record], PIIReport]:
        policy_json = self.policy.model_dump_json()
        shards = shard(records, self.n_shards)
        if not shards:  # nothing to distribute: the in-process engine gives the empty report
            return PIIEngine(self.policy, load_pii_key()).anonymize_records([])
        self.last_shard_sizes = [len(s) for s in shards]
        args = [(policy_json, [r.to_json() for r in s]) for s in shards]
        results = list(self.map_fn(anonymize_shard, args))
        if len(results) != len(shards):
            raise StageError(f"the shard executor returned {len(results)} results for {len(shards)} shards")
        out: list[Record] = []
        reports: list[PIIReport] = []
        names: dict[str, str] = {}
        for i, (recs_json, report) in enumerate(results):
            if len(recs_json) != len(shards[i]):
                raise StageError(
                    f"shard {i}: the worker returned {len(recs_json)} records for {len(shards[i])}"
                )
            out.extend(Record.model_validate_json(r) for r in recs_json)
            report = dict(report)
            names.update({str(h): str(e) for h, e in report.pop(NAMES_FIELD, [])})
            reports.append(PIIReport.model_validate(report))
        merged = merge_reports(reports)
        if not names:
            return out, merged
        return self._propagate(out, names, merged)

    def _propagate(
        self, records: list[Record], names: dict[str, str], report: PIIReport
    ) -> tuple[list[Record], PIIReport]:
        """Replace, in every shard's output, the names any shard detected (matched by keyed digest),
        so a name found in one shard never stays raw in another: the one-engine result."""
        from collections import defaultdict

        from tunegate.records import field_family, replace_texts, text_fields

        engine = PIIEngine(self.policy, load_pii_key())
        cache: dict[str, str | None] = {}

        def lookup(name_key: str) -> str | None:
            if name_key not in cache:
                cache[name_key] = names.get(engine.keyed_name(name_key))
            return cache[name_key]

        items = [
            (ri, path, text)
            for ri, r in enumerate(records)
            for path, text in text_fields(r).items()
            if engine.selects(path, None)
        ]
        texts = [t for _, _, t in items]
        # the one-engine rule: no record that writes the word in lower case (detected ones are
        # placeholders by now, so "not detected there" needs no spans)
        spans = engine.without_words_in_lower_case(
            texts, engine.scan_names(texts, lookup), [ri for ri, _, _ in items]
        )
        hit = [k for k, row in enumerate(spans) if row]
        if not hit:
            return records, report
        new_texts = engine.apply_spans([items[k][2] for k in hit], [spans[k] for k in hit])
        per_record: dict[int, dict[str, str]] = defaultdict(dict)
        counts = {e: dict(per) for e, per in report.counts.items()}
        for k, new in zip(hit, new_texts, strict=True):
            ri, path, _ = items[k]
            per_record[ri][path] = new
            for s in spans[k]:
                per = counts.setdefault(s.entity_type, {})
                per[field_family(path)] = per.get(field_family(path), 0) + 1
        out = [replace_texts(r, per_record[i]) if i in per_record else r for i, r in enumerate(records)]
        counts = {e: dict(sorted(per.items())) for e, per in sorted(counts.items())}
        return out, report.model_copy(update={"counts": counts})
