"""An account that can write is reported once: in the trace, in Answer.warnings, in the CLI."""

from __future__ import annotations

import subprocess
import sys

import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel

from quorumsql import Pipeline
from quorumsql.cli import print_answer

pytestmark = pytest.mark.mysql

Q = "How many singers do we have?"


def test_a_root_account_is_reported_once(mysql_concert_singer, capsys, tmp_path):
    from quorumsql.config import Settings

    pipe = Pipeline(Settings.load(cache_dir=tmp_path), llm=FakeListChatModel(responses=["```sql\nSELECT count(*) FROM singer\n```"]),
                    preset="fast")
    ans = pipe.answer(Q, mysql_concert_singer)
    assert ans.rows == [(6,)]
    assert ans.warnings and any("FILE" in w or "write" in w for w in ans.warnings)
    context = ans.trace[0]
    assert context.node == "context" and context.data["warnings"] == ans.warnings
    assert sum("warning:" in e.message for e in ans.trace) == 1
    print_answer(ans)
    err = capsys.readouterr().err
    assert err.count("warning:") == len(ans.warnings)


def test_quorumsql_index_prints_the_warning(mysql_concert_singer, tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "quorumsql.cli", "index", mysql_concert_singer, "--cache-dir", str(tmp_path), "--no-progress"],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "warning:" in proc.stderr and "Traceback" not in proc.stderr
    assert "concert_singer" in proc.stdout


def test_sqlite_has_no_account_warning(concert_singer, tmp_path):
    from quorumsql.config import Settings

    pipe = Pipeline(Settings.load(cache_dir=tmp_path), llm=FakeListChatModel(responses=["```sql\nSELECT count(*) FROM singer\n```"]),
                    preset="fast")
    assert pipe.answer(Q, concert_singer).warnings == []
