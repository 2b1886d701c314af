"""The align stage: rule-based function alignment after refinement (MCI-SQL section 3.4).

Runs in the graph's ``post_refine`` slot when the preset lists ``align_rules``; adapts
:func:`quorumsql.agents.align.align_sql` to every refined candidate with SQL of its own
(duplicates take their original's aligned result at selection). No model is called.
"""

from __future__ import annotations

import time

from langgraph.runtime import Runtime

from quorumsql.agents.align import align_sql, with_alignment
from quorumsql.graph.context import InferenceContext, context_of
from quorumsql.graph.state import InferenceState
from quorumsql.records import TraceEvent


def align(state: InferenceState, runtime: Runtime[InferenceContext]) -> dict:
    """Apply the preset's ``align_rules`` to each refined candidate; keep rewrites that run.

    Returns:
        ``{"candidates": [aligned copies], "trace": [events]}``: one ``align`` event per
        candidate a rule rewrote (kept or not: applied rules, each rewrite tried, its state),
        or one event saying that no rule applied.
    """
    ctx = context_of(runtime)
    rules = list(ctx.preset.align_rules)
    db = ctx.resources.database(state["db"])
    updated, events = [], []
    for cand in state["candidates"]:
        if cand.duplicate_of or not cand.sql or cand.status == "model_error":
            continue
        start = time.monotonic()
        result = align_sql(db, cand.sql, state=cand.status, error=cand.error, rules=rules,
                            question=state["question"])
        if not result.steps:
            continue
        if result.applied:
            updated.append(with_alignment(cand, result))
        tried = "; ".join(f"{s.rule}{f' ({s.note})' if s.note else ''}: {s.state}" for s in result.steps)
        message = (f"{cand.id}: {', '.join(result.applied)} applied -> {result.sql}" if result.applied
                   else f"{cand.id}: no rewrite ran, SQL kept") + f" [{tried}]"
        events.append(TraceEvent(
            node="align", message=message, seconds=time.monotonic() - start,
            data={"candidate": cand.id, "rules": result.applied, "before": cand.sql, "sql": result.sql,
                  "state": result.state, "steps": [s.model_dump() for s in result.steps]},
        ))
    if not events:
        events.append(TraceEvent(node="align", message=f"no rule of {', '.join(rules)} applied",
                                 data={"rules": []}))
    return {"candidates": updated, "trace": events}
