"""Settings and presets.

Settings come, in increasing priority, from defaults, a ``quorumsql.toml`` file (the path in
``QUORUMSQL_CONFIG``, else ``./quorumsql.toml`` when present), and ``QUORUMSQL_*`` environment
variables. A preset fixes how much work the inference graph does per question:

======== ============ ============== ================= ====================================
preset   candidates   temperatures   refine rounds     refined states
======== ============ ============== ================= ====================================
fast     1            0.0            2                 error, refused, no_sql
balanced 3            0.0, 0.7, 0.7  3                 error, refused, no_sql
accurate 5            0.0, 0.7 x 4   3                 error, refused, no_sql, empty, none
======== ============ ============== ================= ====================================

The states are MCI-SQL's execution states (paper 004, section 3.3) plus our own ``refused``
(statement not a single read query) and ``no_sql`` (model returned no SQL at all).
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from quorumsql.errors import ConfigError

ExecutionState = Literal["ok", "none", "empty", "error", "refused", "no_sql", "timeout"]
SchemaFormat = Literal["mschema", "metadata_partial", "metadata_complete", "ddl"]


class Preset(BaseModel):
    """How much work the inference graph does per question.

    Attributes:
        name: preset name.
        temperatures: one generator candidate per entry (sampling temperature, 0 = greedy).
        schema_formats: schema renderings the generators see, crossed with ``temperatures``
            round-robin: ``mschema`` (introspected M-Schema), ``metadata_partial`` /
            ``metadata_complete`` (MCI-SQL granularities from the per-database metadata store,
            examples matched to the question; built on first use), or ``ddl``.
        refine_rounds: maximum revisions per candidate (0 disables the refiner).
        refine_states: execution states that trigger a revision.
        max_tokens: completion budget per model call (tokens).
        result_rows_in_feedback: rows of an execution result shown to the refiner.
    """

    name: str
    temperatures: list[float] = Field(min_length=1)
    schema_formats: list[SchemaFormat] = ["mschema"]
    refine_rounds: int = Field(3, ge=0, le=10)
    refine_states: list[ExecutionState] = ["error", "refused", "no_sql", "timeout"]
    max_tokens: int = Field(384, ge=16)
    result_rows_in_feedback: int = Field(5, ge=1)


PRESETS: dict[str, Preset] = {
    "fast": Preset(name="fast", temperatures=[0.0], refine_rounds=2),
    "balanced": Preset(name="balanced", temperatures=[0.0, 0.7, 0.7], refine_rounds=3),
    "accurate": Preset(
        name="accurate",
        temperatures=[0.0, 0.7, 0.7, 0.7, 0.7],
        schema_formats=["mschema", "ddl"],
        refine_rounds=3,
        refine_states=["error", "refused", "no_sql", "timeout", "empty", "none"],
    ),
}


def get_preset(preset: str | Preset) -> Preset:
    """Return a :class:`Preset` by name (``fast``, ``balanced``, ``accurate``) or as given.

    Raises:
        ConfigError: unknown preset name.
    """
    if isinstance(preset, Preset):
        return preset
    try:
        return PRESETS[preset]
    except KeyError:
        raise ConfigError(
            f"unknown preset {preset!r}; choose one of: {', '.join(PRESETS)}"
        ) from None


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/quorumsql`` or ``~/.cache/quorumsql``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "quorumsql"


class RoleSettings(BaseModel):
    """Endpoint of one model role (``[roles.selector]`` in ``quorumsql.toml``); empty = global."""

    base_url: str = ""
    model: str = ""
    api_key: str = ""


class Settings(BaseSettings):
    """Process-wide settings (env vars ``QUORUMSQL_*`` override ``quorumsql.toml``).

    Attributes:
        llm_base_url: OpenAI-compatible endpoint, e.g. ``http://127.0.0.1:8000/v1``. Empty means
            the embedded local model.
        llm_model: model name sent to the endpoint.
        llm_api_key: API key (``QUORUMSQL_LLM_API_KEY``); local servers accept any value.
        llm_timeout: seconds before a model call is abandoned.
        llm_max_retries: retries of a failed model call (connection errors, 5xx).
        embedded_model: ``1.5b`` (default, Qwen2.5-Coder-1.5B-Instruct Q4_K_M) or ``0.5b``.
        embedded_ctx: context window of the embedded server (tokens).
        embedded_threads: CPU threads of the embedded server (0 = all cores).
        cache_dir: where the joined GGUF, server state and per-database indexes live.
        query_timeout: wall-clock seconds per SQL query.
        max_rows: rows fetched per query at most.
        preset: default preset name.
        roles: per-role endpoints (``generator``, ``selector``, ``judge``, ...), TOML only.
    """

    model_config = SettingsConfigDict(env_prefix="QUORUMSQL_", extra="ignore")

    llm_base_url: str = ""
    llm_model: str = ""
    llm_api_key: str = ""
    llm_timeout: float = 300.0
    llm_max_retries: int = 1
    embedded_model: Literal["1.5b", "0.5b"] = "1.5b"
    embedded_ctx: int = 8192
    embedded_threads: int = 0
    cache_dir: Path = Field(default_factory=default_cache_dir)
    query_timeout: float = 30.0
    max_rows: int = 10_000
    preset: str = "balanced"
    roles: dict[str, RoleSettings] = Field(default_factory=dict)

    @classmethod
    def load(cls, path: str | os.PathLike | None = None, **overrides: Any) -> "Settings":
        """Read settings from ``path`` (or ``$QUORUMSQL_CONFIG``, or ``./quorumsql.toml``), then env.

        The TOML file holds the same keys as the attributes, at top level or under ``[quorumsql]``.

        Raises:
            ConfigError: unreadable TOML or invalid values.
        """
        file_values: dict[str, Any] = {}
        candidate = path or os.environ.get("QUORUMSQL_CONFIG")
        if candidate is None and Path("quorumsql.toml").is_file():
            candidate = "quorumsql.toml"
        if candidate is not None:
            p = Path(candidate)
            try:
                data = tomllib.loads(p.read_text(encoding="utf-8"))
            except FileNotFoundError:
                raise ConfigError(f"config file not found: {p}") from None
            except tomllib.TOMLDecodeError as exc:
                raise ConfigError(f"config file {p} is not valid TOML: {exc}") from None
            file_values = data.get("quorumsql", data)
        env_prefixed = {
            k[len("QUORUMSQL_"):].lower()
            for k in os.environ
            if k.startswith("QUORUMSQL_")
        }
        # env vars win over the file: drop file keys the environment sets
        values = {k: v for k, v in file_values.items() if k not in env_prefixed}
        values.update(overrides)
        try:
            return cls(**values)
        except ValidationError as exc:
            raise ConfigError(f"invalid settings: {exc}") from None

    @property
    def uses_embedded_model(self) -> bool:
        """True when no endpoint is configured and the embedded llama.cpp server is used."""
        return not self.llm_base_url
