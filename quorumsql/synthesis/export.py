"""Exports of a synthesis run: SFT chat JSONL, Alpaca JSONL, an ICL pool, and ``summary.json``.

Only kept records are exported (not dropped by a filter, the judge, the near-duplicate step or
a reviewer). Every line carries the record's ``id`` and its provenance
(:meth:`~quorumsql.synthesis.records.SynthRecord.provenance`: seed, filters passed, judge
score, difficulties, review verdict); ``records.jsonl`` holds the rest.

* ``sft.jsonl``: ``{"messages": [system, user, assistant], "id", "provenance"}``. The system and
  user turns are the inference generator's own prompt
  (:func:`quorumsql.agents.generator.build_messages`: instructions, then the record's M-Schema,
  evidence and question), so a model tuned on them is asked the same way at inference. The
  assistant turn is the chain of thought ending in the SQL (with a system prompt that asks for
  the reasoning, :data:`SFT_COT_RULE`) or, for records without one or with ``answer="sql"``,
  the SQL alone in a ``sql`` block.
* ``alpaca.jsonl``: ``{"instruction", "input", "output", "id", "provenance"}``: the generator's
  instructions, the schema/evidence/question text, and the SQL in a ``sql`` block.
* ``icl_pool.jsonl``: ``{"question", "query", "db_id", "evidence", "id", "provenance"}``, the
  layout :func:`quorumsql.agents.icl_pool.read_pool` reads (``Preset.icl_pool``).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

from langchain_core.messages import SystemMessage

from quorumsql.agents.generator import build_messages
from quorumsql.synthesis.records import DROP_STAGES, SynthRecord

SFT_FILE, ALPACA_FILE, ICL_FILE, SUMMARY_FILE = "sft.jsonl", "alpaca.jsonl", "icl_pool.jsonl", "summary.json"

#: the generator's last rule (SQL only), replaced in SFT prompts whose answer is a chain of thought
_SQL_ONLY_RULE = "- Reply with only the SQL in a ```sql block, no explanation before or after it."
SFT_COT_RULE = ("- Think step by step: name the tables and columns the question needs, how they join, and the "
                "filters, grouping and ordering; then end with the query in a ```sql block.")

#: the order ``summary.json`` counts survivors in: each record-dropping stage
FUNNEL = DROP_STAGES


def sql_block(sql: str) -> str:
    """``sql`` in a fenced ``sql`` block."""
    return f"```sql\n{sql.strip()}\n```"


def prompt_messages(record: SynthRecord, schema_text: str, *, with_cot: bool) -> list[dict[str, str]]:
    """The system and user turns of a record's SFT example (the inference generator's prompt)."""
    system, user = build_messages(record.question or "", schema_text, evidence=record.evidence or None,
                                  dialect=record.dialect)
    text = str(system.content)
    if with_cot:
        text = text.replace(_SQL_ONLY_RULE, SFT_COT_RULE) if _SQL_ONLY_RULE in text else f"{text}\n{SFT_COT_RULE}"
        system = SystemMessage(text)
    return [{"role": "system", "content": str(system.content)}, {"role": "user", "content": str(user.content)}]


def sft_example(record: SynthRecord, schema_text: str, *, answer: Literal["cot", "sql"] = "cot") -> dict[str, Any]:
    """One SFT chat example (see the module docstring)."""
    with_cot = answer == "cot" and bool(record.cot)
    messages = prompt_messages(record, schema_text, with_cot=with_cot)
    messages.append({"role": "assistant", "content": record.cot if with_cot else sql_block(record.sql or "")})
    return {"messages": messages, "id": record.id, "provenance": record.provenance()}


def alpaca_example(record: SynthRecord, schema_text: str) -> dict[str, Any]:
    """One Alpaca-style example (see the module docstring)."""
    system, user = prompt_messages(record, schema_text, with_cot=False)
    return {"instruction": system["content"], "input": user["content"], "output": sql_block(record.sql or ""),
            "id": record.id, "provenance": record.provenance()}


def icl_example(record: SynthRecord) -> dict[str, Any]:
    """One ICL pool line (see the module docstring)."""
    return {"question": record.question, "query": record.sql, "db_id": record.db_id, "evidence": record.evidence,
            "id": record.id, "provenance": record.provenance()}


def exportable(records: Iterable[SynthRecord]) -> list[SynthRecord]:
    """The records that go into the exports: kept, with a question and SQL."""
    return [r for r in records if r.kept and r.question and r.sql]


def _write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> int:
    """Write ``rows`` to ``path`` through a temporary file and a rename; returns the count."""
    tmp = path.with_name(path.name + ".tmp")
    n = 0
    with open(tmp, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
            n += 1
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return n


def export_all(
    records: Sequence[SynthRecord],
    out: str | Path,
    schema_for: Callable[[SynthRecord], str | None],
    *,
    answer: Literal["cot", "sql"] = "cot",
) -> dict[str, Any]:
    """Write ``sft.jsonl``, ``alpaca.jsonl`` and ``icl_pool.jsonl`` into ``out``.

    Args:
        records: the run's current records.
        out: the run directory.
        schema_for: the M-Schema of a record's database, or None when it cannot be rendered
            (the record then stays out of the SFT and Alpaca files, which need the schema, and
            is counted in ``no_schema``).
        answer: the SFT assistant turn: ``cot`` (chain of thought when the record has one) or ``sql``.

    Returns:
        ``{"sft": n, "alpaca": n, "icl_pool": n, "no_schema": n}``.

    Raises:
        OSError: a file cannot be written.
    """
    out = Path(out)
    chosen = exportable(records)
    schemas = {r.id: schema_for(r) for r in chosen}
    with_schema = [r for r in chosen if schemas[r.id] is not None]
    return {
        "sft": _write_jsonl(out / SFT_FILE, (sft_example(r, schemas[r.id] or "", answer=answer) for r in with_schema)),
        "alpaca": _write_jsonl(out / ALPACA_FILE, (alpaca_example(r, schemas[r.id] or "") for r in with_schema)),
        "icl_pool": _write_jsonl(out / ICL_FILE, (icl_example(r) for r in chosen)),
        "no_schema": len(chosen) - len(with_schema),
    }


def summarize(records: Sequence[SynthRecord], *, seeds: int | None = None, exports: dict[str, Any] | None = None,
              batch: dict[str, Any] | None = None, review: dict[str, Any] | None = None) -> dict[str, Any]:
    """The numbers of ``summary.json``.

    Keys: ``seeds`` (in the selection), ``seeds_done``, ``records``, ``kept``, ``by_kind`` /
    ``by_origin`` (records and kept per seed kind and origin), ``dropped_by`` (count per stage),
    ``surviving`` (records left after each stage, in pipeline order), ``difficulty``
    (component and execution, kept records), ``judge_score_mean`` / ``agreement_mean`` (kept),
    ``cot`` (kept records with a chain of thought), ``tokens`` (prompt, completion, calls, model
    seconds, all records), ``tokens_per_kept``, ``seconds`` (processing, all records),
    ``seconds_per_kept``, ``review`` (verdict counts), plus ``exports``, ``batch`` and the last
    review report when given.
    """
    kept = [r for r in records if r.kept]
    dropped = Counter(r.dropped_by for r in records if not r.kept)
    surviving, left = {}, len(records)
    for stage in FUNNEL:
        left -= dropped.get(stage, 0)
        surviving[stage] = left
    prompt = sum(r.usage.prompt_tokens for r in records)
    completion = sum(r.usage.completion_tokens for r in records)
    seconds = sum(r.seconds for r in records)

    def per_kept(x: float) -> float | None:
        return round(x / len(kept), 2) if kept else None

    def mean(values: list[float]) -> float | None:
        return round(sum(values) / len(values), 4) if values else None

    def by(attr: str) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for r in records:
            row = out.setdefault(str(getattr(r, attr)), {"records": 0, "kept": 0})
            row["records"] += 1
            row["kept"] += int(r.kept)
        return out

    doc: dict[str, Any] = {
        "seeds": seeds,
        "seeds_done": len({r.seed_id for r in records}),
        "records": len(records),
        "kept": len(kept),
        "by_kind": by("seed_kind"),
        "by_origin": by("origin"),
        "dropped_by": dict(sorted(dropped.items(), key=lambda kv: FUNNEL.index(kv[0]) if kv[0] in FUNNEL else 99)),
        "surviving": surviving,
        "difficulty": {
            "component": dict(Counter(r.component_difficulty or "unknown" for r in kept)),
            "execution": dict(Counter(r.execution_difficulty or "unmeasured" for r in kept)),
        },
        "judge_score_mean": mean([r.judge_score for r in kept if r.judge_score is not None]),
        "agreement_mean": mean([r.agreement for r in kept if r.agreement is not None]),
        "cot": sum(1 for r in kept if r.cot),
        "tokens": {"prompt": prompt, "completion": completion, "calls": sum(r.usage.calls for r in records),
                   "model_seconds": round(sum(r.usage.seconds for r in records), 1)},
        "tokens_per_kept": per_kept(prompt + completion),
        "seconds": round(seconds, 1),
        "seconds_per_kept": per_kept(seconds),
        "review": dict(Counter(r.review for r in records if r.review)),
        "review_selected": sum(1 for r in records if r.review_selected),
    }
    if exports is not None:
        doc["exports"] = exports
    if batch is not None:
        doc["batch"] = batch
    if review is not None:
        doc["last_review"] = review
    return doc


def write_summary(out: str | Path, summary: dict[str, Any]) -> Path:
    """Write ``summary.json`` (through a temporary file and a rename); returns its path."""
    path = Path(out) / SUMMARY_FILE
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(summary, indent=2, ensure_ascii=False, default=str), encoding="utf-8")
    os.replace(tmp, path)
    return path
