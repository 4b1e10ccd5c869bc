# Everything a fresh machine needs goes through these targets: `make test` and `make crawl`
# create the virtual environment on first use.
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin
STAMP = $(VENV)/.installed-stamp

.PHONY: install system-deps try-system-deps pywb test test-fast crawl bench lint

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,bench]'
	touch $(STAMP)

install: $(STAMP)

# Headless Chromium for the browser tests (pytest marker `browser`: the transcript-page
# screenshot), from Debian. Never prompts: chromium already on PATH -> nothing to do; root ->
# apt-get; passwordless sudo (`sudo -n true`) -> sudo -n apt-get; otherwise one line says how to
# get it. `make system-deps` fails when it cannot install; `make test`/`test-fast` go on without
# (pytest then skips the browser tests with one line) unless KREMLIN_REQUIRE_BROWSER=1 (.ci/run).
CHROMIUM_NAMES = chromium chromium-browser google-chrome
BROWSER_HINT = sudo make system-deps (or install Debian's chromium)
HAVE_CHROMIUM = for name in $(CHROMIUM_NAMES); do command -v $$name >/dev/null 2>&1 && exit 0; done; false

# $(call get-chromium,STRICT): STRICT 1 fails when chromium cannot be had, 0 goes on.
define get-chromium
@if ( $(HAVE_CHROMIUM) ); then exit 0; fi; \
if [ "$$(id -u)" = 0 ]; then sudo=; \
elif sudo -n true >/dev/null 2>&1; then sudo="sudo -n"; \
else echo "system-deps: chromium is not installed and installing it needs root; the browser tests need it: $(BROWSER_HINT)"; exit $(1); fi; \
if ! { $$sudo apt-get update -qq && \
  $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-dejavu-core >/dev/null; } \
  || ! ( $(HAVE_CHROMIUM) ); then \
  echo "system-deps: could not install chromium with apt-get; the browser tests need it: $(BROWSER_HINT)"; exit $(1); fi
endef

system-deps:
	$(call get-chromium,1)

# What the test targets run first: as system-deps, but a browser that cannot be had is not an
# error unless KREMLIN_REQUIRE_BROWSER=1.
try-system-deps:
	$(call get-chromium,$(if $(filter 1,$(KREMLIN_REQUIRE_BROWSER)),1,0))

# pywb 2.10, for the test that replays a `package` WACZ in it (tests/test_package.py), in an
# environment of its own: it pins pyOpenSSL, werkzeug and brotlipy, which would break Scrapy's
# dependencies in $(VENV). The test finds it here (or KREMLIN_PYWB_BIN: its bin folder).
PYWB_VENV ?= .venv-pywb
PYWB_STAMP = $(PYWB_VENV)/.installed-stamp

$(PYWB_STAMP):
	$(PYTHON) -m venv $(PYWB_VENV)
	$(PYWB_VENV)/bin/pip install --quiet 'pywb==2.10.*'
	touch $(PYWB_STAMP)

pywb: $(PYWB_STAMP)

# Everything (what CI runs): about 15 minutes on 2 cores; the 15 slowest tests are listed last.
test: $(STAMP) try-system-deps pywb
	$(BIN)/pytest --durations=15

# The quick tier to run while working: everything not marked `slow` (no crawls, no sweeps).
test-fast: $(STAMP) try-system-deps pywb
	$(BIN)/pytest -m "not slow" -q

lint: $(STAMP)
	$(BIN)/ruff check .

crawl: $(STAMP)
	$(BIN)/kremlin-archive crawl $(ARGS)

bench: $(STAMP)
	$(BIN)/python bench/run.py
