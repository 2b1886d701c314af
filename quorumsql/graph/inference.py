"""The inference graph.

::

    context -> [keywords -> retrieve -> link -> select_columns] -> generate (Send, one per
            planned candidate) -> dedupe -> refine (Send, one per distinct SQL)
            -> [link_check -> align] -> select -> [llm_select] -> answer

Core nodes live in :mod:`quorumsql.graph.nodes`; the runtime context
(:class:`~quorumsql.graph.context.InferenceContext`) carries settings, preset, chat models and
databases. Optional stages (schema linking, rule-based alignment, the LLM selector) plug in as
:class:`Stage` objects at one of three slots; a stage runs when its ``enabled(preset, state)`` says
so and is skipped by the routing otherwise, so adding one is a new node plus its condition.
``inference`` is the compiled graph that ``answer()``, the benchmarks and LangGraph Studio
(``langgraph.json``) all run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from langgraph.types import Send

from quorumsql.agents.candidates import needs_refinement
from quorumsql.config import Preset
from quorumsql.graph import align, icl, linking, nodes, selection
from quorumsql.graph.context import InferenceContext, context_of
from quorumsql.graph.state import GenerateTask, InferenceInput, InferenceOutput, InferenceState, RefineTask

Slot = Literal["linking", "post_refine", "post_select"]


@dataclass(frozen=True)
class Stage:
    """An optional node of the inference graph.

    Attributes:
        name: node name (also the trace's node name).
        node: ``(state, runtime) -> update``, a module-level function like those in
            :mod:`quorumsql.graph.nodes`.
        slot: where it runs: ``linking`` (after ``context``, before generation),
            ``post_refine`` (after every candidate is refined, before ``select``) or
            ``post_select`` (after the vote, before ``answer``).
        enabled: ``(preset, state) -> bool``; the routing skips the stage when False. The
            state is the graph's state when the routing runs (e.g. ``state["linking"]``, which
            the ``context`` node sets from the preset and the schema's size).
    """

    name: str
    node: Callable
    slot: Slot
    enabled: Callable[[Preset, InferenceState], bool]


def _linking_on(preset: Preset, state: InferenceState) -> bool:
    return bool(state.get("linking"))


def _selector_on(preset: Preset, state: InferenceState) -> bool:
    return bool(state.get("linking")) and preset.column_selector


def _align_on(preset: Preset, state: InferenceState) -> bool:
    return bool(preset.align_rules)


def _llm_selector_on(preset: Preset, state: InferenceState) -> bool:
    return preset.llm_selector != "never"


# Optional stages of the shipped graph, in running order within each slot.
STAGES: tuple[Stage, ...] = (
    Stage("keywords", linking.keywords, "linking", _linking_on),
    Stage("retrieve", linking.retrieve, "linking", _linking_on),
    Stage("link", linking.link, "linking", _linking_on),
    Stage("select_columns", linking.column_selection, "linking", _selector_on),
    Stage("link_check", linking.link_check, "post_refine", _linking_on),
    Stage("align", align.align, "post_refine", _align_on),
    Stage("llm_select", selection.llm_select, "post_select", _llm_selector_on),
)

# Generator kind -> the node that writes that kind of candidate.
GENERATOR_NODES: dict[str, Callable] = {"zero-shot": nodes.generate, "finetuned": nodes.generate_finetuned,
                                     "icl": icl.generate_icl}


def fan_out_generation(state: InferenceState, runtime: Runtime[InferenceContext]) -> list[Send]:
    """One ``generate`` branch per planned candidate (generator x schema format x temperature)."""
    plan = context_of(runtime).preset.candidate_plan()
    return [
        Send(
            _generator_node_name(spec.generator),
            GenerateTask(
                question=state["question"],
                evidence=state.get("evidence"),
                dialect=state["dialect"],
                schema_text=state["schema_texts"][spec.schema_format],
                spec=spec,
                db=state["db"],
                db_id=state.get("db_id", ""),
                linked=state.get("linked"),
            ),
        )
        for spec in plan
    ]


def fan_out_refinement(state: InferenceState) -> list[Send] | str:
    """One ``refine`` branch per candidate with SQL of its own; straight on when there is none."""
    sends = [
        Send("refine", RefineTask(db=state["db"], candidate=c, seed=100 * i))
        for i, c in enumerate(state["candidates"])
        if needs_refinement(c)
    ]
    return sends or "after_refine"


def _generator_node_name(kind: str) -> str:
    return "generate" if kind == "zero-shot" else f"generate_{kind.replace('-', '_')}"


def _through(slot: Slot, stages: Sequence[Stage], then: Callable | str, name: str) -> list[tuple[str, Callable]]:
    """Routing functions for a chain of optional stages: ``[(from_node, route), ...]``.

    The route after the slot's anchor (and after each stage) goes to the next enabled stage of
    the slot, else to ``then`` (a node name or another routing function).
    """
    chain = [s for s in stages if s.slot == slot]

    def make(rest: list[Stage], label: str) -> Callable:
        def route(state: InferenceState, runtime: Runtime[InferenceContext]):
            preset = context_of(runtime).preset
            for stage in rest:
                if stage.enabled(preset, state):
                    return stage.name
            return then(state, runtime) if callable(then) else then

        route.__name__ = route.__qualname__ = label
        return route

    routes = [(None, make(chain, name))]
    routes += [(s.name, make(chain[i + 1:], f"after_{s.name}")) for i, s in enumerate(chain)]
    return routes


def build_inference_graph(stages: Sequence[Stage] = STAGES):
    """Compile the inference graph with the given optional stages.

    Args:
        stages: optional nodes and the preset condition that switches each on (default: the
            shipped :data:`STAGES`).

    Returns:
        A compiled LangGraph graph: input :class:`InferenceInput`, output
        :class:`InferenceOutput`, context :class:`InferenceContext` (optional: runs without one
        use :func:`~quorumsql.graph.context.default_context`).
    """
    g = StateGraph(InferenceState, context_schema=InferenceContext, input_schema=InferenceInput,
                   output_schema=InferenceOutput)
    g.add_node("context", nodes.context)
    for kind, node in GENERATOR_NODES.items():
        g.add_node(_generator_node_name(kind), node)
    g.add_node("dedupe", nodes.dedupe)
    g.add_node("refine", nodes.refine_candidate)
    g.add_node("after_refine", _join)
    g.add_node("select", nodes.select)
    g.add_node("answer", nodes.answer)
    for stage in stages:
        g.add_node(stage.name, stage.node)

    generators = [_generator_node_name(k) for k in GENERATOR_NODES]
    linking = [s.name for s in stages if s.slot == "linking"]
    post_refine = [s.name for s in stages if s.slot == "post_refine"]
    post_select = [s.name for s in stages if s.slot == "post_select"]

    g.add_edge(START, "context")
    for src, route in _through("linking", stages, fan_out_generation, "route_to_generation"):
        g.add_conditional_edges(src or "context", route, [*linking, *generators])
    for name in generators:
        g.add_edge(name, "dedupe")
    g.add_conditional_edges("dedupe", fan_out_refinement, ["refine", "after_refine"])
    g.add_edge("refine", "after_refine")
    for src, route in _through("post_refine", stages, "select", "route_to_selection"):
        g.add_conditional_edges(src or "after_refine", route, [*post_refine, "select"])
    for src, route in _through("post_select", stages, "answer", "route_to_answer"):
        g.add_conditional_edges(src or "select", route, [*post_select, "answer"])
    g.add_edge("answer", END)
    return g.compile(name="quorumsql-inference")


def build_linking_graph(stages: Sequence[Stage] = STAGES):
    """Compile a graph that runs only ``context`` and the linking stages the preset switches on.

    For measuring schema linking on its own (``quorumsql bench --task linking``, which runs it
    with ``linking`` set on the preset): the linking stages run in order, then the graph ends
    with ``linked`` and ``schema_texts`` in its output.

    Returns:
        A compiled graph over :class:`InferenceState` with context :class:`InferenceContext`.
    """
    chain = [s for s in stages if s.slot == "linking"]
    g = StateGraph(InferenceState, context_schema=InferenceContext, input_schema=InferenceInput)
    g.add_node("context", nodes.context)
    for stage in chain:
        g.add_node(stage.name, stage.node)
    g.add_edge(START, "context")
    for src, route in _through("linking", chain, END, "route_to_end"):
        g.add_conditional_edges(src or "context", route, [*[s.name for s in chain], END])
    return g.compile(name="quorumsql-linking")


def _join(state: InferenceState) -> dict:
    """Barrier after the refine branches: every candidate is refined once this runs."""
    return {}


inference = build_inference_graph()
