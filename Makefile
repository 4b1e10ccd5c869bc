# Everything a fresh machine needs goes through these targets: `make test` and `make crawl`
# create the virtual environment on first use.
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin
STAMP = $(VENV)/.installed-stamp

.PHONY: install system-deps test test-fast crawl bench lint

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,bench]'
	touch $(STAMP)

install: $(STAMP)

# Headless Chromium for the transcript-page screenshot test (Debian's package; needs root or sudo).
system-deps:
	@command -v chromium >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium fonts-dejavu-core >/dev/null; }

# Everything (what CI runs): about 6 minutes on 2 cores.
test: $(STAMP) system-deps
	$(BIN)/pytest

# The quick tier to run while working: everything not marked `slow` (no crawls, no sweeps).
test-fast: $(STAMP) system-deps
	$(BIN)/pytest -m "not slow" -q

lint: $(STAMP)
	$(BIN)/ruff check .

crawl: $(STAMP)
	$(BIN)/kremlin-archive crawl $(ARGS)

bench: $(STAMP)
	$(BIN)/python bench/run.py
