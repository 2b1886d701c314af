"""Refuse anything that is not a single read-only query, before it reaches a database.

This is the first of two locks. The second is the connection itself (see each connector):
SQLite is opened ``mode=ro`` with ``query_only``, an authorizer and size limits; MySQL sessions
are ``READ ONLY`` with a statement time limit and a lexical guard for what a privileged account
could still do; PostgreSQL sessions have ``default_transaction_read_only``. A statement that
slipped past this check still cannot write where the server enforces the second lock, and the
README's "Safety" section says which statements only this check stops.

The check works on sqlglot's tokens and expression tree, plus two things sqlglot does not model:

- MySQL / MariaDB *executable comments* (``/*! ... */``, ``/*!50000 ... */``, ``/*M! ... */``,
  ``/*M!100500 ... */``) are code to the server but comments to sqlglot; they are refused on
  the ``mysql`` dialect. Only text between tokens is inspected, so ``'/*!'`` inside a string
  literal is data and passes.
- Functions that read or write files or server state (MySQL ``LOAD_FILE``, PostgreSQL
  ``pg_read_file`` / ``lo_import`` / ``dblink`` ..., SQLite ``load_extension`` / ``readfile`` /
  ``fts3_tokenizer`` ...) are refused per dialect wherever they are called.
"""

from __future__ import annotations

import re

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError
from sqlglot.tokens import Token, TokenType

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
    "BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE", "OUTFILE", "DUMPFILE",
}
_READ_STARTS = {"SELECT", "WITH", "VALUES", "("}

_MYSQL_DIALECTS = {"mysql", "mariadb"}
# literal tokens (quoted strings of every kind): their text is data, never a keyword or a name
_STRING_TOKENS = {t for t in TokenType if t.name.endswith("STRING")}
# "/*!" and "/*M!" open a comment whose body MySQL / MariaDB executes (an optional version
# number follows). Matched case-insensitively: refusing "/*m!" too costs nothing.
_EXECUTABLE_COMMENT = re.compile(r"/\*[mM]?!")


class _DeniedFunctions:
    """Function names refused for one dialect: exact names plus name prefixes (lower case)."""

    def __init__(self, exact: set[str], prefixes: tuple[str, ...] = ()) -> None:
        self.exact = exact
        self.prefixes = prefixes

    def __contains__(self, name: str) -> bool:
        return name in self.exact or name.startswith(self.prefixes)


# Functions that read or write files, load code, run SQL given as text, change settings or
# signal other sessions. Sleeping and busy functions (SLEEP, BENCHMARK, pg_sleep) are allowed:
# the statement time limit bounds them.
DENIED_FUNCTIONS: dict[str, _DeniedFunctions] = {
    "mysql": _DeniedFunctions(
        {
            "load_file", "get_lock", "release_lock", "release_all_locks", "master_pos_wait",
            "master_gtid_wait", "source_pos_wait", "wait_for_executed_gtid_set", "nextval",
            "setval", "sys_exec", "sys_eval",
        }
    ),
    "postgres": _DeniedFunctions(
        {
            "pg_stat_file", "set_config", "pg_terminate_backend", "pg_cancel_backend",
            "pg_reload_conf", "pg_rotate_logfile", "pg_switch_wal", "pg_promote",
            "pg_logical_emit_message", "pg_notify", "nextval", "setval", "loread", "lowrite",
            "pg_import_system_collations", "pg_logdir_ls",
        },
        (
            "lo_", "dblink", "pg_read_", "pg_ls_", "pg_file_", "pg_advisory_", "pg_try_advisory_",
            "query_to_xml", "cursor_to_xml", "pg_create_", "pg_drop_", "pg_replication_",
            "pg_stat_reset",
        ),
    ),
    "sqlite": _DeniedFunctions(
        {
            "load_extension", "readfile", "writefile", "fts3_tokenizer", "edit", "fsdir",
            "zipfile", "sqlar_compress", "sqlar_uncompress",
        }
    ),
}
DENIED_FUNCTIONS["mariadb"] = DENIED_FUNCTIONS["mysql"]
DENIED_FUNCTIONS["postgresql"] = DENIED_FUNCTIONS["postgres"]


def _tokenize(sql: str, dialect: str) -> list[Token]:
    return list(sqlglot.Dialect.get_or_raise(dialect).tokenize(sql))


def _gaps(text: str, tokens: list[Token]):
    """The stretches of ``text`` outside every token: whitespace and comments only."""
    pos = 0
    for tok in tokens:
        yield text[pos:tok.start]
        pos = tok.end + 1
    yield text[pos:]


def _has_executable_comment(gap: str) -> bool:
    """Whether a run of whitespace and comments holds a block comment opening ``/*!``/``/*M!``.

    Line comments (``-- ...``, ``# ...``) are skipped whole, as the server does; anything that
    is not whitespace or a comment (never expected between tokens) is searched conservatively.
    """
    i, n = 0, len(gap)
    while i < n:
        if gap[i].isspace():
            i += 1
        elif gap.startswith(("--", "#"), i):
            end = gap.find("\n", i)
            i = n if end < 0 else end + 1
        elif gap.startswith("/*", i):
            if _EXECUTABLE_COMMENT.match(gap, i):
                return True
            end = gap.find("*/", i + 2)
            i = n if end < 0 else end + 2
        else:
            return bool(_EXECUTABLE_COMMENT.search(gap, i))
    return False


def _refuse_executable_comments(text: str, tokens: list[Token]) -> None:
    if any(_has_executable_comment(gap) for gap in _gaps(text, tokens)):
        raise UnsafeSQLError(
            "MySQL executable comments (/*! ... */, /*M! ... */) are not allowed: "
            "the server runs their content"
        )


def _refuse_denied_functions(tokens: list[Token], dialect: str) -> None:
    denied = DENIED_FUNCTIONS.get(dialect.lower())
    if denied is None:
        return
    for tok, nxt in zip(tokens, tokens[1:]):
        if nxt.token_type != TokenType.L_PAREN or tok.token_type in _STRING_TOKENS:
            continue
        name = tok.text.lower()
        if name in denied:
            raise UnsafeSQLError(
                f"the function {name}() is not allowed: it reads or writes files or server state"
            )


def check_read_only(sql: str, dialect: str = "sqlite") -> str:
    """Check that ``sql`` is exactly one read-only query and return it without a trailing ``;``.

    Accepted: SELECT, set operations (UNION/INTERSECT/EXCEPT), WITH ... SELECT, VALUES; a
    trailing ``;`` and comments after it (``SELECT 1; -- done``) are cut off.
    Refused: empty input, several statements, any write/DDL/transaction/session statement,
    ``SELECT ... INTO``, row locks (``FOR UPDATE``), MySQL executable comments
    (``/*! ... */``, ``/*M! ... */``) on the ``mysql`` dialect, and the dialect's file and
    server functions (:data:`DENIED_FUNCTIONS`).

    When sqlglot cannot parse the statement, a token-level check still refuses forbidden
    keywords and several statements; an unparseable but harmless-looking query is passed on so
    that the database itself reports the syntax error (more useful feedback for the refiner).

    Args:
        sql: the statement text.
        dialect: sqlglot dialect of the target database.

    Returns:
        The statement, stripped of surrounding whitespace, trailing semicolons and whatever
        comments follow the last semicolon.

    Raises:
        UnsafeSQLError: the statement is empty, several statements, or not read-only.
    """
    if sql is not None and not isinstance(sql, str):
        raise UnsafeSQLError(f"expected SQL text, got {type(sql).__name__}")
    text = (sql or "").strip()
    try:
        tokens = _tokenize(text, dialect)
    except TokenError as exc:
        raise UnsafeSQLError(f"SQL could not be tokenized: {exc}") from None
    if dialect.lower() in _MYSQL_DIALECTS:
        _refuse_executable_comments(text, tokens)
    # drop leading and trailing semicolons, with any comments after the last one
    while tokens and tokens[-1].token_type == TokenType.SEMICOLON:
        tokens.pop()
        text = text[: tokens[-1].end + 1] if tokens else ""
    while tokens and tokens[0].token_type == TokenType.SEMICOLON:
        tokens.pop(0)
        text = text[tokens[0].start:] if tokens else ""
    if not tokens:
        raise UnsafeSQLError("empty SQL statement")
    statements = 1 + sum(
        1 for prev, tok in zip(tokens, tokens[1:])
        if prev.token_type == TokenType.SEMICOLON and tok.token_type != TokenType.SEMICOLON
    )
    if statements != 1:
        raise UnsafeSQLError(
            f"only a single read query is allowed; got {statements} statements"
        )
    _refuse_denied_functions(tokens, dialect)
    try:
        tree = sqlglot.parse_one(text, read=dialect)
    except (ParseError, TokenError):
        words = {t.text.upper() for t in tokens if t.token_type not in _STRING_TOKENS}
        first = tokens[0].text.upper()
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
