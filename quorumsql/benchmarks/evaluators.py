"""Execution-based scoring with the official evaluators' semantics.

Comparisons (pure functions over result rows; rows are tuples of Python values):

* :func:`bird_ex` — BIRD EX, ``set(pred_rows) == set(gold_rows)``: duplicates, row order and
  nothing else ignored; column order matters (bird-bench ``evaluation_ex.py``, ``calculate_ex``).
* :func:`spider_ex` — Spider EX (taoyds/test-suite-sql-eval ``exec_eval.py``, ``result_eq``):
  bag (multiset) equality of rows, row order significant only when the gold SQL has ORDER BY,
  any permutation of the columns accepted.
* :func:`soft_f1` — BIRD Mini-Dev Soft-F1 (``evaluation_f1.py``, ``calculate_f1_score``).
* :func:`rves_reward` — BIRD Mini-Dev R-VES reward of one question (``evaluation_ves.py``);
  :func:`rves_score` averages ``sqrt(reward) * 100``.

:func:`evaluate` executes the prediction and the gold SQL through :mod:`quorumsql.db` (read-only,
with the timeout) and applies them; an erroring or timed-out prediction scores 0 on every
metric, as in both official evaluators. A gold query that fails or times out also scores 0 (BIRD
counts it so; Spider's evaluator asserts) and is reported in :attr:`Evaluation.gold_status`;
Spider EX runs the gold after its pre-processing (below), so a gold that only runs once
``> =`` is joined or ``YEAR(CURDATE())`` replaced is scored by Spider EX, as there.

Official pre-processing of Spider EX is reproduced: ``> =``/``< =``/``! =`` are joined
(``postprocess``), ``YEAR(CURDATE())`` becomes 2020 (``replace_cur_year``) and, unless
``keep_distinct``, every ``DISTINCT`` token is dropped from both queries (``remove_distinct``,
the evaluator's default).
"""

from __future__ import annotations

import math
import re
import statistics
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from itertools import product
from typing import Any

from pydantic import BaseModel, Field
from sqlglot import TokenType, tokenize
from sqlglot.errors import SqlglotError

from quorumsql.db import Database

Rows = Sequence[tuple[Any, ...]]

#: rows fetched when scoring; results longer than this are compared truncated and flagged
EVAL_MAX_ROWS = 1_000_000


# ---------------------------------------------------------------------------- comparisons
def bird_ex(pred_rows: Rows, gold_rows: Rows) -> int:
    """BIRD execution accuracy of one question: 1 if the row *sets* are equal, else 0.

    Source: bird-bench ``evaluation_ex.py`` ``calculate_ex``.
    """
    return int(set(map(tuple, pred_rows)) == set(map(tuple, gold_rows)))


def _unorder_row(row: tuple) -> tuple:
    return tuple(sorted(row, key=lambda x: str(x) + str(type(x))))


def _column_candidates(gold: Sequence[tuple], pred: Sequence[tuple]) -> Iterable[tuple[int, ...]]:
    """Column permutations of ``pred`` that can map onto ``gold`` (test-suite's pruning).

    The official code prunes with 20 randomly sampled rows when there are more than 3
    columns; a permutation under which the results are equal survives any sample, so pruning
    with every row (deterministic) gives the same verdicts.
    """
    n = len(pred[0])
    allowed = [set(range(n)) for _ in range(n)]
    if n > 3:
        gold_cols = [{row[i] for row in gold} for i in range(n)]
        for row in pred:
            for gcol in range(n):
                for pcol in list(allowed[gcol]):
                    if row[pcol] not in gold_cols[gcol]:
                        allowed[gcol].discard(pcol)
    for perm in product(*allowed):
        if len(set(perm)) == n:
            yield perm


def spider_ex(pred_rows: Rows, gold_rows: Rows, *, order_matters: bool) -> int:
    """Spider execution accuracy of one question (test-suite-sql-eval ``result_eq``).

    Args:
        pred_rows, gold_rows: result rows.
        order_matters: compare row order too (the gold SQL has ORDER BY; see
            :func:`order_matters`).

    Returns:
        1 when some permutation of the predicted columns makes the two results equal as bags
        of rows (as lists when ``order_matters``), else 0. Two empty results are equal.
    """
    gold = [tuple(r) for r in gold_rows]
    pred = [tuple(r) for r in pred_rows]
    if not gold and not pred:
        return 1
    if len(gold) != len(pred):
        return 0
    n = len(gold[0])
    if len(pred[0]) != n:
        return 0
    g_un = [_unorder_row(r) for r in gold]
    p_un = [_unorder_row(r) for r in pred]
    if (g_un != p_un) if order_matters else (set(g_un) != set(p_un)):
        return 0
    gold_counts = Counter(gold) if not order_matters else None
    for perm in _column_candidates(gold, pred):
        permuted = pred if n == 1 else [tuple(row[i] for i in perm) for row in pred]
        if order_matters:
            if permuted == gold:
                return 1
        elif set(permuted) == set(gold) and Counter(permuted) == gold_counts:
            return 1
    return 0


def _row_match(pred_row: tuple, gold_row: tuple) -> tuple[float, float, float]:
    total = len(gold_row)
    matches = sum(1 for v in pred_row if v in gold_row)
    pred_only = len(pred_row) - matches
    truth_only = sum(1 for v in gold_row if v not in pred_row)
    return matches / total, pred_only / total, truth_only / total


def soft_f1(pred_rows: Rows, gold_rows: Rows) -> float:
    """BIRD Mini-Dev Soft-F1 of one question, in [0, 1].

    Duplicates are dropped keeping first occurrences; the i-th predicted row is matched with
    the i-th gold row cell by cell (a cell matches when the value occurs anywhere in the other
    row); unmatched rows count fully as false positives / negatives. Two empty results score 1.

    Source: bird-bench/mini_dev ``evaluation_f1.py`` ``calculate_f1_score``.
    """
    if not pred_rows and not gold_rows:
        return 1.0
    pred = list(dict.fromkeys(tuple(r) for r in pred_rows))
    gold = list(dict.fromkeys(tuple(r) for r in gold_rows))
    tp = fp = fn = 0.0
    for i, gold_row in enumerate(gold):
        if i >= len(pred):
            fn += 1
            continue
        m, p, t = _row_match(pred[i], gold_row)
        tp, fp, fn = tp + m, fp + p, fn + t
    fp += max(0, len(pred) - len(gold))
    precision = tp / (tp + fp) if tp + fp > 0 else 0
    recall = tp / (tp + fn) if tp + fn > 0 else 0
    return 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0


def _clean_abnormal(values: Sequence[float]) -> list[float]:
    mean = statistics.fmean(values)
    std = statistics.pstdev(values)
    return [x for x in values if mean - 3 * std < x < mean + 3 * std]


def rves_reward(time_ratios: Sequence[float]) -> float:
    """R-VES reward of one correct prediction from its gold/pred time ratios.

    Ratios beyond 3 standard deviations are dropped (``clean_abnormal``), the rest averaged,
    then bucketed: >=2 -> 1.25, [1,2) -> 1, [0.5,1) -> 0.75, [0.25,0.5) -> 0.5, else 0.25;
    0 when there is no ratio (incorrect prediction). Source: mini_dev ``evaluation_ves.py``.
    Note: when all ratios are equal the official ``clean_abnormal`` drops every one (std 0)
    and divides by zero; here the mean of the raw ratios is used instead.
    """
    if not time_ratios:
        return 0.0
    kept = _clean_abnormal(time_ratios) or list(time_ratios)
    ratio = sum(kept) / len(kept)
    if ratio == 0:
        return 0.0
    if ratio >= 2:
        return 1.25
    if ratio >= 1:
        return 1.0
    if ratio >= 0.5:
        return 0.75
    if ratio >= 0.25:
        return 0.5
    return 0.25


def rves_score(rewards: Iterable[float]) -> float:
    """R-VES of a set of questions: mean of ``sqrt(reward) * 100`` (mini_dev ``compute_ves``)."""
    rewards = list(rewards)
    return sum(math.sqrt(r) * 100 for r in rewards) / len(rewards) if rewards else 0.0


# ------------------------------------------------------------------ official preprocessing
def postprocess(sql: str) -> str:
    """test-suite ``postprocess``: join ``> =``, ``< =``, ``! =``."""
    return sql.replace("> =", ">=").replace("< =", "<=").replace("! =", "!=")


_CUR_YEAR = re.compile(r"YEAR\s*\(\s*CURDATE\s*\(\s*\)\s*\)\s*", re.IGNORECASE)


def replace_cur_year(sql: str) -> str:
    """test-suite ``replace_cur_year``: ``YEAR(CURDATE())`` -> ``2020``."""
    return _CUR_YEAR.sub("2020", sql)


def remove_distinct(sql: str) -> str:
    """test-suite ``remove_distinct``: drop every ``DISTINCT`` token (sqlparse tokens, as there)."""
    import sqlparse
    import sqlparse.exceptions

    try:
        parsed = sqlparse.parse(sql)
    except sqlparse.exceptions.SQLParseError:  # input beyond sqlparse's limits: leave it as is
        return sql
    if not parsed:
        return sql
    return "".join(t.value for t in parsed[0].flatten() if t.value.lower() != "distinct")


def order_matters(gold_sql: str) -> bool:
    """True when row order is compared: the gold SQL contains ``ORDER BY`` (anywhere).

    The official check is ``'order by' in g_str.lower()``; this looks for the ORDER BY token
    with sqlglot's tokenizer, so other whitespace between the words counts and text inside
    string literals does not. Falls back to the official substring test if tokenizing fails.
    """
    try:
        return any(t.token_type == TokenType.ORDER_BY for t in tokenize(gold_sql, read="sqlite"))
    except SqlglotError:
        return "order by" in gold_sql.lower()


# --------------------------------------------------------------------------- execution
class ExecOutcome(BaseModel):
    """What executing one query for scoring gave.

    Attributes:
        status: ``ok`` | ``error`` | ``timeout`` | ``refused`` | ``no_sql``.
        error: the message when not ok.
        rows: result rows (not serialized).
        row_count: number of rows.
        truncated: more rows than :data:`EVAL_MAX_ROWS` existed.
        seconds: execution wall-clock time.
    """

    status: str
    error: str | None = None
    rows: list[tuple[Any, ...]] = Field(default_factory=list, exclude=True, repr=False)
    row_count: int = 0
    truncated: bool = False
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def run_query(db: Database, sql: str | None, *, timeout: float) -> ExecOutcome:
    """Execute ``sql`` read-only through ``db`` for scoring; never raises for query problems."""
    if not sql or not sql.strip():
        return ExecOutcome(status="no_sql", error="no SQL")
    res = db.try_execute(sql, timeout=timeout, max_rows=EVAL_MAX_ROWS)
    if res.error is not None:
        return ExecOutcome(status=res.error_kind or "error", error=res.error, seconds=res.seconds)
    return ExecOutcome(
        status="ok", rows=list(res.rows), row_count=len(res.rows), truncated=res.truncated,
        seconds=res.seconds,
    )


class Evaluation(BaseModel):
    """Scores of one prediction against the gold SQL on one database.

    Attributes:
        metrics: ``ex`` (the dataset's official EX), ``ex_bird``, ``ex_spider``, ``soft_f1``
            and, when asked, ``rves`` (the reward; see :func:`rves_reward`); each 0/1 or a float.
        pred: execution of the prediction.
        gold: execution of the gold SQL.
        gold_status: ``ok`` | ``error`` | ``timeout`` | ``refused`` | ``missing``.
    """

    metrics: dict[str, float] = Field(default_factory=dict)
    pred: ExecOutcome
    gold: ExecOutcome | None = None
    gold_status: str = "ok"


class Evaluator:
    """Scores predictions on one database with BIRD and Spider semantics.

    Args:
        primary: which EX is reported as ``ex``: ``bird`` (set equality) or ``spider``
            (test-suite bag/permutation semantics).
        timeout: seconds per query (BIRD's ``meta_time_out`` is 30).
        keep_distinct: for Spider EX, keep DISTINCT (the official default removes it).
        ves_iterations: when > 0, compute R-VES with this many timed executions of each correct
            prediction and its gold (the official script uses 100).
    """

    def __init__(
        self,
        primary: str = "bird",
        *,
        timeout: float = 30.0,
        keep_distinct: bool = False,
        ves_iterations: int = 0,
    ) -> None:
        if primary not in ("bird", "spider"):
            raise ValueError("primary must be 'bird' or 'spider'")
        self.primary = primary
        self.timeout = timeout
        self.keep_distinct = keep_distinct
        self.ves_iterations = ves_iterations

    def _spider_sql(self, sql: str) -> str:
        sql = replace_cur_year(postprocess(sql))
        return sql if self.keep_distinct else remove_distinct(sql)

    def evaluate(self, db: Database, pred_sql: str | None, gold_sql: str | None) -> Evaluation:
        """Execute both queries on ``db`` and score the prediction.

        With no ``gold_sql`` the metrics are empty (only the LLM judge can score it) and
        ``gold_status`` is ``missing``.
        """
        pred = run_query(db, pred_sql, timeout=self.timeout)
        if not gold_sql:
            return Evaluation(pred=pred, gold=None, gold_status="missing")
        gold = run_query(db, gold_sql, timeout=self.timeout)
        metrics: dict[str, float] = {}
        if not gold.ok or not pred.ok:
            metrics.update(ex_bird=0, soft_f1=0.0)
            if self.ves_iterations:
                metrics["rves"] = 0.0
        else:
            metrics["ex_bird"] = bird_ex(pred.rows, gold.rows)
            metrics["soft_f1"] = soft_f1(pred.rows, gold.rows)
            if self.ves_iterations:
                metrics["rves"] = self._rves(db, pred_sql or "", gold_sql) if metrics["ex_bird"] else 0.0
        # Spider runs its own pre-processed SQL ("> =" joined, YEAR(CURDATE()) read as 2020,
        # DISTINCT removed) for the prediction and the gold alike, which may execute where the
        # raw text did not
        metrics["ex_spider"] = self._spider(db, pred, gold, pred_sql, gold_sql)
        metrics["ex"] = metrics["ex_" + self.primary]
        return Evaluation(metrics=metrics, pred=pred, gold=gold, gold_status=gold.status)

    def _spider(self, db: Database, pred: ExecOutcome, gold: ExecOutcome, pred_sql: str | None, gold_sql: str) -> int:
        if not pred_sql:
            return 0
        p_sql, g_sql = self._spider_sql(pred_sql), self._spider_sql(gold_sql)
        p, g = pred, gold
        if p_sql != pred_sql:
            p = run_query(db, p_sql, timeout=self.timeout)
        if g_sql != gold_sql:
            g = run_query(db, g_sql, timeout=self.timeout)
        if not p.ok or not g.ok:
            return 0
        return spider_ex(p.rows, g.rows, order_matters=order_matters(g_sql))

    def _rves(self, db: Database, pred_sql: str, gold_sql: str) -> float:
        ratios = []
        for _ in range(self.ves_iterations):
            t0 = time.perf_counter()
            p = db.try_execute(pred_sql, timeout=self.timeout, max_rows=EVAL_MAX_ROWS)
            t1 = time.perf_counter()
            g = db.try_execute(gold_sql, timeout=self.timeout, max_rows=EVAL_MAX_ROWS)
            t2 = time.perf_counter()
            if p.error or g.error:
                return 0.0
            ratios.append((t2 - t1) / max(t1 - t0, 1e-9))
        return rves_reward(ratios)
