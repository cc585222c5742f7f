# The two commands: `make run` (demo on embedded defaults) and `make test` (whole suite).
# Everything else is a building block of those two; see the README.

# Python 3.11 is what pyproject.toml requires; fall back to python3 where it is that version.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# Stamps: re-installed whenever pyproject.toml (the pins) is newer than the last install.
RUN_STAMP := $(VENV)/.installed-run
TEST_STAMP := $(VENV)/.installed-test
PIP := $(BIN)/python -m pip install --quiet --disable-pip-version-check --no-input
POSTGRES_URL ?= postgres://postgres@127.0.0.1:5432/test
# Two xdist workers, whole files per worker (module fixtures such as the demo data or a browser
# then run once). The suite waits on subprocesses, a browser and databases as much as it
# computes, so two workers finish sooner on two cores; `make test PYTEST_ARGS=` runs in one.
PYTEST_ARGS ?= -n 2 --dist loadfile

.PHONY: messages catalogues vendor gettext-deps fonts-deps run test test-sqlite test-postgres test-clock lint format migrate demo demo-refresh worker lock \
	browser-deps install install-test clean bench bench-scale bench-push

# --- setup -------------------------------------------------------------------------------
install: $(RUN_STAMP)
install-test: $(TEST_STAMP)

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

# `make run` needs only the product's pins; the test extras (Playwright, ruff...) come with
# `make test`.
$(RUN_STAMP): pyproject.toml constraints.txt | $(VENV)/bin/python
	$(PIP) -c constraints.txt -e .
	touch $@

$(TEST_STAMP): pyproject.toml constraints.txt | $(VENV)/bin/python
	$(PIP) -c constraints.txt -e '.[test]'
	touch $(RUN_STAMP) $@

# A Debian package, installed only when missing (sudo unless root; `apt-get update` once if
# the package lists are stale): $(call apt_install,<package>,<why>).
define apt_install
{ echo "Installing Debian's $(1) $(2)..."; \
  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q $(1) >/dev/null \
  || { $$SUDO apt-get update -q >/dev/null \
       && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q $(1) >/dev/null; }; }
endef

# Debian's Chromium for the Playwright browser tests (browsers cannot be downloaded here).
browser-deps:
	@test -x /usr/bin/chromium || $(call apt_install,chromium,for browser tests)

# Debian's gettext: makemessages and compilemessages call xgettext, msgmerge and msgfmt.
gettext-deps:
	@command -v msgfmt >/dev/null || $(call apt_install,gettext,for the translation catalogues)

# Debian's Noto CJK fonts, so Japanese and Chinese pages render in the browser tests.
fonts-deps:
	@test -d /usr/share/fonts/opentype/noto || $(call apt_install,fonts-noto-cjk,for Japanese and Chinese pages)

# Translations (docs/i18n.md). `make messages` re-extracts every string into the .po
# catalogues under locale/ (committed; translators edit them); `make catalogues` compiles them
# to .mo files, which are build output and not committed (`make run` and `make test` build
# them). The sandbox and the tests are not the product's text and are not extracted.
LOCALES := de ja zh_Hans
MESSAGES_IGNORE := --ignore=.venv --ignore=var --ignore=tests --ignore=bench \
	--ignore=exchange_ext/sandbox --ignore=build
messages: $(TEST_STAMP) gettext-deps
	$(BIN)/python manage.py makemessages --no-location --no-obsolete $(MESSAGES_IGNORE) \
	  $(foreach l,$(LOCALES),-l $(l))

# htmx (progressive enhancement of the Exchange pages: live run progress), from the npm
# registry at a pinned version, checked against its SHA-256; build output like the catalogues,
# not committed. Pages work without it.
HTMX_VERSION := 2.0.11
HTMX_SHA256 := d6fdc75f204e6bdefa99b69bf1e6d4ac69b8a364f77929f45c13476b4000f717
HTMX := static/vendor/htmx.min.js
vendor: $(HTMX)
$(HTMX):
	@command -v npm >/dev/null || $(call apt_install,npm,to fetch htmx)
	@mkdir -p $(dir $@); tmp=$$(mktemp -d); \
	  (cd $$tmp && npm pack --silent htmx.org@$(HTMX_VERSION) >/dev/null \
	    && tar xzf htmx.org-$(HTMX_VERSION).tgz package/dist/htmx.min.js) \
	  && echo "$(HTMX_SHA256)  $$tmp/package/dist/htmx.min.js" | sha256sum -c --quiet \
	  && cp $$tmp/package/dist/htmx.min.js $@; rc=$$?; rm -rf $$tmp; exit $$rc

CATALOGUES := $(foreach l,$(LOCALES),locale/$(l)/LC_MESSAGES/django.mo)
catalogues: $(CATALOGUES)
locale/%/LC_MESSAGES/django.mo: locale/%/LC_MESSAGES/django.po | gettext-deps
	msgfmt --check-format -o $@ $<

# Re-pin every transitive dependency after changing pyproject.toml (from a fresh install).
lock:
	rm -rf .venv-lock && $(PYTHON) -m venv .venv-lock
	.venv-lock/bin/pip install --quiet --disable-pip-version-check -e '.[test]'
	{ sed -n '1,2p' constraints.txt; .venv-lock/bin/pip freeze --exclude-editable; } > constraints.txt.new
	mv constraints.txt.new constraints.txt && rm -rf .venv-lock

# --- run ---------------------------------------------------------------------------------
migrate: $(RUN_STAMP) catalogues $(HTMX)
	$(BIN)/python manage.py migrate --noinput

demo: migrate
	$(BIN)/python manage.py load_demo
	$(BIN)/python manage.py exchange_demo_setup

# New calendar items around today (the people and accounts stay as they are).
demo-refresh: migrate
	$(BIN)/python manage.py load_demo --refresh-calendar

run: demo
	$(BIN)/python manage.py run_demo

worker: $(RUN_STAMP)
	$(BIN)/python manage.py qcluster

# --- test --------------------------------------------------------------------------------
# pytest exits 5 when it collects nothing; that is not a failure of the suite. REDIS_URL is
# unset so the suite's settings do not depend on the caller's shell (the worker tests use
# Redis on their own).
# The sync state machine explores 500 random histories in `make test` (CI), 100 by default.
SYNC_MACHINE_EXAMPLES ?= 500
# The longest one pytest run may take (a run takes about 6 minutes on two cores).
PYTEST_LIMIT ?= 25m
define pytest
	env -u REDIS_URL SYNC_MACHINE_EXAMPLES=$(SYNC_MACHINE_EXAMPLES) \
	  timeout --signal=INT --kill-after=60 $(PYTEST_LIMIT) $(BIN)/pytest $(PYTEST_ARGS); rc=$$?; if [ $$rc -eq 5 ]; then rc=0; fi; exit $$rc
endef

test: lint test-sqlite test-postgres test-clock

test-sqlite: $(TEST_STAMP) browser-deps fonts-deps catalogues $(HTMX)
	env -u DATABASE_URL $(call pytest)

# Runs against the machine's PostgreSQL. Outside CI a missing server is reported and skipped;
# with CI=true it is a failure.
test-postgres: $(TEST_STAMP) browser-deps fonts-deps catalogues $(HTMX)
	@if $(BIN)/python -c "import psycopg,sys; psycopg.connect('$(POSTGRES_URL)', connect_timeout=3).close()" 2>/dev/null; then \
	  echo "DATABASE_URL=$(POSTGRES_URL) pytest $(PYTEST_ARGS)"; \
	  DATABASE_URL=$(POSTGRES_URL) $(MAKE) --no-print-directory _pytest; \
	elif [ "$$CI" = true ]; then echo "PostgreSQL at $(POSTGRES_URL) is unreachable" >&2; exit 1; \
	else echo "PostgreSQL at $(POSTGRES_URL) is unreachable: skipping the PostgreSQL run"; fi

# The whole suite but the browser tests, on SQLite, with the wall clock of pytest and of every
# Python process it starts moved to each of CLOCK_DATES (UTC; time still passes) by
# tests/clock_shift/sitecustomize.py (time-machine; it says why not libfaketime). The dates: a
# few hours before Europe/Berlin springs forward, the evening before America/New_York falls
# back, a leap day, New Year's Eve half an hour before midnight (UTC and Europe/Berlin then
# disagree on the year), and 60 days from today. Every process gets the same offset from the
# real clock (not a start time of its own, which each child would restart from). The sync state
# machine replays the same (derandomized) histories as the runs above, at each date.
# Each pytest run is bounded (PYTEST_LIMIT): a hung run fails with its stacks instead of
# holding CI until its own limit. The sandbox's own protocol tests (tests/sandbox, test
# equipment, not the product; a minute and a half a run) run at one shifted date,
# CLOCK_SANDBOX_DATE; at the others the product's integration tests drive the sandbox anyway.
CLOCK_DATES ?= "2027-03-27 21:30" "2027-11-07 03:00" "2028-02-29 12:00" "2026-12-31 23:30" \
	"+60 days"
CLOCK_SANDBOX_DATE ?= 2026-12-31 23:30
test-clock: $(TEST_STAMP) catalogues $(HTMX)
	@for when in $(CLOCK_DATES); do \
	  offset=$$(( $$(date -u -d "$$when" +%s) - $$(date -u +%s) )); \
	  skip=--ignore=tests/sandbox; [ "$$when" = "$(CLOCK_SANDBOX_DATE)" ] && skip=; \
	  echo "== test-clock: $$(date -u -d "$$when" '+%Y-%m-%d %H:%M UTC') (offset $${offset}s) $$skip"; \
	  TEST_CLOCK_OFFSET=$$offset PYTHONPATH=$(CURDIR)/tests/clock_shift \
	    env -u REDIS_URL -u DATABASE_URL SYNC_MACHINE_EXAMPLES=$(SYNC_MACHINE_EXAMPLES) \
	    timeout --signal=INT --kill-after=60 $(PYTEST_LIMIT) \
	    $(BIN)/pytest -m "not browser" $$skip $(PYTEST_ARGS); rc=$$?; \
	  if [ $$rc -ne 0 ] && [ $$rc -ne 5 ]; then exit $$rc; fi; \
	done

.PHONY: _pytest
_pytest:
	@$(call pytest)

# --- benchmark ---------------------------------------------------------------------------
# The sync benchmark (docs/performance.md), outside `make test`: run_sync against an in-process
# sandbox on a fresh temporary SQLite database; prints a table, writes JSON under var/bench/.
# `make bench BENCH_ARGS="--items 1000 --memory-items 0 --backend ews"` for a quicker run.
BENCH_ARGS ?=
bench: $(TEST_STAMP)
	@mkdir -p var/bench
	env -u DATABASE_URL -u REDIS_URL $(BIN)/python bench/sync_bench.py \
	  --json var/bench/sync-$$(date -u +%Y%m%dT%H%M%SZ).json $(BENCH_ARGS)

# The scale benchmark (docs/performance.md, "Scale"): real qcluster processes on a fresh
# PostgreSQL database (postgres://postgres@127.0.0.1:5432, dropped at the end) + Redis, sandbox
# in a child process. `make bench-scale BENCH_ARGS="--resources 100"` for a quicker run.
bench-scale: $(TEST_STAMP)
	@mkdir -p var/bench
	$(BIN)/python bench/scale_bench.py \
	  --json var/bench/scale-$$(date -u +%Y%m%dT%H%M%SZ).json $(BENCH_ARGS)

# The push benchmark (docs/performance.md, "Push"): edit-to-PSA latency with real runserver,
# qcluster and exchange_listen processes, about 14 minutes.
# `make bench-push BENCH_ARGS="--backend ews --edits 20"` for a quicker run.
bench-push: $(TEST_STAMP)
	@mkdir -p var/bench
	env -u DATABASE_URL -u REDIS_URL $(BIN)/python bench/push_bench.py \
	  --json var/bench/push-$$(date -u +%Y%m%dT%H%M%SZ).json $(BENCH_ARGS)

# Style, the architecture's import boundaries (pyproject.toml, [tool.importlinter]) and strict
# types on the pure core and the backend interface.
lint: $(TEST_STAMP) gettext-deps
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy --strict exchange_ext/sync exchange_ext/backends/base.py

format: $(TEST_STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache .mypy_cache .import_linter_cache *.egg-info
