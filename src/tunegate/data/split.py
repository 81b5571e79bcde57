"""The frozen hold-out: a deterministic split, its manifest, verification and the training guard.

Splitting
---------
:func:`split_records` splits *before anything else sees the data* (no tuning decision may look
at the hold-out). It is a pure function of the set of records and the policy:

1. records are put in a canonical order by content (the sha256 of the record without its id and
   source position), so neither input order nor the PII key that ids are keyed with matters;
2. records are joined into *units* that must stay on one side: the same ``Record.group``, the same
   id (an exact duplicate), the same normalized match text, and — with
   ``policy.group_near_duplicates`` — near-duplicate clusters (MinHash LSH, see
   :mod:`tunegate.data.duplicates`), so a paraphrase never straddles the split;
3. units are stratified (classification: by the majority label of the unit; instruction/chat:
   by ``Record.extra[policy.stratify_key]`` when set, else one stratum). Each stratum's hold-out
   target is its share of ``round(holdout_fraction * N)`` by the largest-remainder method, so every
   class lands within one record of ``holdout_fraction * n_class`` when there are no groups;
4. within a stratum, units (sorted by their first record in that order) are permuted by a NumPy
   generator seeded with ``(policy.seed, sha256(stratum))`` and taken greedily while that brings
   the count closer to the target. The validation split is carved the same way from train only
   (``validation_fraction`` of train, a differently derived seed).

Manifest (``holdout.manifest.json``, schema version 1)
------------------------------------------------------
Written by :func:`write_holdout_manifest` with :func:`tunegate.provenance.atomic_write_json`
(sorted keys, 2-space indent, trailing newline, no timestamps: the same inputs give the same
bytes)::

    {
      "schema_version": 1,                 # this layout
      "tunegate_version": "0.1.0",
      "holdout_file": "holdout.jsonl",     # relative to the data directory
      "holdout_sha256": "<sha256 of the file's bytes>",
      "seed": 1234,                        # the split seed
      "policy_digest": "<GatePolicy.digest()>",
      "fractions": {"holdout": 0.15, "validation": 0.1},   # requested (null when not given)
      "counts": {"total": 45, "per_label": {"billing": 15, ...}},   # per_label: classification
      "records": [                         # in file order; line is 1-based
        {"id": "<content id>", "hash": "<record_hash: sha256 of the line>", "line": 1}, ...
      ]
    }

Once frozen, :func:`verify_holdout` re-hashes ``holdout.jsonl`` and every line and raises
:class:`~tunegate.errors.IntegrityError` naming the first difference (a changed, added or removed
line); :func:`write_holdout_manifest` refuses to replace a different existing manifest.
Training calls :func:`assert_not_in_holdout` to refuse any hold-out record by id or hash.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

import tunegate
from tunegate.data.config import DataPolicy
from tunegate.data.duplicates import match_text, near_duplicate_pairs
from tunegate.data.leakage import check_leakage
from tunegate.data.results import short_ids
from tunegate.errors import ConfigError, InputError, IntegrityError, LeakageError
from tunegate.provenance import atomic_write_json, sha256_bytes, sha256_file, sha256_text
from tunegate.records import Record, record_hash, write_records

__all__ = [
    "MANIFEST_NAME",
    "HoldoutManifest",
    "SplitResult",
    "assert_not_in_holdout",
    "check_leakage",
    "freeze_holdout",
    "load_holdout_manifest",
    "split_records",
    "verify_holdout",
    "write_holdout_manifest",
]

MANIFEST_NAME = "holdout.manifest.json"
HOLDOUT_NAME = "holdout.jsonl"
SPLIT_NAMES = ("train", "validation", "holdout")
MANIFEST_SCHEMA_VERSION = 1


# -- split -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class SplitResult:
    """The three splits, each sorted by id (then by written JSON); membership depends on content only."""

    train: list[Record]
    validation: list[Record]
    holdout: list[Record]

    def counts(self) -> dict[str, int]:
        return {"train": len(self.train), "validation": len(self.validation), "holdout": len(self.holdout)}


class _UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def _canonical(records: Iterable[Record]) -> list[Record]:
    """Records as written to a split file: by id (then by their written JSON)."""
    return sorted(records, key=lambda r: (r.id, r.to_json()))


def _split_order(records: Iterable[Record]) -> list[Record]:
    """The order the split is computed in: by content, not by id. Ids are keyed with the PII key,
    so ordering by id would make the hold-out depend on the key; this order (kept in memory only)
    makes it a function of the records' content, the seed and the policy."""

    def key(r: Record) -> tuple[str, str]:
        anonymous = r.model_copy(update={"id": "", "source": None})
        return (sha256_text(anonymous.to_json()), anonymous.to_json())

    return sorted(records, key=key)


def _units(recs: Sequence[Record], policy: DataPolicy) -> list[list[int]]:
    """Index lists of records that must share a split (see the module docstring, step 2)."""
    uf = _UnionFind(len(recs))
    first: dict[str, int] = {}
    texts = [match_text(r) for r in recs]
    for i, r in enumerate(recs):
        keys = [f"id\x1f{r.id}"]
        if r.group is not None:
            keys.append(f"group\x1f{r.group}")
        if texts[i]:
            keys.append(f"text\x1f{texts[i]}")
        for k in keys:
            if k in first:
                uf.union(first[k], i)
            else:
                first[k] = i
    if policy.group_near_duplicates:
        uniq = sorted({t for t in texts if t})
        owner = {t: first[f"text\x1f{t}"] for t in uniq}
        for a, b, _ in near_duplicate_pairs(uniq, policy):
            uf.union(owner[uniq[a]], owner[uniq[b]])
    groups: dict[int, list[int]] = defaultdict(list)
    for i in range(len(recs)):
        groups[uf.find(i)].append(i)
    return sorted(groups.values(), key=lambda g: g[0])


def _stratum(recs: Sequence[Record], unit: Sequence[int], policy: DataPolicy) -> str:
    if not policy.stratify:
        return ""
    if recs[unit[0]].task == "classification":
        values = [recs[i].label or "" for i in unit]
    elif policy.stratify_key is not None:
        values = [str(recs[i].extra.get(policy.stratify_key, "")) for i in unit]
    else:
        return ""
    counts = Counter(values)
    return min(counts, key=lambda v: (-counts[v], v))  # majority, ties to the smallest value


def _targets(sizes: Mapping[str, int], fraction: float) -> dict[str, int]:
    """Largest-remainder allocation of ``round(fraction * N)`` over strata of the given sizes."""
    total = sum(sizes.values())
    want = int(fraction * total + 0.5)
    exact = {s: fraction * n for s, n in sizes.items()}
    out = {s: int(v) for s, v in exact.items()}
    spare = want - sum(out.values())
    for s in sorted(exact, key=lambda s: (-(exact[s] - out[s]), s))[: max(spare, 0)]:
        out[s] += 1
    return out


def _seed_for(seed: int, purpose: str, stratum: str) -> list[int]:
    digest = sha256_text(f"{purpose}\x1f{stratum}")
    return [seed, int(digest[:16], 16)]


def _allocate(
    recs: Sequence[Record],
    units: Sequence[list[int]],
    fraction: float,
    seed: int,
    purpose: str,
    policy: DataPolicy,
) -> tuple[list[list[int]], list[list[int]]]:
    """Split ``units`` into (taken, rest) so each stratum gives up about ``fraction`` of its records."""
    import numpy as np

    by_stratum: dict[str, list[list[int]]] = defaultdict(list)
    for u in units:
        by_stratum[_stratum(recs, u, policy)].append(u)
    targets = _targets({s: sum(len(u) for u in us) for s, us in by_stratum.items()}, fraction)
    taken: list[list[int]] = []
    rest: list[list[int]] = []
    for stratum in sorted(by_stratum):
        members = sorted(by_stratum[stratum], key=lambda u: u[0])
        order = np.random.default_rng(_seed_for(seed, purpose, stratum)).permutation(len(members))
        target, count = targets[stratum], 0
        for k in order:
            unit = members[int(k)]
            if count != target and abs(count + len(unit) - target) < abs(count - target):
                taken.append(unit)
                count += len(unit)
            else:
                rest.append(unit)
    return taken, rest


def split_records(records: Sequence[Record], policy: DataPolicy) -> SplitResult:
    """Split into train / validation / hold-out; deterministic for a given set of records and policy."""
    if not records:
        return SplitResult([], [], [])
    tasks = sorted({r.task for r in records})
    if len(tasks) > 1:
        raise InputError(f"records of several task kinds cannot be split together: {tasks}")
    recs = _split_order(records)
    units = _units(recs, policy)
    hold, rest = _allocate(recs, units, policy.holdout_fraction, policy.seed, "holdout", policy)
    val, train = _allocate(recs, rest, policy.validation_fraction, policy.seed, "validation", policy)

    def pick(us: list[list[int]]) -> list[Record]:
        return _canonical(recs[i] for u in us for i in u)

    return SplitResult(train=pick(train), validation=pick(val), holdout=pick(hold))


# -- manifest --------------------------------------------------------------------------------
class ManifestEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str
    hash: str
    line: int


class HoldoutManifest(BaseModel):
    """The frozen hold-out's pins (see the module docstring for the JSON layout)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: int = Field(MANIFEST_SCHEMA_VERSION, description="Manifest layout version.")
    tunegate_version: str
    holdout_file: str = Field(HOLDOUT_NAME, description="Hold-out JSONL path relative to the data dir.")
    holdout_sha256: str
    seed: int
    policy_digest: str
    fractions: dict[str, float] | None = None
    counts: dict[str, Any]
    records: list[ManifestEntry]

    @property
    def ids(self) -> frozenset[str]:
        return frozenset(e.id for e in self.records)

    @property
    def hashes(self) -> frozenset[str]:
        return frozenset(e.hash for e in self.records)

    def to_json_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def _lines(path: Path) -> list[bytes]:
    data = path.read_bytes()
    if not data:
        return []
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    return lines


def write_holdout_manifest(
    data_dir: Path,
    holdout: Sequence[Record],
    *,
    policy_digest: str,
    seed: int,
    holdout_file: Path,
    fractions: Mapping[str, float] | None = None,
    overwrite: bool = False,
) -> HoldoutManifest:
    """Pin ``holdout``, already written to ``holdout_file`` (``tunegate.records.write_records``, in order).

    Refuses (IntegrityError) when the file does not hold exactly these records, or when a
    different manifest is already frozen in ``data_dir`` (unless ``overwrite``). Re-writing the
    same manifest is a no-op that gives the same bytes.
    """
    data_dir = Path(data_dir)
    holdout_file = Path(holdout_file)
    if not holdout_file.is_absolute():
        holdout_file = data_dir / holdout_file
    try:
        rel = holdout_file.resolve().relative_to(data_dir.resolve()).as_posix()
    except ValueError:
        raise ConfigError(f"{holdout_file}: the hold-out file must lie inside {data_dir}") from None
    if not holdout_file.is_file():
        raise IntegrityError(f"{holdout_file}: hold-out file not found; write it before the manifest")
    lines = _lines(holdout_file)
    if len(lines) != len(holdout):
        raise IntegrityError(
            f"{holdout_file}: holds {len(lines)} line(s) but {len(holdout)} hold-out record(s) were given"
        )
    entries = []
    for n, (line, rec) in enumerate(zip(lines, holdout, strict=True), start=1):
        h = sha256_bytes(line)
        if h != record_hash(rec):
            raise IntegrityError(
                f"{holdout_file}: line {n}: does not hold record {rec.id[:12]} as written by Record.to_json()"
            )
        entries.append(ManifestEntry(id=rec.id, hash=h, line=n))
    per_label = Counter(r.label or "" for r in holdout if r.task == "classification")
    manifest = HoldoutManifest(
        schema_version=MANIFEST_SCHEMA_VERSION,
        tunegate_version=tunegate.__version__,
        holdout_file=rel,
        holdout_sha256=sha256_file(holdout_file),
        seed=seed,
        policy_digest=policy_digest,
        fractions=dict(fractions) if fractions is not None else None,
        counts={"total": len(holdout), "per_label": dict(sorted(per_label.items()))},
        records=entries,
    )
    path = data_dir / MANIFEST_NAME
    if path.exists() and not overwrite:
        existing = load_holdout_manifest(data_dir)
        if existing != manifest:
            raise IntegrityError(
                f"{path}: a different hold-out is already frozen here",
                hint="a frozen hold-out is never replaced; use a new workdir to re-split",
            )
    atomic_write_json(path, manifest.to_json_dict())
    return manifest


def freeze_holdout(
    data_dir: Path, split: SplitResult, *, policy: DataPolicy, policy_digest: str
) -> HoldoutManifest:
    """Write ``train/validation/holdout.jsonl`` into ``data_dir`` and freeze the hold-out manifest.

    When ``data_dir`` is a workdir's ``data`` folder, the files are recorded in the workdir's
    ledger (:func:`tunegate.data.splits.seal_splits`, verdict ``not_checked``) so that
    :func:`tunegate.data.splits.read_split` accepts them.
    """
    data_dir = Path(data_dir)
    for name in SPLIT_NAMES:
        write_records(data_dir / f"{name}.jsonl", getattr(split, name))
    manifest = write_holdout_manifest(
        data_dir,
        split.holdout,
        policy_digest=policy_digest,
        seed=policy.seed,
        # relative to data_dir: a relative data_dir must not be joined onto itself
        holdout_file=Path(HOLDOUT_NAME),
        fractions={"holdout": policy.holdout_fraction, "validation": policy.validation_fraction},
    )
    if data_dir.name == "data":  # a workdir's data folder: the freeze is recorded in its ledger
        from tunegate.data.splits import seal_splits

        seal_splits(data_dir.parent, reason="frozen by freeze_holdout without the data gate")
    return manifest


def load_holdout_manifest(data_dir: Path) -> HoldoutManifest:
    """Read and validate ``data_dir/holdout.manifest.json`` (IntegrityError when absent or bad)."""
    path = Path(data_dir) / MANIFEST_NAME
    if not path.is_file():
        raise IntegrityError(f"{path}: no frozen hold-out manifest", hint="run `tunegate prepare` first")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise IntegrityError(f"{path}: the hold-out manifest is not valid JSON") from None
    if isinstance(doc, dict) and doc.get("schema_version") != MANIFEST_SCHEMA_VERSION:
        raise IntegrityError(
            f"{path}: manifest schema_version {doc.get('schema_version')!r} is not supported "
            f"(expected {MANIFEST_SCHEMA_VERSION})"
        )
    try:
        return HoldoutManifest.model_validate(doc)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"]) or "<root>"
        raise IntegrityError(f"{path}: the hold-out manifest is malformed at {loc}: {first['msg']}") from None


def _line_id(line: bytes) -> str:
    try:
        return str(json.loads(line).get("id", "?"))[:12]
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        return "?"


def verify_holdout(data_dir: Path) -> HoldoutManifest:
    """Re-hash the hold-out file and every line against the manifest; IntegrityError on any change."""
    data_dir = Path(data_dir)
    manifest = load_holdout_manifest(data_dir)
    rel = Path(manifest.holdout_file)
    if rel.is_absolute() or ".." in rel.parts:
        raise IntegrityError(f"{data_dir / MANIFEST_NAME}: holdout_file must be a path inside {data_dir}")
    path = data_dir / rel
    if not path.is_file():
        raise IntegrityError(f"{path}: the frozen hold-out file is missing")
    lines = _lines(path)
    entries = manifest.records
    for n in range(1, max(len(lines), len(entries)) + 1):
        if n > len(lines):
            e = entries[n - 1]
            raise IntegrityError(
                f"{path}: line {n} removed: the manifest expects record {e.id[:12]} there "
                f"({len(entries)} records frozen, {len(lines)} found)"
            )
        h = sha256_bytes(lines[n - 1])
        if n > len(entries):
            raise IntegrityError(
                f"{path}: line {n} added: record {_line_id(lines[n - 1])} is not in the frozen manifest "
                f"({len(entries)} records frozen, {len(lines)} found)"
            )
        e = entries[n - 1]
        if h != e.hash:
            raise IntegrityError(
                f"{path}: line {n} changed: expected record {e.id[:12]} with hash {e.hash[:12]}, "
                f"found record {_line_id(lines[n - 1])} with hash {h[:12]}"
            )
    actual = sha256_file(path)
    if actual != manifest.holdout_sha256:
        raise IntegrityError(
            f"{path}: file sha256 {actual[:12]} differs from the frozen {manifest.holdout_sha256[:12]} "
            "(line contents match: whitespace or line endings changed)"
        )
    return manifest


# -- training guard --------------------------------------------------------------------------
def assert_not_in_holdout(
    records: Iterable[Record], manifest: HoldoutManifest, *, holdout: Sequence[Record] | None = None
) -> None:
    """Raise LeakageError when any record is a frozen hold-out record (by id or by hash), or, given
    the verified ``holdout`` records, has the same normalized text as one (case, whitespace and
    punctuation folded as in :func:`tunegate.data.duplicates.match_text`): a hold-out record
    copied with a trailing space and a new id is still the hold-out record."""
    ids, hashes = manifest.ids, manifest.hashes
    hold_texts = {t for t in (match_text(r) for r in holdout or ()) if t}
    leaked = sorted(
        {
            r.id
            for r in records
            if r.id in ids or record_hash(r) in hashes or (hold_texts and match_text(r) in hold_texts)
        }
    )
    if leaked:
        raise LeakageError(
            f"{len(leaked)} record(s) about to be used for training are in the frozen hold-out "
            f"(same id, same bytes or same normalized text): {short_ids(leaked, 10)}",
            hint="train only on data/train.jsonl and data/validation.jsonl",
        )
