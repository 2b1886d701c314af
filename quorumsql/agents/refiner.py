"""Refiner: execute a candidate, classify the outcome, and ask for a revision when needed.

Implements the intermediate correction of MCI-SQL (paper 004, section 3.3): the execution
state decides which instruction is injected into the same conversation (so the model keeps its
own reasoning and the prompt prefix stays cached):

* ``ok``: the result is plausible; stop.
* ``none``: every returned value is NULL; reconsider the column choice instead of filtering
  NULLs away.
* ``empty``: no rows, or a count of zero; check value formats against the stored data,
  consider LIKE for text, check join conditions.
* ``error``: the database rejected the query; the error message is fed back, with a
  schema-aware hint for unknown columns and tables (:mod:`quorumsql.agents.error_hints`).

QuorumSQL adds ``refused`` (not a single read query), ``timeout`` and ``no_sql`` (the reply held
no SQL). Which states trigger a revision, and how many rounds, comes from the preset.
"""

from __future__ import annotations

from collections.abc import Collection

from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from pydantic import BaseModel, ConfigDict, Field

from quorumsql.agents.aligner import align_column_names
from quorumsql.agents.error_hints import error_hint
from quorumsql.agents.refine_rules import RefineRule, learn_rules
from quorumsql.agents.sql_text import extract_sql, normalize_sql, result_key
from quorumsql.db import Database, ExecutionResult
from quorumsql.llm import Usage, invoke
from quorumsql.records import Attempt

_FORMAT = "Reply with only the corrected SQL in a ```sql block, no explanation."

FEEDBACK = {
    "error": "The query failed with this error:\n{error}\n{hint}Fix the query. " + _FORMAT,
    "refused": (
        "The query was refused: {error}\nOnly one read-only SELECT statement is allowed "
        "(no data changes, no several statements). " + _FORMAT
    ),
    "timeout": (
        "The query did not finish in time ({error}). Simplify it: check every join condition "
        "and avoid cross joins and correlated subqueries over large tables. " + _FORMAT
    ),
    "no_sql": "Your reply held no SQL query. " + _FORMAT,
    "empty": (
        "The query ran but returned no rows (or a count of 0). The filters are probably too "
        "strict: compare each literal with the example values of its column (format, case, zero "
        "padding such as '40' vs '0040'), use LIKE for partial text matches when the question "
        "allows it, and check the join conditions. If an empty result is truly the answer, "
        "repeat the same query. " + _FORMAT
    ),
    "none": (
        "The query ran but returned only NULL values. Do not simply filter NULLs out unless the "
        "question asks for it: the column is probably the wrong one; a similarly named column "
        "in another table may hold the values. If NULL is truly the answer, repeat the same "
        "query. " + _FORMAT
    ),
}


def classify(result: ExecutionResult) -> str:
    """The execution state of a result: ``ok``, ``none``, ``empty``, ``error``, ``refused`` or ``timeout``.

    A single row holding a single 0 from a ``COUNT`` is ``empty``, as in MCI-SQL.
    """
    if result.error is not None:
        return result.error_kind or "error"
    if not result.rows:
        return "empty"
    if all(v is None for row in result.rows for v in row):
        return "none"
    if (
        len(result.rows) == 1
        and len(result.rows[0]) == 1
        and result.rows[0][0] == 0
        and "count(" in result.sql.lower().replace(" ", "")
    ):
        return "empty"
    return "ok"


class Refinement(BaseModel):
    """Outcome of refining one candidate.

    Attributes:
        sql: final SQL (None if the model never produced one).
        state: execution state of ``sql``.
        result: its execution result (None when there was no SQL).
        attempts: each SQL tried with its state, first to last.
        usage: model cost of the revisions.
        rules: what the loop learned about the data (:mod:`quorumsql.agents.refine_rules`).
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    sql: str | None
    state: str
    result: ExecutionResult | None = None
    attempts: list[Attempt] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    rules: list[RefineRule] = Field(default_factory=list)

    @property
    def result_key(self) -> str | None:
        """Fingerprint of the result rows (None when the SQL did not run)."""
        if self.result is None or self.result.error is not None:
            return None
        return result_key(self.result.rows)


def _attempt(sql: str | None, state: str, result: ExecutionResult | None) -> Attempt:
    return Attempt(
        sql=sql,
        state=state,
        error=result.error if result is not None else None,
        row_count=len(result.rows) if result is not None else 0,
    )


def refine(
    llm: BaseChatModel,
    db: Database,
    sql: str | None,
    messages: list[BaseMessage],
    *,
    rounds: int = 3,
    refine_states: Collection[str] = ("error", "refused", "timeout", "no_sql"),
    max_tokens: int = 384,
    retry_temperature: float | None = 0.8,
    seed: int = 0,
) -> Refinement:
    """Execute ``sql`` and revise it while its state is in ``refine_states``.

    Args:
        llm: chat model (the same conversation continues, temperature 0).
        db: database to execute against (read-only).
        sql: the generator's SQL, or None if it produced none.
        messages: the generator's conversation ending with its reply.
        rounds: maximum number of revisions.
        refine_states: states that trigger a revision.
        max_tokens: completion budget per revision.
        retry_temperature: when the greedy revision repeats an SQL already tried, ask once
            more at this temperature (None: don't).
        seed: sampling seed of that retry (reproducible runs).

    Each round first tries the rule-based column alignment (:mod:`quorumsql.agents.aligner`)
    for errors; only when it cannot fix the query is the model asked.

    Returns:
        The final SQL, its state and result, every attempt, and the model cost. A revision that
        still repeats an SQL already tried ends the loop.

    Raises:
        ModelError: the model endpoint failed during a revision.
    """
    usage = Usage()
    history = list(messages)
    attempts: list[Attempt] = []
    tried: set[str] = set()
    current = sql
    revisions = 0
    while True:
        if current is None:
            state, result = "no_sql", None
        else:
            result = db.try_execute(current)
            state = classify(result)
            tried.add(normalize_sql(current, db.dialect))
        attempts.append(_attempt(current, state, result))
        if state not in refine_states or revisions >= rounds:
            break
        revisions += 1
        if state == "error" and current is not None:
            aligned = align_column_names(current, db.schema())
            if aligned is not None and normalize_sql(aligned, db.dialect) not in tried:
                current = aligned  # a rule fixed the names: no model call needed
                continue
        error = result.error if result is not None and result.error else ""
        hint = error_hint(current, error, db.schema()) if state == "error" and current else ""
        history.append(HumanMessage(FEEDBACK[state].format(error=error, hint=hint + "\n" if hint else "")))
        revised = None
        for temperature in (0.0, retry_temperature):
            options = {"seed": seed + revisions} if temperature else {}
            text, call_usage = invoke(llm, history, temperature=temperature, max_tokens=max_tokens, **options)
            usage = usage + call_usage
            revised = extract_sql(text)
            if revised is not None and normalize_sql(revised, db.dialect) not in tried:
                break  # something new to try
            if retry_temperature is None:
                break
        history.append(AIMessage(text))
        if revised is None and current is not None:
            break  # the model gave up; keep the last SQL
        if revised is not None and normalize_sql(revised, db.dialect) in tried:
            break  # the model stands by an SQL already tried
        current = revised
    # the final answer is the last SQL that ran, else the last SQL at all
    final = next(
        (a for a in reversed(attempts) if a.state in ("ok", "empty", "none")),
        attempts[-1],
    )
    final_result = result if final is attempts[-1] else db.try_execute(final.sql) if final.sql else None
    return Refinement(sql=final.sql, state=final.state, result=final_result, attempts=attempts, usage=usage,
                      rules=learn_rules(attempts, db.dialect))
