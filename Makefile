# Two entry points: `make run` and `make test`. Both create or reuse a virtualenv cached outside the clone,
# keyed by a hash of pyproject.toml (the one list of dependencies), so a second run (and CI) does not reinstall
# torch. The project itself is installed editable, so the `gradcam` command works; the install is redone when
# the virtualenv was last pointed at another clone.
PYTHON ?= python3
CACHE_DIR ?= $(HOME)/.cache/gradcam-dashboard
DEPS_HASH := $(shell cat pyproject.toml | sha256sum | cut -c1-12)
VENV ?= $(CACHE_DIR)/venv-$(DEPS_HASH)
PY := $(VENV)/bin/python
PORT ?= 8501
WORKSPACE ?=
PYTEST_ARGS ?=

.PHONY: run test test-shuffled lint bench browser-deps venv dev-venv editable train

venv: $(VENV)/.run-$(DEPS_HASH) editable
dev-venv: $(VENV)/.dev-$(DEPS_HASH) editable

$(VENV)/.run-$(DEPS_HASH): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -e .
	@echo "$(CURDIR)" > $(VENV)/.editable
	@touch $@

$(VENV)/.dev-$(DEPS_HASH): $(VENV)/.run-$(DEPS_HASH)
	$(PY) -m pip install -e ".[dev]"
	@echo "$(CURDIR)" > $(VENV)/.editable
	@touch $@

# The editable install points at one clone; point it at this one if it was made from another.
editable:
	@if [ "$$(cat $(VENV)/.editable 2>/dev/null)" != "$(CURDIR)" ]; then \
	  $(PY) -m pip install -q --no-deps -e . && echo "$(CURDIR)" > $(VENV)/.editable; fi

run: venv
	$(VENV)/bin/gradcam serve --port $(PORT) $(if $(WORKSPACE),--workspace $(WORKSPACE),)

# The browser tests need Chromium. As root with apt we install Debian's package; otherwise the tests
# skip locally (and fail in CI) with a message saying how to enable it.
browser-deps:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && apt-get install -y -qq chromium) || echo "warning: could not install chromium"; \
	  else echo "note: chromium not found; browser tests will skip (install Debian's 'chromium' package)"; fi; }

lint: dev-venv
	$(PY) -m ruff check .

test: dev-venv browser-deps
	$(PY) -m ruff check .
	$(PY) -m pytest $(PYTEST_ARGS)

# The same tests in a random order (pytest-randomly): they must not depend on each other.
test-shuffled: dev-venv browser-deps
	$(PY) -m pytest -p randomly $(PYTEST_ARGS)

bench: dev-venv
	$(PY) -m bench

train: venv
	$(PY) -m models.train all
