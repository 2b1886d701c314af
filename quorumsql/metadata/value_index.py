"""Value index: every distinct text value of the indexable columns, searchable by keyword.

Two bm25s indexes over the same documents (one document per distinct value per column):

* words: lower-cased ``\\w+`` tokens, BM25 (Robertson & Walker 1994) as MCI-SQL uses for
  question-relevant examples (paper 004, section 3.1.2);
* character trigrams of the value padded with spaces, BM25 again, for misspellings and partial
  matches (in the spirit of XiYan-SQL's two-phase value retrieval, paper 003, section 4.1,
  with n-gram overlap instead of LSH).

Hits from both are re-scored with a string similarity (rapidfuzz's normalised Indel similarity
``fuzz.ratio`` of the keyword to the value, and to the value's best-matching word window),
computed for all candidates of a lookup in one ``process.cdist`` call, so that the final score
is in 0..1.
The indexes persist with bm25s and are memory-mapped when loaded; values are stored as one
UTF-8 blob plus offsets (``numpy`` arrays, memory-mapped too).

Which columns are indexed is decided by :func:`quorumsql.metadata.profiler.indexable_reason`:
text columns, minus identifiers (``id``, ``*_id``, uuids, hashes), primary keys, e-mails, URLs,
hex strings, dates, numbers stored as text and long free text (average over 60 characters);
single values over 120 characters are dropped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
from rapidfuzz import fuzz, process

_WORD = re.compile(r"\w+", re.UNICODE)
_WINDOW_WEIGHT = 0.95  # a match inside a longer value ranks just below a match of the whole value


class ValueHit(NamedTuple):
    """One cell value matching a keyword.

    Attributes:
        table, column: where the value is stored.
        value: the distinct cell value, as stored.
        score: 0..1; 1 means the same text as the keyword, ignoring case and spacing.
    """

    table: str
    column: str
    value: str
    score: float


def word_tokens(text: str) -> list[str]:
    """Lower-cased word tokens (``\\w+``), single characters included."""
    return _WORD.findall(text.lower())


def trigrams(text: str) -> list[str]:
    """Distinct character trigrams of ``" " + lower(text) + " "`` (whitespace collapsed)."""
    s = " " + " ".join(text.lower().split()) + " "
    return list(dict.fromkeys(s[i:i + 3] for i in range(len(s) - 2)))


def _squash(text: str) -> str:
    return " ".join(text.lower().split())


def similarities(keyword: str, values: Sequence[str]) -> np.ndarray:
    """String similarity of ``keyword`` to each of ``values``, in 0..1.

    For each value: the best of rapidfuzz's ``fuzz.ratio`` (normalised Indel similarity,
    ``1 - indel_distance / (len(a) + len(b))``) to the whole value and, times 0.95, to any
    window of the value's words as long as the keyword (so "Dublin" matches "Dublin Airport"
    well). Case and runs of whitespace are ignored; one ``process.cdist`` call scores all strings.

    Returns:
        float array of shape ``(len(values),)``; 0 for empty strings.
    """
    k = _squash(keyword)
    out = np.zeros(len(values), dtype=np.float64)
    if not k or not len(values):
        return out
    width = len(k.split())
    texts: list[str] = []
    owner: list[int] = []
    weight: list[float] = []
    for i, value in enumerate(values):
        v = _squash(value)
        if not v:
            continue
        texts.append(v)
        owner.append(i)
        weight.append(1.0)
        words = v.split()
        for start in range(len(words) - width + 1 if len(words) > width else 0):
            texts.append(" ".join(words[start:start + width]))
            owner.append(i)
            weight.append(_WINDOW_WEIGHT)
    if not texts:
        return out
    raw = process.cdist([k], texts, scorer=fuzz.ratio, dtype=np.float64, workers=1)[0] / 100.0
    np.maximum.at(out, np.asarray(owner), raw * np.asarray(weight))
    return out


def similarity(keyword: str, value: str) -> float:
    """:func:`similarities` of one value (0..1)."""
    return float(similarities(keyword, [value])[0])


def _build_bm25(docs: Iterable[list[str]]):
    import bm25s

    vocab: dict[str, int] = {}
    ids = [[vocab.setdefault(t, len(vocab)) for t in doc] for doc in docs]
    vocab[""] = len(vocab)
    model = bm25s.BM25()
    model.index((ids, vocab), show_progress=False)
    return model


class ValueIndex:
    """BM25 + character-trigram search over distinct cell values.

    Build with :meth:`build`, reopen with :meth:`load`. ``columns`` lists ``(table, column)``;
    document ``i`` is value ``values[i]`` of column ``columns[doc_column[i]]``.
    """

    def __init__(self, columns: list[tuple[str, str]], doc_column: np.ndarray, blob: bytes | np.ndarray,
                 offsets: np.ndarray, words, grams) -> None:
        self.columns = columns
        self.doc_column = doc_column
        self._blob = blob
        self._offsets = offsets
        self._words = words
        self._grams = grams

    # -- construction ----------------------------------------------------------------------
    @classmethod
    def build(cls, values: dict[tuple[str, str], Sequence[str]], directory: str | Path | None = None) -> "ValueIndex":
        """Index ``{(table, column): distinct values}``; save to ``directory`` when given.

        Returns:
            The index (usable at once; :meth:`load` reopens a saved one memory-mapped).
        """
        columns = list(values)
        texts: list[str] = []
        doc_col: list[int] = []
        for ci, key in enumerate(columns):
            for v in values[key]:
                texts.append(v)
                doc_col.append(ci)
        encoded = [t.encode("utf-8", errors="replace") for t in texts]
        offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
        if encoded:
            np.cumsum([len(e) for e in encoded], out=offsets[1:])
        blob = b"".join(encoded)
        doc_column = np.asarray(doc_col, dtype=np.int32)
        words = _build_bm25(word_tokens(t) for t in texts) if texts else None
        grams = _build_bm25(trigrams(t) for t in texts) if texts else None
        index = cls(columns, doc_column, blob, offsets, words, grams)
        if directory is not None:
            index.save(directory)
        return index

    def save(self, directory: str | Path) -> None:
        """Write the index to ``directory`` (created if needed)."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        (d / "columns.json").write_text(json.dumps([list(c) for c in self.columns]), encoding="utf-8")
        np.save(d / "doc_column.npy", self.doc_column)
        np.save(d / "offsets.npy", self._offsets)
        blob = self._blob if isinstance(self._blob, (bytes, bytearray)) else bytes(self._blob)
        np.save(d / "values.npy", np.frombuffer(blob, dtype=np.uint8))
        if self._words is not None:
            self._words.save(str(d / "words"), show_progress=False)
            self._grams.save(str(d / "grams"), show_progress=False)

    @classmethod
    def load(cls, directory: str | Path, *, mmap: bool = True) -> "ValueIndex":
        """Reopen an index saved by :meth:`save`; arrays are memory-mapped when ``mmap``."""
        import bm25s

        d = Path(directory)
        mode = "r" if mmap else None
        columns = [tuple(c) for c in json.loads((d / "columns.json").read_text(encoding="utf-8"))]
        doc_column = np.load(d / "doc_column.npy", mmap_mode=mode)
        offsets = np.load(d / "offsets.npy", mmap_mode=mode)
        blob = np.load(d / "values.npy", mmap_mode=mode)
        words = grams = None
        if (d / "words").is_dir():
            words = bm25s.BM25.load(str(d / "words"), mmap=mmap, show_progress=False)
            grams = bm25s.BM25.load(str(d / "grams"), mmap=mmap, show_progress=False)
        return cls(columns, doc_column, blob, offsets, words, grams)

    # -- access ----------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._offsets) - 1

    def value(self, i: int) -> str:
        """The text of document ``i``."""
        a, b = int(self._offsets[i]), int(self._offsets[i + 1])
        raw = self._blob[a:b]
        return (raw if isinstance(raw, (bytes, bytearray)) else raw.tobytes()).decode("utf-8", errors="replace")

    def values_of(self, table: str, column: str) -> list[str]:
        """All indexed values of one column."""
        try:
            ci = self.columns.index((table, column))
        except ValueError:
            low = (table.lower(), column.lower())
            ci = next((i for i, c in enumerate(self.columns) if (c[0].lower(), c[1].lower()) == low), -1)
        if ci < 0:
            return []
        return [self.value(int(i)) for i in np.nonzero(np.asarray(self.doc_column) == ci)[0]]

    @staticmethod
    def _top(model, tokens: list[str], k: int) -> list[tuple[int, float]]:
        ids = [model.vocab_dict[t] for t in tokens if t in model.vocab_dict]
        if not ids:
            return []
        scores = model.get_scores_from_ids(ids)
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        return [(int(i), float(scores[i])) for i in top if scores[i] > 0]

    def lookup(self, keyword: str, k: int = 10, *, min_score: float = 0.0,
               tables: Iterable[str] | None = None) -> list[ValueHit]:
        """Values matching ``keyword`` exactly, by words, or approximately (misspellings).

        Args:
            keyword: a word, a phrase or a whole question.
            k: hits returned at most.
            min_score: drop hits scoring below this (0..1).
            tables: keep only hits from these tables (case-insensitive).

        Returns:
            :class:`ValueHit` ``(table, column, value, score)`` tuples, best first; ``score`` in 0..1 (1 = same text,
            ignoring case and spacing).
        """
        if self._words is None or not keyword or not keyword.strip():
            return []
        pool = max(50, 5 * k)
        cands: dict[int, float] = {}
        word_hits = self._top(self._words, word_tokens(keyword), pool)
        if word_hits:
            best = max(s for _, s in word_hits)
            for i, s in word_hits:
                cands[i] = max(cands.get(i, 0.0), s / best)
        gram_hits = self._top(self._grams, trigrams(keyword), pool)
        if gram_hits:
            best = max(s for _, s in gram_hits)
            for i, s in gram_hits:
                cands[i] = max(cands.get(i, 0.0), 0.5 * s / best)
        allowed = {t.lower() for t in tables} if tables is not None else None
        docs: list[int] = []
        for i in cands:
            table, _ = self.columns[int(self.doc_column[i])]
            if allowed is None or table.lower() in allowed:
                docs.append(i)
        values = [self.value(i) for i in docs]
        sims = similarities(keyword, values)
        hits: list[ValueHit] = []
        for i, value, sim in zip(docs, values, sims):
            table, column = self.columns[int(self.doc_column[i])]
            score = 1.0 if sim >= 1.0 else round(0.8 * float(sim) + 0.2 * cands[i], 4)
            if score >= min_score:
                hits.append(ValueHit(table, column, value, score))
        hits.sort(key=lambda h: (-h.score, len(h.value)))
        return hits[:k]
