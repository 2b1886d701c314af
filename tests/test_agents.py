"""Generator, refiner and selector driven by langchain-core fake chat models on real Spider data."""

from __future__ import annotations

from langchain_core.language_models.fake_chat_models import FakeListChatModel, GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage

from quorumsql.agents.generator import build_messages, generate_sql
from quorumsql.agents.refiner import FEEDBACK, classify, refine
from quorumsql.agents.selector import select_by_vote
from quorumsql.db import ExecutionResult, open_database
from quorumsql.llm.usage import UsageReport
from quorumsql.records import Candidate
from quorumsql.schema_repr import to_mschema


def test_prompt_puts_stable_parts_first_and_question_last(concert_singer):
    schema_text = to_mschema(open_database(concert_singer).schema())
    msgs = build_messages("How many singers?", schema_text, evidence="singer = person", dialect="sqlite")
    assert "only the SQL in a ```sql block" in msgs[0].content and "SQLite" in msgs[0].content
    user = msgs[1].content
    assert user.index("【DB_ID】 concert_singer") < user.index("singer = person") < user.index("How many singers?")
    assert user.rstrip().endswith("How many singers?")


def test_generate_sql_reports_usage():
    llm = GenericFakeChatModel(
        messages=iter([AIMessage("```sql\nSELECT 1\n```", usage_metadata={"input_tokens": 120, "output_tokens": 9, "total_tokens": 129})])
    )
    gen = generate_sql(llm, "q", "schema")
    assert gen.sql == "SELECT 1"
    assert (gen.usage.prompt_tokens, gen.usage.completion_tokens, gen.usage.calls) == (120, 9, 1)
    assert isinstance(gen.messages[-1], AIMessage)


def test_usage_counts_prompt_tokens_served_from_the_cache():
    meta = {"input_tokens": 700, "output_tokens": 30, "total_tokens": 730, "input_token_details": {"cache_read": 662}}
    llm = GenericFakeChatModel(messages=iter([AIMessage("```sql\nSELECT 1\n```", usage_metadata=meta)]))
    usage = generate_sql(llm, "q", "schema").usage
    assert (usage.prompt_tokens, usage.cached_tokens, usage.read_tokens) == (700, 662, 38)
    assert "(662 from cache)" in UsageReport.from_events([("generate", usage)]).summary()


class RecordingChat(FakeListChatModel):
    """A scripted chat model that keeps the messages it was sent."""

    seen: list = []

    def _call(self, messages, stop=None, run_manager=None, **kwargs):
        self.seen.append(list(messages))
        return super()._call(messages, stop=stop, run_manager=run_manager, **kwargs)


def _conversation(reply: str):
    return [HumanMessage("question"), AIMessage(reply)]


def test_refiner_feeds_the_error_back_and_fixes(concert_singer):
    db = open_database(concert_singer)
    llm = FakeListChatModel(responses=["```sql\nSELECT count(*) FROM singer\n```"])
    r = refine(llm, db, "SELECT count(*) FROM singers", _conversation("..."))
    assert [a.state for a in r.attempts] == ["error", "ok"]
    assert "no such table: singers" in r.attempts[0].error
    assert r.sql == "SELECT count(*) FROM singer" and r.result.rows == [(6,)] and r.state == "ok"
    assert r.usage.calls == 1


def test_refiner_refuses_drop_and_asks_again(concert_singer):
    db = open_database(concert_singer)
    before = concert_singer.read_bytes()
    llm = FakeListChatModel(responses=["```sql\nSELECT count(*) FROM singer\n```"])
    r = refine(llm, db, "DROP TABLE singer", _conversation("```sql\nDROP TABLE singer\n```"))
    assert [a.state for a in r.attempts] == ["refused", "ok"]
    assert concert_singer.read_bytes() == before


def test_refiner_stops_after_the_round_limit(concert_singer):
    db = open_database(concert_singer)
    llm = FakeListChatModel(responses=[f"```sql\nSELECT bad{i} FROM singer\n```" for i in range(10)])
    r = refine(llm, db, "SELECT bad FROM singer", _conversation("x"), rounds=2)
    assert len(r.attempts) == 3 and r.state == "error" and r.usage.calls == 2


def test_refiner_stops_when_the_model_repeats_itself(concert_singer):
    db = open_database(concert_singer)
    llm = FakeListChatModel(responses=["```sql\nSELECT bad FROM singer\n```"])
    r = refine(llm, db, "SELECT bad FROM singer", _conversation("x"), rounds=3)
    # one greedy revision, one sampled retry, then it gives up
    assert len(r.attempts) == 1 and r.usage.calls == 2
    r = refine(llm, db, "SELECT bad FROM singer", _conversation("x"), rounds=3, retry_temperature=None)
    assert r.usage.calls == 1


def test_refiner_aligns_column_names_without_the_model(concert_singer):
    db = open_database(concert_singer)
    llm = FakeListChatModel(responses=["unused"])
    sql = ("SELECT T2.Name FROM singer AS T1 JOIN singer_in_concert AS T2 ON T1.Singer_ID = T2.Singer_ID "
           "WHERE T2.concert_id = 1")
    r = refine(llm, db, sql, _conversation("x"))
    assert [a.state for a in r.attempts] == ["error", "ok"] and r.usage.calls == 0
    assert "T1.Name" in r.sql


def test_error_feedback_names_the_real_columns(concert_singer):
    from quorumsql.agents.error_hints import error_hint

    schema = open_database(concert_singer).schema()
    hint = error_hint("SELECT song_title FROM singer", "no such column: song_title", schema)
    assert "Columns of singer: Singer_ID, Name, Country, Song_Name" in hint
    hint = error_hint("SELECT x FROM singers", "no such table: singers", schema)
    assert "similar names: singer" in hint


def test_refiner_leaves_ok_and_empty_alone_by_default(concert_singer):
    db = open_database(concert_singer)
    llm = FakeListChatModel(responses=["unused"])
    r = refine(llm, db, "SELECT Name FROM singer WHERE Country = 'Atlantis'", _conversation("x"))
    assert r.state == "empty" and r.usage.calls == 0


def test_refiner_revises_empty_results_when_asked(concert_singer):
    db = open_database(concert_singer)
    llm = FakeListChatModel(responses=["```sql\nSELECT Name FROM singer WHERE Country LIKE '%france%'\n```"])
    convo = _conversation("x")
    r = refine(llm, db, "SELECT Name FROM singer WHERE Country = 'france'", convo, refine_states=["empty"])
    expected = db.execute("SELECT Name FROM singer WHERE Country = 'France'").rows
    assert [a.state for a in r.attempts] == ["empty", "ok"] and r.result.rows == expected


def test_refiner_revises_all_null_results_when_asked(concert_singer):
    db = open_database(concert_singer)
    llm = RecordingChat(responses=["```sql\nSELECT max(Age) FROM singer WHERE Country = 'France'\n```"])
    r = refine(llm, db, "SELECT max(Age) FROM singer WHERE Country = 'france'", _conversation("x"),
               refine_states=["none"])
    assert [a.state for a in r.attempts] == ["none", "ok"] and r.result.rows == db.execute("SELECT max(Age) FROM singer WHERE Country = 'France'").rows
    assert "only NULL values" in llm.seen[-1][-1].content


def test_classify_states():
    def res(rows, sql="SELECT x FROM t", **kw):
        return ExecutionResult(sql=sql, columns=["x"], rows=rows, **kw)

    assert classify(res([(1,)])) == "ok"
    assert classify(res([])) == "empty"
    assert classify(res([(0,)], sql="SELECT COUNT(*) FROM t")) == "empty"
    assert classify(res([(0,)])) == "ok"
    assert classify(res([(None,), (None,)])) == "none"
    assert classify(res([], error="boom", error_kind="error")) == "error"
    assert classify(res([], error="x", error_kind="timeout")) == "timeout"
    assert set(FEEDBACK) >= {"error", "refused", "timeout", "no_sql", "empty", "none"}


def _cand(i, status="ok", key="k", sql=None):
    return Candidate(id=f"c{i}", generator="g", status=status, result_key=key if status != "error" else None, sql=sql or f"s{i}")


def test_selector_majority_and_ties():
    sel = select_by_vote([_cand(0, key="a"), _cand(1, key="b"), _cand(2, key="b")])
    assert sel.winner == "c1" and sel.decisive and sel.groups[0] == ["c1", "c2"]
    tie = select_by_vote([_cand(0, key="a"), _cand(1, key="b")])
    assert tie.winner == "c0" and not tie.decisive


def test_selector_prefers_ok_results_over_empty_ones():
    sel = select_by_vote([_cand(0, status="empty", key="e"), _cand(1, status="empty", key="e"), _cand(2, key="a")])
    assert sel.winner == "c2"


def test_selector_with_nothing_executable():
    sel = select_by_vote([_cand(0, status="error"), Candidate(id="c1", generator="g", status="model_error")])
    assert sel.winner is None and sel.groups == []
