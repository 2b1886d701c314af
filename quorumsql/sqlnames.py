"""Identifiers: how a table or column name is written in SQL, and how two spellings are compared.

Two helpers that every part of QuorumSQL uses instead of its own copy:

* :func:`quote_identifier` writes a name for a dialect with sqlglot's identifier rendering
  (double quotes for SQLite and PostgreSQL, backticks for MySQL/MariaDB, embedded quote
  characters doubled), always quoted by default so that any name is safe in generated SQL;
  with ``always=False`` it quotes only names that need it (not a plain identifier, or a word
  the dialect reserves), which keeps prompt renderings readable.
* :func:`normalize_column_name` is the spelling-insensitive form of a name (case, ``_``,
  spaces and punctuation ignored), used to match ``pet_type`` with ``PetType``.
"""

from __future__ import annotations

import functools
import re

from sqlglot import exp
from sqlglot.dialects.dialect import Dialect

# A name written without quotes must look like this (letters, digits, underscores).
_PLAIN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# Words SQLite 3.40 rejects as unquoted table or column names (checked one by one with
# CREATE TABLE / SELECT); its other keywords fall back to identifiers. sqlglot has no list for
# SQLite, and none for PostgreSQL, whose reserved words DuckDB shares (see _reserved_words).
_SQLITE_RESERVED = frozenset(
    """add all alter and as autoincrement between case cast check collate commit constraint create
    default deferrable delete distinct drop else escape except exists foreign from group having if in
    index insert intersect into is isnull join limit not nothing notnull null on or order primary raise
    references returning select set table then to transaction union unique update using values when
    where""".split()
)


@functools.lru_cache(maxsize=None)
def _reserved_words(dialect: str) -> frozenset[str]:
    """Lower-case words ``dialect`` does not accept as unquoted identifiers."""
    if dialect == "sqlite":
        return _SQLITE_RESERVED
    own = Dialect.get_or_raise(dialect).generator_class.RESERVED_KEYWORDS
    if own:
        return frozenset(own)
    # PostgreSQL-family reserved words (DuckDB's parser is PostgreSQL's grammar)
    return frozenset(Dialect.get_or_raise("duckdb").generator_class.RESERVED_KEYWORDS)


def identifier(name: str, dialect: str, *, always: bool = False) -> exp.Identifier:
    """A sqlglot identifier node for ``name``, quoted when ``dialect`` needs it (or ``always``).

    For rewriting parsed queries (e.g. the aligner putting a real column name into a tree): the
    node renders as :func:`quote_identifier` does.

    Args:
        name: a table or column name, as the database spells it.
        dialect: sqlglot dialect name.
        always: mark it quoted whatever the name.

    Raises:
        ValueError: unknown dialect (sqlglot's message).
    """
    quoted = always or not _PLAIN.match(name) or name.lower() in _reserved_words(dialect)
    return exp.to_identifier(name, quoted=quoted)


def quote_identifier(name: str, dialect: str, *, always: bool = True) -> str:
    """``name`` written as an identifier of ``dialect``.

    Args:
        name: a table or column name, as the database spells it (any characters).
        dialect: sqlglot dialect name (``sqlite``, ``mysql``, ``postgres``, ...).
        always: quote every name (the default: any name is then safe in generated SQL).
            When False, only names that are not plain identifiers (letters, digits and ``_``,
            not starting with a digit) or are reserved words of the dialect are quoted.

    Returns:
        The identifier text, e.g. ``"Singer_ID"`` (SQLite, PostgreSQL) or `` `Singer_ID` ``
        (MySQL); ``Singer_ID`` with ``always=False``.

    Raises:
        ValueError: unknown dialect (sqlglot's message).
    """
    return identifier(name, dialect, always=always).sql(dialect=dialect)


def normalize_column_name(name: str) -> str:
    """The spelling-insensitive form of a name: case-folded, letters and digits only.

    ``"Pet_Type"``, ``"pet type"`` and ``"PetType"`` all give ``"pettype"``. Used to match a
    name a model wrote with the schema's (alignment, error hints) and to relate column names
    across tables (join inference).
    """
    return "".join(ch for ch in name.casefold() if ch.isalnum())
