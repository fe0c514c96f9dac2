# Two entry points: `make demo` and `make test`. Both create the virtual environment on first use.
# The environment's packages live outside the clone, keyed by a hash of pyproject.toml, so a fresh
# clone (CI) reuses them; the project itself is re-installed (editable, no deps) into it each time.
SHELL := /bin/bash
PYTHON ?= python3
HASH := $(shell sha256sum pyproject.toml | cut -c1-16)
ENV_CACHE ?= $(HOME)/.cache/sslvgs/venv-$(HASH)
VENV := .venv
PY := $(VENV)/bin/python
DEMO_OUT ?= demo_out
PYTEST_ARGS ?=

.PHONY: venv demo test docs lint format clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@# A venv's scripts hard-code its path, so it is built in place; .complete marks a finished build.
	@if [ ! -f "$(ENV_CACHE)/.complete" ]; then \
	  echo "creating environment $(ENV_CACHE) (first time only: a few minutes)"; \
	  rm -rf "$(ENV_CACHE)" && \
	  $(PYTHON) -m venv "$(ENV_CACHE)" && \
	  "$(ENV_CACHE)/bin/pip" install -q --upgrade pip && \
	  "$(ENV_CACHE)/bin/pip" install -q -e '.[test]' && \
	  touch "$(ENV_CACHE)/.complete" || exit 1; \
	fi
	@rm -rf $(VENV) && ln -s "$(ENV_CACHE)" $(VENV)
	@"$(ENV_CACHE)/bin/pip" install -q --no-deps --no-build-isolation -e . >/dev/null
	@touch $(VENV)/.installed

demo: venv
	$(VENV)/bin/sslvgs reproduce $(DEMO_OUT)

test: venv
	$(PY) -m pytest -q $(PYTEST_ARGS)

# The documentation site (docs/, mkdocs.yml) into site/; warnings (broken links, docstrings
# mkdocstrings cannot parse) are errors, as in tests/test_docs.py.
docs: venv
	$(PY) -m mkdocs build --strict --site-dir site

lint: venv
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

format: venv
	$(VENV)/bin/ruff format . && $(VENV)/bin/ruff check --fix .

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache site
