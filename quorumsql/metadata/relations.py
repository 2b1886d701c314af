"""Inter-column metadata: joins, duplicate and similar columns, functional dependencies.

MCI-SQL (paper 004, section 3.1.3) finds semantically related columns with a sentence encoder,
splits them into *duplicate* columns (identical data) and *similar* columns (related meaning,
different data), and mines functional dependencies with TANE (Huhtala et al. 1999, The Computer
Journal 42(2)) to label column pairs 1:1 or N:1. Here:

* join candidates: declared foreign keys, plus columns whose distinct values are contained in
  a unique column of another table (checked by a query) when the names relate;
* duplicate columns: two non-key columns with equal statistics (distinct count, MIN, MAX)
  whose sets of distinct values are identical, verified with an ``EXCEPT`` query;
* similar columns: cosine similarity of the embeddings of ``"table.column: description"``
  at or above a threshold (0.8 by default);
* functional dependencies: TANE's level-wise search over stripped partitions, on a bounded
  sample of rows, for left sides of one and (for narrow tables) two columns.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

from quorumsql.db.schema import DatabaseSchema, Table
from quorumsql.metadata.models import ColumnPair, ColumnProfile, FunctionalDependency, JoinCandidate
from quorumsql.metadata.profiler import TableProfiler
from quorumsql.sqlnames import normalize_column_name
from quorumsql.sqlnames import quote_identifier

_GENERIC = {"id", "code", "key", "no", "num", "name", "type"}


def _singular(word: str) -> str:
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith("s") and not word.endswith("ss") and len(word) > 3:
        return word[:-1]
    return word


def _family(c: ColumnProfile) -> str:
    return {"mixed": "text"}.get(c.affinity, c.affinity)


# ---------------------------------------------------------------------------------------------
# join candidates
# ---------------------------------------------------------------------------------------------
def _ref_keys(c: ColumnProfile) -> set[str]:
    """Names under which a unique column may be referred to from another table."""
    t, n = normalize_column_name(c.table), normalize_column_name(c.name)
    keys = {t + n} if n in _GENERIC else {n, t + n}
    for stem in {t, _singular(t)}:
        if n in _GENERIC:
            keys |= {stem + n, stem}
        keys.add(stem + "id")
    return keys


def _fk_keys(c: ColumnProfile) -> set[str]:
    n = normalize_column_name(c.name)
    keys = {n}
    for suffix in ("id", "code", "key", "no", "num"):
        if n.endswith(suffix) and len(n) > len(suffix):
            keys.add(n[: -len(suffix)])
    return keys | {_singular(k) for k in keys}


def join_candidates(
    profiler: TableProfiler,
    schema: DatabaseSchema,
    columns: Sequence[ColumnProfile],
    *,
    min_containment: float = 0.9,
    max_checks: int = 2000,
) -> list[JoinCandidate]:
    """Declared foreign keys plus inferred joins ``a -> b`` with ``b`` unique.

    A pair is checked when the types agree, ``a`` has no more distinct values than ``b``,
    numeric ranges nest, and the names relate (``singer_id`` -> ``singer.singer_id``,
    ``artist`` -> ``artist.id``); the check is the query
    ``SELECT COUNT(DISTINCT a) FROM ta WHERE a IN (SELECT b FROM tb)``.

    Args:
        min_containment: share of ``a``'s distinct values that must occur in ``b``.
        max_checks: cap on verification queries (large schemas).

    Returns:
        Declared keys first (``declared=True``), then inferred ones.
    """
    out = [
        JoinCandidate(table=fk.table, column=fk.column, ref_table=fk.ref_table, ref_column=fk.ref_column, declared=True)
        for fk in schema.foreign_keys
    ]
    declared = {(j.table.lower(), j.column.lower(), j.ref_table.lower(), j.ref_column.lower()) for j in out}
    declared |= {(d[2], d[3], d[0], d[1]) for d in declared}
    by_key: dict[tuple[str, str], list[ColumnProfile]] = defaultdict(list)
    for b in columns:
        if b.unique and b.distinct_count >= 2 and _family(b) in ("number", "text"):
            for k in _ref_keys(b):
                by_key[(_family(b), k)].append(b)
    checks = 0
    seen: set[tuple[str, str, str, str]] = set()
    for a in columns:
        fam = _family(a)
        if a.distinct_count < 1 or fam not in ("number", "text"):
            continue
        for k in _fk_keys(a):
            for b in by_key.get((fam, k), ()):
                pair = (a.table.lower(), a.name.lower(), b.table.lower(), b.name.lower())
                if a.table.lower() == b.table.lower() or pair in declared or pair in seen:
                    continue
                seen.add(pair)
                if a.distinct_count > b.distinct_count:
                    continue
                if fam == "number" and not _range_within(a, b):
                    continue
                if checks >= max_checks:
                    break
                checks += 1
                qa, qb = quote_identifier(a.name, "sqlite"), quote_identifier(b.name, "sqlite")
                res = profiler.run(
                    f"SELECT COUNT(DISTINCT {qa}) FROM {quote_identifier(a.table, 'sqlite')} WHERE {qa} IN "
                    f"(SELECT {qb} FROM {quote_identifier(b.table, 'sqlite')})",
                    max_rows=1,
                )
                if not res.ok or not res.rows:
                    continue
                share = int(res.rows[0][0] or 0) / max(a.distinct_count, 1)
                if share >= min_containment:
                    out.append(JoinCandidate(table=a.table, column=a.name, ref_table=b.table, ref_column=b.name,
                                             containment=round(share, 4)))
    return out


def _range_within(a: ColumnProfile, b: ColumnProfile) -> bool:
    try:
        return a.min_value is None or b.min_value is None or (
            float(a.min_value) >= float(b.min_value) and float(a.max_value) <= float(b.max_value)
        )
    except (TypeError, ValueError):
        return True


# ---------------------------------------------------------------------------------------------
# duplicate columns
# ---------------------------------------------------------------------------------------------
def duplicate_columns(
    profiler: TableProfiler,
    columns: Sequence[ColumnProfile],
    stats: dict[tuple[str, str], dict[str, Any]],
    joins: Sequence[JoinCandidate] = (),
    *,
    max_checks: int = 2000,
    min_distinct_text: int = 3,
    min_distinct_number: int = 5,
) -> list[ColumnPair]:
    """Columns holding the same set of distinct values under two names (verified by a query).

    Candidates share affinity, distinct count (at least ``min_distinct_text`` /
    ``min_distinct_number``: fewer values match by chance), MIN and MAX; primary keys and the
    two ends of a join candidate are left out (those are joins, not copies). The check:
    ``SELECT COUNT(*) FROM (SELECT a FROM ta WHERE a IS NOT NULL EXCEPT SELECT b FROM tb)`` = 0
    (with equal distinct counts one direction suffices).
    """
    joined = {frozenset({(j.table.lower(), j.column.lower()), (j.ref_table.lower(), j.ref_column.lower())}) for j in joins}
    buckets: dict[tuple, list[ColumnProfile]] = defaultdict(list)
    for c in columns:
        st = stats.get(c.key)
        if not st or c.primary_key or c.affinity in ("blob", "empty"):
            continue
        if c.distinct_count < (min_distinct_text if _family(c) == "text" else min_distinct_number):
            continue
        if c.pattern is not None and c.pattern.kind == "free_text":
            continue
        buckets[(_family(c), c.distinct_count, str(st.get("min")), str(st.get("max")))].append(c)
    out: list[ColumnPair] = []
    checks = 0
    for group in buckets.values():
        for a, b in itertools.combinations(group, 2):
            if frozenset({a.key, b.key}) in joined or checks >= max_checks:
                continue
            checks += 1
            qa, qb = quote_identifier(a.name, "sqlite"), quote_identifier(b.name, "sqlite")
            res = profiler.run(
                f"SELECT COUNT(*) FROM (SELECT {qa} FROM {quote_identifier(a.table, 'sqlite')} WHERE {qa} IS NOT NULL "
                f"EXCEPT SELECT {qb} FROM {quote_identifier(b.table, 'sqlite')} WHERE {qb} IS NOT NULL) AS d",
                max_rows=1,
            )
            if res.ok and res.rows and int(res.rows[0][0] or 0) == 0:
                out.append(ColumnPair(kind="duplicate", table=a.table, column=a.name, other_table=b.table,
                                      other_column=b.name, score=1.0))
    return out


# ---------------------------------------------------------------------------------------------
# similar columns
# ---------------------------------------------------------------------------------------------
def similar_columns(
    keys: Sequence[tuple[str, str]],
    vectors: np.ndarray,
    *,
    threshold: float = 0.8,
    top: int = 3,
    exclude: set[frozenset] | None = None,
    block: int = 2048,
) -> list[ColumnPair]:
    """Pairs of columns whose embeddings have cosine similarity >= ``threshold``.

    Args:
        keys: ``(table, column)`` per row of ``vectors``.
        vectors: ``(n, d)`` L2-normalised embeddings.
        threshold: cosine cut-off (MCI-SQL's similar columns; 0.8 by default).
        top: most similar partners kept per column.
        exclude: pairs (``frozenset`` of two keys) to leave out, e.g. duplicates.
        block: rows compared at a time (memory is ``block * n`` floats).

    Returns:
        Each unordered pair once, most similar first.
    """
    exclude = exclude or set()
    n = len(keys)
    found: dict[frozenset, ColumnPair] = {}
    for start in range(0, n, block):
        sims = vectors[start:start + block] @ vectors.T
        for i_local, row in enumerate(sims):
            i = start + i_local
            row[i] = -1.0
            cand = np.nonzero(row >= threshold)[0]
            if cand.size == 0:
                continue
            cand = cand[np.argsort(-row[cand])][:top]
            for j in cand:
                pair = frozenset({keys[i], keys[j]})
                if pair in exclude or pair in found or keys[i] == keys[j]:
                    continue
                a, b = sorted([keys[i], keys[int(j)]])
                found[pair] = ColumnPair(kind="similar", table=a[0], column=a[1], other_table=b[0],
                                         other_column=b[1], score=round(float(row[j]), 4))
    return sorted(found.values(), key=lambda p: -p.score)


# ---------------------------------------------------------------------------------------------
# functional dependencies (TANE-style, on a sample)
# ---------------------------------------------------------------------------------------------
def _codes(values: Sequence[Any]) -> tuple[np.ndarray, int]:
    index: dict[Any, int] = {}
    arr = np.fromiter((index.setdefault((type(v) is bytes, v), len(index)) for v in values), dtype=np.int64,
                      count=len(values))
    return arr, len(index)


def _combine(a: np.ndarray, b: np.ndarray, nb: int) -> tuple[np.ndarray, int]:
    _, inv = np.unique(a * nb + b, return_inverse=True)
    inv = inv.reshape(-1)
    return inv.astype(np.int64), int(inv.max()) + 1 if inv.size else 0


def functional_dependencies(
    profiler: TableProfiler,
    table: Table,
    columns: Sequence[ColumnProfile],
    *,
    sample_rows: int = 10_000,
    max_columns: int = 40,
    pair_lhs_max_columns: int = 12,
    min_rows: int = 4,
) -> tuple[list[FunctionalDependency], list[str]]:
    """Minimal functional dependencies ``X -> B`` with ``|X| <= 2`` in ``table``.

    Level-wise as in TANE: a candidate ``X -> B`` holds when the partition of the sample by
    ``X`` has as many classes as the partition by ``X + B``. Left sides that are keys of the
    sample (every row distinct) are left out, as are constant and all-NULL right sides;
    two-column left sides are tried only for tables of at most ``pair_lhs_max_columns``
    eligible columns and only when neither column alone determines ``B``.

    Args:
        sample_rows: rows read (a random sample when the table is larger).
        max_columns: eligible columns examined at most (BLOBs and free text are excluded).
        min_rows: tables with fewer rows get no dependencies (too little evidence).

    Returns:
        ``(dependencies, notes)``; notes say what was skipped.
    """
    notes: list[str] = []
    eligible = [
        c for c in columns
        if c.affinity not in ("blob", "empty") and not (c.pattern is not None and c.pattern.kind == "free_text")
    ]
    rows_total = columns[0].row_count if columns else 0
    if rows_total < min_rows or len(eligible) < 2:
        return [], notes
    if len(eligible) > max_columns:
        notes.append(f"functional dependencies: only the first {max_columns} of {len(eligible)} columns examined")
        eligible = eligible[:max_columns]
    cols_sql = ", ".join(quote_identifier(c.name, "sqlite") for c in eligible)
    order = " ORDER BY RANDOM()" if rows_total > sample_rows else ""
    res = profiler.run(f"SELECT {cols_sql} FROM {quote_identifier(table.name, 'sqlite')}{order} LIMIT {sample_rows}",
                       max_rows=sample_rows)
    if not res.ok or not res.rows:
        notes.append(f"functional dependencies skipped: {res.error or 'no rows'}")
        return [], notes
    n = len(res.rows)
    if n < rows_total:
        notes.append(f"functional dependencies mined on a sample of {n} of {rows_total} rows")
    colvals = list(zip(*res.rows))
    codes, card = [], []
    for vals in colvals:
        c, k = _codes(vals)
        codes.append(c)
        card.append(k)
    m = len(eligible)
    names = [c.name for c in eligible]
    lhs_ok = [1 < card[i] < n for i in range(m)]  # not constant, not a key
    rhs_ok = [card[i] > 1 for i in range(m)]
    det = [[False] * m for _ in range(m)]
    out: list[FunctionalDependency] = []
    for i in range(m):
        if not lhs_ok[i]:
            continue
        for j in range(m):
            if i == j or not rhs_ok[j] or card[j] > card[i]:
                continue
            _, k = _combine(codes[i], codes[j], card[j])
            det[i][j] = k == card[i]
    for i in range(m):
        for j in range(m):
            if det[i][j]:
                if det[j][i] and j < i:
                    continue  # 1:1 pairs are reported once
                out.append(FunctionalDependency(table=table.name, lhs=[names[i]], rhs=names[j],
                                                cardinality="1:1" if det[j][i] else "N:1", sampled_rows=n))
    if sum(lhs_ok) <= pair_lhs_max_columns:
        for i, j in itertools.combinations([x for x in range(m) if lhs_ok[x]], 2):
            if det[i][j] or det[j][i]:
                continue
            ij, kij = _combine(codes[i], codes[j], card[j])
            if kij == n:  # the pair is a key of the sample: it determines everything
                continue
            for r in range(m):
                if r in (i, j) or not rhs_ok[r] or det[i][r] or det[j][r]:
                    continue
                _, k = _combine(ij, codes[r], card[r])
                if k == kij:
                    out.append(FunctionalDependency(table=table.name, lhs=[names[i], names[j]], rhs=names[r],
                                                    cardinality="N:1", sampled_rows=n))
    return out, notes
