"""Agents: plain functions and small classes with typed inputs and outputs.

They know nothing about LangGraph; :mod:`quorumsql.graph` adapts them to nodes, and the
synthesis subgraph reuses them.
"""
