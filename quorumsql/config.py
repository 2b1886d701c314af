"""Settings and presets.

Settings come, in increasing priority, from defaults, a ``quorumsql.toml`` file (the path in
``QUORUMSQL_CONFIG``, else ``./quorumsql.toml`` when present), ``QUORUMSQL_*`` environment
variables and explicit arguments. A preset fixes how much work the inference graph does per
question. Candidates are the cross product generator kind x schema format x temperature:

======== ========== ================= ================ ====== =====================================
preset   candidates schema formats    temperatures     rounds refined states
======== ========== ================= ================ ====== =====================================
fast     1          mschema           0.0              2      error, refused, timeout, no_sql
balanced 3          mschema           0.0, 0.7, 0.7    3      error, refused, timeout, no_sql
accurate 6          mschema, ddl      0.0, 0.7, 0.7    3      also empty and none (all-NULL)
======== ========== ================= ================ ====== =====================================

All candidates come from the zero-shot generator today. The states are MCI-SQL's execution
states (paper 004, section 3.3) plus our own ``refused`` (statement not a single read query),
``timeout`` and ``no_sql`` (model returned no SQL at all).
"""

from __future__ import annotations

import itertools
import os
import tomllib
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from quorumsql.errors import ConfigError

ExecutionState = Literal["ok", "none", "empty", "error", "refused", "no_sql", "timeout"]
SchemaFormat = Literal["mschema", "metadata_partial", "metadata_complete", "ddl"]
GeneratorKind = Literal["zero-shot", "finetuned", "icl"]


class CandidateSpec(BaseModel):
    """One planned candidate: which generator writes it, over which schema rendering, how hot.

    Attributes:
        index: position in the plan (``c{index}`` is the candidate id; the sampling seed).
        generator: generator kind (``zero-shot``).
        schema_format: schema rendering the generator sees.
        temperature: sampling temperature (0 = greedy).
    """

    index: int
    generator: GeneratorKind
    schema_format: SchemaFormat
    temperature: float

    @property
    def label(self) -> str:
        """Origin label recorded on the candidate, e.g. ``zero-shot/mschema``."""
        return f"{self.generator}/{self.schema_format}"


class Preset(BaseModel):
    """How much work the inference graph does per question.

    Attributes:
        name: preset name.
        generators: generator kinds: ``zero-shot`` (instructions, schema, evidence, question)
            and ``finetuned`` (the XiYanSQL-QwenCoder prompt layout, sent to the ``finetuned``
            model role; in ``accurate``), ``icl`` (few-shot examples chosen by question-skeleton
            similarity, XiYan-SQL section 5.2: the asked database's own pairs from its example
            memory when ``memory`` is on and it holds any, else examples of other databases from
            ``icl_pool``; with neither, the zero-shot prompt; in no shipped preset yet).
            Measured in the README.
        schema_formats: schema renderings the generators see: ``mschema`` (introspected
            M-Schema), ``metadata_partial`` / ``metadata_complete`` (MCI-SQL granularities from
            the per-database metadata store, examples matched to the question; built on first
            use), or ``ddl``.
        temperatures: sampling temperatures (0 = greedy). The candidate plan is the cross
            product ``generators x schema_formats x temperatures`` (see :meth:`candidate_plan`),
            so every format gets a greedy candidate when 0.0 is listed.
        refine_rounds: maximum revisions per candidate (0 disables the refiner).
        refine_states: execution states that trigger a revision.
        max_tokens: completion budget per model call (tokens).
        linking: run the schema-linking stages (keywords, retrieval, SQL-driven linking) so
            the generators see the linked schema instead of the whole one: ``True``, ``False``,
            or ``"auto"`` (the shipped presets): only when the whole M-Schema is over
            ``prompt_budget`` tokens. On Spider (schemas of a few hundred tokens) linking cost
            EX with the embedded 1.5B model, so ``auto`` keeps whole schemas that fit (README).
        column_selector: after linking, let the model drop linked columns it does not need
            (XiYan-SQL's column selector).
        keep_draft: keep the linking stage's draft SQL as one more candidate (its model call
            is then not wasted); it is labelled ``draft/mschema``.
        prompt_budget: the most tokens (estimated) a generator prompt may carry, instructions,
            schema, evidence and question together; a larger schema is linked by retrieval
            first and the linked schema is trimmed to fit.
        column_top_k: columns retrieved from the column index per keyword.
        column_min_score: least cosine similarity of a retrieved column that links it; weaker
            hits only choose which tables a schema over the budget is drafted over.
        value_min_score: least score (0..1) of a value-index hit that links its column.
        value_top_k: columns linked by value retrieval at most (best-scoring first); a value
            common to many tables of a wide schema must not link them all.
        link_similar: also link the similar columns (embedding cosine >= 0.8) of every linked
            column; duplicate columns (same values, verified) are always linked.
        align_rules: rule-based alignment after refinement (:mod:`quorumsql.agents.align`,
            MCI-SQL section 3.4), each switchable: ``integer_division`` (cast integer / integer
            ratios to a floating division on SQLite and PostgreSQL) and ``dialect_functions``
            (a failing query's functions transpiled into the database's dialect with sqlglot).
            Output alignment: ``ranking_columns`` (drop a select item that only carries an
            ``ORDER BY ... LIMIT`` ranking the question does not name) and ``output_order`` (select
            items in the order the question names them).
            A rewrite is kept only when it executes. Empty (default): no align stage.
        llm_selector: when the ``selector`` model role settles the vote
            (:mod:`quorumsql.agents.llm_selector`, XiYan-SQL section 6): ``never`` (default),
            ``on_tie`` (the vote's top result groups are tied or its margin is under
            ``selector_margin``) or ``always`` (whenever two or more result groups remain).
        selector_margin: with ``on_tie``, also ask when the winning group's share minus the
            runner-up's share (0..1) is under this; 0 asks on ties only.
        icl_pool: JSONL example pool of the ``icl`` generator (:mod:`quorumsql.agents.icl_pool`:
            question, SQL under ``query``/``SQL``/``sql``, ``db_id``, optional evidence). Unset,
            missing, empty or without a similar enough example: the ``icl`` candidate is
            written with the zero-shot prompt, labelled ``zero-shot/...``, and its trace says why.
        icl_examples: examples shown per ``icl`` candidate at most (1-5; XiYan-SQL caps at 5).
        icl_min_similarity: least cosine similarity (-1..1) of an example's question skeleton
            to the question's; a guard against unrelated examples. On the Spider dev pool
            (``benchmarks/bench_icl_pool.py``) the best example's similarity runs 0.2-0.7 and
            0.3 leaves 23 of the 485 questions without examples.
        icl_database_root: folder of the pool's databases in Spider's layout
            (``<root>/<db_id>/<db_id>.sqlite``); each example is then shown with the tables
            and columns its SQL uses, else with the names of its tables only.
        memory: ``icl`` candidates use the asked database's example memory
            (:mod:`quorumsql.metadata.examples`: pairs taught, corrected, or learned from a
            log) before the cross-database pool, which stays the fallback when the memory has
            no pair.
        memory_examples: pairs of the asked database shown per ``icl`` candidate at most (1-5),
            the most similar skeletons first, without a schema of their own.
    """

    name: str
    generators: list[GeneratorKind] = Field(default_factory=lambda: ["zero-shot"], min_length=1)
    schema_formats: list[SchemaFormat] = Field(default_factory=lambda: ["mschema"], min_length=1)
    temperatures: list[float] = Field(min_length=1)
    refine_rounds: int = Field(3, ge=0, le=10)
    refine_states: list[ExecutionState] = ["error", "refused", "no_sql", "timeout"]
    max_tokens: int = Field(384, ge=16)
    linking: bool | Literal["auto"] = False
    column_selector: bool = False
    keep_draft: bool = True
    prompt_budget: int = Field(3000, ge=200)
    column_top_k: int = Field(3, ge=0, le=50)
    column_min_score: float = Field(0.9, ge=-1.0, le=1.0)
    value_min_score: float = Field(0.8, ge=0.0, le=1.0)
    value_top_k: int = Field(10, ge=0, le=200)
    link_similar: bool = False
    align_rules: list[Literal["integer_division", "dialect_functions", "ranking_columns", "output_order"]] = Field(default_factory=list)
    llm_selector: Literal["never", "on_tie", "always"] = "never"
    selector_margin: float = Field(0.0, ge=0.0, le=1.0)
    icl_pool: str | None = None
    icl_examples: int = Field(3, ge=1, le=5)
    icl_min_similarity: float = Field(0.3, ge=-1.0, le=1.0)
    icl_database_root: str | None = None
    memory: bool = True
    memory_examples: int = Field(3, ge=1, le=5)

    def candidate_plan(self) -> list[CandidateSpec]:
        """Every candidate to generate, in order: generator, then format, then temperature.

        Returns:
            ``len(generators) * len(schema_formats) * len(temperatures)`` specs; the first is
            the greedy candidate of the first generator and format when temperature 0.0 is
            listed first (ties in selection go to the earliest candidate).
        """
        formats = list(dict.fromkeys(self.schema_formats))
        kinds = list(dict.fromkeys(self.generators))
        return [
            CandidateSpec(index=i, generator=g, schema_format=f, temperature=t)
            for i, (g, f, t) in enumerate(itertools.product(kinds, formats, self.temperatures))
        ]


PRESETS: dict[str, Preset] = {
    "fast": Preset(name="fast", temperatures=[0.0], refine_rounds=2, linking="auto"),
    "balanced": Preset(name="balanced", temperatures=[0.0, 0.7, 0.7], refine_rounds=3, linking="auto"),
    # about eight candidates of two generator kinds, the align stage and the LLM selector over
    # every contested vote (issue 10); refining empty and all-NULL results too cost 2-6 times
    # the time per affected question in `balanced` for no EX gained, so it stays off (README)
    "accurate": Preset(
        name="accurate",
        generators=["zero-shot", "finetuned"],
        temperatures=[0.0, 0.7, 0.7, 0.7],
        refine_rounds=3,
        linking="auto",
        column_selector=True,
        align_rules=["integer_division", "dialect_functions", "ranking_columns", "output_order"],
        llm_selector="always",
    ),
}


def get_preset(preset: str | Preset) -> Preset:
    """Return a :class:`Preset` by name (``fast``, ``balanced``, ``accurate``) or as given.

    Raises:
        ConfigError: unknown preset name, or not a name or a :class:`Preset`.
    """
    if isinstance(preset, Preset):
        return preset
    if not isinstance(preset, str):
        raise ConfigError(f"preset must be a name ({', '.join(PRESETS)}) or a Preset, got {type(preset).__name__}")
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


def validation_summary(exc: ValidationError) -> str:
    """A pydantic error on one line: ``field: message (got value)`` per problem, ``; ``-joined.

    The offending value is shown when it is a short scalar and not a secret (``api_key``).
    """
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err.get("loc", ())) or "value"
        part = f"{loc}: {err.get('msg', 'invalid')}"
        value = err.get("input")
        if isinstance(value, (str, int, float)) and "api_key" not in loc and len(repr(value)) <= 80:
            part += f" (got {value!r})"
        parts.append(part)
    return "; ".join(parts)


class RoleSettings(BaseModel):
    """Endpoint of one model role (``[roles.judge]`` in ``quorumsql.toml``); empty = global."""

    base_url: str = ""
    model: str = ""
    api_key: str = ""


# The TOML file (and its table header) of the :meth:`Settings.load` call in progress; read by
# ``Settings.settings_customise_sources``. A context variable keeps concurrent loads apart.
_TOML_SOURCE: ContextVar[tuple[Path, tuple[str, ...] | None] | None] = ContextVar("_TOML_SOURCE", default=None)


class Settings(BaseSettings):
    """Process-wide settings: arguments, then ``QUORUMSQL_*`` env vars, then ``quorumsql.toml``.

    Sources are pydantic-settings' own: init arguments win over environment variables, which
    win over the TOML file (:class:`pydantic_settings.TomlConfigSettingsSource`), which wins over
    the defaults. Nested values come from the environment with ``__`` as the separator, so a
    role's endpoint can be set without a file: ``QUORUMSQL_ROLES__JUDGE__BASE_URL``,
    ``QUORUMSQL_ROLES__JUDGE__MODEL``.

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
        embedded_parallel: llama.cpp slots (concurrent requests decoded together). 1 on a small
            CPU: on 2 cores three slots made a balanced-like load 44-103% slower, because each
            slot re-reads the shared schema prefix (``benchmarks/bench_server_slots.py``, README).
            Above 1 the slots share one KV cache (``kv_unified``) of ``embedded_ctx`` tokens per slot.
        cache_dir: where the joined GGUF, server state and per-database indexes live.
        query_timeout: wall-clock seconds per SQL query (more than 0).
        max_rows: rows fetched per query at most.
        max_result_bytes: bytes of values fetched per query at most (the rows beyond are cut
            and the result is marked truncated).
        max_value_bytes: largest single value a SQLite query may build (``SQLITE_LIMIT_LENGTH``);
            a larger one fails the query at once.
        max_query_memory: bytes SQLite may allocate for one query (``hard_heap_limit`` in the
            worker process that runs it); a query that needs more fails with "out of memory".
        allowed_functions: extra SQL function names (matched case-insensitively) that a
            candidate may call beyond the dialect's read-only built-ins, e.g. the user's own
            read-only routines. By default a call to any function outside the built-in
            allowlist is refused.
        preset: default preset name.
        roles: per-role endpoints: ``generator`` (keywords, drafts, candidates and their
            refinement, the column selector), ``selector`` (the LLM selector, when a preset
            switches it on) and ``judge`` (the benchmark's LLM judge). A role left unset uses
            the global endpoint.
    """

    model_config = SettingsConfigDict(
        env_prefix="QUORUMSQL_", env_nested_delimiter="__", extra="ignore"
    )

    llm_base_url: str = ""
    llm_model: str = ""
    llm_api_key: str = ""
    llm_timeout: float = Field(default=300.0, gt=0)
    llm_max_retries: int = 1
    embedded_model: Literal["1.5b", "0.5b"] = "1.5b"
    embedded_ctx: int = 8192
    embedded_threads: int = 0
    embedded_parallel: int = Field(default=1, ge=1, le=16)
    cache_dir: Path = Field(default_factory=default_cache_dir)
    query_timeout: float = Field(default=30.0, gt=0)
    max_rows: int = Field(default=10_000, ge=1)
    max_result_bytes: int = Field(default=64 * 2**20, ge=1)
    max_value_bytes: int = Field(default=32 * 2**20, ge=1)
    max_query_memory: int = Field(default=256 * 2**20, ge=16 * 2**20)
    allowed_functions: list[str] = Field(default_factory=list)
    preset: str = "balanced"
    roles: dict[str, RoleSettings] = Field(default_factory=dict)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Arguments, then environment, then the TOML file chosen by :meth:`load` (if any)."""
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        toml = _TOML_SOURCE.get()
        if toml is not None:
            path, header = toml
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path, toml_table_header=header))
        return tuple(sources)

    @classmethod
    def load(cls, path: str | os.PathLike | None = None, **overrides: Any) -> "Settings":
        """Read settings from ``path`` (or ``$QUORUMSQL_CONFIG``, or ``./quorumsql.toml``), then env.

        The TOML file holds the same keys as the attributes, at top level or under
        ``[quorumsql]``; ``overrides`` win over everything.

        Raises:
            ConfigError: missing or unreadable TOML file, or invalid values.
        """
        candidate = path or os.environ.get("QUORUMSQL_CONFIG")
        if candidate is None and Path("quorumsql.toml").is_file():
            candidate = "quorumsql.toml"
        toml: tuple[Path, tuple[str, ...] | None] | None = None
        if candidate is not None:
            p = Path(candidate)
            try:
                data = tomllib.loads(p.read_text(encoding="utf-8"))
            except (FileNotFoundError, IsADirectoryError):
                raise ConfigError(f"config file not found: {p}") from None
            except tomllib.TOMLDecodeError as exc:
                raise ConfigError(f"config file {p} is not valid TOML: {exc}") from None
            except (OSError, UnicodeDecodeError) as exc:
                raise ConfigError(f"config file {p} cannot be read: {exc}") from None
            header = ("quorumsql",) if isinstance(data.get("quorumsql"), dict) else None
            toml = (p, header)
        token = _TOML_SOURCE.set(toml)
        try:
            return cls(**overrides)
        except ValidationError as exc:
            raise ConfigError(f"invalid settings: {validation_summary(exc)}") from None
        finally:
            _TOML_SOURCE.reset(token)

    @property
    def uses_embedded_model(self) -> bool:
        """True when no endpoint is configured and the embedded llama.cpp server is used."""
        return not self.llm_base_url
