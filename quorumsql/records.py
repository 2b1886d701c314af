"""Typed records that flow between agents, graph nodes and users."""

from __future__ import annotations

import datetime as _dt
import decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from quorumsql.llm.usage import Usage, UsageReport


def jsonable(value: Any) -> Any:
    """A result cell as JSON can hold it: Decimal -> float, dates -> ISO text, bytes -> hex."""
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, (_dt.date, _dt.datetime, _dt.time)):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    return value


class Attempt(BaseModel):
    """One SQL a candidate went through and what executing it gave.

    Attributes:
        sql: the statement (None when the model returned no SQL).
        state: execution state: ``ok`` | ``none`` | ``empty`` | ``error`` | ``refused`` |
            ``timeout`` | ``no_sql``.
        error: the database's or the safety check's message.
        row_count: rows returned (capped).
    """

    sql: str | None
    state: str
    error: str | None = None
    row_count: int = 0


class Candidate(BaseModel):
    """A candidate SQL query, from generation through refinement.

    Attributes:
        id: unique within a run (``c0``, ``c1``, ...); generation order.
        generator: origin: generator kind and schema rendering (e.g. ``zero-shot/mschema``).
        temperature: sampling temperature of the generation.
        sql: the final SQL (after refinement), None if none was produced.
        status: execution state of ``sql`` (see :class:`Attempt`), or ``model_error``.
        error: last error message, if any.
        columns: result columns of ``sql``.
        rows: result rows of ``sql`` (not included in JSON dumps; see ``preview``).
        row_count: number of result rows (capped by the database's row cap).
        truncated: the result was cut by the row cap or the result-size cap.
        preview: the first rows, for display.
        result_key: order-insensitive fingerprint of the result, used by selection.
        attempts: every SQL tried, in order (the first is the generator's).
        duplicate_of: id of an earlier candidate with the same generated SQL (not refined again).
        aligned_from: the SQL before the align stage rewrote it (None when no rewrite was kept).
        votes: size of the candidate's result group at selection.
        rules: what refinement learned about the data, one sentence each
            (:mod:`quorumsql.agents.refine_rules`); selection sees them.
        usage: model cost of this candidate (generation + refinement).
        conversation: the generator's messages, continued by the refiner (not in JSON dumps).
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    id: str
    generator: str
    temperature: float = 0.0
    sql: str | None = None
    status: str = "pending"
    error: str | None = None
    columns: list[str] = Field(default_factory=list)
    rows: list[tuple[Any, ...]] = Field(default_factory=list, exclude=True, repr=False)
    row_count: int = 0
    truncated: bool = False
    preview: list[tuple[Any, ...]] = Field(default_factory=list)
    result_key: str | None = None
    attempts: list[Attempt] = Field(default_factory=list)
    duplicate_of: str | None = None
    aligned_from: str | None = None
    votes: int = 0
    rules: list[str] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    conversation: list[Any] = Field(default_factory=list, exclude=True, repr=False)

    @property
    def executable(self) -> bool:
        """True when ``sql`` ran (whatever its result)."""
        return self.status in ("ok", "empty", "none")

    @property
    def revisions(self) -> int:
        """Number of refinement rounds that changed the SQL."""
        return max(0, len(self.attempts) - 1)


class TraceEvent(BaseModel):
    """What one graph node saw and produced.

    Attributes:
        node: node name (``context``, ``generate``, ``refine``, ...).
        message: one human-readable line.
        data: structured details (small; no full result sets).
        seconds: wall-clock time of the node's work.
        usage: model cost of the node's work.
    """

    node: str
    message: str
    data: dict[str, Any] = Field(default_factory=dict)
    seconds: float = 0.0
    usage: Usage = Field(default_factory=Usage)


class Confidence(BaseModel):
    """How much the candidates agree on the answer (self-consistency as a confidence signal).

    On a 60-question Spider sample, questions where all three ``balanced`` candidates agreed
    were 88% correct, against 67-71% when they split (README).

    Attributes:
        share: votes of the winning result group over all candidates that voted (0..1).
        votes: size of the winning group.
        candidates: candidates that voted (duplicates included).
        decisive: the winning group is strictly larger than the runner-up.
        decided_by: ``vote`` (majority, ties to the earliest candidate), ``selector`` (the LLM
            selector chose among the result groups of a close vote, whether or not it agreed
            with the vote; ``share`` and ``votes`` are then the chosen group's) or ``none``
            (nothing ran).
    """

    share: float = 0.0
    votes: int = 0
    candidates: int = 0
    decisive: bool = False
    decided_by: str = "none"


class Answer(BaseModel):
    """The result of :func:`quorumsql.answer`.

    Attributes:
        question, evidence: what was asked.
        db_id: database name.
        sql: the selected SQL, None when no candidate executed.
        columns, rows: its execution result (rows as tuples, capped by ``max_rows``).
        truncated: True when ``rows`` is not the whole result (the row cap or the result-size
            cap of the connector cut it).
        warnings: things the user should know about the run, e.g. that the database account
            can write or read server files.
        confidence: agreement behind the selected answer (:class:`Confidence`).
        candidates: every candidate with its generator, status and result summary.
        trace: per-node events.
        usage: tokens, calls and model seconds, total and per node.
        seconds: wall-clock time of the whole run.
        preset: preset name used.
        error: why no answer could be given (None on success).
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    question: str
    evidence: str | None = None
    db_id: str = ""
    sql: str | None = None
    columns: list[str] = Field(default_factory=list)
    rows: list[tuple[Any, ...]] = Field(default_factory=list)
    truncated: bool = False
    warnings: list[str] = Field(default_factory=list)
    confidence: Confidence = Field(default_factory=Confidence)
    candidates: list[Candidate] = Field(default_factory=list)
    trace: list[TraceEvent] = Field(default_factory=list)
    usage: UsageReport = Field(default_factory=UsageReport)
    seconds: float = 0.0
    preset: str = ""
    error: str | None = None

    # set by the Pipeline that answered: (question, sql, evidence) -> stored pair
    _teacher: Any = PrivateAttr(default=None)

    @property
    def ok(self) -> bool:
        """True when an executed SQL was selected."""
        return self.sql is not None and self.error is None

    def correct(self, sql: str):
        """Tell the pipeline the right SQL for this question: it lands in the database's example memory.

        The pair (this answer's question and evidence, ``sql``) is stored with provenance
        ``corrected`` after ``sql`` ran read-only on the database
        (:meth:`quorumsql.Pipeline.teach`), so the next similar question is shown it.

        Returns:
            The stored :class:`~quorumsql.metadata.examples.ExamplePair`.

        Raises:
            InputError: ``sql`` does not run (the reason is in the message), is empty, or this
                answer was not produced by a pipeline of this process (e.g. read back from JSON:
                use ``Pipeline.teach`` instead).
            ExampleMemoryError: the memory cannot be written.
        """
        from quorumsql.errors import InputError

        if self._teacher is None:
            raise InputError("this Answer does not come from a Pipeline in this process; "
                             "use Pipeline.teach(question, sql, db=...) instead")
        return self._teacher(self.question, sql, self.evidence)
