"""Settings from quorumsql.toml and QUORUMSQL_* env vars; presets."""

import pytest

from quorumsql.config import PRESETS, Settings, get_preset
from quorumsql.errors import ConfigError


def test_env_overrides_toml(tmp_path, monkeypatch):
    cfg = tmp_path / "quorumsql.toml"
    cfg.write_text('llm_base_url = "http://127.0.0.1:8000/v1"\nllm_model = "from-file"\nquery_timeout = 5\n'
                   '[roles.selector]\nmodel = "judge-model"\n')
    monkeypatch.setenv("QUORUMSQL_LLM_MODEL", "from-env")
    s = Settings.load(cfg)
    assert s.llm_base_url == "http://127.0.0.1:8000/v1" and s.llm_model == "from-env"
    assert s.query_timeout == 5 and s.roles["selector"].model == "judge-model"
    assert not s.uses_embedded_model


def test_config_file_from_env_and_section(tmp_path, monkeypatch):
    cfg = tmp_path / "other.toml"
    cfg.write_text('[quorumsql]\npreset = "fast"\n')
    monkeypatch.setenv("QUORUMSQL_CONFIG", str(cfg))
    monkeypatch.delenv("QUORUMSQL_PRESET", raising=False)
    assert Settings.load().preset == "fast"


@pytest.mark.parametrize("text,match", [("llm_model = [", "not valid TOML"), ("query_timeout = 'soon'", "invalid settings")])
def test_bad_config_files(tmp_path, text, match):
    cfg = tmp_path / "q.toml"
    cfg.write_text(text)
    with pytest.raises(ConfigError, match=match):
        Settings.load(cfg)


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        Settings.load(tmp_path / "nope.toml")


def test_presets():
    assert len(get_preset("fast").temperatures) == 1
    assert len(get_preset("balanced").temperatures) == 3
    assert get_preset(PRESETS["accurate"]) is PRESETS["accurate"]
    with pytest.raises(ConfigError, match="unknown preset"):
        get_preset("turbo")
