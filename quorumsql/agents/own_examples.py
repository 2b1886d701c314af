"""Choosing examples from the asked database's own memory, by question-skeleton similarity.

The ICL generator of XiYan-SQL (paper 003, section 5.2) ranks candidate examples by the cosine
similarity of *question skeletons*: the question with its entities replaced by type tokens
(:mod:`quorumsql.agents.skeleton`), so that examples are chosen for the shape of what is asked,
not for the names in it. The cross-database pool (:mod:`quorumsql.agents.icl_pool`) does this
over other databases; this module does it over the pairs the asked database's
:class:`~quorumsql.metadata.examples.ExampleMemory` holds.

* A pair's skeleton masks the literals its own SQL compares to columns
  (:func:`~quorumsql.agents.skeleton.sql_values`), exactly as pool examples are masked.
* Skeletons are embedded with the offline MiniLM (or any ``embed(list[str]) -> (n, d)`` with
  L2-normalised rows) and the vectors are kept in the memory file, keyed by the masking rules'
  version and the embedder, so each pair is embedded once.
* :func:`nearest_pairs` returns the ``k`` most similar servable pairs, skipping a pair whose
  SQL repeats a better one's and any pair the caller excludes.

No similarity threshold applies: an example from the same database shares the asked schema,
and the measurement in issue 18 (three same-database examples by plain similarity, 52% -> 68%
EX with one call) had none.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from quorumsql.agents.skeleton import SKELETON_VERSION, mask_question, sql_values
from quorumsql.metadata.examples import ExampleMemory, ExamplePair

__all__ = ["ScoredPair", "nearest_pairs", "pair_skeleton", "vector_kind"]


class ScoredPair(NamedTuple):
    """A memory pair and the cosine similarity (-1..1) of its skeleton to the question's."""

    pair: ExamplePair
    similarity: float


def pair_skeleton(pair: ExamplePair) -> str:
    """The skeleton of a stored pair's question, masked with the literals of its SQL."""
    return mask_question(pair.question, sql_values(pair.sql)).text


def vector_kind(embedder) -> str:
    """The key its skeleton vectors are stored under: masking rules' version and embedder name."""
    return f"skeleton-v{SKELETON_VERSION}|{getattr(embedder, 'name', type(embedder).__name__)}"


def _sql_key(sql: str) -> str:
    return " ".join(sql.lower().rstrip("; \n").split())


# (memory path, generation, vector kind) -> (pairs, matrix): the embeddings of one state of a memory
_MATRICES: dict[tuple[str, int, str], tuple[list[ExamplePair], np.ndarray]] = {}
_LOCK = threading.Lock()


def _matrix(memory: ExampleMemory, embedder) -> tuple[list[ExamplePair], np.ndarray]:
    """The servable pairs and their skeleton embeddings (rows in pair order), cached per memory state."""
    kind = vector_kind(embedder)
    generation = memory.generation
    key = (str(memory.path), generation, kind)
    with _LOCK:
        cached = _MATRICES.get(key)
    if cached is not None:
        return cached
    pairs = memory.pairs()
    stored = memory.vectors(kind)
    skeletons = [pair_skeleton(p) for p in pairs]
    missing = [(p, s) for p, s in zip(pairs, skeletons) if p.id not in stored or stored[p.id][0] != s]
    if missing:
        vectors = embedder.embed([s for _, s in missing])
        fresh = {p.id: (s, np.asarray(v, dtype=np.float32)) for (p, s), v in zip(missing, vectors)}
        memory.put_vectors(kind, fresh)
        stored = {**stored, **fresh}
    matrix = (np.stack([stored[p.id][1] for p in pairs]).astype(np.float32) if pairs
              else np.zeros((0, 0), dtype=np.float32))
    with _LOCK:
        for old in [k for k in _MATRICES if k[0] == key[0] and k[2] == kind]:
            del _MATRICES[old]
        _MATRICES[key] = (pairs, matrix)
    return pairs, matrix


def nearest_pairs(
    memory: ExampleMemory,
    skeleton: str,
    *,
    k: int = 3,
    embedder=None,
    exclude: Callable[[ExamplePair], bool] | None = None,
) -> list[ScoredPair]:
    """The memory's pairs whose skeletons are nearest to ``skeleton`` (XiYan-SQL section 5.2).

    Args:
        memory: the asked database's memory.
        skeleton: the asked question's skeleton
            (:func:`~quorumsql.agents.skeleton.question_skeleton` over the database's value index).
        k: pairs at most (0 gives none).
        embedder: ``embed(list[str]) -> ndarray (n, d)`` with L2-normalised rows (default: the
            offline MiniLM).
        exclude: pairs never to return (a benchmark's guard against the asked question's own
            pair and its twins).

    Returns:
        Up to ``k`` :class:`ScoredPair`, most similar first; pairs whose SQL no longer runs are
        never among them, nor a pair whose SQL (case and spacing ignored) repeats a better one's.

    Raises:
        ExampleMemoryError: the memory cannot be read.
        ModelError: the embedding model cannot be loaded.
    """
    if k <= 0:
        return []
    if embedder is None:
        from quorumsql.llm.embeddings import default_embedder

        embedder = default_embedder()
    pairs, matrix = _matrix(memory, embedder)
    if not pairs:
        return []
    query = np.asarray(embedder.embed([skeleton])[0], dtype=np.float32)
    scores = matrix @ query
    chosen: list[ScoredPair] = []
    seen: set[str] = set()
    for i in np.argsort(-scores, kind="stable"):
        pair = pairs[int(i)]
        if exclude is not None and exclude(pair):
            continue
        key = _sql_key(pair.sql)
        if key in seen:
            continue
        seen.add(key)
        chosen.append(ScoredPair(pair, round(float(scores[int(i)]), 4)))
        if len(chosen) >= k:
            break
    return chosen

