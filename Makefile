# The two commands: `make run` (demo on embedded defaults) and `make test` (whole suite).
# Everything else is a building block of those two; see the README.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
POSTGRES_URL ?= postgres://postgres@127.0.0.1:5432/test
PYTEST_ARGS ?=

.PHONY: run test test-sqlite test-postgres lint format migrate demo sandbox worker browser-deps clean

# --- setup -------------------------------------------------------------------------------
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

# Debian's Chromium for the Playwright browser tests (browsers cannot be downloaded here).
browser-deps:
	@test -x /usr/bin/chromium || { \
	  echo "Installing Debian's chromium for browser tests..."; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q chromium >/dev/null \
	  || { $$SUDO apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q chromium >/dev/null; }; }

# --- run ---------------------------------------------------------------------------------
migrate: $(STAMP)
	$(BIN)/python manage.py migrate --noinput

demo: migrate
	$(BIN)/python manage.py load_demo

run: demo
	$(BIN)/python manage.py run_demo

worker: $(STAMP)
	$(BIN)/python manage.py qcluster

# --- test --------------------------------------------------------------------------------
# pytest exits 5 when it collects nothing; that is not a failure of the suite.
define pytest
	$(BIN)/pytest $(PYTEST_ARGS); rc=$$?; if [ $$rc -eq 5 ]; then rc=0; fi; exit $$rc
endef

test: lint test-sqlite test-postgres

test-sqlite: $(STAMP) browser-deps
	env -u DATABASE_URL $(call pytest)

# Runs against the machine's PostgreSQL. Outside CI a missing server is reported and skipped;
# with CI=true it is a failure.
test-postgres: $(STAMP) browser-deps
	@if $(BIN)/python -c "import psycopg,sys; psycopg.connect('$(POSTGRES_URL)', connect_timeout=3).close()" 2>/dev/null; then \
	  DATABASE_URL=$(POSTGRES_URL) $(MAKE) --no-print-directory _pytest; \
	elif [ "$$CI" = true ]; then echo "PostgreSQL at $(POSTGRES_URL) is unreachable" >&2; exit 1; \
	else echo "PostgreSQL at $(POSTGRES_URL) is unreachable: skipping the PostgreSQL run"; fi

.PHONY: _pytest
_pytest:
	$(call pytest)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache *.egg-info
