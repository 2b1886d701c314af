"""Graphs exposed to LangGraph Studio / ``langgraph dev`` through ``langgraph.json``.

The inference graph takes ``{"question": ..., "db": "<sqlite path or URL>", "evidence": ...}``.
Model and preset come from settings (``QUORUMSQL_*`` env vars or ``quorumsql.toml``); the model
is created on the first run, not at import.
"""

from quorumsql.api import Pipeline

inference = Pipeline().graph
