"""Diversity of a synthesized set: near-duplicate removal and clustering over embeddings.

The issue's deduplication step (DataFlow keeps data varied with SQL variation and styled
questions, paper 000, section 4.2; ASASQL deduplicates generated queries by embedding and
clusters its candidate pool, paper 001, Stage 1 step 1 and Stage 2 step 2): near-duplicate
questions or SQL are dropped by cosine similarity, and the rest is clustered so that active
selection can pick per cluster and the data covers the schema instead of one pattern.

Vectors are any embedding rows (e.g. :class:`quorumsql.llm.embeddings.MiniLMEmbedder` output,
shape ``(n, 384)``); rows are L2-normalised here, so the input need not be.
"""

from __future__ import annotations

import numpy as np

from quorumsql.errors import InputError

#: k-means restarts (different k-means++ seeds); the one with the lowest inertia wins
KMEANS_RESTARTS = 4
KMEANS_MAX_ITER = 100


def _unit_rows(vectors: np.ndarray, what: str) -> np.ndarray:
    arr = np.asarray(vectors, dtype=np.float64)
    if arr.ndim != 2:
        raise InputError(f"{what} needs a 2-D array of row vectors, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise InputError(f"{what}: vectors contain NaN or infinite values")
    norms = np.linalg.norm(arr, axis=1, keepdims=True)
    return np.divide(arr, norms, out=np.zeros_like(arr), where=norms > 0)


def near_duplicates(vectors: np.ndarray, threshold: float = 0.95) -> list[int]:
    """Rows that repeat an earlier row: cosine similarity >= ``threshold`` to a row that is kept.

    Greedy in row order: row ``i`` is dropped when it is that similar to any earlier row that was
    kept, so the first row of each near-duplicate group stays (and a chain a~b~c where a and c
    are not similar keeps a and c). A zero row is similar to nothing.

    Args:
        vectors: shape ``(n, d)``.
        threshold: cosine similarity from which two rows count as duplicates, in (0, 1].
            Measured with the project's MiniLM: a question and its lower-cased copy without
            the "?" 0.96, paraphrases of one question 0.87-0.93, two questions on the same
            table 0.65-0.68, on different tables 0.07-0.25. SQL texts sit closer:
            ``... ORDER BY age DESC`` and ``... ASC`` score 0.96, so compare SQL by
            :func:`~quorumsql.agents.sql_text.normalize_sql` or by result, or use a threshold
            near 0.99 for SQL embeddings.

    Returns:
        Indices to drop, ascending.

    Raises:
        InputError: ``vectors`` is not 2-D or not finite, or ``threshold`` is outside (0, 1].
    """
    if not isinstance(threshold, (int, float)) or not 0.0 < float(threshold) <= 1.0:
        raise InputError(f"near-duplicate threshold must be in (0, 1], got {threshold!r}")
    unit = _unit_rows(vectors, "near_duplicates").astype(np.float32)
    kept = np.empty_like(unit)  # the kept rows so far, packed at the front
    m = 0
    dropped: list[int] = []
    for i in range(unit.shape[0]):
        if m and float(np.max(kept[:m] @ unit[i])) >= threshold - 1e-6:
            dropped.append(i)
        else:
            kept[m] = unit[i]
            m += 1
    return dropped


def _kmeans_pp(unit: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    n = unit.shape[0]
    centres = [int(rng.integers(n))]
    d2 = np.sum((unit - unit[centres[0]]) ** 2, axis=1)
    for _ in range(1, k):
        total = float(d2.sum())
        if total <= 0:  # all remaining points coincide with a centre: take any unused row
            rest = [i for i in range(n) if i not in centres]
            nxt = int(rng.choice(rest))
        else:
            nxt = int(rng.choice(n, p=d2 / total))
        centres.append(nxt)
        d2 = np.minimum(d2, np.sum((unit - unit[nxt]) ** 2, axis=1))
    return unit[centres].copy()


def _sq_dist(unit: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Squared distances, shape ``(n, k)``, in O(n k) memory (rows of ``unit`` have norm 1 or 0)."""
    d = (unit ** 2).sum(axis=1)[:, None] + (centres ** 2).sum(axis=1)[None, :] - 2.0 * unit @ centres.T
    return np.maximum(d, 0.0)


def _lloyd(unit: np.ndarray, centres: np.ndarray) -> tuple[np.ndarray, float]:
    labels = np.full(unit.shape[0], -1)
    for _ in range(KMEANS_MAX_ITER):
        dist = _sq_dist(unit, centres)
        new = dist.argmin(axis=1)
        if np.array_equal(new, labels):
            break
        labels = new
        for c in range(centres.shape[0]):
            members = unit[labels == c]
            if len(members):
                centres[c] = members.mean(axis=0)
            else:  # an empty cluster takes the point farthest from its centre
                far = int(dist[np.arange(len(labels)), labels].argmax())
                centres[c] = unit[far]
    dist = _sq_dist(unit, centres)
    labels = dist.argmin(axis=1)
    return labels, float(dist[np.arange(len(labels)), labels].sum())


def cluster(vectors: np.ndarray, k: int, *, seed: int = 0) -> list[int]:
    """k-means cluster label of each row, over L2-normalised rows (cosine geometry).

    Lloyd's algorithm from k-means++ starts, :data:`KMEANS_RESTARTS` restarts drawn from
    ``numpy.random.default_rng(seed)``, keeping the lowest within-cluster sum of squares; the same
    input and seed always give the same labels. Labels are renumbered in order of first
    appearance (row 0 is in cluster 0). ASASQL clusters its candidate pool before choosing what
    to annotate (paper 001, Stage 2 step 2).

    Args:
        vectors: shape ``(n, d)``.
        k: number of clusters, >= 1; capped at ``n``.
        seed: random seed.

    Returns:
        ``n`` labels in ``0..min(k, n) - 1`` ([] for no rows).

    Raises:
        InputError: ``k`` < 1, or ``vectors`` is not 2-D or not finite.
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise InputError(f"number of clusters must be a positive integer, got {k!r}")
    unit = _unit_rows(vectors, "cluster")
    n = unit.shape[0]
    if n == 0:
        return []
    k = min(k, n)
    if k == 1:
        return [0] * n
    rng = np.random.default_rng(seed)
    best_labels, best_inertia = None, np.inf
    for _ in range(KMEANS_RESTARTS):
        labels, inertia = _lloyd(unit, _kmeans_pp(unit, k, rng))
        if inertia < best_inertia - 1e-12:
            best_labels, best_inertia = labels, inertia
    renumber: dict[int, int] = {}
    return [renumber.setdefault(int(c), len(renumber)) for c in best_labels]
