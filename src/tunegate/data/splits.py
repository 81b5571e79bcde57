"""The one reader of a workdir's split files: the data that trains is the data the gate passed.

Every stage that reads ``WORKDIR/data/<split>.jsonl`` (training, evaluation, drift, the human
sample) calls :func:`read_split` (or :func:`load_split` when it also needs the digest). Before a
single record is parsed it checks the file's bytes against the data gate's record:

1. the audit ledger verifies (hash chain intact) and holds a ``prepare`` event whose ``outputs``
   name this split (the ledger is the source of truth: a workdir without one is refused);
2. the file's sha256 equals that event's digest;
3. when the event records ``data/data_report.json``, the report's bytes are the recorded ones and
   its ``outputs`` (a report written by ``prepare`` always has them) agree too;
4. for the hold-out, the manifest file's digest equals the ledgered one and
   :func:`~tunegate.data.split.verify_holdout` re-hashes every line against the manifest.

Any difference is an :class:`~tunegate.errors.IntegrityError` naming the file and both digests.
The bytes that were hashed are the bytes that are parsed (read once), so a file swapped between
the check and the read cannot slip through.

Workdirs assembled by code rather than by ``tunegate prepare`` (tests, migrations) record their
splits with :func:`seal_splits`, a ``prepare`` event whose verdict is ``not_checked``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunegate import ledger
from tunegate.errors import InputError, IntegrityError
from tunegate.provenance import sha256_bytes, sha256_file
from tunegate.records import Record
from tunegate.workdir import SPLITS, data_dir, data_report_path, manifest_path, split_path

__all__ = [
    "VerifiedSplit",
    "gate_outputs",
    "last_prepare_event",
    "load_split",
    "read_split",
    "seal_splits",
    "split_of_path",
]

REPORT_KEY = "data/data_report.json"
MANIFEST_KEY = "data/holdout.manifest.json"


def _key(split: str) -> str:
    return f"data/{split}.jsonl"


@dataclass(frozen=True)
class VerifiedSplit:
    """A split read by :func:`load_split`: its records, the sha256 of its bytes, and its path."""

    records: list[Record]
    sha256: str
    path: Path


def last_prepare_event(workdir: str | Path, *, with_output: str | None = None) -> dict[str, Any] | None:
    """The newest ledger ``prepare`` event (that lists ``with_output`` among its outputs, if given).

    The ledger is verified first: an edited, reordered or torn ledger is an IntegrityError.
    """
    if not ledger.ledger_path(workdir).exists():
        return None
    report = ledger.verify_ledger(workdir)
    if not report.ok:
        raise IntegrityError(
            f"{ledger.ledger_path(workdir)}: the audit ledger does not verify ({report.reason})",
            hint="run `tunegate audit verify` for details; the data gate's record cannot be trusted",
        )
    for event in reversed(ledger.read_entries(workdir)):
        if event.get("stage") != "prepare":
            continue
        outputs = event.get("outputs") or {}
        if with_output is None or with_output in outputs:
            return event
    return None


def gate_outputs(workdir: str | Path) -> dict[str, str]:
    """``outputs`` of the newest ``prepare`` event that wrote splits (``{}`` when there is none)."""
    event = last_prepare_event(workdir, with_output=_key("train"))
    return dict(event.get("outputs") or {}) if event else {}


def _mismatch(path: Path, found: str, expected: str, where: str) -> IntegrityError:
    return IntegrityError(
        f"{path}: sha256 {found} differs from {expected} recorded by the data gate ({where}); "
        "the file changed after `tunegate prepare` passed it",
        hint="restore the file, or re-run `tunegate prepare` on the intended data",
    )


def _check_report(workdir: Path, outputs: Mapping[str, str], key: str, digest: str, path: Path) -> None:
    """The data report, when the gate wrote one, must be the ledgered one and agree on ``key``."""
    if REPORT_KEY not in outputs:
        return
    rpath = data_report_path(workdir)
    if not rpath.is_file() or rpath.is_symlink():
        raise IntegrityError(f"{rpath}: the data gate's report is missing (the ledger records one)")
    raw = rpath.read_bytes()
    found = sha256_bytes(raw)
    if found != outputs[REPORT_KEY]:
        raise _mismatch(rpath, found, outputs[REPORT_KEY], "ledger prepare event")
    try:
        doc = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise IntegrityError(f"{rpath}: the data report is not valid JSON") from None
    if not isinstance(doc, dict) or "outputs" not in doc:
        return  # a report sealed with a hand-built workdir: its bytes are vouched for, it lists nothing
    reported = (doc.get("outputs") or {}).get(key)
    if reported != digest:
        raise IntegrityError(
            f"{path}: sha256 {digest} differs from {reported} in {rpath.name} `outputs`",
            hint="the data report and the ledger disagree; re-run `tunegate prepare`",
        )


def _parse(raw: bytes, path: Path) -> list[Record]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError("is not valid UTF-8", path=path, line=raw[: exc.start].count(b"\n") + 1) from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    out: list[Record] = []
    for i, line in enumerate(lines, start=1):
        try:
            out.append(Record.model_validate_json(line))
        except ValueError as exc:
            field = None
            errors = getattr(exc, "errors", None)
            if callable(errors):
                errs = errors()
                if errs:
                    field = ".".join(str(p) for p in errs[0].get("loc", ())) or None
            raise InputError("not a valid tunegate record", path=path, line=i, field=field) from None
    return out


def load_split(workdir: str | Path, split: str) -> VerifiedSplit:
    """Verify ``WORKDIR/data/<split>.jsonl`` against the data gate's record, then parse it.

    Raises IntegrityError (a digest differs, no gate record, the ledger does not verify) before
    parsing anything, InputError when the file is missing or not tunegate records.
    """
    workdir = Path(workdir)
    if split not in SPLITS:
        raise InputError(f"unknown split {split!r}; splits are {list(SPLITS)}")
    path = split_path(workdir, split)
    if path.is_symlink():
        raise IntegrityError(f"{path}: is a symbolic link; split files must be regular files")
    if not path.is_file():
        raise InputError("split not found", path=path, hint="run `tunegate prepare` on this workdir first")
    key = _key(split)
    event = last_prepare_event(workdir, with_output=key)
    if event is None:
        raise IntegrityError(
            f"{path}: the ledger holds no data gate record (`prepare` event) for {key}",
            hint="run `tunegate prepare` on this workdir; only data the gate passed is read",
        )
    outputs: dict[str, str] = dict(event.get("outputs") or {})
    raw = path.read_bytes()
    digest = sha256_bytes(raw)
    if digest != outputs[key]:
        raise _mismatch(path, digest, outputs[key], f"ledger prepare event #{event.get('seq')}")
    _check_report(workdir, outputs, key, digest, path)
    if split == "holdout":
        from tunegate.data.split import verify_holdout

        mpath = manifest_path(workdir)
        if MANIFEST_KEY not in outputs:
            raise IntegrityError(f"{mpath}: the ledger records no hold-out manifest for this data")
        if not mpath.is_file() or mpath.is_symlink():
            raise IntegrityError(f"{mpath}: the frozen hold-out manifest is missing")
        found = sha256_file(mpath)
        if found != outputs[MANIFEST_KEY]:
            raise _mismatch(mpath, found, outputs[MANIFEST_KEY], f"ledger prepare event #{event.get('seq')}")
        manifest = verify_holdout(data_dir(workdir))
        if manifest.holdout_sha256 != digest:
            raise IntegrityError(
                f"{path}: sha256 {digest} differs from {manifest.holdout_sha256} in {mpath.name}"
            )
    return VerifiedSplit(records=_parse(raw, path), sha256=digest, path=path)


def read_split(workdir: str | Path, split: str) -> list[Record]:
    """The records of ``WORKDIR/data/<split>.jsonl``, verified first (see :func:`load_split`)."""
    return load_split(workdir, split).records


def split_of_path(path: str | Path) -> tuple[Path, str]:
    """``WORKDIR/data/<split>.jsonl`` -> ``(WORKDIR, split)``; InputError for any other path.

    For callers that are handed a split's path (kept for their signatures): the path must be the
    workdir layout's own, so the gate record that vouches for it can be found.
    """
    p = Path(path)
    split = p.name[: -len(".jsonl")] if p.name.endswith(".jsonl") else ""
    workdir = p.parent.parent
    if split not in SPLITS or p.parent.name != "data" or split_path(workdir, split) != p:
        raise InputError(
            f"is not a split of a workdir (expected WORKDIR/data/{{{','.join(SPLITS)}}}.jsonl)", path=p
        )
    return workdir, split


def seal_splits(
    workdir: str | Path, *, reason: str = "splits written without the data gate"
) -> dict[str, Any]:
    """Record the current split files of a workdir assembled by code (tests, migrations) in the ledger.

    Appends a ``prepare`` event with the digests of every data file present and the verdict
    ``not_checked``: the files are vouched for from now on, and the ledger says that no data gate
    checked them. ``tunegate prepare`` never needs this.
    """
    workdir = Path(workdir)
    outputs: dict[str, str] = {}
    for split in SPLITS:
        p = split_path(workdir, split)
        if p.is_file():
            outputs[_key(split)] = sha256_file(p)
    for key, p in ((MANIFEST_KEY, manifest_path(workdir)), (REPORT_KEY, data_report_path(workdir))):
        if p.is_file():
            outputs[key] = sha256_file(p)
    if not outputs:
        raise InputError("holds no split files to seal", path=data_dir(workdir))
    return ledger.append_event(
        workdir, "prepare", outputs=outputs, details={"verdict": "not_checked", "reason": reason}
    )
