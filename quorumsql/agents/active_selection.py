"""Active selection (ASASQL): which synthesized pairs a person should review.

ASASQL (paper 001, Stage 2 "Active Learning") scores every generated (question, SQL) pair with
its reward model, clusters the pool, and sends a few pairs per cluster to annotators, so that
each round of human labels covers the pool and targets what the model is least sure of. Here the
reward model is the consistency judge (:func:`quorumsql.agents.judge.judge_consistency`), a
second signal is how often the inference generators, answering the synthesized question,
reproduce the SQL's result, and the uncertain pairs are those where the two are low or disagree.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from quorumsql.errors import InputError


def _unit_interval(value: float, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value) or not 0.0 <= value <= 1.0:
        raise InputError(f"{name} must be a number between 0 and 1, got {value!r}")
    return float(value)


def uncertainty(judge_score: float, agreement: float) -> float:
    """How unsure we are that a pair is right, 0..1, from the judge score and the generators' agreement.

    ``u = ((1 - j * a) + |j - a|) / 2`` with ``j`` the judge score and ``a`` the agreement (both
    read as probabilities that the pair is right):

    * ``1 - j * a`` is the chance that at least one signal says "wrong" (high when either is low);
    * ``|j - a|`` is how much they contradict each other.

    So two confident, agreeing signals give 0 (``j = a = 1``), both low gives 0.5, a half-sure
    judge and generators give 0.375, and a flat contradiction (``j = 1, a = 0`` or the reverse)
    gives 1: a contradiction is what a person's verdict settles best, and it also tells how far
    the judge's score can be trusted. (ASASQL picks by the reward model's probability alone,
    paper 001 Stage 2; the agreement term is this project's second signal.)

    Args:
        judge_score: consistency judge score, 0..1.
        agreement: share of the generators' N answers whose result matched the SQL's, 0..1.

    Returns:
        The uncertainty, 0..1.

    Raises:
        InputError: either value is not a number in 0..1.
    """
    j = _unit_interval(judge_score, "judge_score")
    a = _unit_interval(agreement, "agreement")
    return ((1.0 - j * a) + abs(j - a)) / 2.0


def pick_for_review(uncertainties: Sequence[float], clusters: Sequence[int], *, per_cluster: int = 1) -> list[int]:
    """The most uncertain pair(s) of each cluster, most uncertain first.

    ASASQL's selection (paper 001, Stage 2): cluster, then annotate per cluster. Within a cluster
    ties go to the lower index; across clusters the picks are ordered by uncertainty descending,
    ties by index.

    Args:
        uncertainties: one value per pair (see :func:`uncertainty`).
        clusters: one cluster label per pair (see :func:`quorumsql.agents.diversity.cluster`).
        per_cluster: picks per cluster, >= 1 (a smaller cluster gives all its pairs).

    Returns:
        Indices into the inputs.

    Raises:
        InputError: the sequences differ in length, ``per_cluster`` < 1, or an uncertainty is NaN.
    """
    if isinstance(per_cluster, bool) or not isinstance(per_cluster, int) or per_cluster < 1:
        raise InputError(f"per_cluster must be a positive integer, got {per_cluster!r}")
    values = [float(u) for u in uncertainties]
    labels = list(clusters)
    if len(values) != len(labels):
        raise InputError(f"{len(values)} uncertainties but {len(labels)} cluster labels")
    if any(math.isnan(u) for u in values):
        raise InputError("an uncertainty is NaN")
    members: dict[int, list[int]] = {}
    for i, c in enumerate(labels):
        members.setdefault(c, []).append(i)
    picks: list[int] = []
    for idx in members.values():
        picks.extend(sorted(idx, key=lambda i: (-values[i], i))[:per_cluster])
    return sorted(picks, key=lambda i: (-values[i], i))
