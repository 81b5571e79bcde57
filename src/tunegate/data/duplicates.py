"""Exact and near-duplicate detection on normalized text (ids only in every output).

Why normalize: the same example copied twice rarely stays byte-identical — case, spacing and
punctuation drift — and a near-copy in both train and hold-out inflates the score exactly as an
exact copy does. :func:`normalize_text` casefolds (after NFKC), deletes punctuation and collapses
whitespace.

* **Exact duplicates** share a normalized key: the match text plus, for classification, the label.
  Records with the same id (the same content hash) are always exact duplicates.
* **Label conflicts** (classification): the same normalized text under different labels.
* **Near-duplicates** are pairs whose shingle sets (character or word n-grams of the match text)
  have Jaccard similarity >= ``policy.near_duplicate_threshold``. Candidates come from MinHash LSH
  (``datasketch``; seeded with ``policy.seed`` and hashing with SHA-1, so runs are reproducible);
  every candidate is then confirmed with the *exact* Jaccard of the shingle sets, so a reported pair
  never depends on MinHash noise.

The *match text* is what a model sees and learns: the text for classification; the prompt and the
target for instruction and chat records.
"""

from __future__ import annotations

import unicodedata
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from tunegate.data.config import DataPolicy
from tunegate.data.results import CheckResult, id_list, short_ids
from tunegate.records import Record

if TYPE_CHECKING:
    from datasketch import MinHash


def normalize_text(text: str) -> str:
    """NFKC, casefold, delete punctuation (Unicode category P*), collapse whitespace."""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = "".join(ch for ch in text if not unicodedata.category(ch).startswith("P"))
    return " ".join(text.split())


def match_text(record: Record) -> str:
    """The normalized text two records are compared on (see the module docstring)."""
    if record.task == "classification":
        return normalize_text(record.text or "")
    return normalize_text(f"{record.prompt_text()}\n{record.target_text()}")


def exact_key(record: Record) -> str:
    """Records with equal keys are exact duplicates (classification keys include the label)."""
    if record.task == "classification":
        return f"{match_text(record)}\x1f{record.label or ''}"
    return match_text(record)


def shingles(text: str, unit: str, size: int) -> set[str]:
    """Character or word n-grams of already-normalized ``text``; a short text is one shingle."""
    if not text:
        return set()
    if unit == "word":
        words = text.split()
        if len(words) <= size:
            return {" ".join(words)}
        return {" ".join(words[i : i + size]) for i in range(len(words) - size + 1)}
    if len(text) <= size:
        return {text}
    return {text[i : i + size] for i in range(len(text) - size + 1)}


def jaccard(a: set[str], b: set[str]) -> float:
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


def _minhashes(shingle_sets: Sequence[set[str]], policy: DataPolicy) -> list[MinHash]:
    from datasketch import MinHash

    # Sorted shingles: MinHash is order-free, but sorting makes the byte stream reproducible too.
    return MinHash.bulk(
        [[s.encode("utf-8") for s in sorted(ss)] for ss in shingle_sets],
        num_perm=policy.num_perm,
        seed=policy.seed,
    )


def _lsh(policy: DataPolicy) -> Any:
    """An LSH index tuned a little *below* the policy threshold.

    Candidates are confirmed with exact Jaccard, so a lower LSH threshold only costs a few extra
    comparisons while catching pairs MinHash noise would miss; the cap at 0.9 keeps datasketch's
    band count >= 2 for thresholds near 1.
    """
    from datasketch import MinHashLSH

    candidate = min(0.9, max(0.05, policy.near_duplicate_threshold - 0.1))
    return MinHashLSH(threshold=candidate, num_perm=policy.num_perm)


def near_duplicate_pairs(texts: Sequence[str], policy: DataPolicy) -> list[tuple[int, int, float]]:
    """Index pairs ``(i, j, jaccard)`` with ``i < j`` among normalized ``texts``, sorted."""
    sets = [shingles(t, policy.shingle, policy.shingle_size) for t in texts]
    live = [i for i, s in enumerate(sets) if s]
    if len(live) < 2:
        return []
    hashes = _minhashes([sets[i] for i in live], policy)
    lsh = _lsh(policy)
    for i, mh in zip(live, hashes, strict=True):
        lsh.insert(str(i), mh)
    pairs: set[tuple[int, int, float]] = set()
    for i, mh in zip(live, hashes, strict=True):
        for key in lsh.query(mh):
            j = int(key)
            if j > i:
                sim = jaccard(sets[i], sets[j])
                if sim >= policy.near_duplicate_threshold:
                    pairs.add((i, j, round(sim, 6)))
    return sorted(pairs)


def cross_near_duplicates(
    queries: Sequence[str], targets: Sequence[str], policy: DataPolicy
) -> list[tuple[int, int, float]]:
    """Pairs ``(query_index, target_index, jaccard)`` of near-duplicates between two text lists."""
    t_sets = [shingles(t, policy.shingle, policy.shingle_size) for t in targets]
    q_sets = [shingles(t, policy.shingle, policy.shingle_size) for t in queries]
    t_live = [i for i, s in enumerate(t_sets) if s]
    q_live = [i for i, s in enumerate(q_sets) if s]
    if not t_live or not q_live:
        return []
    lsh = _lsh(policy)
    for i, mh in zip(t_live, _minhashes([t_sets[i] for i in t_live], policy), strict=True):
        lsh.insert(str(i), mh)
    out: set[tuple[int, int, float]] = set()
    for qi, mh in zip(q_live, _minhashes([q_sets[i] for i in q_live], policy), strict=True):
        for key in lsh.query(mh):
            ti = int(key)
            sim = jaccard(q_sets[qi], t_sets[ti])
            if sim >= policy.near_duplicate_threshold:
                out.add((qi, ti, round(sim, 6)))
    return sorted(out)


@dataclass(frozen=True)
class DuplicateReport:
    """Duplicates within one set of records, by id only.

    ``exact_groups``: sorted id lists (an id repeats when the same record occurs twice);
    ``dropped_ids``: what :func:`drop_duplicates` removes (all but the smallest id of each group;
    one fewer occurrence for a repeated id); ``conflict_groups``: classification texts seen under
    several labels; ``near_pairs``: ``(id_a, id_b, jaccard)`` not already exact duplicates.
    """

    n_records: int
    exact_groups: list[list[str]] = field(default_factory=list)
    dropped_ids: list[str] = field(default_factory=list)
    conflict_groups: list[list[str]] = field(default_factory=list)
    near_pairs: list[tuple[str, str, float]] = field(default_factory=list)
    #: The policy values the report was made under (so :meth:`check` needs no policy).
    max_duplicate_rate: float = 0.05
    near_duplicate_threshold: float = 0.85
    drop_exact_duplicates: bool = True

    @property
    def n_dropped(self) -> int:
        return len(self.dropped_ids)

    @property
    def duplicate_rate(self) -> float:
        return self.n_dropped / self.n_records if self.n_records else 0.0

    def drop(self, records: Sequence[Record]) -> list[Record]:
        """``records`` without the exact duplicates (see :func:`drop_duplicates`).

        Do not filter by ``r.id not in dropped_ids``: a record repeated verbatim has one id for
        every copy, and the first copy must stay.
        """
        return drop_duplicates(records)

    def check(self, *, split: str = "all") -> CheckResult:
        """This report as a gate check (see :func:`check_duplicates`)."""
        return _duplicate_check(self, split)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["near_pairs"] = [list(p) for p in self.near_pairs]
        d["duplicate_rate"] = round(self.duplicate_rate, 6)
        return d


def find_duplicates(records: Sequence[Record], policy: DataPolicy) -> DuplicateReport:
    """Exact groups, label conflicts and near-duplicate pairs within ``records`` (ids only)."""
    by_key: dict[str, list[str]] = defaultdict(list)
    by_text: dict[str, set[str]] = defaultdict(set)
    by_text_ids: dict[str, list[str]] = defaultdict(list)
    for r in records:
        by_key[exact_key(r)].append(r.id)
        if r.task == "classification":
            t = match_text(r)
            by_text[t].add(r.label or "")
            by_text_ids[t].append(r.id)
    exact_groups = sorted(sorted(ids) for ids in by_key.values() if len(ids) > 1)
    dropped: list[str] = []
    for ids in exact_groups:
        dropped.extend(ids[1:])  # keep the smallest id (first occurrence of a repeated id)
    conflicts = sorted(sorted(set(by_text_ids[t])) for t, labels in by_text.items() if len(labels) > 1)

    # Near pairs among distinct exact keys only: an exact duplicate is reported once, above.
    rep: dict[str, Record] = {}
    for r in sorted(records, key=lambda r: r.id):
        rep.setdefault(exact_key(r), r)
    reps = [rep[k] for k in sorted(rep)]
    texts = [match_text(r) for r in reps]
    near: list[tuple[str, str, float]] = []
    for i, j, sim in near_duplicate_pairs(texts, policy):
        a, b = sorted((reps[i].id, reps[j].id))
        near.append((a, b, sim))
    return DuplicateReport(
        n_records=len(records),
        exact_groups=exact_groups,
        dropped_ids=sorted(dropped),
        conflict_groups=conflicts,
        near_pairs=sorted(near),
        max_duplicate_rate=policy.max_duplicate_rate,
        near_duplicate_threshold=policy.near_duplicate_threshold,
        drop_exact_duplicates=policy.drop_exact_duplicates,
    )


def drop_duplicates(records: Sequence[Record]) -> list[Record]:
    """``records`` with one record per exact key: the smallest id (its first occurrence) stays.

    Exactly the records listed in :attr:`DuplicateReport.dropped_ids` go; input order is kept.
    """
    keep: dict[str, tuple[str, int]] = {}
    for pos, r in enumerate(records):
        k = exact_key(r)
        if k not in keep or r.id < keep[k][0]:
            keep[k] = (r.id, pos)
    kept_pos = {pos for _, pos in keep.values()}
    return [r for pos, r in enumerate(records) if pos in kept_pos]


def check_duplicates(
    records: Sequence[Record],
    policy: DataPolicy,
    *,
    split: str = "all",
    report: DuplicateReport | None = None,
) -> CheckResult:
    """Fail when exact duplicates exceed ``policy.max_duplicate_rate`` within one split.

    Pass ``report`` (from :func:`find_duplicates` on the same records) to skip recomputing it.
    """
    return _duplicate_check(report if report is not None else find_duplicates(records, policy), split)


def _duplicate_check(rep: DuplicateReport, split: str) -> CheckResult:
    rate = rep.duplicate_rate
    passed = rate <= rep.max_duplicate_rate
    figures = {
        "split": split,
        "n_records": rep.n_records,
        "exact_groups": len(rep.exact_groups),
        "exact_duplicates": rep.n_dropped,
        "duplicate_rate": round(rate, 6),
        "max_duplicate_rate": rep.max_duplicate_rate,
        "duplicate_ids": id_list(rep.dropped_ids),
        "label_conflict_groups": len(rep.conflict_groups),
        "label_conflict_ids": id_list(i for g in rep.conflict_groups for i in g),
        "near_duplicate_pairs": len(rep.near_pairs),
        "near_duplicate_ids": id_list(i for a, b, _ in rep.near_pairs for i in (a, b)),
        "near_duplicate_threshold": rep.near_duplicate_threshold,
        "dropped": rep.drop_exact_duplicates,
    }
    msg = (
        f"{split}: {rep.n_dropped} exact duplicate(s) of {rep.n_records} records "
        f"(rate {rate:.3f}, limit {rep.max_duplicate_rate:.3f})"
    )
    if rep.dropped_ids:
        msg += f"; {'dropped' if rep.drop_exact_duplicates else 'kept'}: {short_ids(rep.dropped_ids)}"
    if rep.conflict_groups:
        shown = "; ".join(" | ".join(i[:12] for i in g) for g in rep.conflict_groups[:5])
        more = f" (+{len(rep.conflict_groups) - 5} more)" if len(rep.conflict_groups) > 5 else ""
        msg += f"; {len(rep.conflict_groups)} text(s) carry conflicting labels, record ids: {shown}{more}"
    if rep.near_pairs:
        msg += f"; {len(rep.near_pairs)} near-duplicate pair(s)"
    return CheckResult(name=f"duplicates_{split}", passed=passed, figures=figures, message=msg)
