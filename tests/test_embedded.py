"""Joining the embedded model's GGUF parts (on small part packages made by the test)."""

from __future__ import annotations

import sys

import pytest

from quorumsql.config import Settings
from quorumsql.errors import EmbeddedModelError
from quorumsql.llm import embedded
from quorumsql.llm.embedded import ModelSpec, ensure_gguf


def _make_parts(root, chunks):
    names = []
    for i, chunk in enumerate(chunks, 1):
        pkg = root / f"qsqltestpart{i}"
        (pkg / "data").mkdir(parents=True)
        (pkg / "__init__.py").write_text("")
        (pkg / "data" / f"part{i:02d}.bin").write_bytes(chunk)
        names.append(pkg.name)
    return tuple(names)


@pytest.fixture
def parts(tmp_path, monkeypatch):
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    names = _make_parts(root, [b"GGUF" + b"a" * 10, b"b" * 7, b"c" * 3])
    yield names
    for n in names:
        sys.modules.pop(n, None)


def _spec(names, size):
    return ModelSpec(key="t", alias="test", filename="t.gguf", part_packages=names, pip_hint="pip install x", size=size)


def test_join_once_in_order_and_reuse(parts, tmp_path, monkeypatch):
    monkeypatch.setitem(embedded.MODELS, "t", _spec(parts, 24))
    settings = Settings.load(cache_dir=tmp_path / "cache")
    path = ensure_gguf(settings, "t")
    assert path.read_bytes() == b"GGUF" + b"a" * 10 + b"b" * 7 + b"c" * 3
    mtime = path.stat().st_mtime_ns
    assert ensure_gguf(settings, "t") == path and path.stat().st_mtime_ns == mtime  # reused


def test_wrong_size_leaves_nothing_behind(parts, tmp_path, monkeypatch):
    monkeypatch.setitem(embedded.MODELS, "t", _spec(parts, 999))
    settings = Settings.load(cache_dir=tmp_path / "cache")
    with pytest.raises(EmbeddedModelError, match="expected 999"):
        ensure_gguf(settings, "t")
    assert list((tmp_path / "cache" / "models").iterdir()) == []


def test_missing_part_package_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(embedded.MODELS, "t", _spec(("qsql_no_such_part_pkg",), None))
    with pytest.raises(EmbeddedModelError, match="pip install x"):
        ensure_gguf(Settings.load(cache_dir=tmp_path), "t")


def test_find_served_ignores_stale_state(tmp_path):
    settings = Settings.load(cache_dir=tmp_path)
    embedded.state_file(settings).write_text('{"url": "http://127.0.0.1:9", "pid": 999999999, "model": "1.5b", "alias": "a"}')
    assert embedded.find_served(settings) is None
