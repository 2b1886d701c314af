"""What a synthesis run produces: one :class:`SynthRecord` per (question, SQL) pair it tried.

A record is written whether the pair was kept or dropped: a dropped record names the stage that
dropped it (``dropped_by``) and why (``drop_reason``), so every seed line can be accounted for.
Records carry their whole provenance: the seed they came from (kind, source file and line,
seed SQL or question), how their SQL came to be (``origin``), every filter they passed, the
judge's score and reason, both difficulties, the generators' agreement, and, after review, the
person's verdict.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, Field, computed_field

from quorumsql.llm.usage import Usage
from quorumsql.records import jsonable

SeedKind = Literal["sql", "schema", "questions", "pair"]
Origin = Literal["seed", "variant", "synthesized", "answered"]
Verdict = Literal["correct", "wrong", "fixed"]

#: Stages that drop a record, in pipeline order (``dropped_by`` takes one of these values).
DROP_STAGES = (
    "database",     # the seed's database cannot be opened or read
    "no_sql",       # the model wrote no SQL (schema seeds, questions-first answers)
    "parse",        # the SQL does not parse
    "write",        # not a single read-only query (DELETE, DROP, several statements, ...)
    "missing_table",  # the SQL names a table the database does not have
    "timeout",      # ran past the query timeout
    "error",        # the database rejected the SQL
    "empty",        # no rows (unless --keep-empty)
    "all_null",     # every value NULL (unless --keep-empty)
    "no_question",  # the question writer gave no usable question
    "judge",        # consistency judge score under the threshold
    "duplicate",    # near-duplicate of a better record of the run (batch step)
    "review",       # a person marked it wrong
    "crash",        # an unexpected error while processing this seed (reported, never fatal)
)


def preview_rows(rows: Sequence[Sequence[Any]], n: int = 3) -> list[list[Any]]:
    """The first ``n`` rows, JSON-safe (see :func:`jsonable`)."""
    return [[jsonable(v) for v in row] for row in list(rows)[:n]]


class SynthOptions(BaseModel):
    """How much work the synthesis graph does per seed (``quorumsql synth`` flags).

    Attributes:
        variants: SQL variants asked for per seed SQL (DataFlow's SQL variation); 0: none.
        questions: candidate questions written per SQL, in different styles; the one closest
            to the candidates' embedding centroid is kept (DataFlow's question generator).
        styles: question styles to draw from (default: the question writer's own list).
        per_seed: SQL queries written per schema seed, or questions per questions-first seed.
        exec_runs: zero-shot generator runs per kept pair that measure execution difficulty
            and the generators' agreement (DataFlow's execution classifier); 0: not measured.
        exec_temperature: sampling temperature of those runs after the first, which is greedy.
        judge_threshold: least consistency-judge score (0..1) a pair needs to be kept.
        keep_empty: keep SQL whose result is empty or all NULL.
        query_timeout: seconds per execution of a synthesized SQL (the execution filter).
        max_rows: rows fetched per execution at most.
        seed: base seed of sampled model calls and of clustering (reproducible runs).
    """

    variants: int = Field(1, ge=0, le=10)
    questions: int = Field(3, ge=1, le=10)
    styles: list[str] | None = None
    per_seed: int = Field(2, ge=1, le=20)
    exec_runs: int = Field(3, ge=0, le=20)
    exec_temperature: float = Field(0.7, ge=0.0, le=2.0)
    judge_threshold: float = Field(0.5, ge=0.0, le=1.0)
    keep_empty: bool = False
    query_timeout: float = Field(10.0, gt=0)
    max_rows: int = Field(1000, ge=1)
    seed: int = 0


class QuestionCandidate(BaseModel):
    """A question the writer proposed (kept or not), with its style and evidence."""

    question: str
    evidence: str = ""
    style: str = ""


class SynthRecord(BaseModel):
    """One synthesized (question, evidence, SQL, chain of thought) pair and its provenance.

    Identity and seed:
        id: ``<seed id>#<n>``, stable across sessions (``--resume`` relies on it).
        seed_id: the seed it came from (``train_gold:17``, ``schema:farm:moderate:0``, ...).
        attempt: token of the session that processed the seed; with ``seed_records`` it tells a
            seed whose records were all written from one cut short by a crash.
        seed_records: records that seed produced in that session.
        seed_kind: ``sql`` (seed SQL, SQLord's reverse generation), ``schema`` (SQL written over
            the schema at a complexity level, DataFlow), ``questions`` (questions written first,
            answered by the inference graph, ASASQL's forward path), ``pair`` (an existing pair).
        seed_source: file or database the seed came from; seed_line: its line (1-based).
        seed_sql, seed_question: the seed's own SQL and question, when it had them.
        origin: how this record's SQL came to be: the seed's own (``seed``), a variant of it
            (``variant``, with ``parent``), written over the schema (``synthesized``) or the
            inference graph's answer to a written question (``answered``).
        complexity: the complexity level asked for (schema seeds).
    Pair:
        db_id, db, dialect: the database (path or URL) and its sqlglot dialect.
        sql, question, evidence, style: the pair; ``question_candidates`` are every question
            the writer proposed for this SQL.
        columns, row_count, preview, result_key: the SQL's result (preview: first 3 rows;
            result_key: :func:`quorumsql.agents.sql_text.result_key`).
        cot: chain of thought ending in the SQL in a ``sql`` block (None when the writer's
            reasoning did not end in this SQL; ``cot_note`` says why).
    Filters and grades:
        filters: filters and stages passed, in order (``parse``, ``read_only``, ``tables``,
            ``execution``, ``result``, ``question``, ``judge``, ``cot``, ``difficulty``, and
            ``review`` once a person's verdict was applied).
        dropped_by, drop_reason: the stage that dropped it (see :data:`DROP_STAGES`) and why;
            both None for a kept record.
        judge_score, judge_reason: the consistency judge's score (0..1) and reason.
        component_difficulty: from the SQL's tree (easy / medium / hard / extra, DataFlow).
        execution_difficulty: from how many of ``exec_attempts`` zero-shot generator runs
            gave the SQL's result (``exec_successes``); ``agreement`` is that share (0..1).
        duplicate_of: the record it near-duplicates (batch step).
        uncertainty, cluster, review_selected: active selection (ASASQL): how uncertain the
            judge and the generators are about it, its cluster, and whether it is in the review CSV.
        review, review_note, sql_before_review: the person's verdict (correct / wrong /
            fixed), what the review changed, and the SQL before a fix.
    Cost:
        usage: model calls made for this record (calls made for the whole seed count on its
            first record, so summing over records gives the run's total).
        seconds: wall-clock seconds spent on it (the seed's own steps on its first record).
        created_at: when it was written (UTC, ISO 8601).
    """

    id: str
    seed_id: str
    attempt: str = ""
    seed_records: int = 0
    seed_kind: SeedKind
    seed_source: str | None = None
    seed_line: int | None = None
    seed_sql: str | None = None
    seed_question: str | None = None
    origin: Origin = "seed"
    parent: str | None = None
    complexity: str | None = None

    db_id: str = ""
    db: str = ""
    dialect: str = "sqlite"
    sql: str | None = None
    question: str | None = None
    evidence: str = ""
    style: str | None = None
    question_candidates: list[QuestionCandidate] = Field(default_factory=list)
    columns: list[str] = Field(default_factory=list)
    row_count: int = 0
    preview: list[list[Any]] = Field(default_factory=list)
    result_key: str | None = None
    cot: str | None = None
    cot_note: str | None = None

    filters: list[str] = Field(default_factory=list)
    dropped_by: str | None = None
    drop_reason: str | None = None
    judge_score: float | None = None
    judge_reason: str | None = None
    component_difficulty: str | None = None
    execution_difficulty: str | None = None
    exec_successes: int | None = None
    exec_attempts: int | None = None
    agreement: float | None = None
    duplicate_of: str | None = None
    uncertainty: float | None = None
    cluster: int | None = None
    review_selected: bool = False
    review: Verdict | None = None
    review_note: str | None = None
    sql_before_review: str | None = None

    usage: Usage = Field(default_factory=Usage)
    seconds: float = 0.0
    created_at: str = ""

    @computed_field  # type: ignore[prop-decorator]
    @property
    def status(self) -> Literal["kept", "dropped"]:
        """``kept`` when no stage dropped the record, else ``dropped``."""
        return "kept" if self.dropped_by is None else "dropped"

    @property
    def kept(self) -> bool:
        """True when no stage dropped the record."""
        return self.dropped_by is None

    def drop(self, stage: str, reason: str) -> None:
        """Mark the record dropped by ``stage`` (one of :data:`DROP_STAGES`) for ``reason``.

        Raises:
            ValueError: ``stage`` is not a known stage.
        """
        if stage not in DROP_STAGES:
            raise ValueError(f"unknown drop stage {stage!r}")
        self.dropped_by, self.drop_reason = stage, reason

    def passed(self, name: str) -> None:
        """Record that the pair passed filter or stage ``name`` (once)."""
        if name not in self.filters:
            self.filters.append(name)

    def provenance(self) -> dict[str, Any]:
        """The fields exports carry along with the pair: seed, filters, grades, review."""
        return {
            "id": self.id, "seed_id": self.seed_id, "seed_kind": self.seed_kind,
            "seed_source": self.seed_source, "seed_line": self.seed_line, "seed_sql": self.seed_sql,
            "origin": self.origin, "parent": self.parent, "db_id": self.db_id, "filters": list(self.filters),
            "judge_score": self.judge_score, "component_difficulty": self.component_difficulty,
            "execution_difficulty": self.execution_difficulty, "agreement": self.agreement,
            "cluster": self.cluster, "review": self.review,
        }
