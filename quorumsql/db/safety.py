"""Refuse anything that is not a single read-only query, before it reaches a database.

This is the first of two locks: connectors also open databases read-only (SQLite ``mode=ro``,
MySQL ``START TRANSACTION READ ONLY``, PostgreSQL read-only transactions), so a statement that
slipped past this check still cannot write.
"""

from __future__ import annotations

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError
from sqlglot.tokens import TokenType

from quorumsql.errors import UnsafeSQLError

# Expression types that write, change structure or lock rows.
_FORBIDDEN_NODES: tuple[type[exp.Expression], ...] = tuple(
    getattr(exp, name)
    for name in (
        "Insert", "Update", "Delete", "Merge", "Create", "Drop", "Alter", "TruncateTable",
        "Command", "Into", "Lock", "Set", "Pragma", "Use", "Grant", "Revoke", "Transaction",
        "Commit", "Rollback", "Copy", "LoadData", "Attach", "Detach", "Analyze",
    )
    if hasattr(exp, name)
)

# Keywords that never belong in a read query; used when sqlglot cannot parse the statement.
_FORBIDDEN_WORDS = {
    "INSERT", "UPDATE", "DELETE", "MERGE", "CREATE", "DROP", "ALTER", "TRUNCATE", "REPLACE",
    "ATTACH", "DETACH", "PRAGMA", "GRANT", "REVOKE", "VACUUM", "REINDEX", "INTO", "CALL",
    "EXEC", "EXECUTE", "LOAD", "COPY", "LOCK", "UNLOCK", "SET", "USE", "HANDLER", "RENAME",
    "BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE",
}
_READ_STARTS = {"SELECT", "WITH", "VALUES", "("}


def _split_statements(sql: str, dialect: str) -> tuple[list[str], list]:
    """Split on top-level semicolons with sqlglot's tokenizer (strings and comments respected)."""
    tokens = sqlglot.Dialect.get_or_raise(dialect).tokenize(sql)
    parts: list[list] = [[]]
    for tok in tokens:
        if tok.token_type == TokenType.SEMICOLON:
            parts.append([])
        else:
            parts[-1].append(tok)
    return [" ".join(t.text for t in p) for p in parts if p], tokens


def check_read_only(sql: str, dialect: str = "sqlite") -> str:
    """Check that ``sql`` is exactly one read-only query and return it without a trailing ``;``.

    Accepted: SELECT, set operations (UNION/INTERSECT/EXCEPT), WITH ... SELECT, VALUES.
    Refused: empty input, several statements, any write/DDL/transaction/session statement,
    ``SELECT ... INTO``, row locks (``FOR UPDATE``).

    When sqlglot cannot parse the statement, a token-level check still refuses forbidden
    keywords and several statements; an unparseable but harmless-looking query is passed on so
    that the database itself reports the syntax error (more useful feedback for the refiner).

    Args:
        sql: the statement text.
        dialect: sqlglot dialect of the target database.

    Returns:
        The statement, stripped of surrounding whitespace and trailing semicolons.

    Raises:
        UnsafeSQLError: the statement is empty, several statements, or not read-only.
    """
    text = (sql or "").strip()
    while text.endswith(";"):
        text = text[:-1].rstrip()
    if not text:
        raise UnsafeSQLError("empty SQL statement")
    try:
        statements, tokens = _split_statements(text, dialect)
    except TokenError as exc:
        raise UnsafeSQLError(f"SQL could not be tokenized: {exc}") from None
    if len(statements) != 1:
        raise UnsafeSQLError(
            f"only a single read query is allowed; got {len(statements)} statements"
        )
    try:
        tree = sqlglot.parse_one(text, read=dialect)
    except (ParseError, TokenError):
        words = {t.text.upper() for t in tokens if t.token_type != TokenType.STRING}
        first = tokens[0].text.upper() if tokens else ""
        bad = sorted(words & _FORBIDDEN_WORDS)
        if first not in _READ_STARTS or bad:
            raise UnsafeSQLError(
                "only read queries (SELECT / WITH ... SELECT) are allowed"
                + (f"; found {', '.join(bad)}" if bad else "")
            ) from None
        return text
    if not isinstance(tree, (exp.Query, exp.Values)):
        raise UnsafeSQLError(
            f"only read queries (SELECT / WITH ... SELECT) are allowed; got {tree.key.upper()}"
        )
    for node in tree.walk():
        if isinstance(node, _FORBIDDEN_NODES):
            raise UnsafeSQLError(
                f"only read queries are allowed; the query contains {node.key.upper()}"
            )
    return text
