"""Import direction between packages, read from the source with ast (nothing is imported).

``schema_repr`` renders and never retrieves: it may use the records of
``quorumsql.metadata.models`` but not the store or retrieval; ``metadata`` never imports
``schema_repr``. The arrows go one way.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "quorumsql"


def imported_modules(source: str, package: str) -> set[str]:
    """Absolute names of the modules ``source`` imports, at any depth (inside functions too).

    ``package`` is the package the source belongs to (for relative imports); ``from a import b``
    yields both ``a`` and ``a.b`` since ``b`` may be a module.
    """
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import: resolve against the module's package
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def imports_of(path: Path) -> set[str]:
    """:func:`imported_modules` of a module file of the package."""
    package = ".".join(["quorumsql", *path.relative_to(PACKAGE).parts[:-1]])
    return imported_modules(path.read_text(encoding="utf-8"), package)


def _modules(sub: str) -> list[Path]:
    found = sorted((PACKAGE / sub).glob("*.py"))
    assert found, f"no modules under {PACKAGE / sub}"
    return found


@pytest.mark.parametrize("path", _modules("schema_repr"), ids=lambda p: p.name)
def test_schema_repr_only_reads_metadata_records(path):
    bad = {m for m in imports_of(path)
           if m.startswith("quorumsql.metadata") and not m.startswith("quorumsql.metadata.models")}
    assert not bad, f"{path.name} imports {sorted(bad)}: schema_repr renders records, it does not retrieve"


@pytest.mark.parametrize("path", _modules("metadata"), ids=lambda p: p.name)
def test_metadata_never_imports_schema_repr(path):
    bad = {m for m in imports_of(path) if m.startswith("quorumsql.schema_repr")}
    assert not bad, f"{path.name} imports {sorted(bad)}"


def test_the_checker_sees_call_time_and_relative_imports():
    # the checks above must be able to fail: a call-time import is an import too
    source = "def f():\n    from quorumsql.metadata.store import load\n    from . import selection\n"
    found = imported_modules(source, "quorumsql.schema_repr")
    assert {"quorumsql.metadata.store", "quorumsql.schema_repr.selection"} <= found
    assert "quorumsql.metadata" in imported_modules("from ..metadata import retrieval", "quorumsql.schema_repr")


def test_stopwords_live_with_retrieval():
    for path in _modules("schema_repr"):
        assert "STOPWORDS" not in path.read_text(encoding="utf-8"), path.name
    assert "STOPWORDS = frozenset(" in (PACKAGE / "metadata" / "retrieval.py").read_text(encoding="utf-8")
