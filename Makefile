# Two entry points: `make run` and `make test`. Both create or reuse a virtualenv cached outside the clone,
# keyed by a hash of the requirements, so a second run (and CI) does not reinstall torch.
PYTHON ?= python3
CACHE_DIR ?= $(HOME)/.cache/gradcam-dashboard
RUN_HASH := $(shell cat requirements.txt | sha256sum | cut -c1-12)
DEV_HASH := $(shell cat requirements.txt requirements-dev.txt | sha256sum | cut -c1-12)
VENV ?= $(CACHE_DIR)/venv-$(RUN_HASH)
PY := $(VENV)/bin/python
PORT ?= 8501
WORKSPACE ?=
PYTEST_ARGS ?=

.PHONY: run test lint bench browser-deps venv dev-venv train

venv: $(VENV)/.run-$(RUN_HASH)
dev-venv: $(VENV)/.dev-$(DEV_HASH)

$(VENV)/.run-$(RUN_HASH): requirements.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -r requirements.txt
	@touch $@

$(VENV)/.dev-$(DEV_HASH): $(VENV)/.run-$(RUN_HASH) requirements-dev.txt
	$(PY) -m pip install -r requirements-dev.txt
	@touch $@

run: venv
	$(PY) -m streamlit run app.py --server.port $(PORT) $(if $(WORKSPACE),-- --workspace $(WORKSPACE),)

# The browser test needs Chromium. As root with apt we install Debian's package; otherwise the test
# skips locally (and fails in CI) with a message saying how to enable it.
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

bench: dev-venv
	$(PY) -m bench

train: venv
	$(PY) -m models.train all
