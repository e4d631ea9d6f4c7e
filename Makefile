# The AI computing network. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000
PYTEST_ARGS ?=

export DJANGO_SETTINGS_MODULE := marketplace.settings

.PHONY: help install system-deps run serve test lint format migrate shell messages check-deploy clean

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  \033[1m%-14s\033[0m %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) is required (the project targets Python 3.11)"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP) system-deps ## Create .venv with every dependency (dev tools included) and the system packages tests need

system-deps: ## Install Debian packages the suite needs (Chromium for browser tests, CJK fonts, gettext, Pango for PDFs, redis-server for the Redis-down test) when missing
	@missing=""; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	for lib in libpango-1.0.so.0:libpango-1.0-0 libpangoft2-1.0.so.0:libpangoft2-1.0-0 libharfbuzz-subset.so.0:libharfbuzz-subset0; do \
	  /sbin/ldconfig -p 2>/dev/null | grep -q "$${lib%%:*}" || missing="$$missing $${lib##*:}"; \
	done; \
	command -v msgfmt >/dev/null || missing="$$missing gettext"; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	fc-list 2>/dev/null | grep -qi 'noto.*cjk' || missing="$$missing fonts-noto-cjk"; \
	if [ -n "$$missing" ]; then \
	  if ! command -v apt-get >/dev/null; then echo "Please install:$$missing"; exit 1; fi; \
	  sudo=""; [ "$$(id -u)" = 0 ] || sudo="sudo"; \
	  echo "Installing$$missing"; \
	  $$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null && \
	  $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing >/dev/null; \
	fi

migrate: $(STAMP) ## Apply database migrations
	$(BIN)/python manage.py migrate --noinput

run: $(STAMP) migrate ## Migrate, load demo data and serve http://127.0.0.1:8000 with simulated center agents (and worker and beat when REDIS_URL is set)
	@mkdir -p .data
	$(BIN)/python manage.py seed_demo --agents-dir .data/agents
	@if [ -n "$$REDIS_URL" ]; then \
	  echo "REDIS_URL set: starting web, simulated agents, Celery worker and beat"; \
	  HOST=$(HOST) WEB_PORT=$(PORT) exec $(BIN)/honcho -f Procfile start; \
	else \
	  echo "Serving on http://$(HOST):$(PORT) with simulated agents (embedded PostgreSQL; tasks run in-process; in-memory channel layer)"; \
	  HOST=$(HOST) WEB_PORT=$(PORT) exec $(BIN)/honcho -f Procfile start web agents; \
	fi

test: install ## Run the whole suite (embedded PostgreSQL, or DATABASE_URL / REDIS_URL when set)
	$(BIN)/pytest $(PYTEST_ARGS)

lint: $(STAMP) ## ruff check and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP) ## Reformat and autofix with ruff
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

shell: $(STAMP) ## Django shell
	$(BIN)/python manage.py shell

messages: $(STAMP) ## Update and compile the Simplified Chinese catalog
	$(BIN)/python manage.py makemessages -l zh_Hans --ignore=.venv --ignore=.data --ignore=static --ignore=tests
	$(BIN)/python manage.py compilemessages -l zh_Hans --ignore=.venv --ignore=.data

FUZZ_EXAMPLES ?= 100
.PHONY: fuzz
fuzz: $(STAMP) ## API fuzzing (schemathesis, every operation as every caller) deeper than CI: FUZZ_EXAMPLES per operation (100); FUZZ_SEED=n for a new random walk
	FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/pytest -p no:cacheprovider --timeout=7200 tests/fuzz $(PYTEST_ARGS)

SCALE ?= default
BENCH_ARGS ?=
.PHONY: bench
bench: $(STAMP) ## Benchmarks on real PostgreSQL and a real server: one JSON line per scenario on stdout (SCALE=small: quick)
	@$(BIN)/python -m tests.bench --scale $(SCALE) $(BENCH_ARGS)

check-deploy: $(STAMP) ## System checks in production mode (must print no warnings)
	DJANGO_ENV=production SECRET_KEY=$$(openssl rand -hex 40) ALLOWED_HOSTS=compute.example.org \
	  DATABASE_URL=$${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/computenet} \
	  REDIS_URL=$${REDIS_URL:-redis://127.0.0.1:6379/0} $(BIN)/python manage.py check --deploy --fail-level WARNING

clean: ## Remove the virtualenv and caches (keeps .data, the embedded database)
	rm -rf $(VENV) .pytest_cache .ruff_cache
