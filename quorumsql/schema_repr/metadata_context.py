"""M-Schema with metadata, at MCI-SQL's two granularities (paper 004, sections 3.1 and 3.5).

* ``partial``: M-Schema (XiYan-SQL, paper 003, section 3) with column descriptions and
  representative examples, question-relevant values first.
* ``complete``: the same plus, per column, value range, value pattern, NULL and distinct
  counts, BIRD's data format and value description; per table, its description, row and column
  counts; and after the tables, declared and inferred joins between rendered columns, duplicate
  and similar columns of every rendered column (a partner outside the rendered subset is named
  ``table.column`` and marked, since that is what linking needs to see), and functional
  dependencies with the number of rows they were mined on.

This module renders only: the question-relevant values come from
:func:`quorumsql.metadata.retrieval.question_examples`, the record from the metadata store.

Example of a complete column line::

    (Age:INT, Primary Key, Examples: [52, 25, 29], Range: [25, 52], Nulls: 0, Distinct: 6)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from quorumsql.metadata.models import ColumnProfile, MetadataRecord
from quorumsql.schema_repr.mschema import to_mschema
from quorumsql.schema_repr.selection import Selection, normalize_selection

GRANULARITIES = ("partial", "complete")


def _merge_examples(question: Sequence[Any] | None, representative: Sequence[Any]) -> list[Any]:
    out: list[Any] = []
    for v in [*(question or []), *representative]:
        if v not in out:
            out.append(v)
    return out


def _range_text(c: ColumnProfile) -> str | None:
    if c.min_value is None or c.max_value is None:
        return None
    mn, mx = c.min_value, c.max_value
    if isinstance(mn, float) and mn.is_integer():
        mn = int(mn)
    if isinstance(mx, float) and mx.is_integer():
        mx = int(mx)
    return f"Range: [{mn}, {mx}]"


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


def _squash(text: str) -> str:
    return " ".join(str(text).split())


def _contains(text: str | None, part: str | None) -> bool:
    return bool(text and part and _squash(part).lower() in _squash(text).lower())


def _rows(n: int) -> str:
    return f"{n:,} row" + ("" if n == 1 else "s")


def render_metadata_schema(
    record: MetadataRecord,
    selection: Selection | None = None,
    *,
    granularity: str = "partial",
    question_examples: Mapping[tuple[str, str], Sequence[Any]] | None = None,
    descriptions: Mapping[tuple[str, str], str] | None = None,
    max_examples: int = 3,
    value_description_chars: int = 160,
) -> str:
    """Render ``record`` (or the ``selection`` of it) as metadata-partial or -complete M-Schema.

    Args:
        record: the profiled database (:class:`~quorumsql.metadata.models.MetadataRecord`,
            ``DatabaseMetadata.record``).
        selection: linked schema ``{table: [columns] | None}``; None renders everything.
        granularity: ``partial`` or ``complete``.
        question_examples: ``{(table, column): values}`` matching the question (see
            :func:`quorumsql.metadata.retrieval.question_examples`); shown before the column's
            representative examples.
        descriptions: ``{(table, column): text}`` column descriptions overriding the record's
            (e.g. ``Pipeline.descriptions(db)``); keys match case-insensitively. In ``complete``,
            the record's value description and data format are left out when the given text
            already holds them.
        max_examples: examples per column (M-Schema's rules then apply).
        value_description_chars: cut value descriptions (complete only) to this length.

    Returns:
        The schema text.

    Raises:
        ValueError: unknown granularity.
    """
    if granularity not in GRANULARITIES:
        raise ValueError(f"granularity must be one of {GRANULARITIES}, got {granularity!r}")
    schema = record.schema_
    qex = {(t.lower(), c.lower()): v for (t, c), v in (question_examples or {}).items()}
    profiles = {c.key: c for c in record.columns}
    examples = {
        key: _merge_examples(qex.get(key), p.examples) for key, p in profiles.items()
    }
    given = {(t.lower(), c.lower()): _squash(v) for (t, c), v in (descriptions or {}).items() if v and str(v).strip()}
    texts = {key: p.description for key, p in profiles.items() if p.description}
    texts.update(given)
    tdesc = {t.name: t.description for t in record.tables if t.description}
    if granularity == "partial":
        return to_mschema(schema, selection, descriptions=texts, examples=examples,
                          table_descriptions=tdesc, max_examples=max_examples)

    chosen = normalize_selection(schema, selection)
    rendered = {t.name.lower(): {c.lower() for c in cols} for t, cols in chosen}

    def shown(table: str, column: str) -> bool:
        return column.lower() in rendered.get(table.lower(), ())

    def table_extras(table) -> str:
        tp = record.table(table.name)
        if tp is None:
            return ""
        return f" ({tp.row_count} rows, {tp.column_count} columns{', view' if tp.kind == 'view' else ''})"

    def column_extras(table, col) -> list[str]:
        key = (table.name.lower(), col.name.lower())
        p = profiles.get(key)
        if p is None:
            return []
        extras = []
        rng = _range_text(p)
        if rng:
            extras.append(rng)
        if p.pattern is not None and p.pattern.sample_size:
            extras.append(f"Pattern: {p.pattern.summary()}")
        if p.data_format and not _contains(given.get(key), f"format: {p.data_format}"):
            extras.append(f"Format: {_squash(p.data_format)}")
        extras.append(f"Nulls: {p.null_count}")
        extras.append(f"Distinct: {p.distinct_count}{' (unique)' if p.unique and not col.primary_key else ''}")
        if p.value_description and not _contains(given.get(key), p.value_description):
            extras.append(f"Values: {_clip(p.value_description, value_description_chars)}")
        return extras

    text = to_mschema(
        schema,
        selection,
        descriptions={k: _clip(v, 200) for k, v in texts.items()},
        examples=examples,
        table_descriptions={k: _clip(v, 300) for k, v in tdesc.items()},
        max_examples=max_examples,
        column_extras=column_extras,
        table_extras=table_extras,
        include_foreign_keys=False,
    )
    lines = [text]
    declared = [j for j in record.join_candidates if j.declared and shown(j.table, j.column) and shown(j.ref_table, j.ref_column)]
    inferred = [j for j in record.join_candidates if not j.declared and shown(j.table, j.column) and shown(j.ref_table, j.ref_column)]
    if declared:
        lines.append("【Foreign keys】")
        lines.extend(str(j) for j in declared)
    if inferred:
        lines.append("【Join candidates】")
        lines.extend(f"{j} ({round(j.containment * 100)}% of values match)" for j in inferred)

    def pair_lines(pairs, sign: str, with_score: bool) -> list[str]:
        out = []
        for p in pairs:
            a, b = (p.table, p.column), (p.other_table, p.other_column)
            if not shown(*a):
                if not shown(*b):
                    continue
                a, b = b, a  # the rendered column first
            notes = [f"{p.score:.2f}"] if with_score else []
            if not shown(*b):
                notes.append(f"{b[0]}.{b[1]} is not in this schema")
            tail = f" ({'; '.join(notes)})" if notes else ""
            out.append(f"{a[0]}.{a[1]} {sign} {b[0]}.{b[1]}{tail}")
        return out

    dups = pair_lines(record.duplicates, "==", with_score=False)
    if dups:
        lines.append("【Duplicate columns】")
        lines.extend(dups)
    sims = pair_lines(record.similar, "~", with_score=True)
    if sims:
        lines.append("【Similar columns】")
        lines.extend(sims)
    deps = [d for d in record.dependencies if all(shown(d.table, c) for c in [*d.lhs, d.rhs])]
    if deps:
        lines.append("【Functional dependencies】")
        for d in deps:
            tp = record.table(d.table)
            if not d.sampled_rows:
                basis = ""
            elif tp is not None and d.sampled_rows < tp.row_count:
                basis = f" on {_rows(d.sampled_rows)} sampled of {tp.row_count:,}"
            else:
                basis = f" on all {_rows(d.sampled_rows)}"
            lines.append(f"{d.table}: {', '.join(d.lhs)} -> {d.rhs} ({d.cardinality}{basis})")
    return "\n".join(lines)
