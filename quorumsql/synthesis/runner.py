"""One synthesis run: seeds through the synthesis graph into a run directory, then the batch steps and exports.

:class:`SynthesisRunner` is what ``quorumsql synth`` does:

1. open ``OUT`` (:class:`~quorumsql.synthesis.store.RecordStore`: lock, option check on
   ``--resume``, repair of a half-written last line);
2. run :data:`quorumsql.graph.synthesis.synthesis` on every seed not done yet, one at a time,
   appending the seed's records as soon as it finishes, with a progress bar;
3. run the batch steps (:func:`quorumsql.synthesis.batch.finalize`) over every record in
   ``OUT``, append what they changed, and write the exports and ``summary.json``.

One bad seed never stops a run: an unexpected error becomes a dropped record (``crash``) with
its message. A model endpoint failure (:class:`~quorumsql.errors.ModelError`) is not recorded,
so ``--resume`` tries the seed again; after ``max_model_failures`` such seeds in a row the run
stops cleanly. Interrupted (Ctrl-C, SIGTERM), it leaves every finished seed on disk and
``run.json`` saying so.
"""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from quorumsql.errors import InputError, ModelError, QuorumSQLError
from quorumsql.graph.synthesis import SynthesisContext, synthesis
from quorumsql.synthesis import batch, export
from quorumsql.synthesis.records import SynthOptions, SynthRecord
from quorumsql.synthesis.seeds import Seed
from quorumsql.synthesis.store import RecordStore, done_seeds, now, read_records

REVIEW_FILE = "review.csv"
REVIEW_REPORT_FILE = "review_report.json"


class RunResult(BaseModel):
    """What :meth:`SynthesisRunner.run` did.

    Attributes:
        status: ``finished`` (every selected seed done), ``incomplete`` (some seeds failed with
            model errors; ``--resume`` retries them), ``stopped`` (the model kept failing) or
            ``failed`` (every selected seed was dropped because its database could not be
            found, opened or read: nothing was synthesized; the dropped records are kept).
        seeds: seeds selected; done: of those, done (all sessions); done_now: done in this session.
        model_failures: seeds whose model calls failed this session; crashes: seeds recorded
            as ``crash``; database_failures: selected seeds dropped on their database (all sessions).
        message: one line for people; summary: ``summary.json``; warnings: what went wrong
            on the side (repaired or unreadable lines).
    """

    status: Literal["finished", "incomplete", "stopped", "failed"] = "finished"
    seeds: int = 0
    done: int = 0
    done_now: int = 0
    model_failures: int = 0
    crashes: int = 0
    database_failures: int = 0
    message: str = ""
    summary: dict[str, Any] = Field(default_factory=dict)
    warnings: list[str] = Field(default_factory=list)


def seed_input(seed: Seed, attempt: str) -> dict[str, Any]:
    """The synthesis graph's input for ``seed`` (its fields and the session token)."""
    return {**seed.model_dump(exclude_none=True), "attempt": attempt}


def crash_record(seed: Seed, attempt: str, exc: BaseException, seconds: float) -> SynthRecord:
    """The one record of a seed whose processing raised ``exc``: dropped, with the error."""
    rec = SynthRecord(id=f"{seed.id}#0", seed_id=seed.id, attempt=attempt, seed_records=1, seed_kind=seed.kind,
                      seed_source=seed.source, seed_line=seed.line, seed_sql=seed.sql, seed_question=seed.question,
                      complexity=seed.complexity, db_id=seed.db_id, db=seed.db, sql=seed.sql, question=seed.question,
                      evidence=seed.evidence, seconds=round(seconds, 3), created_at=now())
    rec.drop("crash", f"{type(exc).__name__}: {str(exc)[:500]}")
    return rec


def schema_lookup(context: SynthesisContext) -> Callable[[SynthRecord], str | None]:
    """``record -> M-Schema of its database`` (cached per database; None when it cannot be read)."""
    cache: dict[str, str | None] = {}

    def schema_for(record: SynthRecord) -> str | None:
        if record.db not in cache:
            try:
                cache[record.db] = context.resources.schema_text(record.db, "mschema") if record.db else None
            except (QuorumSQLError, OSError):
                cache[record.db] = None
        return cache[record.db]

    return schema_for


def database_failures(records: Sequence[SynthRecord], seed_ids: Sequence[str]) -> list[SynthRecord]:
    """The first record of each seed in ``seed_ids`` whose every record was dropped on its database."""
    by_seed: dict[str, list[SynthRecord]] = {}
    for r in records:
        by_seed.setdefault(r.seed_id, []).append(r)
    return [by_seed[sid][0] for sid in dict.fromkeys(seed_ids)
            if by_seed.get(sid) and all(r.dropped_by == "database" for r in by_seed[sid])]


def merge(records: Sequence[SynthRecord], updated: Sequence[SynthRecord]) -> list[SynthRecord]:
    """``records`` with the versions in ``updated`` put in place (same ids, same order)."""
    newer = {r.id: r for r in updated}
    return [newer.get(r.id, r) for r in records]


class SynthesisRunner:
    """Runs seeds through the synthesis graph into a run directory (see the module docstring).

    Args:
        out: the run directory.
        context: settings, preset, models, databases, options, embedder.
        progress: show a progress bar on stderr.
        log: where warnings and notes go (default: stderr).
        max_model_failures: stop after this many seeds in a row whose model calls failed.
        dedup_threshold, clusters, per_cluster: the batch steps' settings
            (:func:`quorumsql.synthesis.batch.finalize`).
        sft_answer: the SFT assistant turn, ``cot`` or ``sql``.
        graph: the compiled synthesis graph (tests may pass another).
    """

    def __init__(self, out: str | Path, context: SynthesisContext, *, progress: bool = True,
                 log: Callable[[str], None] | None = None, max_model_failures: int = 3,
                 dedup_threshold: float = 0.95, clusters: int | None = None, per_cluster: int = 1,
                 sft_answer: Literal["cot", "sql"] = "cot", graph=synthesis) -> None:
        self.out = Path(out)
        self.context = context
        self.progress = progress
        self.log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
        self.max_model_failures = max(1, max_model_failures)
        self.dedup_threshold = dedup_threshold
        self.clusters = clusters
        self.per_cluster = per_cluster
        self.sft_answer = sft_answer
        self.graph = graph

    @property
    def options(self) -> SynthOptions:
        """The context's synthesis options."""
        return self.context.options

    def config(self, seeds_config: dict[str, Any]) -> dict[str, Any]:
        """This run's ``run.json`` config: options, preset and seed source (checked on ``--resume``)."""
        settings = self.context.settings
        model = settings.llm_model or ("embedded " + settings.embedded_model if settings.uses_embedded_model else "")
        return {"options": self.options.model_dump(mode="json"), "preset": self.context.preset.model_dump(mode="json"),
                "seeds": seeds_config, "model": model,
                "batch": {"dedup_threshold": self.dedup_threshold, "clusters": self.clusters,
                          "per_cluster": self.per_cluster, "sft_answer": self.sft_answer}}

    # -- the run --------------------------------------------------------------------------
    def run(self, seeds: Sequence[Seed], *, resume: bool = False,
            seeds_config: dict[str, Any] | None = None) -> RunResult:
        """Run ``seeds`` into the run directory, then the batch steps and the exports.

        Raises:
            InputError: seed ids are not unique.
            ConfigError: the directory is locked, holds a run (without ``resume``) or a run with
                other options (with ``resume``), or cannot be written.
            KeyboardInterrupt: re-raised once ``run.json`` records the interruption.
        """
        ids = [s.id for s in seeds]
        if len(set(ids)) != len(ids):
            raise InputError("seed ids are not unique (the same seed file given twice?)")
        result = RunResult(seeds=len(seeds))
        store = RecordStore(self.out).open(resume=resume, config=self.config(seeds_config or {}))
        try:
            result.warnings += store.warnings
            existing, unreadable = read_records(self.out)
            result.warnings += unreadable
            for w in result.warnings:
                self.log(f"warning: {w}")
            done = done_seeds(existing) & set(ids)
            todo = [s for s in seeds if s.id not in done]
            if done:
                self.log(f"resuming: {len(done)} of {len(seeds)} seeds already done")
            kept = sum(1 for r in existing if r.kept and r.seed_id in done)
            records_n = sum(1 for r in existing if r.seed_id in done)
            bar = None
            if self.progress:
                from tqdm import tqdm

                bar = tqdm(total=len(seeds), initial=len(done), unit="seed", desc="synth", file=sys.stderr,
                           dynamic_ncols=True)
                bar.set_postfix_str(f"kept {kept}/{records_n}")
            try:
                stop = self._loop(todo, store, result, bar, counts=[kept, records_n])
            except KeyboardInterrupt:
                if bar is not None:
                    bar.close()
                store.save(status="interrupted", message="interrupted; rerun the same command with --resume")
                raise
            if bar is not None:
                bar.close()
            records, more = read_records(self.out)
            result.warnings += more
            result.done = len(done_seeds(records) & set(ids))
            summary = self.finish(store, records, seeds=len(seeds))
            result.summary = summary
            remaining = len(seeds) - result.done
            failed = database_failures(records, ids)
            result.database_failures = len(failed)
            if seeds and len(failed) == len(seeds):
                result.status = "failed"
                reason = " ".join(str(failed[0].drop_reason or "no reason recorded").split())
                result.message = (f"every seed failed on its database ({len(seeds)} of {len(seeds)}; first: {reason}); "
                                  f"nothing was synthesized. The dropped records are in {self.out / 'records.jsonl'}.")
            elif stop:
                result.status = "stopped"
                result.message = f"{stop}. {result.done} of {len(seeds)} seeds done; rerun with --resume to continue."
            elif remaining:
                result.status = "incomplete"
                result.message = (f"{result.done} of {len(seeds)} seeds done; {remaining} failed with model errors "
                                  "and will be retried by --resume.")
            else:
                result.message = f"all {len(seeds)} seeds done"
            if result.status != "failed":
                result.message += (f" {summary['kept']} of {summary['records']} records kept; "
                                   f"exports in {self.out}")
            store.save(status=result.status, message=result.message,
                       counts={"seeds": len(seeds), "done": result.done, "records": summary["records"],
                               "kept": summary["kept"]})
        finally:
            store.close()
        return result

    def _loop(self, todo: Sequence[Seed], store: RecordStore, result: RunResult, bar: Any,
              counts: list[int]) -> str | None:
        """Run each seed and append its records; returns why it stopped early, if it did."""
        consecutive = 0
        for seed in todo:
            attempt = uuid.uuid4().hex[:12]
            start = time.monotonic()
            try:
                out = self.graph.invoke(seed_input(seed, attempt), context=self.context)
                records = list(out.get("records", []))
                if not records:
                    raise RuntimeError("the synthesis graph returned no record")
            except ModelError as exc:
                consecutive += 1
                result.model_failures += 1
                self.log(f"model error on seed {seed.id} (not recorded; --resume retries it): {exc}")
                if consecutive >= self.max_model_failures:
                    return f"the model failed on {consecutive} seeds in a row (last: {exc}); stopping"
                continue
            except KeyboardInterrupt:
                raise
            except Exception as exc:  # one bad seed never stops the run: record why it failed
                records = [crash_record(seed, attempt, exc, time.monotonic() - start)]
                result.crashes += 1
                self.log(f"seed {seed.id} failed and is recorded as dropped: {type(exc).__name__}: {exc}")
            consecutive = 0
            for rec in records:
                rec.attempt, rec.seed_records = attempt, len(records)
            store.append(records)
            result.done_now += 1
            counts[0] += sum(1 for r in records if r.kept)
            counts[1] += len(records)
            if bar is not None:
                bar.update(1)
                bar.set_postfix_str(f"kept {counts[0]}/{counts[1]}")
        return None

    # -- after the seeds --------------------------------------------------------------------
    def finish(self, store: RecordStore, records: Sequence[SynthRecord], *, seeds: int | None = None,
               review: dict[str, Any] | None = None) -> dict[str, Any]:
        """Batch steps over ``records``, their changes appended, then the exports and ``summary.json``.

        Returns:
            The summary (also written to ``OUT/summary.json``).
        """
        report = batch.finalize(records, self.context.get_embedder(), threshold=self.dedup_threshold,
                                clusters=self.clusters, per_cluster=self.per_cluster, seed=self.options.seed)
        store.append(report.changed)
        current = merge(records, report.changed)
        try:
            exports = export.export_all(current, self.out, schema_lookup(self.context), answer=self.sft_answer)
        except OSError as exc:
            from quorumsql.errors import ConfigError

            raise ConfigError(f"cannot write the exports in {self.out}: {exc}") from None
        if exports["no_schema"]:
            self.log(f"warning: {exports['no_schema']} kept record(s) left out of sft/alpaca: "
                     "their database's schema could not be read")
        summary = export.summarize(current, seeds=seeds, exports=exports,
                                   batch=report.model_dump(exclude={"changed"}), review=review)
        export.write_summary(self.out, summary)
        return summary

    # -- review -----------------------------------------------------------------------------
    def review_write(self, csv_path: str | Path | None = None) -> tuple[int, Path]:
        """Write the review CSV of the run (the records active selection marked).

        Runs the batch steps first when no record is marked yet (a run interrupted before them).

        Returns:
            ``(rows written, path)``.

        Raises:
            ConfigError: the directory holds no run or is locked by another process.
        """
        from quorumsql.synthesis.review import write_review_csv

        path = Path(csv_path) if csv_path else self.out / REVIEW_FILE
        with RecordStore(self.out).open(resume=True, config=None, existing_ok=True) as store:
            records, warnings = read_records(self.out)
            for w in [*store.warnings, *warnings]:
                self.log(f"warning: {w}")
            if not any(r.review_selected for r in records):
                report = batch.finalize(records, self.context.get_embedder(), threshold=self.dedup_threshold,
                                        clusters=self.clusters, per_cluster=self.per_cluster, seed=self.options.seed)
                store.append(report.changed)
                records = merge(records, report.changed)
            try:
                n = write_review_csv(records, path)
            except OSError as exc:
                from quorumsql.errors import ConfigError

                raise ConfigError(f"cannot write {path}: {exc}") from None
        return n, path

    def review_read(self, csv_path: str | Path | None = None):
        """Apply a filled-in review CSV, then redo the batch steps, the exports and ``summary.json``.

        Writes ``OUT/review_report.json`` (the :class:`~quorumsql.synthesis.review.ReviewOutcome`
        without its records).

        Returns:
            The :class:`~quorumsql.synthesis.review.ReviewOutcome`.

        Raises:
            InputError: the CSV is missing or not a review CSV.
            ConfigError: the directory holds no run or is locked by another process.
        """
        import json

        from quorumsql.agents import difficulty
        from quorumsql.synthesis.filters import execution_filter
        from quorumsql.synthesis.review import apply_review, read_review_csv

        path = Path(csv_path) if csv_path else self.out / REVIEW_FILE
        rows = read_review_csv(path)
        opts = self.options

        def check_sql(record: SynthRecord, sql: str):
            database = self.context.resources.database(record.db)
            return execution_filter(database, sql, timeout=opts.query_timeout, max_rows=opts.max_rows,
                                    keep_empty=opts.keep_empty)

        def grade(sql: str, dialect: str) -> str | None:
            try:
                return difficulty.component_difficulty(sql, dialect)
            except InputError:
                return None

        with RecordStore(self.out).open(resume=True, config=None, existing_ok=True) as store:
            records, warnings = read_records(self.out)
            for w in [*store.warnings, *warnings]:
                self.log(f"warning: {w}")
            outcome = apply_review(records, rows, check_sql=check_sql, grade=grade, threshold=opts.judge_threshold)
            store.append(outcome.updated)
            report = outcome.report()
            (self.out / REVIEW_REPORT_FILE).write_text(json.dumps(report, indent=2, ensure_ascii=False),
                                                       encoding="utf-8")
            self.finish(store, merge(records, outcome.updated), seeds=(store.doc.get("counts") or {}).get("seeds"),
                        review=report)
        return outcome
