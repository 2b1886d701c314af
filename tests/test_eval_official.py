"""The harness's scores agree with the official evaluators, case by case.

Reference implementations, copied below from the official sources:

* Spider EX: taoyds/test-suite-sql-eval ``exec_eval.py`` (``result_eq`` and helpers,
  ``postprocess``, ``replace_cur_year``, the ``order_matters`` test of ``eval_exec_match``) and
  ``parse.py`` (``remove_distinct``, applied because ``--keep_distinct`` defaults to False),
  executing with ``sqlite3`` exactly as ``exec_on_db_`` does. The official code asserts that the
  gold SQL runs; the random sampling of ``get_constraint_permutation`` is kept as is.
* BIRD EX: bird-bench ``evaluation_ex.py`` ``calculate_ex`` (``set(pred) == set(gold)``), an
  exception while executing the prediction scores 0.
* Soft-F1: bird-bench/mini_dev ``evaluation_f1.py`` ``calculate_f1_score``.

The harness (:class:`quorumsql.benchmarks.Evaluator`) executes through ``quorumsql.db``. Each
case is a (database, gold, prediction) triple on real Spider databases covering correct,
wrong, erroring, order-sensitive, duplicate-row, DISTINCT, column-permuted and empty-result
predictions; then the same comparison runs over perturbations of 120 real dev questions.
"""

from __future__ import annotations

import asyncio
import json
import random
import sqlite3
from collections import defaultdict
from itertools import product
from pathlib import Path
from typing import Any, List, Set, Tuple

import pytest
import sqlparse

from quorumsql.benchmarks import Evaluator, bird_ex, soft_f1, spider_ex
from quorumsql.benchmarks.evaluators import rves_reward, rves_score
from quorumsql.db import open_database

SPIDER = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "spider"


def db_path(db_id: str) -> Path:
    return SPIDER / "database" / db_id / f"{db_id}.sqlite"


# ------------------------------------------------ official: test-suite-sql-eval exec_eval.py
def permute_tuple(element: Tuple, perm: Tuple) -> Tuple:
    assert len(element) == len(perm)
    return tuple([element[i] for i in perm])


def unorder_row(row: Tuple) -> Tuple:
    return tuple(sorted(row, key=lambda x: str(x) + str(type(x))))


def quick_rej(result1: List[Tuple], result2: List[Tuple], order_matters: bool) -> bool:
    s1 = [unorder_row(row) for row in result1]
    s2 = [unorder_row(row) for row in result2]
    if order_matters:
        return s1 == s2
    else:
        return set(s1) == set(s2)


def multiset_eq(l1: List, l2: List) -> bool:
    if len(l1) != len(l2):
        return False
    d = defaultdict(int)
    for e in l1:
        d[e] = d[e] + 1
    for e in l2:
        d[e] = d[e] - 1
        if d[e] < 0:
            return False
    return True


def get_constraint_permutation(tab1_sets_by_columns: List[Set], result2: List[Tuple]):
    num_cols = len(result2[0])
    perm_constraints = [{i for i in range(num_cols)} for _ in range(num_cols)]
    if num_cols <= 3:
        return product(*perm_constraints)
    for _ in range(20):
        random_tab2_row = random.choice(result2)
        for tab1_col in range(num_cols):
            for tab2_col in set(perm_constraints[tab1_col]):
                if random_tab2_row[tab2_col] not in tab1_sets_by_columns[tab1_col]:
                    perm_constraints[tab1_col].remove(tab2_col)
    return product(*perm_constraints)


def result_eq(result1: List[Tuple], result2: List[Tuple], order_matters: bool) -> bool:
    if len(result1) == 0 and len(result2) == 0:
        return True
    if len(result1) != len(result2):
        return False
    num_cols = len(result1[0])
    if len(result2[0]) != num_cols:
        return False
    if not quick_rej(result1, result2, order_matters):
        return False
    tab1_sets_by_columns = [{row[i] for row in result1} for i in range(num_cols)]
    for perm in get_constraint_permutation(tab1_sets_by_columns, result2):
        if len(perm) != len(set(perm)):
            continue
        if num_cols == 1:
            result2_perm = result2
        else:
            result2_perm = [permute_tuple(element, perm) for element in result2]
        if order_matters:
            if result1 == result2_perm:
                return True
        else:
            if set(result1) == set(result2_perm) and multiset_eq(result1, result2_perm):
                return True
    return False


def postprocess(query: str) -> str:
    query = query.replace('> =', '>=').replace('< =', '<=').replace('! =', '!=')
    return query


def remove_distinct(s):  # parse.py
    toks = [t.value for t in list(sqlparse.parse(s)[0].flatten())]
    return ''.join([t for t in toks if t.lower() != 'distinct'])


async def exec_on_db_(sqlite_path: str, query: str) -> Tuple[str, Any]:
    import re

    query = re.sub(r"YEAR\s*\(\s*CURDATE\s*\(\s*\)\s*\)\s*", "2020", query, flags=re.IGNORECASE)
    connection = sqlite3.connect(f"file:{sqlite_path}?mode=ro", uri=True)  # read-only here
    connection.text_factory = lambda b: b.decode(errors="ignore")
    cursor = connection.cursor()
    try:
        cursor.execute(query)
        result = cursor.fetchall()
        cursor.close()
        cursor.connection.close()
        return "result", result
    except Exception as e:
        cursor.close()
        cursor.connection.close()
        return "exception", e


def official_spider_exec(db: str, p_str: str, g_str: str) -> int:
    """eval_exec_match with plug_value=False, keep_distinct=False, on the one database."""
    p_str, g_str = postprocess(p_str), postprocess(g_str)
    p_str = remove_distinct(p_str)
    g_str = remove_distinct(g_str)
    order_matters = 'order by' in g_str.lower()
    g_flag, g_denotation = asyncio.run(exec_on_db_(db, g_str))
    p_flag, p_denotation = asyncio.run(exec_on_db_(db, p_str))
    assert g_flag != 'exception', 'gold query %s has error on database file %s' % (g_str, db)
    if p_flag == 'exception':
        return 0
    elif not result_eq(g_denotation, p_denotation, order_matters=order_matters):
        return 0
    return 1


# --------------------------------------------------- official: bird-bench evaluation_ex/f1
def calculate_ex(predicted_res, ground_truth_res):
    res = 0
    if set(predicted_res) == set(ground_truth_res):
        res = 1
    return res


def calculate_row_match(predicted_row, ground_truth_row):
    total_columns = len(ground_truth_row)
    matches = 0
    element_in_pred_only = 0
    element_in_truth_only = 0
    for pred_val in predicted_row:
        if pred_val in ground_truth_row:
            matches += 1
        else:
            element_in_pred_only += 1
    for truth_val in ground_truth_row:
        if truth_val not in predicted_row:
            element_in_truth_only += 1
    match_percentage = matches / total_columns
    pred_only_percentage = element_in_pred_only / total_columns
    truth_only_percentage = element_in_truth_only / total_columns
    return match_percentage, pred_only_percentage, truth_only_percentage


def calculate_f1_score(predicted, ground_truth):
    if not predicted and not ground_truth:
        return 1.0
    predicted = list(dict.fromkeys(predicted))
    ground_truth = list(dict.fromkeys(ground_truth))
    match_scores = []
    pred_only_scores = []
    truth_only_scores = []
    for i, gt_row in enumerate(ground_truth):
        if i >= len(predicted):
            match_scores.append(0)
            truth_only_scores.append(1)
            continue
        pred_row = predicted[i]
        match_score, pred_only_score, truth_only_score = calculate_row_match(pred_row, gt_row)
        match_scores.append(match_score)
        pred_only_scores.append(pred_only_score)
        truth_only_scores.append(truth_only_score)
    for i in range(len(predicted) - len(ground_truth)):
        match_scores.append(0)
        pred_only_scores.append(1)
        truth_only_scores.append(0)
    tp = sum(match_scores)
    fp = sum(pred_only_scores)
    fn = sum(truth_only_scores)
    precision = tp / (tp + fp) if tp + fp > 0 else 0
    recall = tp / (tp + fn) if tp + fn > 0 else 0
    f1_score = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0
    return f1_score


def official_bird(db: str, pred: str, gold: str) -> tuple[int, float]:
    """(EX, Soft-F1) as execute_model in evaluation_ex.py / evaluation_f1.py: errors score 0."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        cur = conn.cursor()
        cur.execute(pred)
        predicted_res = cur.fetchall()
        cur.execute(gold)
        ground_truth_res = cur.fetchall()
    except Exception:
        return 0, 0.0
    finally:
        conn.close()
    return calculate_ex(predicted_res, ground_truth_res), calculate_f1_score(predicted_res, ground_truth_res)


# ------------------------------------------------------------------------------- cases
CASES = [
    # (label, db_id, gold, prediction)
    ("identical", "concert_singer", "SELECT count(*) FROM singer", "SELECT count(*) FROM singer"),
    ("equivalent, other SQL", "concert_singer", "SELECT count(*) FROM singer",
     "SELECT count(singer_id) FROM singer AS s"),
    ("wrong value", "concert_singer", "SELECT count(*) FROM singer", "SELECT count(*) FROM concert"),
    ("syntax error", "concert_singer", "SELECT count(*) FROM singer", "SELEC count(*) FRM singer"),
    ("unknown column", "concert_singer", "SELECT name FROM singer", "SELECT nom FROM singer"),
    ("refused write", "concert_singer", "SELECT name FROM singer", "DELETE FROM singer"),
    ("ORDER BY, same order", "concert_singer",
     "SELECT name, country, age FROM singer ORDER BY age DESC",
     "SELECT name, country, age FROM singer ORDER BY age DESC"),
    ("ORDER BY, reversed", "concert_singer",
     "SELECT name, country, age FROM singer ORDER BY age DESC",
     "SELECT name, country, age FROM singer ORDER BY age ASC"),
    ("no ORDER BY in gold, pred ordered", "concert_singer",
     "SELECT name FROM singer", "SELECT name FROM singer ORDER BY name DESC"),
    ("ORDER BY in pred only, shuffled", "pets_1",
     "SELECT petid, weight FROM pets", "SELECT petid, weight FROM pets ORDER BY weight"),
    ("column permutation", "concert_singer",
     "SELECT name, country FROM singer", "SELECT country, name FROM singer"),
    ("column permutation, 4 columns", "concert_singer",
     "SELECT singer_id, name, country, age FROM singer",
     "SELECT age, country, singer_id, name FROM singer"),
    ("column permutation + ORDER BY", "concert_singer",
     "SELECT name, age FROM singer ORDER BY age", "SELECT age, name FROM singer ORDER BY age"),
    ("duplicate rows vs DISTINCT", "concert_singer",
     "SELECT country FROM singer", "SELECT DISTINCT country FROM singer"),
    ("DISTINCT gold vs duplicates", "concert_singer",
     "SELECT DISTINCT country FROM singer", "SELECT country FROM singer"),
    ("duplicated rows by UNION ALL", "concert_singer",
     "SELECT name FROM singer", "SELECT name FROM singer UNION ALL SELECT name FROM singer"),
    ("missing a column", "concert_singer", "SELECT name, age FROM singer", "SELECT name FROM singer"),
    ("extra column", "concert_singer", "SELECT name FROM singer", "SELECT name, age FROM singer"),
    ("both empty", "concert_singer", "SELECT name FROM singer WHERE age > 1000",
     "SELECT country FROM singer WHERE age < 0"),
    ("pred empty", "concert_singer", "SELECT name FROM singer", "SELECT name FROM singer WHERE 0"),
    ("count(DISTINCT) vs count", "car_1",
     "SELECT count(DISTINCT maker) FROM model_list", "SELECT count(maker) FROM model_list"),
    ("spaced operator", "concert_singer",
     "SELECT name FROM singer WHERE age >= 30", "SELECT name FROM singer WHERE age > = 30"),
    ("int vs float", "concert_singer", "SELECT avg(age) FROM singer", "SELECT sum(age) / count(*) FROM singer"),
    ("partial overlap (soft-F1)", "pets_1", "SELECT petid, pettype FROM pets",
     "SELECT petid, 'cat' FROM pets"),
    ("join vs subquery", "concert_singer",
     "SELECT T2.name FROM singer_in_concert AS T1 JOIN singer AS T2 ON T1.singer_id = T2.singer_id",
     "SELECT name FROM singer WHERE singer_id IN (SELECT singer_id FROM singer_in_concert)"),
]


@pytest.fixture(scope="module")
def spider_ready():
    if not db_path("concert_singer").is_file():
        pytest.skip(f"Spider databases not found under {SPIDER}")
    return SPIDER


@pytest.mark.parametrize("label,db_id,gold,pred", CASES, ids=[c[0] for c in CASES])
def test_case_agrees_with_official(spider_ready, label, db_id, gold, pred):
    path = str(db_path(db_id))
    db = open_database(path)
    harness = Evaluator("spider", timeout=30).evaluate(db, pred, gold).metrics
    off_ex, off_f1 = official_bird(path, pred, gold)
    assert harness["ex_spider"] == official_spider_exec(path, pred, gold), label
    assert harness["ex_bird"] == off_ex, label
    assert harness["soft_f1"] == pytest.approx(off_f1, abs=1e-12), label
    assert harness["ex"] == harness["ex_spider"]


def test_cases_discriminate(spider_ready):
    """The case list exercises both verdicts and both places where the two EXs differ."""
    verdicts = []
    for _, db_id, gold, pred in CASES:
        db = open_database(str(db_path(db_id)))
        m = Evaluator("bird").evaluate(db, pred, gold).metrics
        verdicts.append((m["ex_bird"], m["ex_spider"]))
    assert {v for v in verdicts} >= {(0, 0), (1, 1), (1, 0), (0, 1)}
    # BIRD headline when asked
    m = Evaluator("bird").evaluate(open_database(str(db_path("concert_singer"))),
                                   "SELECT DISTINCT country FROM singer", "SELECT country FROM singer").metrics
    assert m["ex"] == m["ex_bird"] == 1


def test_perturbed_dev_predictions_agree(spider_ready):
    """Gold SQL, DISTINCT-added, column-reversed, ORDER BY-flipped and a neighbour's gold as
    predictions for 120 real dev questions: harness == official on every pair."""
    dev = json.loads((SPIDER / "dev.json").read_text())[:120]
    rng = random.Random(7)
    pairs = []
    for i, item in enumerate(dev):
        gold = item["query"]
        preds = [gold, gold.replace("SELECT ", "SELECT DISTINCT ", 1)]
        if " DESC" in gold:
            preds.append(gold.replace(" DESC", " ASC"))
        same_db = [d["query"] for d in dev if d["db_id"] == item["db_id"] and d["query"] != gold]
        if same_db:
            preds.append(rng.choice(same_db))
        head, sep, tail = gold.partition(" FROM ")
        cols = head[len("SELECT "):].split(",")
        if sep and len(cols) > 1 and "(" not in head and head.upper().startswith("SELECT "):
            preds.append("SELECT " + ",".join(reversed(cols)) + sep + tail)
        pairs += [(item["db_id"], gold, p) for p in preds]
    ev = Evaluator("spider")
    dbs: dict[str, Any] = {}
    agree_spider = agree_bird = 0
    outcomes = set()
    for db_id, gold, pred in pairs:
        path = str(db_path(db_id))
        db = dbs.setdefault(db_id, open_database(path))
        m = ev.evaluate(db, pred, gold).metrics
        off_ex, off_f1 = official_bird(path, pred, gold)
        agree_spider += m["ex_spider"] == official_spider_exec(path, pred, gold)
        agree_bird += (m["ex_bird"] == off_ex) and abs(m["soft_f1"] - off_f1) < 1e-12
        outcomes.add((m["ex_bird"], m["ex_spider"]))
    assert len(pairs) > 350
    assert agree_spider == len(pairs)
    assert agree_bird == len(pairs)
    assert {(0, 0), (1, 1)} <= outcomes


def test_gold_sql_of_spider_dev_scores_itself(spider_ready):
    """Every dev gold query runs through quorumsql.db and matches itself under both EXs."""
    dev = json.loads((SPIDER / "dev.json").read_text())
    ev = Evaluator("spider")
    dbs: dict[str, Any] = {}
    bad = []
    for item in dev:
        db = dbs.setdefault(item["db_id"], open_database(str(db_path(item["db_id"]))))
        ev_ = ev.evaluate(db, item["query"], item["query"])
        if ev_.gold_status != "ok" or ev_.metrics["ex_spider"] != 1 or ev_.metrics["ex_bird"] != 1:
            bad.append(item["query"])
    assert bad == []


def test_timeout_and_gold_failures_score_zero(spider_ready):
    db = open_database(str(db_path("concert_singer")))
    slow = ("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 100000000) "
            "SELECT count(*) FROM c")
    ev = Evaluator("bird", timeout=0.5)
    pred_timeout = ev.evaluate(db, slow, "SELECT count(*) FROM singer")
    assert pred_timeout.pred.status == "timeout" and pred_timeout.metrics["ex"] == 0
    gold_timeout = ev.evaluate(db, "SELECT count(*) FROM singer", slow)
    assert gold_timeout.gold_status == "timeout" and gold_timeout.metrics == {
        "ex_bird": 0, "ex_spider": 0, "soft_f1": 0.0, "ex": 0}
    gold_error = ev.evaluate(db, "SELECT count(*) FROM singer", "SELECT nothing FROM nowhere")
    assert gold_error.gold_status == "error" and gold_error.metrics["ex"] == 0
    no_gold = ev.evaluate(db, "SELECT 1", None)
    assert no_gold.gold_status == "missing" and no_gold.metrics == {}
    no_sql = ev.evaluate(db, None, "SELECT 1")
    assert no_sql.pred.status == "no_sql" and no_sql.metrics["ex"] == 0


def test_pure_comparisons_match_official_on_synthetic_rows():
    """Random small result pairs (ties, duplicates, NULLs, mixed int/float/str, permuted
    columns): spider_ex == result_eq and bird_ex/soft_f1 == calculate_ex/calculate_f1_score."""
    rng = random.Random(3)
    values = [0, 1, 2, 1.0, 2.5, "a", "b", None]
    checked = 0
    for _ in range(3000):
        ncol = rng.randint(1, 5)
        gold = [tuple(rng.choice(values) for _ in range(ncol)) for _ in range(rng.randint(0, 5))]
        kind = rng.random()
        if kind < 0.3 and gold:  # permute columns and shuffle rows
            perm = list(range(ncol))
            rng.shuffle(perm)
            pred = [tuple(r[i] for i in perm) for r in gold]
            rng.shuffle(pred)
        elif kind < 0.5 and gold:  # drop or duplicate a row
            pred = list(gold)
            if rng.random() < 0.5:
                pred.pop(rng.randrange(len(pred)))
            else:
                pred.append(rng.choice(pred))
        else:
            pred = [tuple(rng.choice(values) for _ in range(rng.choice([ncol, ncol, ncol + 1])))
                    for _ in range(rng.randint(0, 5))]
        for order in (False, True):
            assert spider_ex(pred, gold, order_matters=order) == int(result_eq(gold, pred, order))
        assert bird_ex(pred, gold) == calculate_ex(pred, gold)
        if all(len(r) for r in gold):
            assert soft_f1(pred, gold) == pytest.approx(calculate_f1_score(pred, gold), abs=1e-12)
        checked += 1
    assert checked == 3000


def test_rves_reward_buckets():
    """mini_dev evaluation_ves.py: bucketed reward of the mean cleaned ratio; score sqrt*100."""
    assert rves_reward([]) == 0
    assert rves_reward([2.5, 2.0, 3.0]) == 1.25
    assert rves_reward([1.2, 1.0, 1.4]) == 1.0
    assert rves_reward([0.6, 0.7, 0.8]) == 0.75
    assert rves_reward([0.3, 0.3, 0.4]) == 0.5
    assert rves_reward([0.1, 0.1, 0.2]) == 0.25
    assert rves_score([1.0, 0.25, 0.0]) == pytest.approx((100 + 50 + 0) / 3)
