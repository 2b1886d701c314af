"""answer() through the whole LangGraph inference graph, with fake chat models on real Spider data."""

from __future__ import annotations

import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel, GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_openai import ChatOpenAI

from quorumsql import Pipeline, answer
from quorumsql.config import Preset
from quorumsql.errors import DatabaseError, InputError, ModelError

Q = "How many singers do we have?"


def test_answer_fast_preset(concert_singer):
    llm = FakeListChatModel(responses=["```sql\nSELECT count(*) FROM singer\n```"])
    ans = answer(Q, concert_singer, llm=llm, preset="fast")
    assert ans.ok and ans.rows == [(6,)] and ans.sql == "SELECT count(*) FROM singer"
    assert ans.db_id == "concert_singer" and ans.preset == "fast"
    assert [c.status for c in ans.candidates] == ["ok"]
    assert [e.node for e in ans.trace] == ["context", "generate", "dedupe", "refine", "select"]


def test_majority_vote_over_execution_results(concert_singer):
    # two different SQL texts with the same result outvote a third
    llm = FakeListChatModel(
        responses=[
            "```sql\nSELECT count(*) FROM singer\n```",
            "```sql\nSELECT count(Singer_ID) FROM singer WHERE Age > 0\n```",
            "```sql\nSELECT count(*) FROM stadium\n```",  # 9 rows: a different result
        ]
    )
    ans = answer(Q, concert_singer, llm=llm, preset="balanced")
    assert ans.rows == [(6,)]
    assert sorted(c.votes for c in ans.candidates) == [1, 2, 2]
    winner = next(c for c in ans.candidates if c.sql == ans.sql)
    assert winner.votes == 2
    assert ans.confidence.votes == 2 and ans.confidence.candidates == 3 and ans.confidence.decisive
    assert abs(ans.confidence.share - 2 / 3) < 1e-9 and ans.confidence.decided_by == "vote"


def test_duplicates_are_executed_once_but_vote(concert_singer):
    llm = FakeListChatModel(responses=["```sql\nSELECT count(*) FROM singer\n```"])
    ans = answer(Q, concert_singer, llm=llm, preset="balanced")
    dups = [c for c in ans.candidates if c.duplicate_of]
    assert len(dups) == 2 and all(c.votes == 3 and c.status == "ok" for c in ans.candidates)
    refine_events = [e for e in ans.trace if e.node == "refine"]
    assert len(refine_events) == 1


def test_drop_table_is_refused_in_the_trace_and_nothing_is_written(concert_singer):
    before = concert_singer.read_bytes()
    llm = FakeListChatModel(responses=["```sql\nDROP TABLE singer\n```", "```sql\nSELECT count(*) FROM singer\n```"])
    ans = answer(Q, concert_singer, llm=llm, preset="fast")
    cand = ans.candidates[0]
    assert [a.state for a in cand.attempts] == ["refused", "ok"]
    assert "only read queries" in cand.attempts[0].error
    assert ans.rows == [(6,)]
    assert concert_singer.read_bytes() == before


def test_two_statements_are_refused(concert_singer):
    llm = FakeListChatModel(responses=["```sql\nSELECT 1; DELETE FROM singer\n```"])
    preset = Preset(name="no-refine", temperatures=[0.0], refine_rounds=0)
    ans = answer(Q, concert_singer, llm=llm, preset=preset)
    assert ans.sql is None and ans.candidates[0].status == "refused"
    assert "single read query" in ans.error


def test_garbage_from_the_model_gives_a_clear_error(concert_singer):
    llm = FakeListChatModel(responses=["I like turtles."])
    ans = answer(Q, concert_singer, llm=llm, preset="fast")
    assert ans.sql is None and ans.error.startswith("no candidate SQL executed")
    assert ans.confidence.share == 0.0 and ans.confidence.decided_by == "none"
    # the refiner asked again each round (fast: 2 rounds) and then gave up
    assert [a.state for a in ans.candidates[0].attempts] == ["no_sql"] * 3


def test_model_endpoint_down_raises_model_error(concert_singer):
    llm = ChatOpenAI(base_url="http://127.0.0.1:9/v1", api_key="x", model="m", max_retries=0, timeout=5)
    with pytest.raises(ModelError, match="unreachable"):
        answer(Q, concert_singer, llm=llm, preset="fast")


def test_usage_is_accounted_per_node(concert_singer):
    llm = GenericFakeChatModel(
        messages=iter(
            [
                AIMessage("```sql\nSELECT count(*) FROM singers\n```", usage_metadata={"input_tokens": 500, "output_tokens": 12, "total_tokens": 512}),
                AIMessage("```sql\nSELECT count(*) FROM singer\n```", usage_metadata={"input_tokens": 540, "output_tokens": 11, "total_tokens": 551}),
            ]
        )
    )
    ans = answer(Q, concert_singer, llm=llm, preset="fast")
    assert ans.rows == [(6,)]
    assert ans.usage.by_node["generate"].prompt_tokens == 500
    assert ans.usage.by_node["refine"].completion_tokens == 11
    assert ans.usage.total.calls == 2 and ans.usage.total.total_tokens == 1063
    assert "2 LLM calls" in ans.usage.summary()


def test_bad_inputs(concert_singer, tmp_path):
    llm = FakeListChatModel(responses=["SELECT 1"])
    with pytest.raises(InputError):
        answer("   ", concert_singer, llm=llm)
    with pytest.raises(DatabaseError, match="not found"):
        answer(Q, tmp_path / "missing.sqlite", llm=llm)
    with pytest.raises(DatabaseError, match="cannot reach MySQL"):
        answer(Q, "mysql+pymysql://root@127.0.0.1:9/nope", llm=llm)


def test_pipeline_is_reusable_across_databases(concert_singer):
    from tests.conftest import spider_db

    llm = FakeListChatModel(responses=["```sql\nSELECT count(*) FROM singer\n```", "```sql\nSELECT count(*) FROM Pets\n```"])
    pipe = Pipeline(llm=llm, preset="fast")
    assert pipe.answer(Q, concert_singer).rows == [(6,)]
    assert pipe.answer("How many pets are there?", spider_db("pets_1")).rows == [(3,)]
    assert pipe.database(concert_singer) is pipe.database(concert_singer)


def test_column_descriptions_reach_the_prompt(concert_singer, tmp_path):
    folder = tmp_path / "database_description"
    folder.mkdir()
    (folder / "singer.csv").write_text(
        "original_column_name,column_name,column_description,data_format,value_description\n"
        "Is_male,is male,whether the singer is a man,text,T: male; F: female\n",
        encoding="utf-8",
    )
    llm = FakeListChatModel(responses=["```sql\nSELECT count(*) FROM singer WHERE Is_male = 'T'\n```"])
    ans = answer("How many male singers?", concert_singer, llm=llm, preset="fast", descriptions=folder)
    prompt = ans.candidates[0].conversation[1].content
    assert "(Is_male:BOOL, whether the singer is a man; T: male; F: female, Examples: [F, T])" in prompt
    # a mapping works too, and is matched case-insensitively
    pipe = Pipeline(llm=llm, preset="fast")
    ans = pipe.answer("How many male singers?", concert_singer, descriptions={("SINGER", "is_male"): "T means male"})
    assert "(Is_male:BOOL, T means male," in ans.candidates[0].conversation[1].content


def test_registering_the_same_descriptions_again_keeps_the_cache(concert_singer, tmp_path):
    folder = tmp_path / "database_description"
    folder.mkdir()
    (folder / "singer.csv").write_text(
        "original_column_name,column_name,column_description,data_format,value_description\n"
        "Age,age,age in years,integer,\n", encoding="utf-8")
    pipe = Pipeline(llm=FakeListChatModel(responses=["SELECT 1"]), preset="fast")
    pipe.set_descriptions(concert_singer, folder)
    sentinel = object()
    pipe.resources._metadata[str(concert_singer)] = sentinel  # stands for a loaded store
    pipe.set_descriptions(concert_singer, folder)
    pipe.set_descriptions(concert_singer, folder)
    assert pipe.resources._metadata[str(concert_singer)] is sentinel
    assert pipe.descriptions(concert_singer)[("singer", "age")] == "age in years"
    pipe.set_descriptions(concert_singer, {("singer", "Age"): "years"})  # a change does reset it
    assert str(concert_singer) not in pipe.resources._metadata
