"""Benchmark loaders: Spider, BIRD and a generic JSONL layout, plus question selection.

Layouts read (all official, nothing converted):

* **Spider** (Yu et al., 2018): ``<split>.json`` (``db_id``, ``question``, ``query``),
  ``<split>_gold.sql`` (``SQL<TAB>db_id`` per line, same order; preferred over ``query`` when
  present), ``database/<db_id>/<db_id>.sqlite``. Difficulty is Spider's hardness, computed from
  the gold SQL (:func:`quorumsql.benchmarks.hardness.spider_hardness`).
* **BIRD** (Li et al., 2023): ``dev.json`` or ``mini_dev_sqlite.json`` (``question_id``,
  ``db_id``, ``question``, ``evidence``, ``SQL``, ``difficulty``), databases at
  ``dev_databases/<db_id>/<db_id>.sqlite``, column descriptions at
  ``dev_databases/<db_id>/database_description/<table>.csv``.
* **JSONL**: one object per line with ``question``, ``db`` (SQLite path relative to the file, or
  a URL; also ``db_path``/``db_url``), gold SQL in ``sql``/``gold_sql``/``SQL``/``query``
  (optional), optional ``evidence``, ``difficulty``, ``id``/``question_id``, ``db_id``.
  Malformed lines are skipped and reported, never fatal.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from quorumsql.errors import InputError
from quorumsql.jsonl import json_objects

DatasetKind = Literal["spider", "bird", "jsonl"]


class Example(BaseModel):
    """One benchmark question.

    Attributes:
        id: stable identifier within the dataset (``dev/17`` for Spider, BIRD's ``question_id``,
            the JSONL ``id`` or ``line/<n>``); results and resumption are keyed by it.
        db_id: database name.
        db: SQLite path or database URL the question is asked on.
        question: the question text.
        gold_sql: reference SQL, None when the dataset has none (then only the LLM judge's
            QSE can score the prediction).
        evidence: external knowledge (BIRD), optional.
        difficulty: BIRD difficulty (``simple``/``moderate``/``challenging``), Spider hardness
            (``easy``/``medium``/``hard``/``extra``), or as given in JSONL; None if unknown.
        dataset: loader that produced it (``spider``, ``bird``, ``jsonl``).
    """

    id: str
    db_id: str
    db: str
    question: str
    gold_sql: str | None = None
    evidence: str | None = None
    difficulty: str | None = None
    dataset: str = "jsonl"


class Dataset(BaseModel):
    """A loaded benchmark.

    Attributes:
        kind: ``spider``, ``bird`` or ``jsonl``.
        root: the directory or file it was read from.
        examples: questions in file order.
        warnings: problems met while loading (malformed lines, missing fields), one line each.
        descriptions: BIRD column descriptions, ``{db_id: {(table, column): text}}``.
    """

    kind: str
    root: str
    examples: list[Example]
    warnings: list[str] = Field(default_factory=list)
    descriptions: dict[str, dict[tuple[str, str], str]] = Field(default_factory=dict)

    def select(
        self,
        *,
        limit: int | None = None,
        sample: int | None = None,
        seed: int = 0,
        db_ids: Sequence[str] | None = None,
    ) -> list[Example]:
        """Pick questions: filter by ``db_ids``, then a seeded random ``sample``, then ``limit``.

        A sample keeps file order among the chosen questions, so runs with the same seed and
        sample size on the same data ask the same questions in the same order.

        Raises:
            InputError: an unknown db id, or a non-positive ``limit``/``sample``.
        """
        chosen = list(self.examples)
        if db_ids:
            known = {e.db_id for e in chosen}
            unknown = [d for d in db_ids if d not in known]
            if unknown:
                raise InputError(
                    f"no questions for database(s) {', '.join(unknown)} in {self.root}; "
                    f"known: {', '.join(sorted(known)[:20])}"
                )
            wanted = set(db_ids)
            chosen = [e for e in chosen if e.db_id in wanted]
        if sample is not None:
            if sample <= 0:
                raise InputError("--sample must be positive")
            if sample < len(chosen):
                picked = set(random.Random(seed).sample(range(len(chosen)), sample))
                chosen = [e for i, e in enumerate(chosen) if i in picked]
        if limit is not None:
            if limit <= 0:
                raise InputError("--limit must be positive")
            chosen = chosen[:limit]
        return chosen


def dataset_hash(examples: Iterable[Example]) -> str:
    """SHA-256 (hex, first 16) of the selected questions: ids, databases, questions, gold, evidence."""
    h = hashlib.sha256()
    for ex in examples:
        h.update(
            json.dumps(
                [ex.id, ex.db_id, ex.question, ex.gold_sql, ex.evidence, ex.difficulty],
                ensure_ascii=False,
            ).encode()
        )
        h.update(b"\n")
    return h.hexdigest()[:16]


def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"file not found: {path}") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{path} is not valid JSON: {exc}") from None


SPIDER_LAYOUT = (
    "<split>.json (a JSON list of questions with db_id, question, query), optionally <split>_gold.sql, "
    "and databases at database/<db_id>/<db_id>.sqlite"
)
BIRD_LAYOUT = (
    "dev.json or mini_dev_sqlite.json (a JSON list of questions with question_id, db_id, question, "
    "evidence, SQL, difficulty) and databases at dev_databases/<db_id>/<db_id>.sqlite"
)


def _layout_hint(root: Path, kind: str) -> str:
    """``; it looks like <other> layout: use --dataset <other>`` when ``root`` has the other layout's folder."""
    if kind == "spider" and (root / "dev_databases").is_dir():
        return "; it looks like BIRD's layout (dev_databases/): use --dataset bird"
    if kind == "bird" and (root / "database").is_dir():
        return "; it looks like Spider's layout (database/): use --dataset spider"
    return ""


def _layout_error(root: Path, kind: str, problem: str, split: str = "dev") -> InputError:
    """A folder that is not in ``kind``'s layout: what is wrong, what was expected, what it looks like."""
    name, expected = ("Spider", SPIDER_LAYOUT.replace("<split>", split)) if kind == "spider" else ("BIRD", BIRD_LAYOUT)
    return InputError(f"{root} is not in {name} layout ({problem}); expected {expected}{_layout_hint(root, kind)}")


def _check_items(items: list, path: Path, kind: str, sql_keys: tuple[str, ...], split: str = "dev") -> None:
    """Every question is an object with text ``question``/``db_id`` and, when present, SQL text.

    Raises:
        InputError: the first question that is not, naming the file, the item and the layout expected.
    """
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            problem = f"item {i} of {path.name} is a {type(item).__name__}, not a question object"
        else:
            bad = next((k for k in ("question", "db_id") if not isinstance(item.get(k), str)), None)
            if bad is None:
                bad = next((k for k in sql_keys if item.get(k) is not None and not isinstance(item[k], str)), None)
            if bad is None:
                continue
            value = item.get(bad)
            problem = (f"item {i} of {path.name} has no {bad!r}" if value is None else
                       f"item {i} of {path.name}: {bad!r} is a {type(value).__name__}, not text")
        raise _layout_error(path.parent, kind, problem, split)


def load_spider(root: str | Path, split: str = "dev") -> Dataset:
    """Load a Spider-layout directory (see module docstring).

    Args:
        root: directory holding ``<split>.json`` and ``database/``.
        split: file stem of the question file (``dev``, ``train_spider``, ...).

    Raises:
        InputError: not a folder in Spider's layout (no question file or ``database/`` folder,
            questions that are not Spider's), or a gold file whose length differs from it.
    """
    from quorumsql.benchmarks.hardness import spider_hardness

    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root} is not a folder; expected a Spider folder holding "
                         f"{SPIDER_LAYOUT.replace('<split>', split)}")
    if not (root / f"{split}.json").is_file():
        raise _layout_error(root, "spider", f"no question file {split}.json", split)
    if not (root / "database").is_dir():
        raise _layout_error(root, "spider", "no database/ folder", split)
    items = _read_json(root / f"{split}.json")
    if not isinstance(items, list):
        raise _layout_error(root, "spider", f"{split}.json is not a JSON list of questions", split)
    _check_items(items, root / f"{split}.json", "spider", ("query",), split)
    if items and not any("query" in item for item in items) and any("SQL" in item for item in items):
        raise _layout_error(root, "spider", f"the questions of {split}.json carry BIRD's 'SQL', not Spider's 'query'",
                            split)
    gold_path = root / f"{split}_gold.sql"
    golds: list[tuple[str, str]] | None = None
    if gold_path.is_file():
        golds = []
        for line in gold_path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            sql, _, db_id = line.rpartition("\t")
            golds.append((sql.strip(), db_id.strip()) if sql else (line.strip(), ""))
        if len(golds) != len(items):
            raise InputError(
                f"{gold_path} has {len(golds)} queries but {split}.json has {len(items)} questions"
            )
    warnings: list[str] = []
    examples = []
    for i, item in enumerate(items):
        db_id = item.get("db_id", "")
        gold = golds[i][0] if golds else item.get("query")
        if golds and golds[i][1] and golds[i][1] != db_id:
            warnings.append(f"{split}/{i}: gold file says {golds[i][1]}, question file says {db_id}")
        examples.append(
            Example(
                id=f"{split}/{i}",
                db_id=db_id,
                db=str(root / "database" / db_id / f"{db_id}.sqlite"),
                question=item.get("question", ""),
                gold_sql=gold,
                difficulty=spider_hardness(gold) if gold else None,
                dataset="spider",
            )
        )
    return Dataset(kind="spider", root=str(root), examples=examples, warnings=warnings)


BIRD_QUESTION_FILES = ("dev.json", "mini_dev_sqlite.json")


def load_bird(root: str | Path, question_file: str | None = None) -> Dataset:
    """Load a BIRD-layout directory (see module docstring), descriptions included.

    Args:
        root: directory holding the question file and ``dev_databases/``.
        question_file: file name; default the first of ``dev.json``, ``mini_dev_sqlite.json``.

    Raises:
        InputError: not a folder in BIRD's layout (no question file or ``dev_databases/``
            folder, questions that are not BIRD's).
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root} is not a folder; expected a BIRD folder holding {BIRD_LAYOUT}")
    if question_file is None:
        question_file = next((n for n in BIRD_QUESTION_FILES if (root / n).is_file()), None)
        if question_file is None:
            raise InputError(f"no BIRD question file ({' or '.join(BIRD_QUESTION_FILES)}) in {root}: not in "
                             f"BIRD layout; expected {BIRD_LAYOUT}{_layout_hint(root, 'bird')}")
    db_root = root / "dev_databases"
    if not db_root.is_dir():
        raise _layout_error(root, "bird", "no dev_databases/ folder")
    items = _read_json(root / question_file)
    if not isinstance(items, list):
        raise _layout_error(root, "bird", f"{question_file} is not a JSON list of questions")
    _check_items(items, root / question_file, "bird", ("SQL", "sql"))
    examples = []
    for i, item in enumerate(items):
        db_id = item.get("db_id", "")
        qid = item.get("question_id", i)
        examples.append(
            Example(
                id=str(qid),
                db_id=db_id,
                db=str(db_root / db_id / f"{db_id}.sqlite"),
                question=item.get("question", ""),
                gold_sql=item.get("SQL") or item.get("sql"),
                evidence=item.get("evidence") or None,
                difficulty=item.get("difficulty"),
                dataset="bird",
            )
        )
    descriptions = {}
    for db_id in sorted({e.db_id for e in examples}):
        desc = load_bird_descriptions(db_root / db_id / "database_description")
        if desc:
            descriptions[db_id] = desc
    return Dataset(kind="bird", root=str(root), examples=examples, descriptions=descriptions)


def load_bird_descriptions(directory: str | Path) -> dict[tuple[str, str], str]:
    """BIRD's ``database_description/<table>.csv`` files as ``{(table, column): text}``.

    The texts of :func:`quorumsql.metadata.descriptions.description_texts` (full name,
    description, data format when it says more than the type, value description), the same
    mapping the API builds from a descriptions folder.

    Returns:
        An empty dict when the directory does not exist or holds no CSV file.
    """
    from quorumsql.errors import ConfigError
    from quorumsql.metadata.descriptions import description_texts

    if not Path(directory).is_dir():
        return {}
    try:
        return description_texts(directory)
    except ConfigError:
        return {}


_SQL_KEYS = ("sql", "gold_sql", "SQL", "query", "gold")
_DB_KEYS = ("db", "db_path", "db_url", "database")


def load_jsonl(path: str | Path) -> Dataset:
    """Load the generic JSONL layout (see module docstring).

    Relative database paths are resolved against the JSONL file's directory. Lines that are not
    JSON objects, or lack ``question`` or a database, are skipped with a warning.

    Raises:
        InputError: the file is missing or yields no usable question.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"file not found: {path}") from None
    warnings: list[str] = []
    examples: list[Example] = []
    seen: set[str] = set()
    for n, item, problem in json_objects(text.splitlines()):
        if problem:
            warnings.append(f"{path.name}:{n}: {problem}, skipped")
            continue
        question = item.get("question")
        db = next((item[k] for k in _DB_KEYS if item.get(k)), None)
        if not isinstance(question, str) or not question.strip() or not isinstance(db, str):
            warnings.append(f"{path.name}:{n}: needs 'question' and 'db' (path or URL), skipped")
            continue
        if "://" not in db and not Path(db).is_absolute():
            db = str((path.parent / db))
        qid = str(item.get("id", item.get("question_id", f"line/{n}")))
        if qid in seen:
            warnings.append(f"{path.name}:{n}: duplicate id {qid!r}, skipped")
            continue
        seen.add(qid)
        gold = next((item[k] for k in _SQL_KEYS if isinstance(item.get(k), str) and item[k].strip()), None)
        difficulty = item.get("difficulty")
        if difficulty is None and gold:
            from quorumsql.benchmarks.hardness import spider_hardness

            difficulty = spider_hardness(gold)
        db_id = item.get("db_id") or (Path(db).stem if "://" not in db else db.rsplit("/", 1)[-1])
        examples.append(
            Example(
                id=qid, db_id=str(db_id), db=db, question=question, gold_sql=gold,
                evidence=item.get("evidence") or None,
                difficulty=str(difficulty) if difficulty is not None else None, dataset="jsonl",
            )
        )
    if not examples:
        raise InputError(f"{path}: no usable question ({len(warnings)} line(s) skipped)")
    return Dataset(kind="jsonl", root=str(path), examples=examples, warnings=warnings)


def load_dataset(kind: DatasetKind, data: str | Path, *, split: str = "dev") -> Dataset:
    """Load ``data`` with the loader for ``kind`` (``spider``, ``bird``, ``jsonl``).

    Raises:
        InputError: unknown kind or unreadable data.
    """
    data = Path(data)
    if kind == "spider":
        return load_spider(data, split=split)
    if kind == "bird":
        if data.is_file():
            return load_bird(data.parent, data.name)
        return load_bird(data)
    if kind == "jsonl":
        return load_jsonl(data)
    raise InputError(f"unknown dataset kind {kind!r}; use spider, bird or jsonl")
