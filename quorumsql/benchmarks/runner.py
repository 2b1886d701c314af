"""The benchmark runner: resumable, one result line per finished question.

``RUN_DIR`` holds:

* ``run.json`` — configuration (system, preset or prompt, model names), dataset (kind, path,
  selection, hash of the selected questions), evaluation options, code version (package version,
  git commit and dirty flag), status (``running`` / ``finished`` / ``stopped`` /
  ``interrupted``), counts and the last message. Rewritten atomically.
* ``results.jsonl`` — one JSON object per question, appended, flushed and fsync'ed as soon as
  the question is finished (see :func:`result_record` for the fields). A killed run loses at
  most the questions in flight; a truncated last line is tolerated and cut on resume.

``--resume`` skips every question whose id has a ``done`` record. Questions that could not be
attempted (database missing: ``skipped``) and questions whose model call failed (not recorded)
are tried again. A model endpoint that fails on ``max_model_failures`` questions in a row stops
the run cleanly with a message saying how to resume.
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

RESULTS_FILE = "results.jsonl"
RUN_FILE = "run.json"
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
        for n, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                warnings.append(f"{path}:{n}: unreadable line skipped (truncated write?)")
                continue
            if not isinstance(rec, dict) or "id" not in rec:
                warnings.append(f"{path}:{n}: not a result record, skipped")
                continue
            by_id[str(rec["id"])] = rec
    return list(by_id.values()), warnings


def _repair_tail(path: Path) -> bool:
    """Cut a partial last line (no trailing newline); True when something was cut."""
    if not path.is_file() or path.stat().st_size == 0:
        return False
    with open(path, "rb+") as fh:
        data = fh.read()
        if data.endswith(b"\n"):
            return False
        keep = data.rfind(b"\n") + 1
        fh.seek(keep)
        fh.truncate()
        fh.flush()
        os.fsync(fh.fileno())
    return True


class ResultWriter:
    """Appends one JSON line per result, flushed and fsync'ed before returning (thread-safe)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._fh = open(path, "a", encoding="utf-8")

    def write(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, ensure_ascii=False, default=str)
        with self._lock:
            self._fh.write(line + "\n")
            self._fh.flush()
            os.fsync(self._fh.fileno())

    def close(self) -> None:
        with self._lock:
            self._fh.close()


def _write_json_atomic(path: Path, doc: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2, ensure_ascii=False, default=str), encoding="utf-8")
    os.replace(tmp, path)


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
) -> dict[str, Any]:
    """One ``results.jsonl`` line.

    Fields: ``id``, ``db_id``, ``question``, ``evidence``, ``difficulty``, ``gold_sql``,
    ``status`` (``done`` | ``skipped``), ``pred_sql``, ``candidates``, ``agreement``,
    ``metrics`` (``ex``, ``ex_bird``, ``ex_spider``, ``soft_f1``, optional ``rves``, ``qse``,
    ``sse``), ``pred_exec`` / ``gold_exec`` (status, error, rows, seconds), ``judge`` (reasons),
    ``usage`` (prompt_tokens, completion_tokens, calls, model seconds), ``llm_calls``,
    ``seconds`` (wall clock of the question, evaluation included), ``error``, ``finished_at``.
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
        "metrics": metrics or {},
        "pred_exec": pred_exec,
        "gold_exec": gold_exec,
        "judge": judge,
        "usage": usage.model_dump() if usage else None,
        "llm_calls": usage.calls if usage else 0,
        "system_seconds": pred.seconds if pred else None,
        "seconds": round(seconds, 3),
        "error": error if error is not None else (pred.error if pred else None),
        "finished_at": _now(),
    }


class RunOutcome(BaseModel):
    """What :func:`run_benchmark` did.

    Attributes:
        status: ``finished`` (every question has a result), ``incomplete`` (some questions were
            skipped or failed with model errors and will be retried by ``--resume``),
            ``stopped`` (the model endpoint kept failing) or ``interrupted``.
        done: questions with a result (including earlier sessions).
        done_now: questions finished in this session.
        skipped: questions that could not be attempted (database missing or unreadable).
        model_failures: questions whose model call failed in this session.
        message: one line for the user.
    """

    status: str
    done: int = 0
    done_now: int = 0
    skipped: int = 0
    model_failures: int = 0
    message: str = ""
    warnings: list[str] = Field(default_factory=list)


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

        Raises:
            ModelError: the system's model failed (the question is not recorded).
        """
        start = time.monotonic()
        try:
            db = self._database(ex.db)
            db.schema()
        except DatabaseError as exc:
            return result_record(ex, None, status="skipped", error=f"database unavailable: {exc}",
                                 seconds=time.monotonic() - start)
        try:
            pred = self.system.predict(ex.question, db, evidence=ex.evidence, db_id=ex.db_id)
        except ModelError:
            raise
        except QuorumSQLError as exc:
            pred = Prediction(error=f"{type(exc).__name__}: {exc}")
        except Exception as exc:  # a bug on one question must not end the run
            pred = Prediction(error=f"internal error: {type(exc).__name__}: {exc}")
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
                    sse = self.judge.sse(pred.sql, ex.gold_sql, schema_text=schema_text)
                    metrics["sse"] = sse.score
                    judge_info["sse"] = sse.reason
                    judge_usage = judge_usage + sse.usage
                judge_info["usage"] = judge_usage.model_dump()
            except ModelError as exc:
                judge_info["error"] = str(exc)
        return result_record(
            ex, pred, status="done", metrics=metrics,
            pred_exec=ev.pred.model_dump(), gold_exec=ev.gold.model_dump() if ev.gold else None,
            judge=judge_info, seconds=time.monotonic() - start,
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
            resume: continue an existing run (same system and same selected questions).
            dataset_info: recorded under ``dataset`` in ``run.json`` (kind, path, selection).
            extra_config: recorded under ``config`` in ``run.json``.

        Raises:
            ConfigError: ``RUN_DIR`` already holds results and ``resume`` is False, or holds a
                different run (other system or other questions) when resuming.
            KeyboardInterrupt: re-raised after ``run.json`` records the interruption.
        """
        self.run_dir.mkdir(parents=True, exist_ok=True)
        results_path = self.run_dir / RESULTS_FILE
        run_path = self.run_dir / RUN_FILE
        ids = [e.id for e in examples]
        if len(set(ids)) != len(ids):
            raise ConfigError("question ids are not unique in the selected dataset")
        ds_hash = dataset_hash(examples)
        previous: dict[str, Any] | None = None
        if run_path.is_file():
            try:
                previous = json.loads(run_path.read_text(encoding="utf-8"))
            except json.JSONDecodeError:
                previous = None
        existing, warnings = read_results(self.run_dir)
        if (existing or previous) and not resume:
            raise ConfigError(
                f"{self.run_dir} already holds a run ({len(existing)} result(s)); "
                "pass --resume to continue it or choose another --out"
            )
        description = self.system.describe()
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
        if _repair_tail(results_path):
            warnings.append(f"{results_path}: cut a partial last line left by an interrupted run")
        for w in warnings:
            self.log(f"warning: {w}")
        done_ids = {r["id"] for r in existing if r.get("status") == "done"}
        todo = [e for e in examples if e.id not in done_ids]
        selected = set(ids)
        ex_values = [r["metrics"].get("ex") for r in existing
                     if r.get("status") == "done" and r.get("id") in selected
                     and (r.get("metrics") or {}).get("ex") is not None]

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
            "config": {**(extra_config or {}), "concurrency": self.concurrency},
            "code": code_version(),
            "python": sys.version.split()[0],
            "platform": platform.platform(),
        })
        if resume and previous:
            doc.setdefault("resumed_at", []).append(_now())
        _write_json_atomic(run_path, doc)
        if done_ids:
            self.log(f"resuming: {len(examples) - len(todo)} of {len(examples)} questions already done")

        writer = ResultWriter(results_path)
        outcome = RunOutcome(status="running", warnings=warnings)
        consecutive = 0
        last_error = ""
        stop_reason: str | None = None
        bar = None
        if self.progress:
            from tqdm import tqdm

            bar = tqdm(total=len(examples), initial=len(examples) - len(todo), unit="q",
                       desc=description.get("system", "bench"), file=sys.stderr, dynamic_ncols=True)
            if ex_values:
                bar.set_postfix_str(f"EX {100 * sum(ex_values) / len(ex_values):.1f}%")

        pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="bench")
        pending: dict[Future, Example] = {}
        queue = list(todo)
        try:
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
                        consecutive += 1
                        outcome.model_failures += 1
                        last_error = str(exc)
                        self.log(f"model error on question {ex.id}: {exc}")
                        if consecutive >= self.max_model_failures and stop_reason is None:
                            stop_reason = (
                                f"the model failed on {consecutive} questions in a row "
                                f"(last: {last_error}); stopping"
                            )
                            queue.clear()
                        continue
                    consecutive = 0
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
        except KeyboardInterrupt:
            pool.shutdown(wait=False, cancel_futures=True)
            writer.close()
            if bar is not None:
                bar.close()
            done = len(done_ids) + outcome.done_now
            doc.update(status="interrupted", updated_at=_now(),
                       counts={"done": done, "total": len(examples)},
                       message=f"interrupted after {done} of {len(examples)} questions; rerun with --resume")
            _write_json_atomic(run_path, doc)
            raise
        pool.shutdown(wait=True)
        writer.close()
        if bar is not None:
            bar.close()

        outcome.done = len(done_ids) + outcome.done_now
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
            outcome.message = (f"{outcome.done} of {len(examples)} questions done; "
                               f"{', '.join(parts) or f'{remaining} not done'}; "
                               "--resume retries them.")
        else:
            outcome.status = "finished"
            ex_txt = f", EX {100 * sum(ex_values) / len(ex_values):.1f}%" if ex_values else ""
            outcome.message = f"all {len(examples)} questions done{ex_txt}"
        doc.update(status=outcome.status, updated_at=_now(), message=outcome.message,
                   counts={"done": outcome.done, "total": len(examples), "skipped": outcome.skipped,
                           "model_failures_last_session": outcome.model_failures})
        _write_json_atomic(run_path, doc)
        return outcome


def _model_name(llm) -> str:
    from quorumsql.llm import describe_model

    return describe_model(llm)
