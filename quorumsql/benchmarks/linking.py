"""The schema-linking benchmark: ``quorumsql bench --task linking``.

For every question, the linking stages of the inference graph run on their own
(:func:`quorumsql.graph.inference.build_linking_graph`) and the linked schema is compared with
the columns the gold SQL references (resolved with sqlglot, as the linker resolves a draft):

* column recall: gold columns present in the schema the generator sees, over gold columns;
* column precision: gold columns present, over columns the generator sees;
* table recall: gold tables present, over gold tables;
* linked vs total columns, and the estimated prompt tokens of the generator call over the
  linked schema against the whole schema;
* LLM calls, tokens and seconds spent linking.

"Columns the generator sees" are the rendered columns: the linked ones plus the primary keys and
join columns the renderers always keep (:func:`quorumsql.schema_repr.normalize_selection`), so
precision is measured on what is really in the prompt. XiYan-SQL (paper 003, section 7.6.2)
reports recall and precision the same way, per question, averaged.

Results are appended to ``OUT/<preset>/linking.jsonl`` one question at a time (fsync'ed, so
``--resume`` continues a killed run) and summarised per preset.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from quorumsql.agents.generator import build_messages
from quorumsql.agents.linker import referenced_columns
from quorumsql.benchmarks.datasets import Example
from quorumsql.errors import QuorumSQLError
from quorumsql.llm.usage import estimate_tokens

RESULTS = "linking.jsonl"


def _columns_seen(schema, selection) -> set[tuple[str, str]]:
    from quorumsql.schema_repr import normalize_selection

    return {(t.name.lower(), c.lower()) for t, cols in normalize_selection(schema, selection) for c in cols}


def score_linking(schema, gold_sql: str, selection, dialect: str) -> dict[str, Any] | None:
    """Recall / precision of a linked schema against the gold SQL's columns.

    Args:
        schema: the database's :class:`~quorumsql.db.DatabaseSchema`.
        gold_sql: the reference query.
        selection: the linked ``{table: [columns]}``.
        dialect: sqlglot dialect.

    Returns:
        ``{"column_recall", "column_precision", "table_recall", "gold_columns", "gold_tables",
        "missed", "seen_columns"}`` (recall is None when the gold SQL names no column, e.g.
        ``SELECT count(*) FROM t``), or None when the gold SQL does not parse.
    """
    gold = referenced_columns(gold_sql, schema, dialect)
    if gold is None or not gold.tables:
        return None
    seen = _columns_seen(schema, selection)
    gold_cols = {(t.lower(), c.lower()) for t, c in gold.columns}
    gold_tables = {t.lower() for t in gold.tables}
    seen_tables = {t for t, _ in seen}
    hit = gold_cols & seen
    return {
        "column_recall": len(hit) / len(gold_cols) if gold_cols else None,
        "column_precision": (len(hit) / len(seen) if seen else 0.0) if gold_cols else None,
        "table_recall": len(gold_tables & seen_tables) / len(gold_tables),
        "gold_columns": len(gold_cols),
        "gold_tables": len(gold_tables),
        "seen_columns": len(seen),
        "missed": sorted(f"{t}.{c}" for t, c in gold_cols - seen),
    }


def run_linking(
    examples: Sequence[Example],
    pipeline,
    out_dir: str | Path,
    *,
    resume: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> list[dict[str, Any]]:
    """Link every question with ``pipeline``'s preset (linking forced on) and record the scores.

    Args:
        examples: benchmark questions with gold SQL.
        pipeline: a :class:`quorumsql.Pipeline` (its preset's linking options are used).
        out_dir: where ``linking.jsonl`` is appended.
        resume: skip questions already in ``linking.jsonl`` (a partial last line is dropped).
        progress: called with ``(done, total)`` after each question.

    Returns:
        Every record in the file (earlier ones included when resuming).

    Raises:
        InputError: the results file exists and ``resume`` is False.
    """
    from quorumsql.errors import InputError
    from quorumsql.graph.context import InferenceContext
    from quorumsql.graph.inference import build_linking_graph

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / RESULTS
    records = read_linking_results(path) if path.exists() else []
    if records and not resume:
        raise InputError(f"{path} already holds results: pass --resume to continue, or choose another --out")
    done = {r["id"] for r in records}
    preset = pipeline.preset.model_copy(update={"linking": True})
    ctx = InferenceContext(settings=pipeline.settings, preset=preset, models=pipeline.models,
                           resources=pipeline.resources, memories=getattr(pipeline, "memories", None))
    graph = build_linking_graph()
    todo = [e for e in examples if e.id not in done]
    with open(path, "a", encoding="utf-8") as fh:
        for i, ex in enumerate(todo, 1):
            record = _link_one(graph, ctx, ex)
            fh.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
            records.append(record)
            if progress:
                progress(len(done) + i, len(examples))
    return records


def _link_one(graph, ctx, ex: Example) -> dict[str, Any]:
    base = {"id": ex.id, "db_id": ex.db_id, "db": ex.db, "question": ex.question, "gold_sql": ex.gold_sql}
    start = time.monotonic()
    try:
        db = ctx.resources.database(ex.db)
        out = graph.invoke({"question": ex.question, "db": ex.db, "evidence": ex.evidence}, context=ctx)
    except QuorumSQLError as exc:
        return {**base, "status": "error", "error": str(exc), "seconds": time.monotonic() - start}
    seconds = time.monotonic() - start
    schema = db.schema()
    linked = out.get("linked")
    selection = linked.selection if linked is not None else None
    scores = score_linking(schema, ex.gold_sql or "", selection, db.dialect) if ex.gold_sql else None
    full = ctx.resources.schema_text(ex.db, "mschema")
    linked_text = out.get("schema_texts", {}).get("mschema") or full
    calls = sum(e.usage.calls for e in out.get("trace", []))
    tokens = sum(e.usage.prompt_tokens + e.usage.completion_tokens for e in out.get("trace", []))
    return {
        **base,
        "status": "done" if scores is not None else "no_gold",
        **(scores or {}),
        "linked_columns": linked.column_count if linked is not None else schema.column_count,
        "total_columns": schema.column_count,
        "prompt_tokens_linked": _prompt_tokens(ex, linked_text, db.dialect),
        "prompt_tokens_full": _prompt_tokens(ex, full, db.dialect),
        "llm_calls": calls,
        "llm_tokens": tokens,
        "seconds": seconds,
        "notes": linked.notes if linked is not None else [],
        "selection": selection,
        "sources": linked.sources if linked is not None else {},
        "keywords": out.get("keywords", []),
        "retrieval": out.get("retrieval", {}),
        "draft_sql": next((e.data.get("draft") for e in out.get("trace", []) if e.node == "link"), None),
    }


def rescore_linking(records: Sequence[dict[str, Any]], pipeline, dbs: dict[str, str]) -> list[dict[str, Any]]:
    """Score recorded questions again under the current linking policy, without the model.

    The keywords, retrieval hits and draft SQL a run recorded are the model's part of linking;
    the union built from them (:func:`quorumsql.agents.linker.link_sources`) is rebuilt with
    the current code and ``pipeline``'s preset, and scored as :func:`run_linking` scores it. For
    tuning the policy on recorded runs (say which records were rescored when reporting).

    Args:
        records: :func:`run_linking` records.
        pipeline: gives the preset (policy knobs) and the resources (databases, metadata).
        dbs: ``{record id: database path or URL}`` (the benchmark's questions).

    Returns:
        Copies of the records with ``selection``, ``sources``, the scores and the linked prompt
        tokens recomputed and ``rescored`` set; records not scored (no gold, errors, unknown
        database) as they were.
    """
    from quorumsql.agents.linker import link_sources
    from quorumsql.graph.linking import related_columns

    preset = pipeline.preset
    out = []
    for rec in records:
        if rec.get("status") != "done" or rec["id"] not in dbs:
            out.append(rec)
            continue
        db = pipeline.resources.database(dbs[rec["id"]])
        schema = db.schema()
        draft = referenced_columns(rec["draft_sql"], schema, db.dialect) if rec.get("draft_sql") else None
        retrieval = rec.get("retrieval") or {}
        linked = link_sources(
            schema, keywords=rec.get("keywords") or [], values=retrieval.get("values", []),
            columns=retrieval.get("columns", []), draft=draft,
            related=related_columns(pipeline.resources, db, similar=preset.link_similar),
            column_min_score=preset.column_min_score,
        )
        scores = score_linking(schema, rec["gold_sql"], linked.selection, db.dialect) or {}
        text = pipeline.resources.schema_text(db, "mschema", selection=linked.selection, value_examples=linked.examples)
        ex = Example(id=rec["id"], db_id=rec["db_id"], db=db.uri, question=rec["question"], gold_sql=rec["gold_sql"])
        out.append({**rec, **scores, "selection": linked.selection, "sources": linked.sources,
                    "linked_columns": linked.column_count,
                    "prompt_tokens_linked": _prompt_tokens(ex, text, db.dialect), "rescored": True})
    return out


def _prompt_tokens(ex: Example, schema_text: str, dialect: str) -> int:
    messages = build_messages(ex.question, schema_text, evidence=ex.evidence, dialect=dialect)
    return sum(estimate_tokens(m.content) for m in messages)


def read_linking_results(path: Path) -> list[dict[str, Any]]:
    """Records of a ``linking.jsonl``; a partial last line (killed run) is cut off."""
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        keep = data.rfind(b"\n") + 1
        tail = data[keep:]
        try:
            json.loads(tail)
            with open(path, "ab") as fh:
                fh.write(b"\n")
        except ValueError:
            with open(path, "r+b") as fh:
                fh.truncate(keep)
            data = data[:keep]
    return [json.loads(line) for line in data.decode("utf-8").splitlines() if line.strip()]


def summarize_linking(records: Sequence[dict[str, Any]], *, big: int = 30) -> dict[str, Any]:
    """Averages over the scored questions.

    Args:
        records: :func:`run_linking` records.
        big: the column count above which a database counts as large (token-halving target).

    Returns:
        ``{"n", "column_recall", "column_precision", "table_recall", "all_gold_linked",
        "linked_columns", "total_columns", "prompt_tokens_linked", "prompt_tokens_full",
        "token_ratio_big", "llm_calls", "seconds", "errors"}``.
    """
    done = [r for r in records if r.get("status") == "done"]

    def mean(key, rows=done):
        vals = [r[key] for r in rows if r.get(key) is not None]
        return statistics.fmean(vals) if vals else None

    big_rows = [r for r in done if r["total_columns"] > big]
    ratio = None
    if big_rows:
        ratio = statistics.fmean(r["prompt_tokens_linked"] for r in big_rows) / statistics.fmean(
            r["prompt_tokens_full"] for r in big_rows)
    with_cols = [r for r in done if r.get("column_recall") is not None]
    return {
        "n": len(done),
        "column_recall": mean("column_recall"),
        "column_precision": mean("column_precision"),
        "table_recall": mean("table_recall"),
        "all_gold_linked": (sum(1 for r in with_cols if r["column_recall"] == 1.0) / len(with_cols)) if with_cols else None,
        "linked_columns": mean("linked_columns"),
        "seen_columns": mean("seen_columns"),
        "total_columns": mean("total_columns"),
        "prompt_tokens_linked": mean("prompt_tokens_linked"),
        "prompt_tokens_full": mean("prompt_tokens_full"),
        "token_ratio_big": ratio,
        "big_questions": len(big_rows),
        "llm_calls": mean("llm_calls"),
        "seconds": mean("seconds"),
        "errors": sum(1 for r in records if r.get("status") == "error"),
    }


def format_summary(name: str, s: dict[str, Any]) -> str:
    """One block of text per preset for the terminal."""
    def pct(v):
        return "n/a" if v is None else f"{100 * v:.1f}%"

    def num(v, f="{:.1f}"):
        return "n/a" if v is None else f.format(v)

    return "\n".join([
        f"{name}: {s['n']} questions ({s['errors']} errors)",
        f"  column recall {pct(s['column_recall'])} · precision {pct(s['column_precision'])} · "
        f"table recall {pct(s['table_recall'])} · every gold column linked {pct(s['all_gold_linked'])}",
        f"  columns: {num(s['linked_columns'])} linked, {num(s['seen_columns'])} in the prompt with keys, "
        f"of {num(s['total_columns'])}",
        f"  generator prompt tokens (estimated): {num(s['prompt_tokens_linked'], '{:.0f}')} linked vs "
        f"{num(s['prompt_tokens_full'], '{:.0f}')} whole schema; on databases over 30 columns "
        f"({s['big_questions']} questions) linked/whole = {num(s['token_ratio_big'], '{:.2f}')}",
        f"  linking cost: {num(s['llm_calls'], '{:.2f}')} LLM calls, {num(s['seconds'], '{:.1f}')} s per question",
    ])
