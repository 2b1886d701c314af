"""Retrieval over a database's indexes: cell values and columns for keywords and questions.

The one module that searches the value index and the column index of a metadata store
(:class:`~quorumsql.metadata.store.DatabaseMetadata`); schema linking, question-matched examples
and the ICL skeleton all build on it, and renderers only receive its results.

* :func:`question_ngrams`: the word n-grams of a question worth looking up (1 to 3 words;
  n-grams made only of :data:`STOPWORDS`, and short or numeric single words, are dropped).
* :func:`lookup_values`: cell values matching one keyword (exact, word and misspelling matches,
  see :mod:`~quorumsql.metadata.value_index`), as :class:`ValueHit` ``(table, column, value, score)``.
* :func:`lookup_columns`: the top-k columns for one keyword by embedding similarity to
  ``"table.column: description"`` (XiYan-SQL's column retriever, paper 003, section 4.1), as
  :class:`ColumnHit` ``(table, column, score)``.
* :func:`match_values`: many phrases at once, grouped per column, best score per value.
* :func:`question_examples`: values matching a question's n-grams, per column: the
  question-relevant examples of MCI-SQL's metadata context (paper 004, section 3.1.2).

Every function takes the store (anything with ``value_index`` / ``column_index`` attributes)
and raises :class:`~quorumsql.metadata.store.MetadataIndexError` when an index is missing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from quorumsql.metadata.column_index import ColumnHit, ColumnIndex
from quorumsql.metadata.value_index import ValueHit, ValueIndex, word_tokens

__all__ = [
    "STOPWORDS", "ColumnHit", "IndexedStore", "ValueHit", "lookup_columns", "lookup_values", "match_values",
    "question_examples", "question_ngrams",
]

# Words that carry no value to look up on their own: function words and the vocabulary of
# questions about data ("show", "list", "number", "average", ...).
STOPWORDS = frozenset(
    """a an the of in on at to for from by with and or not no is are was were be been being do does did
    have has had what which who whom whose when where why how many much more most less least all any each
    every some than then that this these those there their them they it its as into over under between
    about above below up down out off only same so such both few other own very can will just should now
    i me my we our you your he him his she her show list give find return tell name names number count
    please display get total average sum maximum minimum max min""".split()
)


class IndexedStore(Protocol):
    """What retrieval needs of a store: its two indexes (``DatabaseMetadata`` has both)."""

    @property
    def value_index(self) -> ValueIndex: ...  # pragma: no cover - protocol

    @property
    def column_index(self) -> ColumnIndex: ...  # pragma: no cover - protocol


# A linked schema, as schema_repr.Selection: {table: [columns] | None (all columns)}.
SelectionLike = Mapping[str, "Iterable[str] | None"]


def question_ngrams(text: str, *, max_words: int = 3) -> list[str]:
    """Word n-grams of ``text`` worth looking up in the value index, longest first.

    Words are lower-cased ``\\w+`` tokens. An n-gram (1 to ``max_words`` words) is kept unless
    all its words are :data:`STOPWORDS`; single words are also dropped when shorter than 3
    characters or all digits. Duplicates are removed, first occurrence kept.

    Args:
        text: a question, evidence, or any phrase.
        max_words: longest n-gram.

    Returns:
        The n-grams, e.g. ``"singers from the netherlands"`` gives ``["singers from the",
        "from the netherlands", "singers from", "the netherlands", "singers", "netherlands"]``.
    """
    words = word_tokens(text)
    grams: list[str] = []
    for n in range(max_words, 0, -1):
        for i in range(len(words) - n + 1):
            gram = words[i:i + n]
            if all(w in STOPWORDS for w in gram):
                continue
            if n == 1 and (len(gram[0]) < 3 or gram[0].isdigit()):
                continue
            grams.append(" ".join(gram))
    return list(dict.fromkeys(grams))


def lookup_values(store: IndexedStore, keyword: str, *, k: int = 5, min_score: float = 0.0,
                  tables: Iterable[str] | None = None) -> list[ValueHit]:
    """Cell values matching ``keyword``: exactly, by words, or approximately (misspellings).

    Args:
        store: the database's metadata store.
        keyword: a word or phrase (an entity of the question, e.g. ``"Amsterdm"``).
        k: hits at most.
        min_score: drop hits scoring below this (0..1).
        tables: search only these tables (case-insensitive).

    Returns:
        :class:`ValueHit` ``(table, column, value, score)``, best first; score 1 means the same
        text ignoring case and spacing.

    Raises:
        MetadataIndexError: the value index is missing or unreadable.
    """
    return store.value_index.lookup(keyword, k=k, min_score=min_score, tables=tables)


def lookup_columns(store: IndexedStore, keyword: str, *, k: int = 10,
                   tables: Iterable[str] | None = None) -> list[ColumnHit]:
    """The ``k`` columns whose ``"table.column: description"`` is nearest to ``keyword``.

    Args:
        store: the database's metadata store.
        keyword: a keyword, phrase or question.
        k: columns at most.
        tables: search only these tables (exact names).

    Returns:
        :class:`ColumnHit` ``(table, column, score)``, best first; score is the cosine
        similarity of the MiniLM embeddings (-1..1).

    Raises:
        MetadataIndexError: the column index is missing.
        ModelError: the embedding model cannot be loaded.
    """
    return store.column_index.query(keyword, k=k, tables=list(tables) if tables is not None else None)


def _allowed(selection: SelectionLike | None) -> dict[str, set[str] | None] | None:
    if selection is None:
        return None
    out: dict[str, set[str] | None] = {}
    for table, cols in selection.items():
        key = table.lower()
        if cols is None or out.get(key, set()) is None:
            out[key] = None
        else:
            out.setdefault(key, set()).update(c.lower() for c in cols)  # type: ignore[union-attr]
    return out


def match_values(store: IndexedStore, phrases: Iterable[str], *, k: int = 5, min_score: float = 0.75,
                 selection: SelectionLike | None = None) -> dict[tuple[str, str], list[tuple[str, float]]]:
    """Look every phrase up in the value index; group the hits per column.

    Args:
        store: the database's metadata store.
        phrases: keywords or n-grams (duplicates are looked up once).
        k: hits per phrase at most.
        min_score: drop hits scoring below this (0..1).
        selection: ``{table: [columns] | None}``: keep hits in these columns only (tables
            restrict the search itself; ``None`` as columns keeps the whole table).

    Returns:
        ``{(table, column): [(value, best score)]}``, values best first.

    Raises:
        MetadataIndexError: the value index is missing or unreadable.
    """
    allowed = _allowed(selection)
    tables = list(allowed) if allowed is not None else None
    scored: dict[tuple[str, str], dict[str, float]] = {}
    for phrase in dict.fromkeys(phrases):
        for hit in lookup_values(store, phrase, k=k, min_score=min_score, tables=tables):
            if allowed is not None:
                cols = allowed.get(hit.table.lower(), set())
                if cols is not None and hit.column.lower() not in cols:
                    continue
            slot = scored.setdefault((hit.table, hit.column), {})
            slot[hit.value] = max(slot.get(hit.value, 0.0), hit.score)
    return {key: sorted(vals.items(), key=lambda item: -item[1]) for key, vals in scored.items()}


def question_examples(store: IndexedStore, question: str, selection: SelectionLike | None = None, *,
                      per_column: int = 3, min_score: float = 0.75) -> dict[tuple[str, str], list[Any]]:
    """Cell values that match words or phrases of ``question``, per column.

    The :func:`question_ngrams` of the question are looked up (5 hits each); hits scoring at
    least ``min_score`` are kept, best first. The result is what
    :func:`quorumsql.schema_repr.render_metadata_schema` takes as ``question_examples``.

    Args:
        store: the database's metadata store.
        question: the question (and evidence, if wanted).
        selection: linked schema ``{table: [columns] | None}``; None searches everything.
        per_column: values kept per column.
        min_score: minimum hit score (0..1).

    Returns:
        ``{(table, column): [values]}``.

    Raises:
        MetadataIndexError: the value index is missing or unreadable.
    """
    matched = match_values(store, question_ngrams(question), k=5, min_score=min_score, selection=selection)
    return {key: [value for value, _ in hits[:per_column]] for key, hits in matched.items()}
