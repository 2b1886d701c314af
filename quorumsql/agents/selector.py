"""Selection: group candidates by execution result and take the majority.

Self-consistency over execution results (as in MCI-SQL's voting, paper 004 section 3.5, and
XiYan-SQL's candidate grouping, paper 003 section 2.5): candidates whose results are equal as
multisets of rows form a group; the largest group wins. Groups whose state is ``ok`` beat groups
of empty or all-NULL results; ties go to the group holding the earliest candidate (the greedy,
temperature-0 generation comes first).
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, Field

from quorumsql.records import Candidate

_STATE_RANK = {"ok": 0, "none": 1, "empty": 1}


class Selection(BaseModel):
    """Outcome of selection.

    Attributes:
        winner: id of the selected candidate, None when no candidate executed.
        groups: candidate ids per result group, best group first.
        decisive: the winning group is strictly larger than the runner-up.
        reason: one line explaining the choice.
    """

    winner: str | None
    groups: list[list[str]] = Field(default_factory=list)
    decisive: bool = False
    reason: str = ""


def select_by_vote(candidates: Sequence[Candidate]) -> Selection:
    """Pick the candidate whose execution result most candidates agree on.

    Args:
        candidates: refined candidates in generation order (duplicates included: each is a vote).

    Returns:
        The selection; ``winner`` is the earliest candidate of the best group.
    """
    order = {c.id: i for i, c in enumerate(candidates)}
    groups: dict[str, list[Candidate]] = {}
    for cand in candidates:
        if cand.executable and cand.result_key is not None:
            groups.setdefault(cand.result_key, []).append(cand)
    if not groups:
        return Selection(winner=None, reason="no candidate executed")
    ranked = sorted(
        groups.values(),
        key=lambda g: (_STATE_RANK.get(g[0].status, 2), -len(g), min(order[c.id] for c in g)),
    )
    best = ranked[0]
    decisive = len(ranked) == 1 or len(best) > len(ranked[1])
    winner = min(best, key=lambda c: order[c.id])
    reason = (
        f"{len(best)} of {len(candidates)} candidates agree"
        + ("" if decisive else f"; tie with {len(ranked[1])}, earliest candidate wins")
        + ("" if best[0].status == "ok" else f" (result state: {best[0].status})")
    )
    return Selection(
        winner=winner.id,
        groups=[[c.id for c in g] for g in ranked],
        decisive=decisive,
        reason=reason,
    )
