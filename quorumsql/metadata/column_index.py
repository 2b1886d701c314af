"""Column index: embeddings of ``"table.column: description"`` in a chromadb collection.

The column retriever of XiYan-SQL (paper 003, section 4.1) ranks columns by the similarity of
the question's keywords to column descriptions; this is its store. Vectors come from
:class:`quorumsql.llm.embeddings.MiniLMEmbedder` (offline ONNX) and are handed to chromadb
explicitly, so chromadb's own embedding function (which downloads a model) is never used.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from quorumsql.metadata.models import ColumnProfile

COLLECTION = "columns"


class ColumnHit(NamedTuple):
    """One column near a text: ``score`` is the cosine similarity of the embeddings (-1..1)."""

    table: str
    column: str
    score: float

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def humanize(name: str) -> str:
    """``SongReleaseYear`` / ``song_release_year`` -> ``song release year``."""
    return " ".join(_CAMEL.sub(" ", name).replace("_", " ").split()).lower()


def column_text(profile: ColumnProfile) -> str:
    """The text embedded for a column: ``"table.column: description"`` (the humanised column
    name stands in when there is no description)."""
    desc = " ".join((profile.description or "").split()) or humanize(profile.name)
    return f"{profile.table}.{profile.name}: {desc}"


def chroma_client(path: Path):
    """A chromadb client persisted under ``path``, telemetry off (every index of ours uses it)."""
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    return chromadb.PersistentClient(path=str(path), settings=ChromaSettings(anonymized_telemetry=False))


def replace_collection(client, name: str, *, ids: Sequence[str], vectors: np.ndarray,
                       documents: Sequence[str], metadatas: Sequence[dict]):
    """Drop the cosine collection ``name`` if it exists and fill a new one, 4,000 rows per add.

    Args:
        client: a :func:`chroma_client`.
        ids, documents, metadatas: one per row.
        vectors: ``(len(ids), d)`` embeddings, L2-normalised.

    Returns:
        The new collection.
    """
    try:
        client.delete_collection(name)
    except Exception:  # chromadb raises different types across versions when it is absent
        pass
    col = client.get_or_create_collection(name, embedding_function=None, metadata={"hnsw:space": "cosine"})
    vectors = np.asarray(vectors, dtype=np.float32)
    batch = 4000
    for s in range(0, len(ids), batch):
        col.add(ids=list(ids[s:s + batch]), embeddings=vectors[s:s + batch].tolist(),
                documents=list(documents[s:s + batch]), metadatas=list(metadatas[s:s + batch]))
    return col


class ColumnIndex:
    """Nearest columns to a text, by cosine similarity of MiniLM embeddings.

    Args:
        path: the chromadb directory.
        embedder: object with ``embed(list[str]) -> ndarray (n, d)``, L2-normalised.
    """

    def __init__(self, path: str | Path, embedder) -> None:
        self.path = Path(path)
        self.embedder = embedder
        self._collection = None

    @property
    def collection(self):
        """The chromadb collection (opened on first use)."""
        if self._collection is None:
            self._collection = chroma_client(self.path).get_or_create_collection(
                COLLECTION, embedding_function=None, metadata={"hnsw:space": "cosine"}
            )
        return self._collection

    @classmethod
    def build(cls, path: str | Path, profiles: Sequence[ColumnProfile], vectors: np.ndarray, embedder) -> "ColumnIndex":
        """Create (or replace) the collection with one entry per column.

        Args:
            profiles: the columns; ids are ``"table.column"``.
            vectors: ``(len(profiles), d)`` embeddings of :func:`column_text`.
        """
        p = Path(path)
        p.mkdir(parents=True, exist_ok=True)
        col = replace_collection(
            chroma_client(p), COLLECTION, vectors=vectors,
            ids=[f"{i}:{c.table}.{c.name}" for i, c in enumerate(profiles)],
            documents=[column_text(c) for c in profiles],
            metadatas=[{"table": c.table, "column": c.name} for c in profiles],
        )
        index = cls(p, embedder)
        index._collection = col
        return index

    def query(self, text: str, k: int = 10, *, tables: Sequence[str] | None = None) -> list[ColumnHit]:
        """The ``k`` columns nearest to ``text``.

        Args:
            text: a keyword, phrase or question.
            k: results at most.
            tables: restrict to these tables (exact names).

        Returns:
            :class:`ColumnHit` ``(table, column, score)`` tuples, best first; ``score`` is the
            cosine similarity.
        """
        if not text or not text.strip():
            return []
        col = self.collection
        n = col.count()
        if n == 0:
            return []
        vec = self.embedder.embed([text])[0].astype(np.float32).tolist()
        where = {"table": {"$in": list(tables)}} if tables else None
        res = col.query(query_embeddings=[vec], n_results=min(k, n), where=where,
                        include=["metadatas", "distances"])
        out = []
        for meta, dist in zip(res["metadatas"][0], res["distances"][0]):
            out.append(ColumnHit(meta["table"], meta["column"], round(1.0 - float(dist), 4)))
        return out
