"""Synthesis agents (issue 11) driven by scripted fake chat models on real Spider schemas and gold SQL.

Every model reply below is scripted; what is asserted is what the agents make of it: the SQL or
questions they keep, what they drop and why, the prompt they sent, the scores they parse. The
difficulty expectations are worked out by hand from the rules in the module docstring of
``quorumsql/agents/difficulty.py`` (the reasoning is written next to each case).
"""

from __future__ import annotations

import numpy as np
import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel, GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage

from quorumsql.agents.active_selection import pick_for_review, uncertainty
from quorumsql.agents.cot_writer import ChainOfThought, write_cot
from quorumsql.agents.difficulty import (
    COMPONENT_LEVELS,
    EXECUTION_LEVELS,
    component_difficulty,
    component_points,
    execution_difficulty,
)
from quorumsql.agents.diversity import cluster, near_duplicates
from quorumsql.agents.judge import Judgement, judge_consistency, parse_rating
from quorumsql.agents.question_writer import STYLES, QuestionDraft, closest_to_centroid, write_questions
from quorumsql.agents.sql_synthesizer import COMPLEXITY_LEVELS, questions_first, synthesize_sql, vary_sql
from quorumsql.db import open_database
from quorumsql.errors import InputError
from quorumsql.llm.embeddings import default_embedder
from quorumsql.schema_repr import to_mschema
from tests.conftest import SPIDER, require_shared, spider_db


class Scripted(FakeListChatModel):
    """FakeListChatModel that keeps each prompt and the call options (temperature, seed, ...)."""

    seen: list = []
    options: list = []

    def _call(self, messages: list[BaseMessage], *args, **kwargs) -> str:
        self.seen.append(messages)
        self.options.append({k: v for k, v in kwargs.items() if k in ("temperature", "max_tokens", "seed")})
        return super()._call(messages, *args, **kwargs)


def scripted(*replies: str) -> Scripted:
    model = Scripted(responses=list(replies))
    model.seen, model.options = [], []
    return model


def sql_block(sql: str) -> str:
    return f"```sql\n{sql}\n```"


@pytest.fixture(scope="module")
def singer_schema() -> str:
    """M-Schema of Spider's concert_singer database."""
    return to_mschema(open_database(spider_db("concert_singer")).schema())


@pytest.fixture(scope="module")
def dev_gold() -> list[str]:
    """The SQL of ../shared/data/spider/dev_gold.sql, one query per line (db_id after a tab dropped)."""
    path = require_shared(SPIDER / "dev_gold.sql", "Spider dev_gold.sql")
    return [line.split("\t")[0].strip() for line in path.read_text().splitlines() if line.strip()]


def gold(dev_gold: list[str], snippet: str) -> str:
    """The first dev gold query containing ``snippet`` (whitespace collapsed), so a case cannot drift."""
    for sql in dev_gold:
        if snippet in " ".join(sql.split()):
            return sql
    raise AssertionError(f"no dev gold query contains {snippet!r}")


@pytest.fixture(scope="module")
def embedder():
    return default_embedder()


# ------------------------------------------------------------------------- SQL synthesis
@pytest.mark.parametrize("level", COMPLEXITY_LEVELS)
def test_synthesize_sql_at_each_level(level, singer_schema):
    llm = scripted(sql_block("SELECT count(*) FROM singer"), "Here you go:\n" + sql_block("SELECT name FROM stadium;"))
    found, usage = synthesize_sql(llm, singer_schema, complexity=level, n=2, seed=7)
    assert found == ["SELECT count(*) FROM singer", "SELECT name FROM stadium"]
    assert usage.calls == 2
    user = llm.seen[0][-1].content
    # stable parts first: schema, then the level asked for, last
    assert user.index("【DB_ID】 concert_singer") < user.index(f"{level}:")
    assert "only the SQL in a ```sql block" in llm.seen[0][0].content
    assert [o["seed"] for o in llm.options] == [7, 8]
    assert all(o["temperature"] == 0.8 for o in llm.options)


def test_synthesize_sql_levels_ask_for_different_things(singer_schema):
    prompts = {}
    for level in COMPLEXITY_LEVELS:
        llm = scripted(sql_block("SELECT 1"))
        synthesize_sql(llm, singer_schema, complexity=level)
        prompts[level] = llm.seen[0][-1].content
    assert len(set(prompts.values())) == len(COMPLEXITY_LEVELS)
    assert "one table" in prompts["simple"] and "set operation" in prompts["highly complex"]


@pytest.mark.parametrize("bad", ["hard", "Simple", "", "extra"])
def test_synthesize_sql_rejects_an_unknown_level(bad, singer_schema):
    llm = scripted(sql_block("SELECT 1"))
    with pytest.raises(InputError, match="unknown complexity"):
        synthesize_sql(llm, singer_schema, complexity=bad)
    assert llm.seen == []  # refused before any model call
    with pytest.raises(InputError):
        synthesize_sql(llm, singer_schema, complexity="simple", n=0)


def test_synthesize_sql_skips_replies_without_sql_and_repeats(singer_schema):
    llm = scripted(
        "I cannot write a query for this schema.",
        sql_block("SELECT count(*) FROM singer"),
        sql_block("select COUNT(*)  from singer;"),  # the same query, written differently
        "",
    )
    found, usage = synthesize_sql(llm, singer_schema, complexity="simple", n=4)
    assert found == ["SELECT count(*) FROM singer"]
    assert usage.calls == 4


def test_vary_sql_drops_the_input_itself(singer_schema):
    original = "SELECT count(*) FROM singer WHERE age > 30"
    llm = scripted(
        sql_block("select count(*) from SINGER where age > 30;"),  # identical after normalisation
        sql_block("SELECT count(*) FROM singer WHERE age >= 40"),
        "No variant comes to mind.",
        sql_block("SELECT count(*) FROM singer WHERE age >= 40"),  # a repeat of the variant above
    )
    found, usage = vary_sql(llm, original, singer_schema, n=4)
    assert found == ["SELECT count(*) FROM singer WHERE age >= 40"]
    assert usage.calls == 4
    kinds = [m[-1].content.split("【Variant wanted】")[1] for m in llm.seen]
    assert len(set(kinds)) == 4  # each call asks for another kind of change
    assert original in llm.seen[0][-1].content
    with pytest.raises(InputError):
        vary_sql(llm, "  ", singer_schema)


def test_questions_first_parses_question_lines(singer_schema):
    reply = ("Here are some questions:\nQUESTION: How many singers are there?\n"
             "2. **QUESTION:** Which stadium has the largest capacity?\n"
             "QUESTION: how many singers are there?\n"  # a repeat, other case
             "QUESTION: SELECT name FROM singer\n")  # SQL is not a question
    found, usage = questions_first(scripted(reply), singer_schema, n=3)
    assert found == ["How many singers are there?", "Which stadium has the largest capacity?"]
    assert usage.calls == 1
    # no labels: numbered lines ending in "?" still count; prose alone gives nothing
    found, _ = questions_first(scripted("1. What is the average age of singers?\n2) Which concerts were in 2014?"),
                               singer_schema, n=5)
    assert found == ["What is the average age of singers?", "Which concerts were in 2014?"]
    assert questions_first(scripted("The schema describes singers and concerts."), singer_schema)[0] == []
    found, _ = questions_first(scripted("\n".join(f"QUESTION: q{i}?" for i in range(6))), singer_schema, n=2)
    assert found == ["q0?", "q1?"]


# ---------------------------------------------------------------------- question writing
def test_write_questions_styles_and_evidence(singer_schema):
    sql = "SELECT name FROM singer WHERE is_male = 'T'"
    llm = scripted(
        "QUESTION: What are the names of all male singers?\nEVIDENCE: male singers have is_male = 'T'",
        "**QUESTION:** Which guys sing, by name?\n**EVIDENCE:** none",
        "I am not sure what this query does.",  # no question: left out
    )
    drafts, usage = write_questions(llm, sql, singer_schema, columns=["Name"], preview=[("Joe Sharp",), ("John Nizinik",)])
    assert drafts == [
        QuestionDraft(question="What are the names of all male singers?", evidence="male singers have is_male = 'T'",
                      style="formal"),
        QuestionDraft(question="Which guys sing, by name?", evidence="", style="colloquial"),
    ]
    assert usage.calls == 3
    assert [m[-1].content.split("【Style】")[1].split(":")[0].strip() for m in llm.seen] == list(STYLES[:3])
    user = llm.seen[0][-1].content
    assert sql in user and "Joe Sharp" in user and user.index("【DB_ID】") < user.index(sql)


def test_write_questions_cycles_the_given_styles_and_rejects_unknown(singer_schema):
    llm = scripted("QUESTION: List the singers.\nEVIDENCE: n/a", "QUESTION: Singers?", "List every singer?")
    drafts, _ = write_questions(llm, "SELECT name FROM singer", singer_schema, styles=["imperative", "concise"], n=3)
    assert [d.style for d in drafts] == ["imperative", "concise", "imperative"]
    assert [d.question for d in drafts] == ["List the singers.", "Singers?", "List every singer?"]
    assert all(d.evidence == "" for d in drafts)
    with pytest.raises(InputError, match="unknown question style"):
        write_questions(llm, "SELECT 1", singer_schema, styles=["poetic"])
    with pytest.raises(InputError):
        write_questions(llm, "", singer_schema)


def test_write_questions_survives_the_embedded_models_habits(singer_schema):
    # shapes the embedded 1.5B model produced: a repeated label, and evidence followed by an
    # explanation of the query (which is not outside knowledge and is left out)
    llm = scripted(
        "QUESTION: How many concerts did each singer take part in?\nEVIDENCE: EVIDENCE: none",
        "**QUESTION:** Which singers are older than 30?\n\n**EVIDENCE:** age is in years\n"
        "To answer this we filter the singer table (alias T1) on age and return the name column.",
    )
    drafts, _ = write_questions(llm, "SELECT name FROM singer WHERE age > 30", singer_schema, n=2)
    assert [(d.question, d.evidence) for d in drafts] == [
        ("How many concerts did each singer take part in?", ""),
        ("Which singers are older than 30?", "age is in years"),
    ]


def test_closest_to_centroid_picks_the_consensus_on_real_embeddings(embedder):
    outlier = "Which stadium has the highest capacity?"
    candidates = [outlier, "How many singers are there?", "What is the total number of singers?",
                  "Count the singers in the database.", "how many singers do we have"]
    pick = closest_to_centroid(candidates, embedder)
    assert pick != 0
    # the pick is the candidate most similar, on average, to the other four
    v = embedder.embed(candidates)
    mean_sim = [(v[i] @ np.delete(v, i, axis=0).T).mean() for i in range(len(candidates))]
    assert pick == int(np.argmax(mean_sim))
    assert closest_to_centroid(["only one"], embedder) == 0
    with pytest.raises(InputError):
        closest_to_centroid([], embedder)


# ------------------------------------------------------------------------ consistency judge
def test_judge_parses_the_score_and_applies_the_threshold(singer_schema):
    llm = scripted("It counts the singers, as asked.\nSCORE: 5")
    j = judge_consistency(llm, "How many singers are there?", "SELECT count(*) FROM singer", singer_schema,
                          columns=["count(*)"], preview=[(6,)])
    assert isinstance(j, Judgement)
    assert (j.score, j.consistent) == (1.0, True) and j.reason == "It counts the singers, as asked."
    assert j.usage.calls == 1
    prompt = llm.seen[0][-1].content
    assert "# Table: singer" in prompt and "count(*)\n6" in prompt
    assert prompt.rstrip().endswith("How many singers are there?")

    j = judge_consistency(scripted("The filter on age is missing.\n**SCORE: 2**"), "Singers older than 30?",
                          "SELECT name FROM singer", singer_schema)
    assert (j.score, j.consistent) == (0.25, False)
    j = judge_consistency(scripted("Vague but fine. SCORE: 3"), "q", "SELECT 1", singer_schema, threshold=0.6)
    assert (j.score, j.consistent) == (0.5, False)


@pytest.mark.parametrize("reply", ["The query looks fine to me.", "SCORE: 9", "SCORE: high", ""])
def test_judge_malformed_reply_scores_zero_with_a_reason(reply, singer_schema):
    j = judge_consistency(scripted(reply), "How many singers?", "SELECT count(*) FROM singer", singer_schema)
    assert (j.score, j.consistent) == (0.0, False)
    assert j.reason.startswith("unparseable judge reply")


def test_judge_needs_a_question_and_sql_and_a_sane_threshold(singer_schema):
    llm = scripted("SCORE: 5")
    assert judge_consistency(llm, "q", "", singer_schema).reason == "no SQL"
    assert judge_consistency(llm, " ", "SELECT 1", singer_schema).reason == "no question"
    assert llm.seen == []
    with pytest.raises(InputError):
        judge_consistency(llm, "q", "SELECT 1", singer_schema, threshold=1.5)


def test_parse_rating_maps_one_to_five_onto_zero_to_one():
    assert [parse_rating(f"SCORE: {r}") for r in (1, 2, 3, 4, 5)] == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert parse_rating("SCORE: 4\nA score of 2 would be too low. SCORE: 2") == 0.75  # the first one counts
    assert parse_rating("VERDICT: YES") == 1.0 and parse_rating("VERDICT: NO") == 0.0
    assert parse_rating("SCORE: 0") is None and parse_rating("no score") is None


def test_benchmark_judge_names_still_import():
    from quorumsql.agents import judge as agents_judge
    from quorumsql.benchmarks import Judge, Verdict
    from quorumsql.benchmarks.judge import parse_verdict

    assert Judge is agents_judge.Judge and Verdict is agents_judge.Verdict
    assert parse_verdict is agents_judge.parse_verdict


# --------------------------------------------------------------------------- chain of thought
def test_cot_ends_in_the_sql(singer_schema):
    reply = ("1. The question asks for a count of singers, so use the singer table.\n"
             "2. No filter is needed.\n" + sql_block("SELECT count(*) FROM singer;") +
             "\nThis query returns the number of singers.")
    llm = GenericFakeChatModel(messages=iter([AIMessage(reply)]))
    cot = write_cot(llm, "How many singers are there?", "SELECT count(*) FROM singer", singer_schema)
    assert isinstance(cot, ChainOfThought)
    assert cot.sql == "SELECT count(*) FROM singer"
    assert cot.text.startswith("1. The question asks") and cot.text.endswith("```")
    assert "This query returns" not in cot.text  # the closing remark is cut so the text ends in the SQL
    assert cot.usage.calls == 1


def test_cot_without_sql_has_no_sql(singer_schema):
    llm = scripted("Count the rows of the singer table; that is the answer.")
    cot = write_cot(llm, "How many singers are there?", "SELECT count(*) FROM singer", singer_schema, evidence="none")
    assert cot.sql is None and cot.text == "Count the rows of the singer table; that is the answer."
    prompt = llm.seen[0][-1].content
    assert "SELECT count(*) FROM singer" in prompt and prompt.rstrip().endswith("How many singers are there?")
    with pytest.raises(InputError):
        write_cot(llm, "", "SELECT 1", singer_schema)


# -------------------------------------------------------------------------------- difficulty
def test_component_difficulty_on_spider_gold(dev_gold):
    # no component at all: score 0 -> easy
    assert component_difficulty(gold(dev_gold, "SELECT count(*) FROM singer")) == "easy"

    # nested (2) + UNION (2) + NOT IN (1) = 5 -> hard
    q = gold(dev_gold, "WHERE AirportCode NOT IN (SELECT SourceAirport FROM Flights UNION")
    points = component_points(q)
    assert (points["nested"], points["set_operation"], points["membership"], points["joins"]) == (2, 2, 1, 0)
    assert component_difficulty(q) == "hard"

    # two selected columns (1) + 2 outer JOINs + 2 JOINs in the subquery (4) + nested (2) + NOT IN (1)
    # = 8 (one AND only, so no connectives point) -> extra
    q = gold(dev_gold, "WHERE T3.pettype = 'dog' AND T1.stuid NOT IN (SELECT")
    points = component_points(q)
    assert (points["joins"], points["connectives"], points["columns"]) == (4, 0, 1)
    assert sum(points.values()) == 8 and component_difficulty(q) == "extra"


def test_in_is_not_a_join_and_join_is_not_in(dev_gold):
    # NOT IN over a subquery: a membership predicate, no JOIN
    q = gold(dev_gold, "SELECT name FROM stadium WHERE stadium_id NOT IN (SELECT stadium_id FROM concert)")
    points = component_points(q)
    assert points["joins"] == 0 and points["membership"] == 1
    # two JOINs on singer_in_concert: "in" appears in the table name and in "JOIN", but no IN predicate
    q = gold(dev_gold, "FROM singer_in_concert AS T1 JOIN singer AS T2 ON T1.singer_id = T2.singer_id JOIN concert")
    points = component_points(q)
    assert points["joins"] == 2 and points["membership"] == 0
    assert component_difficulty(q) == "easy"  # 2 joins = 2 points
    # BETWEEN's AND is not a connective; words inside literals are not components
    points = component_points("SELECT name FROM singer WHERE age BETWEEN 20 AND 30 AND song_name = 'join in order by'")
    assert (points["connectives"], points["joins"], points["membership"], points["order_by"]) == (0, 0, 0, 0)


@pytest.mark.parametrize("bad", ["SELEC name FROM", "", "DROP TABLE singer", "SELECT 1; SELECT 2"])
def test_component_difficulty_rejects_what_is_not_one_query(bad):
    with pytest.raises(InputError):
        component_difficulty(bad)


def test_component_levels_cover_the_dev_set(dev_gold):
    levels = {component_difficulty(q) for q in dev_gold}
    assert levels == set(COMPONENT_LEVELS)


def test_execution_difficulty_thresholds():
    # DataFlow's table on 10 generations: <= 2 extra, <= 5 hard, <= 9 medium, 10 easy
    expected = ["extra"] * 3 + ["hard"] * 3 + ["medium"] * 4 + ["easy"]
    assert [execution_difficulty(s, 10) for s in range(11)] == expected
    # scaled to 4 attempts: 0/4 extra, 1/4 = 25 % hard, 2/4 = 50 % hard, 3/4 = 75 % medium, 4/4 easy
    assert [execution_difficulty(s, 4) for s in range(5)] == ["extra", "hard", "hard", "medium", "easy"]
    assert execution_difficulty(1, 1) == "easy" and execution_difficulty(0, 1) == "extra"
    assert set(expected) == set(EXECUTION_LEVELS)
    for s, n in [(1, 0), (-1, 5), (6, 5), (2.0, 5), (True, 5)]:
        with pytest.raises(InputError):
            execution_difficulty(s, n)


# --------------------------------------------------------------------------------- diversity
SINGER_QS = ["How many singers are there?", "What is the total number of singers?",
             "how many singers are there", "Count the singers."]
STADIUM_QS = ["Which stadium has the largest capacity?", "List the names of all stadiums.",
              "What is the average capacity of the stadiums?"]


def test_near_duplicates_on_real_embeddings(embedder):
    v = embedder.embed(SINGER_QS + STADIUM_QS)
    # only the lower-case copy of question 0 repeats a kept question at 0.95
    assert near_duplicates(v, threshold=0.95) == [2]
    # looser threshold: paraphrases of question 0 go as well, the stadium questions stay
    loose = near_duplicates(v, threshold=0.9)
    assert 1 in loose and 2 in loose and not {4, 5, 6} & set(loose)
    assert near_duplicates(v, threshold=1.0) == []
    assert near_duplicates(np.zeros((0, 384))) == []
    with pytest.raises(InputError):
        near_duplicates(v, threshold=0)
    with pytest.raises(InputError):
        near_duplicates(v[0])


def test_cluster_separates_topics_on_real_embeddings(embedder):
    texts = SINGER_QS + STADIUM_QS
    v = embedder.embed(texts)
    labels = cluster(v, 2, seed=0)
    assert len(labels) == len(texts)
    assert set(labels[:4]) == {0} and set(labels[4:]) == {1}  # row 0 is in cluster 0
    assert cluster(v, 2, seed=0) == labels  # same seed, same labels
    assert cluster(v, 50) == list(range(len(texts)))  # k capped at the number of rows, one row each
    assert cluster(v, 1) == [0] * len(texts) and cluster(np.zeros((0, 4)), 3) == []
    with pytest.raises(InputError):
        cluster(v, 0)


# -------------------------------------------------------------------------- active selection
def test_uncertainty_ordering():
    sure = uncertainty(1.0, 1.0)
    half = uncertainty(0.5, 0.5)
    both_low = uncertainty(0.0, 0.0)
    contradiction = uncertainty(1.0, 0.0)
    assert sure == 0.0 and contradiction == 1.0 == uncertainty(0.0, 1.0)
    assert sure < half < both_low < contradiction
    assert uncertainty(0.9, 0.8) < uncertainty(0.9, 0.4)  # the generators disagreeing more raises it
    for bad in [(-0.1, 0.5), (0.5, 1.2), (float("nan"), 0.5)]:
        with pytest.raises(InputError):
            uncertainty(*bad)


def test_pick_for_review_one_per_cluster_most_uncertain_first():
    u = [0.1, 0.9, 0.4, 0.7, 0.4, 0.4]
    clusters = [0, 0, 1, 1, 2, 2]
    assert pick_for_review(u, clusters) == [1, 3, 4]  # 0.9 (c0), 0.7 (c1), 0.4 (c2: 4 and 5 tie, lower index)
    # two per cluster: every 0.4 ties, ordered by index
    assert pick_for_review(u, clusters, per_cluster=2) == [1, 3, 2, 4, 5, 0]
    assert pick_for_review(u, [7, 7, 7, 3, 3, 3]) == [1, 3]  # labels need not be 0..k-1
    assert pick_for_review([], []) == []
    with pytest.raises(InputError):
        pick_for_review(u, clusters[:-1])
    with pytest.raises(InputError):
        pick_for_review(u, clusters, per_cluster=0)


def test_selection_end_to_end_on_real_embeddings(embedder):
    texts = SINGER_QS + STADIUM_QS
    labels = cluster(embedder.embed(texts), 2, seed=0)
    judge = [1.0, 0.75, 1.0, 0.5, 1.0, 0.25, 1.0]
    agreement = [1.0, 1.0, 0.9, 0.1, 1.0, 1.0, 0.3]
    u = [uncertainty(j, a) for j, a in zip(judge, agreement)]
    # singer cluster: "Count the singers." (judge 0.5, agreement 0.1) is the least certain;
    # stadium cluster: judge 0.25 with full agreement is a contradiction and beats 1.0 / 0.3
    assert pick_for_review(u, labels) == [5, 3]


class SeedRecordingChat(FakeListChatModel):
    """A scripted chat model that keeps the sampling seed of every call."""

    seeds: list = []

    def _call(self, messages, stop=None, run_manager=None, **kwargs):
        self.seeds.append(kwargs.get("seed"))
        return super()._call(messages, stop=stop, run_manager=run_manager, **kwargs)


def test_variation_and_question_writing_send_repeatable_seeds(singer_schema):
    llm = SeedRecordingChat(responses=["```sql\nSELECT name FROM singer WHERE age > 30\n```",
                                       "```sql\nSELECT count(*) FROM singer\n```"])
    vary_sql(llm, "SELECT name FROM singer", singer_schema, n=2, seed=7)
    assert llm.seeds == [7, 8]
    writer = SeedRecordingChat(responses=["QUESTION: Which singers are there?\nEVIDENCE: none"] * 2)
    write_questions(writer, "SELECT name FROM singer", singer_schema, n=2, seed=3)
    assert writer.seeds == [3, 4]
    unseeded = SeedRecordingChat(responses=["QUESTION: Which singers are there?\nEVIDENCE: none"])
    write_questions(unseeded, "SELECT name FROM singer", singer_schema, n=1)
    assert unseeded.seeds == [None]
