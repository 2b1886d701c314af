"""The public entry point: ``answer(question, db)`` and the reusable :class:`Pipeline`."""

from __future__ import annotations

import os
import threading
import time
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

    def answer(
        self, question: str, db: "str | os.PathLike | Database", *, evidence: str | None = None
    ) -> Answer:
        """Answer ``question`` on ``db``; see :func:`quorumsql.answer`."""
        if not isinstance(question, str) or not question.strip():
            raise InputError("the question is empty")
        if evidence is not None and not isinstance(evidence, str):
            raise InputError("evidence must be a string")
        database = self.database(db)
        key = database.uri if isinstance(db, Database) else os.fspath(db)
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
    return Pipeline(settings, preset=preset, llm=llm).answer(question, db, evidence=evidence)
