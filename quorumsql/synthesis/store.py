"""The run directory of ``quorumsql synth``: an append-only ``records.jsonl`` and ``run.json``.

``OUT`` holds:

* ``records.jsonl``: one :class:`~quorumsql.synthesis.records.SynthRecord` per line, appended
  with one ``write`` and fsync'ed (the benchmark runner's
  :class:`~quorumsql.benchmarks.runner.ResultWriter`). Nothing is ever rewritten: the batch step
  and the review append a new version of the records they change, and the **last line of an id
  wins**.
* ``run.json``: options, seed source, model, code version, status and counts, replaced
  atomically.
* ``run.lock``: the benchmark runner's advisory lock: one writer per directory.

A seed writes all its records one after the other, each carrying the seed's session token
(``attempt``) and how many records the seed made (``seed_records``). A seed is done when one
session's records are all in the file; a seed cut short by a crash (some of its records
written, not all) is ignored when reading and run again by ``--resume``, so a record is never
half-kept, and every record of a finished seed survives.
"""

from __future__ import annotations

import datetime as _dt
import json
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from quorumsql.benchmarks.runner import (
    ResultWriter,
    RunLock,
    code_version,
    repair_results_tail,
    write_json_atomic,
)
from quorumsql.errors import ConfigError
from quorumsql.jsonl import json_objects
from quorumsql.synthesis.records import SynthRecord

RECORDS_FILE = "records.jsonl"
RUN_FILE = "run.json"
FORMAT_VERSION = 1
#: ``run.json`` config keys that change the records: a resume must keep them
RESUME_KEYS = ("options", "preset", "seeds")


def now() -> str:
    """The current UTC time, ISO 8601 to the second."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def read_records(out: str | Path) -> tuple[list[SynthRecord], list[str]]:
    """The current records of a run directory and warnings about lines that were skipped.

    Current means: for each seed, the records of its last session that wrote all of them
    (seeds cut short are left out); for each record id, its last line. Order is that of each
    id's first line.

    Returns:
        ``(records, warnings)``; both empty when there is no ``records.jsonl``.
    """
    path = Path(out) / RECORDS_FILE
    warnings: list[str] = []
    if not path.is_file():
        return [], warnings
    rows: list[dict[str, Any]] = []
    with open(path, encoding="utf-8", errors="replace") as fh:
        for n, row, problem in json_objects(fh):
            if problem and problem.startswith("not JSON"):
                warnings.append(f"{path}:{n}: unreadable line skipped (truncated write?)")
                continue
            if not row or not row.get("id") or not row.get("seed_id"):
                warnings.append(f"{path}:{n}: not a synthesis record, skipped")
                continue
            rows.append(row)
    # per seed: ids written by each session, and how many that session made
    sessions: dict[str, dict[str, tuple[set[str], int]]] = {}
    order: dict[str, dict[str, int]] = {}
    for i, row in enumerate(rows):
        seed, attempt = str(row["seed_id"]), str(row.get("attempt", ""))
        ids, expected = sessions.setdefault(seed, {}).get(attempt, (set(), 0))
        ids.add(str(row["id"]))
        sessions[seed][attempt] = (ids, max(expected, int(row.get("seed_records") or 0)))
        order.setdefault(seed, {})[attempt] = i  # last line of the session
    current: dict[str, str] = {}
    for seed, by_attempt in sessions.items():
        complete = [a for a, (ids, expected) in by_attempt.items() if expected and len(ids) >= expected]
        if complete:
            current[seed] = max(complete, key=lambda a: order[seed][a])
    latest: dict[str, dict[str, Any]] = {}
    for row in rows:
        if current.get(str(row["seed_id"])) == str(row.get("attempt", "")):
            latest[str(row["id"])] = row  # dict keeps the first position, the last value
    records: list[SynthRecord] = []
    for rid, row in latest.items():
        try:
            records.append(SynthRecord.model_validate(row))
        except ValidationError as exc:
            warnings.append(f"{path}: record {rid} is malformed ({exc.error_count()} error(s)), skipped")
    return records, warnings


def done_seeds(records: Iterable[SynthRecord]) -> set[str]:
    """Ids of the seeds whose records are all in the file (see :func:`read_records`)."""
    return {r.seed_id for r in records}


def config_differences(previous: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """What differs between two ``run.json`` configs in the keys a resume must keep, one line each."""
    old, new = previous.get("config") or {}, current.get("config") or {}
    out = []
    for key in RESUME_KEYS:
        if key in old and old.get(key) != new.get(key):
            a, b = old.get(key), new.get(key)
            if isinstance(a, dict) and isinstance(b, dict):
                for k in sorted(set(a) | set(b)):
                    if a.get(k) != b.get(k):
                        out.append(f"{key}.{k}: {a.get(k)!r} -> {b.get(k)!r}")
            else:
                out.append(f"{key}: {a!r} -> {b!r}")
    return out


class RecordStore:
    """The writer of one run directory; use as a context manager around a run or a review.

    Args:
        out: the run directory (created when missing).

    Raises:
        ConfigError: (from :meth:`open`) the directory cannot be created, is being written by
            another run, holds a run and ``resume`` is False, or holds a run made with other
            options when resuming.
    """

    def __init__(self, out: str | Path) -> None:
        self.out = Path(out)
        self.records_path = self.out / RECORDS_FILE
        self.run_path = self.out / RUN_FILE
        self.doc: dict[str, Any] = {}
        self.warnings: list[str] = []
        self._lock: RunLock | None = None
        self._writer: ResultWriter | None = None

    # -- opening --------------------------------------------------------------------------
    def open(self, *, resume: bool, config: dict[str, Any] | None, existing_ok: bool = False) -> "RecordStore":
        """Lock the directory, check it against ``config`` and repair the end of ``records.jsonl``.

        Args:
            resume: continue a run already in the directory.
            config: this run's ``run.json`` config (``options``, ``preset``, ``seeds``, ...);
                None to keep the directory's (review, re-export).
            existing_ok: the directory must hold a run (review): no resume check.
        """
        try:
            self.out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot create the output directory {self.out}: {exc}") from None
        self._lock = RunLock(self.out)
        try:
            self._lock.acquire()
        except ConfigError:
            self._lock = None
            raise ConfigError(f"another quorumsql synth process is writing into {self.out}; "
                              "wait for it to end or choose another --out") from None
        try:
            self._check(resume=resume, config=config, existing_ok=existing_ok)
            repaired = repair_results_tail(self.records_path)
            if repaired:
                self.warnings.append(repaired)
            self._writer = ResultWriter(self.records_path)
        except BaseException:
            self.close()
            raise
        return self

    def _check(self, *, resume: bool, config: dict[str, Any] | None, existing_ok: bool) -> None:
        previous: dict[str, Any] | None = None
        if self.run_path.is_file():
            try:
                loaded = json.loads(self.run_path.read_text(encoding="utf-8"))
                previous = loaded if isinstance(loaded, dict) else None
            except (json.JSONDecodeError, UnicodeDecodeError, OSError) as exc:
                self.warnings.append(f"{self.run_path} is unreadable ({exc}); its options cannot be checked")
        has_records = self.records_path.is_file() and self.records_path.stat().st_size > 0
        if existing_ok:
            if not has_records:
                raise ConfigError(f"{self.out} holds no synthesis run ({RECORDS_FILE} is missing or empty)")
            self.doc = dict(previous or {})
            return
        if (has_records or previous) and not resume:
            raise ConfigError(f"{self.out} already holds a synthesis run; pass --resume to continue it "
                              "or choose another --out")
        doc: dict[str, Any] = dict(previous or {})
        doc.update({"format": FORMAT_VERSION, "created_at": doc.get("created_at", now()), "updated_at": now(),
                    "status": "running", "command": doc.get("command", sys.argv), "code": code_version(),
                    "python": sys.version.split()[0]})
        if config is not None:
            if resume and previous:
                changed = config_differences(previous, {"config": config})
                if changed:
                    raise ConfigError(f"{self.out} was made with other options ({'; '.join(changed)}); "
                                      "resume with the same options or choose another --out")
            doc["config"] = config
        if resume and previous:
            doc.setdefault("resumed_at", []).append(now())
        self.doc = doc
        self.save()

    # -- writing --------------------------------------------------------------------------
    def append(self, records: Sequence[SynthRecord]) -> None:
        """Append ``records`` (one line each, each on disk before the next is written).

        Raises:
            ConfigError: the file cannot be written (disk full, permissions).
        """
        if self._writer is None:
            raise ValueError("the record store is not open")
        for rec in records:
            try:
                self._writer.write(rec.model_dump(mode="json"))
            except OSError as exc:
                raise ConfigError(f"cannot write {self.records_path}: {exc}") from None

    def save(self, **updates: Any) -> None:
        """Update ``run.json`` with ``updates`` and replace it atomically."""
        self.doc.update(updates)
        self.doc["updated_at"] = now()
        try:
            write_json_atomic(self.run_path, self.doc)
        except OSError as exc:
            raise ConfigError(f"cannot write {self.run_path}: {exc}") from None

    def close(self) -> None:
        """Close the records file and release the lock (idempotent)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> "RecordStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
