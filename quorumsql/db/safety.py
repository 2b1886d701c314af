"""Refuse anything that is not a single read-only query, before it reaches a database.

This is the first of two locks. The second is the connection itself (see each connector):
SQLite is opened ``mode=ro`` with ``query_only``, an authorizer and size limits; MySQL sessions
are ``READ ONLY`` with a statement time limit and a lexical guard for what a privileged account
could still do; PostgreSQL sessions have ``default_transaction_read_only``. A statement that
slipped past this check still cannot write where the server enforces the second lock, and the
README's "Safety" section says which statements only this check stops.

The check works on sqlglot's tokens and expression tree, plus what sqlglot does not model:

- MySQL / MariaDB *executable comments* (``/*! ... */``, ``/*!50000 ... */``, ``/*M! ... */``,
  ``/*M!100500 ... */``) are code to the server but comments to sqlglot; they are refused on
  the ``mysql`` dialect. Only text between tokens is inspected, so ``'/*!'`` inside a string
  literal is data and passes.
- Function calls: only the dialect's read-only built-ins and the user's ``allowed_functions``
  may be called (:mod:`quorumsql.db.functions`); a routine of the database, an extension's
  function or a file / lock / signal built-in is refused with its name, however it is spelled
  (quoted, schema-qualified, upper case).
- Spellings whose reading differs between sqlglot and the server are refused rather than
  guessed: non-ASCII spaces between tokens (a name character to the servers), MySQL ``--``
  without a plain space after it, PostgreSQL ``U&"..."`` names, NUL characters.
- DuckDB reads a *file* for a table name that looks like one (``FROM 'x.csv'``,
  ``FROM "/etc/passwd.json"``, ``FROM sales.csv``): such names are refused on the ``duckdb``
  dialect (:func:`quorumsql.db.functions.file_scan_refusal` on the tokens, and the same rule on
  the parsed tables), and so is a statement that starts with ``FROM`` (DuckDB's FROM-first
  form), which the connection's guard refuses too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError
from sqlglot.tokens import Token, TokenType

from quorumsql.db.functions import Token as FunctionToken
from quorumsql.db.functions import (
    DUCKDB_UNICODE_SPACES,
    FILE_SUFFIXES,
    decode_unicode_name,
    file_scan_refusal,
    refused_call,
)
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


# sqlglot token types read as words: names and keywords; multi-word keywords ("GROUP BY")
# are split into their words.
_WORDLIKE = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*(?:\s+[A-Za-z_][A-Za-z0-9_$]*)*")


def server_tokens(tokens: list[Token]) -> list[FunctionToken]:
    """sqlglot's tokens in the neutral form :func:`quorumsql.db.functions.function_calls` reads."""
    out: list[FunctionToken] = []
    for tok in tokens:
        if tok.token_type == TokenType.IDENTIFIER:
            out.append(("quoted", tok.text))
        elif tok.token_type in _STRING_TOKENS:
            out.append(("string", tok.text))
        elif tok.token_type == TokenType.NUMBER:
            out.append(("number", tok.text))
        elif tok.token_type == TokenType.VAR or _WORDLIKE.fullmatch(tok.text):
            out.extend(("word", part) for part in tok.text.split())
        else:
            out.append(("symbol", tok.text))
    return out


def _refuse_calls(tokens: list[Token], dialect: str, allowed: Iterable[str]) -> None:
    reason = refused_call(server_tokens(tokens), dialect, allowed)
    if reason:
        raise UnsafeSQLError(reason)


def _refuse_duckdb_spaces(tokens: list[Token]) -> None:
    """DuckDB reads U+00A0, U+200B, U+FEFF ... as spaces outside quotes; sqlglot reads some of
    them as name characters: refused in anything but a string or a quoted name."""
    for tok in tokens:
        if tok.token_type in _STRING_TOKENS or tok.token_type == TokenType.IDENTIFIER:
            continue
        odd = next((c for c in tok.text if c in DUCKDB_UNICODE_SPACES), None)
        if odd is not None:
            raise UnsafeSQLError(
                f"{_char_name(odd)} outside a string or quoted name is ambiguous on DuckDB "
                "(a space there, part of a name to this check): not allowed"
            )


def _refuse_file_scans(tokens: list[Token], tree: exp.Expression | None) -> None:
    """DuckDB: refuse names in table positions that DuckDB would read as files (see the module
    notes), on the tokens and, when the statement parsed, on every table of the tree."""
    if tokens and tokens[0].token_type == TokenType.FROM:
        raise UnsafeSQLError("a DuckDB query must start with SELECT, WITH or VALUES (write SELECT ... FROM ...)")
    reason = file_scan_refusal(server_tokens(tokens))
    if reason:
        raise UnsafeSQLError(reason)
    for table in tree.find_all(exp.Table) if tree is not None else ():
        parts = [p for p in (table.args.get("catalog"), table.args.get("db"), table.this) if isinstance(p, exp.Identifier)]
        shown = ".".join(p.name for p in parts)
        if any(p.quoted and any(c in p.name for c in "./\\*?[]{}~:") for p in parts) or (
            len(parts) > 1 and not parts[-1].quoted and parts[-1].name.lower() in FILE_SUFFIXES
        ):
            raise UnsafeSQLError(
                f"the table name {shown} looks like a file or a pattern: DuckDB would read the file; "
                "only the database's own tables can be queried"
            )


def _refuse_unicode_identifiers(text: str, tokens: list[Token]) -> None:
    """PostgreSQL ``U&"..."`` names spell a name in escapes (``U&"pg\\005fread_file"``): refused,
    with the name they spell in the reason."""
    for a, b, c in zip(tokens, tokens[1:], tokens[2:]):
        if (
            a.text.upper() == "U" and b.token_type == TokenType.AMP and c.token_type == TokenType.IDENTIFIER
            and b.start == a.end + 1 and c.start == b.end + 1
        ):
            raise UnsafeSQLError(
                f'unicode-escaped names (U&"...") are not allowed: this one spells '
                f"{decode_unicode_name(c.text)}; write the name plainly"
            )


def _refuse_ambiguous_gaps(text: str, tokens: list[Token], dialect: str) -> None:
    """Refuse text between tokens that the server may read differently from sqlglot.

    sqlglot reads every ``str.isspace()`` character as whitespace; the servers read non-ASCII
    spaces (U+00A0, U+3000, U+2028 ...) as part of a name. On MySQL / MariaDB ``--`` opens a
    comment only when an ASCII space or control character follows (``--`` + U+00A0 is code to
    the server and a comment to sqlglot).
    """
    mysql = dialect.lower() in _MYSQL_DIALECTS
    for gap in _gaps(text, tokens):
        i, n = 0, len(gap)
        while i < n:
            c = gap[i]
            if c in _ASCII_SPACE:
                i += 1
            elif gap.startswith("--", i):
                after = gap[i + 2] if i + 2 < n else " "
                if mysql and not (ord(after) <= 32 or ord(after) == 127):
                    raise UnsafeSQLError(
                        f"'--' followed by {_char_name(after)} is ambiguous on MySQL (a comment "
                        "needs a plain space after the dashes): not allowed"
                    )
                end = gap.find("\n", i)
                i = n if end < 0 else end + 1
            elif mysql and c == "#":
                end = gap.find("\n", i)
                i = n if end < 0 else end + 1
            elif gap.startswith("/*", i):
                # sqlglot nests block comments exactly where the server does (PostgreSQL),
                # so the gap already ends where the server's comment ends
                end = gap.find("*/", i + 2)
                i = n if end < 0 else end + 2
            elif ord(c) > 127:
                raise UnsafeSQLError(
                    f"{_char_name(c)} outside a quoted name or string is ambiguous "
                    "(the server reads it as part of a name): not allowed"
                )
            else:
                i += 1


_ASCII_SPACE = " \t\n\r\f\v"


def _char_name(c: str) -> str:
    return f"U+{ord(c):04X}"


def check_read_only(sql: str, dialect: str = "sqlite", allowed_functions: Iterable[str] = ()) -> str:
    """Check that ``sql`` is exactly one read-only query and return it without a trailing ``;``.

    Accepted: SELECT, set operations (UNION/INTERSECT/EXCEPT), WITH ... SELECT, VALUES; a
    trailing ``;`` and comments after it (``SELECT 1; -- done``) are cut off.
    Refused: empty input, several statements, any write/DDL/transaction/session statement,
    ``SELECT ... INTO``, row locks (``FOR UPDATE``), MySQL executable comments
    (``/*! ... */``, ``/*M! ... */``) on the ``mysql`` dialect, a call of any function that is
    not one of the dialect's read-only built-ins or in ``allowed_functions``
    (:mod:`quorumsql.db.functions`; quoted and schema-qualified spellings included), NUL
    characters, and spellings the server may read differently from sqlglot: non-ASCII spaces
    between tokens, ``--`` without a plain space after it on MySQL, PostgreSQL ``U&"..."``
    names; on DuckDB, a table name that DuckDB would read as a file (a string, a quoted name
    with a path or pattern character, ``sales.csv``) and a statement starting with ``FROM``.

    When sqlglot cannot parse the statement, a token-level check still refuses forbidden
    keywords and several statements; an unparseable but harmless-looking query is passed on so
    that the database itself reports the syntax error (more useful feedback for the refiner).

    Args:
        sql: the statement text.
        dialect: sqlglot dialect of the target database.
        allowed_functions: function names the user permits beyond the built-ins
            (``Settings.allowed_functions``).

    Returns:
        The statement, stripped of surrounding whitespace, trailing semicolons and whatever
        comments follow the last semicolon.

    Raises:
        UnsafeSQLError: the statement is empty, several statements, or not read-only.
    """
    if sql is not None and not isinstance(sql, str):
        raise UnsafeSQLError(f"expected SQL text, got {type(sql).__name__}")
    text = (sql or "").strip()
    if "\x00" in text:
        raise UnsafeSQLError("SQL with a NUL character is not allowed")
    try:
        tokens = _tokenize(text, dialect)
    except TokenError as exc:
        raise UnsafeSQLError(f"SQL could not be tokenized: {exc}") from None
    if dialect.lower() in _MYSQL_DIALECTS:
        _refuse_executable_comments(text, tokens)
    _refuse_ambiguous_gaps(text, tokens, dialect)
    if dialect.lower() in ("postgres", "postgresql"):
        _refuse_unicode_identifiers(text, tokens)
    if dialect.lower() == "duckdb":
        _refuse_duckdb_spaces(tokens)
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
    _refuse_calls(tokens, dialect, allowed_functions)
    duckdb = dialect.lower() == "duckdb"
    try:
        tree = sqlglot.parse_one(text, read=dialect)
    except (ParseError, TokenError):
        if duckdb:
            _refuse_file_scans(tokens, None)
        words = {t.text.upper() for t in tokens if t.token_type not in _STRING_TOKENS}
        first = tokens[0].text.upper()
        bad = sorted(words & _FORBIDDEN_WORDS)
        if first not in _READ_STARTS or bad:
            raise UnsafeSQLError(
                "only read queries (SELECT / WITH ... SELECT) are allowed"
                + (f"; found {', '.join(bad)}" if bad else f"; got {first}")
            ) from None
        return text
    if not isinstance(tree, (exp.Query, exp.Values)):
        # name the statement as written ("FLUSH", "SHUTDOWN"), not sqlglot's reading of it
        raise UnsafeSQLError(
            f"only read queries (SELECT / WITH ... SELECT) are allowed; got {tokens[0].text.upper()}"
        )
    for node in tree.walk():
        if isinstance(node, _FORBIDDEN_NODES):
            raise UnsafeSQLError(
                f"only read queries are allowed; the query contains {node.key.upper()}"
            )
    if duckdb:
        _refuse_file_scans(tokens, tree)
    return text
