# racehub: `make demo` and `make test` are all a new machine needs (Python 3.11).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test lint typecheck typecheck-baseline browser clean

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(BIN)/racehub demo

# Browser tests drive Debian's chromium; install it when missing and we may.
browser:
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null; then \
	    echo "installing chromium for the browser tests"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null; \
	  else \
	    echo "chromium missing and not root: browser tests will be skipped, or fail where RACEHUB_REQUIRE_BROWSER or CI is set (sudo apt-get install chromium)"; \
	  fi; \
	fi

test: setup browser
	$(BIN)/python -m pytest -n auto $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check src tests benchmarks

# mypy ([tool.mypy] in pyproject.toml) against .ci/mypy-baseline.txt: fails on a new error.
typecheck: setup
	$(BIN)/python .ci/typecheck

# Rewrite the baseline from today's errors (after fixing some, or merging).
typecheck-baseline: setup
	$(BIN)/python .ci/typecheck --update

clean:
	rm -rf $(VENV) var .pytest_cache
