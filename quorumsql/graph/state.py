"""States of the inference graph."""

from __future__ import annotations

import operator
from typing import Annotated, Any, NotRequired, TypedDict

from quorumsql.agents.linker import LinkedSchema
from quorumsql.config import CandidateSpec
from quorumsql.records import Candidate, Confidence, TraceEvent


def merge_candidates(left: list[Candidate] | None, right: list[Candidate] | None) -> list[Candidate]:
    """Reducer: candidates with a new id are appended; a known id replaces the earlier version.

    Generation branches append, the refiner and selection update in place; order is kept.
    """
    merged = list(left or [])
    index = {c.id: i for i, c in enumerate(merged)}
    for cand in right or []:
        if cand.id in index:
            merged[index[cand.id]] = cand
        else:
            index[cand.id] = len(merged)
            merged.append(cand)
    return merged


class InferenceInput(TypedDict, total=False):
    """What a caller (``answer()``, LangGraph Studio) sends.

    Keys:
        question: the question in plain language.
        db: SQLite path or database URL.
        evidence: optional external knowledge (BIRD-style hint).
        descriptions_dir: optional BIRD ``database_description`` folder of column descriptions.
    """

    question: str
    db: str
    evidence: str | None
    descriptions_dir: str | None


class InferenceOutput(TypedDict, total=False):
    """What the graph returns."""

    sql: str | None
    columns: list[str]
    rows: list[tuple[Any, ...]]
    truncated: bool
    warnings: list[str]
    confidence: Confidence
    error: str | None
    candidates: list[Candidate]
    trace: list[TraceEvent]


class InferenceState(InferenceInput, InferenceOutput, total=False):
    """Full state: input, intermediate products and output.

    Keys (besides input and output):
        db_id: database name.
        dialect: sqlglot dialect of the database.
        schema_texts: rendered schema per format (``mschema``, ``ddl``, ``metadata_*``).
        linking: whether the linking stages run for this question (preset and schema size).
        keywords: keywords of the question (linking).
        retrieval: value and column retrieval hits (linking): ``{"values": [(table, column,
            [values])], "columns": [(table, column, score)], "notes": [...]}``.
        linked: the linked schema (:class:`~quorumsql.agents.linker.LinkedSchema`), None
            without linking.
        selected: id of the selected candidate.
        decisive: the vote's winning group is strictly larger than the runner-up.
    """

    db_id: str
    dialect: str
    schema_texts: dict[str, str]
    linking: bool
    keywords: list[str]
    retrieval: dict[str, Any]
    linked: LinkedSchema | None
    candidates: Annotated[list[Candidate], merge_candidates]
    trace: Annotated[list[TraceEvent], operator.add]
    selected: str | None
    decisive: bool


class GenerateTask(TypedDict):
    """Input of one generation branch (sent with ``Send``).

    Keys:
        question, evidence, dialect: as in the state.
        schema_text: the schema rendering this candidate's generator sees.
        spec: the planned candidate (:class:`~quorumsql.config.CandidateSpec`): generator kind,
            schema format, temperature, index (the candidate id and sampling seed).
        db, db_id: the database (path or URL) and its name (the ICL generator masks the
            question with its value index and never shows its own examples).
        linked: the linked schema, when linking ran (the ICL generator counts its tables).
    """

    question: str
    evidence: str | None
    dialect: str
    schema_text: str
    spec: CandidateSpec
    db: NotRequired[str]
    db_id: NotRequired[str]
    linked: NotRequired[LinkedSchema | None]


class RefineTask(TypedDict):
    """Input of one refinement branch (sent with ``Send``)."""

    db: str
    candidate: Candidate
    seed: int
