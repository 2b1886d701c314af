"""Column- and table-level statistics of one table, through read-only queries.

For each table: one aggregate query per group of columns (row count, non-NULL and distinct
counts, MIN/MAX, total length, and on SQLite the storage class of every cell; when a server
refuses the group's query, one query per column of it); then, per text
column, one query for its distinct values with their frequencies (examples, value pattern, and
the values the value index needs); per other column, one query for its most frequent values.
Every query goes through :meth:`quorumsql.db.Database.try_execute`, so a failing or slow query
becomes a note in ``skipped``, never an exception.

Column-level metadata follows MCI-SQL (paper 004, section 3.1.2, Table 1): range, pattern,
examples, NULL and distinct counts.
"""

from __future__ import annotations

import datetime
import decimal
import hashlib
import json
import random
import re
from dataclasses import dataclass, field
from typing import Any, Callable

from quorumsql.db import Database
from quorumsql.db.schema import Table
from quorumsql.metadata.models import ColumnProfile, TableProfile
from quorumsql.metadata.patterns import value_pattern
from quorumsql.metadata.sql import for_dialect, type_family
from quorumsql.sqlnames import quote_identifier

_STORAGE = ("integer", "real", "text", "blob")
_BOOL = re.compile(r"bool(ean)?", re.I)
_ID_NAME = re.compile(r"(^|_|\b)(id|uuid|guid|key|hash|md5|sha\d*)$|[a-z]Id$|ID$", re.I)


@dataclass
class ProfileOptions:
    """Knobs of profiling.

    Attributes:
        pattern_sample: distinct values a value pattern is computed from (MCI-SQL uses 200).
        examples: representative examples kept per column.
        max_values_per_column: distinct values read per text column for the value index.
        max_index_length: longest text value (characters) that the value index keeps; columns
            whose average length is above ``max_avg_index_length`` are free text and skipped.
        max_avg_index_length: see above.
        fd_sample_rows: rows read per table for functional-dependency mining.
        fd_max_columns: widest set of columns examined for dependencies (the first ones).
        query_timeout: seconds per profiling query.
        columns_per_query: columns aggregated per statement.
    """

    pattern_sample: int = 200
    examples: int = 5
    max_values_per_column: int = 500_000
    max_index_length: int = 120
    max_avg_index_length: float = 60.0
    fd_sample_rows: int = 10_000
    fd_max_columns: int = 40
    query_timeout: float = 60.0
    columns_per_query: int = 24

    def as_dict(self) -> dict[str, Any]:
        """The options as a plain dict (stored with the metadata)."""
        return dict(self.__dict__)


@dataclass
class TableResult:
    """What profiling one table produced (profiles, plus working data for later stages)."""

    table: TableProfile
    columns: list[ColumnProfile]
    # (column name -> distinct text values) for the value index
    values: dict[str, list[str]] = field(default_factory=dict)
    # (column name -> private statistics: text min/max, total length, ...)
    stats: dict[str, dict[str, Any]] = field(default_factory=dict)
    queries: int = 0
    reused: bool = False


def _is_blob(v: Any) -> bool:
    return isinstance(v, (bytes, bytearray, memoryview))


def plain_value(v: Any) -> Any:
    """A server's value as SQLite would give it, so profiles compare and store alike.

    ``datetime``/``date``/``time`` become ISO text (``2005-11-12 07:09:48``, a space between date
    and time as SQLite stores them), ``Decimal`` becomes ``int`` or ``float``, ``bool`` becomes
    ``0``/``1``; anything else is returned unchanged.
    """
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, datetime.datetime):
        return v.isoformat(sep=" ")
    if isinstance(v, (datetime.date, datetime.time)):
        return v.isoformat()
    if isinstance(v, decimal.Decimal):
        return int(v) if v == v.to_integral_value() and abs(v) < 10**15 else float(v)
    return v


def _to_number(text: str) -> int | float | None:
    try:
        f = float(text.replace(",", "."))
    except ValueError:
        return None
    return int(f) if f.is_integer() and abs(f) < 1e15 else f


def indexable_reason(profile: ColumnProfile, avg_len: float, opts: ProfileOptions) -> str | None:
    """Why a text column is NOT put in the value index, or None when it is.

    Skipped: identifier-like names (``id``, ``*_id``, ``uuid``, ``hash``...), primary keys,
    e-mail / URL / hex / numeric-text / date columns (by value pattern), and long free text
    (average length above ``max_avg_index_length``).
    """
    if profile.affinity not in ("text", "mixed"):
        return "not a text column"
    if profile.primary_key and profile.unique:
        return "primary key"
    if _ID_NAME.search(profile.name):
        return "identifier column"
    p = profile.pattern
    if p is not None and p.kind in ("email", "url", "hex", "date", "numeric_text"):
        return f"{p.kind.replace('_', ' ')} values"
    if avg_len > opts.max_avg_index_length:
        return f"long free text (average {avg_len:.0f} characters)"
    return None


def table_signature(table: Table, row_count: int, stats: dict[str, dict[str, Any]]) -> str:
    """Hash of a table's structure and aggregates; equal signatures let a rebuild reuse work."""
    payload = json.dumps(
        {"t": table.model_dump(exclude={"columns": {"__all__": {"examples"}}}), "n": row_count, "s": stats},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:24]


class TableProfiler:
    """Profiles the tables of one database.

    Args:
        db: the database (read through ``try_execute`` only).
        options: see :class:`ProfileOptions`.
    """

    def __init__(self, db: Database, options: ProfileOptions | None = None) -> None:
        self.db = db
        self.opts = options or ProfileOptions()
        self.dialect = db.dialect
        self.queries = 0

    # -- helpers ---------------------------------------------------------------------------
    def run(self, sql: str, *, max_rows: int = 10_000):
        """Run one profiling query (SQLite syntax, transpiled); returns an ExecutionResult."""
        self.queries += 1
        return self.db.try_execute(
            for_dialect(sql, self.dialect), timeout=self.opts.query_timeout, max_rows=max_rows
        )

    def q(self, name: str) -> str:
        return quote_identifier(name, "sqlite")

    # -- one table -------------------------------------------------------------------------
    def profile(self, table: Table, reuse: Callable[[str], TableResult | None] | None = None) -> TableResult:
        """Profile ``table``: counts, ranges, patterns, examples, values to index.

        Args:
            table: the table or view.
            reuse: called with the table's signature once the aggregate statistics are known;
                when it returns a result (from an earlier build of an unchanged table), that
                result is used and no further query is run.

        Returns:
            A :class:`TableResult`; problems (failed queries, BLOBs, mixed types, views that
            cannot be read) are listed in the ``skipped`` fields, never raised.
        """
        start_queries = self.queries
        tq = self.q(table.name)
        tprof = TableProfile(name=table.name, kind=table.kind, column_count=len(table.columns), description=table.comment,
                             description_source="comment" if table.comment else None)
        cols = [
            ColumnProfile(table=table.name, name=c.name, type=c.type, primary_key=c.primary_key,
                          description=c.comment, description_source="comment" if c.comment else None)
            for c in table.columns
        ]
        result = TableResult(table=tprof, columns=cols)
        if not table.columns:
            tprof.skipped.append("table has no columns")
            return result
        row_count: int | None = None
        stats: dict[str, dict[str, Any]] = {}
        groups = [cols[i:i + self.opts.columns_per_query] for i in range(0, len(cols), self.opts.columns_per_query)]
        for group in groups:
            outcome = self._aggregate(tq, group, stats)
            if isinstance(outcome, str) and len(group) > 1:
                # one column's aggregate can fail on a server (a type without MIN, COUNT(DISTINCT)
                # or LENGTH there): retry column by column so the others still get statistics
                outcomes = [self._aggregate(tq, [c], stats) for c in group]
                row_count = next((n for n in outcomes if isinstance(n, int)), row_count)
            elif isinstance(outcome, int):
                row_count = outcome
        tprof.row_count = row_count or 0
        for msg in dict.fromkeys(m for c in cols for m in c.skipped if m.startswith("statistics query failed")):
            tprof.skipped.append(msg)
        signature = table_signature(table, tprof.row_count, stats)
        if reuse is not None and len(stats) == len(cols):
            earlier = reuse(signature)
            if earlier is not None:
                earlier.stats = stats
                earlier.reused = True
                earlier.queries = self.queries - start_queries
                return earlier
        if row_count == 0:
            tprof.skipped.append("empty table: no statistics, patterns or examples")
        for c in cols:
            if c.name not in stats:
                continue
            st = stats[c.name]
            if c.row_count and c.null_count == c.row_count:
                c.skipped.append("all values are NULL")
                continue
            if c.affinity == "blob":
                c.skipped.append("BLOB column: no range, pattern or examples")
                continue
            if c.affinity in ("text", "mixed"):
                self._profile_text(c, st, result)
            else:
                self._profile_other(c, st)
        result.stats = stats
        tprof.signature = signature
        result.queries = self.queries - start_queries
        return result

    def _aggregate(self, tq: str, group: list[ColumnProfile], stats: dict[str, dict[str, Any]]) -> int | str:
        """One statistics query over ``group``: fills the profiles and ``stats``.

        Per column: non-NULL count, distinct count, MIN, MAX, total text length (of the value
        rendered as text on servers, where LENGTH takes only strings) and, on SQLite, the count
        of each storage class. On PostgreSQL, booleans are aggregated as integers (it has no
        MIN/MAX of boolean). Values are made JSON-plain (see :func:`plain_value`).

        Returns:
            The table's row count, or the error message when the query failed (the columns'
            ``skipped`` then say so).
        """
        sqlite = self.dialect == "sqlite"
        exprs = ["COUNT(*)"]
        for c in group:
            cq = self.q(c.name)
            agg = f"CAST({cq} AS INTEGER)" if self.dialect == "postgres" and _BOOL.fullmatch(c.type or "") else cq
            length = f"LENGTH({cq})" if sqlite else f"LENGTH(CAST({cq} AS TEXT))"
            exprs += [f"COUNT({cq})", f"COUNT(DISTINCT {cq})", f"MIN({agg})", f"MAX({agg})", f"SUM({length})"]
            if sqlite:
                exprs += [f"SUM(typeof({cq}) = '{s}')" for s in _STORAGE]
        res = self.run(f"SELECT {', '.join(exprs)} FROM {tq}", max_rows=1)
        if not res.ok or not res.rows:
            msg = f"statistics query failed: {res.error}"
            for c in group:
                if msg not in c.skipped:
                    c.skipped.append(msg)
            return msg
        row = list(res.rows[0])
        row_count = int(row[0] or 0)
        pos = 1
        width = 5 + (4 if sqlite else 0)
        for c in group:
            vals = row[pos:pos + width]
            pos += width
            nonnull, distinct, mn, mx, total_len = vals[:5]
            c.row_count = row_count
            c.null_count = row_count - int(nonnull or 0)
            c.distinct_count = int(distinct or 0)
            c.unique = bool(nonnull) and c.distinct_count == int(nonnull)
            if sqlite:
                c.storage_types = {s: int(n or 0) for s, n in zip(_STORAGE, vals[5:]) if n}
            st = {"nonnull": int(nonnull or 0), "distinct": c.distinct_count,
                  "min": None if _is_blob(mn) else plain_value(mn), "max": None if _is_blob(mx) else plain_value(mx),
                  "total_length": plain_value(total_len)}
            stats[c.name] = st
            self._classify(c, st)
        return row_count

    def _classify(self, c: ColumnProfile, st: dict[str, Any]) -> None:
        """Set ``affinity`` from the storage classes seen (SQLite) or the declared type."""
        family = type_family(c.type)
        if st["nonnull"] == 0:
            c.affinity = "empty"
            return
        if c.storage_types:
            kinds = {k for k, n in c.storage_types.items() if n}
            if kinds == {"blob"}:
                c.affinity = "blob"
            elif kinds <= {"integer", "real"}:
                c.affinity = "date" if family == "date" else "number"
            elif kinds == {"text"}:
                c.affinity = "text"
            else:
                c.affinity = "mixed"
                shares = ", ".join(f"{k} {n}" for k, n in sorted(c.storage_types.items()))
                c.skipped.append(f"mixed storage types ({shares}): no value range")
            return
        if family == "blob":
            c.affinity = "blob"
        elif family in ("number", "date"):
            c.affinity = family
        else:
            mn = st.get("min")
            c.affinity = "number" if isinstance(mn, (int, float)) and not isinstance(mn, bool) else "text"

    def _frequent(self, c: ColumnProfile, limit: int, expr: str | None = None):
        cq = self.q(c.name)
        sel = expr or cq
        return self.run(
            f"SELECT {sel}, COUNT(*) AS n FROM {self.q(c.table)} WHERE {cq} IS NOT NULL "
            f"GROUP BY {sel} ORDER BY n DESC, {sel} LIMIT {limit}",
            max_rows=limit,
        )

    def _profile_other(self, c: ColumnProfile, st: dict[str, Any]) -> None:
        c.min_value, c.max_value = st.get("min"), st.get("max")
        # a server's typed date/time column: read enough values for a pattern too, so it gets
        # the date format that SQLite's text dates get from _profile_text
        typed_dates = c.affinity == "date" and self.dialect != "sqlite"
        limit = max(self.opts.examples, self.opts.pattern_sample) if typed_dates else self.opts.examples
        res = self._frequent(c, limit)
        if res.ok:
            values = [plain_value(r[0]) for r in res.rows if not _is_blob(r[0])]
            c.examples = values[: self.opts.examples]
            if typed_dates and values:
                c.pattern = value_pattern([str(v) for v in values])
        else:
            c.skipped.append(f"examples query failed: {res.error}")

    def _profile_text(self, c: ColumnProfile, st: dict[str, Any], result: TableResult) -> None:
        opts = self.opts
        nonnull = st["nonnull"] or 1
        total = st.get("total_length")
        avg_len = float(total) / nonnull if isinstance(total, (int, float)) else 0.0
        if avg_len > opts.max_avg_index_length:
            # long free text: sample a few truncated cells for the pattern, index nothing
            res = self.run(
                f"SELECT SUBSTR({self.q(c.name)}, 1, 300) FROM {self.q(c.table)} "
                f"WHERE {self.q(c.name)} IS NOT NULL LIMIT {opts.pattern_sample}",
                max_rows=opts.pattern_sample,
            )
            values = [str(r[0]) for r in res.rows if r[0] is not None and not _is_blob(r[0])] if res.ok else []
            c.pattern = value_pattern(values)
            c.pattern.kind = "free_text"
            c.pattern.avg_length = round(avg_len, 2)
            c.examples = []
            c.skipped.append(f"long free text (average {avg_len:.0f} characters): not indexed, no examples")
            return
        res = self._frequent(c, opts.max_values_per_column)
        if not res.ok:
            c.skipped.append(f"values query failed: {res.error}")
            return
        if res.truncated:
            c.skipped.append(f"more than {opts.max_values_per_column} distinct values: only the most frequent were read")
        texts: list[str] = []
        for v, _n in res.rows:
            if v is None or _is_blob(v):
                continue
            texts.append(v if isinstance(v, str) else str(v))
        if any("\ufffd" in t for t in texts[:5000]):
            c.skipped.append("text that is not valid UTF-8 was decoded with replacement characters")
        c.examples = [t for t in texts[: opts.examples]]
        sample = texts if len(texts) <= opts.pattern_sample else random.Random(0).sample(texts, opts.pattern_sample)
        c.pattern = value_pattern(sample)
        if c.pattern.kind == "numeric_text" and not res.truncated:
            nums = [_to_number(t) for t in texts]
            nums = [x for x in nums if x is not None]
            if nums:
                c.min_value, c.max_value = min(nums), max(nums)
        if c.pattern.date_format and c.affinity == "text":
            c.affinity = "date"
            if c.pattern.date_format.startswith("%Y"):
                c.min_value, c.max_value = st.get("min"), st.get("max")
        reason = indexable_reason(c, avg_len, opts) if c.affinity in ("text", "mixed") else "date values"
        if reason is None:
            kept = [t for t in texts if len(t) <= opts.max_index_length and t.strip()]
            if len(kept) < len(texts):
                c.skipped.append(f"{len(texts) - len(kept)} values longer than {opts.max_index_length} characters not indexed")
            result.values[c.name] = kept
            c.indexed = True
        else:
            c.skipped.append(f"not in the value index: {reason}")
