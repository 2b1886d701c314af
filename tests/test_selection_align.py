"""The LLM selector and the align stage, driven through the inference graph on real Spider data.

Fake chat models script the generator (its reply chosen by the call's sampling temperature,
since generation branches run in parallel) and the selector (a separate model of the
``selector`` role that records every prompt it gets). Expected results are computed from the
Spider databases directly, not written into the tests.
"""

from __future__ import annotations

import sqlite3

import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from pydantic import Field

from quorumsql import Pipeline
from quorumsql.agents.align import align_sql, cast_integer_division, transpile_functions
from quorumsql.agents.llm_selector import build_messages, parse_choice
from quorumsql.agents.sql_text import result_key
from quorumsql.config import PRESETS, Preset, RoleSettings, Settings
from quorumsql.db import open_database
from quorumsql.llm import ChatModels
from quorumsql.records import Candidate
from tests.conftest import spider_db

Q = "How many singers are older than 30?"
ALL = "SELECT count(*) FROM singer"
OVER_30 = "SELECT count(*) FROM singer WHERE Age > 30"


def sql_block(text: str) -> str:
    return f"```sql\n{text}\n```"


class ByTemperature(FakeListChatModel):
    """Generator fake: the reply depends on the sampling temperature of the call.

    A temperature without a reply of its own (the refiner's 0.8 retry) gets the greedy reply.
    """

    replies: dict[float, str] = Field(default_factory=dict)
    responses: list[str] = Field(default_factory=lambda: [""])

    def _call(self, messages, stop=None, run_manager=None, **kwargs):
        return sql_block(self.replies.get(kwargs.get("temperature", 0.0), self.replies[0.0]))


class Recorder(FakeListChatModel):
    """Selector fake: replies from ``responses`` and keeps every prompt it was sent."""

    prompts: list = Field(default_factory=list)

    def _call(self, messages, *args, **kwargs):
        self.prompts.append(messages)
        return super()._call(messages, *args, **kwargs)


class RoleModels(ChatModels):
    """Given models for some roles; the others resolve from the settings as in production."""

    def __init__(self, settings: Settings, models: dict) -> None:
        super().__init__(settings)
        self.by_role = models

    def get(self, role: str = "generator"):
        return self.by_role[role] if role in self.by_role else super().get(role)


@pytest.fixture
def settings(tmp_path):
    # a global endpoint nothing listens on: no role can ever start the embedded model
    return Settings.load(cache_dir=tmp_path / "cache", llm_base_url="http://127.0.0.1:1/v1",
                         llm_max_retries=0, llm_timeout=5)


def pipeline(settings, generator, selector=None, **preset_kw) -> Pipeline:
    preset = Preset(name="test", **{"temperatures": [0.0, 0.7], "refine_rounds": 0, **preset_kw})
    pipe = Pipeline(settings, preset=preset, llm=generator)
    pipe.models = pipe.context.models = RoleModels(settings, {"generator": generator}
                                                   | ({"selector": selector} if selector else {}))
    return pipe


def rows_of(db, sql):
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return conn.execute(sql).fetchall()


def event(ans, node):
    return next(e for e in ans.trace if e.node == node)


# -- LLM selector -----------------------------------------------------------------------------
def test_only_accurate_ships_the_selector_and_the_align_stage():
    for name in ("fast", "balanced"):
        assert PRESETS[name].llm_selector == "never" and PRESETS[name].align_rules == []
    accurate = PRESETS["accurate"]
    assert accurate.llm_selector == "always" and len(accurate.align_rules) == 4
    assert set(accurate.generators) == {"zero-shot", "finetuned"} and len(accurate.candidate_plan()) == 8


def test_a_tie_is_settled_by_the_selector(settings, concert_singer):
    selector = Recorder(responses=["B"])
    gen = ByTemperature(replies={0.0: ALL, 0.7: OVER_30})
    ans = pipeline(settings, gen, selector, llm_selector="on_tie").answer(Q, concert_singer)
    assert rows_of(concert_singer, ALL) != rows_of(concert_singer, OVER_30)  # two groups of one: a tie
    assert event(ans, "select").message.startswith("c0:")  # the vote alone would keep the greedy one
    assert ans.sql == OVER_30 and ans.rows == rows_of(concert_singer, OVER_30)
    conf = ans.confidence
    assert conf.decided_by == "selector" and conf.votes == 1 and conf.share == 0.5 and not conf.decisive
    sel = event(ans, "llm_select")
    assert sel.data["letters"] == {"A": "c0", "B": "c1"} and sel.data["groups"] == [["c0"], ["c1"]]
    assert sel.data["overrode_vote"] and "over the vote's winner c0" in sel.data["reason"]
    assert [e.node for e in ans.trace][-2:] == ["select", "llm_select"]  # after the vote, before the answer
    assert len(selector.prompts) == 1
    prompt = selector.prompts[0][1].content
    # stable parts first, candidates lettered in vote order, the question last
    assert prompt.index("【Schema】") < prompt.index("Candidate A") < prompt.index("Candidate B") < prompt.index(Q)
    assert ALL in prompt.split("Candidate B")[0] and OVER_30 in prompt.split("Candidate B")[1]
    assert ans.usage.by_node["llm_select"].calls == 1


def test_a_selector_reply_naming_no_candidate_keeps_the_vote(settings, concert_singer):
    selector = Recorder(responses=["Both queries look reasonable to me."])
    gen = ByTemperature(replies={0.0: ALL, 0.7: OVER_30})
    ans = pipeline(settings, gen, selector, llm_selector="on_tie").answer(Q, concert_singer)
    assert len(selector.prompts) == 1
    assert ans.sql == ALL and ans.rows == rows_of(concert_singer, ALL)
    assert ans.confidence.decided_by == "vote"
    note = event(ans, "llm_select").message
    assert "names no candidate" in note and "the vote's winner c0 stands" in note


@pytest.mark.parametrize("mode,margin,asked", [
    ("never", 0.0, False),
    ("on_tie", 0.0, False),   # 2 of 3 agree: decisive, margin 1/3
    ("on_tie", 0.5, True),    # ... but under a 0.5 margin threshold
    ("always", 0.0, True),
])
def test_when_the_selector_is_asked(settings, concert_singer, mode, margin, asked):
    selector = Recorder(responses=["B"])  # A is the majority's group, B the lone greedy candidate
    gen = ByTemperature(replies={0.0: ALL, 0.7: OVER_30})  # c0 alone, c1 and c2 agree
    ans = pipeline(settings, gen, selector, temperatures=[0.0, 0.7, 0.7], llm_selector=mode,
                   selector_margin=margin).answer(Q, concert_singer)
    assert len(selector.prompts) == (1 if asked else 0)
    nodes = [e.node for e in ans.trace]
    assert ("llm_select" in nodes) == (mode != "never")
    if not asked:
        assert ans.sql == OVER_30 and ans.confidence.decided_by == "vote" and ans.confidence.votes == 2
        if mode == "on_tie":
            assert "the vote is decisive (margin 0.33" in event(ans, "llm_select").message
    else:  # the selector picked B, the lone greedy candidate, against the majority
        assert ans.sql == ALL and ans.confidence.decided_by == "selector" and ans.confidence.votes == 1
        assert event(ans, "llm_select").data["overrode_vote"]


def test_an_unreachable_selector_endpoint_keeps_the_vote(tmp_path, concert_singer):
    settings = Settings.load(cache_dir=tmp_path / "cache", llm_base_url="http://127.0.0.1:1/v1", llm_max_retries=0,
                             llm_timeout=5, roles={"selector": RoleSettings(base_url="http://127.0.0.1:9/v1", model="sel")})
    gen = ByTemperature(replies={0.0: ALL, 0.7: OVER_30})
    ans = pipeline(settings, gen, None, llm_selector="on_tie").answer(Q, concert_singer)
    assert ans.sql == ALL and ans.confidence.decided_by == "vote" and not ans.confidence.decisive
    note = event(ans, "llm_select")
    assert "unreachable" in note.message and "127.0.0.1:9" in note.message  # the role's own endpoint
    assert "the vote's winner c0 stands" in note.message


def test_only_groups_that_can_still_win_are_offered(settings, concert_singer):
    # an empty result loses to rows whatever the count, so "always" has nothing to choose from
    selector = Recorder(responses=["B"])
    gen = ByTemperature(replies={0.0: "SELECT Name FROM singer WHERE Age > 30",
                                 0.7: "SELECT Name FROM singer WHERE Age > 300"})
    ans = pipeline(settings, gen, selector, temperatures=[0.0, 0.7, 0.7], llm_selector="always",
                   refine_states=["error"]).answer("Which singers are over 30?", concert_singer)
    assert [c.status for c in ans.candidates] == ["ok", "empty", "empty"]
    assert not selector.prompts and ans.rows == rows_of(concert_singer, "SELECT Name FROM singer WHERE Age > 30")
    assert event(ans, "llm_select").message == "the vote stands: one result group left: nothing to choose"


@pytest.mark.parametrize("reply,letter", [
    ("B", "B"), ("b", "B"), ("**C**", "C"), ("Answer: B", "B"), ("The answer is C.", "C"),
    ("I choose candidate C because it filters.", "C"), ("Candidate A drops the filter; the correct one is B.", "B"),
    ("candidate B", "B"), ("B. It keeps the age filter.", "B"),
    (sql_block("select COUNT(*) from singer where Age > 30"), "B"),
    ("A candidate query should filter.", None), ("Answer: Z", None), ("", None),
    ("candidate A or candidate B", None),
])
def test_selector_replies_are_read_leniently(reply, letter):
    sqls = {"A": ALL, "B": OVER_30, "C": "SELECT count(*) FROM singer WHERE Age >= 30"}
    got, how = parse_choice(reply, ["A", "B", "C"], sqls, "sqlite")
    assert got == letter, how


def test_the_selector_prompt_shows_each_groups_first_rows(concert_singer):
    db = open_database(concert_singer)
    cands = []
    for i, sql in enumerate(["SELECT Name, Age FROM singer ORDER BY Age", "SELECT Name FROM singer"]):
        res = db.execute(sql)
        cands.append(Candidate(id=f"c{i}", generator="zero-shot/mschema", sql=sql, status="ok", columns=res.columns,
                               rows=res.rows, row_count=len(res.rows), preview=res.rows[:5]))
    messages, letters = build_messages("Who are the singers?", [[c] for c in cands], schema_text="(schema)")
    text = messages[1].content
    youngest = db.execute("SELECT Name FROM singer ORDER BY Age LIMIT 1").rows[0][0]
    assert letters == {"A": "c0", "B": "c1"}
    assert "Name | Age" in text and youngest in text and "(6 rows; first 5 shown)" in text
    assert text.rstrip().endswith("Reply with one letter: A or B.")


# -- align ------------------------------------------------------------------------------------
PERCENT = "SELECT count(*) * 100 / (SELECT count(*) FROM singer) FROM singer WHERE Age > 30"


def test_integer_division_becomes_a_real_division(settings, concert_singer):
    ages = [a for (a,) in rows_of(concert_singer, "SELECT Age FROM singer")]
    exact = 100 * sum(a > 30 for a in ages) / len(ages)
    assert exact != int(exact)  # the data makes truncation visible
    gen = ByTemperature(replies={0.0: PERCENT})
    plain = pipeline(settings, gen, temperatures=[0.0]).answer("What percentage of singers are over 30?", concert_singer)
    assert plain.rows == [(int(exact),)]  # SQLite truncates integer division
    ans = pipeline(settings, gen, temperatures=[0.0], align_rules=["integer_division"]).answer(
        "What percentage of singers are over 30?", concert_singer)
    assert ans.rows[0][0] == pytest.approx(exact)
    assert "CAST(COUNT(*) * 100 AS REAL)" in ans.sql
    ev = event(ans, "align")
    assert ev.data["rules"] == ["integer_division"] and ev.data["before"] == PERCENT
    assert ans.candidates[0].result_key == result_key(ans.rows)


def test_aligned_results_are_what_the_vote_groups(settings, concert_singer):
    exact_sql = "SELECT 100.0 * count(*) / (SELECT count(*) FROM singer) FROM singer WHERE Age > 30"
    gen = ByTemperature(replies={0.0: PERCENT, 0.7: exact_sql})
    q = "What percentage of singers are over 30?"
    split = pipeline(settings, gen).answer(q, concert_singer)
    assert split.confidence.votes == 1 and not split.confidence.decisive  # 66 vs 66.67: two groups
    agreed = pipeline(settings, gen, align_rules=["integer_division"]).answer(q, concert_singer)
    assert agreed.confidence.votes == 2 and agreed.confidence.decisive
    assert len({c.result_key for c in agreed.candidates}) == 1
    rewritten = next(c for c in agreed.candidates if c.temperature == 0.0)
    assert rewritten.aligned_from == PERCENT and rewritten.sql != PERCENT  # the refined SQL is kept
    assert next(c for c in agreed.candidates if c.temperature == 0.7).aligned_from is None


def test_integer_division_per_dialect_and_only_for_integer_operands(concert_singer):
    schema = open_database(concert_singer).schema()
    assert cast_integer_division("SELECT sum(Capacity) / count(*) FROM stadium", schema) == \
        "SELECT CAST(SUM(Capacity) AS REAL) / COUNT(*) FROM stadium"
    for untouched in ("SELECT avg(Age) / count(*) FROM singer", "SELECT count(*) * 1.0 / 4 FROM singer",
                      "SELECT sum(Name) / count(*) FROM singer", "SELECT 100 / 3"):
        assert cast_integer_division(untouched, schema) is None, untouched
    pg = schema.model_copy(update={"dialect": "postgres"})
    assert "CAST(COUNT(*) * 100 AS DOUBLE PRECISION) /" in cast_integer_division(PERCENT, pg)
    assert cast_integer_division(PERCENT, schema.model_copy(update={"dialect": "mysql"})) is None


TEMPLATES = "cre_Doc_Template_Mgt"
YEAR_SQL = "SELECT count(*) FROM Templates WHERE YEAR(Date_Effective_From) >= 2000"


@pytest.mark.parametrize("rounds", [0, 2])
def test_a_mysql_date_function_is_transpiled_for_sqlite(settings, rounds):
    db = spider_db(TEMPLATES)
    failing = open_database(db).try_execute(YEAR_SQL)
    # SQLite has no YEAR(): the check refuses the call before it runs
    assert failing.error_kind == "refused" and "YEAR()" in failing.error
    expected = sum(int(d[:4]) >= 2000 for (d,) in rows_of(db, "SELECT Date_Effective_From FROM Templates"))
    gen = ByTemperature(replies={0.0: YEAR_SQL})  # the refiner's revisions repeat the same SQL
    q = "How many templates became effective in 2000 or later?"
    before = pipeline(settings, gen, temperatures=[0.0], refine_rounds=rounds).answer(q, db)
    assert before.sql is None and "YEAR()" in before.error
    ans = pipeline(settings, gen, temperatures=[0.0], refine_rounds=rounds, align_rules=["dialect_functions"]).answer(q, db)
    assert ans.rows == [(expected,)] and "STRFTIME('%Y'" in ans.sql
    ev = event(ans, "align")
    assert ev.data["rules"] == ["dialect_functions"] and ev.data["steps"][0]["note"] == "read as mysql"
    assert ans.candidates[0].status == "ok" and ans.candidates[0].error is None


def test_dialect_functions_leave_running_sql_and_unfixable_sql_alone(settings):
    db = spider_db(TEMPLATES)
    gen = ByTemperature(replies={0.0: "SELECT count(*) FROM Templates"})
    ok = pipeline(settings, gen, temperatures=[0.0], align_rules=["dialect_functions"]).answer("How many templates?", db)
    assert event(ok, "align").message == "no rule of dialect_functions applied"
    assert ok.sql == "SELECT count(*) FROM Templates" and ok.rows == rows_of(db, ok.sql)
    broken = "SELECT YEAR(No_Such_Column) FROM Templates"
    gen = ByTemperature(replies={0.0: broken})
    ans = pipeline(settings, gen, temperatures=[0.0], align_rules=["dialect_functions"]).answer("Years?", db)
    assert ans.sql is None and ans.candidates[0].sql == broken and ans.candidates[0].status == "refused"
    ev = event(ans, "align")
    assert "no rewrite ran, SQL kept" in ev.message and ev.data["steps"]
    assert all(not s["kept"] and "No_Such_Column" in (s["error"] or "") for s in ev.data["steps"])


def test_transpiling_skips_readings_that_change_an_operator():
    # MySQL reads || as OR: only readings that keep it as concatenation are offered
    rewrites = transpile_functions("SELECT Name || ' ' || YEAR(d) FROM t", "sqlite")
    assert rewrites and all(src != "mysql" for src, _ in rewrites)
    assert all("||" in sql and "STRFTIME('%Y'" in sql for _, sql in rewrites)
    assert transpile_functions("SELECT TOP 3 Name FROM singer", "sqlite") == [("tsql", "SELECT Name FROM singer LIMIT 3")]


def test_output_alignment_drops_an_unasked_ranking_column_and_orders_columns_as_asked(concert_singer):
    db = open_database(concert_singer)
    sql = "SELECT country, COUNT(*) FROM singer GROUP BY country ORDER BY COUNT(*) DESC LIMIT 1"
    out = align_sql(db, sql, state="ok", rules=["ranking_columns"], question="Which country has the most singers?")
    assert out.applied == ["ranking_columns"]
    assert out.sql == "SELECT country FROM singer GROUP BY country ORDER BY COUNT(*) DESC LIMIT 1"
    assert out.result.rows == [("France",)]
    # the question names the measure: it stays
    asked = align_sql(db, sql, state="ok", rules=["ranking_columns"],
                      question="Which country has the most singers, and what is the count?")
    assert asked.steps == [] and asked.sql == sql
    swapped = align_sql(db, "SELECT age, name FROM singer WHERE age > 40", state="ok", rules=["output_order"],
                        question="What are the names and ages of singers older than 40?")
    assert swapped.sql == "SELECT name, age FROM singer WHERE age > 40"
    assert [len(r) for r in swapped.result.rows] and swapped.result.columns[0].lower() == "name"
    # no question, or a rule switched off: nothing happens
    assert align_sql(db, sql, state="ok", rules=["ranking_columns"]).steps == []
    assert align_sql(db, sql, state="ok", rules=["integer_division"], question="Which country has the most singers?").sql == sql


def test_output_alignment_leaves_almost_all_spider_gold_sql_alone(spider_data):
    import json

    from quorumsql.agents.align import drop_ranking_columns, order_output_columns
    spider_dev = json.loads((spider_data / "dev.json").read_text())
    rewritten = [sum(bool(rule(e["query"], e["question"], "sqlite")) for e in spider_dev)
                 for rule in (drop_ranking_columns, order_output_columns)]
    assert rewritten[0] == 0 and rewritten[1] <= 5, rewritten


def test_an_unreachable_finetuned_endpoint_leaves_the_other_kinds_to_answer(tmp_path, concert_singer):
    settings = Settings.load(cache_dir=tmp_path / "cache", llm_base_url="http://127.0.0.1:1/v1", llm_max_retries=0,
                             llm_timeout=5, roles={"finetuned": RoleSettings(base_url="http://127.0.0.1:9/v1", model="ft")})
    gen = ByTemperature(replies={0.0: OVER_30, 0.7: OVER_30})
    ans = pipeline(settings, gen, None, generators=["zero-shot", "finetuned"]).answer(Q, concert_singer)
    by_kind = {c.generator.split("/")[0]: c for c in ans.candidates if c.temperature == 0.0}
    assert by_kind["finetuned"].status == "model_error" and "127.0.0.1:9" in (by_kind["finetuned"].error or "")
    assert by_kind["finetuned"].sql is None
    assert ans.sql == OVER_30 and ans.rows == rows_of(concert_singer, OVER_30)
    # the share counts every planned candidate: half the ensemble never answered
    assert ans.confidence.votes == 2 and ans.confidence.candidates == 4 and ans.confidence.share == 0.5
