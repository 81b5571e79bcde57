"""Labels and closed fields are codes from a closed set, not free text: checked, never anonymized.

A label is the training *target*: anonymizing it would corrupt the class, so it is not among the
values :func:`tunegate.records.text_fields` hands to the PII engine. Instead this check runs on the
raw records before anything is written, and fails the gate (no splits are written) when

* a label (``label`` or ``label_2``) or a value of a ``closed_fields`` path holds PII;
* the label set looks like free text: more distinct labels than ``max_labels``, more distinct
  labels per record than ``max_label_ratio`` (from 50 records on; ``--field label=text`` gives a
  ratio near 1), or a label longer than ``max_label_chars``;
* a closed-field value holds whitespace or is longer than ``max_label_chars``.

Closed-field values (customer ids, group codes) are checked for the structured identifiers
(e-mail, phone, card, IBAN, IP, ...) but not for the NER entity types (:data:`NER_ENTITIES`): an
opaque code is NER's worst case (the offline spaCy model tags 4 of 80 codes like ``acct_12`` as
PERSON), and a code with a space in it fails as free text anyway. Labels are checked for every
entity type (no false positive on the 77 Banking77 and 45 CLINC150 labels tried).

The result names counts, entity types, field names and record ids, never a value: a label that
holds a name must not reach the report either.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from typing import Any

from tunegate.data.config import DataPolicy
from tunegate.data.results import CheckResult, id_list, short_ids
from tunegate.records import Record, text_fields

#: ``texts -> one list of spans (objects with .entity_type) per text``, e.g. ``PIIEngine.detect``.
Detector = Callable[[Sequence[str]], Sequence[Sequence[Any]]]
MIN_RECORDS_FOR_RATIO = 50
#: Entity types that come from the NER model rather than a pattern (ignored for closed fields).
NER_ENTITIES = frozenset({"PERSON", "LOCATION", "NRP", "ORGANIZATION", "DATE_TIME"})


def _closed_value(record: Record, path: str) -> str | None:
    if path == "label":
        return record.label
    return text_fields(record).get(path)


def check_labels(records: Sequence[Record], policy: DataPolicy, detect: Detector) -> CheckResult:
    """The closed-set check (see the module docstring); a failing result blocks before any write."""
    values: dict[str, set[str]] = defaultdict(set)  # value -> ids carrying it (labels, closed fields)
    is_label: set[str] = set()  # values that occur as a label (checked for every entity type)
    labels: Counter[str] = Counter()
    long_ids: set[str] = set()
    free_text: dict[str, set[str]] = defaultdict(set)  # closed field -> ids
    for r in records:
        for name in ("label", "label_2"):
            v = getattr(r, name)
            if v is None:
                continue
            values[v].add(r.id)
            is_label.add(v)
            if len(v) > policy.max_label_chars:
                long_ids.add(r.id)
        if r.label is not None:
            labels[r.label] += 1
        for path in policy.closed_fields:
            v = _closed_value(r, path)
            if v is None:
                continue
            values[v].add(r.id)
            if len(v) > policy.max_label_chars or any(ch.isspace() for ch in v.strip()):
                free_text[path].add(r.id)

    ordered = sorted(values)
    pii_types: Counter[str] = Counter()
    pii_ids: set[str] = set()
    for value, spans in zip(ordered, detect(ordered) if ordered else [], strict=True):
        kinds = [str(getattr(s, "entity_type", "PII")) for s in spans]
        if value not in is_label:
            kinds = [k for k in kinds if k not in NER_ENTITIES]
        if kinds:
            pii_types.update(kinds)
            pii_ids |= values[value]

    n = len(records)
    distinct = len(labels)
    ratio = distinct / n if n else 0.0
    too_many = distinct > policy.max_labels
    too_dense = n >= MIN_RECORDS_FOR_RATIO and ratio > policy.max_label_ratio
    problems: list[str] = []
    if too_many:
        problems.append(f"{distinct} distinct labels (limit {policy.max_labels})")
    if too_dense:
        problems.append(
            f"{distinct} distinct labels in {n} records (ratio {ratio:.2f} > {policy.max_label_ratio}): "
            "the label column looks like free text (check --field label=...)"
        )
    if long_ids:
        problems.append(
            f"labels longer than {policy.max_label_chars} characters in {len(long_ids)} record(s): "
            f"{short_ids(long_ids)}"
        )
    if pii_ids:
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(pii_types.items()))
        problems.append(
            f"PII in label or closed-field values ({kinds}) of {len(pii_ids)} record(s): {short_ids(pii_ids)}"
        )
    for path, ids in sorted(free_text.items()):
        problems.append(
            f"closed field '{path}' holds free text (whitespace or over {policy.max_label_chars} "
            f"characters) in {len(ids)} record(s): {short_ids(ids)}"
        )
    figures = {
        "n_records": n,
        "distinct_labels": distinct,
        "label_ratio": round(ratio, 6),
        "max_labels": policy.max_labels,
        "max_label_ratio": policy.max_label_ratio,
        "max_label_chars": policy.max_label_chars,
        "closed_fields": list(policy.closed_fields),
        "long_label_ids": id_list(long_ids),
        "pii_entity_counts": dict(sorted(pii_types.items())),
        "pii_ids": id_list(pii_ids),
        "free_text_ids": {p: id_list(ids) for p, ids in sorted(free_text.items())},
    }
    if problems:
        message = "labels are not a closed set: " + "; ".join(problems) + "; no splits were written"
    else:
        message = f"{distinct} label(s), none with PII or free text"
        if policy.closed_fields:
            message += f"; closed fields {list(policy.closed_fields)} hold codes only"
    return CheckResult(name="closed_labels", passed=not problems, figures=figures, message=message)
