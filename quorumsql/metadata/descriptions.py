"""Column descriptions from BIRD's ``database_description/<table>.csv`` files.

Each file is named after a table and has the header
``original_column_name,column_name,column_description,data_format,value_description``
(BIRD, Li et al. 2023). The files come in several encodings (UTF-8, UTF-8 with BOM, cp1252);
all are read.

:func:`load_descriptions` gives the rows field by field (the metadata store keeps them apart);
:func:`description_texts` gives the one ``{(table, column): text}`` mapping that every prompt
rendering, the API and the benchmark loaders use.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

from quorumsql.errors import ConfigError
from quorumsql.metadata.sql import type_family
from quorumsql.sqlnames import normalize_column_name

_ENCODINGS = ("utf-8-sig", "cp1252", "latin-1")


@dataclass(frozen=True)
class ColumnDescription:
    """One row of a description file.

    Attributes:
        table, column: as written in the file (``original_column_name``), stripped.
        full_name: the expanded column name (``column_name``), may be empty.
        description: ``column_description``.
        data_format: ``data_format``.
        value_description: ``value_description`` (explains codes and units).
    """

    table: str
    column: str
    full_name: str = ""
    description: str = ""
    data_format: str = ""
    value_description: str = ""

    def text(self, *, with_values: bool = False, with_format: bool = False) -> str:
        """The description for prompts, ``;``-separated, whitespace collapsed, blanks dropped.

        Parts in order: the full name (when it is more than a respelling of the column name and
        not already in the description), the description (unless it only respells the column
        name), ``format: <data_format>`` (with
        ``with_format``, and only when the format says more than a number or text type, e.g.
        ``date``: the rendering shows the column's type already), the value description (with
        ``with_values``; codes and units).
        """
        parts = []
        desc = " ".join(self.description.split())
        full = " ".join(self.full_name.split())
        if (full and normalize_column_name(full) != normalize_column_name(self.column)
                and full.lower() not in desc.lower()):
            parts.append(full)
        if desc and normalize_column_name(desc) != normalize_column_name(self.column):
            parts.append(desc)
        fmt = " ".join(self.data_format.split())
        if with_format and fmt and type_family(fmt) not in ("number", "text"):
            parts.append(f"format: {fmt}")
        values = " ".join(self.value_description.split())
        if with_values and values and values.lower() not in {p.lower() for p in parts}:
            parts.append(values)
        return "; ".join(parts)


def _read_text(path: Path) -> str:
    raw = path.read_bytes()
    for enc in _ENCODINGS:
        try:
            return raw.decode(enc)
        except UnicodeDecodeError:
            continue
    return raw.decode("utf-8", errors="replace")  # pragma: no cover - latin-1 never fails


def load_descriptions(directory: str | Path) -> dict[tuple[str, str], ColumnDescription]:
    """Read every ``*.csv`` in ``directory``.

    Args:
        directory: a BIRD ``database_description`` folder (or the database folder holding one).

    Returns:
        ``{(table, column): ColumnDescription}`` with lower-cased keys; the table is the file
        stem.

    Raises:
        ConfigError: the directory does not exist or holds no CSV file.
    """
    d = Path(directory).expanduser()
    if (d / "database_description").is_dir():
        d = d / "database_description"
    if not d.is_dir():
        raise ConfigError(f"descriptions directory not found: {d}")
    files = sorted(d.glob("*.csv"))
    if not files:
        raise ConfigError(f"no description CSV files in {d}")
    out: dict[tuple[str, str], ColumnDescription] = {}
    for f in files:
        table = f.stem.strip()
        reader = csv.DictReader(io.StringIO(_read_text(f)))
        for row in reader:
            row = {(k or "").strip().lower(): (v or "") for k, v in row.items()}
            col = row.get("original_column_name", "").strip()
            if not col:
                continue
            out[(table.lower(), col.lower())] = ColumnDescription(
                table=table,
                column=col,
                full_name=row.get("column_name", "").strip(),
                description=row.get("column_description", "").strip(),
                data_format=row.get("data_format", "").strip(),
                value_description=row.get("value_description", "").strip(),
            )
    return out


def description_texts(directory: str | Path) -> dict[tuple[str, str], str]:
    """Column descriptions of a BIRD ``database_description`` folder, one prompt text per column.

    The text of each row is :meth:`ColumnDescription.text` with the value description and the
    data format: ``"<full name>; <description>; format: <data format>; <value description>"``
    with the parts that are empty, repeated, or a plain number/text type left out. This is the
    mapping every caller uses (``Pipeline.set_descriptions``, the BIRD loader, the renderings'
    ``descriptions`` argument).

    Args:
        directory: a BIRD ``database_description`` folder (or the database folder holding one).

    Returns:
        ``{(table, column): text}`` with table and column as written in the files (the file
        stem and ``original_column_name``); renderings match them case-insensitively. Rows whose
        text is empty are left out.

    Raises:
        ConfigError: the directory does not exist or holds no CSV file.
    """
    out: dict[tuple[str, str], str] = {}
    for d in load_descriptions(directory).values():
        text = d.text(with_values=True, with_format=True)
        if text:
            out[(d.table, d.column)] = text
    return out
