"""The public entry point: ``answer(question, db)`` and the reusable :class:`Pipeline`."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping
from typing import Any

from langchain_core.language_models.chat_models import BaseChatModel

from quorumsql.config import Preset, Settings, get_preset
from quorumsql.db import Database, open_database
from quorumsql.errors import InputError, ModelError
from quorumsql.llm import UsageReport, get_chat_model
from quorumsql.records import Answer


class Pipeline:
    """A configured inference pipeline, reusable across questions and databases.

    Opened databases, their schemas and the chat model are kept between calls, so asking many
    questions (benchmarks, services) pays the set-up once.

    Args:
        settings: process settings (default :meth:`Settings.load`).
        preset: ``fast``, ``balanced`` (default from settings), ``accurate`` or a :class:`Preset`.
        llm: any LangChain chat model; default from settings (an OpenAI-compatible endpoint, or
            the embedded local model started on first use).

    Raises:
        ConfigError: unknown preset or invalid settings.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        preset: str | Preset | None = None,
        llm: BaseChatModel | None = None,
    ) -> None:
        self.settings = settings or Settings.load()
        self.preset = get_preset(preset or self.settings.preset)
        self._llm = llm
        self._dbs: dict[str, Database] = {}
        self._metadata: dict[str, Any] = {}
        # db key -> ({(table, column): description}, descriptions folder or None)
        self._descriptions: dict[str, tuple[dict[tuple[str, str], str], str | None]] = {}
        self._lock = threading.Lock()
        self._graph = None

    @property
    def llm(self) -> BaseChatModel:
        """The chat model, created on first use (may start the embedded server)."""
        with self._lock:
            if self._llm is None:
                self._llm = get_chat_model(self.settings)
            return self._llm

    @property
    def graph(self):
        """The compiled inference graph (built once)."""
        if self._graph is None:
            from quorumsql.graph import build_inference_graph

            self._graph = build_inference_graph(self)
        return self._graph

    def database(self, db: "str | os.PathLike | Database") -> Database:
        """Open (once) and return the database for a path, URL or :class:`Database`.

        Raises:
            DatabaseError: the database cannot be opened.
        """
        if isinstance(db, Database):
            with self._lock:
                self._dbs.setdefault(db.uri, db)
            return db
        key = os.fspath(db)
        with self._lock:
            cached = self._dbs.get(key)
        if cached is not None:
            return cached
        opened = open_database(
            key, query_timeout=self.settings.query_timeout, max_rows=self.settings.max_rows
        )
        with self._lock:
            return self._dbs.setdefault(key, opened)

    def set_descriptions(
        self,
        db: "str | os.PathLike | Database",
        descriptions: "str | os.PathLike | Mapping[tuple[str, str], str]",
    ) -> None:
        """Use column descriptions for ``db`` in every schema rendering from now on.

        Registering the same descriptions again is free (no re-read, cached metadata kept).

        Args:
            db: the database (as passed to :meth:`answer`).
            descriptions: a BIRD ``database_description`` folder (or the database folder
                holding one), or ``{(table, column): text}``.

        Raises:
            ConfigError: the folder does not exist or holds no CSV file.
        """
        from quorumsql.metadata.descriptions import load_descriptions

        key = self._key(db)
        with self._lock:
            current = self._descriptions.get(key)
        if isinstance(descriptions, Mapping):
            mapping = {(t.lower(), c.lower()): str(v) for (t, c), v in descriptions.items()}
            folder = None
            if current is not None and current == (mapping, None):
                return  # unchanged: keep the cached metadata store
        else:
            folder = os.fspath(descriptions)
            if current is not None and current[1] == folder:
                return  # the same folder, already read
            mapping = {k: d.text() for k, d in load_descriptions(folder).items() if d.text()}
        with self._lock:
            self._descriptions[key] = (mapping, folder)
            self._metadata.pop(key, None)

    def descriptions(self, db: "str | os.PathLike | Database") -> dict[tuple[str, str], str]:
        """Column descriptions registered for ``db`` (empty when none)."""
        with self._lock:
            return dict(self._descriptions.get(self._key(db), ({}, None))[0])

    @staticmethod
    def _key(db: "str | os.PathLike | Database") -> str:
        return db.uri if isinstance(db, Database) else os.fspath(db)

    def metadata(self, db: "str | os.PathLike | Database", *, descriptions_dir: "str | os.PathLike | None" = None):
        """The database's metadata store (:mod:`quorumsql.metadata`), built on first use.

        Loaded from the cache when the database is unchanged; kept for the pipeline's lifetime.
        Call it once with ``descriptions_dir`` (BIRD ``database_description`` folder) before
        answering to have those descriptions used.

        Raises:
            DatabaseError: the database cannot be read.
        """
        from quorumsql.metadata import load_or_build

        database = self.database(db)
        key = self._key(db)
        with self._lock:
            cached = self._metadata.get(key)
            registered = self._descriptions.get(key, ({}, None))[1]
        if cached is None or descriptions_dir is not None:
            cached = load_or_build(database, self.settings, descriptions_dir=descriptions_dir or registered)
            with self._lock:
                self._metadata[key] = cached
        return cached

    def answer(
        self,
        question: str,
        db: "str | os.PathLike | Database",
        *,
        evidence: str | None = None,
        descriptions: "str | os.PathLike | Mapping[tuple[str, str], str] | None" = None,
    ) -> Answer:
        """Answer ``question`` on ``db``; see :func:`quorumsql.answer`."""
        if not isinstance(question, str) or not question.strip():
            raise InputError("the question is empty")
        if evidence is not None and not isinstance(evidence, str):
            raise InputError("evidence must be a string")
        database = self.database(db)
        key = self._key(db)
        if descriptions is not None:
            self.set_descriptions(db, descriptions)
        start = time.monotonic()
        out: dict[str, Any] = self.graph.invoke(
            {"question": question.strip(), "db": key, "evidence": evidence}
        )
        candidates = out.get("candidates", [])
        if candidates and all(c.status == "model_error" for c in candidates):
            raise ModelError(candidates[0].error or "the model failed on every candidate")
        trace = out.get("trace", [])
        return Answer(
            question=question.strip(),
            evidence=evidence,
            db_id=database.db_id,
            sql=out.get("sql"),
            columns=out.get("columns", []),
            rows=out.get("rows", []),
            candidates=candidates,
            trace=trace,
            usage=UsageReport.from_events([(e.node, e.usage) for e in trace]),
            seconds=time.monotonic() - start,
            preset=self.preset.name,
            error=out.get("error"),
        )


def answer(
    question: str,
    db: "str | os.PathLike | Database",
    *,
    evidence: str | None = None,
    descriptions: "str | os.PathLike | Mapping[tuple[str, str], str] | None" = None,
    preset: str | Preset | None = None,
    llm: BaseChatModel | None = None,
    settings: Settings | None = None,
) -> Answer:
    """Answer a question about a database with checked, executed SQL.

    Candidates are generated, each is executed read-only and corrected against the execution
    feedback, and the answer is the majority over execution results (see :mod:`quorumsql.graph`).

    Args:
        question: the question in plain language.
        db: a SQLite file path, a URL (``sqlite:///…``, ``mysql+pymysql://user:pw@host:port/name``,
            ``postgresql://…``) or a :class:`~quorumsql.db.Database`.
        evidence: optional external knowledge (e.g. BIRD's evidence).
        descriptions: column descriptions: a BIRD ``database_description`` folder or
            ``{(table, column): text}``; shown in the schema the generators see.
        preset: ``fast``, ``balanced`` (default), ``accurate``, or a :class:`Preset`.
        llm: a LangChain chat model; default: configured endpoint or the embedded local model.
        settings: explicit settings (default: env vars and ``quorumsql.toml``).

    Returns:
        :class:`Answer` with ``sql``, ``columns``, ``rows``, ``candidates``, ``trace`` and
        ``usage``. When no candidate executed, ``sql`` is None and ``error`` says why.

    Raises:
        InputError: empty question.
        DatabaseError: the database cannot be opened or read.
        ModelError: the model endpoint failed for every candidate.
        ConfigError: invalid settings or preset.
    """
    return Pipeline(settings, preset=preset, llm=llm).answer(
        question, db, evidence=evidence, descriptions=descriptions
    )
