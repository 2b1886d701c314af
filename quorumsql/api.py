"""The public entry point: ``answer(question, db)`` and the reusable :class:`Pipeline`."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from typing import Any

from langchain_core.language_models.chat_models import BaseChatModel

from quorumsql.config import Preset, Settings, get_preset
from quorumsql.db import Database
from quorumsql.errors import InputError, ModelError
from quorumsql.llm import ChatModels, UsageReport
from quorumsql.records import Answer, Confidence
from quorumsql.resources import Resources, db_key


class Pipeline:
    """A configured inference pipeline, reusable across questions and databases.

    Opened databases, their schemas and metadata, and the chat models are kept between calls, so
    asking many questions (benchmarks, services) pays the set-up once. Each question runs the
    module-level inference graph (:data:`quorumsql.graph.inference.inference`) with this
    pipeline's :class:`~quorumsql.graph.context.InferenceContext`.

    Args:
        settings: process settings (default :meth:`Settings.load`).
        preset: ``fast``, ``balanced`` (default from settings), ``accurate`` or a :class:`Preset`.
        llm: any LangChain chat model, used for every role; default from settings (an
            OpenAI-compatible endpoint per role, or the embedded local model started on first use).
        examples_dir: folder of the per-database example memories
            (:mod:`quorumsql.metadata.examples`) that :meth:`teach` writes and the ``icl``
            generator reads; default ``<cache_dir>/index/examples``. A benchmark gives each run
            a private one.

    Raises:
        ConfigError: unknown preset or invalid settings.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        preset: str | Preset | None = None,
        llm: BaseChatModel | None = None,
        examples_dir: "str | os.PathLike | None" = None,
    ) -> None:
        from quorumsql.graph.context import InferenceContext
        from quorumsql.metadata.examples import ExampleMemories, default_root

        self.settings = settings or Settings.load()
        self.preset = get_preset(preset or self.settings.preset)
        self.models = ChatModels(self.settings, llm)
        self.resources = Resources(self.settings)
        self.memories = ExampleMemories(examples_dir if examples_dir is not None else default_root(self.settings))
        self.context = InferenceContext(
            settings=self.settings, preset=self.preset, models=self.models, resources=self.resources,
            memories=self.memories,
        )

    @property
    def llm(self) -> BaseChatModel:
        """The generator's chat model, created on first use (may start the embedded server)."""
        return self.models.get("generator")

    @property
    def graph(self):
        """The compiled inference graph (module-level; shared by every pipeline)."""
        from quorumsql.graph.inference import inference

        return inference

    def database(self, db: "str | os.PathLike | Database") -> Database:
        """Open (once) and return the database for a path, URL or :class:`Database`.

        Raises:
            InputError: ``db`` is not a path, a URL or a :class:`Database`.
            DatabaseError: the database cannot be opened.
        """
        return self.resources.database(db)

    def set_descriptions(
        self,
        db: "str | os.PathLike | Database",
        descriptions: "str | os.PathLike | Mapping[tuple[str, str], str]",
    ) -> None:
        """Use column descriptions for ``db`` in every schema rendering from now on.

        See :meth:`quorumsql.resources.Resources.set_descriptions`.

        Raises:
            ConfigError: the folder does not exist or holds no CSV file.
            InputError: a mapping whose keys are not ``(table, column)`` pairs.
        """
        self.resources.set_descriptions(db, descriptions)

    def descriptions(self, db: "str | os.PathLike | Database") -> dict[tuple[str, str], str]:
        """Column descriptions registered for ``db`` (empty when none)."""
        return self.resources.descriptions(db)

    def metadata(self, db: "str | os.PathLike | Database", *, descriptions_dir: "str | os.PathLike | None" = None):
        """The database's metadata store (:mod:`quorumsql.metadata`), built on first use.

        Loaded from the cache when the database is unchanged; kept until the database or its
        descriptions change. ``descriptions_dir`` (a BIRD ``database_description`` folder)
        registers those descriptions first.

        Raises:
            DatabaseError: the database cannot be read.
        """
        if descriptions_dir is not None:
            self.resources.set_descriptions(db, descriptions_dir)
        return self.resources.metadata(db)

    def examples(self, db: "str | os.PathLike | Database"):
        """The example memory of ``db`` (:class:`~quorumsql.metadata.examples.ExampleMemory`).

        Opened or created on first use; after a schema change its pairs are run again and
        those that no longer run are marked (not served).

        Raises:
            DatabaseError: the database cannot be opened or read.
            ExampleMemoryError: the memory cannot be created or written.
        """
        return self.memories.memory_for(self.database(db))

    def teach(
        self,
        question: str,
        sql: str,
        *,
        db: "str | os.PathLike | Database",
        evidence: str | None = None,
        provenance: str = "taught",
        source: str = "",
    ):
        """Store a question / SQL pair in ``db``'s example memory, after checking that the SQL runs.

        The SQL is executed read-only through the database first (one row fetched); a pair
        that is refused, fails or times out is not stored. Teaching a question the memory
        already has (same text and evidence, case and spacing ignored) replaces its SQL. The
        ``icl`` generator shows the asked database's pairs to the next similar questions.

        Args:
            question: the question in plain language.
            sql: the SQL that answers it, in the database's dialect.
            db: the database (path, URL or :class:`Database`).
            evidence: external knowledge that goes with the question.
            provenance: ``taught`` (default), ``corrected``, ``reviewed``, ``log`` or ``synthesized``.
            source: free text saying where the pair came from.

        Returns:
            The stored :class:`~quorumsql.metadata.examples.ExamplePair`.

        Raises:
            InputError: empty question or SQL, unknown provenance, or SQL that does not run
                (with the database's reason).
            DatabaseError: the database cannot be opened.
            ExampleMemoryError: the memory cannot be written.
        """
        from quorumsql.metadata.examples import teach_pair

        if not isinstance(question, str) or not question.strip():
            raise InputError("the question is empty")
        if not isinstance(sql, str) or not sql.strip():
            raise InputError("the SQL is empty")
        database = self.database(db)
        return teach_pair(self.examples(db), database, question, sql, evidence=evidence,
                          provenance=provenance, source=source)

    def answer(
        self,
        question: str,
        db: "str | os.PathLike | Database",
        *,
        evidence: str | None = None,
        descriptions: "str | os.PathLike | Mapping[tuple[str, str], str] | None" = None,
    ) -> Answer:
        """Answer ``question`` on ``db``; see :func:`quorumsql.answer`."""
        if not isinstance(question, str):
            raise InputError(f"the question must be a string, got {_describe(question)}")
        if not question.strip():
            raise InputError("the question is empty")
        if evidence is not None and not isinstance(evidence, str):
            raise InputError(f"evidence must be a string or None, got {_describe(evidence)}")
        key = db_key(db)
        database = self.database(db)
        if descriptions is not None:
            self.set_descriptions(db, descriptions)
        start = time.monotonic()
        out: dict[str, Any] = self.graph.invoke(
            {"question": question.strip(), "db": key, "evidence": evidence}, context=self.context
        )
        candidates = out.get("candidates", [])
        if candidates and all(c.status == "model_error" for c in candidates):
            raise ModelError(candidates[0].error or "the model failed on every candidate")
        trace = out.get("trace", [])
        ans = Answer(
            question=question.strip(),
            evidence=evidence,
            db_id=database.db_id,
            sql=out.get("sql"),
            columns=out.get("columns", []),
            rows=out.get("rows", []),
            truncated=out.get("truncated", False),
            warnings=out.get("warnings", []),
            confidence=out.get("confidence") or Confidence(candidates=len(candidates)),
            candidates=candidates,
            trace=trace,
            usage=UsageReport.from_events([(e.node, e.usage) for e in trace]),
            seconds=time.monotonic() - start,
            preset=self.preset.name,
            error=out.get("error"),
        )
        ans._teacher = lambda q, sql, ev: self.teach(q, sql, db=db, evidence=ev, provenance="corrected",
                                                    source="Answer.correct")
        return ans


def _describe(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:60] + '...' if len(text) > 60 else text}"


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
        db: a SQLite or DuckDB file path; a CSV, TSV, Parquet or JSON-lines file, a folder of
            them or a glob (``"data/*.parquet"``: one table per file); a URL (``sqlite:///…``,
            ``duckdb:///…``, ``mysql+pymysql://user:pw@host:port/name``, ``postgresql://…``) or a
            :class:`~quorumsql.db.Database`.
        evidence: optional external knowledge (e.g. BIRD's evidence).
        descriptions: column descriptions: a BIRD ``database_description`` folder or
            ``{(table, column): text}``; shown in the schema the generators see.
        preset: ``fast``, ``balanced`` (default), ``accurate``, or a :class:`Preset`.
        llm: a LangChain chat model; default: configured endpoint or the embedded local model.
        settings: explicit settings (default: env vars and ``quorumsql.toml``).

    Returns:
        :class:`Answer` with ``sql``, ``columns``, ``rows``, ``candidates``, ``trace`` and
        ``usage``; ``truncated`` says the rows were cut by a cap, ``warnings`` what the user
        should know (an account that can write). When no candidate executed, ``sql`` is None
        and ``error`` says why.

    Raises:
        InputError: the question is empty or not a string, the evidence is not a string,
            ``db`` is not a path, URL or :class:`Database`, or ``descriptions`` is neither a
            folder path nor a ``{(table, column): text}`` mapping.
        DatabaseError: the database cannot be opened or read.
        ModelError: the model endpoint failed for every candidate.
        ConfigError: invalid settings or preset.
    """
    return Pipeline(settings, preset=preset, llm=llm).answer(
        question, db, evidence=evidence, descriptions=descriptions
    )
