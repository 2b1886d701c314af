"""The LLM selector stage: a model settles a vote that is not decisive (XiYan-SQL section 6).

Runs in the graph's ``post_select`` slot (after ``select``, before ``answer``) when the preset's
``llm_selector`` is ``on_tie`` or ``always``; adapts
:func:`quorumsql.agents.llm_selector.choose_group`. The vote's winner stands when the
selector is not needed, its reply names no candidate, or its endpoint fails; each case is a
trace event.
"""

from __future__ import annotations

import time

from langgraph.runtime import Runtime

from quorumsql.agents.candidates import resolve_duplicates, voting_order
from quorumsql.agents.llm_selector import choose_group, contested_groups, should_ask, vote_margin
from quorumsql.agents.selector import select_by_vote
from quorumsql.errors import ModelError
from quorumsql.graph.context import InferenceContext, context_of
from quorumsql.graph.state import InferenceState
from quorumsql.records import Confidence, TraceEvent


def llm_select(state: InferenceState, runtime: Runtime[InferenceContext]) -> dict:
    """Ask the ``selector`` model to choose among the result groups of a close vote.

    The groups are those of the ``select`` node (recomputed from the voted candidates, which
    is deterministic); only groups whose result state matches the winner's are offered.

    Returns:
        On a valid choice: ``selected`` (the chosen group's first candidate), ``confidence``
        with ``decided_by="selector"`` and a trace event holding the groups, the letters, the
        reply and the reason. Otherwise only a trace event (the vote's winner stands).
    """
    start = time.monotonic()
    ctx = context_of(runtime)
    preset = ctx.preset
    candidates = voting_order(resolve_duplicates(state["candidates"]))
    vote = select_by_vote(candidates)
    groups = contested_groups(candidates, vote.groups)
    voters = len(candidates)
    ask, why = should_ask(groups, voters, mode=preset.llm_selector, margin=preset.selector_margin)
    base = {"vote_winner": vote.winner, "groups": [[c.id for c in g] for g in groups],
            "margin": vote_margin(groups, voters), "asked": ask}
    if not ask:
        return {"trace": [TraceEvent(node="llm_select", message=f"the vote stands: {why}", data=base)]}
    schema_texts = state.get("schema_texts") or {}
    schema_text = schema_texts.get("mschema") or next(iter(schema_texts.values()), "")
    try:
        choice = choose_group(
            ctx.models.get("selector"), state["question"], groups, schema_text=schema_text,
            evidence=state.get("evidence"), dialect=state.get("dialect") or "sqlite", voters=voters,
            vote_winner=vote.winner,
        )
    except ModelError as exc:
        event = TraceEvent(node="llm_select", message=f"selector failed ({exc}): the vote's winner {vote.winner} stands",
                           data={**base, "error": str(exc)}, seconds=time.monotonic() - start)
        return {"trace": [event]}
    event = TraceEvent(
        node="llm_select", message=f"{why}; {choice.reason}",
        data={**base, "letters": choice.letters, "letter": choice.letter, "chosen": choice.candidate_id,
              "overrode_vote": choice.overrode_vote, "reason": choice.reason, "reply": choice.reply},
        seconds=time.monotonic() - start, usage=choice.usage,
    )
    if choice.letter is None:
        return {"trace": [event]}
    chosen = next(g for g in groups if g[0].id == choice.candidate_id)
    others = [len(g) for g in vote.groups if choice.candidate_id not in g]
    confidence = Confidence(
        share=len(chosen) / voters if voters else 0.0, votes=len(chosen), candidates=voters,
        decisive=all(len(chosen) > n for n in others), decided_by="selector",
    )
    return {"selected": choice.candidate_id, "confidence": confidence, "trace": [event]}
