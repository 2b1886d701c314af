"""Pulling SQL out of model replies; result fingerprints."""

import pytest

from quorumsql.agents.sql_text import extract_sql, result_key


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
