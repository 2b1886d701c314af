"""Execution-based scores follow the benchmarks' documented semantics, one named rule per test.

Sources of the rules (read for their definitions; no evaluator code is reproduced here):

* BIRD EX (bird-bench, Mini-Dev README "Execution (EX) Evaluation"): a prediction is right when
  its result rows, taken as a *set*, equal the gold rows as a set: row order and duplicated rows
  do not count, the order of the values inside a row does.
* Spider EX (taoyds/test-suite-sql-eval README and the comments of its ``exec_eval.py``; Zhong et
  al., EMNLP 2020): results are compared as *bags* of rows (duplicates count), in order only when
  the gold query contains ORDER BY, and a prediction whose columns are a permutation of the
  gold's is accepted. Before running, ``> =``-style operators are joined, ``YEAR(CURDATE())`` is
  read as 2020 and, unless ``--keep_distinct`` is given, every DISTINCT keyword is dropped from
  both queries. ``--plug_value`` (copying the gold query's literals into the prediction) is an
  option the README recommends *not* to use when reporting; the harness scores values as
  predicted. The harness scores on the one database given (Spider's official database folder
  holds one database per id, so the test suite is that database).
* BIRD Soft-F1 (Mini-Dev README "Soft F1-Score"): duplicated rows dropped, the i-th predicted row
  paired with the i-th gold row, per pair the cells found in the other row are *matched*, the
  others *pred-only* / *gold-only*; tp, fp, fn are their sums; F1 of precision tp/(tp+fp) and
  recall tp/(tp+fn). Rows without a partner count entirely as pred-only / gold-only.

Every comparison is by Python equality of the values the database driver returns: ``1 == 1.0``,
``None == None``, ``'1' != 1``, no rounding tolerance.
"""

from __future__ import annotations

import json
import random
import re
import sqlite3
from collections import Counter
from itertools import permutations
from typing import Any

import pytest

from quorumsql.benchmarks import Evaluator, bird_ex, soft_f1, spider_ex
from quorumsql.benchmarks.evaluators import (
    order_matters,
    postprocess,
    remove_distinct,
    replace_cur_year,
    rves_reward,
    rves_score,
)
from quorumsql.db import open_database
from tests.conftest import spider_db

# ---------------------------------------------------------------------------------------------
# The documented rules, written directly (brute force, no shortcuts) to check the harness against
# ---------------------------------------------------------------------------------------------
_QUOTED = re.compile(r"('(?:[^']|'')*'|\"(?:[^\"]|\"\")*\")")


def _outside_quotes(sql: str, fn) -> str:
    parts = _QUOTED.split(sql)
    return "".join(p if i % 2 else fn(p) for i, p in enumerate(parts))


def rule_drop_distinct(sql: str) -> str:
    """Every DISTINCT keyword removed (string literals untouched)."""
    return _outside_quotes(sql, lambda s: re.sub(r"\bdistinct\b", "", s, flags=re.I))


def rule_order_matters(gold_sql: str) -> bool:
    """The gold query says ORDER BY somewhere outside string literals."""
    text = "".join(p for i, p in enumerate(_QUOTED.split(gold_sql)) if i % 2 == 0)
    return re.search(r"\border\s+by\b", text, flags=re.I) is not None


def rule_spider_equal(pred: list[tuple], gold: list[tuple], ordered: bool) -> int:
    """Bags (or sequences) of rows equal under one permutation of the predicted columns."""
    if not pred and not gold:
        return 1
    if len(pred) != len(gold) or len(pred[0]) != len(gold[0]):
        return 0
    for perm in permutations(range(len(gold[0]))):
        moved = [tuple(row[i] for i in perm) for row in pred]
        if (moved == gold) if ordered else (Counter(moved) == Counter(gold)):
            return 1
    return 0


def rule_bird_equal(pred: list[tuple], gold: list[tuple]) -> int:
    return int(set(pred) == set(gold))


def rule_soft_f1(pred: list[tuple], gold: list[tuple]) -> float:
    """The Mini-Dev README's table: per paired row matched / pred-only / gold-only cells.

    Cells are counted relative to the gold row's width, so that a row without a partner counts
    as one whole row (the README's rows all have the same width, where this changes nothing).
    """
    if not pred and not gold:
        return 1.0
    pred, gold = list(dict.fromkeys(pred)), list(dict.fromkeys(gold))
    width = len(gold[0]) if gold else len(pred[0])
    tp = fp = fn = 0.0
    for i in range(max(len(pred), len(gold))):
        if i >= len(pred):
            fn += 1
        elif i >= len(gold):
            fp += 1
        else:
            p, g = pred[i], gold[i]
            tp += sum(v in g for v in p) / width
            fp += sum(v not in g for v in p) / width
            fn += sum(v not in p for v in g) / width
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


# ---------------------------------------------------------------------------------------------
# BIRD EX: set equality
# ---------------------------------------------------------------------------------------------
def test_bird_ex_ignores_row_order_and_duplicated_rows():
    gold = [(1, "a"), (2, "b")]
    assert bird_ex([(2, "b"), (1, "a"), (1, "a"), (2, "b")], gold) == 1


def test_bird_ex_compares_values_in_column_order():
    assert bird_ex([("a", 1), ("b", 2)], [(1, "a"), (2, "b")]) == 0


def test_bird_ex_needs_every_row_and_no_other():
    gold = [(1,), (2,), (3,)]
    assert bird_ex([(1,), (2,)], gold) == 0
    assert bird_ex([(1,), (2,), (3,), (4,)], gold) == 0


def test_bird_ex_different_column_counts_differ_unless_both_results_are_empty():
    assert bird_ex([(1,)], [(1, "a")]) == 0
    assert bird_ex([], []) == 1
    assert bird_ex([], [(1,)]) == 0 and bird_ex([(1,)], []) == 0


def test_bird_ex_compares_numbers_by_value_without_rounding():
    assert bird_ex([(1.0,)], [(1,)]) == 1  # 1 == 1.0
    assert bird_ex([(0.1 + 0.2,)], [(0.3,)]) == 0  # no tolerance
    assert bird_ex([(10621.67,)], [(10621.666666666666,)]) == 0  # a rounded answer is wrong
    assert bird_ex([("1",)], [(1,)]) == 0  # text is not a number


def test_bird_ex_null_equals_null_and_nothing_else():
    assert bird_ex([(None, 1)], [(None, 1)]) == 1
    assert bird_ex([("", 1)], [(None, 1)]) == 0
    assert bird_ex([(0,)], [(None,)]) == 0


# ---------------------------------------------------------------------------------------------
# Spider EX: bags of rows, ORDER BY, column permutations
# ---------------------------------------------------------------------------------------------
def test_spider_ex_counts_duplicated_rows():
    gold = [(1,), (1,), (2,)]
    assert spider_ex([(1,), (2,), (1,)], gold, order_matters=False) == 1
    assert spider_ex([(1,), (2,), (2,)], gold, order_matters=False) == 0  # same set, other bag
    assert spider_ex([(1,), (2,)], gold, order_matters=False) == 0  # duplicates removed


def test_spider_ex_row_order_counts_only_when_the_gold_orders():
    gold = [("x", 3), ("y", 2), ("z", 1)]
    shuffled = [("z", 1), ("x", 3), ("y", 2)]
    assert spider_ex(shuffled, gold, order_matters=False) == 1
    assert spider_ex(shuffled, gold, order_matters=True) == 0
    assert spider_ex(list(gold), gold, order_matters=True) == 1


def test_spider_ex_accepts_a_permutation_of_the_columns():
    gold = [(1, "a", 10.5), (2, "b", 20.5)]
    pred = [("a", 10.5, 1), ("b", 20.5, 2)]
    assert spider_ex(pred, gold, order_matters=False) == 1
    assert spider_ex(pred, gold, order_matters=True) == 1
    assert spider_ex(list(reversed(pred)), gold, order_matters=True) == 0


def test_spider_ex_permutation_is_one_mapping_for_all_rows():
    # each predicted row, sorted, equals a gold row, but no single column mapping fits both rows
    assert spider_ex([(1, 2), (4, 3)], [(1, 2), (3, 4)], order_matters=False) == 0
    assert spider_ex([(1, 2), (1, 2)], [(1, 2), (2, 1)], order_matters=False) == 0


def test_spider_ex_permutations_of_wide_results_are_all_found():
    """Beyond three columns the candidates are narrowed by the values; none is lost."""
    gold = [(1, 1, 2, 2, 3, "a"), (1, 2, 2, 3, 3, "b"), (2, 2, 3, 3, 1, "a")]
    for perm in [(5, 4, 3, 2, 1, 0), (1, 0, 3, 2, 5, 4), (2, 3, 4, 5, 0, 1)]:
        pred = [tuple(row[i] for i in perm) for row in gold]
        assert spider_ex(pred, gold, order_matters=True) == 1, perm
    broken = [tuple(reversed(row)) for row in gold]
    broken[1] = broken[1][:-1] + ("c",)
    assert spider_ex(broken, gold, order_matters=False) == 0


def test_spider_ex_empty_results_match_whatever_their_columns():
    assert spider_ex([], [], order_matters=False) == 1
    assert spider_ex([], [], order_matters=True) == 1
    assert spider_ex([], [(1,)], order_matters=False) == 0
    assert spider_ex([(1,)], [], order_matters=False) == 0


def test_spider_ex_different_column_counts_differ():
    assert spider_ex([(1, "a")], [(1,)], order_matters=False) == 0
    assert spider_ex([(1,)], [(1, "a")], order_matters=False) == 0


def test_spider_ex_nulls_and_numbers_compare_by_value():
    assert spider_ex([(None, 1)], [(1, None)], order_matters=False) == 1  # NULL == NULL, permuted
    assert spider_ex([("",)], [(None,)], order_matters=False) == 0
    assert spider_ex([(37,)], [(37.0,)], order_matters=False) == 1
    assert spider_ex([(37, "x")], [("x", 37.0)], order_matters=True) == 1
    assert spider_ex([(0.1 + 0.2,)], [(0.3,)], order_matters=False) == 0
    assert spider_ex([("6",)], [(6,)], order_matters=False) == 0


def test_spider_ex_quick_rejection_sorts_cells_by_their_text():
    """Spider's scorer first rejects when the rows, each with its cells sorted by their text form
    (type name appended), differ. This is a shortcut, and the harness keeps it to give the
    leaderboard's verdicts; for a row mixing an integer and an equal float next to a number with
    the same leading digits, the text order differs and an otherwise equal result is rejected."""
    assert spider_ex([(3, 3.5)], [(3, 3.5)], order_matters=False) == 1
    assert spider_ex([(3.0, 3.5)], [(3, 3.5)], order_matters=False) == 0  # '3.0' < '3.5' but '3.5' < '3<'
    assert rule_spider_equal([(3.0, 3.5)], [(3, 3.5)], ordered=False) == 1  # the stated rule alone


def test_spider_ex_equals_the_stated_rule_on_random_results():
    """Bag/sequence equality under some column permutation, brute force, on 4,000 random pairs.

    Values avoid one integer and an equal float beside a number with the same leading digits
    (see the quick-rejection test above); NULLs, duplicates, ties and widths up to 5 are in.
    """
    rng = random.Random(11)
    values = [0, 1, 2, 7, 2.5, "a", "b", None]
    verdicts = Counter()
    for _ in range(4000):
        width = rng.randint(1, 5)
        gold = [tuple(rng.choice(values) for _ in range(width)) for _ in range(rng.randint(0, 5))]
        kind = rng.random()
        if kind < 0.35 and gold:
            perm = rng.sample(range(width), width)
            pred = [tuple(r[i] for i in perm) for r in gold]
            if rng.random() < 0.5:
                rng.shuffle(pred)
        elif kind < 0.55 and gold:
            pred = list(gold)
            if rng.random() < 0.5:
                pred.pop(rng.randrange(len(pred)))
            else:
                pred.append(rng.choice(pred))
        else:
            w = rng.choice([width, width, width + 1])  # a result has one width
            pred = [tuple(rng.choice(values) for _ in range(w)) for _ in range(rng.randint(0, 5))]
        for ordered in (False, True):
            got = spider_ex(pred, gold, order_matters=ordered)
            assert got == rule_spider_equal(pred, gold, ordered), (pred, gold, ordered)
            verdicts[got] += 1
        assert bird_ex(pred, gold) == rule_bird_equal(pred, gold)
    assert verdicts[0] > 1000 and verdicts[1] > 1000  # both verdicts well exercised


# ---------------------------------------------------------------------------------------------
# Spider's pre-processing of the SQL text
# ---------------------------------------------------------------------------------------------
def test_order_matters_when_the_gold_says_order_by_anywhere():
    assert order_matters("SELECT name FROM singer ORDER BY age")
    assert order_matters("select name from singer order\n   by age desc")
    # in a subquery too: the rule looks at the text, not at which SELECT is ordered
    assert order_matters("SELECT name FROM singer WHERE singer_id IN (SELECT singer_id FROM singer ORDER BY age LIMIT 3)")
    assert not order_matters("SELECT name FROM singer GROUP BY country")
    # harness choice: ORDER BY inside a string literal is text, not a clause
    assert not order_matters("SELECT name FROM singer WHERE name = 'order by'")


def test_distinct_is_dropped_from_select_and_aggregates_but_not_from_literals():
    assert "distinct" not in remove_distinct("SELECT DISTINCT country FROM singer").lower()
    assert "distinct" not in remove_distinct("SELECT count(DISTINCT maker) FROM model_list").lower()
    kept = remove_distinct("SELECT name FROM singer WHERE name = 'distinct' OR country = 'Distinct land'")
    assert "'distinct'" in kept and "'Distinct land'" in kept


def test_spaced_comparison_operators_are_joined_and_current_year_is_2020():
    assert postprocess("age > = 3 AND age < = 9 AND age ! = 5") == "age >= 3 AND age <= 9 AND age != 5"
    assert replace_cur_year("SELECT YEAR(CURDATE()) - birth_year FROM t") == "SELECT 2020- birth_year FROM t"
    assert replace_cur_year("year ( curdate ( ) ) > 1") == "2020> 1"


# ---------------------------------------------------------------------------------------------
# Soft-F1
# ---------------------------------------------------------------------------------------------
def test_soft_f1_counts_matched_pred_only_and_gold_only_cells_per_row():
    """The README's worked example, with its empty cells filled: row by row (matched, pred-only,
    gold-only) = (2, 0, 0), (1, 1, 1), (1, 1, 1): tp 4, fp 2, fn 2, precision = recall = 2/3."""
    gold = [("Apple", 325), ("Orange", 150), ("Banana", 119)]
    pred = [(325, "Apple"), (191, "Orange"), (119, "Kiwi")]
    assert soft_f1(pred, gold) == pytest.approx(2 / 3)


def test_soft_f1_counts_null_as_a_value():
    """NULL cells are values like any other (so scores agree with the released Mini-Dev numbers).

    The README's own example leaves two cells empty and counts them nowhere, giving 0.8; reading
    the empty cells as NULLs, they are one gold-only and one pred-only cell more: tp 4, fp 2,
    fn 2 over rows of width 2, F1 = 2/3.
    """
    gold = [("Apple", 325), ("Orange", None), ("Banana", 119)]
    pred = [(325, "Apple"), (191, "Orange"), (None, "Banana")]
    assert soft_f1(pred, gold) == pytest.approx(2 / 3)
    assert soft_f1([(None, 1)], [(None, 1)]) == 1.0


def test_soft_f1_pairs_rows_by_position_and_ignores_order_inside_a_row():
    gold = [(1, "a"), (2, "b"), (3, "c")]
    assert soft_f1([(r[1], r[0]) for r in gold], gold) == 1.0
    assert soft_f1([(3,), (1,), (2,)], [(1,), (2,), (3,)]) == 0.0  # same rows, other order: no pair matches
    assert bird_ex([(3,), (1,), (2,)], [(1,), (2,), (3,)]) == 1


def test_soft_f1_drops_duplicated_rows_first():
    assert soft_f1([("a",), ("b",)], [("a",), ("a",), ("b",)]) == 1.0
    assert soft_f1([("a",), ("a",), ("a",)], [("a",)]) == 1.0


def test_soft_f1_counts_rows_without_a_partner_as_whole_rows():
    gold = [(1, "x")]
    assert soft_f1([(1, "x"), (2, "y")], gold) == pytest.approx(2 / 3)  # precision 1/2, recall 1
    assert soft_f1([(1, "x")], [(1, "x"), (2, "y")]) == pytest.approx(2 / 3)  # precision 1, recall 1/2
    # width of the gold row is the unit: an extra predicted row counts 1, not its cell count
    assert soft_f1([(1, "z"), (5, 6)], [(1,)]) == pytest.approx(2 * (1 / 3) * 1 / (1 / 3 + 1))


def test_soft_f1_empty_results():
    assert soft_f1([], []) == 1.0
    assert soft_f1([], [(1,)]) == 0.0
    assert soft_f1([(1,)], []) == 0.0


def test_soft_f1_numbers_compare_by_value():
    assert soft_f1([(1.0, "a")], [(1, "a")]) == 1.0
    assert soft_f1([(0.30000000000000004,)], [(0.3,)]) == 0.0


def test_soft_f1_equals_the_readme_table_on_random_results():
    rng = random.Random(5)
    values = [0, 1, 2, 2.0, 3.5, "a", "b", None]
    for _ in range(3000):
        width = rng.randint(1, 4)
        gold = [tuple(rng.choice(values) for _ in range(width)) for _ in range(rng.randint(0, 5))]
        pred = [tuple(rng.choice(values) for _ in range(width)) for _ in range(rng.randint(0, 5))]
        if gold and rng.random() < 0.3:
            pred = [tuple(rng.sample(list(r), width)) for r in gold]
        assert soft_f1(pred, gold) == pytest.approx(rule_soft_f1(pred, gold), abs=1e-12), (pred, gold)


# ---------------------------------------------------------------------------------------------
# R-VES (Mini-Dev README: reward by the gold/predicted time ratio, score = mean sqrt(reward)*100)
# ---------------------------------------------------------------------------------------------
def test_rves_reward_buckets_of_the_time_ratio():
    assert rves_reward([]) == 0  # no timing: the prediction was wrong
    assert rves_reward([2.5, 2.0, 3.0]) == 1.25  # >= 2: twice as fast as the gold
    assert rves_reward([1.2, 1.0, 1.4]) == 1.0
    assert rves_reward([0.6, 0.7, 0.8]) == 0.75
    assert rves_reward([0.3, 0.3, 0.4]) == 0.5
    assert rves_reward([0.1, 0.1, 0.2]) == 0.25
    assert rves_reward([1.5, 1.5, 1.5]) == 1.0  # identical ratios are kept, not all discarded
    assert rves_score([1.0, 0.25, 0.0]) == pytest.approx((100 + 50 + 0) / 3)


# ---------------------------------------------------------------------------------------------
# The harness on real Spider databases: each case names the rule that decides it
# ---------------------------------------------------------------------------------------------
# (rule, db_id, gold, prediction, BIRD EX, Spider EX)
CASES = [
    ("same query", "concert_singer", "SELECT count(*) FROM singer", "SELECT count(*) FROM singer", 1, 1),
    ("other SQL, same result", "concert_singer", "SELECT count(*) FROM singer",
     "SELECT count(singer_id) FROM singer AS s", 1, 1),
    ("wrong result", "concert_singer", "SELECT count(*) FROM singer", "SELECT count(*) FROM stadium", 0, 0),
    ("prediction does not run: syntax", "concert_singer", "SELECT count(*) FROM singer", "SELEC count(*) FRM singer", 0, 0),
    ("prediction does not run: unknown column", "concert_singer", "SELECT name FROM singer", "SELECT nom FROM singer", 0, 0),
    ("prediction refused: writes", "concert_singer", "SELECT name FROM singer", "DELETE FROM singer", 0, 0),
    ("gold ORDER BY, same order", "concert_singer", "SELECT name, country, age FROM singer ORDER BY age DESC",
     "SELECT name, country, age FROM singer ORDER BY age DESC", 1, 1),
    ("gold ORDER BY, other order: only Spider checks order", "concert_singer",
     "SELECT name, country, age FROM singer ORDER BY age DESC",
     "SELECT name, country, age FROM singer ORDER BY age ASC", 1, 0),
    ("gold unordered: any order", "concert_singer", "SELECT name FROM singer",
     "SELECT name FROM singer ORDER BY name DESC", 1, 1),
    ("ORDER BY in the prediction only: order ignored", "pets_1", "SELECT petid, weight FROM pets",
     "SELECT petid, weight FROM pets ORDER BY weight", 1, 1),
    ("ORDER BY in a gold subquery: order checked", "concert_singer",
     "SELECT name FROM singer WHERE singer_id IN (SELECT singer_id FROM singer ORDER BY age LIMIT 3)",
     "SELECT name FROM singer WHERE singer_id IN (SELECT singer_id FROM singer ORDER BY age LIMIT 3) ORDER BY name DESC",
     1, 0),
    ("columns swapped: Spider permutes, BIRD does not", "concert_singer", "SELECT name, country FROM singer",
     "SELECT country, name FROM singer", 0, 1),
    ("four columns permuted", "concert_singer", "SELECT singer_id, name, country, age FROM singer",
     "SELECT age, country, singer_id, name FROM singer", 0, 1),
    ("columns swapped, gold ordered", "concert_singer", "SELECT name, age FROM singer ORDER BY age",
     "SELECT age, name FROM singer ORDER BY age", 0, 1),
    ("DISTINCT in the prediction: dropped by Spider, a set for BIRD", "concert_singer",
     "SELECT country FROM singer", "SELECT DISTINCT country FROM singer", 1, 1),
    ("DISTINCT in the gold", "concert_singer", "SELECT DISTINCT country FROM singer", "SELECT country FROM singer", 1, 1),
    ("rows doubled: a bag differs, a set does not", "concert_singer", "SELECT name FROM singer",
     "SELECT name FROM singer UNION ALL SELECT name FROM singer", 1, 0),
    ("count(DISTINCT) vs count: Spider drops DISTINCT inside aggregates too", "car_1",
     "SELECT count(DISTINCT maker) FROM model_list", "SELECT count(maker) FROM model_list", 0, 1),
    ("a column missing", "concert_singer", "SELECT name, age FROM singer", "SELECT name FROM singer", 0, 0),
    ("a column extra", "concert_singer", "SELECT name FROM singer", "SELECT name, age FROM singer", 0, 0),
    ("both empty, other columns", "concert_singer", "SELECT name FROM singer WHERE age > 1000",
     "SELECT country, age FROM singer WHERE age < 0", 1, 1),
    ("prediction empty", "concert_singer", "SELECT name FROM singer", "SELECT name FROM singer WHERE 0", 0, 0),
    ("spaced operator in the prediction: only Spider joins it", "concert_singer",
     "SELECT name FROM singer WHERE age >= 30", "SELECT name FROM singer WHERE age > = 30", 0, 1),
    ("spaced operator in the gold: Spider joins it before running the gold", "concert_singer",
     "SELECT name FROM singer WHERE age > = 30", "SELECT name FROM singer WHERE age >= 30", 0, 1),
    ("YEAR(CURDATE()) in the gold is 2020 for Spider", "concert_singer",
     "SELECT count(*) FROM singer WHERE age < YEAR(CURDATE()) - 1990", "SELECT count(*) FROM singer WHERE age < 30", 0, 1),
    ("literal values are scored as predicted (no value plugging)", "concert_singer",
     "SELECT name FROM singer WHERE age > 40", "SELECT name FROM singer WHERE age > 30", 0, 0),
    ("integer and equal float", "concert_singer", "SELECT avg(age) FROM singer", "SELECT sum(age) / count(*) FROM singer", 1, 1),
    ("no rounding tolerance", "concert_singer", "SELECT avg(capacity) FROM stadium",
     "SELECT round(avg(capacity), 2) FROM stadium", 0, 0),
    ("text is not a number", "concert_singer", "SELECT count(*) FROM singer",
     "SELECT CAST(count(*) AS TEXT) FROM singer", 0, 0),
    ("NULL equals NULL", "cre_Doc_Template_Mgt", "SELECT document_id, other_details FROM documents",
     "SELECT document_id, NULL FROM documents", 1, 1),
    ("NULL is not the empty string", "cre_Doc_Template_Mgt", "SELECT other_details FROM documents",
     "SELECT '' FROM documents", 0, 0),
    ("join vs subquery, same result", "concert_singer",
     "SELECT T2.name FROM concert AS T1 JOIN stadium AS T2 ON T1.stadium_id = T2.stadium_id WHERE T1.year = 2014",
     "SELECT name FROM stadium WHERE stadium_id IN (SELECT stadium_id FROM concert WHERE year = 2014)", 1, 1),
    ("DISTINCT dropped from the gold: the join's repeated rows count for Spider", "concert_singer",
     "SELECT DISTINCT T2.name FROM singer_in_concert AS T1 JOIN singer AS T2 ON T1.singer_id = T2.singer_id",
     "SELECT name FROM singer WHERE singer_id IN (SELECT singer_id FROM singer_in_concert)", 1, 0),
]


@pytest.fixture(scope="module")
def dbs():
    cache: dict[str, Any] = {}

    def get(db_id: str):
        if db_id not in cache:
            cache[db_id] = open_database(spider_db(db_id))
        return cache[db_id]

    return get


@pytest.mark.parametrize("rule,db_id,gold,pred,bird,spider", CASES, ids=[c[0] for c in CASES])
def test_case_on_spider_data(dbs, rule, db_id, gold, pred, bird, spider):
    m = Evaluator("spider").evaluate(dbs(db_id), pred, gold).metrics
    assert (m["ex_bird"], m["ex_spider"]) == (bird, spider), rule
    assert m["ex"] == m["ex_spider"]
    assert Evaluator("bird").evaluate(dbs(db_id), pred, gold).metrics["ex"] == bird


def test_keep_distinct_compares_the_queries_as_written(dbs):
    db = dbs("car_1")
    gold, pred = "SELECT count(DISTINCT maker) FROM model_list", "SELECT count(maker) FROM model_list"
    assert Evaluator("spider").evaluate(db, pred, gold).metrics["ex"] == 1
    assert Evaluator("spider", keep_distinct=True).evaluate(db, pred, gold).metrics["ex"] == 0
    db = dbs("concert_singer")
    m = Evaluator("spider", keep_distinct=True).evaluate(db, "SELECT DISTINCT country FROM singer",
                                                        "SELECT country FROM singer").metrics
    assert (m["ex_spider"], m["ex_bird"]) == (0, 1)  # a bag of 3 rows is not a bag of 6


def test_soft_f1_on_real_rows(dbs):
    """pets_1: the predicted type is 'cat' for every pet; per pet the id always matches and the
    type matches for the cats only (tp = cats + non-cats/2 rows, fp = fn = non-cats/2)."""
    db = dbs("pets_1")
    gold = db.execute("SELECT petid, pettype FROM pets").rows
    m = Evaluator("bird").evaluate(db, "SELECT petid, 'cat' FROM pets", "SELECT petid, pettype FROM pets").metrics
    cats = sum(1 for _, t in gold if t == "cat")
    others = len(gold) - cats
    assert 0 < cats < len(gold)
    tp, miss = cats + others / 2, others / 2
    assert m["soft_f1"] == pytest.approx(tp / (tp + miss)) and m["ex_bird"] == 0
    # the same rows in reverse: EX 1, Soft-F1 pairs rows by position
    m = Evaluator("bird").evaluate(db, "SELECT petid, pettype FROM pets ORDER BY petid DESC",
                                   "SELECT petid, pettype FROM pets ORDER BY petid").metrics
    assert m["ex_bird"] == 1 and m["ex_spider"] == 0 and m["soft_f1"] < 1


def _sqlite_rows(path, sql: str) -> list[tuple] | None:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    conn.text_factory = lambda b: b.decode("utf-8", "replace")
    try:
        return [tuple(r) for r in conn.execute(sql).fetchall()]
    except sqlite3.Error:
        return None
    finally:
        conn.close()


def test_altered_dev_predictions_score_by_the_stated_rules(spider_data, dbs):
    """For 120 real dev questions: the gold itself, DISTINCT added, columns reversed, ORDER BY
    flipped, and another question's gold on the same database, each scored by the harness and
    by the rules above applied to rows fetched with ``sqlite3`` (no harness code involved)."""
    dev = json.loads((spider_data / "dev.json").read_text())[:120]
    rng = random.Random(7)
    pairs = []
    for item in dev:
        gold = item["query"]
        preds = {"gold": gold, "distinct": gold.replace("SELECT ", "SELECT DISTINCT ", 1)}
        if " DESC" in gold:
            preds["flipped"] = gold.replace(" DESC", " ASC")
        same_db = [d["query"] for d in dev if d["db_id"] == item["db_id"] and d["query"] != gold]
        if same_db:
            preds["neighbour"] = rng.choice(same_db)
        head, sep, tail = gold.partition(" FROM ")
        cols = head[len("SELECT "):].split(",")
        compound = re.search(r"\b(union|intersect|except)\b", gold, re.I)
        if sep and len(cols) > 1 and "(" not in head and head.upper().startswith("SELECT ") and not compound:
            preds["reversed"] = "SELECT " + ",".join(reversed(cols)) + sep + tail
        pairs += [(item["db_id"], gold, kind, p) for kind, p in preds.items()]
    ev = Evaluator("spider")
    seen = Counter()
    for db_id, gold, kind, pred in pairs:
        path = spider_db(db_id)
        m = ev.evaluate(dbs(db_id), pred, gold).metrics
        g_raw, p_raw = _sqlite_rows(path, gold), _sqlite_rows(path, pred)
        assert g_raw is not None
        want_bird = 0 if p_raw is None else rule_bird_equal(p_raw, g_raw)
        want_f1 = 0.0 if p_raw is None else rule_soft_f1(p_raw, g_raw)
        g_sp, p_sp = rule_drop_distinct(gold), rule_drop_distinct(pred)
        g_rows, p_rows = _sqlite_rows(path, g_sp), _sqlite_rows(path, p_sp)
        want_spider = 0 if p_rows is None else rule_spider_equal(p_rows, g_rows, rule_order_matters(g_sp))
        assert (m["ex_bird"], m["ex_spider"]) == (want_bird, want_spider), (kind, gold, pred)
        assert m["soft_f1"] == pytest.approx(want_f1, abs=1e-12), (kind, gold, pred)
        if kind in ("gold", "distinct", "reversed"):
            assert m["ex_spider"] == 1, (kind, gold, pred)  # DISTINCT dropped, columns permuted
        seen[(kind, m["ex_bird"], m["ex_spider"])] += 1
    assert len(pairs) > 350
    assert seen[("gold", 1, 1)] == 120
    assert seen[("reversed", 0, 1)] > 0 and any(k[0] == "flipped" and k[2] == 0 for k in seen)
    assert any(k[0] == "neighbour" and k[1:] == (0, 0) for k in seen)


def test_every_dev_gold_query_scores_itself(spider_data, dbs):
    """Every dev gold query runs through quorumsql.db and matches itself under both EXs."""
    dev = json.loads((spider_data / "dev.json").read_text())
    ev = Evaluator("spider")
    bad = []
    for item in dev:
        res = ev.evaluate(dbs(item["db_id"]), item["query"], item["query"])
        if res.gold_status != "ok" or res.metrics["ex_spider"] != 1 or res.metrics["ex_bird"] != 1:
            bad.append(item["query"])
    assert bad == []


def test_failures_score_zero(dbs):
    """A prediction that errors, times out or is missing scores 0 on every metric; a gold query
    that fails scores 0 too and says why; with no gold there is nothing to score."""
    db = dbs("concert_singer")
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
    assert no_sql.pred.status == "no_sql" and no_sql.metrics["ex"] == 0 and no_sql.metrics["soft_f1"] == 0
    with pytest.raises(ValueError):
        Evaluator("exact-match")
