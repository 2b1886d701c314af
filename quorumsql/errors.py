"""Errors QuorumSQL raises on purpose.

Every error a user can cause (a bad path, an unreachable server, an unsafe statement, a model
endpoint that is down) is one of these, with a message that says what went wrong and what to do.
Callers catch :class:`QuorumSQLError` to handle all of them; the CLI prints the message without
a traceback.
"""

from __future__ import annotations


class QuorumSQLError(Exception):
    """Base class of every error QuorumSQL raises deliberately."""


class InputError(QuorumSQLError):
    """A request is malformed: empty question, unknown preset, wrong argument type."""


class ConfigError(QuorumSQLError):
    """Settings are missing, contradictory or malformed (env vars, ``quorumsql.toml``, presets)."""


class DatabaseError(QuorumSQLError):
    """A database cannot be opened, reached or introspected."""


class UnsafeSQLError(DatabaseError):
    """A statement was refused before execution: not a single read-only query."""


class QueryError(DatabaseError):
    """A read query was sent to the database and failed there (syntax, unknown column, ...)."""


class QueryTimeout(QueryError):
    """A read query exceeded its wall-clock budget and was interrupted."""


class ModelError(QuorumSQLError):
    """A chat model endpoint is unreachable, refused the request or returned unusable output."""


class EmbeddedModelError(ModelError):
    """The embedded llama.cpp server could not be prepared or started."""
