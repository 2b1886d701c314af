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
