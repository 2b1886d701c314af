"""States of the inference graph."""

from __future__ import annotations

import operator
from typing import Annotated, Any, TypedDict

from quorumsql.records import Candidate, TraceEvent


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
    error: str | None
    candidates: list[Candidate]
    trace: list[TraceEvent]


class InferenceState(InferenceInput, InferenceOutput, total=False):
    """Full state: input, intermediate products and output.

    Keys (besides input and output):
        db_id: database name.
        dialect: sqlglot dialect of the database.
        schema_texts: rendered schema per format (``mschema``, ``ddl``).
        selected: id of the selected candidate.
    """

    db_id: str
    dialect: str
    schema_texts: dict[str, str]
    candidates: Annotated[list[Candidate], merge_candidates]
    trace: Annotated[list[TraceEvent], operator.add]
    selected: str | None


class GenerateTask(TypedDict):
    """Input of one generation branch (sent with ``Send``)."""

    question: str
    evidence: str | None
    dialect: str
    schema_text: str
    candidate_id: str
    generator: str
    temperature: float
    seed: int | None


class RefineTask(TypedDict):
    """Input of one refinement branch (sent with ``Send``)."""

    db: str
    candidate: Candidate
    seed: int
