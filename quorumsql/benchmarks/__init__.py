"""Benchmark harness: Spider / BIRD / JSONL loaders, official-equivalent evaluators, a resumable
runner, baselines, an LLM judge (SQLord's QSE / SSE) and reports.

CLI: ``quorumsql bench`` and ``quorumsql report`` (see :mod:`quorumsql.benchmarks.cli`).
"""

from quorumsql.benchmarks.datasets import (
    Dataset, Example, dataset_hash, load_bird, load_bird_descriptions, load_dataset, load_jsonl,
    load_spider,
)
from quorumsql.benchmarks.evaluators import (
    Evaluation, Evaluator, bird_ex, order_matters, remove_distinct, rves_reward, rves_score,
    soft_f1, spider_ex,
)
from quorumsql.benchmarks.hardness import spider_hardness
from quorumsql.benchmarks.judge import Judge, Verdict
from quorumsql.benchmarks.report import load_run, summarize, write_report
from quorumsql.benchmarks.runner import BenchmarkRunner, RunOutcome, read_results
from quorumsql.benchmarks.systems import BASELINES, BaselineSystem, PipelineSystem, Prediction

__all__ = [
    "BASELINES", "BaselineSystem", "BenchmarkRunner", "Dataset", "Evaluation", "Evaluator",
    "Example", "Judge", "PipelineSystem", "Prediction", "RunOutcome", "Verdict", "bird_ex",
    "dataset_hash", "load_bird", "load_bird_descriptions", "load_dataset", "load_jsonl", "load_run",
    "load_spider", "order_matters", "read_results", "remove_distinct", "rves_reward", "rves_score",
    "soft_f1", "spider_ex", "spider_hardness", "summarize", "write_report",
]
