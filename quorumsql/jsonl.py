"""Reading JSON Lines files whose lines may be bad: one reader for every JSONL input.

Pools, question files, seed pairs, benchmark results and synthesis records are all JSONL that a
person or a crash may have damaged. Each reader wants the same thing: every non-blank line as a
JSON object with its line number, and a short reason for a line that is not one, so that the
caller can skip it, count it and say so, and never stop on it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any


def json_objects(lines: Iterable[str]) -> Iterator[tuple[int, dict[str, Any] | None, str | None]]:
    """``(line number, object, problem)`` for every non-blank line, numbered from 1.

    Exactly one of ``object`` and ``problem`` is None: ``problem`` is ``"not JSON (<reason>)"``
    or ``"not a JSON object"`` (a list, a number, a string).
    """
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            yield number, None, f"not JSON ({exc.msg})"
            continue
        if not isinstance(value, dict):
            yield number, None, "not a JSON object"
            continue
        yield number, value, None
