"""Pulling SQL out of model replies; result fingerprints."""

import pytest

from quorumsql.agents.sql_text import extract_sql, normalize_sql, result_key


@pytest.mark.parametrize(
    "reply,sql",
    [
        ("```sql\nSELECT count(*) FROM singer;\n```", "SELECT count(*) FROM singer"),
        ("Sure!\n```sql\nSELECT a\nFROM t\n```\nThis counts rows.", "SELECT a\nFROM t"),
        ("```SQLite\nSELECT 1\n```", "SELECT 1"),
        ("```\nselect x from y\n```", "select x from y"),
        ("first ```sql\nSELECT 1\n``` then ```sql\nSELECT 2\n```", "SELECT 2"),
        ("SELECT name FROM singer\n\nThe query selects names.", "SELECT name FROM singer"),
        ("```sql\nSELECT a FROM t WHERE", "SELECT a FROM t WHERE"),  # ran out of tokens
        ("```sql\nDROP TABLE singer\n```", "DROP TABLE singer"),  # kept, to be refused visibly
        ("```sql\nSELECT 1;\nSELECT 2;\n```", "SELECT 1;\nSELECT 2"),
        ("WITH c AS (SELECT 1) SELECT * FROM c", "WITH c AS (SELECT 1) SELECT * FROM c"),
        ("I am not able to answer that.", None),
        ("", None),
        ("```python\nprint(1)\n```", None),
    ],
)
def test_extract_sql(reply, sql):
    assert extract_sql(reply) == sql


def test_result_key_is_order_insensitive_multiset():
    assert result_key([(1, "a"), (2, "b")]) == result_key([(2, "b"), (1, "a")])
    assert result_key([(1,), (1,)]) != result_key([(1,)])
    assert result_key([(0.1 + 0.2,)]) == result_key([(0.3,)])
    assert result_key([]) != result_key([(None,)])
    # column order normalised: the same rows with the columns swapped are the same result
    assert result_key([(1, "a"), (2, "b")]) == result_key([("a", 1), ("b", 2)])
    assert result_key([(1, "a"), (2, "b")]) != result_key([(1, "b"), (2, "a")])
    assert result_key([(2.0,)]) == result_key([(2,)]) and result_key([(2.5,)]) != result_key([(2,)])


@pytest.mark.parametrize(
    "a,b,dialect,same",
    [
        # spacing, keyword case, trailing semicolon, comments
        ("select  count(*)\nfrom singer;", "SELECT COUNT(*) FROM singer -- all", "sqlite", True),
        # SQLite names are case-insensitive, quoted or not; aliases too
        ('SELECT T1.Name FROM singer AS T1', 'select t1."name" from SINGER as t1', "sqlite", True),
        # string literals keep their case: 'France' and 'france' are different queries in SQLite
        ("SELECT name FROM singer WHERE country = 'France'",
         "SELECT name FROM singer WHERE country = 'france'", "sqlite", False),
        # PostgreSQL folds unquoted names only
        ('SELECT "Name" FROM singer', "SELECT name FROM singer", "postgres", False),
        ("SELECT Name FROM singer", "SELECT name FROM singer", "postgres", True),
        # different queries stay different
        ("SELECT name FROM singer", "SELECT name FROM singer ORDER BY age", "sqlite", False),
        # text sqlglot cannot parse still compares up to spacing and case outside literals
        ("SELECT FROM WHERE x = 'A' ;", "select  from where X = 'A'", None, True),
        ("SELECT FROM WHERE x = 'A'", "SELECT FROM WHERE x = 'a'", None, False),
    ],
)
def test_normalize_sql(a, b, dialect, same):
    assert (normalize_sql(a, dialect) == normalize_sql(b, dialect)) is same


def test_normalize_sql_of_nothing():
    assert normalize_sql(None) is None and normalize_sql("  \n") is None
