"""The example memory of a database: question / SQL pairs learned about it, with provenance.

What QuorumSQL learns about one database (DESIGN.md, "What QuorumSQL learns about a database")
starts with pairs of a question and the SQL that answers it. They come from people (``taught``
with ``quorumsql teach`` or :meth:`quorumsql.Pipeline.teach`, ``corrected`` with
:meth:`quorumsql.Answer.correct`), from a query log (``log``: SQLord's idea of learning from the
SQL a company already runs, its ``--`` comments as descriptions), from the synthesis graph
(``synthesized``) and from reviewed synthesis (``reviewed``). The ICL generator serves the
asked database's pairs before any cross-database example (:mod:`quorumsql.graph.icl`).

Storage
    One SQLite file per database, ``<cache_dir>/index/examples/<key>.sqlite``, beside the
    metadata stores (:mod:`quorumsql.metadata.store`). The key hashes the database's URI (its
    identity), not its fingerprint: the metadata store is rebuilt when the data changes, the
    memory is kept. The file is the project's own cache, never the user's database; it is
    opened in WAL mode with a busy timeout and every write is one ``BEGIN IMMEDIATE``
    transaction, so two processes teaching the same database at once both land.

Schema changes
    The memory records a signature of the schema its pairs were last checked against
    (:func:`schema_signature`: tables, columns, types, foreign keys). When the database's
    schema differs, :meth:`ExampleMemory.recheck` runs every pair's SQL again, read-only through
    the :class:`~quorumsql.db.Database`, and marks those that no longer run (``runs=False`` and
    the reason); they are listed but never served. A pair that runs again is restored.

Damage
    A file that is not a readable SQLite database, fails ``PRAGMA quick_check``, has another
    format version or belongs to another database is moved aside (``<name>.corrupt-<time>``),
    the pairs that can still be read from it are copied into a fresh file, and
    :attr:`ExampleMemory.notes` says what happened. A question never fails because of it.

Retrieval (skeleton similarity) lives in :mod:`quorumsql.agents.own_examples`; this module
stores pairs and, for that module, the embeddings of their skeletons.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from quorumsql.db import Database, DatabaseSchema
from quorumsql.errors import InputError, QuorumSQLError

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: opening is not serialised between processes
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "FORMAT_VERSION", "PROVENANCES", "ExampleMemories", "ExampleMemory", "ExampleMemoryError", "ExamplePair",
    "RecheckReport", "default_root", "memory_path", "schema_signature", "teach_pair", "verify_sql",
]

#: the layout of the memory file (``PRAGMA user_version``); another value is rebuilt
FORMAT_VERSION = 1
#: where a pair came from
PROVENANCES = ("log", "synthesized", "reviewed", "taught", "corrected")
_BUSY_SECONDS = 30.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS pairs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    question TEXT NOT NULL,
    sql TEXT NOT NULL,
    evidence TEXT NOT NULL DEFAULT '',
    provenance TEXT NOT NULL,
    source TEXT NOT NULL DEFAULT '',
    question_key TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    runs INTEGER NOT NULL DEFAULT 1,
    problem TEXT NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX IF NOT EXISTS pairs_question ON pairs (question_key);
CREATE TABLE IF NOT EXISTS vectors (
    pair_id INTEGER NOT NULL,
    kind TEXT NOT NULL,
    text TEXT NOT NULL,
    vector BLOB NOT NULL,
    PRIMARY KEY (pair_id, kind)
);
"""
_COLUMNS = "id, question, sql, evidence, provenance, source, created_at, updated_at, runs, problem"


class ExampleMemoryError(QuorumSQLError):
    """The example memory cannot be read or written (disk full, permissions, damage found mid-use)."""


@dataclass(frozen=True)
class ExamplePair:
    """One question / SQL pair of a database's memory.

    Attributes:
        id: stable id within the memory (never reused).
        question: the question as asked or written.
        sql: the SQL that answers it, in the database's dialect.
        evidence: external knowledge that goes with the question ("" when none).
        provenance: one of :data:`PROVENANCES`.
        source: free text saying where exactly it came from (a file and line, a run, a user).
        created_at, updated_at: Unix times.
        runs: False when its SQL failed against the database's current schema.
        problem: why it does not run ("" when it does).
    """

    id: int
    question: str
    sql: str
    evidence: str
    provenance: str
    source: str
    created_at: float
    updated_at: float
    runs: bool = True
    problem: str = ""

    def to_json(self) -> dict[str, Any]:
        """The pair as a JSON object (the ``examples --export`` line)."""
        return asdict(self)


@dataclass(frozen=True)
class RecheckReport:
    """What :meth:`ExampleMemory.recheck` did.

    Attributes:
        checked: pairs whose SQL was run.
        broken: pairs that do not run on the current schema (now marked).
        restored: pairs marked earlier that run again.
        skipped: True when the schema had not changed and nothing was run.
    """

    checked: int = 0
    broken: int = 0
    restored: int = 0
    skipped: bool = False


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def _question_key(question: str, evidence: str) -> str:
    return hashlib.sha256(f"{_norm(question)}\x00{_norm(evidence)}".encode()).hexdigest()[:32]


def schema_signature(schema: DatabaseSchema) -> str:
    """A digest of the structure a pair's SQL depends on: tables, columns, types, foreign keys.

    Example values, comments and row counts are left out, so new data never changes it.
    """
    shape = {
        "tables": sorted(
            (t.name.lower(), [(c.name.lower(), (c.type or "").lower()) for c in t.columns]) for t in schema.tables
        ),
        "fks": sorted(str(fk).lower() for fk in schema.foreign_keys),
    }
    return hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()[:32]


def default_root(settings) -> Path:
    """The folder of the memories of ``settings``: ``<cache_dir>/index/examples``."""
    return Path(settings.cache_dir).expanduser() / "index" / "examples"


def memory_path(root: str | os.PathLike, db: Database) -> Path:
    """The memory file of ``db`` under ``root``: named by a hash of the database's URI."""
    return Path(root) / (hashlib.sha256(db.uri.encode()).hexdigest()[:24] + ".sqlite")


def verify_sql(db: Database, sql: str, *, timeout: float | None = None) -> str | None:
    """Run ``sql`` read-only on ``db``; None when it runs, else why not (one line).

    The statement goes through :meth:`Database.try_execute`, so the read-only check refuses
    anything but one read query before the database sees it. At most one row is fetched.
    """
    result = db.try_execute(sql, timeout=timeout, max_rows=1)
    if result.ok:
        return None
    return " ".join(str(result.error).split()) or result.error_kind or "it failed"


class ExampleMemory:
    """The example memory of one database, kept in one SQLite file.

    Open it with :meth:`open` (or through :class:`ExampleMemories`). Every method opens its own
    short connection, so one object may be shared by threads, and several processes may use
    the same file at once.

    Attributes:
        path: the memory file.
        uri, db_id: the database it belongs to.
        notes: what opening found and repaired (a damaged file moved aside, pairs recovered).

    Raises:
        ExampleMemoryError: (from any method) the file cannot be read or written.
    """

    def __init__(self, path: Path, *, uri: str, db_id: str, notes: list[str] | None = None) -> None:
        self.path = Path(path)
        self.uri = uri
        self.db_id = db_id
        self.notes = list(notes or [])

    # -- opening ---------------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | os.PathLike, *, uri: str, db_id: str) -> "ExampleMemory":
        """Open (creating when missing) the memory file at ``path`` for database ``uri``.

        A damaged file, a file of another format version or one that belongs to another
        database is moved aside and replaced by a fresh one holding whatever pairs could still
        be read from it; :attr:`notes` says so.

        Raises:
            ExampleMemoryError: the folder or the file cannot be created or written.
        """
        p = Path(path)
        notes: list[str] = []
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ExampleMemoryError(f"cannot create the example memory folder {p.parent}: {exc}") from None
        with _file_lock(p):
            problem = _problem_of(p, uri) if p.exists() else None
            salvaged: list[dict[str, Any]] = []
            if problem:
                aside = p.with_name(f"{p.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
                for suffix in ("", "-wal", "-shm"):
                    src = Path(str(p) + suffix)
                    if src.exists():
                        try:
                            os.replace(src, Path(str(aside) + suffix))
                        except OSError as exc:
                            raise ExampleMemoryError(f"the example memory {p} is unusable ({problem}) and cannot be "
                                                     f"moved aside: {exc}") from None
                salvaged = _salvage(aside)
                notes.append(f"the example memory of {db_id} ({p}) was unusable ({problem}); it was moved to "
                             f"{aside.name} and rebuilt with the {len(salvaged)} pair(s) that could still be read")
            try:
                with _connect(p) as conn:
                    conn.execute("PRAGMA journal_mode=WAL")
                    conn.executescript(_SCHEMA)
                    conn.execute(f"PRAGMA user_version={FORMAT_VERSION}")
                    conn.execute("BEGIN IMMEDIATE")
                    for key, value in (("uri", uri), ("db_id", db_id), ("created_at", str(time.time())),
                                       ("generation", "0")):
                        conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)", (key, value))
                    for row in salvaged:
                        _upsert(conn, row)
                    conn.execute("COMMIT")
            except sqlite3.Error as exc:
                raise ExampleMemoryError(f"cannot write the example memory {p}: {exc}") from None
        return cls(p, uri=uri, db_id=db_id, notes=notes)

    # -- connections -----------------------------------------------------------------------
    @contextlib.contextmanager
    def _conn(self) -> Iterator[sqlite3.Connection]:
        try:
            with _connect(self.path) as conn:
                yield conn
        except sqlite3.Error as exc:
            raise ExampleMemoryError(f"the example memory {self.path} cannot be used: {exc}") from None

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (``BEGIN IMMEDIATE``: waits for another writer, then holds the lock)."""
        with self._conn() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'")
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    # -- pairs -----------------------------------------------------------------------------
    def add(self, question: str, sql: str, *, evidence: str | None = None, provenance: str = "taught",
            source: str = "") -> ExamplePair:
        """Store one pair and return it as stored.

        The same question (with the same evidence; case and spacing ignored) is one pair: adding
        it again replaces its SQL, provenance and source, so a correction supersedes what was
        there. The SQL is stored as given; check it first (:func:`teach_pair` does).

        Raises:
            InputError: an empty question or SQL, or an unknown provenance.
            ExampleMemoryError: the file cannot be written.
        """
        row = _checked_row(question, sql, evidence, provenance, source)
        with self._write() as conn:
            pair_id = _upsert(conn, row)
            found = conn.execute(f"SELECT {_COLUMNS} FROM pairs WHERE id = ?", (pair_id,)).fetchone()
        return _pair(found)

    def add_many(self, rows: Iterable[Mapping[str, Any]], *, provenance: str | None = None,
                 source: str | None = None) -> int:
        """Store many pairs in one transaction; returns how many were given.

        Args:
            rows: mappings with ``question``, ``sql`` and optional ``evidence``, ``provenance``,
                ``source``.
            provenance, source: defaults for rows that do not say.

        Raises:
            InputError: a row with an empty question or SQL or an unknown provenance (nothing is stored).
            ExampleMemoryError: the file cannot be written.
        """
        checked = [
            _checked_row(r.get("question"), r.get("sql"), r.get("evidence"), r.get("provenance") or provenance or "log",
                         r.get("source") or source or "")
            for r in rows
        ]
        with self._write() as conn:
            for row in checked:
                _upsert(conn, row)
        return len(checked)

    def pairs(self, *, include_broken: bool = False) -> list[ExamplePair]:
        """Stored pairs in id order; those whose SQL no longer runs only with ``include_broken``."""
        where = "" if include_broken else " WHERE runs = 1"
        with self._conn() as conn:
            rows = conn.execute(f"SELECT {_COLUMNS} FROM pairs{where} ORDER BY id").fetchall()
        return [_pair(r) for r in rows]

    def get(self, pair_id: int) -> ExamplePair | None:
        """The pair with this id, or None."""
        with self._conn() as conn:
            row = conn.execute(f"SELECT {_COLUMNS} FROM pairs WHERE id = ?", (int(pair_id),)).fetchone()
        return _pair(row) if row else None

    def remove(self, pair_id: int) -> bool:
        """Delete one pair; False when there is no pair with that id."""
        with self._write() as conn:
            gone = conn.execute("DELETE FROM pairs WHERE id = ?", (int(pair_id),)).rowcount
            conn.execute("DELETE FROM vectors WHERE pair_id = ?", (int(pair_id),))
        return bool(gone)

    def clear(self) -> int:
        """Delete every pair; returns how many there were."""
        with self._write() as conn:
            gone = conn.execute("DELETE FROM pairs").rowcount
            conn.execute("DELETE FROM vectors")
        return gone

    def count(self, *, include_broken: bool = False) -> int:
        """Number of pairs (servable ones unless ``include_broken``)."""
        where = "" if include_broken else " WHERE runs = 1"
        with self._conn() as conn:
            return int(conn.execute(f"SELECT count(*) FROM pairs{where}").fetchone()[0])

    def __len__(self) -> int:
        return self.count()

    def take_notes(self) -> list[str]:
        """:attr:`notes` not yet reported, emptied (so each is reported once)."""
        notes, self.notes = self.notes, []
        return notes

    @property
    def generation(self) -> int:
        """A counter that every change of the pairs increases (for caches of derived data)."""
        with self._conn() as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()
        return int(row[0]) if row else 0

    # -- schema changes --------------------------------------------------------------------
    def checked_signature(self) -> str | None:
        """The :func:`schema_signature` the pairs were last checked against (None: never)."""
        with self._conn() as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        return row[0] if row else None

    def recheck(self, db: Database, *, force: bool = False) -> RecheckReport:
        """After a schema change, run every pair's SQL again and mark those that fail.

        Nothing runs when the schema's signature is the one last checked (unless ``force``).
        A query that times out is not marked: slow is not broken.

        Raises:
            DatabaseError: the database's schema cannot be read.
            ExampleMemoryError: the file cannot be written.
        """
        signature = schema_signature(db.schema())
        last = self.checked_signature()
        if not force and last == signature:
            return RecheckReport(skipped=True)
        pairs = self.pairs(include_broken=True)
        if not pairs:
            with self._write() as conn:
                conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('schema', ?)", (signature,))
            return RecheckReport(skipped=True)
        verdicts: dict[int, str] = {}
        for pair in pairs:
            result = db.try_execute(pair.sql, max_rows=1)
            verdicts[pair.id] = "" if result.ok or result.error_kind == "timeout" else " ".join(str(result.error).split())
        broken = restored = 0
        now = time.time()
        with self._write() as conn:
            for pair in pairs:
                problem = verdicts[pair.id]
                if bool(problem) == (not pair.runs) and problem == pair.problem:
                    continue
                broken += bool(problem) and pair.runs
                restored += (not problem) and (not pair.runs)
                conn.execute("UPDATE pairs SET runs = ?, problem = ?, updated_at = ? WHERE id = ?",
                             (0 if problem else 1, problem, now, pair.id))
            conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('schema', ?)", (signature,))
        return RecheckReport(checked=len(pairs), broken=broken, restored=restored)

    # -- derived vectors (for retrieval) ---------------------------------------------------
    def vectors(self, kind: str) -> dict[int, tuple[str, np.ndarray]]:
        """Stored vectors of one kind: ``{pair id: (the text embedded, float32 vector)}``."""
        with self._conn() as conn:
            rows = conn.execute("SELECT pair_id, text, vector FROM vectors WHERE kind = ?", (kind,)).fetchall()
        return {int(i): (t, np.frombuffer(v, dtype=np.float32)) for i, t, v in rows}

    def put_vectors(self, kind: str, rows: Mapping[int, tuple[str, np.ndarray]]) -> None:
        """Store vectors of one kind (``{pair id: (text, vector)}``); they do not change :attr:`generation`."""
        if not rows:
            return
        with self._conn() as conn:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(
                "INSERT OR REPLACE INTO vectors (pair_id, kind, text, vector) "
                "SELECT ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM pairs WHERE id = ?)",
                [(int(i), kind, t, np.asarray(v, dtype=np.float32).tobytes(), int(i)) for i, (t, v) in rows.items()],
            )
            conn.execute("COMMIT")


# -----------------------------------------------------------------------------------------
@contextlib.contextmanager
def _connect(path: Path) -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(path, timeout=_BUSY_SECONDS, isolation_level=None)
    try:
        yield conn
    finally:
        conn.close()


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Serialise opening (the check and any rebuild) between processes."""
    if fcntl is None:
        yield
        return
    lock = path.with_name(path.name + ".lock")
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise ExampleMemoryError(f"cannot create {lock}: {exc}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _problem_of(path: Path, uri: str) -> str | None:
    """Why an existing memory file cannot be used as it is, or None when it can."""
    try:
        with _connect(path) as conn:
            check = conn.execute("PRAGMA quick_check").fetchone()
            if not check or check[0] != "ok":
                return f"integrity check failed: {check[0] if check else 'no answer'}"
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if version == 0 and not tables:
                return None  # an empty file: a memory not yet created
            if version != FORMAT_VERSION:
                return f"written in format version {version}, this version reads {FORMAT_VERSION}"
            if not {"meta", "pairs", "vectors"} <= tables:
                return "tables are missing"
            row = conn.execute("SELECT value FROM meta WHERE key = 'uri'").fetchone()
            if row and row[0] != uri:
                return f"it belongs to another database ({row[0]})"
    except sqlite3.Error as exc:
        return str(exc)
    return None


def _salvage(path: Path) -> list[dict[str, Any]]:
    """The pairs that can still be read from a damaged memory file (possibly none)."""
    out: list[dict[str, Any]] = []
    try:
        with _connect(path) as conn:
            for q, s, e, p, src in conn.execute("SELECT question, sql, evidence, provenance, source FROM pairs"):
                try:
                    out.append(_checked_row(q, s, e, p, src))
                except InputError:
                    continue
    except sqlite3.Error:
        pass
    return out


def _checked_row(question: Any, sql: Any, evidence: Any, provenance: Any, source: Any) -> dict[str, Any]:
    if not isinstance(question, str) or not question.strip():
        raise InputError("the question of an example is empty")
    if not isinstance(sql, str) or not sql.strip():
        raise InputError("the SQL of an example is empty")
    if evidence is not None and not isinstance(evidence, str):
        raise InputError(f"evidence must be a string or None, got {type(evidence).__name__}")
    if provenance not in PROVENANCES:
        raise InputError(f"unknown provenance {provenance!r}; one of {', '.join(PROVENANCES)}")
    return {"question": " ".join(question.split()), "sql": sql.strip().rstrip(";").strip(),
            "evidence": (evidence or "").strip(), "provenance": provenance, "source": str(source or "")}


def _upsert(conn: sqlite3.Connection, row: Mapping[str, Any]) -> int:
    """Insert a pair, or replace the SQL of the pair with the same question; returns its id."""
    now = time.time()
    key = _question_key(row["question"], row["evidence"])
    conn.execute(
        "INSERT INTO pairs (question, sql, evidence, provenance, source, question_key, created_at, updated_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (question_key) DO UPDATE SET question = excluded.question, "
        "sql = excluded.sql, provenance = excluded.provenance, source = excluded.source, "
        "updated_at = excluded.updated_at, runs = 1, problem = ''",
        (row["question"], row["sql"], row["evidence"], row["provenance"], row["source"], key, now, now),
    )
    return int(conn.execute("SELECT id FROM pairs WHERE question_key = ?", (key,)).fetchone()[0])


def _pair(row: tuple) -> ExamplePair:
    i, q, s, e, p, src, created, updated, runs, problem = row
    return ExamplePair(id=int(i), question=q, sql=s, evidence=e, provenance=p, source=src,
                       created_at=float(created), updated_at=float(updated), runs=bool(runs), problem=problem)


# -----------------------------------------------------------------------------------------
def teach_pair(memory: ExampleMemory, db: Database, question: str, sql: str, *, evidence: str | None = None,
               provenance: str = "taught", source: str = "") -> ExamplePair:
    """Check a pair against the database, then store it.

    The SQL is run read-only first (:func:`verify_sql`); a pair whose SQL is refused, fails or
    times out is not stored.

    Raises:
        InputError: an empty question or SQL, an unknown provenance, or SQL that does not run
            (the message gives the database's reason).
        ExampleMemoryError: the memory cannot be written.
    """
    _checked_row(question, sql, evidence, provenance, source)
    problem = verify_sql(db, sql)
    if problem:
        raise InputError(f"the SQL does not run on {db.db_id}, so the pair was not stored: {problem}")
    return memory.add(question, sql, evidence=evidence, provenance=provenance, source=source)


class ExampleMemories:
    """The example memories under one folder, one per database, opened once per process.

    Args:
        root: the folder (default for a pipeline: :func:`default_root`, i.e.
            ``<cache_dir>/index/examples``; a benchmark run gives its own).

    Thread-safe.
    """

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root).expanduser()
        self._open: dict[str, tuple[ExampleMemory, str | None]] = {}
        self._signatures: dict[str, tuple[DatabaseSchema, str]] = {}
        self._lock = threading.Lock()

    def memory_for(self, db: Database) -> ExampleMemory:
        """The memory of ``db``, opened (or created) on first use and rechecked after a schema change.

        Raises:
            ExampleMemoryError: the memory cannot be created or written.
            DatabaseError: the database's schema cannot be read.
        """
        schema = db.schema()
        key = db.uri
        with self._lock:
            seen = self._signatures.get(key)
        if seen is not None and seen[0] is schema:
            signature = seen[1]  # the connector's schema object is unchanged: so is its signature
        else:
            signature = schema_signature(schema)
            with self._lock:
                self._signatures[key] = (schema, signature)
        with self._lock:
            cached = self._open.get(key)
            if cached is not None and cached[1] == signature:
                return cached[0]
            memory = cached[0] if cached is not None else ExampleMemory.open(memory_path(self.root, db), uri=db.uri,
                                                                             db_id=db.db_id)
            report = memory.recheck(db)
            if report.broken or report.restored:
                memory.notes.append(f"the schema of {db.db_id} changed: {report.broken} pair(s) no longer run, "
                                    f"{report.restored} run again ({report.checked} checked)")
            self._open[key] = (memory, signature)
            return memory

    def forget(self, db: Database) -> None:
        """Drop the memory held for ``db`` (the next :meth:`memory_for` opens and checks it again)."""
        with self._lock:
            self._open.pop(db.uri, None)
            self._signatures.pop(db.uri, None)
