"""The inference graph's shape: runtime context, pluggable stages, module-level graph."""

from __future__ import annotations

import ast
import json
import subprocess
import sys

import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel

from quorumsql import Pipeline
from quorumsql.config import PRESETS, Preset, Settings
from quorumsql.errors import InputError
from quorumsql.graph import InferenceContext, Stage, build_inference_graph
from quorumsql.graph.context import context_of
from quorumsql.records import TraceEvent
from tests.conftest import REPO

Q = "How many singers do we have?"
SQL = "```sql\nSELECT count(*) FROM singer\n```"


class FlagPreset(Preset):
    """A preset with an extra switch, as a new stage would add one."""

    noop_stage: bool = False


def noop(state, runtime):
    """An extra stage that only says it ran (and sees the runtime context)."""
    ctx = context_of(runtime)
    return {"trace": [TraceEvent(node="noop", message=f"ran with preset {ctx.preset.name}")]}


@pytest.mark.parametrize("slot,after,before", [
    ("linking", "context", "generate"),
    ("post_refine", "refine", "select"),
    ("post_select", "select", None),
])
def test_an_extra_stage_is_a_node_plus_a_preset_switch(concert_singer, slot, after, before):
    graph = build_inference_graph([Stage("noop", noop, slot, enabled=lambda p, state: getattr(p, "noop_stage", False))])
    for flag in (True, False):
        preset = FlagPreset(name="flagged", temperatures=[0.0], refine_rounds=0, noop_stage=flag)
        settings = Settings.load()
        ctx = InferenceContext(settings=settings, preset=preset,
                               models=Pipeline(settings, llm=FakeListChatModel(responses=[SQL])).models)
        out = graph.invoke({"question": Q, "db": str(concert_singer)}, context=ctx)
        nodes = [e.node for e in out["trace"]]
        assert out["rows"] == [(6,)]
        if not flag:
            assert "noop" not in nodes
            continue
        assert nodes.count("noop") == 1
        i = nodes.index("noop")
        assert nodes[i - 1] == after
        if before:
            assert nodes[i + 1] == before
        assert out["trace"][i].message == "ran with preset flagged"


def test_graph_package_never_imports_the_api():
    for path in (REPO / "quorumsql" / "graph").glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            assert not any(n == "quorumsql.api" or n.startswith("quorumsql.api.") for n in names), path


def test_module_level_graph_imports_without_a_pipeline_or_a_model():
    code = (
        "import quorumsql.api as api\n"
        "made = []\n"
        "orig = api.Pipeline.__init__\n"
        "api.Pipeline.__init__ = lambda self, *a, **k: made.append(1) or orig(self, *a, **k)\n"
        "import quorumsql.graph.inference as g\n"
        "import quorumsql.llm.embedded as e\n"
        "print(type(g.inference).__name__, len(made), e._server)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr
    kind, made, server = out.stdout.split()
    assert kind == "CompiledStateGraph" and made == "0" and server == "None"


def test_langgraph_json_names_the_module_level_graph():
    spec = json.loads((REPO / "langgraph.json").read_text())["graphs"]["inference"]
    module, attr = spec.split(":")
    assert module == "./quorumsql/graph/inference.py" and attr == "inference"


def test_presets_cross_formats_and_temperatures():
    plan = Preset(name="two-formats", schema_formats=["mschema", "ddl"], temperatures=[0.0, 0.7, 0.7]).candidate_plan()
    pairs = [(s.schema_format, s.temperature) for s in plan]
    assert ("mschema", 0.0) in pairs and ("ddl", 0.0) in pairs  # each format has a greedy candidate
    assert len(plan) == len(set((s.index for s in plan))) == 6
    assert [s.label for s in plan][:1] == ["zero-shot/mschema"]
    accurate = PRESETS["accurate"].candidate_plan()
    assert len(accurate) == 8 and [(s.generator, s.temperature) for s in accurate if s.temperature == 0.0] == [
        ("zero-shot", 0.0), ("finetuned", 0.0)]  # each kind has a greedy candidate
    assert [s.temperature for s in PRESETS["balanced"].candidate_plan()] == [0.0, 0.7, 0.7]


def test_candidates_are_labelled_by_their_real_origin(concert_singer):
    pipe = Pipeline(llm=FakeListChatModel(responses=[SQL]), preset="balanced")
    ans = pipe.answer(Q, concert_singer)
    assert [c.generator for c in ans.candidates] == ["zero-shot/mschema"] * 3
    prompt = ans.candidates[0].conversation[1].content
    assert "【Schema】" in prompt and "Example question" not in prompt  # zero-shot: no examples


def test_roles_come_from_nested_environment_variables(monkeypatch, tmp_path):
    cfg = tmp_path / "q.toml"
    cfg.write_text('[roles.judge]\nmodel = "file-judge"\nbase_url = "http://127.0.0.1:1/v1"\n')
    monkeypatch.setenv("QUORUMSQL_ROLES__JUDGE__MODEL", "env-judge")
    monkeypatch.setenv("QUORUMSQL_ROLES__GENERATOR__BASE_URL", "http://127.0.0.1:2/v1")
    s = Settings.load(cfg)
    assert s.roles["judge"].model == "env-judge"
    assert s.roles["judge"].base_url == "http://127.0.0.1:1/v1"  # the file still fills the rest
    assert s.roles["generator"].base_url == "http://127.0.0.1:2/v1"


@pytest.mark.parametrize("db", [None, 123, 4.5, ["a.sqlite"], ""])
def test_a_database_that_is_not_a_path_url_or_database_is_an_input_error(db):
    pipe = Pipeline(llm=FakeListChatModel(responses=[SQL]), preset="fast")
    with pytest.raises(InputError, match="SQLite or DuckDB file path") as err:
        pipe.answer(Q, db)
    assert "TypeError" not in str(err.value)


@pytest.mark.parametrize("question,shown", [(None, "NoneType None"), (42, "int 42"), (b"bytes", "bytes b'bytes'")])
def test_a_question_that_is_not_a_string_says_what_was_passed(concert_singer, question, shown):
    pipe = Pipeline(llm=FakeListChatModel(responses=[SQL]), preset="fast")
    with pytest.raises(InputError, match="must be a string") as err:
        pipe.answer(question, concert_singer)
    assert shown in str(err.value) and "empty" not in str(err.value)


def test_truncated_rows_are_reported(concert_singer):
    from quorumsql.cli import answer_json

    settings = Settings.load(max_rows=2)
    llm = FakeListChatModel(responses=["```sql\nSELECT Name FROM singer\n```"])
    ans = Pipeline(settings, llm=llm, preset="fast").answer("List the singers' names.", concert_singer)
    assert len(ans.rows) == 2 and ans.truncated
    assert answer_json(ans)["truncated"] is True
    full = Pipeline(llm=llm, preset="fast").answer("List the singers' names.", concert_singer)
    assert len(full.rows) == 6 and not full.truncated


def test_a_long_lived_pipeline_notices_a_changed_database(concert_singer, tmp_path):
    import shutil
    import sqlite3

    db = tmp_path / "concert_singer.sqlite"
    shutil.copy(concert_singer, db)
    llm = FakeListChatModel(responses=["```sql\nSELECT count(*) FROM singer\n```"])
    pipe = Pipeline(llm=llm, preset="fast")
    first = pipe.answer(Q, db)
    assert "encore" not in first.candidates[0].conversation[1].content
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE encore (encore_id INTEGER PRIMARY KEY, song TEXT)")
    second = pipe.answer(Q, db)
    assert "# Table: encore" in second.candidates[0].conversation[1].content
    assert "changed since it was last read" in second.trace[0].message


def test_a_second_generator_kind_is_a_node_and_a_preset_field(concert_singer):
    from quorumsql.agents.finetuned_generator import build_messages, sql_of_completion

    preset = Preset(name="two-kinds", generators=["zero-shot", "finetuned"], temperatures=[0.0], refine_rounds=0)
    # the fine-tuned format ends with an opened sql block: the reply is its continuation
    llm = FakeListChatModel(responses=[SQL, "SELECT count(*) FROM singer\n```"])
    ans = Pipeline(llm=llm, preset=preset).answer(Q, concert_singer)
    assert [(c.id, c.generator) for c in ans.candidates] == [("c0", "zero-shot/mschema"), ("c1", "finetuned/mschema")]
    assert {e.node for e in ans.trace} >= {"generate", "generate_finetuned"}
    assert all(c.sql == "SELECT count(*) FROM singer" for c in ans.candidates) and ans.confidence.votes == 2
    prompt = next(c for c in ans.candidates if c.id == "c1").conversation[0].content
    assert prompt.startswith("You are a SQLite expert.") and prompt.endswith("```sql")
    assert prompt.count("【用户问题】\n" + Q) == 2 and "【数据库schema】\n【DB_ID】 concert_singer" in prompt
    assert sql_of_completion("SELECT 1") == "SELECT 1" and sql_of_completion("```sql\nSELECT 2\n```") == "SELECT 2"
    assert "PostgreSQL expert" in build_messages("q", "s", dialect="postgres")[0].content


def test_the_finetuned_role_falls_back_to_the_generator_endpoint(monkeypatch):
    from quorumsql.config import RoleSettings
    from quorumsql.llm import chat

    made = []
    monkeypatch.setattr(chat, "get_chat_model", lambda settings, role="generator", **kw: made.append(role) or object())
    models = chat.ChatModels(Settings.load(roles={"generator": RoleSettings(base_url="http://127.0.0.1:1/v1")}))
    assert models.get("finetuned") is models.get("generator") and made == ["generator"]
    own = chat.ChatModels(Settings.load(roles={"finetuned": RoleSettings(base_url="http://127.0.0.1:2/v1")}))
    own.get("finetuned")
    assert made[-1] == "finetuned"
