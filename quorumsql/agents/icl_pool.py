"""Few-shot example pool of the ICL generator, searched by question-skeleton similarity.

XiYan-SQL's ICL generator (paper 003, section 5.2) chooses its examples by the similarity of
question skeletons (:mod:`quorumsql.agents.skeleton`), keeps only multi-table examples when
schema linking selected two or more tables, caps them at 5 and a similarity threshold, and
shows each with the minimal schema its SQL needs. This module is that pool:

* **Format**: JSONL, one example a line: ``question``, the SQL under ``query``, ``SQL`` or
  ``sql`` (the first that is a non-empty string), ``db_id``, optional ``evidence`` and optional
  ``schema`` (the example's minimal schema as text, for pools made where the database is not
  available). Lines that are not JSON objects, lack a key, or whose SQL does not parse are
  skipped and counted.
* **Skeletons**: an example's question is masked with the literals its own SQL compares to
  columns (:func:`~quorumsql.agents.skeleton.sql_values`), so no database is opened to build a pool.
* **Index**: skeletons are embedded with the offline MiniLM
  (:func:`quorumsql.llm.embeddings.default_embedder`) and stored in a chromadb collection under
  ``cache_dir/icl/<digest>``, the digest being a SHA-256 of the pool file's bytes, the masking
  rules' version and the embedder: an edited file gets a new index, an unchanged one is reopened.
* **Query** (:meth:`ExamplePool.nearest`): cosine similarity of skeletons, never an example of
  the database being asked about, multi-table examples first when the question involves two or
  more tables, at most ``k`` (<= 5) over ``min_similarity``.
* **Minimal schema** (:meth:`ExamplePool.minimal_schema`): the tables and columns the example's
  SQL references (:func:`quorumsql.agents.linker.referenced_columns`) rendered from its
  database, found under a Spider-layout root (``<root>/<db_id>/<db_id>.sqlite``); without the
  database, the tables its SQL names.

:func:`load_pool` keeps one loaded pool per file (path, modification time and size) per process.
"""

from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from quorumsql.agents.skeleton import SKELETON_VERSION, mask_question, sql_values
from quorumsql.errors import ConfigError, DatabaseError
from quorumsql.jsonl import json_objects
from quorumsql.metadata.column_index import chroma_client, replace_collection

__all__ = [
    "MAX_EXAMPLES", "Example", "ExamplePool", "Neighbours", "ScoredExample", "load_pool", "read_pool", "sql_tables",
]

MAX_EXAMPLES = 5  # XiYan-SQL section 5.2: "a maximum of 5 examples are used for each question"
COLLECTION = "examples"
_SQL_KEYS = ("query", "SQL", "sql")


@dataclass(frozen=True)
class Example:
    """One pool example.

    Attributes:
        id: position among the pool's valid examples (0-based).
        line: line number in the JSONL file (1-based).
        question, sql, db_id: the example.
        evidence: external knowledge that came with it ("" when none).
        skeleton: its question with entities masked.
        tables: tables its SQL reads (lower-cased, CTE names excluded), first seen first.
        schema: minimal schema text given in the pool file, if any.
    """

    id: int
    line: int
    question: str
    sql: str
    db_id: str
    evidence: str
    skeleton: str
    tables: tuple[str, ...]
    schema: str | None = None

    @property
    def multi_table(self) -> bool:
        """The SQL reads two or more tables (joins, or subqueries over other tables)."""
        return len(self.tables) >= 2


class ScoredExample(NamedTuple):
    """An example and the cosine similarity (-1..1) of its skeleton to the question's."""

    example: Example
    similarity: float


class Neighbours(NamedTuple):
    """What :meth:`ExamplePool.nearest` found.

    Attributes:
        examples: the chosen examples, in the order to show them (multi-table first when
            preferred, then by similarity).
        considered: examples of other databases that were ranked.
        best: the highest similarity among them (None when none), to tell "nothing similar
            enough" from "nothing at all".
    """

    examples: list[ScoredExample]
    considered: int
    best: float | None


def sql_tables(sql: str, dialect: str | None = None) -> tuple[str, ...] | None:
    """Tables an SQL query reads, lower-cased, CTE names excluded; None when it does not parse."""
    import sqlglot
    from sqlglot import exp
    from sqlglot.errors import SqlglotError

    try:
        tree = sqlglot.parse_one(sql, read=dialect)
    except (SqlglotError, ValueError):
        return None
    if tree is None or not isinstance(tree, exp.Query):
        return None
    ctes = {c.alias_or_name.lower() for c in tree.find_all(exp.CTE)}
    names = (t.name.lower() for t in tree.find_all(exp.Table) if t.name)
    return tuple(dict.fromkeys(n for n in names if n not in ctes))


def _sql_key(sql: str) -> str:
    return " ".join(sql.lower().rstrip("; \n").split())


def _distinct(scored: list[ScoredExample]) -> list[ScoredExample]:
    """``scored`` without the examples whose SQL repeats an earlier one's (case and spacing ignored)."""
    seen: set[str] = set()
    out = []
    for s in scored:
        key = _sql_key(s.example.sql)
        if key not in seen:
            seen.add(key)
            out.append(s)
    return out


def _text(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def read_pool(path: str | os.PathLike) -> tuple[list[Example], int, list[str]]:
    """Parse a JSONL pool file.

    Args:
        path: the file.

    Returns:
        ``(examples, skipped, problems)``: the valid examples with their skeletons, the number
        of non-blank lines skipped, and a short reason for each of the first 5 skipped lines.

    Raises:
        ConfigError: the file is missing or unreadable.
    """
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"ICL example pool not found: {p}") from None
    except OSError as exc:
        raise ConfigError(f"ICL example pool {p} cannot be read: {exc}") from None
    examples: list[Example] = []
    skipped = 0
    problems: list[str] = []

    def skip(line: int, why: str) -> None:
        nonlocal skipped
        skipped += 1
        if len(problems) < 5:
            problems.append(f"line {line}: {why}")

    for number, row, problem in json_objects(data.decode("utf-8", errors="replace").splitlines()):
        if problem:
            skip(number, problem)
            continue
        question, db_id = _text(row.get("question")), _text(row.get("db_id"))
        sql = next((s for s in (_text(row.get(k)) for k in _SQL_KEYS) if s), None)
        missing = [name for name, v in (("question", question), ("SQL", sql), ("db_id", db_id)) if not v]
        if missing:
            skip(number, "no " + ", ".join(missing))
            continue
        tables = sql_tables(sql)
        if not tables:
            skip(number, "the SQL does not parse as a query")
            continue
        examples.append(Example(
            id=len(examples), line=number, question=question, sql=sql, db_id=db_id,
            evidence=_text(row.get("evidence")) or "",
            skeleton=mask_question(question, sql_values(sql)).text,
            tables=tables, schema=_text(row.get("schema")),
        ))
    return examples, skipped, problems


class ExamplePool:
    """A loaded pool: examples, their skeleton embeddings in chromadb, minimal schemas.

    Build with :meth:`load` (or the cached :func:`load_pool`).

    Attributes:
        path: the JSONL file.
        examples: valid examples, in file order.
        skipped: malformed lines skipped.
        problems: reasons for the first skipped lines.
        database_root: Spider-layout folder holding the examples' databases, or None.
    """

    def __init__(self, path: Path, examples: list[Example], skipped: int, problems: list[str], *,
                 collection, embedder, database_root: Path | None) -> None:
        self.path = path
        self.examples = examples
        self.skipped = skipped
        self.problems = problems
        self.database_root = database_root
        self._collection = collection
        self._embedder = embedder
        self._schemas: dict[str, Any] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.examples)

    @classmethod
    def load(cls, path: str | os.PathLike, *, cache_dir: str | os.PathLike, embedder=None,
             database_root: str | os.PathLike | None = None) -> "ExamplePool":
        """Read the pool file and open (or build) its skeleton index.

        Args:
            path: the JSONL pool.
            cache_dir: the cache directory (``Settings.cache_dir``); the index lives under
                ``cache_dir/icl/<digest>``.
            embedder: ``embed(list[str]) -> ndarray (n, d)``, L2-normalised rows (default: the
                offline MiniLM).
            database_root: folder with ``<db_id>/<db_id>.sqlite`` databases of the examples.

        Raises:
            ConfigError: the file is missing or unreadable.
            ModelError: the embedding model cannot be loaded.
        """
        p = Path(path)
        examples, skipped, problems = read_pool(p)
        root = Path(database_root) if database_root else None
        if embedder is None:
            from quorumsql.llm.embeddings import default_embedder

            embedder = default_embedder()
        collection = None
        if examples:
            digest = hashlib.sha256(p.read_bytes())
            digest.update(f"|skeleton-v{SKELETON_VERSION}|{getattr(embedder, 'name', type(embedder).__name__)}".encode())
            collection = cls._index(Path(cache_dir) / "icl" / digest.hexdigest()[:24], examples, embedder)
        return cls(p, examples, skipped, problems, collection=collection, embedder=embedder, database_root=root)

    @staticmethod
    def _index(directory: Path, examples: list[Example], embedder):
        """The chromadb collection of the skeletons, reopened when complete, else rebuilt."""
        directory.mkdir(parents=True, exist_ok=True)
        client = chroma_client(directory)
        col = client.get_or_create_collection(COLLECTION, embedding_function=None, metadata={"hnsw:space": "cosine"})
        if col.count() == len(examples):
            return col
        return replace_collection(
            client, COLLECTION, vectors=embedder.embed([e.skeleton for e in examples]),
            ids=[str(e.id) for e in examples], documents=[e.skeleton for e in examples],
            metadatas=[{"db_id": e.db_id.lower(), "multi": e.multi_table} for e in examples],
        )

    def _query(self, vector: list[float], where: dict | None, n: int) -> list[ScoredExample]:
        if n <= 0:
            return []
        res = self._collection.query(query_embeddings=[vector], n_results=n, where=where,
                                     include=["distances"])
        return [ScoredExample(self.examples[int(i)], round(1.0 - float(d), 4))
                for i, d in zip(res["ids"][0], res["distances"][0])]

    def nearest(self, skeleton: str, *, exclude_db: str | None, k: int = 3, min_similarity: float = 0.0,
                multi_table: bool = False) -> Neighbours:
        """The examples whose skeletons are nearest to ``skeleton``.

        Args:
            skeleton: the question's skeleton (:func:`~quorumsql.agents.skeleton.question_skeleton`).
            exclude_db: the asked database's id: its examples are never returned
                (case-insensitive).
            k: examples at most (capped at :data:`MAX_EXAMPLES`).
            min_similarity: least cosine similarity (-1..1) of a returned example.
            multi_table: the question involves two or more tables: multi-table examples come
                first and single-table ones only fill the places left (XiYan-SQL keeps only
                multi-table examples for such questions; filling avoids dropping to a
                zero-shot prompt when the pool has too few).

        Examples whose SQL repeats a better one's (paraphrased questions, as Spider has in
        pairs) are skipped: the same query twice teaches nothing and costs prompt tokens.

        Returns:
            :class:`Neighbours`.

        Raises:
            ModelError: the embedding model cannot be loaded.
        """
        k = max(0, min(int(k), MAX_EXAMPLES))
        if self._collection is None or k == 0:
            return Neighbours([], 0, None)
        vector = np.asarray(self._embedder.embed([skeleton])[0], dtype=np.float32).tolist()
        other = {"db_id": {"$ne": exclude_db.lower()}} if exclude_db else None
        considered = len(self) - sum(1 for e in self.examples if exclude_db and e.db_id.lower() == exclude_db.lower())
        fetch = min(considered, max(4 * k, 20))
        ranked = self._query(vector, other, fetch)
        best = ranked[0].similarity if ranked else None
        chosen: list[ScoredExample] = []
        if multi_table:
            where = {"multi": True} if other is None else {"$and": [other, {"multi": True}]}
            n_multi = sum(1 for e in self.examples if e.multi_table
                          and not (exclude_db and e.db_id.lower() == exclude_db.lower()))
            chosen = [s for s in self._query(vector, where, min(n_multi, 4 * k)) if s.similarity >= min_similarity]
            chosen = _distinct(chosen)[:k]
        seen = {_sql_key(s.example.sql) for s in chosen}
        for s in ranked:
            if len(chosen) >= k:
                break
            if s.similarity >= min_similarity and _sql_key(s.example.sql) not in seen:
                seen.add(_sql_key(s.example.sql))
                chosen.append(s)
        return Neighbours(chosen, considered, best)

    def minimal_schema(self, example: Example, fmt: str = "mschema") -> str:
        """The part of the example's schema its SQL uses.

        From the pool file's ``schema`` when given; else the example's database under
        :attr:`database_root`, restricted to the tables and columns the SQL references
        (primary keys and join columns kept by the renderer), as M-Schema without example
        values (``fmt="ddl"``: CREATE TABLE statements); else one line naming the tables.
        """
        if example.schema:
            return example.schema
        schema = self._schema_of(example.db_id)
        if schema is not None:
            from quorumsql.agents.linker import referenced_columns
            from quorumsql.schema_repr import to_ddl, to_mschema

            refs = referenced_columns(example.sql, schema)
            if refs is not None and refs.tables:
                selection = {t: [c for tt, c in refs.columns if tt == t] for t in refs.tables}
                if fmt == "ddl":
                    return to_ddl(schema, selection)
                return to_mschema(schema, selection, max_examples=0)
        return f"【DB_ID】 {example.db_id}\nTables: {', '.join(example.tables)}"

    def _schema_of(self, db_id: str):
        """The introspected schema of ``db_id`` under the database root (cached), or None."""
        if self.database_root is None:
            return None
        with self._lock:
            if db_id in self._schemas:
                return self._schemas[db_id]
        path = self.database_root / db_id / f"{db_id}.sqlite"
        schema = None
        if path.is_file():
            from quorumsql.db import open_database

            try:
                db = open_database(path)
                try:
                    schema = db.schema()
                finally:
                    close = getattr(db, "close", None)
                    if close is not None:
                        close()
            except DatabaseError:
                schema = None
        with self._lock:
            self._schemas[db_id] = schema
        return schema


_POOLS: dict[tuple, ExamplePool] = {}
_POOLS_LOCK = threading.Lock()


def load_pool(path: str | os.PathLike, *, cache_dir: str | os.PathLike,
              database_root: str | os.PathLike | None = None, embedder=None) -> ExamplePool:
    """:meth:`ExamplePool.load`, once per process per pool file version.

    The key is the file's resolved path, modification time and size, the cache directory and
    the database root, so an edited file is read again and concurrent callers (the candidate
    branches of one question) share one load.

    Raises:
        ConfigError: the file is missing or unreadable.
        ModelError: the embedding model cannot be loaded.
    """
    p = Path(path).expanduser()
    try:
        st = p.stat()
    except FileNotFoundError:
        raise ConfigError(f"ICL example pool not found: {p}") from None
    except OSError as exc:
        raise ConfigError(f"ICL example pool {p} cannot be read: {exc}") from None
    key = (str(p.resolve()), st.st_mtime_ns, st.st_size, str(cache_dir), str(database_root or ""), id(embedder))
    with _POOLS_LOCK:
        pool = _POOLS.get(key)
        if pool is None:
            pool = ExamplePool.load(p, cache_dir=cache_dir, embedder=embedder, database_root=database_root)
            for old in [k for k in _POOLS if k[0] == key[0]]:
                del _POOLS[old]
            _POOLS[key] = pool
    return pool

