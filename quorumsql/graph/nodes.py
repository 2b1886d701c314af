"""Nodes of the inference graph: each adapts one agent to the state and the runtime context.

A node reads what it needs from the state (or its ``Send`` task) and from
``runtime.context`` (:class:`~quorumsql.graph.context.InferenceContext`), calls an agent, and
returns a state update plus one :class:`~quorumsql.records.TraceEvent`. Decisions belong to
the agents in :mod:`quorumsql.agents`; nothing here but adaptation and timing.
"""

from __future__ import annotations

import time

from langgraph.runtime import Runtime

from quorumsql.agents.candidates import (
    confidence_of,
    failure_summary,
    mark_duplicates,
    resolve_duplicates,
    voting_order,
    with_refinement,
    with_votes,
)
from quorumsql.agents.finetuned_generator import generate_finetuned as finetuned_sql
from quorumsql.agents.generator import generate_sql
from quorumsql.agents.refiner import refine
from quorumsql.agents.selector import select_by_vote
from quorumsql.errors import ModelError
from quorumsql.graph.context import InferenceContext, context_of
from quorumsql.graph.linking import schema_budget
from quorumsql.graph.state import GenerateTask, InferenceState, RefineTask
from quorumsql.llm import Usage
from quorumsql.llm.usage import estimate_tokens
from quorumsql.records import Candidate, TraceEvent


def context(state: InferenceState, runtime: Runtime[InferenceContext]) -> dict:
    """Open the database, notice changes, decide whether to link, render the whole schema.

    Linking runs when the preset says ``True``, or ``"auto"`` and the whole M-Schema is over
    the prompt budget; otherwise the whole schema is rendered in every format the plan uses.
    """
    start = time.monotonic()
    ctx = context_of(runtime)
    res = ctx.resources
    db = res.database(state["db"])
    if state.get("descriptions_dir"):
        res.set_descriptions(state["db"], state["descriptions_dir"])
    changed = res.refresh(state["db"])
    schema = db.schema()
    formats = dict.fromkeys(spec.schema_format for spec in ctx.preset.candidate_plan())
    linking, why, texts = ctx.preset.linking is True, "", {}
    if ctx.preset.linking == "auto":
        texts["mschema"] = res.schema_text(state["db"], "mschema")  # reused below when it fits
        tokens = estimate_tokens(texts["mschema"])
        linking = tokens > schema_budget(state, ctx.preset.prompt_budget)
        why = (f"; the whole schema (~{tokens:,} tokens) is over the prompt budget of "
               f"{ctx.preset.prompt_budget:,}: linking" if linking else "")
    # with linking on, the link stage renders the linked schema instead
    texts = {} if linking else {
        fmt: texts.get(fmt) or res.schema_text(state["db"], fmt, question=state["question"]) for fmt in formats
    }
    warnings = db.privilege_warnings()
    event = TraceEvent(
        node="context",
        message=f"{schema.db_id}: {len(schema.tables)} tables, {schema.column_count} columns"
        + why + ("; the database changed since it was last read" if changed else "")
        + "".join(f"; warning: {w}" for w in warnings),
        data={"formats": list(texts), "chars": {k: len(v) for k, v in texts.items()}, "warnings": warnings,
              "linking": linking},
        seconds=time.monotonic() - start,
    )
    return {
        "db_id": schema.db_id,
        "dialect": db.dialect,
        "schema_texts": texts,
        "linking": linking,
        "warnings": warnings,
        "trace": [event],
    }


def run_generator(task: GenerateTask, runtime: Runtime[InferenceContext], *, write, role: str = "generator",
                  node: str = "generate", label: str | None = None) -> dict:
    """One candidate from a generator agent: the shared body of every generator node.

    Args:
        task: the planned candidate and its prompt inputs.
        runtime: the run's context (models, preset).
        write: the agent, ``(llm, question, schema_text, *, evidence, dialect, temperature,
            max_tokens, seed) -> Generation``.
        role: the model role the agent's calls go to.
        node: node name in the trace.
        label: the candidate's origin label (default: the plan's ``kind/format``).

    Returns:
        A state update: the candidate and one trace event. A model error is recorded on the
        candidate (status ``model_error``), never raised.
    """
    start = time.monotonic()
    ctx = context_of(runtime)
    spec = task["spec"]
    cand = Candidate(id=f"c{spec.index}", generator=label or spec.label, temperature=spec.temperature)
    try:
        gen = write(
            ctx.models.get(role),
            task["question"],
            task["schema_text"],
            evidence=task.get("evidence"),
            dialect=task["dialect"],
            temperature=spec.temperature,
            max_tokens=ctx.preset.max_tokens,
            seed=spec.index if spec.temperature else None,  # seeded sampling: reproducible runs
        )
    except ModelError as exc:
        cand.status, cand.error = "model_error", str(exc)
        usage = Usage()
    else:
        cand.sql, cand.usage, cand.conversation = gen.sql, gen.usage, gen.messages
        usage = gen.usage
        if gen.sql is None:
            cand.status = "no_sql"
    event = TraceEvent(
        node=node,
        message=f"{cand.id} ({cand.generator}, T={cand.temperature:g}): "
        + (cand.sql or cand.error or "no SQL in the reply"),
        data={"candidate": cand.id, "sql": cand.sql, "status": cand.status},
        seconds=time.monotonic() - start,
        usage=usage,
    )
    return {"candidates": [cand], "trace": [event]}


def generate(task: GenerateTask, runtime: Runtime[InferenceContext]) -> dict:
    """Zero-shot generator: one candidate from instructions, schema, evidence and question."""
    return run_generator(task, runtime, write=generate_sql)


def generate_finetuned(task: GenerateTask, runtime: Runtime[InferenceContext]) -> dict:
    """Fine-tuned-format generator (XiYanSQL-QwenCoder prompt layout), on the ``finetuned`` role."""
    return run_generator(task, runtime, write=finetuned_sql, role="finetuned", node="generate_finetuned")


def dedupe(state: InferenceState) -> dict:
    """Mark candidates whose SQL repeats an earlier one: executed once, every copy votes."""
    marked = mark_duplicates(state["candidates"], state.get("dialect"))
    distinct = sum(1 for c in state["candidates"] if c.sql and c.status != "model_error") - len(marked)
    event = TraceEvent(
        node="dedupe",
        message=f"{distinct} distinct SQL among {len(state['candidates'])} candidates",
        data={"duplicates": {c.id: c.duplicate_of for c in marked}},
    )
    return {"candidates": marked, "trace": [event]}


def refine_candidate(task: RefineTask, runtime: Runtime[InferenceContext]) -> dict:
    """Execution-guided correction of one candidate (MCI-SQL's intermediate correction)."""
    start = time.monotonic()
    ctx = context_of(runtime)
    cand = task["candidate"]
    try:
        r = refine(
            ctx.models.get("generator"),
            ctx.resources.database(task["db"]),
            cand.sql,
            cand.conversation,
            rounds=ctx.preset.refine_rounds,
            refine_states=ctx.preset.refine_states,
            max_tokens=ctx.preset.max_tokens,
            seed=task["seed"],
        )
    except ModelError as exc:
        done = cand.model_copy(update={"status": "model_error", "error": str(exc)})
        return {"candidates": [done], "trace": [TraceEvent(node="refine", message=f"{cand.id}: {exc}")]}
    states = " -> ".join(a.state for a in r.attempts)
    event = TraceEvent(
        node="refine",
        message=f"{cand.id}: {states}" + (f" ({len(r.attempts) - 1} revision(s))" if len(r.attempts) > 1 else ""),
        data={"candidate": cand.id, "attempts": [a.model_dump() for a in r.attempts],
              "rules": [rule.model_dump() for rule in r.rules]},
        seconds=time.monotonic() - start,
        usage=r.usage,
    )
    return {"candidates": [with_refinement(cand, r)], "trace": [event]}


def select(state: InferenceState) -> dict:
    """Majority vote over execution results; duplicates vote with their original's result."""
    final = voting_order(resolve_duplicates(state["candidates"]))
    choice = select_by_vote(final)
    event = TraceEvent(
        node="select",
        message=(f"{choice.winner}: {choice.reason}" if choice.winner else choice.reason),
        data={"groups": choice.groups, "decisive": choice.decisive},
    )
    return {
        "candidates": with_votes(final, choice),
        "selected": choice.winner,
        "decisive": choice.decisive,
        "confidence": confidence_of(final, choice),
        "trace": [event],
    }


def answer(state: InferenceState) -> dict:
    """The selected candidate's SQL and result, or why there is none."""
    winner = next((c for c in state["candidates"] if c.id == state.get("selected")), None)
    if winner is None:
        return {"sql": None, "columns": [], "rows": [], "truncated": False,
                "error": failure_summary(state["candidates"])}
    return {"sql": winner.sql, "columns": winner.columns, "rows": winner.rows,
            "truncated": winner.truncated, "error": None}
