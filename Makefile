# Every target bootstraps .venv itself (scripts/bootstrap.sh), so a fresh clone needs
# nothing but python3 (and apt-get as root for libzbar0 and the CJK fonts).
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.bootstrapped

.PHONY: help install run demo test lint typecheck imports unit bench fixtures clean

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml scripts/bootstrap.sh
	bash scripts/bootstrap.sh
	@touch $(STAMP)

install: $(STAMP) ## create .venv and install everything

run: $(STAMP) ## start the whole system on this machine (Ctrl-C stops it)
	$(VENV)/bin/simgate up

demo: $(STAMP) ## post the fixture orders to a running system (make run in another terminal)
	$(VENV)/bin/simgate demo

lint: $(STAMP) ## ruff check + format check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP) ## mypy --strict on vision/ and services/
	$(VENV)/bin/mypy

imports: $(STAMP) ## import rules: vision stays a pure library
	$(VENV)/bin/lint-imports

test: lint typecheck imports ## everything CI runs: lint, types, import rules, pytest
	$(VENV)/bin/pytest

unit: $(STAMP) ## fast tests only
	$(VENV)/bin/pytest -m "not slow"

bench: $(STAMP) ## ID-card reading benchmark (generates a fresh set)
	$(VENV)/bin/simgate bench idcards

fixtures: $(STAMP) ## regenerate the committed sample of synthetic ID-card captures
	$(VENV)/bin/simgate fixtures idcards --out fixtures/idcards --count 8 --seed 7 --sample

clean: ## remove the venv and caches
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
