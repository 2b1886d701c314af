"""Value patterns of text columns, computed from the values themselves (no LLM).

MCI-SQL (paper 004, section 3.1.2) samples 200 values of each non-numeric column and has an LLM
summarise their format; here the summary is computed: lengths, character-class shapes in the
``Aa9`` notation of its Table 1, fixed width, zero padding and date formats.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

from quorumsql.metadata.models import ValuePattern

_RUNS = [(re.compile(r"[A-Z]+"), "A"), (re.compile(r"[a-z]+"), "a"), (re.compile(r"[0-9]+"), "9")]
_SPACE = re.compile(r"\s+")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")
_URL = re.compile(r"^(https?|ftp)://|^www\.", re.I)
_HEX = re.compile(r"^(?=.*\d)(?=.*[a-fA-F])[0-9a-fA-F-]{16,}$")
_NUMERIC = re.compile(r"^[+-]?(\d+([.,]\d+)?|\.\d+)([eE][+-]?\d+)?$")

# (regex, format) in order of preference; checked against every sampled value
DATE_FORMATS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(\.\d+)?$"), "%Y-%m-%d %H:%M:%S"),
    (re.compile(r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}$"), "%Y-%m-%d %H:%M"),
    (re.compile(r"^\d{4}-\d{2}-\d{2}$"), "%Y-%m-%d"),
    (re.compile(r"^\d{4}/\d{2}/\d{2}$"), "%Y/%m/%d"),
    (re.compile(r"^\d{4}-\d{2}$"), "%Y-%m"),
    (re.compile(r"^\d{1,2}/\d{1,2}/\d{4}$"), "%m/%d/%Y"),
    (re.compile(r"^\d{1,2}\.\d{1,2}\.\d{4}$"), "%d.%m.%Y"),
    (re.compile(r"^\d{2}:\d{2}(:\d{2})?$"), "%H:%M:%S"),
    (re.compile(r"^\d{8}$"), "%Y%m%d"),
    (re.compile(r"^(January|February|March|April|May|June|July|August|September|October|November|December) \d{1,2}, \d{4}$"), "%B %d, %Y"),
    (re.compile(r"^\d{1,2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]* \d{4}$"), "%d %b %Y"),
]


def shape(value: str) -> str:
    """Character-class shape: runs of upper-case -> ``A``, lower-case -> ``a``, digits -> ``9``.

    Other characters are kept, whitespace collapses to one space, and letters outside ASCII
    count as ``a``/``A`` by case: ``"Main St. 12"`` -> ``"Aa Aa. 9"``.
    """
    s = _SPACE.sub(" ", value.strip())
    s = "".join(
        ("A" if ch.isupper() else "a") if ch.isalpha() and not ch.isascii() else ch for ch in s
    )
    for rx, sym in _RUNS:
        s = rx.sub(sym, s)
    # merge repeated symbols produced by non-ASCII letters next to ASCII runs
    return re.sub(r"(A|a|9)\1+", r"\1", s)


def date_format(values: Sequence[str]) -> str | None:
    """The first format of :data:`DATE_FORMATS` that every value matches, or None.

    ``%Y%m%d`` is only accepted when the month and day parts are in range (else eight-digit
    codes would pass as dates).
    """
    if not values:
        return None
    for rx, fmt in DATE_FORMATS:
        if all(rx.match(v) for v in values):
            if fmt == "%Y%m%d" and not all(
                1 <= int(v[4:6]) <= 12 and 1 <= int(v[6:8]) <= 31 for v in values
            ):
                continue
            return fmt
    return None


def value_pattern(values: Sequence[str], *, top: int = 3) -> ValuePattern:
    """Summarise the shape of ``values`` (a sample of distinct text values).

    Args:
        values: the sample; NULLs must already be removed.
        top: how many of the most frequent shapes to keep.

    Returns:
        A :class:`ValuePattern`; ``sample_size`` is 0 for an empty sample.
    """
    texts = [v for v in (str(x) for x in values) if v != ""]
    if not texts:
        return ValuePattern(sample_size=0)
    lengths = [len(v) for v in texts]
    n = len(texts)
    shapes = Counter(shape(v)[:40] for v in texts)
    fixed = lengths[0] if n > 1 and all(x == lengths[0] for x in lengths) else None
    digits_only = all(v.isdigit() for v in texts)
    zero_padded = digits_only and any(len(v) > 1 and v.startswith("0") for v in texts) and fixed is not None
    fmt = date_format([v.strip() for v in texts])
    avg = sum(lengths) / n
    if fmt:
        kind = "date"
    elif all(_EMAIL.match(v) for v in texts):
        kind = "email"
    elif sum(1 for v in texts if _URL.search(v)) >= 0.8 * n:
        kind = "url"
    elif all(_NUMERIC.match(v.strip()) for v in texts):
        kind = "numeric_text"
    elif all(_HEX.match(v) for v in texts):
        kind = "hex"
    elif avg > 60 or max(lengths) > 200:
        kind = "free_text"
    elif fixed is not None and fixed <= 12 and " " not in "".join(texts):
        kind = "code"
    elif all(" " not in v.strip() for v in texts):
        kind = "word"
    else:
        kind = "phrase"
    return ValuePattern(
        sample_size=n,
        min_length=min(lengths),
        max_length=max(lengths),
        avg_length=round(avg, 2),
        shapes=[(s, round(c / n, 3)) for s, c in shapes.most_common(top)],
        fixed_width=fixed,
        zero_padded=zero_padded,
        date_format=fmt,
        kind=kind,
    )
