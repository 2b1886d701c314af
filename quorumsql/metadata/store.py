"""The per-database metadata store: build once, keep under the cache directory, reuse.

Layout, under ``<cache_dir>/index/<key>/`` where ``key`` hashes the database's fingerprint
(schema + file size/mtime for SQLite, table statistics for servers), the description files and
the build options::

    metadata.json    MetadataRecord: profiles, joins, duplicates, similar columns, dependencies
    vectors.npy      column embeddings (rows in the order of metadata.json's columns)
    values/          value index (bm25s indexes + values, memory-mapped on load)
    chroma/          column index (chromadb PersistentClient)

A build is written to a temporary folder and renamed into place, so a half-written store is
never read. ``<cache_dir>/index/latest/<hash of the database URI>.json`` points at the last
build of each database: a rebuild after a change reuses, table by table, whatever the changed
database still shares with it (profiles, indexed values and embeddings of tables whose
structure and aggregate statistics are unchanged; embeddings of unchanged column texts).

This module persists and builds; searching the indexes is :mod:`quorumsql.metadata.retrieval`
and rendering a record for prompts is :mod:`quorumsql.schema_repr`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from quorumsql.config import Settings
from quorumsql.db import Database
from quorumsql.errors import QuorumSQLError
from quorumsql.llm.embeddings import default_embedder
from quorumsql.metadata.column_index import ColumnIndex, column_text
from quorumsql.metadata.descriptions import load_descriptions
from quorumsql.metadata.models import FORMAT_VERSION, ColumnProfile, MetadataRecord
from quorumsql.metadata.profiler import ProfileOptions, TableProfiler, TableResult
from quorumsql.metadata.relations import (
    duplicate_columns,
    functional_dependencies,
    join_candidates,
    similar_columns,
)
from quorumsql.metadata.value_index import ValueIndex


class MetadataBuildError(QuorumSQLError):
    """The metadata store could not be built or written (e.g. the cache directory is not writable)."""


class MetadataIndexError(QuorumSQLError):
    """An index of a stored build (value index, column index, vectors) is missing or unreadable."""


def _hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:32]


def _descriptions_digest(directory: str | Path | None) -> str | None:
    if directory is None:
        return None
    d = Path(directory).expanduser()
    if (d / "database_description").is_dir():
        d = d / "database_description"
    files = sorted(d.glob("*.csv")) if d.is_dir() else []
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def store_key(db: Database, *, descriptions_dir: str | Path | None = None,
              options: dict[str, Any] | None = None) -> str:
    """The folder name of ``db``'s store: a hash of its fingerprint, descriptions and options."""
    return _hash({"v": FORMAT_VERSION, "db": db.fingerprint(), "desc": _descriptions_digest(descriptions_dir),
                  "opt": options or {}})


class DatabaseMetadata:
    """Metadata of one database, as built by :func:`load_or_build`.

    Attributes:
        record: the :class:`~quorumsql.metadata.models.MetadataRecord`.
        path: the store folder.
        built: True when this call profiled the database, False when it was loaded as stored.
        queries: profiling queries this call ran (0 when loaded).
        embedder: the sentence embedder of the column index (default: the process-wide
            :func:`~quorumsql.llm.embeddings.default_embedder`, whose model loads on first use).

    The indexes open on first use. Search them with :mod:`quorumsql.metadata.retrieval`;
    render :attr:`record` with :mod:`quorumsql.schema_repr`.
    """

    def __init__(self, record: MetadataRecord, path: Path, *, built: bool = False, queries: int = 0,
                 embedder=None) -> None:
        self.record = record
        self.path = Path(path)
        self.built = built
        self.queries = queries
        self.embedder = embedder if embedder is not None else default_embedder()
        self._value_index: ValueIndex | None = None
        self._column_index: ColumnIndex | None = None
        self._vectors: np.ndarray | None = None

    # -- records ---------------------------------------------------------------------------
    @property
    def schema(self):
        """The :class:`~quorumsql.db.DatabaseSchema` the metadata describes."""
        return self.record.schema_

    @property
    def columns(self) -> list[ColumnProfile]:
        """Per-column profiles, in schema order."""
        return self.record.columns

    @property
    def tables(self):
        """Per-table profiles."""
        return self.record.tables

    def column(self, table: str, column: str) -> ColumnProfile | None:
        """The profile of ``table.column`` (case-insensitive), or None."""
        return self.record.column(table, column)

    # -- indexes ---------------------------------------------------------------------------
    @property
    def value_index(self) -> ValueIndex:
        """The value index (memory-mapped on first use).

        Raises:
            MetadataIndexError: its files are missing or unreadable.
        """
        if self._value_index is None:
            try:
                self._value_index = ValueIndex.load(self.path / "values")
            except (OSError, ValueError) as exc:
                raise MetadataIndexError(self._broken("value index", exc)) from None
        return self._value_index

    @property
    def column_index(self) -> ColumnIndex:
        """The column index (chromadb, opened on first use).

        Raises:
            MetadataIndexError: its folder is missing.
        """
        if self._column_index is None:
            if not (self.path / "chroma").is_dir():
                raise MetadataIndexError(self._broken("column index", "folder missing"))
            self._column_index = ColumnIndex(self.path / "chroma", self.embedder)
        return self._column_index

    @property
    def vectors(self) -> np.ndarray:
        """Column embeddings ``(n_columns, 384)``, rows in the order of :attr:`columns`.

        Raises:
            MetadataIndexError: ``vectors.npy`` is missing or unreadable.
        """
        if self._vectors is None:
            try:
                self._vectors = np.load(self.path / "vectors.npy")
            except (OSError, ValueError) as exc:
                raise MetadataIndexError(self._broken("column vectors", exc)) from None
        return self._vectors

    def _broken(self, what: str, why: object) -> str:
        return (f"the {what} of {self.record.db_id} in {self.path} cannot be read ({why}); "
                f"rebuild it with `quorumsql index DB --force`")

    def summary(self) -> dict[str, Any]:
        """Counts for reports: tables, columns, indexed values, joins, dependencies, time."""
        r = self.record
        return {
            "db_id": r.db_id,
            "tables": len(r.tables),
            "columns": len(r.columns),
            "rows": sum(t.row_count for t in r.tables),
            "indexed_columns": sum(1 for c in r.columns if c.indexed),
            "indexed_values": len(self.value_index) if (self.path / "values").is_dir() else 0,
            "declared_fks": sum(1 for j in r.join_candidates if j.declared),
            "inferred_joins": sum(1 for j in r.join_candidates if not j.declared),
            "duplicates": len(r.duplicates),
            "similar": len(r.similar),
            "dependencies": len(r.dependencies),
            "skipped_notes": len(r.skipped) + sum(len(t.skipped) for t in r.tables) + sum(len(c.skipped) for c in r.columns),
            "seconds": round(sum(r.seconds.values()), 2),
        }


# -----------------------------------------------------------------------------------------------
def _latest_pointer(root: Path, db: Database) -> Path:
    return root / "latest" / (hashlib.sha256(db.uri.encode()).hexdigest()[:24] + ".json")


def _stamp(db: Database) -> str | None:
    try:
        return db.change_stamp()
    except Exception:  # noqa: BLE001 - no stamp: fall back to the fingerprint
        return None


def _read_pointer(pointer: Path) -> dict[str, Any]:
    try:
        data = json.loads(pointer.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_pointer(pointer: Path, data: dict[str, Any]) -> None:
    """Replace the latest-build pointer atomically (a torn pointer is never read)."""
    try:
        pointer.parent.mkdir(parents=True, exist_ok=True)
        tmp = pointer.with_suffix(".tmp")
        tmp.write_text(json.dumps(data), encoding="utf-8")
        os.replace(tmp, pointer)
    except OSError:
        pass  # the pointer only saves work next time


def _open(path: Path, embedder=None) -> DatabaseMetadata | None:
    meta = path / "metadata.json"
    if not meta.is_file():
        return None
    try:
        record = MetadataRecord.model_validate_json(meta.read_text(encoding="utf-8"))
    except ValueError:
        return None
    if record.format_version != FORMAT_VERSION:
        return None
    return DatabaseMetadata(record, path, embedder=embedder)


def load(db: Database, settings: Settings, *, descriptions_dir: str | Path | None = None,
         options: ProfileOptions | None = None, similarity_threshold: float = 0.8) -> DatabaseMetadata | None:
    """The stored metadata of ``db`` in its current state, or None when there is none."""
    opts = options or ProfileOptions()
    key = store_key(db, descriptions_dir=descriptions_dir, options={**opts.as_dict(), "sim": similarity_threshold})
    return _open(Path(settings.cache_dir) / "index" / key)


def load_or_build(
    db: Database,
    settings: Settings,
    *,
    descriptions_dir: str | Path | None = None,
    progress: bool = False,
    force: bool = False,
    options: ProfileOptions | None = None,
    similarity_threshold: float = 0.8,
    embedder=None,
) -> DatabaseMetadata:
    """Metadata of ``db``: loaded from the cache when the database is unchanged, else built.

    Args:
        db: the database (read only through its read-only ``try_execute``).
        settings: ``settings.cache_dir`` holds the store (``index/<key>/``).
        descriptions_dir: BIRD ``database_description`` folder with column descriptions.
        progress: show a progress bar (stderr).
        force: rebuild even when a store for this state exists.
        options: profiling knobs (sample sizes, caps).
        similarity_threshold: cosine cut-off of similar columns.
        embedder: sentence embedder (default: the offline MiniLM ONNX model).

    Returns:
        A :class:`DatabaseMetadata`; ``built`` tells whether profiling ran.

    Raises:
        DatabaseError: the database cannot be introspected.
        ConfigError: the descriptions folder is missing or empty.
        MetadataBuildError: the store cannot be written.
    """
    opts = options or ProfileOptions()
    opt_dict = {**opts.as_dict(), "sim": similarity_threshold}
    embedder = embedder if embedder is not None else default_embedder()
    root = Path(settings.cache_dir).expanduser() / "index"
    pointer = _latest_pointer(root, db)
    extras = _hash({"v": FORMAT_VERSION, "desc": _descriptions_digest(descriptions_dir), "opt": opt_dict})
    stamp = _stamp(db)
    last = _read_pointer(pointer)
    if not force and stamp is not None and last.get("stamp") == stamp and last.get("extras") == extras:
        # unchanged since the last build (same change stamp, descriptions and options): reuse it
        # without computing the fingerprint, and hand its schema to the connector
        found = _open(root / str(last.get("key")), embedder)
        if found is not None:
            db.adopt_schema(found.record.schema_, stamp)
            return found
    key = store_key(db, descriptions_dir=descriptions_dir, options=opt_dict)
    target = root / key
    if not force:
        found = _open(target, embedder)
        if found is not None:
            _write_pointer(pointer, {"key": key, "uri": db.uri, "stamp": stamp, "extras": extras})
            return found
    previous = None
    if last.get("key"):
        previous = _open(root / str(last["key"]), embedder)
    builder = _Builder(db, opts, descriptions_dir=descriptions_dir, similarity_threshold=similarity_threshold,
                       progress=progress, embedder=embedder, previous=previous)
    try:
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=root))
    except OSError as exc:
        raise MetadataBuildError(f"cannot write the metadata store under {root}: {exc}") from None
    try:
        record, queries = builder.build(tmp, key)
        if target.exists():
            shutil.rmtree(target, ignore_errors=True)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _write_pointer(pointer, {"key": key, "uri": db.uri, "stamp": stamp, "extras": extras})
    meta = DatabaseMetadata(record, target, built=True, queries=queries, embedder=builder.embedder)
    return meta


class _Builder:
    """One build of a store (see :func:`load_or_build`)."""

    def __init__(self, db: Database, opts: ProfileOptions, *, descriptions_dir, similarity_threshold: float,
                 progress: bool, embedder, previous: DatabaseMetadata | None) -> None:
        self.db = db
        self.opts = opts
        self.descriptions_dir = descriptions_dir
        self.threshold = similarity_threshold
        self.progress = progress
        self.embedder = embedder
        self.previous = previous

    def _reuse_fn(self, table_name: str):
        prev = self.previous
        if prev is None:
            return None
        tprof = prev.record.table(table_name)
        if tprof is None or not tprof.signature:
            return None

        def reuse(signature: str) -> TableResult | None:
            if signature != tprof.signature:
                return None
            cols = [c.model_copy(deep=True) for c in prev.columns if c.table.lower() == table_name.lower()]
            values: dict[str, list[str]] = {}
            try:
                for c in cols:
                    if c.indexed:
                        values[c.name] = prev.value_index.values_of(c.table, c.name)
            except (OSError, ValueError, MetadataIndexError):
                return None
            return TableResult(table=tprof.model_copy(deep=True), columns=cols, values=values)

        return reuse

    def build(self, out: Path, key: str) -> tuple[MetadataRecord, int]:
        from tqdm.auto import tqdm

        db = self.db
        seconds: dict[str, float] = {}
        t0 = time.perf_counter()
        schema = db.schema()
        profiler = TableProfiler(db, self.opts)
        record = MetadataRecord(db_id=schema.db_id, uri=db.uri, fingerprint=key, schema=schema,
                                options={**self.opts.as_dict(), "similarity_threshold": self.threshold})
        bar = tqdm(total=len(schema.tables) + 4, desc=f"index {schema.db_id}", unit="step",
                   disable=not self.progress, leave=False)
        results: list[TableResult] = []
        reused = 0
        for table in schema.tables:
            bar.set_postfix_str(table.name[:30])
            res = profiler.profile(table, reuse=self._reuse_fn(table.name))
            reused += res.reused
            results.append(res)
            bar.update(1)
        if reused:
            record.skipped.append(f"{reused} unchanged tables reused from the previous build")
        for res in results:
            record.tables.append(res.table)
            record.columns.extend(res.columns)
        stats = {(res.table.name.lower(), name.lower()): st for res in results for name, st in res.stats.items()}
        self._apply_descriptions(record)
        seconds["profile"] = time.perf_counter() - t0

        # functional dependencies (reused for unchanged tables)
        t1 = time.perf_counter()
        bar.set_postfix_str("dependencies")
        prev_deps = {}
        if self.previous is not None:
            for d in self.previous.record.dependencies:
                prev_deps.setdefault(d.table.lower(), []).append(d)
        prev_sigs = {t.name.lower(): t.signature for t in self.previous.tables} if self.previous else {}
        for table, res in zip(schema.tables, results):
            if prev_sigs.get(table.name.lower()) == res.table.signature and res.table.signature:
                record.dependencies.extend(prev_deps.get(table.name.lower(), []))
                continue
            deps, notes = functional_dependencies(profiler, table, res.columns, sample_rows=self.opts.fd_sample_rows,
                                                  max_columns=self.opts.fd_max_columns)
            record.dependencies.extend(deps)
            res.table.skipped.extend(n for n in notes if n not in res.table.skipped)
        bar.update(1)
        seconds["dependencies"] = time.perf_counter() - t1

        # joins and duplicates
        t1 = time.perf_counter()
        bar.set_postfix_str("joins, duplicates")
        record.join_candidates = join_candidates(profiler, schema, record.columns)
        record.duplicates = duplicate_columns(profiler, record.columns, stats, record.join_candidates)
        bar.update(1)
        seconds["joins"] = time.perf_counter() - t1

        # value index
        t1 = time.perf_counter()
        bar.set_postfix_str("value index")
        values = {(res.table.name, name): vals for res in results for name, vals in res.values.items()}
        ValueIndex.build(values, out / "values")
        bar.update(1)
        seconds["value_index"] = time.perf_counter() - t1

        # column embeddings, similar columns, column index
        t1 = time.perf_counter()
        bar.set_postfix_str("column index")
        texts = [column_text(c) for c in record.columns]
        vectors = self._embed(texts)
        np.save(out / "vectors.npy", vectors)
        keys = [(c.table, c.name) for c in record.columns]
        dup_pairs = {frozenset({(p.table, p.column), (p.other_table, p.other_column)}) for p in record.duplicates}
        dup_pairs |= {frozenset({(j.table, j.column), (j.ref_table, j.ref_column)}) for j in record.join_candidates}
        record.similar = similar_columns(keys, vectors, threshold=self.threshold, exclude=dup_pairs)
        ColumnIndex.build(out / "chroma", record.columns, vectors, self.embedder)
        bar.update(1)
        bar.close()
        seconds["column_index"] = time.perf_counter() - t1

        for t in record.tables:
            for note in t.skipped:
                record.skipped.append(f"{t.name}: {note}")
        record.seconds = {k: round(v, 3) for k, v in seconds.items()}
        record.built_at = time.time()
        (out / "metadata.json").write_text(record.model_dump_json(by_alias=True), encoding="utf-8")
        return record, profiler.queries

    def _embed(self, texts: list[str]) -> np.ndarray:
        """Embed ``texts``, reusing vectors of texts the previous build already embedded."""
        known: dict[str, np.ndarray] = {}
        prev = self.previous
        if prev is not None:
            try:
                pv = prev.vectors
                for c, v in zip(prev.columns, pv):
                    known[column_text(c)] = v
            except (OSError, ValueError, MetadataIndexError):
                known = {}
        missing = [t for t in dict.fromkeys(texts) if t not in known]
        if missing:
            for t, v in zip(missing, self.embedder.embed(missing)):
                known[t] = v
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        return np.stack([known[t] for t in texts]).astype(np.float32)

    def _apply_descriptions(self, record: MetadataRecord) -> None:
        if self.descriptions_dir is None:
            return
        descs = load_descriptions(self.descriptions_dir)
        matched = 0
        for c in record.columns:
            d = descs.get(c.key)
            if d is None:
                continue
            text = d.text()
            if text:
                c.description, c.description_source = text, "file"
                matched += 1
            if d.value_description:
                c.value_description = " ".join(d.value_description.split())
            if d.data_format:
                c.data_format = " ".join(d.data_format.split())
        unmatched = len(descs) - matched
        if unmatched > 0:
            record.skipped.append(f"{unmatched} description rows matched no column (or were empty)")


def iter_stores(settings: Settings) -> Iterable[Path]:
    """Folders of all stores under ``settings.cache_dir``."""
    root = Path(settings.cache_dir).expanduser() / "index"
    if root.is_dir():
        for p in sorted(root.iterdir()):
            if (p / "metadata.json").is_file():
                yield p
