"""Rules the refiner learns, read off real refinement loops on Spider databases (scripted model)."""

from __future__ import annotations

from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.messages import AIMessage, HumanMessage

from quorumsql.agents.llm_selector import build_messages as selector_messages
from quorumsql.agents.refine_rules import conditions, learn_rules
from quorumsql.agents.refiner import refine
from quorumsql.db import open_database
from quorumsql.records import Attempt, Candidate


def _conversation():
    return [HumanMessage("question"), AIMessage("...")]


def test_conditions_are_the_conjuncts_of_where_and_having():
    sql = "SELECT a FROM t WHERE a = 1 AND (b > 2 OR c < 3) GROUP BY a HAVING COUNT(*) > 1"
    assert conditions(sql) == ["a = 1", "b > 2 OR c < 3", "COUNT(*) > 1"]
    assert conditions("SELECT 1 FROM t WHERE x IN (SELECT y FROM u WHERE z = 'q')") == [
        "x IN (SELECT y FROM u WHERE z = 'q')", "z = 'q'"]
    assert conditions("not sql at all (") == []


def test_a_condition_that_empties_the_result_is_learned_and_reaches_selection(concert_singer):
    db = open_database(concert_singer)
    first = "SELECT name FROM singer WHERE country = 'france' AND age > 30"
    fixed = "SELECT name FROM singer WHERE age > 30"
    llm = FakeListChatModel(responses=[f"```sql\n{fixed}\n```"])
    r = refine(llm, db, first, _conversation(), refine_states=("error", "empty"))
    assert [a.state for a in r.attempts] == ["empty", "ok"]
    assert [(x.kind, x.subject) for x in r.rules] == [("empty_condition", "country = 'france'")]
    cand = Candidate(id="c0", generator="zero-shot/mschema", sql=fixed, status="ok", rows=r.result.rows,
                     columns=r.result.columns, row_count=len(r.result.rows),
                     rules=[x.text for x in r.rules])
    other = Candidate(id="c1", generator="zero-shot/mschema", sql="SELECT name FROM singer", status="ok",
                      rows=[("Joe Sharp",)], columns=["name"], row_count=1)
    messages, _ = selector_messages("Which singers older than 30 are from France?", [[cand], [other]], schema_text="schema")
    assert "the condition country = 'france' matched no rows" in messages[1].content


def test_a_table_the_fix_added_is_required(concert_singer):
    db = open_database(concert_singer)
    broken = "SELECT name FROM singer WHERE stadium_id = 1"
    fixed = ("SELECT DISTINCT s.name FROM singer AS s JOIN singer_in_concert AS sc ON s.singer_id = sc.singer_id "
             "JOIN concert AS c ON sc.concert_id = c.concert_id WHERE c.stadium_id = '1'")
    llm = FakeListChatModel(responses=[f"```sql\n{fixed}\n```"])
    r = refine(llm, db, broken, _conversation())
    assert r.attempts[0].state == "error" and r.attempts[-1].state in ("ok", "empty")
    kinds = {(x.kind, x.subject) for x in r.rules}
    assert {("required_table", "concert"), ("required_table", "singer_in_concert")} <= kinds


def test_a_dropped_condition_is_reported_and_unchanged_sql_learns_nothing():
    attempts = [Attempt(sql="SELECT a FROM t WHERE b = 1 AND c = 2", state="error"),
                Attempt(sql="SELECT a FROM t WHERE b = 1", state="ok")]
    assert [(x.kind, x.subject) for x in learn_rules(attempts)] == [("dropped_condition", "c = 2")]
    assert learn_rules([Attempt(sql="SELECT a FROM t WHERE b = 1", state="ok")]) == []
