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


def load_spider(root: str | Path, split: str = "dev") -> Dataset:
    """Load a Spider-layout directory (see module docstring).

    Args:
        root: directory holding ``<split>.json`` and ``database/``.
        split: file stem of the question file (``dev``, ``train_spider``, ...).

    Raises:
        InputError: missing question file, or a gold file whose length differs from it.
    """
    from quorumsql.benchmarks.hardness import spider_hardness

    root = Path(root)
    items = _read_json(root / f"{split}.json")
    if not isinstance(items, list):
        raise InputError(f"{root / f'{split}.json'}: expected a JSON list of questions")
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
        InputError: no question file.
    """
    root = Path(root)
    if question_file is None:
        question_file = next((n for n in BIRD_QUESTION_FILES if (root / n).is_file()), None)
        if question_file is None:
            raise InputError(f"no BIRD question file ({' or '.join(BIRD_QUESTION_FILES)}) in {root}")
    items = _read_json(root / question_file)
    if not isinstance(items, list):
        raise InputError(f"{root / question_file}: expected a JSON list of questions")
    db_root = root / "dev_databases"
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
