"""Steps over every record of a run: near-duplicate removal, clustering, active selection.

They need the whole run, across seeds and across resumed sessions, and make no model call (the
judge's score and the generators' agreement are already on the records), so they are a
function the CLI calls after the seeds, not nodes of the per-seed graph. They can be run again
at any time: each run recomputes them from the records as they are (an earlier duplicate drop is
lifted first), so a resumed run or a review leaves them consistent.

1. **Near-duplicates** (DataFlow's diversity goal; ASASQL's embedding deduplication): every kept
   record is embedded as its question and its SQL (MiniLM, each L2-normalised, averaged), most
   trusted first (judge score, then generators' agreement, then file order), and
   :func:`quorumsql.agents.diversity.near_duplicates` drops a record whose pair is at least
   ``threshold`` cosine-similar to a record kept before it (records a person confirmed or fixed
   come first of all) (``dropped_by="duplicate"``,
   ``duplicate_of`` naming it).
2. **Review pool**: the kept records plus those the judge dropped (a person's verdict on a pair
   the judge rejected is what tells whether its threshold is too strict), without records a
   person already reviewed.
3. **Clusters**: :func:`quorumsql.agents.diversity.cluster` over the same vectors, ``k`` clusters
   (default ``round(sqrt(n))``).
4. **Uncertainty and selection** (ASASQL): :func:`quorumsql.agents.active_selection.uncertainty`
   of the judge score and the agreement (a record without an agreement, because no generator
   runs were made or the judge dropped it first, uses its judge score for both: the judge alone
   then sets its uncertainty), and :func:`~quorumsql.agents.active_selection.pick_for_review`
   marks the most uncertain record(s) of each cluster ``review_selected``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from quorumsql.agents import active_selection, diversity
from quorumsql.synthesis.records import SynthRecord


class BatchReport(BaseModel):
    """What :func:`finalize` did.

    Attributes:
        kept_before: kept records it started from (duplicate drops lifted).
        duplicates: records it dropped as near-duplicates.
        pool: records in the review pool; clusters: clusters made over it.
        selected: records marked for review.
        changed: records whose stored version changed (to append to ``records.jsonl``).
    """

    kept_before: int = 0
    duplicates: int = 0
    pool: int = 0
    clusters: int = 0
    selected: int = 0
    changed: list[SynthRecord] = Field(default_factory=list)


def pair_text(record: SynthRecord) -> tuple[str, str]:
    """The two texts a record is embedded by: its question (with evidence) and its SQL."""
    question = (record.question or "").strip()
    if record.evidence:
        question = f"{question} ({record.evidence.strip()})"
    return question, " ".join((record.sql or "").split())


def pair_vectors(records: Sequence[SynthRecord], embedder: Any) -> np.ndarray:
    """One unit vector per record: the mean of its question's and its SQL's unit embeddings.

    The cosine of two such vectors is about the mean of the question and SQL similarities, so
    two records are near-duplicates only when both the question and the SQL are close.

    Returns:
        float32 array ``(len(records), d)`` (``(0, 0)`` for no records).
    """
    if not records:
        return np.zeros((0, 0), dtype=np.float32)
    texts = [t for r in records for t in pair_text(r)]
    vecs = np.asarray(embedder.embed(texts), dtype=np.float32)
    vecs /= np.clip(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12, None)
    joint = vecs[0::2] + vecs[1::2]
    joint /= np.clip(np.linalg.norm(joint, axis=1, keepdims=True), 1e-12, None)
    return joint


def finalize(
    records: Sequence[SynthRecord],
    embedder: Any,
    *,
    threshold: float = 0.95,
    clusters: int | None = None,
    per_cluster: int = 1,
    seed: int = 0,
) -> BatchReport:
    """Near-duplicate removal, clustering and active selection over a run's records.

    Args:
        records: the run's current records (:func:`quorumsql.synthesis.store.read_records`);
            not modified.
        embedder: ``embed(list[str]) -> ndarray``.
        threshold: cosine similarity (0..1] from which two pairs are near-duplicates.
        clusters: clusters over the review pool (None: ``round(sqrt(pool size))``).
        per_cluster: records picked for review per cluster.
        seed: clustering seed.

    Returns:
        A :class:`BatchReport`; ``changed`` holds the new versions of the records that changed,
        in the input's order.

    Raises:
        InputError: ``threshold``, ``clusters`` or ``per_cluster`` out of range.
        ModelError: the embedding model cannot be loaded.
    """
    before = {r.id: r.model_dump(mode="json") for r in records}
    work = [r.model_copy(deep=True) for r in records]
    for r in work:  # recomputed from scratch
        if r.dropped_by == "duplicate":
            r.dropped_by = r.drop_reason = None
        r.duplicate_of, r.cluster, r.uncertainty, r.review_selected = None, None, None, False
    report = BatchReport()

    kept = [r for r in work if r.kept and r.question and r.sql]
    report.kept_before = len(kept)
    order = sorted(range(len(kept)), key=lambda i: (kept[i].review not in ("correct", "fixed"),
                                                     -(kept[i].judge_score or 0.0),
                                                     -(kept[i].agreement if kept[i].agreement is not None else 0.0), i))
    ranked = [kept[i] for i in order]
    vectors = pair_vectors(ranked, embedder)
    vector_of = {r.id: vectors[i] for i, r in enumerate(ranked)}
    if ranked:
        for i in diversity.near_duplicates(vectors, threshold):
            earlier = [j for j in range(i) if ranked[j].kept]
            sims = vectors[earlier] @ vectors[i]
            best = earlier[int(np.argmax(sims))]
            twin = ranked[best]
            ranked[i].duplicate_of = twin.id
            similarity = float(sims.max())
            ranked[i].drop("duplicate", f"near-duplicate of {twin.id} (cosine {similarity:.3f} >= {threshold:g})")
            report.duplicates += 1

    pool = [r for r in work if r.question and r.sql and r.judge_score is not None and r.review is None
            and (r.kept or r.dropped_by == "judge")]
    report.pool = len(pool)
    if pool:
        missing = [r for r in pool if r.id not in vector_of]
        if missing:
            extra = pair_vectors(missing, embedder)
            vector_of.update({r.id: extra[i] for i, r in enumerate(missing)})
        matrix = np.stack([vector_of[r.id] for r in pool])
        k = clusters if clusters is not None else max(1, round(math.sqrt(len(pool))))
        labels = diversity.cluster(matrix, k, seed=seed)
        report.clusters = len(set(labels))
        values = []
        for r, label in zip(pool, labels):
            agreement = r.agreement if r.agreement is not None else r.judge_score
            r.cluster = int(label)
            r.uncertainty = round(active_selection.uncertainty(r.judge_score, agreement), 4)
            values.append(r.uncertainty)
        for i in active_selection.pick_for_review(values, labels, per_cluster=per_cluster):
            pool[i].review_selected = True
        report.selected = sum(1 for r in pool if r.review_selected)
    report.changed = [r for r in work if r.model_dump(mode="json") != before[r.id]]
    return report
