"""The runtime context of the graphs: settings, preset, chat models, databases, example memories.

LangGraph passes it to every node and routing function as ``runtime.context``
(``StateGraph(..., context_schema=InferenceContext)``; ``graph.invoke(input, context=...)``).
:class:`quorumsql.Pipeline` builds one per pipeline. A run without a context (LangGraph Studio,
``langgraph dev``) gets :func:`default_context`, made once per process from the settings
(``QUORUMSQL_*`` environment variables and ``quorumsql.toml``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from langgraph.runtime import Runtime

from quorumsql.config import Preset, Settings, get_preset
from quorumsql.llm import ChatModels
from quorumsql.resources import Resources

if TYPE_CHECKING:  # the metadata package pulls in chromadb: load it on use
    from quorumsql.metadata.examples import ExampleMemories


@dataclass
class InferenceContext:
    """What the inference graph's nodes need besides the state.

    Attributes:
        settings: process settings.
        preset: how much work to do per question (candidate plan, refinement).
        models: chat model per role, created on first use.
        resources: open databases, their descriptions and metadata stores.
        memories: the example memories of the databases (default: under
            ``<cache_dir>/index/examples``; a benchmark run brings its own).
    """

    settings: Settings = field(default_factory=Settings.load)
    preset: Preset | None = None
    models: ChatModels | None = None
    resources: Resources | None = None
    memories: "ExampleMemories | None" = None

    def __post_init__(self) -> None:
        self.preset = get_preset(self.preset or self.settings.preset)
        if self.models is None:
            self.models = ChatModels(self.settings)
        if self.resources is None:
            self.resources = Resources(self.settings)
        if self.memories is None:
            from quorumsql.metadata.examples import ExampleMemories, default_root

            self.memories = ExampleMemories(default_root(self.settings))


@functools.cache
def default_context() -> InferenceContext:
    """The context of runs that bring none (Studio): built from the settings, once per process.

    Raises:
        ConfigError: invalid settings or preset.
    """
    return InferenceContext()


def context_of(runtime: Runtime[InferenceContext]) -> InferenceContext:
    """The run's context, or :func:`default_context` when the caller passed none."""
    ctx = runtime.context
    if isinstance(ctx, InferenceContext):
        return ctx
    return default_context()
