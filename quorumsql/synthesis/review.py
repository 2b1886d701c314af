"""Human review of actively selected records (ASASQL's annotation step) and the judge's calibration.

``quorumsql synth review OUT --write`` puts the records that active selection marked
(:mod:`quorumsql.synthesis.batch`) into a CSV with the columns :data:`COLUMNS`, most uncertain
first. A person fills in ``verdict`` (``correct``, ``wrong`` or ``fixed``) and, for ``fixed``,
``fixed_sql``; a blank verdict means "not reviewed" (a ``fixed_sql`` with a blank verdict counts
as ``fixed``). ``quorumsql synth review OUT --read`` applies the CSV:

* ``correct``: the record is kept, even if the judge had dropped it (the person overrules it);
* ``wrong``: the record is dropped (``dropped_by="review"``);
* ``fixed``: the fixed SQL goes through the execution filter again; when it passes, it replaces
  the record's SQL (the old one stays in ``sql_before_review``), component difficulty is
  recomputed, and the chain of thought and execution difficulty, which described the old SQL,
  are cleared; when it fails, the row is rejected and the record is left as it was.

Rows with no id, an id the run does not have, a repeated id, an unknown verdict, or a verdict on
a record dropped before the judge (its SQL never ran, so nothing can keep it) are rejected, each
with its reason; nothing already kept changes because of them. Selected records with no row are
reported as missing and stay as they were.

The verdicts also measure the judge (:func:`calibrate`): with ``correct`` as the positive class
and the judge's score as the predictor, the accuracy of "score >= threshold" at the run's
threshold, the threshold that would have scored best, and the ROC AUC (Mann-Whitney).
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from quorumsql.errors import InputError, QuorumSQLError
from quorumsql.synthesis.filters import ExecutionCheck
from quorumsql.synthesis.records import SynthRecord

COLUMNS = ("id", "db_id", "question", "evidence", "sql", "judge_score", "uncertainty", "cluster", "verdict",
           "fixed_sql", "note")
VERDICTS = ("correct", "wrong", "fixed")
#: stages after which a record's SQL had run and a person's verdict can still keep it
REVIEWABLE = (None, "judge", "duplicate", "review")


class Rejected(BaseModel):
    """A CSV row that was not applied: its line (1 = header), its id and why."""

    line: int
    id: str
    reason: str


class Calibration(BaseModel):
    """How well the judge's score predicts the reviewers' verdicts (``correct`` = positive).

    Attributes:
        n: verdicts on records with a judge score; positives: how many were ``correct``.
        threshold: the threshold measured (the run's ``--judge-threshold``).
        accuracy: share of verdicts that "score >= threshold" predicts right (None without verdicts).
        best_threshold, best_accuracy: the threshold among the observed scores (and one above
            the highest) with the best accuracy; ties go to the one nearest ``threshold``.
        auc: ROC AUC of the score, ties counted half (None unless both classes occur).
    """

    n: int = 0
    positives: int = 0
    threshold: float = 0.5
    accuracy: float | None = None
    best_threshold: float | None = None
    best_accuracy: float | None = None
    auc: float | None = None


class ReviewOutcome(BaseModel):
    """What :func:`apply_review` did.

    Attributes:
        rows: data rows read; applied: verdicts applied per kind; unreviewed: rows left blank.
        rejected: rows not applied, with reasons.
        missing: ids selected for review that have no row in the CSV (left as they were).
        updated: the new versions of the records that changed (to append to ``records.jsonl``).
        calibration: the judge against every verdict the run now holds.
    """

    rows: int = 0
    applied: dict[str, int] = Field(default_factory=dict)
    unreviewed: int = 0
    rejected: list[Rejected] = Field(default_factory=list)
    missing: list[str] = Field(default_factory=list)
    updated: list[SynthRecord] = Field(default_factory=list)
    calibration: Calibration = Field(default_factory=Calibration)

    def report(self) -> dict[str, Any]:
        """A JSON-ready summary (without the records)."""
        return self.model_dump(mode="json", exclude={"updated"}) | {"updated": len(self.updated)}


def write_review_csv(records: Sequence[SynthRecord], path: str | Path) -> int:
    """Write the records marked ``review_selected`` to ``path``, most uncertain first.

    ``verdict`` is pre-filled with an earlier verdict when the record has one.

    Returns:
        The number of rows written.

    Raises:
        OSError: the file cannot be written.
    """
    chosen = sorted((r for r in records if r.review_selected),
                    key=lambda r: (-(r.uncertainty or 0.0), r.cluster if r.cluster is not None else 0, r.id))
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(COLUMNS)
        for r in chosen:
            writer.writerow([r.id, r.db_id, r.question or "", r.evidence or "", r.sql or "",
                             "" if r.judge_score is None else f"{r.judge_score:.4g}",
                             "" if r.uncertainty is None else f"{r.uncertainty:.4g}",
                             "" if r.cluster is None else r.cluster, r.review or "", "", ""])
    return len(chosen)


def read_review_csv(path: str | Path) -> list[tuple[int, dict[str, str]]]:
    """The data rows of a review CSV as ``(line, {column: text})``; line 1 is the header.

    Raises:
        InputError: the file is missing, unreadable, not a CSV with ``id`` and ``verdict`` columns.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError(f"review CSV not found: {p}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"review CSV {p} cannot be read: {exc}") from None
    try:
        reader = csv.DictReader(text.splitlines())
        header = [h.strip().lower() for h in (reader.fieldnames or [])]
        if "id" not in header or "verdict" not in header:
            raise InputError(f"{p} is not a review CSV: it needs the columns id and verdict "
                             f"(found: {', '.join(header) or 'nothing'})")
        rows = []
        for i, raw in enumerate(reader, start=2):
            rows.append((i, {str(k).strip().lower(): (v or "").strip() for k, v in raw.items() if k is not None}))
    except csv.Error as exc:
        raise InputError(f"{p} is not a valid CSV: {exc}") from None
    return rows


def apply_review(
    records: Sequence[SynthRecord],
    rows: Sequence[tuple[int, dict[str, str]]],
    *,
    check_sql: Callable[[SynthRecord, str], ExecutionCheck],
    grade: Callable[[str, str], str | None],
    threshold: float,
) -> ReviewOutcome:
    """Apply reviewed CSV rows to the run's records (see the module docstring).

    Args:
        records: the run's current records (not modified).
        rows: :func:`read_review_csv` output.
        check_sql: runs a fixed SQL through the execution filter on the record's database.
        grade: component difficulty of ``(sql, dialect)``, or None when it cannot be graded.
        threshold: the judge threshold to measure at.

    Returns:
        A :class:`ReviewOutcome` (the updated records in it; the caller appends them).
    """
    by_id = {r.id: r for r in records}
    outcome = ReviewOutcome(rows=len(rows))
    changed: dict[str, SynthRecord] = {}
    seen: set[str] = set()
    for line, row in rows:
        rid = row.get("id", "")
        verdict = row.get("verdict", "").lower()
        fixed_sql = row.get("fixed_sql", "")
        note = row.get("note", "") or None
        if not rid:
            outcome.rejected.append(Rejected(line=line, id="", reason="the row has no id"))
            continue
        if rid not in by_id:
            outcome.rejected.append(Rejected(line=line, id=rid, reason="no record with this id in the run"))
            continue
        if rid in seen:
            outcome.rejected.append(Rejected(line=line, id=rid, reason="the id is repeated; the first row counts"))
            continue
        seen.add(rid)
        if not verdict and fixed_sql:
            verdict = "fixed"
        if not verdict:
            outcome.unreviewed += 1
            continue
        if verdict not in VERDICTS:
            outcome.rejected.append(Rejected(line=line, id=rid, reason=(
                f"unknown verdict {verdict!r}; use {', '.join(VERDICTS)} or leave it blank")))
            continue
        rec = changed.get(rid, by_id[rid]).model_copy(deep=True)
        if rec.dropped_by not in REVIEWABLE:
            outcome.rejected.append(Rejected(line=line, id=rid, reason=(
                f"the record was dropped by {rec.dropped_by} ({rec.drop_reason}) before the judge; "
                "a verdict cannot keep it")))
            continue
        if verdict == "fixed":
            if not fixed_sql:
                outcome.rejected.append(Rejected(line=line, id=rid, reason="verdict fixed needs the fixed_sql column"))
                continue
            try:
                check = check_sql(rec, fixed_sql)
            except QuorumSQLError as exc:
                outcome.rejected.append(Rejected(line=line, id=rid,
                                                 reason=f"the fixed SQL could not be checked: {exc}"))
                continue
            if not check.ok:
                outcome.rejected.append(Rejected(line=line, id=rid, reason=(
                    f"the fixed SQL was dropped by the execution filter ({check.stage}: {check.reason}); "
                    "the record is unchanged")))
                continue
            if rec.sql_before_review is None:
                rec.sql_before_review = rec.sql  # the SQL as synthesized, kept through later fixes
            rec.sql = fixed_sql
            rec.columns, rec.row_count, rec.preview, rec.result_key = (check.columns, check.row_count, check.preview,
                                                                       check.result_key)
            rec.component_difficulty = grade(fixed_sql, rec.dialect)
            rec.execution_difficulty = rec.exec_successes = rec.exec_attempts = rec.agreement = None
            if rec.cot:
                rec.cot, rec.cot_note = None, "the chain of thought ended in the SQL before the reviewer's fix"
        if verdict in ("correct", "fixed") and rec.dropped_by in ("judge", "review"):
            rec.dropped_by = rec.drop_reason = None
        elif verdict == "wrong" and rec.dropped_by in (None, "judge", "review"):
            rec.drop("review", "a reviewer marked it wrong" + (f": {note}" if note else ""))
        rec.review, rec.review_note = verdict, note
        rec.passed("review")
        outcome.applied[verdict] = outcome.applied.get(verdict, 0) + 1
        changed[rid] = rec
    selected = [r.id for r in records if r.review_selected and r.review is None]
    outcome.missing = [rid for rid in selected if rid not in seen]
    outcome.updated = [changed[r.id] for r in records if r.id in changed
                       and changed[r.id].model_dump(mode="json") != r.model_dump(mode="json")]
    final = [changed.get(r.id, r) for r in records]
    outcome.calibration = calibrate([r.judge_score for r in final if r.review and r.judge_score is not None],
                                    [r.review == "correct" for r in final if r.review and r.judge_score is not None],
                                    threshold)
    return outcome


def calibrate(scores: Sequence[float], correct: Sequence[bool], threshold: float) -> Calibration:
    """How well ``score >= t`` predicts ``correct``: accuracy at ``threshold``, best threshold, AUC.

    The AUC is the Mann-Whitney statistic: the share of (correct, not correct) pairs whose
    correct member scores higher, ties counting half (Hanley & McNeil 1982).

    Args:
        scores: judge scores (0..1), one per verdict.
        correct: True where the verdict was ``correct`` (``wrong`` and ``fixed`` are False).
        threshold: the threshold in use.

    Raises:
        InputError: the two sequences differ in length.
    """
    if len(scores) != len(correct):
        raise InputError(f"{len(scores)} scores but {len(correct)} verdicts")
    cal = Calibration(n=len(scores), positives=sum(bool(c) for c in correct), threshold=threshold)
    if not scores:
        return cal
    s = np.asarray(scores, dtype=float)
    y = np.asarray(correct, dtype=bool)
    cal.accuracy = round(float(np.mean((s >= threshold) == y)), 4)
    candidates = sorted(set(s.tolist()) | {float(s.max()) + 1e-6})
    best = max(candidates, key=lambda t: (float(np.mean((s >= t) == y)), -abs(t - threshold)))
    cal.best_threshold = round(best, 4)
    cal.best_accuracy = round(float(np.mean((s >= best) == y)), 4)
    pos, neg = s[y], s[~y]
    if len(pos) and len(neg):
        diff = pos[:, None] - neg[None, :]
        cal.auc = round(float((np.sum(diff > 0) + 0.5 * np.sum(diff == 0)) / diff.size), 4)
    return cal
