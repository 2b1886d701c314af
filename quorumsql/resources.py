"""Per-database resources kept between questions: open connectors, descriptions, metadata stores.

A :class:`Resources` object is what the inference graph's runtime context carries for databases:
the graph asks it for a connector, the column descriptions registered for a database, the
metadata store (built or loaded on first use) and the schema rendered in a given format. It
notices when a database changed under it (a cheap change stamp, checked once per question)
and then drops the schema and metadata it held for that database.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from quorumsql.config import SchemaFormat, Settings
from quorumsql.db import Database, open_database
from quorumsql.errors import InputError

if TYPE_CHECKING:  # the metadata package pulls in chromadb and onnxruntime: load it on use
    from quorumsql.metadata import DatabaseMetadata

DbSpec = "str | os.PathLike | Database"

_ACCEPTED = (
    "a SQLite or DuckDB file path, a CSV/TSV/Parquet/JSON file, folder or glob (str or pathlib.Path), "
    "a URL (sqlite:///file.db, duckdb:///file.duckdb, mysql+pymysql://user:pw@host:port/name, "
    "postgresql://user:pw@host/name) or a quorumsql.Database"
)
_DESCRIPTIONS_ACCEPTED = (
    "a BIRD database_description folder, or the database folder holding one (str or pathlib.Path), "
    "or a mapping {(table, column): text}"
)


def db_key(db: "str | os.PathLike | Database") -> str:
    """The key a database is cached under: its URI for a connector, else the path or URL.

    Raises:
        InputError: ``db`` is neither a path, a URL nor a :class:`Database` (``None``, a number, ...).
    """
    if isinstance(db, Database):
        return db.uri
    if isinstance(db, (str, os.PathLike)):
        key = os.fspath(db)
        if isinstance(key, bytes):
            key = os.fsdecode(key)
        if not key.strip():
            raise InputError(f"the database is an empty string; expected {_ACCEPTED}")
        return key
    raise InputError(f"cannot use {db!r} ({type(db).__name__}) as a database; expected {_ACCEPTED}")


class Resources:
    """Open databases and their per-database state, shared by every question of a pipeline.

    Thread-safe: a lock guards the caches; connectors are themselves safe to share.

    Args:
        settings: gives the query timeout, row cap, allowed functions and cache directory.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._dbs: dict[str, Database] = {}
        self._metadata: dict[str, DatabaseMetadata] = {}
        # db key -> ({(table, column): description}, descriptions folder or None)
        self._descriptions: dict[str, tuple[dict[tuple[str, str], str], str | None]] = {}
        self._lock = threading.Lock()

    # -- databases ------------------------------------------------------------------------
    def database(self, db: "str | os.PathLike | Database") -> Database:
        """Open (once) and return the database for a path, URL or :class:`Database`.

        Raises:
            InputError: ``db`` is not a path, URL or :class:`Database`.
            DatabaseError: the database cannot be opened.
        """
        key = db_key(db)
        if isinstance(db, Database):
            with self._lock:
                return self._dbs.setdefault(key, db)
        with self._lock:
            cached = self._dbs.get(key)
        if cached is not None:
            return cached
        opened = open_database(
            key, query_timeout=self.settings.query_timeout, max_rows=self.settings.max_rows,
            max_result_bytes=self.settings.max_result_bytes, max_value_bytes=self.settings.max_value_bytes,
            max_query_memory=self.settings.max_query_memory,
            allowed_functions=tuple(self.settings.allowed_functions),
        )
        with self._lock:
            return self._dbs.setdefault(key, opened)

    def refresh(self, db: "str | os.PathLike | Database") -> bool:
        """Check the database's change stamp; after a change, drop its schema and metadata.

        Returns:
            True when the database changed since its schema was read (the next schema and
            metadata requests read it again).

        Raises:
            DatabaseError: the database cannot be read.
        """
        database = self.database(db)
        changed = database.refresh_if_changed()
        if changed:
            with self._lock:
                self._metadata.pop(db_key(db), None)
        return changed

    # -- descriptions ---------------------------------------------------------------------
    def set_descriptions(
        self,
        db: "str | os.PathLike | Database",
        descriptions: "str | os.PathLike | Mapping[tuple[str, str], str]",
    ) -> None:
        """Use column descriptions for ``db`` in every schema rendering from now on.

        Registering the same descriptions again is free (no re-read, cached metadata kept).

        Args:
            db: the database.
            descriptions: a BIRD ``database_description`` folder (or the database folder holding
                one), or ``{(table, column): text}`` (matched case-insensitively).

        Raises:
            ConfigError: the folder does not exist or holds no CSV file.
            InputError: ``descriptions`` is neither a folder path nor a mapping, or a mapping
                whose keys are not ``(table, column)`` pairs.
        """
        from quorumsql.metadata.descriptions import description_texts

        key = db_key(db)
        with self._lock:
            current = self._descriptions.get(key)
        if isinstance(descriptions, Mapping):
            try:
                mapping = {(t.lower(), c.lower()): str(v) for (t, c), v in descriptions.items()}
            except (TypeError, ValueError, AttributeError):
                raise InputError(
                    f"descriptions must map (table, column) pairs to text; expected {_DESCRIPTIONS_ACCEPTED}"
                ) from None
            folder = None
            if current is not None and current == (mapping, None):
                return  # unchanged: keep the cached metadata store
        elif not isinstance(descriptions, (str, os.PathLike)):
            raise InputError(
                f"cannot use {descriptions!r} ({type(descriptions).__name__}) as descriptions; "
                f"expected {_DESCRIPTIONS_ACCEPTED}"
            )
        else:
            folder = os.fspath(descriptions)
            if current is not None and current[1] == folder:
                return  # the same folder, already read
            mapping = {(t.lower(), c.lower()): v for (t, c), v in description_texts(folder).items()}
        with self._lock:
            self._descriptions[key] = (mapping, folder)
            self._metadata.pop(key, None)

    def descriptions(self, db: "str | os.PathLike | Database") -> dict[tuple[str, str], str]:
        """Column descriptions registered for ``db``: ``{(table, column): text}``, lower-cased keys."""
        with self._lock:
            return dict(self._descriptions.get(db_key(db), ({}, None))[0])

    # -- metadata -------------------------------------------------------------------------
    def metadata(self, db: "str | os.PathLike | Database") -> "DatabaseMetadata":
        """The database's metadata store (:mod:`quorumsql.metadata`), built or loaded on first use.

        Loaded from the cache when the database is unchanged; kept until the database changes
        or its descriptions do. A registered descriptions folder is profiled with the database.

        Raises:
            DatabaseError: the database cannot be read.
        """
        from quorumsql.metadata import load_or_build

        database = self.database(db)
        key = db_key(db)
        with self._lock:
            cached = self._metadata.get(key)
            folder = self._descriptions.get(key, ({}, None))[1]
        if cached is None:
            cached = load_or_build(database, self.settings, descriptions_dir=folder)
            with self._lock:
                self._metadata[key] = cached
        return cached

    def forget_metadata(self, db: "str | os.PathLike | Database") -> None:
        """Drop the metadata store held for ``db`` (the next request loads or builds it again)."""
        with self._lock:
            self._metadata.pop(db_key(db), None)

    # -- schema renderings ----------------------------------------------------------------
    def schema_text(
        self,
        db: "str | os.PathLike | Database",
        fmt: SchemaFormat,
        *,
        question: str = "",
        selection: "Mapping[str, Iterable[str] | None] | None" = None,
        value_examples: "Mapping[tuple[str, str], Sequence[Any]] | None" = None,
    ) -> str:
        """The schema of ``db`` (whole, or a linked part of it) rendered in ``fmt``.

        Registered column descriptions are always shown.

        Args:
            db: the database.
            fmt: ``mschema`` (M-Schema, XiYan-SQL section 2.2), ``ddl`` (CREATE TABLE statements
                with descriptions as comments), ``metadata_partial`` / ``metadata_complete``
                (MCI-SQL's granularities, with cell values matched to ``question``).
            question: the question, for question-matched example values (metadata formats).
            selection: a linked schema ``{table: [columns] | None}``; None renders everything.
            value_examples: ``{(table, column): [values]}`` found by value retrieval, shown
                first among the column's examples (M-Schema and metadata formats).

        Raises:
            DatabaseError: the database cannot be read.
        """
        from quorumsql.schema_repr import to_ddl, to_mschema

        database = self.database(db)
        schema = database.schema()
        descriptions = self.descriptions(db)
        if fmt == "ddl":
            return to_ddl(schema, selection, descriptions=descriptions)
        if fmt == "mschema":
            examples = None
            if value_examples:
                examples = {}
                for (t, c), values in value_examples.items():
                    table = schema.table(t)
                    column = table.column(c) if table else None
                    if column is not None:
                        examples[(table.name, column.name)] = list(dict.fromkeys([*values, *column.examples]))
            return to_mschema(schema, selection, descriptions=descriptions, examples=examples)
        from quorumsql.metadata.retrieval import question_examples
        from quorumsql.schema_repr import render_metadata_schema

        store = self.metadata(db)
        matched: dict[tuple[str, str], list[Any]] = {}
        for (t, c), values in (value_examples or {}).items():
            matched[(t, c)] = list(values)
        if question:
            for key, values in question_examples(store, question, selection).items():
                matched[key] = list(dict.fromkeys([*matched.get(key, []), *values]))
        return render_metadata_schema(
            store.record,
            selection,
            granularity=fmt.split("_", 1)[1],
            question_examples=matched or None,
            descriptions=descriptions,
        )
