"""Systems under test: the QuorumSQL pipeline (any preset) and single-call baselines.

A system turns one :class:`~quorumsql.benchmarks.datasets.Example` on an opened database into a
:class:`Prediction`. Every system runs through the same runner, evaluators and reports.

Baselines (one model call, no refinement, no voting; they reuse
:func:`quorumsql.agents.generator.generate_sql` and :mod:`quorumsql.schema_repr`):

========== ==================================================================================
name       prompt
========== ==================================================================================
zs-ddl     ``CREATE TABLE`` schema and the question with a plain instruction (Rajkumar et
           al., 2022, "Evaluating the Text-to-SQL capabilities of LLMs"); no output-format
           constraint, so the reply may contain prose (the SQL is extracted from it).
zs-ddl-rows ``CREATE TABLE`` + 3 example rows per table, and the generator's "only the SQL in a
           ``sql`` block" instruction: the strongest single-call zero-shot baseline (DESIGN.md).
zs-mschema M-Schema (XiYan-SQL) with the generator's instruction; BIRD column descriptions are
           added to the M-Schema when the dataset has them.
========== ==================================================================================
"""

from __future__ import annotations

import threading
import time
from typing import Any, Protocol

from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import HumanMessage, SystemMessage
from pydantic import BaseModel, Field

from quorumsql.agents.generator import DIALECT_NAMES, generate_sql
from quorumsql.agents.sql_text import extract_sql
from quorumsql.db import Database
from quorumsql.llm import Usage, describe_model, invoke
from quorumsql.sqlnames import quote_identifier
from quorumsql.schema_repr import to_ddl, to_mschema

BASELINES = ("zs-ddl", "zs-ddl-rows", "zs-mschema")

#: the plain zero-shot instruction of the ``zs-ddl`` baseline (after Rajkumar et al., 2022)
PLAIN_DDL_PROMPT = """{schema}

-- Using valid {dialect_name}, answer the following question for the tables provided above.
{evidence}-- Question: {question}"""


class Prediction(BaseModel):
    """What a system answered for one question.

    Attributes:
        sql: the final SQL, None when the system produced none.
        candidates: per candidate ``{id, generator, temperature, sql, status, votes, result_key,
            revisions, duplicate_of, usage}`` (usage: the candidate's generation and refinement
            calls and tokens), ``refined_sql`` (the SQL as refinement left it) when the
            align stage rewrote it, and ``examples`` (``[{source, id, db_id, question}]``) when
            an ICL candidate was shown few-shot examples.
        agreement: votes of the chosen candidate / number of candidates (None without candidates).
        decided_by: ``vote``, ``selector`` or ``none`` (:class:`quorumsql.records.Confidence`);
            None for baselines.
        usage: model cost (tokens, calls, model seconds).
        seconds: wall-clock seconds of the whole answer.
        error: why there is no answer, if so.
        raw: the model's reply (baselines only).
    """

    sql: str | None = None
    candidates: list[dict[str, Any]] = Field(default_factory=list)
    agreement: float | None = None
    decided_by: str | None = None
    usage: Usage = Field(default_factory=Usage)
    seconds: float = 0.0
    error: str | None = None
    raw: str | None = None


class System(Protocol):
    """Anything the runner can benchmark."""

    name: str

    def describe(self) -> dict[str, Any]:
        """Configuration recorded in ``run.json`` (name, preset or prompt, model)."""

    def predict(self, question: str, db: Database, *, evidence: str | None = None, db_id: str = "") -> Prediction:
        """Answer ``question`` on ``db``.

        Raises:
            ModelError: the model endpoint failed (the runner stops or retries; the question
                is not recorded as done).
        """


class PipelineSystem:
    """The QuorumSQL inference pipeline with a preset (``fast``, ``balanced``, ...).

    Args:
        pipeline: a :class:`quorumsql.Pipeline`.
        descriptions: ``{db_id: {(table, column): text}}`` (BIRD) shown in the pipeline's schema.
        own_log: the ``--own-log`` options (``fraction``, ``seed``, ``source``) when the run's
            memories were filled from a log part (:mod:`quorumsql.benchmarks.own_log`);
            recorded in the description, so a resume must use the same.
    """

    def __init__(self, pipeline, *, descriptions: dict[str, dict[tuple[str, str], str]] | None = None,
                 own_log: dict[str, Any] | None = None) -> None:
        self.pipeline = pipeline
        self.name = f"quorumsql-{pipeline.preset.name}"
        self.descriptions = descriptions or {}
        self.own_log = own_log

    def describe(self) -> dict[str, Any]:
        return {
            "system": self.name,
            "kind": "pipeline",
            "preset": self.pipeline.preset.model_dump(),
            "model": describe_model(self.pipeline.llm),
            **({"own_log": self.own_log} if self.own_log else {}),
        }

    def predict(self, question: str, db: Database, *, evidence: str | None = None, db_id: str = "") -> Prediction:
        desc = self.descriptions.get(db_id or db.db_id)
        ans = self.pipeline.answer(question, db, evidence=evidence, descriptions=desc)
        chosen = next((c for c in ans.candidates if ans.sql is not None and c.sql == ans.sql), None)
        # the few-shot examples each ICL candidate was shown (memory pairs by id), for audits
        shown = {e.data.get("candidate"): [{k: x.get(k) for k in ("source", "id", "db_id", "question")}
                                           for x in e.data.get("examples", [])]
                 for e in ans.trace if e.node == "generate_icl"}
        return Prediction(
            sql=ans.sql,
            candidates=[
                {
                    "id": c.id, "generator": c.generator, "temperature": c.temperature,
                    "sql": c.sql, "status": c.status, "votes": c.votes, "result_key": c.result_key,
                    "revisions": c.revisions, "duplicate_of": c.duplicate_of,
                    "usage": c.usage.model_dump(exclude={"seconds"}),
                    # the refiner's SQL when the align stage rewrote it (for ablations)
                    **({"refined_sql": c.aligned_from} if c.aligned_from else {}),
                    **({"examples": shown[c.id]} if shown.get(c.id) else {}),
                }
                for c in ans.candidates
            ],
            agreement=(chosen.votes / len(ans.candidates)) if chosen and ans.candidates else None,
            decided_by=ans.confidence.decided_by,
            usage=ans.usage.total,
            seconds=ans.seconds,
            error=ans.error,
        )


class BaselineSystem:
    """A single-call zero-shot baseline (see the module docstring for the three prompts).

    Args:
        kind: ``zs-ddl``, ``zs-ddl-rows`` or ``zs-mschema``.
        llm: chat model (``llm_factory`` is used instead when None).
        llm_factory: callable returning the chat model, called on first use.
        max_tokens: completion budget (tokens).
        descriptions: ``{db_id: {(table, column): text}}`` for ``zs-mschema`` (BIRD).
        sample_rows: example rows per table for ``zs-ddl-rows``.
    """

    def __init__(
        self,
        kind: str,
        llm: BaseChatModel | None = None,
        *,
        llm_factory=None,
        max_tokens: int = 384,
        descriptions: dict[str, dict[tuple[str, str], str]] | None = None,
        sample_rows: int = 3,
    ) -> None:
        if kind not in BASELINES:
            raise ValueError(f"unknown baseline {kind!r}; choose one of {', '.join(BASELINES)}")
        self.kind = kind
        self.name = kind
        self._llm = llm
        self._factory = llm_factory
        self.max_tokens = max_tokens
        self.descriptions = descriptions or {}
        self.sample_rows = sample_rows
        self._schemas: dict[str, str] = {}
        self._lock = threading.Lock()

    @property
    def llm(self) -> BaseChatModel:
        with self._lock:
            if self._llm is None:
                self._llm = self._factory()
            return self._llm

    def describe(self) -> dict[str, Any]:
        return {
            "system": self.name, "kind": "baseline", "max_tokens": self.max_tokens,
            "sample_rows": self.sample_rows if self.kind == "zs-ddl-rows" else 0,
            "model": describe_model(self.llm),
        }

    def schema_text(self, db: Database, db_id: str = "") -> str:
        """The schema rendering this baseline shows the model (cached per database)."""
        key = db.uri
        with self._lock:
            cached = self._schemas.get(key)
        if cached is not None:
            return cached
        schema = db.schema()
        if self.kind == "zs-mschema":
            text = to_mschema(schema, descriptions=self.descriptions.get(db_id or schema.db_id))
        elif self.kind == "zs-ddl":
            text = to_ddl(schema)
        else:
            samples = {}
            for table in schema.tables:
                res = db.try_execute(
                    f"SELECT * FROM {quote_identifier(table.name, db.dialect)} LIMIT {self.sample_rows}",
                    max_rows=self.sample_rows,
                )
                if res.error is None:
                    samples[table.name] = (res.columns, res.rows)
            text = to_ddl(schema, sample_rows=samples)
        with self._lock:
            self._schemas[key] = text
        return text

    def predict(self, question: str, db: Database, *, evidence: str | None = None, db_id: str = "") -> Prediction:
        start = time.monotonic()
        schema_text = self.schema_text(db, db_id)
        if self.kind == "zs-ddl":
            prompt = PLAIN_DDL_PROMPT.format(
                schema=schema_text,
                dialect_name=DIALECT_NAMES.get(db.dialect, db.dialect),
                evidence=f"-- Evidence: {evidence.strip()}\n" if evidence and evidence.strip() else "",
                question=question.strip(),
            )
            messages = [SystemMessage("You write SQL queries."), HumanMessage(prompt)]
            raw, usage = invoke(self.llm, messages, temperature=0.0, max_tokens=self.max_tokens)
            sql = extract_sql(raw)
        else:
            gen = generate_sql(
                self.llm, question, schema_text, evidence=evidence, dialect=db.dialect,
                temperature=0.0, max_tokens=self.max_tokens,
            )
            raw, usage, sql = gen.raw, gen.usage, gen.sql
        return Prediction(
            sql=sql,
            candidates=[{"id": "c0", "generator": self.kind, "temperature": 0.0, "sql": sql,
                         "status": "generated", "votes": 1, "result_key": None, "revisions": 0}],
            agreement=1.0 if sql else None,
            usage=usage,
            seconds=time.monotonic() - start,
            error=None if sql else "the model returned no SQL",
            raw=raw,
        )
