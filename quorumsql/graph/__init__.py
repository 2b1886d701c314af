"""LangGraph wiring: agents become nodes over typed states."""

from quorumsql.graph.inference import build_inference_graph
from quorumsql.graph.state import InferenceInput, InferenceOutput, InferenceState

__all__ = ["InferenceInput", "InferenceOutput", "InferenceState", "build_inference_graph"]
