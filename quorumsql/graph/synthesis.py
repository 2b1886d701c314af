"""The synthesis graph: one seed in, its synthesized (question, SQL) records out.

::

    seed -> execute -> [variation -> execute] -> questions -> judge -> cot -> difficulty -> record
            (each step goes straight to ``record`` once every draft of the seed is dropped)

* ``seed``: open the database, render its M-Schema and make the seed's first drafts: the seed
  SQL or pair as it is, SQL written over the schema at a complexity level, or questions
  written first and answered by the inference graph (:data:`quorumsql.graph.inference.inference`).
* ``execute``: the read-only execution filter (:mod:`quorumsql.synthesis.filters`) on every
  draft not yet executed; ``variation`` (DataFlow's SQL variation) runs once, on the drafts that
  passed, and its variants come back through ``execute``.
* ``questions``: several candidate questions per SQL in different styles; the one nearest the
  candidates' embedding centroid is kept (DataFlow's question generator; SQLord's reverse path).
* ``judge``: the consistency judge scores question vs SQL vs schema; under the threshold a draft
  is dropped with the judge's reason.
* ``cot``: a chain of thought ending in the SQL; kept only when its final SQL is the record's
  (same normalized text or same result).
* ``difficulty``: component difficulty from the SQL's tree, and execution difficulty plus the
  generators' agreement from N zero-shot generator runs on the question (DataFlow).
* ``record``: the drafts, kept or dropped, become the seed's :class:`SynthRecord` list.

Each node adapts agents from :mod:`quorumsql.agents` and knows nothing of files. A model
endpoint failure (:class:`~quorumsql.errors.ModelError`) ends the seed's run with that error,
so the caller can retry the seed later; anything wrong with one draft (bad SQL, a reply in the
wrong format, no question) drops that draft with its reason and the others go on.

Near-duplicate removal, clustering and active selection need every record of a run, so they are
not nodes: :func:`quorumsql.synthesis.batch.finalize` runs them once a run's seeds are done.
``synthesis`` is the compiled graph (LangGraph Studio lists it from ``langgraph.json``); its
input is a seed's fields (``kind``, ``db``, ``sql``, ``question``, ...), its runtime context a
:class:`SynthesisContext`.
"""

from __future__ import annotations

import datetime as _dt
import functools
import operator
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from pydantic import ValidationError

from quorumsql.agents import cot_writer, difficulty, generator, judge, question_writer, sql_synthesizer
from quorumsql.agents.sql_text import normalize_sql, result_key
from quorumsql.errors import InputError, QuorumSQLError
from quorumsql.graph.context import InferenceContext
from quorumsql.llm import Usage
from quorumsql.records import TraceEvent
from quorumsql.synthesis.filters import execution_filter
from quorumsql.synthesis.records import QuestionCandidate, SynthOptions, SynthRecord
from quorumsql.synthesis.seeds import Seed


@dataclass
class SynthesisContext(InferenceContext):
    """What the synthesis graph's nodes need besides the state.

    An :class:`~quorumsql.graph.context.InferenceContext` (settings, preset, chat models per
    role, open databases) plus the synthesis options and the sentence embedder. The preset is
    the one the inference graph answers questions-first seeds with; its ``max_tokens`` bounds
    the execution-difficulty runs.

    Attributes:
        options: how much work per seed (:class:`~quorumsql.synthesis.records.SynthOptions`).
        embedder: ``embed(list[str]) -> ndarray``; None: the offline MiniLM on first use.
    """

    options: SynthOptions = field(default_factory=SynthOptions)
    embedder: Any = None

    def get_embedder(self) -> Any:
        """The embedder, loading the default MiniLM on first use.

        Raises:
            ModelError: the embedding model cannot be loaded.
        """
        if self.embedder is None:
            from quorumsql.llm.embeddings import default_embedder

            self.embedder = default_embedder()
        return self.embedder


@functools.cache
def default_synthesis_context() -> SynthesisContext:
    """The context of runs that bring none (Studio): built from the settings, once per process."""
    return SynthesisContext()


def synthesis_context_of(runtime: Runtime[SynthesisContext]) -> SynthesisContext:
    """The run's :class:`SynthesisContext`; an inference context is widened, none gives the default."""
    ctx = runtime.context
    if isinstance(ctx, SynthesisContext):
        return ctx
    if isinstance(ctx, InferenceContext):
        return SynthesisContext(settings=ctx.settings, preset=ctx.preset, models=ctx.models, resources=ctx.resources)
    return default_synthesis_context()


# ------------------------------------------------------------------------------------ state
class SynthesisInput(TypedDict, total=False):
    """One seed (the fields of :class:`~quorumsql.synthesis.seeds.Seed`) and the session token.

    Keys:
        id: seed id (default ``studio``); kind: ``sql`` (default), ``schema``, ``questions``, ``pair``.
        db: SQLite path or database URL; db_id: its name as the seed gives it; db_error: why
            the seed's database was not found (the seed is then dropped at once).
        source, line: where the seed came from.
        sql, question, evidence: the seed's SQL and question (``sql`` / ``pair`` seeds).
        complexity: the level to write SQL at (``schema`` seeds).
        attempt: the session token written on the records (default: a new random one).
    """

    id: str
    kind: str
    db: str
    db_id: str
    db_error: str | None
    source: str | None
    line: int | None
    sql: str | None
    question: str | None
    evidence: str
    complexity: str | None
    attempt: str


class SynthesisOutput(TypedDict, total=False):
    """What the graph returns: the seed's records, kept and dropped, and the trace."""

    records: list[SynthRecord]
    trace: list[TraceEvent]


class SynthesisState(SynthesisInput, SynthesisOutput, total=False):
    """Full state.

    Keys (besides input and output):
        dialect: sqlglot dialect of the database.
        schema_text: its M-Schema, the schema every prompt shows.
        drafts: the seed's drafts so far (kept and dropped), replaced by each node.
        varied: the variation step has run.
    """

    dialect: str
    schema_text: str
    drafts: list[SynthRecord]
    varied: bool
    trace: Annotated[list[TraceEvent], operator.add]


# ------------------------------------------------------------------------------------ helpers
def _copies(state: SynthesisState) -> list[SynthRecord]:
    """Deep copies of the drafts: a node never changes the objects of an earlier step's state."""
    return [d.model_copy(deep=True) for d in state.get("drafts", [])]


def _alive(drafts: list[SynthRecord]) -> list[SynthRecord]:
    return [d for d in drafts if d.kept]


def _event(node: str, message: str, start: float, usage: Usage | None = None, **data: Any) -> TraceEvent:
    return TraceEvent(node=node, message=message, data=data, seconds=time.monotonic() - start, usage=usage or Usage())


def _charge(draft: SynthRecord, usage: Usage, started: float) -> None:
    """Add a step's model cost and wall-clock time to a draft."""
    draft.usage = draft.usage + usage
    draft.seconds += time.monotonic() - started


def _database(state: SynthesisState, runtime: Runtime[SynthesisContext]):
    return synthesis_context_of(runtime).resources.database(state["db"])


def _seed_of(state: SynthesisState) -> Seed:
    """The seed in the graph's input.

    Raises:
        InputError: a field has the wrong type or ``kind`` is not a seed kind.
    """
    fields = {k: state[k] for k in Seed.model_fields if k in state and state[k] is not None}
    fields.setdefault("id", "studio")
    fields.setdefault("kind", "sql")
    try:
        return Seed.model_validate(fields)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise InputError(f"not a synthesis seed ({problems})") from None


# ------------------------------------------------------------------------------------ nodes
def seed(state: SynthesisState, runtime: Runtime[SynthesisContext]) -> dict:
    """Open the database, render its M-Schema and make the seed's first drafts.

    ``sql`` / ``pair`` seeds give one draft (a pair's question comes with it); ``schema`` seeds
    ask the SQL synthesizer for ``options.per_seed`` queries at the seed's complexity;
    ``questions`` seeds ask for ``options.per_seed`` questions and answer each with the
    inference graph under the context's preset. A seed without a usable database, or whose model
    wrote nothing usable, gives one dropped draft that says why.
    """
    start = time.monotonic()
    ctx = synthesis_context_of(runtime)
    opts = ctx.options
    s = _seed_of(state)
    base = SynthRecord(
        id=f"{s.id}#0", seed_id=s.id, seed_kind=s.kind, seed_source=s.source, seed_line=s.line,
        seed_sql=s.sql if s.kind in ("sql", "pair") else None, seed_question=s.question,
        complexity=s.complexity, db_id=s.db_id, db=s.db, evidence=s.evidence or "",
    )

    def only(draft: SynthRecord, message: str, **extra: Any) -> dict:
        draft.seconds += time.monotonic() - start
        return {"drafts": [draft], "varied": False, **extra,
                "trace": [_event("seed", f"{s.id}: {message}", start)]}

    if s.db_error or not s.db:
        base.drop("database", s.db_error or "no database given")
        return only(base, base.drop_reason or "")
    try:
        database = ctx.resources.database(s.db)
        schema_text = ctx.resources.schema_text(s.db, "mschema")
    except (QuorumSQLError, OSError) as exc:
        base.drop("database", f"cannot open {s.db}: {exc}")
        return only(base, base.drop_reason or "")
    base.dialect = database.dialect
    base.db_id = s.db_id or database.db_id
    found = {"dialect": database.dialect, "schema_text": schema_text}

    if s.kind in ("sql", "pair"):
        base.sql = s.sql
        if s.kind == "pair":
            base.question = s.question
            base.passed("question")
        return only(base, f"{s.kind} seed on {base.db_id}", **found)

    llm = ctx.models.get("generator")
    usage = Usage()
    drafts: list[SynthRecord] = []
    if s.kind == "schema":
        try:
            sqls, usage = sql_synthesizer.synthesize_sql(
                llm, schema_text, complexity=s.complexity or "moderate", n=opts.per_seed,
                dialect=database.dialect, seed=opts.seed,
            )
        except InputError as exc:
            base.drop("no_sql", str(exc))
            return only(base, base.drop_reason or "", **found)
        for sql in sqls:
            drafts.append(base.model_copy(update={"id": f"{s.id}#{len(drafts)}", "sql": sql, "origin": "synthesized"},
                                          deep=True))
        if not drafts:
            base.drop("no_sql", f"the SQL synthesizer wrote no SQL in {opts.per_seed} call(s)")
    elif s.kind == "questions":
        questions, usage = sql_synthesizer.questions_first(llm, schema_text, n=opts.per_seed)
        for q in questions:
            answer = _answer(q, s.db, ctx)
            usage = usage + answer["usage"]
            d = base.model_copy(update={"id": f"{s.id}#{len(drafts)}", "question": q, "seed_question": q,
                                        "origin": "answered", "sql": answer["sql"]}, deep=True)
            d.passed("question")
            if answer["sql"] is None:
                d.drop("no_sql", f"the inference graph found no SQL for the question: {answer['error']}")
            drafts.append(d)
        if not drafts:
            base.drop("no_sql", "the question writer wrote no question from the schema")
    else:  # pragma: no cover - Seed validates the kind
        raise InputError(f"unknown seed kind {s.kind!r}")
    if not drafts:
        base.usage = usage
        return only(base, base.drop_reason or "", **found)
    drafts[0].usage = usage
    drafts[0].seconds = time.monotonic() - start
    event = _event("seed", f"{s.id}: {len(drafts)} draft(s) on {base.db_id}", start, usage,
                   sql=[d.sql for d in drafts])
    return {"drafts": drafts, "varied": False, "trace": [event], **found}


def _answer(question: str, db: str, ctx: SynthesisContext) -> dict:
    """The inference graph's answer to a written question: ``{"sql", "error", "usage"}``."""
    from quorumsql.graph.inference import inference

    out = inference.invoke({"question": question, "db": db}, context=ctx)
    usage = Usage()
    for event in out.get("trace", []):
        usage = usage + event.usage
    return {"sql": out.get("sql"), "error": out.get("error"), "usage": usage}


def execute(state: SynthesisState, runtime: Runtime[SynthesisContext]) -> dict:
    """The execution filter on every draft not yet executed (seeds first, then variants)."""
    start = time.monotonic()
    ctx = synthesis_context_of(runtime)
    opts = ctx.options
    drafts = _copies(state)
    database = _database(state, runtime)
    checked = dropped = 0
    for d in _alive(drafts):
        if "execution" in d.filters:
            continue
        began = time.monotonic()
        check = execution_filter(database, d.sql, timeout=opts.query_timeout, max_rows=opts.max_rows,
                                 keep_empty=opts.keep_empty)
        checked += 1
        for name in check.passed:
            d.passed(name)
        d.columns, d.row_count, d.preview = check.columns, check.row_count, check.preview
        d.result_key = check.result_key
        if not check.ok:
            d.drop(check.stage or "error", check.reason or "failed")
            dropped += 1
        _charge(d, Usage(), began)
    return {"drafts": drafts,
            "trace": [_event("execute", f"{checked} executed, {dropped} dropped", start,
                             dropped={d.id: d.dropped_by for d in drafts if not d.kept})]}


def variation(state: SynthesisState, runtime: Runtime[SynthesisContext]) -> dict:
    """SQL variants of each executed seed or synthesized draft (DataFlow's SQL variation).

    Variants repeating their parent or a sibling (same normalized SQL) are not kept. They go
    back through ``execute`` and then get questions of their own.
    """
    start = time.monotonic()
    ctx = synthesis_context_of(runtime)
    opts = ctx.options
    drafts = _copies(state)
    llm = ctx.models.get("generator")
    dialect = state.get("dialect", "sqlite")
    seen = {normalize_sql(d.sql, dialect) for d in drafts if d.sql}
    total = Usage()
    made: list[SynthRecord] = []
    for d in _alive(drafts):
        if d.origin not in ("seed", "synthesized"):
            continue
        began = time.monotonic()
        try:
            variants, usage = sql_synthesizer.vary_sql(llm, d.sql or "", state["schema_text"], n=opts.variants,
                                                       dialect=dialect, seed=opts.seed)
        except InputError:
            variants, usage = [], Usage()
        total = total + usage
        for sql in variants:
            key = normalize_sql(sql, dialect)
            if key in seen:
                continue
            seen.add(key)
            child = SynthRecord(
                id=f"{d.seed_id}#{len(drafts) + len(made)}", seed_id=d.seed_id, seed_kind=d.seed_kind,
                seed_source=d.seed_source, seed_line=d.seed_line, seed_sql=d.seed_sql,
                seed_question=d.seed_question, origin="variant", parent=d.id, complexity=d.complexity,
                db_id=d.db_id, db=d.db, dialect=d.dialect, sql=sql,
            )
            made.append(child)
        _charge(d, usage, began)
    return {"drafts": drafts + made, "varied": True,
            "trace": [_event("variation", f"{len(made)} variant(s)", start, total, sql=[m.sql for m in made])]}


def questions(state: SynthesisState, runtime: Runtime[SynthesisContext]) -> dict:
    """Candidate questions per SQL in several styles; keep the one nearest their centroid."""
    start = time.monotonic()
    ctx = synthesis_context_of(runtime)
    opts = ctx.options
    drafts = _copies(state)
    llm = ctx.models.get("generator")
    total = Usage()
    for d in _alive(drafts):
        if d.question:
            continue
        began = time.monotonic()
        try:
            written, usage = question_writer.write_questions(
                llm, d.sql or "", state["schema_text"], styles=opts.styles, n=opts.questions,
                dialect=d.dialect, columns=d.columns, preview=d.preview, seed=opts.seed,
            )
        except InputError as exc:
            written, usage = [], Usage()
            d.drop("no_question", f"question writer refused: {exc}")
        total = total + usage
        usable = [w for w in written if w.question.strip()]
        if d.kept and not usable:
            d.drop("no_question", f"no usable question in {opts.questions} repl(ies) of the question writer")
        if usable:
            d.question_candidates = [QuestionCandidate(question=w.question, evidence=w.evidence, style=w.style)
                                     for w in usable]
        if d.kept:
            best = question_writer.closest_to_centroid([w.question for w in usable], ctx.get_embedder())
            d.question, d.evidence, d.style = usable[best].question, usable[best].evidence, usable[best].style
            d.passed("question")
        _charge(d, usage, began)
    return {"drafts": drafts,
            "trace": [_event("questions", f"{sum(1 for d in drafts if d.kept)} draft(s) with a question", start,
                             total, questions={d.id: d.question for d in drafts if d.kept})]}


def judge_node(state: SynthesisState, runtime: Runtime[SynthesisContext]) -> dict:
    """Consistency judge (question vs SQL vs schema); a score under the threshold drops the draft."""
    start = time.monotonic()
    ctx = synthesis_context_of(runtime)
    threshold = ctx.options.judge_threshold
    drafts = _copies(state)
    llm = ctx.models.get("judge")
    total = Usage()
    for d in _alive(drafts):
        began = time.monotonic()
        verdict = judge.judge_consistency(
            llm, d.question or "", d.sql or "", state["schema_text"], evidence=d.evidence,
            columns=d.columns, preview=d.preview, dialect=d.dialect, threshold=threshold,
        )
        total = total + verdict.usage
        d.judge_score, d.judge_reason = round(float(verdict.score), 4), verdict.reason
        if verdict.score < threshold:
            d.drop("judge", f"judge score {verdict.score:.2f} < {threshold:g}: {verdict.reason}")
        else:
            d.passed("judge")
        _charge(d, verdict.usage, began)
    return {"drafts": drafts,
            "trace": [_event("judge", ", ".join(f"{d.id}: {d.judge_score}" for d in drafts if d.judge_score is not None)
                             or "nothing judged", start, total)]}


def cot(state: SynthesisState, runtime: Runtime[SynthesisContext]) -> dict:
    """A chain of thought per draft, kept when it ends in the draft's SQL (same text or result).

    A chain of thought that ends in other SQL, or in none, is left out (``cot_note`` says why);
    the pair itself is kept.
    """
    start = time.monotonic()
    ctx = synthesis_context_of(runtime)
    drafts = _copies(state)
    llm = ctx.models.get("generator")
    database = _database(state, runtime)
    total = Usage()
    for d in _alive(drafts):
        began = time.monotonic()
        try:
            thought = cot_writer.write_cot(llm, d.question or "", d.sql or "", state["schema_text"],
                                           evidence=d.evidence, dialect=d.dialect)
        except InputError as exc:
            d.cot_note = f"no chain of thought: {exc}"
            _charge(d, Usage(), began)
            continue
        total = total + thought.usage
        if thought.sql is None:
            d.cot_note = "the chain of thought did not end in a SQL block"
        elif normalize_sql(thought.sql, d.dialect) == normalize_sql(d.sql, d.dialect) or _same_result(
                database, thought.sql, d, ctx.options):
            d.cot, d.cot_note = thought.text, None
            d.passed("cot")
        else:
            d.cot_note = f"the chain of thought ends in other SQL: {thought.sql[:200]}"
        _charge(d, thought.usage, began)
    return {"drafts": drafts,
            "trace": [_event("cot", f"{sum(1 for d in drafts if d.cot)} chain(s) of thought kept", start, total)]}


def _same_result(database, sql: str, draft: SynthRecord, opts: SynthOptions) -> bool:
    check = execution_filter(database, sql, timeout=opts.query_timeout, max_rows=opts.max_rows, keep_empty=True)
    return check.ok and check.result_key == draft.result_key


def difficulty_node(state: SynthesisState, runtime: Runtime[SynthesisContext]) -> dict:
    """Component difficulty from the SQL's tree; execution difficulty and agreement from N generator runs.

    Run ``i`` of ``options.exec_runs`` asks the inference zero-shot generator
    (:func:`quorumsql.agents.generator.generate_sql`) for the draft's question, greedily for
    ``i == 0`` and sampled (``options.exec_temperature``, seed ``options.seed + i``) after that;
    a run succeeds when its SQL executes to the draft's result (:func:`result_key`). The share
    of successes is the agreement; the count grades execution difficulty (DataFlow).
    """
    start = time.monotonic()
    ctx = synthesis_context_of(runtime)
    opts = ctx.options
    drafts = _copies(state)
    llm = ctx.models.get("generator")
    database = _database(state, runtime)
    total = Usage()
    for d in _alive(drafts):
        began = time.monotonic()
        try:
            d.component_difficulty = difficulty.component_difficulty(d.sql or "", d.dialect)
        except InputError:
            d.component_difficulty = None
        usage = Usage()
        if opts.exec_runs:
            successes = 0
            for i in range(opts.exec_runs):
                gen = generator.generate_sql(
                    llm, d.question or "", state["schema_text"], evidence=d.evidence or None, dialect=d.dialect,
                    temperature=0.0 if i == 0 else opts.exec_temperature, max_tokens=ctx.preset.max_tokens,
                    seed=None if i == 0 else opts.seed + i,
                )
                usage = usage + gen.usage
                if gen.sql:
                    res = database.try_execute(gen.sql, timeout=opts.query_timeout, max_rows=opts.max_rows)
                    successes += int(res.ok and result_key(res.rows) == d.result_key)
            d.exec_successes, d.exec_attempts = successes, opts.exec_runs
            d.agreement = round(successes / opts.exec_runs, 4)
            d.execution_difficulty = difficulty.execution_difficulty(successes, opts.exec_runs)
        d.passed("difficulty")
        total = total + usage
        _charge(d, usage, began)
    return {"drafts": drafts,
            "trace": [_event("difficulty", ", ".join(
                f"{d.id}: {d.component_difficulty}/{d.execution_difficulty}" for d in drafts if d.kept) or "none",
                start, total)]}


def record(state: SynthesisState) -> dict:
    """The drafts become the seed's records: session token, record count and time stamp set."""
    drafts = _copies(state)
    attempt = state.get("attempt") or uuid.uuid4().hex[:12]
    now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    for d in drafts:
        d.attempt, d.seed_records, d.created_at = attempt, len(drafts), now
        d.seconds = round(d.seconds, 3)
    kept = sum(1 for d in drafts if d.kept)
    return {"records": drafts,
            "trace": [TraceEvent(node="record", message=f"{kept} kept, {len(drafts) - kept} dropped",
                                 data={"dropped": {d.id: d.drop_reason for d in drafts if not d.kept}})]}


# ------------------------------------------------------------------------------------ routing
def _then(next_node: str) -> Callable[[SynthesisState], str]:
    """A route to ``next_node`` while some draft is alive, else straight to ``record``."""

    def route(state: SynthesisState) -> str:
        return next_node if _alive(state.get("drafts", [])) else "record"

    route.__name__ = route.__qualname__ = f"to_{next_node}"
    return route


def after_execute(state: SynthesisState, runtime: Runtime[SynthesisContext]) -> str:
    """Variation once (when asked for and a draft can be varied), then questions, or ``record``."""
    alive = _alive(state.get("drafts", []))
    if not alive:
        return "record"
    if (synthesis_context_of(runtime).options.variants and not state.get("varied")
            and any(d.origin in ("seed", "synthesized") for d in alive)):
        return "variation"
    return "questions"


def build_synthesis_graph():
    """Compile the synthesis graph (see the module docstring).

    Returns:
        A compiled LangGraph graph: input :class:`SynthesisInput`, output
        :class:`SynthesisOutput`, context :class:`SynthesisContext` (optional: runs without one
        use :func:`default_synthesis_context`).
    """
    g = StateGraph(SynthesisState, context_schema=SynthesisContext, input_schema=SynthesisInput,
                   output_schema=SynthesisOutput)
    g.add_node("seed", seed)
    g.add_node("execute", execute)
    g.add_node("variation", variation)
    g.add_node("questions", questions)
    g.add_node("judge", judge_node)
    g.add_node("cot", cot)
    g.add_node("difficulty", difficulty_node)
    g.add_node("record", record)
    g.add_edge(START, "seed")
    g.add_conditional_edges("seed", _then("execute"), ["execute", "record"])
    g.add_conditional_edges("execute", after_execute, ["variation", "questions", "record"])
    g.add_edge("variation", "execute")
    g.add_conditional_edges("questions", _then("judge"), ["judge", "record"])
    g.add_conditional_edges("judge", _then("cot"), ["cot", "record"])
    g.add_edge("cot", "difficulty")
    g.add_edge("difficulty", "record")
    g.add_edge("record", END)
    return g.compile(name="quorumsql-synthesis")


synthesis = build_synthesis_graph()
