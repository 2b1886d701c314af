"""The benchmark runner: resumable, one result line per finished question.

``RUN_DIR`` holds:

* ``run.json`` — configuration (system, preset or prompt, model names), dataset (kind, path,
  selection, hash of the selected questions), evaluation options, code version (package version,
  git commit and dirty flag), status (``running`` / ``finished`` / ``incomplete`` / ``stopped`` /
  ``interrupted`` / ``failed``), counts and the last message. Rewritten atomically: written to
  ``run.json.tmp``, fsync'ed, renamed over ``run.json``, directory fsync'ed.
* ``results.jsonl`` — one JSON object per question (see :func:`result_record` for the fields),
  appended with a single ``write`` and fsync'ed as soon as the question is scored. A killed run
  loses at most the questions in flight.
* ``run.lock`` — an advisory lock (``flock``) held while a run writes; a second run into the
  same directory is refused instead of answering the same questions twice. The kernel drops
  the lock when the process dies, so a killed run never leaves a stale lock.

Before anything is read on ``--resume``, the tail of ``results.jsonl`` is repaired: a last line
that is a complete JSON record lacking only its newline is kept (the newline is added); a
truncated partial line is dropped (the log says how many bytes) and its question is answered
again. ``--resume`` then skips every selected question that has a ``done`` record. Questions that
could not be attempted (database missing: ``skipped``), questions whose model call failed and
questions whose scoring crashed (neither recorded) are tried again. A resume must use the same
configuration: the system (name, preset or prompt, model name), the evaluation options and the
databases' limits are compared with ``run.json`` and any difference is refused, naming it, so
one run never mixes two configurations (the model endpoint's address may change). A model
endpoint that fails on ``max_model_failures`` questions in a row stops the run cleanly with a
message saying how to resume. Counts in ``run.json`` and in the final message are recounted from
``results.jsonl``, so they always match the file.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from quorumsql.benchmarks.datasets import Example, dataset_hash
from quorumsql.benchmarks.evaluators import Evaluator
from quorumsql.benchmarks.judge import Judge
from quorumsql.benchmarks.systems import Prediction, System
from quorumsql.db import Database, open_database
from quorumsql.errors import ConfigError, DatabaseError, ModelError, QuorumSQLError
from quorumsql.jsonl import json_objects

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: runs are not locked
    fcntl = None  # type: ignore[assignment]

RESULTS_FILE = "results.jsonl"
RUN_FILE = "run.json"
LOCK_FILE = "run.lock"
#: keys of ``run.json``'s ``config`` that change the answers (compared on ``--resume``)
RESULT_CONFIG_KEYS = ("query_timeout", "max_rows")
FORMAT_VERSION = 1


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def code_version() -> dict[str, Any]:
    """``{"quorumsql": version, "git_commit": sha | None, "git_dirty": bool | None}``."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        pkg = version("quorumsql")
    except PackageNotFoundError:  # pragma: no cover - running from a plain checkout
        pkg = None
    here = Path(__file__).resolve().parent
    commit = dirty = None
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10
        ).stdout.strip() or None
        if commit:
            status = subprocess.run(
                ["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                capture_output=True, text=True, timeout=10,
            ).stdout
            dirty = bool(status.strip())
    except (OSError, subprocess.SubprocessError):
        pass
    return {"quorumsql": pkg, "git_commit": commit, "git_dirty": dirty}


# --------------------------------------------------------------------------- results file
def read_results(run_dir: str | Path) -> tuple[list[dict[str, Any]], list[str]]:
    """Records of ``RUN_DIR/results.jsonl`` and warnings about unreadable lines.

    Malformed lines (e.g. the truncated last line of a killed run) are skipped and reported.
    When an id occurs several times (a question skipped, then done after resuming), the last
    record wins; order is that of first appearance.
    """
    path = Path(run_dir) / RESULTS_FILE
    warnings: list[str] = []
    by_id: dict[str, dict[str, Any]] = {}
    if not path.is_file():
        return [], warnings
    with open(path, encoding="utf-8", errors="replace") as fh:
        for n, rec, problem in json_objects(fh):
            if problem and problem.startswith("not JSON"):
                warnings.append(f"{path}:{n}: unreadable line skipped (truncated write?)")
                continue
            if not rec or "id" not in rec:
                warnings.append(f"{path}:{n}: not a result record, skipped")
                continue
            by_id[str(rec["id"])] = rec
    return list(by_id.values()), warnings


def _is_complete_record(data: bytes) -> bool:
    """True when ``data`` (one line, no newline) is a whole JSON object.

    A record is written as one JSON object per line, so no strict prefix of it parses: a cut
    inside a multi-byte character fails to decode, any other cut leaves the object unclosed.
    """
    try:
        return isinstance(json.loads(data.decode("utf-8")), dict)
    except (UnicodeDecodeError, ValueError):
        return False


def repair_results_tail(path: str | Path) -> str | None:
    """Make the last line of a results file whole; call it before reading the file to resume.

    A run killed while appending leaves one of three tails: the record and its newline (nothing
    to do), the complete record without its newline (kept: the newline is added, so the next
    record does not glue onto it), or a truncated prefix of the record (dropped, so its question
    is answered again). The file is fsync'ed after a change.

    Args:
        path: the ``results.jsonl`` file (missing or empty: nothing to do).

    Returns:
        None when nothing was changed, else one line saying what was repaired (with the number
        of bytes dropped).

    Raises:
        OSError: the file cannot be read or written.
    """
    path = Path(path)
    if not path.is_file():
        return None
    with open(path, "rb+") as fh:
        size = fh.seek(0, os.SEEK_END)
        if size == 0:
            return None
        fh.seek(size - 1)
        if fh.read(1) == b"\n":
            return None
        start, pos = 0, size
        while pos > 0:  # walk back to the last newline, 64 KiB at a time
            step = min(65536, pos)
            pos -= step
            fh.seek(pos)
            nl = fh.read(step).rfind(b"\n")
            if nl >= 0:
                start = pos + nl + 1
                break
        fh.seek(start)
        tail = fh.read()
        if _is_complete_record(tail):
            fh.seek(0, os.SEEK_END)
            fh.write(b"\n")
            message = (f"{path}: the last result was complete but lacked its newline "
                       "(interrupted run); kept it and added the newline")
        else:
            fh.truncate(start)
            message = (f"{path}: dropped a partial last line of {len(tail)} bytes left by an "
                       "interrupted run; its question will be answered again")
        fh.flush()
        os.fsync(fh.fileno())
    return message


def _fsync_dir(path: Path) -> None:
    """Persist a directory entry (a created or renamed file); a no-op where unsupported."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class ResultWriter:
    """Appends one JSON line per result and fsyncs it before returning (thread-safe).

    Each record goes to the file in one ``write`` on an ``O_APPEND`` descriptor, so an
    interruption leaves either the whole line or, at worst, a prefix that
    :func:`repair_results_tail` drops. When the write fails (disk full), the file is cut back to
    its previous length and the ``OSError`` is raised.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        created = not path.exists()
        self._fd: int | None = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        if created:
            _fsync_dir(path.parent)

    def write(self, record: dict[str, Any]) -> None:
        """Append ``record`` as one line; returns once it is on disk.

        Raises:
            OSError: the line could not be written (the file is left as it was).
        """
        data = (json.dumps(record, ensure_ascii=False, default=str) + "\n").encode("utf-8")
        with self._lock:
            if self._fd is None:
                raise ValueError("result writer is closed")
            before = os.fstat(self._fd).st_size
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(self._fd, view):]
                os.fsync(self._fd)
            except OSError:
                try:
                    os.ftruncate(self._fd, before)
                except OSError:
                    pass
                raise

    def close(self) -> None:
        """Close the file (idempotent)."""
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


def write_json_atomic(path: Path, doc: dict[str, Any]) -> None:
    """Replace ``path`` by ``doc`` so that a crash leaves the old or the new file, never a mix.

    Written to ``<name>.tmp`` (callers hold the run lock, so the name is free), fsync'ed,
    renamed over ``path``, then the directory is fsync'ed so the rename survives a power cut.
    """
    tmp = path.with_name(path.name + ".tmp")
    data = json.dumps(doc, indent=2, ensure_ascii=False, default=str).encode("utf-8")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    _fsync_dir(path.parent)


class RunLock:
    """Exclusive advisory lock on ``RUN_DIR/run.lock`` (``fcntl.flock``; none where missing).

    Raises:
        ConfigError: (from :meth:`acquire`) another process, or another runner in this one, is
            writing into the directory.
    """

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> None:
        if fcntl is None:
            return
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
            os.close(fd)
            raise ConfigError(
                f"another benchmark run{f' (pid {holder})' if holder else ''} is writing into "
                f"{self.path.parent}; wait for it to end or choose another --out"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)  # named in the refusal of a second run
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            try:
                os.ftruncate(self._fd, 0)  # no stale pid once the run is over
            except OSError:
                pass
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None


# --------------------------------------------------------------------------- records
def result_record(
    ex: Example,
    pred: Prediction | None,
    *,
    status: str,
    metrics: dict[str, Any] | None = None,
    pred_exec: dict[str, Any] | None = None,
    gold_exec: dict[str, Any] | None = None,
    judge: dict[str, Any] | None = None,
    error: str | None = None,
    seconds: float = 0.0,
    system_seconds: float | None = None,
) -> dict[str, Any]:
    """One ``results.jsonl`` line.

    Fields: ``id``, ``db_id``, ``question``, ``evidence``, ``difficulty``, ``gold_sql``,
    ``status`` (``done`` | ``skipped``), ``pred_sql``, ``candidates``, ``agreement``,
    ``decided_by`` (``vote`` | ``selector`` | ``none``; None for baselines),
    ``metrics`` (``ex``, ``ex_bird``, ``ex_spider``, ``soft_f1``, optional ``rves``, ``qse``,
    ``sse``), ``pred_exec`` / ``gold_exec`` (status, error, rows, seconds), ``judge`` (reasons),
    ``usage`` (prompt_tokens, completion_tokens, calls, model seconds), ``llm_calls``,
    ``system_seconds`` (wall clock of the system answering the question, measured by the
    runner around ``System.predict``: no gold execution, scoring or judge; None when the
    question was not attempted), ``seconds`` (wall clock of the whole question, evaluation
    included; kept with this meaning so that older readers still work), ``error``,
    ``finished_at``.
    """
    usage = pred.usage if pred else None
    return {
        "id": ex.id,
        "db_id": ex.db_id,
        "question": ex.question,
        "evidence": ex.evidence,
        "difficulty": ex.difficulty,
        "gold_sql": ex.gold_sql,
        "status": status,
        "pred_sql": pred.sql if pred else None,
        "candidates": pred.candidates if pred else [],
        "agreement": pred.agreement if pred else None,
        "decided_by": pred.decided_by if pred else None,
        "metrics": metrics or {},
        "pred_exec": pred_exec,
        "gold_exec": gold_exec,
        "judge": judge,
        "usage": usage.model_dump() if usage else None,
        "llm_calls": usage.calls if usage else 0,
        "system_seconds": None if system_seconds is None else round(system_seconds, 3),
        "seconds": round(seconds, 3),
        "error": error if error is not None else (pred.error if pred else None),
        "finished_at": _now(),
    }


class RunOutcome(BaseModel):
    """What :meth:`BenchmarkRunner.run` did.

    Attributes:
        status: ``finished`` (every question has a result), ``incomplete`` (some questions were
            skipped, failed with model errors or failed while being scored, and will be retried
            by ``--resume``), ``stopped`` (the model endpoint, or scoring, kept failing).
        done: selected questions with a ``done`` record in ``results.jsonl`` (all sessions),
            counted from the file.
        done_now: questions finished in this session.
        skipped: questions that could not be attempted (database missing or unreadable).
        model_failures: questions whose model call failed in this session.
        errors: questions whose scoring raised an unexpected error in this session (not
            recorded; the error is logged).
        message: one line for the user.
        warnings: repairs of the results file and unreadable lines.
    """

    status: str
    done: int = 0
    done_now: int = 0
    skipped: int = 0
    model_failures: int = 0
    errors: int = 0
    message: str = ""
    warnings: list[str] = Field(default_factory=list)


def _model_id(described: Any) -> Any:
    """The model name of a :func:`~quorumsql.llm.describe_model` string, without its endpoint."""
    return described.split(" @ ", 1)[0] if isinstance(described, str) else described


def _flatten(doc: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(doc, dict):
        out: dict[str, Any] = {}
        for key, value in doc.items():
            out.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: doc}


def result_config(doc: dict[str, Any]) -> dict[str, Any]:
    """What in a ``run.json`` decides the results, flattened to dotted keys.

    The system's description (name, kind, preset or prompt settings, model name), the
    evaluation options (headline EX, query timeout, DISTINCT handling, R-VES iterations, judge
    model name) and the limits of the databases the system queries (``config.query_timeout``,
    ``config.max_rows``). Model endpoints are reduced to the model's name: the embedded server
    listens on a new port after a restart, and that does not change the answers.
    """
    system = dict(doc.get("system") or {})
    if "model" in system:
        system["model"] = _model_id(system["model"])
    evaluation = dict(doc.get("evaluation") or {})
    if "judge" in evaluation:
        evaluation["judge"] = _model_id(evaluation["judge"])
    config = doc.get("config") or {}
    databases = {k: config[k] for k in RESULT_CONFIG_KEYS if k in config}
    return _flatten({"system": system, "evaluation": evaluation, "config": databases})


def config_differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """``key: old -> new`` for every result-deciding setting that differs between two run docs.

    Only keys present in both are compared, so a ``run.json`` written by an older version
    (with fewer fields) can still be resumed.
    """
    a, b = result_config(old), result_config(new)
    return [f"{k}: {a[k]!r} -> {b[k]!r}" for k in sorted(a.keys() & b.keys()) if a[k] != b[k]]


def _tally(run_dir: Path, selected: set[str]) -> tuple[int, list[float]]:
    """``(done, ex values)`` of the selected questions, read back from ``results.jsonl``."""
    records, _ = read_results(run_dir)
    done = [r for r in records if r.get("status") == "done" and str(r.get("id")) in selected]
    ex = [r["metrics"]["ex"] for r in done if (r.get("metrics") or {}).get("ex") is not None]
    return len(done), ex


class BenchmarkRunner:
    """Runs a :class:`~quorumsql.benchmarks.systems.System` over questions into ``RUN_DIR``.

    Args:
        system: what answers the questions.
        evaluator: execution scoring (BIRD / Spider semantics).
        run_dir: output directory (created).
        judge: optional LLM judge (QSE always, SSE when there is gold SQL).
        concurrency: questions answered at once (threads; useful with remote endpoints).
        max_model_failures: consecutive model failures that stop the run.
        descriptions: ``{db_id: {(table, column): text}}`` shown to the judge (BIRD).
        query_timeout, max_rows: settings of the databases opened for the system.
        progress: show a tqdm progress bar (running EX and ETA) on stderr.
        log: where one-line notices go (default: stderr).
    """

    def __init__(
        self,
        system: System,
        evaluator: Evaluator,
        run_dir: str | Path,
        *,
        judge: Judge | None = None,
        concurrency: int = 1,
        max_model_failures: int = 3,
        descriptions: dict[str, dict[tuple[str, str], str]] | None = None,
        query_timeout: float = 30.0,
        max_rows: int = 10_000,
        progress: bool = True,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.system = system
        self.evaluator = evaluator
        self.run_dir = Path(run_dir)
        self.judge = judge
        self.concurrency = max(1, int(concurrency))
        self.max_model_failures = max(1, max_model_failures)
        self.descriptions = descriptions or {}
        self.query_timeout = query_timeout
        self.max_rows = max_rows
        self.progress = progress
        self.log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
        self._dbs: dict[str, Database | DatabaseError] = {}
        self._db_lock = threading.Lock()

    # -- databases ---------------------------------------------------------------------
    def _database(self, spec: str) -> Database:
        with self._db_lock:
            cached = self._dbs.get(spec)
            if cached is None:
                try:
                    cached = open_database(spec, query_timeout=self.query_timeout, max_rows=self.max_rows)
                except DatabaseError as exc:
                    cached = exc
                self._dbs[spec] = cached
        if isinstance(cached, DatabaseError):
            raise cached
        return cached

    # -- one question -------------------------------------------------------------------
    def run_one(self, ex: Example) -> dict[str, Any]:
        """Answer and score one question; returns its result record.

        The system's own time (``system_seconds``) is the wall clock around
        ``System.predict``; gold execution, scoring and the judge come after it and only count
        in ``seconds``.

        Raises:
            ModelError: the system's model failed (the question is not recorded).
            Exception: whatever scoring raised unexpectedly (the run logs it and records
                nothing for the question); errors of the system itself are recorded instead.
        """
        start = time.monotonic()
        try:
            db = self._database(ex.db)
            db.schema()
        except DatabaseError as exc:
            return result_record(ex, None, status="skipped", error=f"database unavailable: {exc}",
                                 seconds=time.monotonic() - start)
        asked = time.monotonic()
        try:
            pred = self.system.predict(ex.question, db, evidence=ex.evidence, db_id=ex.db_id)
        except ModelError:
            raise
        except QuorumSQLError as exc:
            pred = Prediction(error=f"{type(exc).__name__}: {exc}")
        except Exception as exc:  # a bug on one question must not end the run
            pred = Prediction(error=f"internal error: {type(exc).__name__}: {exc}")
        system_seconds = time.monotonic() - asked
        ev = self.evaluator.evaluate(db, pred.sql, ex.gold_sql)
        metrics: dict[str, Any] = dict(ev.metrics)
        judge_info = None
        if self.judge is not None:
            judge_info = {}
            try:
                from quorumsql.schema_repr import to_mschema

                schema_text = to_mschema(db.schema(), descriptions=self.descriptions.get(ex.db_id))
                qse = self.judge.qse(ex.question, pred.sql, schema_text, evidence=ex.evidence)
                metrics["qse"] = qse.score
                judge_info["qse"] = qse.reason
                judge_usage = qse.usage
                if ex.gold_sql:
                    sse = self.judge.sse(pred.sql, ex.gold_sql, schema_text=schema_text, dialect=db.dialect)
                    metrics["sse"] = sse.score
                    judge_info["sse"] = sse.reason
                    judge_usage = judge_usage + sse.usage
                judge_info["usage"] = judge_usage.model_dump()
            except ModelError as exc:
                judge_info["error"] = str(exc)
        return result_record(
            ex, pred, status="done", metrics=metrics,
            pred_exec=ev.pred.model_dump(), gold_exec=ev.gold.model_dump() if ev.gold else None,
            judge=judge_info, seconds=time.monotonic() - start, system_seconds=system_seconds,
        )

    # -- the run ------------------------------------------------------------------------
    def run(
        self,
        examples: Sequence[Example],
        *,
        resume: bool = False,
        dataset_info: dict[str, Any] | None = None,
        extra_config: dict[str, Any] | None = None,
    ) -> RunOutcome:
        """Run ``examples`` into ``RUN_DIR``.

        Args:
            examples: the selected questions (ids must be unique).
            resume: continue an existing run (same configuration and same selected questions).
            dataset_info: recorded under ``dataset`` in ``run.json`` (kind, path, selection).
            extra_config: recorded under ``config`` in ``run.json``.

        Raises:
            ConfigError: ``RUN_DIR`` already holds results and ``resume`` is False; holds a
                different run (other system, configuration or questions) when resuming; is
                being written by another run; or cannot be written (disk full, permissions:
                ``run.json`` then records ``failed``).
            KeyboardInterrupt: re-raised after ``run.json`` records the interruption.
        """
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot create the run directory {self.run_dir}: {exc}") from None
        ids = [e.id for e in examples]
        if len(set(ids)) != len(ids):
            raise ConfigError("question ids are not unique in the selected dataset")
        lock = RunLock(self.run_dir)
        lock.acquire()
        try:
            return self._run_locked(examples, ids, resume=resume, dataset_info=dataset_info,
                                    extra_config=extra_config)
        finally:
            lock.release()

    def _run_locked(
        self,
        examples: Sequence[Example],
        ids: list[str],
        *,
        resume: bool,
        dataset_info: dict[str, Any] | None,
        extra_config: dict[str, Any] | None,
    ) -> RunOutcome:
        results_path = self.run_dir / RESULTS_FILE
        run_path = self.run_dir / RUN_FILE
        ds_hash = dataset_hash(examples)
        selected = set(ids)
        warnings: list[str] = []
        previous: dict[str, Any] | None = None
        if run_path.is_file():
            try:
                previous = json.loads(run_path.read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                warnings.append(f"{run_path} is unreadable ({exc}); the configuration of the "
                                "earlier session cannot be checked")
            if previous is not None and not isinstance(previous, dict):
                previous = None
        has_results = results_path.is_file() and results_path.stat().st_size > 0
        if (has_results or previous) and not resume:
            n = len(read_results(self.run_dir)[0])
            raise ConfigError(
                f"{self.run_dir} already holds a run ({n} result(s)); "
                "pass --resume to continue it or choose another --out"
            )
        description = self.system.describe()
        doc: dict[str, Any] = dict(previous or {})
        doc.update({
            "format": FORMAT_VERSION,
            "created_at": doc.get("created_at", _now()),
            "updated_at": _now(),
            "status": "running",
            "command": doc.get("command", sys.argv),
            "system": description,
            "dataset": {**(dataset_info or {}), "n_questions": len(examples), "hash": ds_hash,
                        "ids": ids},
            "evaluation": {
                "primary_ex": self.evaluator.primary, "timeout": self.evaluator.timeout,
                "keep_distinct": self.evaluator.keep_distinct,
                "ves_iterations": self.evaluator.ves_iterations,
                "judge": None if self.judge is None else _model_name(self.judge.llm),
            },
            "config": {**(extra_config or {}), "concurrency": self.concurrency,
                       "query_timeout": self.query_timeout, "max_rows": self.max_rows},
            "code": code_version(),
            "python": sys.version.split()[0],
            "platform": platform.platform(),
        })
        if resume and previous:
            old_sys = (previous.get("system") or {}).get("system")
            old_hash = (previous.get("dataset") or {}).get("hash")
            if old_sys and old_sys != description.get("system"):
                raise ConfigError(
                    f"{self.run_dir} holds a run of {old_sys!r}, not {description.get('system')!r}; "
                    "resume with the same options or choose another --out"
                )
            if old_hash and old_hash != ds_hash:
                raise ConfigError(
                    f"{self.run_dir} was run on other questions (dataset hash {old_hash} != {ds_hash}); "
                    "resume with the same --dataset/--data/--limit/--sample/--seed/--db-ids"
                )
            changed = config_differences(previous, doc)
            if changed:
                raise ConfigError(
                    f"{self.run_dir} was run with another configuration ({'; '.join(changed)}); "
                    "resume with the same options and model, or choose another --out"
                )
        # repair the tail before reading: a complete last record keeps its place
        try:
            repaired = repair_results_tail(results_path)
        except OSError as exc:
            raise ConfigError(f"cannot repair {results_path}: {exc}") from None
        if repaired:
            warnings.append(repaired)
        existing, unreadable = read_results(self.run_dir)
        warnings += unreadable
        for w in warnings:
            self.log(f"warning: {w}")
        done_ids = {str(r["id"]) for r in existing if r.get("status") == "done"} & selected
        todo = [e for e in examples if e.id not in done_ids]
        ex_values = [r["metrics"]["ex"] for r in existing
                     if r.get("status") == "done" and str(r.get("id")) in selected
                     and (r.get("metrics") or {}).get("ex") is not None]
        if resume and previous:
            doc.setdefault("resumed_at", []).append(_now())
        try:
            write_json_atomic(run_path, doc)
        except OSError as exc:
            raise ConfigError(f"cannot write {run_path}: {exc}") from None
        if done_ids:
            self.log(f"resuming: {len(done_ids)} of {len(examples)} questions already done")

        outcome = RunOutcome(status="running", warnings=warnings)
        bar = None
        if self.progress:
            from tqdm import tqdm

            bar = tqdm(total=len(examples), initial=len(done_ids), unit="q",
                       desc=description.get("system", "bench"), file=sys.stderr, dynamic_ncols=True)
            if ex_values:
                bar.set_postfix_str(f"EX {100 * sum(ex_values) / len(ex_values):.1f}%")
        writer: ResultWriter | None = None
        pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="bench")
        try:
            writer = ResultWriter(results_path)
            stop_reason = self._loop(todo, pool, writer, outcome, ex_values, bar)
        except KeyboardInterrupt:
            pool.shutdown(wait=False, cancel_futures=True)
            self._close(writer, bar)
            done, _ = _tally(self.run_dir, selected)
            doc.update(status="interrupted", updated_at=_now(),
                       counts={"done": done, "total": len(examples)},
                       message=f"interrupted after {done} of {len(examples)} questions; rerun with --resume")
            try:
                write_json_atomic(run_path, doc)
            except OSError:  # the interruption is what the caller must see
                pass
            raise
        except BaseException as exc:
            pool.shutdown(wait=False, cancel_futures=True)
            self._close(writer, bar)
            done, _ = _tally(self.run_dir, selected)
            message = (f"failed after {done} of {len(examples)} questions: {type(exc).__name__}: {exc}; "
                       "finished questions are saved, rerun with --resume once the cause is fixed")
            doc.update(status="failed", updated_at=_now(), counts={"done": done, "total": len(examples)},
                       message=message)
            try:
                write_json_atomic(run_path, doc)
            except OSError:
                pass
            if isinstance(exc, OSError):
                raise ConfigError(f"cannot write the results in {self.run_dir}: {exc}; {message}") from exc
            raise
        pool.shutdown(wait=True)
        self._close(writer, bar)

        outcome.done, ex_values = _tally(self.run_dir, selected)
        remaining = len(examples) - outcome.done
        if stop_reason:
            outcome.status = "stopped"
            outcome.message = (f"{stop_reason}. {outcome.done} of {len(examples)} questions done; "
                               "rerun the same command with --resume to continue.")
        elif remaining:
            outcome.status = "incomplete"
            parts = []
            if outcome.skipped:
                parts.append(f"{outcome.skipped} skipped (database unavailable)")
            if outcome.model_failures:
                parts.append(f"{outcome.model_failures} failed with model errors")
            if outcome.errors:
                parts.append(f"{outcome.errors} failed while being scored")
            outcome.message = (f"{outcome.done} of {len(examples)} questions done; "
                               f"{', '.join(parts) or f'{remaining} not done'}; "
                               "--resume retries them.")
        else:
            outcome.status = "finished"
            ex_txt = f", EX {100 * sum(ex_values) / len(ex_values):.1f}%" if ex_values else ""
            outcome.message = f"all {len(examples)} questions done{ex_txt}"
        doc.update(status=outcome.status, updated_at=_now(), message=outcome.message,
                   counts={"done": outcome.done, "total": len(examples), "skipped": outcome.skipped,
                           "model_failures_last_session": outcome.model_failures,
                           "errors_last_session": outcome.errors})
        write_json_atomic(run_path, doc)
        return outcome

    def _loop(
        self,
        todo: list[Example],
        pool: ThreadPoolExecutor,
        writer: ResultWriter,
        outcome: RunOutcome,
        ex_values: list[float],
        bar: Any,
    ) -> str | None:
        """Answer ``todo`` with at most ``concurrency`` questions in flight; returns why it stopped early."""
        consecutive_model = consecutive_errors = 0
        stop_reason: str | None = None
        pending: dict[Future, Example] = {}
        queue = list(todo)
        while queue or pending:
            while queue and len(pending) < self.concurrency and stop_reason is None:
                ex = queue.pop(0)
                pending[pool.submit(self.run_one, ex)] = ex
            if not pending:
                break
            finished, _ = wait(list(pending), return_when=FIRST_COMPLETED)
            for fut in finished:
                ex = pending.pop(fut)
                try:
                    record = fut.result()
                except ModelError as exc:
                    consecutive_model += 1
                    outcome.model_failures += 1
                    self.log(f"model error on question {ex.id}: {exc}")
                    if consecutive_model >= self.max_model_failures and stop_reason is None:
                        stop_reason = (f"the model failed on {consecutive_model} questions in a row "
                                       f"(last: {exc}); stopping")
                        queue.clear()
                    continue
                except Exception as exc:  # scoring crashed: record nothing, --resume retries it
                    consecutive_errors += 1
                    outcome.errors += 1
                    self.log(f"error while scoring question {ex.id} (not recorded): "
                             f"{type(exc).__name__}: {exc}")
                    if consecutive_errors >= self.max_model_failures and stop_reason is None:
                        stop_reason = (f"scoring failed on {consecutive_errors} questions in a row "
                                       f"(last: {type(exc).__name__}: {exc}); stopping")
                        queue.clear()
                    continue
                consecutive_model = consecutive_errors = 0
                writer.write(record)
                if record["status"] == "done":
                    outcome.done_now += 1
                    ex_val = record["metrics"].get("ex")
                    if ex_val is not None:
                        ex_values.append(ex_val)
                    if bar is not None:
                        bar.update(1)
                        if ex_values:
                            bar.set_postfix_str(f"EX {100 * sum(ex_values) / len(ex_values):.1f}%")
                else:
                    outcome.skipped += 1
                    self.log(f"skipped question {ex.id}: {record['error']}")
        return stop_reason

    @staticmethod
    def _close(writer: ResultWriter | None, bar: Any) -> None:
        if writer is not None:
            writer.close()
        if bar is not None:
            bar.close()


def _model_name(llm) -> str:
    from quorumsql.llm import describe_model

    return describe_model(llm)
