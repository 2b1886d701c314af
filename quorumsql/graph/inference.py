"""The inference graph.

::

    context -> generate (x N, Send) -> dedupe -> refine (x unique, Send) -> select -> answer

``context`` renders the schema; each ``generate`` branch is one (schema format, temperature)
pair of the preset; ``dedupe`` marks candidates whose SQL repeats an earlier one so they are
executed and refined once but still vote; ``refine`` runs the execution-guided correction loop;
``select`` takes the majority over execution results; ``answer`` fills the output.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from langgraph.graph import END, START, StateGraph
from langgraph.types import Send

from quorumsql.agents.generator import generate_sql
from quorumsql.agents.refiner import refine
from quorumsql.agents.selector import select_by_vote
from quorumsql.errors import ModelError
from quorumsql.graph.state import (
    GenerateTask,
    InferenceInput,
    InferenceOutput,
    InferenceState,
    RefineTask,
)
from quorumsql.llm import Usage
from quorumsql.records import Candidate, TraceEvent
from quorumsql.schema_repr import to_ddl, to_mschema

if TYPE_CHECKING:
    from quorumsql.api import Pipeline

PREVIEW_ROWS = 5


def _norm_sql(sql: str | None) -> str | None:
    return " ".join(sql.split()).lower() if sql else None


def build_inference_graph(pipeline: "Pipeline"):
    """Compile the inference graph over ``pipeline``'s settings, preset, model and databases.

    Args:
        pipeline: supplies ``preset``, ``llm`` (created lazily) and ``database(spec)``.

    Returns:
        A compiled LangGraph graph; input :class:`InferenceInput`, output :class:`InferenceOutput`.
    """
    preset = pipeline.preset

    def context(state: InferenceState) -> dict:
        start = time.monotonic()
        db = pipeline.database(state["db"])
        schema = db.schema()
        if state.get("descriptions_dir"):
            pipeline.set_descriptions(state["db"], state["descriptions_dir"])
        texts: dict[str, str] = {}
        for fmt in dict.fromkeys(preset.schema_formats):
            if fmt == "mschema":
                texts[fmt] = to_mschema(schema, descriptions=pipeline.descriptions(state["db"]))
            elif fmt == "ddl":
                texts[fmt] = to_ddl(schema)
            else:  # metadata_partial / metadata_complete
                granularity = fmt.split("_", 1)[1]
                texts[fmt] = pipeline.metadata(state["db"]).render(granularity=granularity, question=state["question"])
        event = TraceEvent(
            node="context",
            message=f"{schema.db_id}: {len(schema.tables)} tables, {schema.column_count} columns",
            data={"formats": list(texts), "chars": {k: len(v) for k, v in texts.items()}},
            seconds=time.monotonic() - start,
        )
        return {"db_id": schema.db_id, "dialect": db.dialect, "schema_texts": texts, "trace": [event]}

    def route_generate(state: InferenceState) -> list[Send]:
        formats = preset.schema_formats
        return [
            Send(
                "generate",
                GenerateTask(
                    question=state["question"],
                    evidence=state.get("evidence"),
                    dialect=state["dialect"],
                    schema_text=state["schema_texts"][formats[i % len(formats)]],
                    candidate_id=f"c{i}",
                    generator=f"icl/{formats[i % len(formats)]}",
                    temperature=t,
                    seed=i if t else None,  # seeded sampling: reproducible runs
                ),
            )
            for i, t in enumerate(preset.temperatures)
        ]

    def generate(task: GenerateTask) -> dict:
        start = time.monotonic()
        cand = Candidate(id=task["candidate_id"], generator=task["generator"], temperature=task["temperature"])
        try:
            gen = generate_sql(
                pipeline.llm,
                task["question"],
                task["schema_text"],
                evidence=task.get("evidence"),
                dialect=task["dialect"],
                temperature=task["temperature"],
                max_tokens=preset.max_tokens,
                seed=task["seed"],
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
            node="generate",
            message=f"{cand.id} ({cand.generator}, T={cand.temperature:g}): "
            + (cand.sql or cand.error or "no SQL in the reply"),
            data={"candidate": cand.id, "sql": cand.sql, "status": cand.status},
            seconds=time.monotonic() - start,
            usage=usage,
        )
        return {"candidates": [cand], "trace": [event]}

    def dedupe(state: InferenceState) -> dict:
        seen: dict[str, str] = {}
        updated = []
        for cand in state["candidates"]:
            key = _norm_sql(cand.sql)
            if key is None or cand.status == "model_error":
                continue
            if key in seen:
                updated.append(cand.model_copy(update={"duplicate_of": seen[key]}))
            else:
                seen[key] = cand.id
        event = TraceEvent(
            node="dedupe",
            message=f"{len(seen)} distinct SQL among {len(state['candidates'])} candidates",
            data={"duplicates": {c.id: c.duplicate_of for c in updated}},
        )
        return {"candidates": updated, "trace": [event]}

    def route_refine(state: InferenceState) -> list[Send] | str:
        sends = [
            Send("refine", RefineTask(db=state["db"], candidate=c, seed=100 * i))
            for i, c in enumerate(state["candidates"])
            if c.duplicate_of is None and c.status != "model_error"
        ]
        return sends or "select"

    def refine_node(task: RefineTask) -> dict:
        start = time.monotonic()
        cand = task["candidate"]
        try:
            r = refine(
                pipeline.llm,
                pipeline.database(task["db"]),
                cand.sql,
                cand.conversation,
                rounds=preset.refine_rounds,
                refine_states=preset.refine_states,
                max_tokens=preset.max_tokens,
                seed=task["seed"],
            )
        except ModelError as exc:
            done = cand.model_copy(update={"status": "model_error", "error": str(exc)})
            return {"candidates": [done], "trace": [TraceEvent(node="refine", message=f"{cand.id}: {exc}")]}
        result = r.result
        done = cand.model_copy(
            update={
                "sql": r.sql,
                "status": r.state,
                "error": result.error if result is not None else cand.error,
                "columns": result.columns if result is not None else [],
                "rows": result.rows if result is not None else [],
                "row_count": len(result.rows) if result is not None else 0,
                "preview": result.rows[:PREVIEW_ROWS] if result is not None else [],
                "result_key": r.result_key,
                "attempts": r.attempts,
                "usage": cand.usage + r.usage,
            }
        )
        states = " -> ".join(a.state for a in r.attempts)
        event = TraceEvent(
            node="refine",
            message=f"{cand.id}: {states}" + (f" ({len(r.attempts) - 1} revision(s))" if len(r.attempts) > 1 else ""),
            data={"candidate": cand.id, "attempts": [a.model_dump() for a in r.attempts]},
            seconds=time.monotonic() - start,
            usage=r.usage,
        )
        return {"candidates": [done], "trace": [event]}

    def select(state: InferenceState) -> dict:
        by_id = {c.id: c for c in state["candidates"]}
        final: list[Candidate] = []
        for cand in state["candidates"]:
            if cand.duplicate_of is not None:
                src = by_id[cand.duplicate_of]
                cand = cand.model_copy(
                    update={
                        k: getattr(src, k)
                        for k in ("sql", "status", "error", "columns", "rows", "row_count", "preview", "result_key", "attempts")
                    }
                )
            final.append(cand)
        choice = select_by_vote(final)
        sizes = {cid: len(g) for g in choice.groups for cid in g}
        final = [c.model_copy(update={"votes": sizes.get(c.id, 0)}) for c in final]
        event = TraceEvent(
            node="select",
            message=(f"{choice.winner}: {choice.reason}" if choice.winner else choice.reason),
            data={"groups": choice.groups, "decisive": choice.decisive},
        )
        return {"candidates": final, "selected": choice.winner, "trace": [event]}

    def answer(state: InferenceState) -> dict:
        winner = next((c for c in state["candidates"] if c.id == state.get("selected")), None)
        if winner is None:
            errors = [c.error for c in state["candidates"] if c.error]
            reason = "no candidate SQL executed" + (f"; last error: {errors[-1]}" if errors else "")
            return {"sql": None, "columns": [], "rows": [], "error": reason}
        return {"sql": winner.sql, "columns": winner.columns, "rows": winner.rows, "error": None}

    builder = StateGraph(InferenceState, input_schema=InferenceInput, output_schema=InferenceOutput)
    builder.add_node("context", context)
    builder.add_node("generate", generate)
    builder.add_node("dedupe", dedupe)
    builder.add_node("refine", refine_node)
    builder.add_node("select", select)
    builder.add_node("answer", answer)
    builder.add_edge(START, "context")
    builder.add_conditional_edges("context", route_generate, ["generate"])
    builder.add_edge("generate", "dedupe")
    builder.add_conditional_edges("dedupe", route_refine, ["refine", "select"])
    builder.add_edge("refine", "select")
    builder.add_edge("select", "answer")
    builder.add_edge("answer", END)
    return builder.compile(name="quorumsql-inference")
