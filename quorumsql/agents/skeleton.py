"""Question skeletons: a question with its entities replaced by type tokens.

XiYan-SQL's ICL generator (paper 003, section 5.2) picks few-shot examples by the similarity of
*question skeletons*: entities are masked so that "singers from France" and "singers from
Germany" look alike, while the kind of entity survives. XiYan finds entities with NLTK's
named-entity tagger; here, without NLTK data (unreachable offline), the database itself says
what is an entity:

1. quoted text (``"..."``, ``'...'``, curly quotes) is looked up as a cell value and becomes its
   column's token, else ``<value>``;
2. dates (``2014-05-03``, ``05/03/2014``, ``May 3, 2014``, ``3 May 2014``, ``June 2014``)
   become ``<date>``;
3. word spans that are cell values become their column's token (``France`` in
   ``singer.Country`` -> ``<country>``), longest spans first, so ``Papua New Guinea`` is one
   entity and not ``Papua New <name>``;
4. the remaining numbers (``30``, ``5,000``, ``2.5``, ``3rd``, ``40%``) become ``<number>``.

Cell values come from a *value source*: a mapping ``{value: column}`` (for pool examples,
:func:`sql_values` reads it off their SQL: the literals compared to columns), or a callable
``span -> column | (table, column) | None`` (for the question being asked,
:func:`store_values` looks spans up in the database's value index through
:mod:`quorumsql.metadata.retrieval`). :func:`mask_question` is pure; :func:`question_skeleton`
is the helper that takes a metadata store.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from rapidfuzz import fuzz

from quorumsql.metadata.column_index import humanize
from quorumsql.metadata.retrieval import IndexedStore, lookup_values, question_ngrams
from quorumsql.metadata.value_index import word_tokens

__all__ = [
    "SKELETON_MIN_SCORE", "SKELETON_VERSION", "Mask", "Skeleton", "ValueSource", "mask_question",
    "question_skeleton", "sql_values", "store_values",
]

# Bump when the masking rules change: cached pool embeddings are keyed by it.
SKELETON_VERSION = 2
# Least similarity (0..1, rapidfuzz ratio to the whole cell value) for a span to count as a value.
SKELETON_MIN_SCORE = 0.9

# A value lookup: span -> column name, (table, column), or None when the span is not a value.
ValueSource = Mapping[str, str] | Callable[[str], "str | tuple[str, str] | None"]

_QUOTED = re.compile(r"\"([^\"\n]+)\"|“([^”\n]+)”|‘([^’\n]+)’|(?<![\w'])'([^'\n]+)'(?![\w'])")
_MONTH = (r"(?:January|February|March|April|June|July|August|September|October|November|December|"
          r"Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sept|Sep|Oct|Nov|Dec|May(?-i:(?<!may)))\.?")
_DAY = r"\d{1,2}(?:st|nd|rd|th)?"
_DATE = re.compile(
    r"(?i)(?<![\w-])(?:"
    r"\d{4}-\d{1,2}-\d{1,2}(?:[ T]\d{1,2}:\d{2}(?::\d{2})?)?"  # 2014-05-03 [10:30[:00]]
    r"|\d{1,2}[/.]\d{1,2}[/.]\d{2,4}"  # 05/03/2014, 3.5.14
    rf"|{_MONTH}\s+{_DAY},?\s+\d{{4}}"  # May 3, 2014
    rf"|{_DAY}\s+(?:of\s+)?{_MONTH},?\s+\d{{4}}"  # 3 May 2014, 3rd of May 2014
    rf"|{_MONTH},?\s+\d{{4}}"  # June 2014
    r"|\d{4}-\d{2}(?!\d)"  # 2014-05
    r")(?![\w-])"
)
_NUMBER = re.compile(r"(?<![\w.])[-+]?\d+(?:,\d{3})*(?:\.\d+)?(?:st|nd|rd|th)?%?(?!\w)")
_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class Mask:
    """One masked span of a question.

    Attributes:
        start, end: character offsets of the span in the original question.
        text: the span as written.
        token: what replaced it (``<country>``, ``<number>``, ``<date>``, ``<value>``).
        kind: ``value`` (a cell value), ``quoted`` (quoted text that is no known value),
            ``date`` or ``number``.
        table, column: where the value is stored, when the value source said so.
    """

    start: int
    end: int
    text: str
    token: str
    kind: Literal["value", "quoted", "date", "number"]
    table: str | None = None
    column: str | None = None


@dataclass(frozen=True)
class Skeleton:
    """A question with its entities masked.

    Attributes:
        text: the skeleton, e.g. ``How many singers from <country>?``.
        masks: the masked spans, in question order.
    """

    text: str
    masks: list[Mask] = field(default_factory=list)

    @property
    def tables(self) -> list[str]:
        """Tables holding the masked values (known for value-index hits), first seen first."""
        return list(dict.fromkeys(m.table for m in self.masks if m.table))


def column_token(column: str) -> str:
    """The token a value of ``column`` becomes: ``Country`` -> ``<country>``, ``Song_Name`` -> ``<song name>``."""
    return f"<{humanize(column) or 'value'}>"


def _normal(text: str) -> str:
    return " ".join(word_tokens(text))


def _lookup(values: ValueSource | None, span: str) -> tuple[str | None, str] | None:
    """``(table or None, column)`` of ``span`` per the value source, or None."""
    if values is None:
        return None
    found = values.get(_normal(span)) if isinstance(values, Mapping) else values(span)
    if not found:
        return None
    if isinstance(found, tuple):
        return found[0], found[1]
    return None, str(found)


def _free(taken: list[tuple[int, int]], start: int, end: int) -> bool:
    return all(end <= s or start >= e for s, e in taken)


def mask_question(question: str, values: ValueSource | None = None, *, max_words: int = 4) -> Skeleton:
    """Mask the entities of ``question`` (see the module docstring for the rules and their order).

    Args:
        question: the question.
        values: where cell values are known: a mapping ``{value: column}`` (keys compared as
            lower-cased words, so ``"Stark's Park"`` matches ``stark s park``), or a callable
            taking a span of the question and returning its column (or ``(table, column)``),
            or None for type tokens only (dates, numbers, quoted text).
        max_words: longest word span looked up as a value.

    Returns:
        The :class:`Skeleton`; text outside the masked spans is kept as written.

    Raises:
        Whatever a callable value source raises (e.g. ``MetadataIndexError`` from the value index).
    """
    if isinstance(values, Mapping):
        values = {_normal(k): v for k, v in values.items()}
    masks: list[Mask] = []
    taken: list[tuple[int, int]] = []

    def add(start: int, end: int, token: str, kind, table=None, column=None) -> None:
        masks.append(Mask(start, end, question[start:end], token, kind, table, column))
        taken.append((start, end))

    for m in _QUOTED.finditer(question):
        inner = next(g for g in m.groups() if g is not None)
        hit = _lookup(values, inner.strip())
        if hit:
            add(m.start(), m.end(), column_token(hit[1]), "value", *hit)
        else:
            add(m.start(), m.end(), "<value>", "quoted")
    for m in _DATE.finditer(question):
        if _free(taken, m.start(), m.end()):
            add(m.start(), m.end(), "<date>", "date")

    if values is not None:
        words = [w for w in _WORD.finditer(question)]
        # runs of consecutive words that no earlier mask touches
        runs: list[list[re.Match]] = [[]]
        for w in words:
            if _free(taken, w.start(), w.end()):
                runs[-1].append(w)
            elif runs[-1]:
                runs.append([])
        wanted = set(question_ngrams(question, max_words=max_words))
        for n in range(max_words, 0, -1):
            for run in runs:
                for i in range(len(run) - n + 1):
                    span = run[i:i + n]
                    start, end = span[0].start(), span[-1].end()
                    phrase = " ".join(w.group().lower() for w in span)
                    if phrase not in wanted or phrase.replace(" ", "").isdigit() or not _free(taken, start, end):
                        continue
                    hit = _lookup(values, question[start:end])
                    if hit:
                        add(start, end, column_token(hit[1]), "value", *hit)

    for m in _NUMBER.finditer(question):
        if _free(taken, m.start(), m.end()):
            add(m.start(), m.end(), "<number>", "number")

    masks.sort(key=lambda m: m.start)
    parts, pos = [], 0
    for m in masks:
        parts.append(question[pos:m.start])
        parts.append(m.token)
        pos = m.end
    parts.append(question[pos:])
    return Skeleton(" ".join("".join(parts).split()), masks)


def store_values(store: IndexedStore, *, min_score: float = SKELETON_MIN_SCORE,
                 k: int = 5) -> Callable[[str], tuple[str, str] | None]:
    """A value source over a database's value index, for :func:`mask_question`.

    A span is a value when the value index (:func:`quorumsql.metadata.retrieval.lookup_values`)
    returns a hit scoring at least ``min_score`` *and* the span matches the whole cell value
    (rapidfuzz ``fuzz.ratio`` of the lower-cased texts, 0..1, at least ``min_score``): a word
    inside a longer value ("stadium" in "Bayview Stadium") is not that value.

    Args:
        store: the database's metadata store (anything with a ``value_index``).
        min_score: least score, 0..1 (default :data:`SKELETON_MIN_SCORE`).
        k: hits examined per span.

    Returns:
        ``span -> (table, column)`` of the best whole-value match, or None.
    """

    def find(span: str) -> tuple[str, str] | None:
        best: tuple[float, str, str] | None = None
        norm = _normal(span)
        for hit in lookup_values(store, span, k=k, min_score=min_score):
            whole = fuzz.ratio(norm, _normal(hit.value)) / 100.0
            if whole >= min_score and (best is None or whole > best[0]):
                best = (whole, hit.table, hit.column)
        return (best[1], best[2]) if best else None

    return find


def question_skeleton(question: str, store: IndexedStore | None = None, *,
                      min_score: float = SKELETON_MIN_SCORE, max_words: int = 4) -> Skeleton:
    """The skeleton of a question asked of a database: :func:`mask_question` over its value index.

    Args:
        question: the question.
        store: the database's metadata store; None masks dates, numbers and quoted text only.
        min_score: see :func:`store_values`.
        max_words: longest word span looked up.

    Raises:
        MetadataIndexError: the store's value index is missing or unreadable.
    """
    source = store_values(store, min_score=min_score) if store is not None else None
    return mask_question(question, source, max_words=max_words)


def _double_quoted(node) -> bool:
    """An unqualified double-quoted name (``"JetBlue Airways"``), which SQLite reads as a string
    when no column has that name."""
    from sqlglot import exp

    return (isinstance(node, exp.Column) and not node.table and isinstance(node.this, exp.Identifier)
            and node.this.quoted)


def sql_values(sql: str, dialect: str | None = None) -> dict[str, str]:
    """The string literals an SQL query compares to columns: ``{value: column}``.

    Covers ``=``, ``<>``, ``<``, ``>``, ``<=``, ``>=``, ``LIKE`` (``%`` and ``_`` wildcards at
    the ends stripped) and ``IN (...)``. A double-quoted name compared to a column counts as a
    string too (``Airline = "JetBlue Airways"``: SQLite's fallback, which Spider's SQL uses in
    82 of its 485 dev queries). This is how pool examples are masked: their SQL says
    which words of their question are cell values, without opening their database.

    Args:
        sql: one query.
        dialect: sqlglot dialect to parse with (None: sqlglot's default).

    Returns:
        ``{literal text: column name}``; empty when the SQL does not parse.
    """
    import sqlglot
    from sqlglot import exp
    from sqlglot.errors import SqlglotError

    try:
        tree = sqlglot.parse_one(sql, read=dialect)
    except (SqlglotError, ValueError):
        return {}
    if tree is None:
        return {}
    out: dict[str, str] = {}
    comparisons = (exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.Like, exp.ILike)
    for node in tree.find_all(*comparisons, exp.In):
        if isinstance(node, exp.In):
            column, literals = node.this, node.expressions
        else:
            left, right = node.left, node.right
            column, literals = (left, [right]) if isinstance(left, exp.Column) else (right, [left])
        if not isinstance(column, exp.Column) or _double_quoted(column):
            continue
        for lit in literals:
            if isinstance(lit, exp.Literal) and lit.is_string:
                raw = lit.this
            elif _double_quoted(lit):
                raw = lit.name
            else:
                continue
            text = raw.strip("%_ ") if isinstance(node, (exp.Like, exp.ILike)) else raw.strip()
            if text:
                out.setdefault(text, column.name)
    return out
