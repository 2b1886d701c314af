"""Records describing a database's structure, as introspected by a connector."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class Column(BaseModel):
    """One column of a table or view.

    Attributes:
        name: column name as stored in the database.
        type: declared type as the database reports it (``VARCHAR(20)``, ``int``, ``""``).
        primary_key: part of the table's primary key.
        nullable: NULLs allowed by the declaration.
        comment: the database's own column comment, if any.
        examples: a few distinct non-NULL values (first ones the database returns).
    """

    name: str
    type: str = ""
    primary_key: bool = False
    nullable: bool = True
    comment: str | None = None
    examples: list[Any] = Field(default_factory=list)


class ForeignKey(BaseModel):
    """``table.column`` references ``ref_table.ref_column`` (one column of a possibly composite key)."""

    table: str
    column: str
    ref_table: str
    ref_column: str

    def __str__(self) -> str:
        return f"{self.table}.{self.column}={self.ref_table}.{self.ref_column}"


class Table(BaseModel):
    """A table or view with its columns in declaration order."""

    name: str
    kind: Literal["table", "view"] = "table"
    comment: str | None = None
    columns: list[Column] = Field(default_factory=list)

    @property
    def primary_key(self) -> list[str]:
        """Names of the primary-key columns, in declaration order."""
        return [c.name for c in self.columns if c.primary_key]

    def column(self, name: str) -> Column | None:
        """The column called ``name`` (case-insensitive), or None."""
        low = name.lower()
        return next((c for c in self.columns if c.name.lower() == low), None)


class DatabaseSchema(BaseModel):
    """The structure of one database: tables (and views) and declared foreign keys.

    Attributes:
        db_id: short database name (SQLite file stem, MySQL schema name).
        dialect: sqlglot dialect name of the engine (``sqlite``, ``mysql``, ``postgres``).
        tables: tables and views in a stable order.
        foreign_keys: declared foreign keys, one per column pair.
    """

    db_id: str
    dialect: str
    tables: list[Table] = Field(default_factory=list)
    foreign_keys: list[ForeignKey] = Field(default_factory=list)

    def table(self, name: str) -> Table | None:
        """The table called ``name`` (case-insensitive), or None."""
        low = name.lower()
        return next((t for t in self.tables if t.name.lower() == low), None)

    @property
    def column_count(self) -> int:
        """Total number of columns over all tables."""
        return sum(len(t.columns) for t in self.tables)
