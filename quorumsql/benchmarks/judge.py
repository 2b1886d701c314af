"""The benchmark's LLM judge (SQLord's QSE and SSE modes).

The judge lives in :mod:`quorumsql.agents.judge` since the synthesis pipeline uses it too; this
module re-exports its public names so that ``quorumsql.benchmarks.judge`` keeps working.
"""

from quorumsql.agents.judge import QSE_SYSTEM, QSE_USER, SSE_SYSTEM, SSE_USER, Judge, Verdict, parse_verdict

__all__ = ["QSE_SYSTEM", "QSE_USER", "SSE_SYSTEM", "SSE_USER", "Judge", "Verdict", "parse_verdict"]
