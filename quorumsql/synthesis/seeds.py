"""Seeds of a synthesis run: where each (question, SQL) pair starts.

Three kinds, as the issue and the source papers name them:

* **seed SQL** (``kind="sql"``, SQLord's reverse generation): a text file with one query per
  line, optionally followed by a TAB and the database id, as Spider's ``train_gold.sql``
  (``SQL<TAB>db_id``). Blank lines and lines starting with ``--`` or ``#`` are skipped.
* **a database alone**: per database, SQL written over its M-Schema at chosen complexity levels
  (``kind="schema"``, DataFlow's SQL generator), or questions written first from its tables
  and columns and answered by the inference graph (``kind="questions"``, ASASQL's forward path).
* **existing pairs** (``kind="pair"``, DataFlow's refinement mode): JSONL with ``question``, the
  SQL under ``query``, ``SQL`` or ``sql``, optional ``evidence``, and the database as ``db_id``
  (found with ``--data`` / ``--db``) or ``db`` (a SQLite path, relative to the file, or a URL).

Databases come from a Spider-layout folder (``DIR/database/<db_id>/<db_id>.sqlite``; also
``DIR/<db_id>/<db_id>.sqlite`` and BIRD's ``DIR/dev_databases/...``) or from one ``--db``
path or URL. A seed whose database cannot be found is still a seed: the graph drops it with
the reason, so every input line is accounted for in the run's records.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel

from quorumsql.errors import InputError
from quorumsql.jsonl import json_objects
from quorumsql.synthesis.records import SeedKind

_DB_ID = re.compile(r"^[A-Za-z0-9_.$-]+$")
_SQL_KEYS = ("query", "SQL", "sql")


class Seed(BaseModel):
    """One seed: the input of one run of the synthesis graph.

    Attributes:
        id: stable identifier (``<file stem>:<line>``, ``schema:<db_id>:<level>``,
            ``questions:<db_id>``); ``--resume`` skips seeds whose records are all written.
        kind: ``sql`` | ``schema`` | ``questions`` | ``pair`` (see the module docstring).
        db: SQLite path or database URL; empty when it could not be found (see ``db_error``).
        db_id: the database's id as the seed names it.
        db_error: why the database could not be found (the graph drops the seed with it).
        source: the seed file or the database it came from; line: its line (1-based).
        sql, question, evidence: what the seed brings (SQL for ``sql`` and ``pair`` seeds,
            a question for ``pair`` seeds).
        complexity: the level SQL is written at (``schema`` seeds).
    """

    id: str
    kind: SeedKind
    db: str = ""
    db_id: str = ""
    db_error: str | None = None
    source: str | None = None
    line: int | None = None
    sql: str | None = None
    question: str | None = None
    evidence: str = ""
    complexity: str | None = None


class DatabaseLocator:
    """Finds a seed's database from its id: a Spider-layout folder, or one database for all.

    Args:
        data: folder holding ``database/<db_id>/<db_id>.sqlite`` (Spider), ``<db_id>/<db_id>.sqlite``,
            ``dev_databases/<db_id>/<db_id>.sqlite`` (BIRD) or ``<db_id>.sqlite`` files.
        db: one SQLite path or URL used for every seed (a seed's own db id is then ignored).

    Raises:
        InputError: ``data`` is not a folder, or neither ``data`` nor ``db`` is given.
    """

    def __init__(self, data: str | Path | None = None, db: str | None = None) -> None:
        if data is None and not db:
            raise InputError("say where the databases are: --data DIR (Spider layout) or --db PATH_OR_URL")
        self.data = Path(data).expanduser() if data is not None else None
        if self.data is not None and not self.data.is_dir():
            raise InputError(f"--data {self.data} is not a folder (expected DIR/database/<db_id>/<db_id>.sqlite)")
        self.db = db
        if db and "://" not in db and not Path(db).expanduser().is_file():
            raise InputError(f"--db {db}: no such SQLite file")

    def candidates(self, db_id: str) -> list[Path]:
        """Paths where ``db_id`` may live under the data folder, in the order tried."""
        if self.data is None:
            return []
        d = self.data
        return [d / "database" / db_id / f"{db_id}.sqlite", d / db_id / f"{db_id}.sqlite",
                d / "dev_databases" / db_id / f"{db_id}.sqlite", d / f"{db_id}.sqlite"]

    def locate(self, db_id: str | None) -> tuple[str, str, str | None]:
        """``(db, db_id, error)`` for a seed naming ``db_id`` (None or "" when it names none).

        ``db`` is a path or URL, "" when not found; ``error`` then says why.
        """
        if self.db:
            return self.db, db_id or _name_of(self.db), None
        if not db_id:
            return "", "", "the seed names no database and no --db was given"
        if not _DB_ID.match(db_id):
            return "", db_id, f"{db_id!r} is not a database id"
        for path in self.candidates(db_id):
            if path.is_file():
                return str(path), db_id, None
        return "", db_id, f"no database {db_id!r} under {self.data} (looked for {self.candidates(db_id)[0]})"

    def databases(self, db_ids: Sequence[str] | None = None) -> list[tuple[str, str]]:
        """``[(db_id, db)]`` of the databases to seed from, sorted by id.

        With ``--db``, that one database; with ``--data``, every database under the folder, or
        only ``db_ids``.

        Raises:
            InputError: an id in ``db_ids`` that is not there, or no database at all.
        """
        if self.db:
            return [(_name_of(self.db), self.db)]
        assert self.data is not None
        if db_ids:
            found = []
            for db_id in db_ids:
                db, _, error = self.locate(db_id)
                if error:
                    raise InputError(error)
                found.append((db_id, db))
            return found
        roots = [self.data / "database", self.data / "dev_databases", self.data]
        seen: dict[str, str] = {}
        for root in roots:
            if not root.is_dir():
                continue
            for sub in sorted(root.iterdir()):
                path = sub / f"{sub.name}.sqlite"
                if sub.is_dir() and path.is_file():
                    seen.setdefault(sub.name, str(path))
        if not seen:
            raise InputError(f"no databases under {self.data} (expected DIR/database/<db_id>/<db_id>.sqlite)")
        return sorted(seen.items())


def _name_of(db: str) -> str:
    """A database id for a path or URL: the file stem or the last path segment."""
    tail = db.rstrip("/").rsplit("/", 1)[-1]
    return Path(tail.split("?", 1)[0]).stem or tail


def _read_text(path: str | Path, what: str) -> str:
    p = Path(path).expanduser()
    try:
        return p.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        raise InputError(f"{what} not found: {p}") from None
    except IsADirectoryError:
        raise InputError(f"{what} {p} is a folder, not a file") from None
    except OSError as exc:
        raise InputError(f"{what} {p} cannot be read: {exc}") from None


def read_seed_sql(path: str | Path, locator: DatabaseLocator) -> list[Seed]:
    """Seeds of a seed SQL file: one query per line, optionally ``<TAB>db_id`` after it.

    Args:
        path: the file (e.g. ``../shared/data/spider/train_gold.sql``).
        locator: finds each line's database.

    Returns:
        One ``sql`` seed per non-blank, non-comment line, in file order; ids are
        ``<file stem>:<line>``. A line whose database is missing keeps ``db_error``.

    Raises:
        InputError: the file is missing or unreadable.
    """
    p = Path(path)
    seeds = []
    for number, raw in enumerate(_read_text(p, "seed SQL file").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("--") or line.startswith("#"):
            continue
        sql, db_id = line, None
        if "\t" in line:
            head, tail = line.rsplit("\t", 1)
            if _DB_ID.match(tail.strip()):
                sql, db_id = head.strip(), tail.strip()
        db, db_id, error = locator.locate(db_id)
        seeds.append(Seed(id=f"{p.stem}:{number}", kind="sql", db=db, db_id=db_id, db_error=error,
                          source=str(p), line=number, sql=sql))
    return seeds


def read_pairs(path: str | Path, locator: DatabaseLocator | None) -> tuple[list[Seed], list[str]]:
    """Seeds of an existing-pairs JSONL file (see the module docstring).

    Returns:
        ``(seeds, problems)``: one ``pair`` seed per usable line (ids ``<file stem>:<line>``),
        and one line per skipped input line saying why (not JSON, no question, no SQL).

    Raises:
        InputError: the file is missing or unreadable.
    """
    p = Path(path)
    seeds: list[Seed] = []
    problems: list[str] = []
    for number, row, problem in json_objects(_read_text(p, "pairs file").splitlines()):
        if problem:
            problems.append(f"{p.name}:{number}: {problem}, skipped")
            continue
        question = row.get("question")
        sql = next((row[k] for k in _SQL_KEYS if isinstance(row.get(k), str) and row[k].strip()), None)
        if not isinstance(question, str) or not question.strip() or sql is None:
            problems.append(f"{p.name}:{number}: needs 'question' and the SQL under query/SQL/sql, skipped")
            continue
        own_db = row.get("db") or row.get("db_path")
        if isinstance(own_db, str) and own_db.strip():
            db = own_db if "://" in own_db or Path(own_db).is_absolute() else str(p.parent / own_db)
            db_id, error = str(row.get("db_id") or _name_of(db)), None
            if "://" not in db and not Path(db).is_file():
                db, error = "", f"no such SQLite file: {db}"
        elif locator is not None:
            db, db_id, error = locator.locate(row.get("db_id") if isinstance(row.get("db_id"), str) else None)
        else:
            db, db_id, error = "", str(row.get("db_id") or ""), "no --data or --db to find the database in"
        evidence = row.get("evidence") if isinstance(row.get("evidence"), str) else ""
        seeds.append(Seed(id=f"{p.stem}:{number}", kind="pair", db=db, db_id=db_id, db_error=error,
                          source=str(p), line=number, sql=sql.strip(), question=question.strip(),
                          evidence=evidence.strip()))
    return seeds, problems


def schema_seeds(databases: Sequence[tuple[str, str]], complexities: Sequence[str]) -> list[Seed]:
    """One ``schema`` seed per (database, complexity level): SQL written over the M-Schema.

    Raises:
        InputError: an unknown complexity level (see
            :data:`quorumsql.agents.sql_synthesizer.COMPLEXITY_LEVELS`).
    """
    from quorumsql.agents.sql_synthesizer import COMPLEXITY_LEVELS

    bad = [c for c in complexities if c not in COMPLEXITY_LEVELS]
    if bad or not complexities:
        raise InputError(f"unknown complexity level(s) {', '.join(map(repr, bad)) or '(none given)'}; "
                         f"choose from {', '.join(COMPLEXITY_LEVELS)}")
    return [Seed(id=f"schema:{db_id}:{level}", kind="schema", db=db, db_id=db_id, source=db, complexity=level)
            for db_id, db in databases for level in complexities]


def questions_seeds(databases: Sequence[tuple[str, str]]) -> list[Seed]:
    """One ``questions`` seed per database: questions written first, then answered."""
    return [Seed(id=f"questions:{db_id}", kind="questions", db=db, db_id=db_id, source=db)
            for db_id, db in databases]
