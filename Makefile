# Everything a fresh machine needs goes through these targets: `make test` and `make crawl`
# create the virtual environment on first use.
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin
STAMP = $(VENV)/.installed-stamp

.PHONY: install test crawl bench lint

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,bench]'
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .

crawl: $(STAMP)
	$(BIN)/kremlin-archive crawl $(ARGS)

bench: $(STAMP)
	$(BIN)/python bench/run.py
