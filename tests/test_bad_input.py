"""Bad input gets one clear error line (exit status 2 on the command line) and loses nothing (issue 16)."""

from __future__ import annotations

import pytest

from quorumsql.cli import main
from quorumsql.config import Settings
from quorumsql.errors import ConfigError, InputError


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err
    assert lines and lines[-1].startswith("error: "), err
    return lines[-1]


# ----------------------------------------------------------------------------- settings
@pytest.mark.parametrize("value", ["0", "-1", "-0.5"])
def test_a_query_timeout_of_zero_or_below_is_refused_on_one_line(value, monkeypatch, capsys):
    monkeypatch.setenv("QUORUMSQL_QUERY_TIMEOUT", value)
    with pytest.raises(ConfigError, match=r"query_timeout: Input should be greater than 0") as info:
        Settings.load()
    assert "\n" not in str(info.value)
    assert main(["ask", "nowhere.sqlite", "How many?"]) == 2
    assert "query_timeout" in _one_error_line(capsys)


def test_a_query_timeout_in_the_toml_file_is_checked_too(tmp_path):
    cfg = tmp_path / "q.toml"
    cfg.write_text("query_timeout = 0\n")
    with pytest.raises(ConfigError, match=r"invalid settings: query_timeout: Input should be greater than 0 \(got 0\)"):
        Settings.load(cfg)


def test_allowed_functions_defaults_to_none_and_reads_the_file_and_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("QUORUMSQL_ALLOWED_FUNCTIONS", raising=False)
    assert Settings.load().allowed_functions == []
    cfg = tmp_path / "q.toml"
    cfg.write_text('allowed_functions = ["my_score", "Tax_Rate"]\n')
    assert Settings.load(cfg).allowed_functions == ["my_score", "Tax_Rate"]
    monkeypatch.setenv("QUORUMSQL_ALLOWED_FUNCTIONS", '["from_env"]')
    assert Settings.load(cfg).allowed_functions == ["from_env"]


# ----------------------------------------------------------------------------- the API
@pytest.mark.parametrize("descriptions", [5, 2.5, ["singer.csv"], object()])
def test_descriptions_of_the_wrong_type_name_the_accepted_forms(descriptions, concert_singer, tmp_path):
    from langchain_core.language_models.fake_chat_models import FakeListChatModel

    from quorumsql.api import answer

    llm = FakeListChatModel(responses=["```sql\nSELECT count(*) FROM singer\n```"])
    settings = Settings.load(cache_dir=tmp_path / "cache")
    with pytest.raises(InputError, match=r"as descriptions; expected a BIRD database_description folder") as info:
        answer("How many?", concert_singer, descriptions=descriptions, llm=llm, settings=settings, preset="fast")
    assert "{(table, column): text}" in str(info.value) and "\n" not in str(info.value)
    assert llm.i == 0  # refused before any model call


def test_a_mapping_with_bad_keys_names_the_accepted_forms_too(concert_singer, tmp_path):
    from quorumsql.api import Pipeline

    pipe = Pipeline(Settings.load(cache_dir=tmp_path / "cache"), preset="fast")
    with pytest.raises(InputError, match=r"must map \(table, column\) pairs to text; expected a BIRD"):
        pipe.set_descriptions(concert_singer, {"singer": "people who sing"})
    pipe.set_descriptions(concert_singer, {("singer", "Age"): "age in years"})  # the right form still works
    assert pipe.descriptions(concert_singer) == {("singer", "age"): "age in years"}


# ----------------------------------------------------------------------------- bench: dataset layouts
def _bench(data, kind: str, out) -> list[str]:
    return ["bench", "--dataset", kind, "--data", str(data), "--out", str(out), "--limit", "1", "--no-progress"]


def test_bench_bird_on_a_spider_folder_says_it_is_not_bird_layout(spider_data, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(_bench(spider_data, "bird", out)) == 2
    line = _one_error_line(capsys)
    assert f"{spider_data} is not in BIRD layout (no dev_databases/ folder)" in line
    assert "dev_databases/<db_id>/<db_id>.sqlite" in line and "use --dataset spider" in line
    assert not out.exists()  # nothing started


def test_bench_spider_on_a_bird_folder_says_it_is_not_spider_layout(bird_data, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(_bench(bird_data.parent, "spider", out)) == 2
    line = _one_error_line(capsys)
    assert f"{bird_data.parent} is not in Spider layout (no question file dev.json)" in line
    assert "database/<db_id>/<db_id>.sqlite" in line and "use --dataset bird" in line
    assert not out.exists()


def test_spider_questions_in_a_bird_folder_and_bird_questions_in_a_spider_folder(spider_data, bird_data, tmp_path,
                                                                                 capsys):
    import shutil

    bird_like = tmp_path / "bird_like"  # BIRD's folders, Spider's question file (its 'sql' is a parse tree)
    (bird_like / "dev_databases").mkdir(parents=True)
    shutil.copy(spider_data / "dev.json", bird_like / "dev.json")
    assert main(_bench(bird_like, "bird", tmp_path / "o1")) == 2
    line = _one_error_line(capsys)
    assert "not in BIRD layout (item 0 of dev.json: 'sql' is a dict, not text)" in line

    spider_like = tmp_path / "spider_like"  # Spider's folders, BIRD's question file
    (spider_like / "database").mkdir(parents=True)
    shutil.copy(bird_data.parent / "mini_dev_sqlite.json", spider_like / "dev.json")
    assert main(_bench(spider_like, "spider", tmp_path / "o2")) == 2
    assert "not in Spider layout (the questions of dev.json carry BIRD's 'SQL'" in _one_error_line(capsys)

    full_bird = tmp_path / "full_bird"  # BIRD's full dev layout: dev.json and dev_databases/
    (full_bird / "dev_databases").mkdir(parents=True)
    shutil.copy(bird_data.parent / "mini_dev_sqlite.json", full_bird / "dev.json")
    assert main(_bench(full_bird, "spider", tmp_path / "o3")) == 2
    line = _one_error_line(capsys)
    assert "not in Spider layout (no database/ folder)" in line and "use --dataset bird" in line


def test_the_loaders_still_read_their_own_layouts(spider_data, bird_data):
    from quorumsql.benchmarks.datasets import load_dataset

    assert len(load_dataset("spider", spider_data).examples) == 485
    assert len(load_dataset("bird", bird_data.parent).examples) == 500
    assert len(load_dataset("bird", bird_data.parent / "mini_dev_sqlite.json").examples) == 500


# ----------------------------------------------------------------------------- report --out
@pytest.fixture(scope="module")
def one_run(tmp_path_factory):
    from langchain_core.language_models.fake_chat_models import FakeListChatModel

    from quorumsql.benchmarks import BaselineSystem, BenchmarkRunner, Evaluator, load_spider
    from tests.conftest import SPIDER, require_shared

    require_shared(SPIDER / "dev.json", "Spider dev.json")
    examples = load_spider(SPIDER).select(db_ids=["concert_singer"], limit=2)
    run = tmp_path_factory.mktemp("runs") / "a"
    system = BaselineSystem("zs-mschema", FakeListChatModel(responses=["```sql\nSELECT count(*) FROM singer\n```"]))
    BenchmarkRunner(system, Evaluator("spider"), run, progress=False, log=lambda m: None).run(examples)
    return run


def test_report_out_on_an_existing_file_is_refused_and_the_file_kept(one_run, tmp_path, capsys):
    target = tmp_path / "notes.txt"
    target.write_text("my notes\n")
    assert main(["report", str(one_run), "--out", str(target)]) == 2
    line = _one_error_line(capsys)
    assert line.startswith(f"error: {target} is a file, not a folder") and "give --out a folder" in line
    assert target.read_text() == "my notes\n"
    assert main(["report", str(one_run), "--out", str(target / "sub")]) == 2  # a file in the way of a folder
    assert f"cannot write the report in {target / 'sub'}" in _one_error_line(capsys)
    assert target.read_text() == "my notes\n"
    assert main(["report", str(one_run), "--out", str(tmp_path / "rep")]) == 0  # a folder works
    assert (tmp_path / "rep" / "report.html").is_file()


# ----------------------------------------------------------------------------- synth on databases that fail
@pytest.fixture
def scripted_synth(monkeypatch, tmp_path):
    """``quorumsql synth`` with the synthesis tests' scripted good model; returns the model's call log."""
    from tests.test_synth_pipeline import Scripted, World

    llm = Scripted(script=World())
    monkeypatch.setattr("quorumsql.llm.chat.get_chat_model", lambda settings=None, role="generator", **kw: llm)
    monkeypatch.setenv("QUORUMSQL_CACHE_DIR", str(tmp_path / "cache"))
    return llm.calls


def test_synth_whose_every_seed_fails_on_the_database_is_an_error_that_keeps_the_records(scripted_synth, tmp_path,
                                                                                          capsys):
    import json

    notdb = tmp_path / "notes.sqlite"
    notdb.write_text("not a database\n")
    out = tmp_path / "synth"
    argv = ["synth", "--db", str(notdb), "--out", str(out), "--limit", "1", "--no-progress"]
    assert main(argv) == 2
    line = _one_error_line(capsys)
    assert line.startswith("error: every seed failed on its database (1 of 1; first: cannot open ")
    assert "not a SQLite 3 database" in line and str(out / "records.jsonl") in line
    assert scripted_synth == []  # no model was asked
    [rec] = [json.loads(x) for x in (out / "records.jsonl").read_text().splitlines()]
    assert rec["dropped_by"] == "database" and "not a SQLite 3 database" in rec["drop_reason"]
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "failed" and run["message"] == line.removeprefix("error: ")
    assert json.loads((out / "summary.json").read_text())["dropped_by"] == {"database": 1}
    assert main([*argv, "--resume"]) == 2  # the same on --resume, and nothing is lost
    assert "every seed failed on its database" in _one_error_line(capsys)
    assert len((out / "records.jsonl").read_text().splitlines()) == 1


def test_synth_with_some_seeds_on_a_missing_database_still_succeeds(scripted_synth, spider_data, tmp_path, capsys):
    seeds = tmp_path / "log.sql"
    seeds.write_text("SELECT Name FROM singer WHERE Age > 30\tconcert_singer\nSELECT 1\tno_such_db\n")
    out = tmp_path / "synth"
    assert main(["synth", "--seed-sql", str(seeds), "--data", str(spider_data), "--out", str(out),
                 "--exec-runs", "1", "--no-progress"]) == 0
    assert "all 2 seeds done" in capsys.readouterr().out
    assert scripted_synth  # the good seed reached the model


# ----------------------------------------------------------------------------- numeric flags
@pytest.mark.parametrize("flags, message", [
    (["--concurrency", "0"], "--concurrency must be positive, got 0"),
    (["--concurrency", "-2"], "--concurrency must be positive, got -2"),
    (["--timeout", "-1"], "--timeout must be a number of seconds above 0, got -1"),
    (["--timeout", "0"], "--timeout must be a number of seconds above 0, got 0"),
    (["--timeout", "nan"], "--timeout must be a number of seconds above 0, got nan"),
    (["--limit", "0"], "--limit must be positive, got 0"),
    (["--sample", "-5"], "--sample must be positive, got -5"),
    (["--max-model-failures", "0"], "--max-model-failures must be positive, got 0"),
    (["--max-tokens", "0"], "--max-tokens must be positive, got 0"),
    (["--ves", "-1"], "--ves must be zero or more, got -1"),
])
def test_bench_refuses_numbers_out_of_range_before_anything_starts(flags, message, spider_data, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["bench", "--dataset", "spider", "--data", str(spider_data), "--out", str(out), "--no-progress", *flags]
    assert main(argv) == 2
    assert _one_error_line(capsys) == f"error: {message}"
    assert not out.exists()


def test_bench_refuses_a_query_timeout_of_zero_from_the_settings(spider_data, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("QUORUMSQL_QUERY_TIMEOUT", "0")
    out = tmp_path / "run"
    assert main(["bench", "--dataset", "spider", "--data", str(spider_data), "--out", str(out), "--limit", "1"]) == 2
    assert "invalid settings: query_timeout: Input should be greater than 0" in _one_error_line(capsys)
    assert not out.exists()


@pytest.mark.parametrize("flags, message", [
    (["--timeout", "-1"], "--timeout must be a number of seconds above 0, got -1"),
    (["--timeout", "0"], "--timeout must be a number of seconds above 0, got 0"),
    (["--timeout", "inf"], "--timeout must be a number of seconds above 0, got inf"),
    (["--max-model-failures", "0"], "--max-model-failures must be positive, got 0"),
    (["--limit", "0"], "--limit must be positive, got 0"),
])
def test_synth_refuses_numbers_out_of_range_before_anything_starts(flags, message, concert_singer, tmp_path, capsys):
    out = tmp_path / "synth"
    assert main(["synth", "--db", str(concert_singer), "--out", str(out), "--no-progress", *flags]) == 2
    assert _one_error_line(capsys) == f"error: {message}"
    assert not out.exists()


def test_reselect_refuses_a_timeout_of_zero(spider_data, tmp_path):
    import subprocess
    import sys

    from tests.conftest import REPO

    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "reselect.py"), str(tmp_path / "run"),
                           "--data", str(spider_data), "--timeout", "0"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.strip() == "error: --timeout must be a number of seconds above 0, got 0"


# ----------------------------------------------------------------------------- allowed_functions
def test_the_allowed_functions_setting_reaches_the_opened_database(concert_singer, tmp_path):
    from quorumsql.api import Pipeline

    default = Pipeline(Settings.load(cache_dir=tmp_path / "cache"), preset="fast").database(concert_singer)
    assert default.allowed_functions == frozenset()
    refused = default.try_execute("SELECT my_score(Age) FROM singer")
    assert "my_score() is not allowed" in (refused.error or "")

    settings = Settings.load(cache_dir=tmp_path / "cache", allowed_functions=["My_Score"])
    database = Pipeline(settings, preset="fast").database(concert_singer)
    assert database.allowed_functions == frozenset({"my_score"})
    passed = database.try_execute("SELECT my_score(Age) FROM singer")  # past the check; SQLite has no such function
    assert "not allowed" not in (passed.error or "") and "no such function" in (passed.error or "")


@pytest.mark.parametrize("field,value", [("llm_timeout", 0), ("max_rows", 0), ("max_result_bytes", -1)])
def test_other_limits_of_zero_or_below_are_refused(field, value):
    with pytest.raises(ConfigError, match=rf"invalid settings: {field}: Input should be greater than"):
        Settings.load(**{field: value})
