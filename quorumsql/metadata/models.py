"""Records of the metadata-complete context (MCI-SQL, paper 004, section 3.1, Table 1).

Column-level: :class:`ColumnProfile`; inter-column: :class:`JoinCandidate`,
:class:`ColumnPair` (duplicate and similar columns), :class:`FunctionalDependency`;
table-level: :class:`TableProfile`. :class:`MetadataRecord` holds them all and is what the store
writes as ``metadata.json``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from quorumsql.db.schema import DatabaseSchema

FORMAT_VERSION = 2  # 2: ColumnProfile.data_format


class ValuePattern(BaseModel):
    """Shape of the text values of a column, computed from a sample of distinct values.

    Attributes:
        sample_size: distinct values examined.
        min_length, max_length, avg_length: characters.
        shapes: most frequent shapes with their share of the sample, e.g. ``[("Aa", 0.9)]``; a
            shape maps runs of upper-case letters to ``A``, lower-case to ``a``, digits to ``9``
            and keeps other characters (``"AB-12"`` -> ``"A-9"``).
        fixed_width: every sampled value has this many characters (None otherwise).
        zero_padded: digit-only values with leading zeros (``"007"``).
        date_format: strftime-like format shared by the sampled values (``%Y-%m-%d``), if any.
        kind: a coarse label: ``numeric_text``, ``date``, ``email``, ``url``, ``hex``,
            ``code`` (short fixed-shape token), ``word``, ``phrase`` or ``free_text``.
    """

    sample_size: int = 0
    min_length: int = 0
    max_length: int = 0
    avg_length: float = 0.0
    shapes: list[tuple[str, float]] = Field(default_factory=list)
    fixed_width: int | None = None
    zero_padded: bool = False
    date_format: str | None = None
    kind: str = "phrase"

    def summary(self) -> str:
        """A short text for prompts, e.g. ``"fixed width 5; zero-padded; 'A9' 100%"``."""
        parts: list[str] = []
        if self.date_format:
            parts.append(f"date {self.date_format}")
        if self.kind in ("email", "url", "hex", "free_text", "numeric_text"):
            parts.append(self.kind.replace("_", " "))
        if self.fixed_width is not None:
            parts.append(f"fixed width {self.fixed_width}")
        elif self.sample_size:
            parts.append(f"length {self.min_length}-{self.max_length}")
        if self.zero_padded:
            parts.append("zero-padded")
        if self.shapes and not self.date_format and self.kind != "free_text":
            parts.append(" ".join(f"'{s}' {round(f * 100)}%" for s, f in self.shapes[:2]))
        return "; ".join(parts)


class ColumnProfile(BaseModel):
    """Column-level metadata (structure, semantics, statistics).

    Attributes:
        table, name, type: where the column is and its declared type.
        primary_key: part of the table's primary key.
        description: from the database comment, a BIRD description file or an LLM (see
            ``description_source``: ``comment`` | ``file`` | ``llm`` | None).
        value_description: BIRD ``value_description`` text, when given.
        data_format: BIRD ``data_format`` (``integer``, ``real``, ``text``, ``date``, ...), when given.
        storage_types: SQLite storage classes seen and their counts (``{"integer": 10}``);
            several entries mean a mixed-type column.
        affinity: ``number`` | ``text`` | ``date`` | ``blob`` | ``mixed`` | ``empty``.
        row_count, null_count, distinct_count: over the whole table (counts).
        unique: every non-NULL value appears once (and there is at least one).
        min_value, max_value: value range for numbers and dates (None otherwise).
        pattern: shape of text values (None for non-text columns).
        examples: representative values (most frequent first, at most 5).
        indexed: values are in the value index.
        skipped: why something was not computed, e.g. ``"blob column: no range or pattern"``.
    """

    table: str
    name: str
    type: str = ""
    primary_key: bool = False
    description: str | None = None
    description_source: str | None = None
    value_description: str | None = None
    data_format: str | None = None
    storage_types: dict[str, int] = Field(default_factory=dict)
    affinity: str = "empty"
    row_count: int = 0
    null_count: int = 0
    distinct_count: int = 0
    unique: bool = False
    min_value: Any = None
    max_value: Any = None
    pattern: ValuePattern | None = None
    examples: list[Any] = Field(default_factory=list)
    indexed: bool = False
    skipped: list[str] = Field(default_factory=list)

    @property
    def key(self) -> tuple[str, str]:
        """``(table, column)`` lower-cased."""
        return self.table.lower(), self.name.lower()

    @property
    def qualified(self) -> str:
        """``table.column``."""
        return f"{self.table}.{self.name}"


class JoinCandidate(BaseModel):
    """``table.column`` values are (mostly) contained in the unique column ``ref_table.ref_column``.

    Attributes:
        containment: share of the distinct non-NULL values of ``table.column`` found in the
            referenced column (0..1), checked by a query.
        declared: True when the database declares this foreign key.
    """

    table: str
    column: str
    ref_table: str
    ref_column: str
    containment: float = 1.0
    declared: bool = False

    def __str__(self) -> str:
        return f"{self.table}.{self.column}={self.ref_table}.{self.ref_column}"


class ColumnPair(BaseModel):
    """Two related columns.

    Attributes:
        kind: ``duplicate`` (identical sets of distinct values, verified by a query) or
            ``similar`` (cosine similarity of the embeddings of "table.column: description").
        score: 1.0 for duplicates, the cosine similarity for similar columns.
    """

    kind: Literal["duplicate", "similar"]
    table: str
    column: str
    other_table: str
    other_column: str
    score: float = 1.0

    def __str__(self) -> str:
        return f"{self.table}.{self.column} ~ {self.other_table}.{self.other_column}"


class FunctionalDependency(BaseModel):
    """``lhs -> rhs`` within one table: equal ``lhs`` values imply equal ``rhs`` values.

    Attributes:
        lhs: determinant column names (one or two).
        rhs: dependent column.
        cardinality: ``1:1`` when the dependency also holds the other way (single-column left
            side only), else ``N:1`` (many ``lhs`` values share one ``rhs`` value).
        sampled_rows: rows examined; smaller than the table's row count when a sample was used.
    """

    table: str
    lhs: list[str]
    rhs: str
    cardinality: Literal["1:1", "N:1"] = "N:1"
    sampled_rows: int = 0

    def __str__(self) -> str:
        return f"{self.table}: {', '.join(self.lhs)} -> {self.rhs} ({self.cardinality})"


class TableProfile(BaseModel):
    """Table-level metadata.

    Attributes:
        name, kind: table name; ``table`` or ``view``.
        row_count, column_count: counts.
        description: from the database comment, a description file or an LLM.
        signature: hash of the table's structure and aggregate statistics; a table whose
            signature is unchanged between two builds reuses its patterns, dependencies and
            indexed values.
        skipped: what profiling left out for this table and why.
    """

    name: str
    kind: str = "table"
    row_count: int = 0
    column_count: int = 0
    description: str | None = None
    description_source: str | None = None
    signature: str = ""
    skipped: list[str] = Field(default_factory=list)


class MetadataRecord(BaseModel):
    """Everything profiling computed for one database (written as ``metadata.json``).

    Attributes:
        format_version: bumped when the layout changes (older stores are rebuilt).
        db_id, uri, fingerprint: which database, as of which state.
        schema_: the introspected schema.
        tables, columns: table and column profiles (columns in schema order).
        join_candidates: declared foreign keys and inferred joins.
        duplicates, similar: column pairs.
        dependencies: functional dependencies.
        built_at: UNIX time of the build; seconds: how long it took, per stage.
        skipped: database-wide notes on what was left out.
        options: the build options (similarity threshold, sample sizes, ...).
    """

    format_version: int = FORMAT_VERSION
    db_id: str
    uri: str = ""
    fingerprint: str = ""
    schema_: DatabaseSchema = Field(alias="schema")
    tables: list[TableProfile] = Field(default_factory=list)
    columns: list[ColumnProfile] = Field(default_factory=list)
    join_candidates: list[JoinCandidate] = Field(default_factory=list)
    duplicates: list[ColumnPair] = Field(default_factory=list)
    similar: list[ColumnPair] = Field(default_factory=list)
    dependencies: list[FunctionalDependency] = Field(default_factory=list)
    built_at: float = 0.0
    seconds: dict[str, float] = Field(default_factory=dict)
    skipped: list[str] = Field(default_factory=list)
    options: dict[str, Any] = Field(default_factory=dict)

    model_config = {"populate_by_name": True}

    def column(self, table: str, column: str) -> ColumnProfile | None:
        """The profile of ``table.column`` (case-insensitive), or None."""
        key = (table.lower(), column.lower())
        return next((c for c in self.columns if c.key == key), None)

    def table(self, name: str) -> TableProfile | None:
        """The profile of table ``name`` (case-insensitive), or None."""
        low = name.lower()
        return next((t for t in self.tables if t.name.lower() == low), None)

    def related_columns(self, table: str, column: str) -> list[tuple[str, str, str]]:
        """Duplicate and similar columns of ``table.column`` (case-insensitive).

        Returns:
            ``[(kind, table, column)]`` with ``kind`` ``duplicate`` or ``similar``; duplicates
            first, then similar columns, most similar first.
        """
        key = (table.lower(), column.lower())
        out = []
        for p in [*self.duplicates, *self.similar]:
            a, b = (p.table, p.column), (p.other_table, p.other_column)
            if (a[0].lower(), a[1].lower()) == key:
                out.append((p.kind, *b))
            elif (b[0].lower(), b[1].lower()) == key:
                out.append((p.kind, *a))
        return out
