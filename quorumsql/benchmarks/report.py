"""Reports over one or more run directories: Markdown, a standalone HTML page, a per-question diff.

The HTML page needs no network at view time: CSS is inline and the plots are SVG generated
here (EX per difficulty, tokens and seconds per question, candidate agreement vs accuracy).
"""

from __future__ import annotations

import html
import json
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from quorumsql.benchmarks.evaluators import rves_score
from quorumsql.benchmarks.runner import RUN_FILE, read_results
from quorumsql.errors import ConfigError, InputError

DIFFICULTY_ORDER = ("easy", "medium", "hard", "extra", "simple", "moderate", "challenging")
AGREEMENT_BUCKETS = (("< 50%", 0.0, 0.5), ("50-99%", 0.5, 1.0), ("100%", 1.0, 1.01))
#: row labels of the timing figures: the system's own time is the headline, scoring is apart
SYSTEM_SECONDS_MEAN = "system seconds / question (mean, answering only)"
SYSTEM_SECONDS_MEDIAN = "system seconds / question (median, answering only)"
TOTAL_SECONDS_MEAN = "seconds / question with gold execution and scoring (mean)"
PALETTE = ("#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C")


class RunData(BaseModel):
    """One run directory as read from disk.

    Attributes:
        name: label (the directory name; made unique when two runs share it).
        path: the directory.
        meta: ``run.json`` (empty when missing).
        records: result records (last record per question id).
        warnings: unreadable lines and other problems.
    """

    name: str
    path: str
    meta: dict[str, Any] = Field(default_factory=dict)
    records: list[dict[str, Any]] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)

    @property
    def done(self) -> list[dict[str, Any]]:
        """Records of questions that were answered and scored."""
        return [r for r in self.records if r.get("status") == "done"]


def load_run(path: str | Path) -> RunData:
    """Read ``run.json`` and ``results.jsonl`` of a run directory.

    Raises:
        InputError: not a directory, or neither file present.
    """
    path = Path(path)
    if not path.is_dir():
        raise InputError(f"run directory not found: {path}")
    meta: dict[str, Any] = {}
    warnings: list[str] = []
    run_file = path / RUN_FILE
    if run_file.is_file():
        try:
            meta = json.loads(run_file.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            warnings.append(f"{run_file}: unreadable ({exc})")
    records, more = read_results(path)
    warnings += more
    if not meta and not records:
        raise InputError(f"{path} holds no run (no {RUN_FILE}, no results.jsonl)")
    untimed = sum(1 for r in records if r.get("status") == "done" and r.get("system_seconds") is None)
    if untimed:
        warnings.append(f"{path}: {untimed} result(s) carry no system_seconds (written by an older "
                        "version); their total seconds, scoring included, stand in for the system time")
    return RunData(name=path.resolve().name, path=str(path), meta=meta, records=records, warnings=warnings)


def _mean(values: Sequence[float]) -> float | None:
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def _pct(values: Sequence[float]) -> float | None:
    m = _mean(values)
    return None if m is None else 100.0 * m


def _difficulty_key(level: str) -> tuple[int, str]:
    return (DIFFICULTY_ORDER.index(level) if level in DIFFICULTY_ORDER else len(DIFFICULTY_ORDER), level)


def _read_cached(s: dict[str, Any]) -> str:
    if s.get("read_tokens") is None:
        return "–"
    return f"{_f(s['read_tokens'], 0)} / {_f(s.get('cached_tokens'), 0)}"


def summarize(run: RunData) -> dict[str, Any]:
    """Aggregate figures of a run.

    Returns:
        ``n`` (scored questions), ``total`` (selected), ``skipped``, ``ex``/``ex_bird``/
        ``ex_spider``/``soft_f1``/``qse``/``sse`` (percent, None when absent), ``rves`` (R-VES
        score), ``by_difficulty`` (``{level: {"n", "ex"}}``), ``prompt_tokens``, ``read_tokens`` /
        ``cached_tokens`` (of the prompt tokens, those the model read and those its prompt
        cache served), ``completion_tokens``, ``tokens``, ``llm_calls`` (per question means),
        ``system_seconds`` / ``system_seconds_median`` (the system's own seconds per question:
        answering only, no gold execution, scoring or judge), ``system_seconds_fallback``
        (records without ``system_seconds``, from older runs, whose total ``seconds`` stood
        in), ``seconds`` / ``seconds_median`` (wall-clock seconds per question including
        scoring), ``pred_errors`` (``{status: count}`` for predictions that did not run),
        ``gold_failures`` (``{status: count}``), ``agreement`` (``{bucket: {"n", "ex"}}``).
    """
    done = run.done
    metric = lambda name: [r["metrics"].get(name) for r in done if r.get("metrics")]  # noqa: E731
    out: dict[str, Any] = {
        "name": run.name,
        "system": (run.meta.get("system") or {}).get("system", "?"),
        "model": (run.meta.get("system") or {}).get("model", "?"),
        "status": run.meta.get("status", "?"),
        "n": len(done),
        "total": (run.meta.get("dataset") or {}).get("n_questions", len(run.records)),
        "skipped": sum(1 for r in run.records if r.get("status") == "skipped"),
    }
    for name in ("ex", "ex_bird", "ex_spider", "soft_f1", "qse", "sse"):
        out[name] = _pct(metric(name))
    rewards = [v for v in metric("rves") if v is not None]
    out["rves"] = rves_score(rewards) if rewards else None
    levels: dict[str, list[float]] = {}
    for r in done:
        ex = (r.get("metrics") or {}).get("ex")
        if ex is not None:
            levels.setdefault(r.get("difficulty") or "unknown", []).append(ex)
    out["by_difficulty"] = {
        lvl: {"n": len(v), "ex": _pct(v)} for lvl, v in sorted(levels.items(), key=lambda kv: _difficulty_key(kv[0]))
    }
    usages = [r.get("usage") or {} for r in done]
    out["prompt_tokens"] = _mean([u.get("prompt_tokens", 0) for u in usages])
    # runs recorded before the cache was counted have no ``cached_tokens``: unknown, not 0
    counted = [u for u in usages if "cached_tokens" in u]
    out["cached_tokens"] = _mean([u["cached_tokens"] for u in counted])
    out["read_tokens"] = _mean([u.get("prompt_tokens", 0) - u["cached_tokens"] for u in counted])
    out["completion_tokens"] = _mean([u.get("completion_tokens", 0) for u in usages])
    out["tokens"] = _mean([u.get("prompt_tokens", 0) + u.get("completion_tokens", 0) for u in usages])
    out["llm_calls"] = _mean([r.get("llm_calls", 0) for r in done])
    secs = [r.get("seconds") for r in done if r.get("seconds") is not None]
    out["seconds"] = _mean(secs)
    out["seconds_median"] = statistics.median(secs) if secs else None
    system_secs, fallback = [], 0
    for r in done:
        value = r.get("system_seconds")
        if value is None:  # a record without the system's own time: its total time stands in
            value = r.get("seconds")
            fallback += value is not None
        if value is not None:
            system_secs.append(value)
    out["system_seconds"] = _mean(system_secs)
    out["system_seconds_median"] = statistics.median(system_secs) if system_secs else None
    out["system_seconds_fallback"] = fallback
    pred_err: dict[str, int] = {}
    gold_fail: dict[str, int] = {}
    for r in done:
        ps = (r.get("pred_exec") or {}).get("status")
        if ps and ps != "ok":
            pred_err[ps] = pred_err.get(ps, 0) + 1
        gs = (r.get("gold_exec") or {}).get("status")
        if gs and gs != "ok":
            gold_fail[gs] = gold_fail.get(gs, 0) + 1
    out["pred_errors"] = pred_err
    out["gold_failures"] = gold_fail
    buckets: dict[str, list[float]] = {b[0]: [] for b in AGREEMENT_BUCKETS}
    for r in done:
        a, ex = r.get("agreement"), (r.get("metrics") or {}).get("ex")
        if a is None or ex is None:
            continue
        for label, lo, hi in AGREEMENT_BUCKETS:
            if lo <= a < hi:
                buckets[label].append(ex)
    out["agreement"] = {k: {"n": len(v), "ex": _pct(v)} for k, v in buckets.items()}
    return out


def question_diff(a: RunData, b: RunData) -> dict[str, list[dict[str, Any]]]:
    """Per-question comparison of two runs on the questions both scored (by EX).

    Returns:
        ``{"only_a": [...], "only_b": [...], "both": [...], "neither": [...]}``, each item
        ``{"id", "db_id", "question", "difficulty", "gold_sql", "sql_a", "sql_b"}``.
    """
    rb = {r["id"]: r for r in b.done}
    out: dict[str, list[dict[str, Any]]] = {"only_a": [], "only_b": [], "both": [], "neither": []}
    for ra in a.done:
        other = rb.get(ra["id"])
        if other is None:
            continue
        ea, eb = (ra.get("metrics") or {}).get("ex"), (other.get("metrics") or {}).get("ex")
        if ea is None or eb is None:
            continue
        key = {(1, 0): "only_a", (0, 1): "only_b", (1, 1): "both", (0, 0): "neither"}[(int(ea), int(eb))]
        out[key].append({
            "id": ra["id"], "db_id": ra.get("db_id"), "question": ra.get("question"),
            "difficulty": ra.get("difficulty"), "gold_sql": ra.get("gold_sql"),
            "sql_a": ra.get("pred_sql"), "sql_b": other.get("pred_sql"),
        })
    return out


# ------------------------------------------------------------------------------ Markdown
def _f(value: float | None, digits: int = 1, suffix: str = "") -> str:
    return "–" if value is None else f"{value:.{digits}f}{suffix}"


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _levels(summaries: list[dict[str, Any]]) -> list[str]:
    seen = {lvl for s in summaries for lvl in s["by_difficulty"]}
    return sorted(seen, key=_difficulty_key)


def _counts_text(d: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(d.items())) or "0"


def markdown_report(runs: list[RunData]) -> str:
    """The Markdown summary comparing ``runs`` side by side, with per-question diffs."""
    sums = [summarize(r) for r in runs]
    names = [s["name"] for s in sums]
    out = ["# QuorumSQL benchmark report", ""]
    rows = [
        ["system"] + [s["system"] for s in sums],
        ["model"] + [str(s["model"]) for s in sums],
        ["status"] + [s["status"] for s in sums],
        ["questions scored / selected"] + [f"{s['n']} / {s['total']}" for s in sums],
        ["**EX**"] + [f"**{_f(s['ex'], suffix='%')}**" for s in sums],
        ["EX (BIRD set semantics)"] + [_f(s["ex_bird"], suffix="%") for s in sums],
        ["EX (Spider test-suite semantics)"] + [_f(s["ex_spider"], suffix="%") for s in sums],
        ["Soft-F1"] + [_f(s["soft_f1"], suffix="%") for s in sums],
    ]
    if any(s["rves"] is not None for s in sums):
        rows.append(["R-VES"] + [_f(s["rves"]) for s in sums])
    if any(s["qse"] is not None or s["sse"] is not None for s in sums):
        rows.append(["LLM judge QSE"] + [_f(s["qse"], suffix="%") for s in sums])
        rows.append(["LLM judge SSE"] + [_f(s["sse"], suffix="%") for s in sums])
    rows += [
        ["prompt tokens / question"] + [_f(s["prompt_tokens"], 0) for s in sums],
        ["… read / served from cache"] + [_read_cached(s) for s in sums],
        ["completion tokens / question"] + [_f(s["completion_tokens"], 0) for s in sums],
        ["LLM calls / question"] + [_f(s["llm_calls"], 2) for s in sums],
        [SYSTEM_SECONDS_MEAN] + [_f(s["system_seconds"], 1) for s in sums],
        [SYSTEM_SECONDS_MEDIAN] + [_f(s["system_seconds_median"], 1) for s in sums],
        [TOTAL_SECONDS_MEAN] + [_f(s["seconds"], 1) for s in sums],
        ["predictions not executable"] + [_counts_text(s["pred_errors"]) for s in sums],
        ["gold SQL failed (scored 0)"] + [_counts_text(s["gold_failures"]) for s in sums],
        ["skipped (database unavailable)"] + [str(s["skipped"]) for s in sums],
    ]
    out += ["## Summary", "", _md_table(["", *names], rows), ""]
    levels = _levels(sums)
    if levels:
        out += ["## EX by difficulty", ""]
        drows = []
        for lvl in levels:
            cells = []
            for s in sums:
                d = s["by_difficulty"].get(lvl)
                cells.append(f"{_f(d['ex'], suffix='%')} (n={d['n']})" if d else "–")
            drows.append([lvl, *cells])
        out += [_md_table(["difficulty", *names], drows), ""]
    out += ["## Candidate agreement vs accuracy", "",
            "Agreement = votes of the selected candidate / candidates.", ""]
    arows = []
    for label, _, _ in AGREEMENT_BUCKETS:
        arows.append([label] + [
            f"{_f(s['agreement'][label]['ex'], suffix='%')} (n={s['agreement'][label]['n']})" for s in sums
        ])
    out += [_md_table(["agreement", *names], arows), ""]
    for other in runs[1:]:
        diff = question_diff(runs[0], other)
        out += [f"## Per-question diff: {runs[0].name} vs {other.name}", "",
                f"both solve {len(diff['both'])}, neither {len(diff['neither'])}, "
                f"only {runs[0].name} {len(diff['only_a'])}, only {other.name} {len(diff['only_b'])}.", ""]
        for key, who in (("only_a", runs[0].name), ("only_b", other.name)):
            if not diff[key]:
                continue
            out += [f"### Solved only by {who}", ""]
            out += [_md_table(
                ["id", "db", "difficulty", "question", f"{runs[0].name} SQL", f"{other.name} SQL"],
                [[str(d["id"]), str(d["db_id"]), str(d["difficulty"]), str(d["question"]),
                  f"`{d['sql_a']}`" if d["sql_a"] else "–", f"`{d['sql_b']}`" if d["sql_b"] else "–"]
                 for d in diff[key]],
            ), ""]
    warn = [w for r in runs for w in r.warnings]
    if warn:
        out += ["## Warnings", ""] + [f"- {w}" for w in warn] + [""]
    return "\n".join(out)


# ---------------------------------------------------------------------------------- SVG
def svg_bar_chart(
    categories: Sequence[str],
    series: Sequence[tuple[str, Sequence[float | None]]],
    *,
    title: str,
    y_label: str,
    y_max: float | None = None,
    value_format: str = "{:.1f}",
    width: int = 640,
    height: int = 300,
) -> str:
    """A grouped bar chart as an SVG element (one group per category, one bar per series)."""
    left, right, top, bottom = 56, 16, 34, 64
    plot_w, plot_h = width - left - right, height - top - bottom
    values = [v for _, vals in series for v in vals if v is not None]
    top_value = y_max if y_max is not None else (max(values) * 1.15 if values and max(values) > 0 else 1.0)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{html.escape(title)}">',
        f'<text x="{width / 2}" y="20" text-anchor="middle" class="title">{html.escape(title)}</text>',
        f'<text x="14" y="{top + plot_h / 2}" transform="rotate(-90 14 {top + plot_h / 2})" '
        f'text-anchor="middle" class="axis">{html.escape(y_label)}</text>',
    ]
    for i in range(5):
        yv = top_value * i / 4
        y = top + plot_h - plot_h * i / 4
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" class="grid"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" class="tick">{value_format.format(yv)}</text>')
    n_cat, n_ser = max(1, len(categories)), max(1, len(series))
    group_w = plot_w / n_cat
    bar_w = group_w * 0.8 / n_ser
    for ci, cat in enumerate(categories):
        gx = left + ci * group_w + group_w * 0.1
        for si, (name, vals) in enumerate(series):
            v = vals[ci] if ci < len(vals) else None
            x = gx + si * bar_w
            if v is None:
                continue
            h = 0 if top_value <= 0 else plot_h * min(v, top_value) / top_value
            y = top + plot_h - h
            color = PALETTE[si % len(PALETTE)]
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(bar_w - 2, 1):.1f}" height="{h:.1f}" '
                f'fill="{color}" data-series="{html.escape(name)}" data-category="{html.escape(cat)}" '
                f'data-value="{v:.4g}"><title>{html.escape(name)} · {html.escape(cat)}: '
                f'{value_format.format(v)}</title></rect>'
            )
            parts.append(f'<text x="{x + bar_w / 2 - 1:.1f}" y="{y - 3:.1f}" text-anchor="middle" '
                         f'class="value">{value_format.format(v)}</text>')
        parts.append(f'<text x="{left + ci * group_w + group_w / 2:.1f}" y="{top + plot_h + 16}" '
                     f'text-anchor="middle" class="tick">{html.escape(cat)}</text>')
    lx = left
    for si, (name, _) in enumerate(series):
        ly = height - 18
        parts.append(f'<rect x="{lx}" y="{ly - 9}" width="10" height="10" fill="{PALETTE[si % len(PALETTE)]}"/>')
        parts.append(f'<text x="{lx + 14}" y="{ly}" class="legend">{html.escape(name)}</text>')
        lx += 24 + 7 * len(name)
    parts.append("</svg>")
    return "".join(parts)


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em}
h1{font-size:1.6em}h2{font-size:1.25em;margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.6em 0;font-size:.92em}
th,td{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f3f3f3}td.num{text-align:right}
code{font-size:.88em;white-space:pre-wrap}
.charts{display:flex;flex-wrap:wrap;gap:12px}
svg.chart{background:#fff;border:1px solid #e3e3e3}
svg .title{font-size:14px;font-weight:600}svg .axis,svg .tick,svg .legend{font-size:11px;fill:#444}
svg .value{font-size:10px;fill:#333}svg .grid{stroke:#eee}
details{margin:.5em 0}
"""


def _cell(v: Any, cls: str = "") -> str:
    attr = f' class="{cls}"' if cls else ""
    return f"<td{attr}>{html.escape(str(v))}</td>"


def html_report(runs: list[RunData]) -> str:
    """A standalone HTML page (inline CSS and SVG, no scripts) comparing ``runs``."""
    sums = [summarize(r) for r in runs]
    names = [s["name"] for s in sums]
    esc = html.escape
    body = [f"<h1>QuorumSQL benchmark report</h1><p>Runs: {', '.join(esc(n) for n in names)}</p>"]

    def row(label: str, cells: list[str], num: bool = True) -> str:
        return "<tr><th>" + esc(label) + "</th>" + "".join(_cell(c, "num" if num else "") for c in cells) + "</tr>"

    table = ['<table id="summary"><thead><tr><th></th>' + "".join(f"<th>{esc(n)}</th>" for n in names) + "</tr></thead><tbody>"]
    table.append(row("system", [s["system"] for s in sums], False))
    table.append(row("model", [s["model"] for s in sums], False))
    table.append(row("status", [s["status"] for s in sums], False))
    table.append(row("questions scored / selected", [f"{s['n']} / {s['total']}" for s in sums]))
    table.append(row("EX", [_f(s["ex"], suffix="%") for s in sums]))
    table.append(row("EX (BIRD set semantics)", [_f(s["ex_bird"], suffix="%") for s in sums]))
    table.append(row("EX (Spider test-suite semantics)", [_f(s["ex_spider"], suffix="%") for s in sums]))
    table.append(row("Soft-F1", [_f(s["soft_f1"], suffix="%") for s in sums]))
    if any(s["rves"] is not None for s in sums):
        table.append(row("R-VES", [_f(s["rves"]) for s in sums]))
    if any(s["qse"] is not None or s["sse"] is not None for s in sums):
        table.append(row("LLM judge QSE", [_f(s["qse"], suffix="%") for s in sums]))
        table.append(row("LLM judge SSE", [_f(s["sse"], suffix="%") for s in sums]))
    table.append(row("prompt tokens / question", [_f(s["prompt_tokens"], 0) for s in sums]))
    table.append(row("… read / served from cache", [_read_cached(s) for s in sums], False))
    table.append(row("completion tokens / question", [_f(s["completion_tokens"], 0) for s in sums]))
    table.append(row("LLM calls / question", [_f(s["llm_calls"], 2) for s in sums]))
    table.append(row(SYSTEM_SECONDS_MEAN, [_f(s["system_seconds"], 1) for s in sums]))
    table.append(row(SYSTEM_SECONDS_MEDIAN, [_f(s["system_seconds_median"], 1) for s in sums]))
    table.append(row(TOTAL_SECONDS_MEAN, [_f(s["seconds"], 1) for s in sums]))
    table.append(row("predictions not executable", [_counts_text(s["pred_errors"]) for s in sums], False))
    table.append(row("gold SQL failed (scored 0)", [_counts_text(s["gold_failures"]) for s in sums], False))
    table.append(row("skipped (database unavailable)", [str(s["skipped"]) for s in sums]))
    table.append("</tbody></table>")
    body += ["<h2>Summary</h2>", "".join(table)]

    levels = _levels(sums)
    cats = levels + ["all"]
    ex_series = [
        (s["name"], [((s["by_difficulty"].get(lvl) or {}).get("ex")) for lvl in levels] + [s["ex"]]) for s in sums
    ]
    charts = [
        svg_bar_chart(cats, ex_series, title="EX per difficulty", y_label="EX (%)", y_max=100),
        svg_bar_chart(["prompt", "completion", "total"],
                      [(s["name"], [s["prompt_tokens"], s["completion_tokens"], s["tokens"]]) for s in sums],
                      title="Tokens per question (mean)", y_label="tokens", value_format="{:.0f}"),
        svg_bar_chart(["system, mean", "system, median", "with scoring, mean"],
                      [(s["name"], [s["system_seconds"], s["system_seconds_median"], s["seconds"]])
                       for s in sums],
                      title="Seconds per question", y_label="seconds"),
        svg_bar_chart([b[0] for b in AGREEMENT_BUCKETS],
                      [(s["name"], [s["agreement"][b[0]]["ex"] for b in AGREEMENT_BUCKETS]) for s in sums],
                      title="Candidate agreement vs accuracy", y_label="EX (%)", y_max=100),
    ]
    body += ["<h2>Plots</h2>", '<div class="charts">' + "".join(charts) + "</div>"]

    dtable = ['<table id="by-difficulty"><thead><tr><th>difficulty</th>' + "".join(f"<th>{esc(n)}</th>" for n in names) + "</tr></thead><tbody>"]
    for lvl in levels:
        cells = []
        for s in sums:
            d = s["by_difficulty"].get(lvl)
            cells.append(f"{_f(d['ex'], suffix='%')} (n={d['n']})" if d else "–")
        dtable.append(row(lvl, cells))
    dtable.append("</tbody></table>")
    body += ["<h2>EX by difficulty</h2>", "".join(dtable)]

    atable = ['<table id="agreement"><thead><tr><th>agreement</th>' + "".join(f"<th>{esc(n)}</th>" for n in names) + "</tr></thead><tbody>"]
    for label, _, _ in AGREEMENT_BUCKETS:
        atable.append(row(label, [f"{_f(s['agreement'][label]['ex'], suffix='%')} (n={s['agreement'][label]['n']})" for s in sums]))
    atable.append("</tbody></table>")
    body += ["<h2>Candidate agreement vs accuracy</h2>",
             "<p>Agreement = votes of the selected candidate / candidates.</p>", "".join(atable)]

    for other in runs[1:]:
        a, b = runs[0], other
        diff = question_diff(a, b)
        body.append(f"<h2>Per-question diff: {esc(a.name)} vs {esc(b.name)}</h2>")
        body.append(
            f'<p class="diff-counts">both solve <b>{len(diff["both"])}</b>, neither <b>{len(diff["neither"])}</b>, '
            f'only {esc(a.name)} <b>{len(diff["only_a"])}</b>, only {esc(b.name)} <b>{len(diff["only_b"])}</b></p>'
        )
        for key, who in (("only_a", a.name), ("only_b", b.name)):
            items = diff[key]
            rows_html = "".join(
                "<tr>" + _cell(d["id"]) + _cell(d["db_id"]) + _cell(d["difficulty"]) + _cell(d["question"])
                + f"<td><code>{esc(d['sql_a'] or '–')}</code></td><td><code>{esc(d['sql_b'] or '–')}</code></td>"
                + f"<td><code>{esc(d['gold_sql'] or '–')}</code></td></tr>"
                for d in items
            )
            body.append(
                f'<details open><summary>Solved only by {esc(who)} ({len(items)})</summary>'
                f'<table class="diff" data-key="{key}"><thead><tr><th>id</th><th>db</th><th>difficulty</th>'
                f"<th>question</th><th>{esc(a.name)} SQL</th><th>{esc(b.name)} SQL</th><th>gold SQL</th></tr></thead>"
                f"<tbody>{rows_html}</tbody></table></details>"
            )
    warn = [w for r in runs for w in r.warnings]
    if warn:
        body.append("<h2>Warnings</h2><ul>" + "".join(f"<li>{esc(w)}</li>" for w in warn) + "</ul>")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>QuorumSQL report: {esc(' vs '.join(names))}</title><style>{_CSS}</style></head>"
        f"<body>{''.join(body)}</body></html>\n"
    )


def write_report(run_dirs: Sequence[str | Path], out_dir: str | Path | None = None) -> dict[str, Path]:
    """Write ``report.md``, ``report.html`` and ``diff.json`` for ``run_dirs``.

    Args:
        run_dirs: one or more run directories; the first is the reference of the diffs.
        out_dir: where to write (default: the first run directory).

    Returns:
        ``{"markdown": path, "html": path, "diff": path}``.

    Raises:
        InputError: no run directory, one that holds no run, or an ``out_dir`` that is a file.
        ConfigError: ``out_dir`` cannot be created or written.
    """
    if not run_dirs:
        raise InputError("give at least one run directory")
    out = Path(out_dir) if out_dir else Path(run_dirs[0])
    if out.exists() and not out.is_dir():
        raise InputError(f"{out} is a file, not a folder: the report (report.md, report.html, diff.json) is "
                         "written into a folder; give --out a folder (it is created when missing)")
    runs = [load_run(p) for p in run_dirs]
    seen: dict[str, int] = {}
    for r in runs:  # unique labels
        if r.name in seen:
            seen[r.name] += 1
            r.name = f"{r.name}#{seen[r.name]}"
        else:
            seen[r.name] = 1
    paths = {"markdown": out / "report.md", "html": out / "report.html", "diff": out / "diff.json"}
    markdown_text, html_text = markdown_report(runs), html_report(runs)
    diffs = {f"{runs[0].name} vs {o.name}": question_diff(runs[0], o) for o in runs[1:]}
    diff = json.dumps({"summaries": [summarize(r) for r in runs], "diffs": diffs}, indent=2, ensure_ascii=False,
                      default=str)
    try:
        out.mkdir(parents=True, exist_ok=True)
        paths["markdown"].write_text(markdown_text, encoding="utf-8")
        paths["html"].write_text(html_text, encoding="utf-8")
        paths["diff"].write_text(diff, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write the report in {out}: {exc.strerror or exc}") from None
    return paths
