"""Missing prerequisites skip a test on a developer's machine and fail it in CI (env ``CI`` set)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import REPO, SPIDER, require_module, require_shared, spider_db

MISSING = SPIDER / "database" / "no_such_db" / "no_such_db.sqlite"


@pytest.mark.parametrize("value", ["true", "1", "yes", "TRUE"])
def test_missing_shared_data_fails_under_ci(monkeypatch, value):
    monkeypatch.setenv("CI", value)
    with pytest.raises(pytest.fail.Exception, match="no_such_db"):
        require_shared(MISSING, "Spider database")
    with pytest.raises(pytest.fail.Exception, match="CI is set"):
        spider_db("no_such_db")
    with pytest.raises(pytest.fail.Exception, match="no_such_module_quorumsql"):
        require_module("no_such_module_quorumsql", "pip install it")


@pytest.mark.parametrize("value", [None, "", "false", "0"])
def test_missing_shared_data_skips_outside_ci(monkeypatch, value):
    if value is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", value)
    with pytest.raises(pytest.skip.Exception, match="expected ../shared/data beside the repo"):
        require_shared(MISSING, "Spider database")
    with pytest.raises(pytest.skip.Exception):
        require_module("no_such_module_quorumsql")


def test_present_data_and_modules_are_returned(monkeypatch):
    monkeypatch.setenv("CI", "true")
    assert require_shared(REPO / "pyproject.toml") == REPO / "pyproject.toml"
    assert require_module("sqlite3").connect  # an importable module comes back


def test_a_session_reports_the_missing_data_as_a_failure_in_ci(tmp_path):
    """The whole path through pytest: a test asking for an absent Spider database is reported
    as skipped without CI and as failed (exit status 1) with CI=true."""
    probe = tmp_path / "test_probe.py"
    probe.write_text("from tests.conftest import spider_db\n\n"
                     "def test_needs_data():\n    spider_db('no_such_db')\n")

    def run(ci: str | None):
        env = {k: v for k, v in os.environ.items() if k != "CI"}
        if ci is not None:
            env["CI"] = ci
        # run from the repository so that ``tests.conftest`` imports; the probe stays in tmp_path
        return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(tmp_path),
                               str(probe)], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)

    local, ci = run(None), run("true")
    assert local.returncode == 0 and "1 skipped" in local.stdout, local.stdout + local.stderr
    assert ci.returncode == 1 and "1 failed" in ci.stdout and "no_such_db" in ci.stdout, ci.stdout + ci.stderr
