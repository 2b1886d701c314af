"""Schema-linking nodes: keywords -> retrieve -> link -> (column selector).

They run in the graph's ``linking`` slot when the preset sets ``linking`` (the column selector
when it also sets ``column_selector``); each adapts one agent
(:mod:`quorumsql.agents.keywords`, :mod:`quorumsql.metadata.retrieval`,
:mod:`quorumsql.agents.linker`, :mod:`quorumsql.agents.column_selector`). Linking degrades
instead of failing: a model error, an unusable reply, a missing index or a draft that does not
parse leaves a larger (never empty) schema and a note in the trace.
"""

from __future__ import annotations

import time

from langgraph.runtime import Runtime

from quorumsql.agents.column_selector import select_columns
from quorumsql.agents.generator import generate_sql
from quorumsql.agents.keywords import extract_keywords
from quorumsql.agents.linker import (
    LinkedSchema,
    SqlReferences,
    assemble_linked_schema,
    link_sources,
    referenced_columns,
    tables_named,
)
from quorumsql.errors import ModelError, QuorumSQLError
from quorumsql.graph.context import InferenceContext, context_of
from quorumsql.graph.state import InferenceState
from quorumsql.llm import Usage
from quorumsql.llm.usage import estimate_tokens
from quorumsql.records import Candidate, TraceEvent

# Order in which linked columns are dropped to fit the prompt budget (last dropped first).
_KEEP_ORDER = ("draft", "value", "selector", "keyword", "path", "column", "similar", "duplicate", "all")


def _phrases(state: InferenceState) -> list[str]:
    from quorumsql.metadata.retrieval import question_ngrams

    return question_ngrams(" ".join(filter(None, [state["question"], state.get("evidence") or ""])))


def keywords(state: InferenceState, runtime: Runtime[InferenceContext]) -> dict:
    """The model lists the question's keywords; the question's n-grams when it cannot."""
    start = time.monotonic()
    ctx = context_of(runtime)
    ngrams = _phrases(state)
    usage = Usage()
    try:
        kw = extract_keywords(ctx.models.get("generator"), state["question"], evidence=state.get("evidence"),
                              fallback_ngrams=ngrams)
        words, fallback, usage = kw.keywords, kw.fallback, kw.usage
        note = "no list in the reply: using the question's n-grams" if fallback else ""
    except ModelError as exc:
        words, fallback, note = ngrams[:12], True, f"model error ({exc}): using the question's n-grams"
    event = TraceEvent(
        node="keywords", message=", ".join(words) + (f" ({note})" if note else ""),
        data={"keywords": words, "fallback": fallback}, seconds=time.monotonic() - start, usage=usage,
    )
    return {"keywords": words, "trace": [event]}


def retrieve(state: InferenceState, runtime: Runtime[InferenceContext]) -> dict:
    """Value retrieval (keywords and n-grams) and column retrieval (top-k per keyword)."""
    from quorumsql.metadata.retrieval import lookup_columns, match_values

    start = time.monotonic()
    ctx = context_of(runtime)
    preset = ctx.preset
    words = state.get("keywords") or []
    values: list[tuple[str, str, list]] = []
    columns: list[tuple[str, str, float]] = []
    note = ""
    try:
        store = ctx.resources.metadata(state["db"])
        matched = match_values(store, [*words, *_phrases(state)], k=5, min_score=preset.value_min_score)
        ranked = sorted(matched.items(), key=lambda kv: -kv[1][0][1])[: preset.value_top_k]
        values = [(t, c, [v for v, _ in hits[:3]]) for (t, c), hits in ranked]
        best: dict[tuple[str, str], float] = {}
        for word in words if preset.column_top_k else ():
            for hit in lookup_columns(store, word, k=preset.column_top_k):
                key = (hit.table, hit.column)
                best[key] = max(best.get(key, -1.0), hit.score)
        columns = [(t, c, s) for (t, c), s in sorted(best.items(), key=lambda kv: -kv[1])]
    except QuorumSQLError as exc:
        note = f"retrieval unavailable ({exc}); linking relies on the draft SQL"
    event = TraceEvent(
        node="retrieve",
        message=f"{len(values)} column(s) hold matching values, {len(columns)} column(s) retrieved"
        + (f"; {note}" if note else ""),
        data={"values": [f"{t}.{c}: {v}" for t, c, v in values], "columns": [f"{t}.{c}" for t, c, _ in columns]},
        seconds=time.monotonic() - start,
    )
    return {"retrieval": {"values": values, "columns": columns, "notes": [note] if note else []}, "trace": [event]}


def link(state: InferenceState, runtime: Runtime[InferenceContext]) -> dict:
    """Draft SQL over the schema (retrieval-filtered above the budget) and link its columns."""
    start = time.monotonic()
    ctx = context_of(runtime)
    preset, res = ctx.preset, ctx.resources
    db = res.database(state["db"])
    schema = db.schema()
    retrieval = state.get("retrieval") or {}
    value_hits = {(t, c): v for t, c, v in retrieval.get("values", [])}
    ranked_columns = [(t, c) for t, c, _ in retrieval.get("columns", [])]
    keywords = state.get("keywords") or []
    named = tables_named(keywords, schema)
    notes = list(retrieval.get("notes", []))

    # 1. the schema the draft is written over: whole, or the retrieved tables within budget
    full = res.schema_text(state["db"], "mschema", value_examples=value_hits)
    budget = schema_budget(state, preset.prompt_budget)
    draft_selection = None
    if estimate_tokens(full) > budget:
        ranked = list(dict.fromkeys(named + [t for t, _ in value_hits] + [t for t, _ in ranked_columns]))
        if not ranked:
            ranked = [t.name for t in schema.tables]
        draft_selection = _fit_tables(res, state["db"], ranked, budget, value_hits)
        notes.append(
            f"the whole schema (~{estimate_tokens(full):,} tokens) is over the budget of "
            f"{preset.prompt_budget:,}: drafting over {len(draft_selection)} retrieved table(s)"
        )
        draft_text = res.schema_text(state["db"], "mschema", selection=draft_selection, value_examples=value_hits)
    else:
        draft_text = full

    # 2. the draft, parsed with sqlglot (one sampled retry when it does not parse)
    usage, draft_sql, refs, conversation = Usage(), None, None, []
    for attempt, temperature in enumerate((0.0, 0.7)):
        try:
            gen = generate_sql(ctx.models.get("generator"), state["question"], draft_text,
                               evidence=state.get("evidence"), dialect=db.dialect, temperature=temperature,
                               max_tokens=preset.max_tokens, seed=1000 + attempt if temperature else None)
        except ModelError as exc:
            notes.append(f"draft SQL failed: {exc}")
            break
        usage = usage + gen.usage
        parsed = referenced_columns(gen.sql, schema, db.dialect) if gen.sql else None
        if parsed is not None and parsed.tables:
            draft_sql, refs, conversation = gen.sql, parsed, gen.messages
            break
        notes.append("the draft SQL " + ("was missing" if not gen.sql else "did not parse or names no table")
                     + ("; retrying" if attempt == 0 else ""))

    # 3. the union, closed under foreign-key paths, plus similar / duplicate columns
    linked = link_sources(
        schema, keywords=keywords, values=retrieval.get("values", []), columns=retrieval.get("columns", []),
        draft=refs, related=related_columns(res, state["db"], similar=preset.link_similar),
        column_min_score=preset.column_min_score, notes=notes,
    )
    if draft_selection is not None and linked.sources and all(w == ["all"] for w in linked.sources.values()):
        linked = assemble_linked_schema(schema, column_hits=[(t, c.name) for t in draft_selection
                                                              for c in schema.table(t).columns], notes=linked.notes)
    linked = _trim_to_budget(res, state["db"], linked, budget)
    texts = _render(res, state, ctx, linked)

    update: dict = {"linked": linked, "schema_texts": texts}
    if preset.keep_draft and draft_sql is not None and draft_selection is None:
        update["candidates"] = [Candidate(id="draft", generator="draft/mschema", sql=draft_sql,
                                          usage=usage, conversation=conversation)]
    total = schema.column_count
    event = TraceEvent(
        node="link",
        message=f"{linked.column_count} of {total} columns in {len(linked.selection)} table(s)"
        + (f"; draft: {draft_sql}" if draft_sql else "") + "".join(f"; {n}" for n in linked.notes),
        data={"selection": linked.selection, "sources": linked.sources, "draft": draft_sql,
              "tokens": {fmt: estimate_tokens(t) for fmt, t in texts.items()}, "notes": linked.notes},
        seconds=time.monotonic() - start, usage=usage,
    )
    update["trace"] = [event]
    return update


def column_selection(state: InferenceState, runtime: Runtime[InferenceContext]) -> dict:
    """XiYan's column selector: the model keeps the linked columns the question needs."""
    start = time.monotonic()
    ctx = context_of(runtime)
    linked: LinkedSchema = state["linked"]
    text = ctx.resources.schema_text(state["db"], "mschema", selection=linked.selection, value_examples=linked.examples)
    try:
        chosen = select_columns(ctx.models.get("generator"), state["question"], text, linked.selection,
                                evidence=state.get("evidence"))
    except ModelError as exc:
        event = TraceEvent(node="select_columns", message=f"model error ({exc}): keeping the linked schema")
        return {"trace": [event]}
    if chosen.kept_all:
        event = TraceEvent(node="select_columns", message="no usable selection in the reply: keeping the linked schema",
                           seconds=time.monotonic() - start, usage=chosen.usage)
        return {"trace": [event]}
    schema = ctx.resources.database(state["db"]).schema()
    narrowed = assemble_linked_schema(
        schema, column_hits=[(t, c) for t, cols in chosen.selection.items() for c in cols],
        value_hits={k: v for k, v in linked.examples.items() if k[1] in chosen.selection.get(k[0], [])},
        notes=linked.notes,
    )
    narrowed = narrowed.model_copy(update={"sources": {k: ["selector"] for k in narrowed.sources}})
    texts = _render(ctx.resources, state, ctx, narrowed)
    event = TraceEvent(
        node="select_columns",
        message=f"kept {narrowed.column_count} of {linked.column_count} linked columns",
        data={"selection": narrowed.selection}, seconds=time.monotonic() - start, usage=chosen.usage,
    )
    return {"linked": narrowed, "schema_texts": texts, "trace": [event]}


def link_check(state: InferenceState, runtime: Runtime[InferenceContext]) -> dict:
    """Say which columns the refined candidates needed that linking had left out."""
    ctx = context_of(runtime)
    linked: LinkedSchema | None = state.get("linked")
    if linked is None:
        return {}
    db = ctx.resources.database(state["db"])
    schema = db.schema()
    missed: dict[str, list[str]] = {}
    for cand in state["candidates"]:
        if not cand.sql or cand.duplicate_of or cand.id == "draft":
            continue
        refs = referenced_columns(cand.sql, schema, db.dialect) or SqlReferences()
        outside = [f"{t}.{c}" for t, c in refs.columns if not linked.contains(t, c) and not _key_column(schema, t, c, linked)]
        outside += [t for t in refs.tables if not linked.contains(t)]
        for name in dict.fromkeys(outside):
            missed.setdefault(name, []).append(cand.id)
    if not missed:
        return {}
    message = "linking missed " + ", ".join(f"{n} (used by {', '.join(ids)})" for n, ids in missed.items())
    return {"trace": [TraceEvent(node="link_check", message=message, data={"missed": missed})]}


# -- helpers ------------------------------------------------------------------------------
def _key_column(schema, table: str, column: str, linked: LinkedSchema) -> bool:
    """True for a key column the renderers add anyway (primary key, or a join between kept tables)."""
    t = schema.table(table)
    if t is None or not linked.contains(t.name):
        return False
    col = t.column(column)
    if col is not None and col.primary_key:
        return True
    kept = {name.lower() for name in linked.selection}
    return any(
        (fk.table.lower() == t.name.lower() and fk.column.lower() == column.lower() and fk.ref_table.lower() in kept)
        or (fk.ref_table.lower() == t.name.lower() and fk.ref_column.lower() == column.lower() and fk.table.lower() in kept)
        for fk in schema.foreign_keys
    )


def related_columns(res, db, *, similar: bool) -> dict:
    """``{(table, column): [(kind, (table, column))]}``: duplicate pairs, and similar ones if asked.

    Pairs involving a primary-key column are left out, and each column keeps its three best
    partners: on a wide schema every table's ``id`` column holds 1..n and would link them all.
    """
    try:
        record = res.metadata(db).record
    except QuorumSQLError:
        return {}
    keys = {(t.name, c.name) for t in record.schema_.tables for c in t.columns if c.primary_key}
    related: dict = {}
    for pair in sorted([*record.duplicates, *(record.similar if similar else [])], key=lambda p: -p.score):
        if (pair.table, pair.column) in keys or (pair.other_table, pair.other_column) in keys:
            continue  # key columns share their values by construction (ids 1..n), not their meaning
        a, b = (pair.table, pair.column), (pair.other_table, pair.other_column)
        related.setdefault(a, []).append((pair.kind, b))
        related.setdefault(b, []).append((pair.kind, a))
    return {k: v[:3] for k, v in related.items()}


def schema_budget(state: InferenceState, prompt_budget: int) -> int:
    """Tokens the schema may take so that a generator prompt stays under ``prompt_budget``.

    The budget is for the whole prompt: the generator's instructions, the evidence and the
    question are subtracted, and 20% is kept back for the error of the token estimate (names
    full of digits, like ``order_0042_id``, take more tokens per character than Spider's).
    """
    from quorumsql.agents.generator import SYSTEM_PROMPT, USER_PROMPT

    rest = estimate_tokens(SYSTEM_PROMPT + USER_PROMPT + state["question"] + (state.get("evidence") or ""))
    return max(100, int(prompt_budget * 0.8) - rest)


def _fit_tables(res, db, ranked: list[str], budget: int, value_hits) -> dict[str, None]:
    """The longest prefix of ``ranked`` tables whose M-Schema fits ``budget`` (at least one table)."""
    chosen: dict[str, None] = {}
    for table in ranked:
        trial = {**chosen, table: None}
        if chosen and estimate_tokens(res.schema_text(db, "mschema", selection=trial, value_examples=value_hits)) > budget:
            break
        chosen = trial
    return chosen


def _trim_to_budget(res, db, linked: LinkedSchema, budget: int) -> LinkedSchema:
    """Drop the least-supported linked columns, then tables, until the M-Schema fits ``budget``."""
    def size(sel) -> int:
        return estimate_tokens(res.schema_text(db, "mschema", selection=sel, value_examples=linked.examples))

    selection = {t: list(c) for t, c in linked.selection.items()}
    if size(selection) <= budget:
        return linked

    def rank(name: str) -> int:
        return min(_KEEP_ORDER.index(w) if w in _KEEP_ORDER else len(_KEEP_ORDER) for w in linked.sources.get(name, ["all"]))

    order = sorted(((t, c) for t, cols in selection.items() for c in cols), key=lambda tc: -rank(f"{tc[0]}.{tc[1]}"))
    dropped = 0
    for table, column in order:
        if size(selection) <= budget or sum(len(v) for v in selection.values()) <= 1:
            break
        selection[table].remove(column)
        dropped += 1
        if not selection[table] and len(selection) > 1:
            del selection[table]
    notes = [*linked.notes, f"dropped {dropped} weakly linked column(s) to fit {budget:,} schema tokens"]
    return linked.model_copy(update={"selection": selection, "notes": notes})


def _render(res, state: InferenceState, ctx: InferenceContext, linked: LinkedSchema) -> dict[str, str]:
    formats = dict.fromkeys(spec.schema_format for spec in ctx.preset.candidate_plan())
    return {
        fmt: res.schema_text(state["db"], fmt, question=state["question"], selection=linked.selection,
                             value_examples=linked.examples)
        for fmt in formats
    }
