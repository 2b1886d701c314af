"""Column descriptions from BIRD's ``database_description/<table>.csv`` files.

Each file is named after a table and has the header
``original_column_name,column_name,column_description,data_format,value_description``
(BIRD, Li et al. 2023). The files come in several encodings (UTF-8, UTF-8 with BOM, cp1252);
all are read.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

from quorumsql.errors import ConfigError

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

    def text(self, *, with_values: bool = False) -> str:
        """The description for prompts: the full name and the description, whitespace collapsed.

        Args:
            with_values: append the value description (codes, units) too.
        """
        parts = []
        desc = " ".join(self.description.split())
        full = " ".join(self.full_name.split())
        if full and full.lower() != self.column.lower() and full.lower() not in desc.lower():
            parts.append(full)
        if desc:
            parts.append(desc)
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
