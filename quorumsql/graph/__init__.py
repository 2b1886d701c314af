"""LangGraph wiring: agents become nodes over typed states and a runtime context.

The compiled inference graph is :data:`quorumsql.graph.inference.inference`; its runtime
context is :class:`~quorumsql.graph.context.InferenceContext`.
"""

from quorumsql.graph.context import InferenceContext, default_context
from quorumsql.graph.inference import STAGES, Stage, build_inference_graph
from quorumsql.graph.state import InferenceInput, InferenceOutput, InferenceState

__all__ = [
    "InferenceContext", "InferenceInput", "InferenceOutput", "InferenceState", "STAGES", "Stage",
    "build_inference_graph", "default_context",
]
