"""LLM selector: when the vote over execution results is close, a model picks the result group.

XiYan-SQL's candidate selection (paper 003, section 6 and appendix E): candidates are grouped by
execution result, one representative per group is shown to a selection model together with the
context, and the model names the most reasonable one. XiYan fine-tunes its selection model; here
any chat model of the ``selector`` role is prompted instead, in our own words.

The prompt keeps the stable parts first (instructions, then the schema) so that prompt caches
can reuse them; the candidates follow, labelled ``A``, ``B``, ``C``... in vote order (``A`` is the
vote's winner), each with its SQL, how many candidates gave its result and its first rows; the
evidence and the question come last, and the model is asked for a single letter.

Replies are read leniently (:func:`parse_choice`): a letter alone, ``Answer: B``,
``candidate B``, or the SQL of one candidate repeated exactly. A reply that names no candidate
leaves the vote's winner in place and says so in :attr:`LlmChoice.reason`.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage
from pydantic import BaseModel, Field

from quorumsql.agents.generator import DIALECT_NAMES
from quorumsql.agents.sql_text import extract_sql, normalize_sql
from quorumsql.llm import Usage, invoke
from quorumsql.records import Candidate

SelectorMode = Literal["never", "on_tie", "always"]

# Completion budget of a selector call: a letter needs one token; a little room lets a model that
# insists on a sentence ("The answer is B.") or on repeating the SQL still be understood.
SELECTOR_MAX_TOKENS = 64
# Characters of one value shown in a candidate's rows, and rows shown per candidate.
VALUE_CHARS = 40
PREVIEW_ROWS = 5

SYSTEM_PROMPT = """You review candidate {dialect_name} queries that were written for the same question and pick the one that answers it correctly.
The candidates disagree: each one returned a different result. For each you see its SQL, how many of the generated candidates returned that result, what its correction found out about the data (when anything), and its first rows.
Check that the query reads the right tables and columns, joins them on the right keys, applies every condition the question states and no other, and returns exactly what the question asks for.
Reply with the letter of the best candidate only (for example: A), nothing else."""

USER_PROMPT = """【Schema】
{schema}

【Candidates】
{candidates}

【Evidence】
{evidence}

【Question】
{question}

Which candidate answers the question? Reply with one letter: {choices}."""


class LlmChoice(BaseModel):
    """What the LLM selector decided.

    Attributes:
        candidate_id: id of the selected candidate (the representative of the chosen group), or
            the vote's winner when the reply named no candidate.
        letter: letter of the chosen group, None when the reply named no candidate.
        letters: ``{letter: representative candidate id}`` as shown in the prompt.
        groups: candidate ids per group, in the order (and lettering) of the prompt.
        reason: one line explaining the outcome.
        overrode_vote: the chosen group is not the vote's winning group.
        reply: the model's raw reply.
        usage: cost of the call.
    """

    candidate_id: str | None
    letter: str | None = None
    letters: dict[str, str] = Field(default_factory=dict)
    groups: list[list[str]] = Field(default_factory=list)
    reason: str = ""
    overrode_vote: bool = False
    reply: str = ""
    usage: Usage = Field(default_factory=Usage)


def contested_groups(candidates: Sequence[Candidate], groups: Sequence[Sequence[str]]) -> list[list[Candidate]]:
    """The vote's result groups that may still win, best first, as candidates.

    A group whose result state is worse than the winner's (an empty or all-NULL result when a
    group with real rows exists) already lost to the vote's state rule and is not offered again.

    Args:
        candidates: the voting candidates (after duplicates took their original's result).
        groups: candidate ids per result group, best first
            (:attr:`quorumsql.agents.selector.Selection.groups`).

    Returns:
        Lists of candidates, one per group, in the vote's order; empty when nothing executed.
    """
    by_id = {c.id: c for c in candidates}
    resolved = [[by_id[i] for i in g if i in by_id] for g in groups]
    resolved = [g for g in resolved if g]
    if not resolved:
        return []
    winner_ok = resolved[0][0].status == "ok"
    return [g for g in resolved if (g[0].status == "ok") == winner_ok]


def vote_margin(groups: Sequence[Sequence[Any]], voters: int) -> float:
    """Winning share minus runner-up share (0..1) among ``groups``; 1.0 for a single group.

    Args:
        groups: result groups, the vote's winner first.
        voters: candidates that voted (the shares' denominator).
    """
    if not groups or voters <= 0:
        return 0.0
    runner_up = len(groups[1]) if len(groups) > 1 else 0
    return (len(groups[0]) - runner_up) / voters


def should_ask(
    groups: Sequence[Sequence[Any]], voters: int, *, mode: SelectorMode, margin: float
) -> tuple[bool, str]:
    """Whether the selector is consulted, and why (one line).

    ``never`` never asks; ``always`` asks whenever two or more groups are contested;
    ``on_tie`` asks when the contested groups are tied or the vote margin
    (:func:`vote_margin`) is under ``margin``. A single contested group leaves nothing to choose.

    Args:
        groups: the contested groups (:func:`contested_groups`), the vote's winner first.
        voters: candidates that voted.
        mode: the preset's ``llm_selector``.
        margin: the preset's ``selector_margin`` (0..1).
    """
    if mode == "never":
        return False, "the LLM selector is off"
    if len(groups) < 2:
        return False, "one result group left: nothing to choose"
    m = vote_margin(groups, voters)
    if mode == "always":
        return True, f"always asked ({len(groups)} result groups, margin {m:.2f})"
    if len(groups[0]) <= len(groups[1]):
        return True, f"a tie between {len(groups[0])}-candidate groups"
    if m < margin:
        return True, f"margin {m:.2f} under {margin:.2f}"
    return False, f"the vote is decisive (margin {m:.2f}, threshold {margin:.2f})"


def _cell(value: Any) -> str:
    text = "NULL" if value is None else str(value)
    text = " ".join(text.split())
    return text if len(text) <= VALUE_CHARS else text[: VALUE_CHARS - 3] + "..."


def _describe(letter: str, group: Sequence[Candidate], voters: int) -> str:
    rep = group[0]
    rows = rep.preview[:PREVIEW_ROWS] or rep.rows[:PREVIEW_ROWS]
    head = f"Candidate {letter} ({len(group)} of {voters} candidate{'s' if voters != 1 else ''} returned this result)"
    lines = [head, f"SQL: {' '.join((rep.sql or '').split())}"]
    count = f"{rep.row_count}{'+' if rep.truncated else ''} row{'s' if rep.row_count != 1 else ''}"
    rules = list(dict.fromkeys(rule for c in group for rule in c.rules))
    if rules:
        lines.append("Learned while correcting it: " + "; ".join(rules))
    if not rows:
        lines.append(f"Result: no rows ({rep.status})")
        return "\n".join(lines)
    lines.append(f"Result ({count}; first {len(rows)} shown):")
    if rep.columns:
        lines.append(" | ".join(_cell(c) for c in rep.columns))
    lines += [" | ".join(_cell(v) for v in row) for row in rows]
    return "\n".join(lines)


def build_messages(
    question: str,
    groups: Sequence[Sequence[Candidate]],
    *,
    schema_text: str,
    evidence: str | None = None,
    dialect: str = "sqlite",
    voters: int | None = None,
) -> tuple[list[BaseMessage], dict[str, str]]:
    """The selector prompt and its lettering.

    Args:
        question: the user's question.
        groups: result groups, best first; the first candidate of each group represents it.
        schema_text: the schema rendering the generators saw.
        evidence: external knowledge, optional.
        dialect: sqlglot dialect of the database.
        voters: candidates that voted (default: the candidates in ``groups``).

    Returns:
        ``(messages, {letter: representative candidate id})``.

    Raises:
        ValueError: more than 26 groups (letters run out).
    """
    if len(groups) > len(string.ascii_uppercase):
        raise ValueError(f"{len(groups)} result groups: the selector labels at most 26")
    voters = voters if voters is not None else sum(len(g) for g in groups)
    letters = list(string.ascii_uppercase[: len(groups)])
    shown = "\n\n".join(_describe(letter, g, voters) for letter, g in zip(letters, groups))
    choices = ", ".join(letters[:-1]) + f" or {letters[-1]}" if len(letters) > 1 else letters[0]
    messages = [
        SystemMessage(SYSTEM_PROMPT.format(dialect_name=DIALECT_NAMES.get(dialect, dialect))),
        HumanMessage(
            USER_PROMPT.format(
                schema=schema_text, candidates=shown, evidence=(evidence or "").strip() or "None",
                question=question.strip(), choices=choices,
            )
        ),
    ]
    return messages, {letter: g[0].id for letter, g in zip(letters, groups)}


_MARKUP = "*_`'\"[](){}<>.,:;!? \t\n"
_LEADING = re.compile(r"^\W*([A-Z])(?:\s*$|[.):\]\-,]|\*\*)")
_KEYWORD = re.compile(
    r"(?i:\b(?:answer|choice|choose|chose|pick|picked|select|selected|best|correct|right)\b)"
    r"(?:[\s:=*\-]+(?i:is|would|be|the|one|query|sql|candidate|option|here)\b)*"
    r"[\s:=*\-(]+([A-Z])(?![A-Za-z0-9])"
)
_NAMED = re.compile(r"(?i:\b(?:candidate|option)\b)\s*[^A-Za-z0-9\n]{0,2}([A-Z])(?![A-Za-z0-9])")


def parse_choice(
    reply: str, letters: Sequence[str], sql_by_letter: Mapping[str, str | None] | None = None,
    dialect: str | None = None,
) -> tuple[str | None, str]:
    """The letter a selector reply names, and how it was read.

    Tried in order: the reply is a letter alone (any case, markup and punctuation ignored); it
    starts with a capital letter followed by punctuation (``B. The second...``); it contains an
    answer phrase (``Answer: B``, ``I choose candidate B``; the last such phrase wins); it names
    exactly one candidate (``candidate B``); its SQL equals one candidate's SQL after
    :func:`~quorumsql.agents.sql_text.normalize_sql`. Letters outside ``letters`` are ignored.

    Args:
        reply: the model's reply.
        letters: the letters shown in the prompt.
        sql_by_letter: each letter's SQL, for replies that repeat a query instead of a letter.
        dialect: sqlglot dialect of those SQL texts.

    Returns:
        ``(letter, how)``, or ``(None, why not)`` when the reply names no candidate.
    """
    valid = set(letters)
    text = (reply or "").strip()
    if not text:
        return None, "the reply was empty"
    bare = text.strip(_MARKUP)
    if len(bare) == 1 and bare.upper() in valid:
        return bare.upper(), "a letter alone"
    m = _LEADING.match(text)
    if m and m.group(1) in valid:
        return m.group(1), "a leading letter"
    found = [g for g in _KEYWORD.findall(text) if g in valid]
    if found:
        return found[-1], "an answer phrase"
    named = list(dict.fromkeys(g for g in _NAMED.findall(text) if g in valid))
    if len(named) == 1:
        return named[0], "the one candidate named"
    sql = extract_sql(text)
    if sql and sql_by_letter:
        key = normalize_sql(sql, dialect)
        same = [letter for letter, s in sql_by_letter.items() if letter in valid and normalize_sql(s, dialect) == key]
        if len(same) == 1:
            return same[0], "the SQL of one candidate"
    if len(named) > 1:
        return None, f"the reply names several candidates ({', '.join(named)})"
    return None, "the reply names no candidate"


def choose_group(
    llm: BaseChatModel,
    question: str,
    groups: Sequence[Sequence[Candidate]],
    *,
    schema_text: str,
    evidence: str | None = None,
    dialect: str = "sqlite",
    voters: int | None = None,
    vote_winner: str | None = None,
    max_tokens: int = SELECTOR_MAX_TOKENS,
) -> LlmChoice:
    """Ask ``llm`` which result group answers ``question`` (XiYan-SQL's selection agent).

    Args:
        llm: chat model of the ``selector`` role (called once, temperature 0).
        question: the user's question.
        groups: contested result groups, the vote's winner first (:func:`contested_groups`);
            each group's first candidate represents it.
        schema_text: the schema rendering the generators saw.
        evidence: external knowledge, optional.
        dialect: sqlglot dialect of the database.
        voters: candidates that voted (for the "n of m" shown per group).
        vote_winner: the vote's selected candidate id (default: the first group's first one).
        max_tokens: completion budget of the call.

    Returns:
        The choice; when the reply names no candidate, ``candidate_id`` is the vote's winner,
        ``letter`` is None and ``reason`` says why the vote stands.

    Raises:
        ModelError: the selector endpoint failed.
        ValueError: no group, or more than 26.
    """
    if not groups:
        raise ValueError("the selector needs at least one result group")
    winner = vote_winner or groups[0][0].id
    messages, letters = build_messages(question, groups, schema_text=schema_text, evidence=evidence,
                                       dialect=dialect, voters=voters)
    text, usage = invoke(llm, messages, temperature=0.0, max_tokens=max_tokens)
    sql_by_letter = {letter: g[0].sql for letter, g in zip(letters, groups)}
    letter, how = parse_choice(text, list(letters), sql_by_letter, dialect)
    ids = [[c.id for c in g] for g in groups]
    if letter is None:
        return LlmChoice(
            candidate_id=winner, letters=letters, groups=ids, reply=text, usage=usage,
            reason=f"{how}: the vote's winner {winner} stands",
        )
    chosen = letters[letter]
    index = list(letters).index(letter)
    overrode = winner not in ids[index]
    size = len(groups[index])
    reason = (f"the selector chose {letter} ({chosen}, {size} vote{'s' if size != 1 else ''}; read from {how})"
              + (f" over the vote's winner {winner}" if overrode else ", agreeing with the vote"))
    return LlmChoice(candidate_id=chosen, letter=letter, letters=letters, groups=ids, reason=reason,
                     overrode_vote=overrode, reply=text, usage=usage)
