"""The ICL generator node: few-shot examples chosen by question skeleton, then one candidate.

Adapts :mod:`quorumsql.agents.own_examples` (the asked database's example memory, served
first), :mod:`quorumsql.agents.icl_pool` (the cross-database pool, the fallback),
:mod:`quorumsql.agents.skeleton` (masking the question through the asked database's value index)
and :mod:`quorumsql.agents.icl_generator` (the prompt) to a generation branch. It never fails a
candidate for want of examples: with an empty or unreadable memory and no pool, an unreadable or
empty one, or no example similar enough, the candidate is written with the zero-shot prompt,
labelled ``zero-shot/<format>``, and the trace says ``icl (0 examples: zero-shot prompt)`` and
why. The trace event lists the examples shown (memory pairs by id and provenance).
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable
from typing import Any

from langgraph.runtime import Runtime

from quorumsql.agents.icl_generator import IclExample
from quorumsql.agents.icl_generator import generate_icl as icl_sql
from quorumsql.agents.icl_pool import load_pool
from quorumsql.agents.linker import tables_named
from quorumsql.agents.own_examples import nearest_pairs
from quorumsql.agents.skeleton import Skeleton, question_skeleton
from quorumsql.errors import QuorumSQLError
from quorumsql.graph.context import InferenceContext, context_of
from quorumsql.graph.nodes import run_generator
from quorumsql.graph.state import GenerateTask


def question_tables(task: GenerateTask, ctx: InferenceContext, skeleton: Skeleton) -> tuple[list[str], str]:
    """The tables the question involves, and how they were found.

    The linked schema's tables when linking ran (XiYan-SQL counts the tables schema linking
    selected); otherwise an estimate: tables the question names (:func:`~quorumsql.agents.linker.tables_named`
    over its n-grams) plus the tables holding the values its skeleton masked. On the 485 Spider
    dev questions the estimate says "two or more" for 191, of which 165 (86%) have a gold query
    over several tables.

    Returns:
        ``(tables, source)`` with source ``linked``, ``estimated`` or ``values``.
    """
    linked = task.get("linked")
    if linked is not None and linked.selection:
        return list(linked.selection), "linked"
    from quorumsql.metadata.retrieval import question_ngrams

    try:
        schema = ctx.resources.database(task["db"]).schema()
    except (QuorumSQLError, KeyError):
        return skeleton.tables, "values"
    named = tables_named(question_ngrams(task["question"]), schema)
    seen: dict[str, str] = {}
    for t in [*named, *skeleton.tables]:
        seen.setdefault(t.lower(), t)
    return list(seen.values()), "estimated"


def _skeleton(task: GenerateTask, ctx: InferenceContext, notes: list[str]) -> Skeleton:
    """The question's skeleton over the asked database's value index (type tokens only without it)."""
    store = None
    try:
        store = ctx.resources.metadata(task["db"])
    except (QuorumSQLError, KeyError) as exc:
        notes.append(f"no value index ({exc}): only dates, numbers and quoted text masked")
    try:
        return question_skeleton(task["question"], store)
    except QuorumSQLError as exc:
        notes.append(f"value index unreadable ({exc}): only dates, numbers and quoted text masked")
        return question_skeleton(task["question"], None)


def memory_examples(task: GenerateTask, ctx: InferenceContext, info: dict[str, Any],
                    skeleton: Callable[[], Skeleton]) -> list[IclExample]:
    """Examples from the asked database's own memory (XiYan-SQL section 5.2 skeleton similarity).

    Records in ``info`` how many servable pairs the memory holds (``memory_pairs``), the pairs
    shown (``examples`` entries with ``source: memory``, their ``id``, ``provenance``,
    ``question`` and ``similarity``) and notes: repairs of a damaged memory file, pairs a schema
    change broke, or why the memory could not be read. Never raises.
    """
    notes: list[str] = info["notes"]
    preset = ctx.preset
    try:
        database = ctx.resources.database(task["db"])
        memory = ctx.memories.memory_for(database)
        notes.extend(memory.take_notes())
        info["memory_pairs"] = memory.count()
        if not info["memory_pairs"]:
            return []  # the usual case of a database nobody taught: no note, the pool follows
        sk = skeleton()
        found = nearest_pairs(memory, sk.text, k=preset.memory_examples)
    except Exception as exc:  # a damaged memory or a failed embedding must not fail the candidate
        notes.append(f"the example memory cannot be used: {type(exc).__name__}: {exc}")
        with contextlib.suppress(Exception):
            ctx.memories.forget(ctx.resources.database(task["db"]))  # opened and checked again next time
        return []
    info["examples"] = [{"source": "memory", "id": s.pair.id, "provenance": s.pair.provenance,
                         "db_id": database.db_id, "question": s.pair.question, "similarity": s.similarity}
                        for s in found]
    if len(found) < preset.memory_examples:
        notes.append(f"{len(found)} of {preset.memory_examples} examples from the memory of {database.db_id}")
    return [IclExample(question=s.pair.question, sql=s.pair.sql, evidence=s.pair.evidence, same_database=True)
            for s in found]


def pool_examples(task: GenerateTask, ctx: InferenceContext, info: dict[str, Any],
                  skeleton: Callable[[], Skeleton]) -> list[IclExample]:
    """Examples of other databases from the preset's ``icl_pool``; records them and notes in ``info``."""
    preset = ctx.preset
    notes: list[str] = info["notes"]
    if not preset.icl_pool:
        notes.append("no example pool (the preset's icl_pool is not set)")
        return []
    try:
        pool = load_pool(preset.icl_pool, cache_dir=ctx.settings.cache_dir, database_root=preset.icl_database_root)
    except QuorumSQLError as exc:
        notes.append(str(exc))
        return []
    except Exception as exc:  # a broken index directory (chromadb's own errors) must not fail the candidate
        notes.append(f"the example pool {preset.icl_pool} cannot be indexed: {type(exc).__name__}: {exc}")
        return []
    if pool.skipped:
        notes.append(f"{pool.skipped} malformed pool line(s) skipped ({'; '.join(pool.problems[:3])})")
    if not len(pool):
        notes.append(f"the example pool {preset.icl_pool} has no usable example")
        return []
    sk = skeleton()
    tables, source = question_tables(task, ctx, sk)
    multi = len(tables) >= 2
    info.update(tables=tables, tables_from=source, multi_table=multi)
    try:
        found = pool.nearest(sk.text, exclude_db=task.get("db_id") or None, k=preset.icl_examples,
                             min_similarity=preset.icl_min_similarity, multi_table=multi)
    except Exception as exc:  # the embedding model or the index failed: fall back, say why
        notes.append(f"example search failed: {type(exc).__name__}: {exc}")
        return []
    if not found.examples:
        if found.best is None:
            notes.append("the pool has no example of another database")
        else:
            notes.append(f"no example reaches similarity {preset.icl_min_similarity:g} (best {found.best:.2f})")
        return []
    fmt = "ddl" if task["spec"].schema_format == "ddl" else "mschema"
    examples = [
        IclExample(question=s.example.question, sql=s.example.sql, schema=pool.minimal_schema(s.example, fmt),
                   evidence=s.example.evidence)
        for s in found.examples
    ]
    info["examples"] = [{"source": "pool", "db_id": s.example.db_id, "question": s.example.question,
                         "similarity": s.similarity, "multi_table": s.example.multi_table} for s in found.examples]
    if len(examples) < preset.icl_examples:
        notes.append(f"{len(examples)} of {preset.icl_examples} examples reach similarity {preset.icl_min_similarity:g}")
    return examples


def choose_examples(task: GenerateTask, ctx: InferenceContext) -> tuple[list[IclExample], dict[str, Any]]:
    """Pick the examples of one ``icl`` candidate: the asked database's own pairs first.

    With ``preset.memory`` on and pairs in the asked database's example memory, the most similar
    of them (:func:`memory_examples`); otherwise examples of other databases from the pool
    (:func:`pool_examples`), the fallback.

    Returns:
        ``(examples, info)``: the examples to show (possibly none) and what the trace records:
        ``source`` (``memory``, ``pool`` or None), ``memory_pairs`` (servable pairs of the asked
        database; None when the memory is off or unreadable), ``skeleton``, ``tables`` and their
        ``tables_from``, ``multi_table`` (pool search only), ``examples`` (``[{"source",
        "db_id", "question", "similarity", ...}]``, memory pairs with their ``id`` and
        ``provenance``) and ``notes`` (why fewer or none). Never raises: every failure becomes
        a note.
    """
    info: dict[str, Any] = {"source": None, "skeleton": None, "tables": [], "tables_from": None,
                            "multi_table": False, "memory_pairs": None, "examples": [], "notes": []}
    cached: list[Skeleton] = []

    def skeleton() -> Skeleton:
        if not cached:
            cached.append(_skeleton(task, ctx, info["notes"]))
            info["skeleton"] = cached[0].text
        return cached[0]

    if ctx.preset.memory:
        examples = memory_examples(task, ctx, info, skeleton)
        if examples:
            info["source"] = "memory"
            return examples, info
    else:
        info["notes"].append("the preset does not use the example memory")
    examples = pool_examples(task, ctx, info, skeleton)
    if examples:
        info["source"] = "pool"
    return examples, info


def generate_icl(task: GenerateTask, runtime: Runtime[InferenceContext]) -> dict:
    """ICL generator (XiYan-SQL section 5.2): one candidate from a prompt with few-shot examples.

    The candidate is labelled ``icl/<format>`` when examples were in its prompt and
    ``zero-shot/<format>`` when none were (its prompt was then the zero-shot one); the trace
    event (node ``generate_icl``) records the skeleton, the examples and their similarities,
    and the notes.
    """
    start = time.monotonic()
    ctx = context_of(runtime)
    spec = task["spec"]
    examples, info = choose_examples(task, ctx)
    label = spec.label if examples else f"zero-shot/{spec.schema_format}"
    update = run_generator(task, runtime, write=functools.partial(icl_sql, examples=examples),
                           node="generate_icl", label=label)
    event = update["trace"][0]
    if examples and info["source"] == "memory":
        ids = ", ".join(f"#{e['id']}" for e in info["examples"])
        summary = (f"icl ({len(examples)} example(s) from the memory of {info['examples'][0]['db_id']}: {ids}; "
                   f"skeleton: {info['skeleton']})")
    elif examples:
        dbs = ", ".join(dict.fromkeys(e["db_id"] for e in info["examples"]))
        summary = f"icl ({len(examples)} example(s) from {dbs}; skeleton: {info['skeleton']})"
    else:
        summary = "icl (0 examples: zero-shot prompt)"
    if info["notes"]:
        summary += ": " + "; ".join(info["notes"])
    update["trace"] = [event.model_copy(update={
        "message": f"{event.message} [{summary}]",
        "data": {**event.data, "prompt": "icl" if examples else "zero-shot", **info},
        "seconds": time.monotonic() - start,
    })]
    return update
