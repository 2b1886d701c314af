"""Bookkeeping over a question's candidates: duplicates, refinement results, votes, failures.

These are the small decisions between the agents that write and judge SQL: identical SQL is
executed and refined once but every copy keeps its vote (self-consistency counts samples, not
distinct strings: MCI-SQL paper 004, section 3.5), a refinement's outcome is recorded on its
candidate, and when nothing executed the user gets one line saying why.
"""

from __future__ import annotations

from collections.abc import Sequence

from quorumsql.agents.refiner import Refinement
from quorumsql.agents.selector import Selection
from quorumsql.agents.sql_text import normalize_sql
from quorumsql.records import Candidate, Confidence

PREVIEW_ROWS = 5

# Fields a duplicate takes over from the candidate that was executed in its place.
_RESULT_FIELDS = (
    "sql", "status", "error", "columns", "rows", "row_count", "truncated", "preview", "result_key", "attempts",
    "rules",
)


def mark_duplicates(candidates: Sequence[Candidate], dialect: str | None = None) -> list[Candidate]:
    """Mark each candidate whose generated SQL repeats an earlier candidate's.

    SQL is compared after :func:`~quorumsql.agents.sql_text.normalize_sql` (whitespace, case of
    keywords and of names where the dialect ignores it, trailing semicolons; literals keep their
    case). Candidates without SQL or whose model call
    failed are never duplicates.

    Args:
        candidates: candidates in generation order.
        dialect: sqlglot dialect of the database (its rules for the case of names apply).

    Returns:
        Copies of the candidates that are duplicates, with ``duplicate_of`` set to the id of the
        first candidate with the same SQL (the others are unchanged and not returned).
    """
    first: dict[str, str] = {}
    marked: list[Candidate] = []
    for cand in candidates:
        key = normalize_sql(cand.sql, dialect)
        if key is None or cand.status == "model_error":
            continue
        if key in first:
            marked.append(cand.model_copy(update={"duplicate_of": first[key]}))
        else:
            first[key] = cand.id
    return marked


def needs_refinement(cand: Candidate) -> bool:
    """True for a candidate that must be executed (and maybe revised) itself.

    Duplicates take their original's result; a failed model call has nothing to run.
    """
    return cand.duplicate_of is None and cand.status != "model_error"


def with_refinement(cand: Candidate, refinement: Refinement) -> Candidate:
    """The candidate after refinement: final SQL, execution state, result and attempts.

    Args:
        cand: the generated candidate.
        refinement: what :func:`quorumsql.agents.refiner.refine` returned for it.

    Returns:
        An updated copy; ``usage`` adds the refinement's model cost to the generation's.
    """
    result = refinement.result
    ran = result is not None
    return cand.model_copy(
        update={
            "sql": refinement.sql,
            "status": refinement.state,
            "error": result.error if ran else cand.error,
            "columns": result.columns if ran else [],
            "rows": result.rows if ran else [],
            "row_count": len(result.rows) if ran else 0,
            "truncated": bool(result.truncated) if ran else False,
            "preview": result.rows[:PREVIEW_ROWS] if ran else [],
            "result_key": refinement.result_key,
            "attempts": refinement.attempts,
            "rules": [r.text for r in refinement.rules],
            "usage": cand.usage + refinement.usage,
        }
    )


def resolve_duplicates(candidates: Sequence[Candidate]) -> list[Candidate]:
    """Give every duplicate the execution result of the candidate it repeats.

    Args:
        candidates: all candidates after refinement, originals included.

    Returns:
        The candidates in the same order; duplicates carry their original's SQL, state, result
        and attempts (so that each one votes for that result).
    """
    by_id = {c.id: c for c in candidates}
    resolved = []
    for cand in candidates:
        src = by_id.get(cand.duplicate_of) if cand.duplicate_of else None
        if src is not None:
            cand = cand.model_copy(update={k: getattr(src, k) for k in _RESULT_FIELDS})
        resolved.append(cand)
    return resolved


def voting_order(candidates: Sequence[Candidate]) -> list[Candidate]:
    """Candidates in the order ties are broken: the planned ones first, the linking draft last.

    The vote's ties go to the earliest candidate (the greedy one of the preset's plan); the
    draft written during schema linking saw the whole schema rather than the linked one, so it
    votes like any candidate but never wins a tie.
    """
    return sorted(candidates, key=lambda c: c.generator.startswith("draft/"))


def with_votes(candidates: Sequence[Candidate], selection: Selection) -> list[Candidate]:
    """Copies of the candidates with ``votes`` set to the size of their result group (0 if none)."""
    sizes = {cid: len(group) for group in selection.groups for cid in group}
    return [c.model_copy(update={"votes": sizes.get(c.id, 0)}) for c in candidates]


def failure_summary(candidates: Sequence[Candidate]) -> str:
    """One line saying why no candidate gave an answer (for :attr:`Answer.error`).

    Returns:
        ``"no candidate SQL executed"``, followed by the last error message when there is one.
    """
    errors = [c.error for c in candidates if c.error]
    return "no candidate SQL executed" + (f"; last error: {errors[-1]}" if errors else "")


def confidence_of(candidates: Sequence[Candidate], selection: Selection) -> Confidence:
    """The agreement behind a selection: winning group size over the candidates that voted.

    Every candidate counts in the denominator, failed ones included (a candidate that did not
    run is a vote against every result).
    """
    if selection.winner is None or not selection.groups:
        return Confidence(candidates=len(candidates))
    votes = len(selection.groups[0])
    return Confidence(
        share=votes / len(candidates) if candidates else 0.0, votes=votes, candidates=len(candidates),
        decisive=selection.decisive, decided_by="vote",
    )
