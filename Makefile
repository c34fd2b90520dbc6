# One front door for developer commands.  `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.DEFAULT_GOAL := help

.PHONY: help demo test lint typecheck check services fetch-kafka redis-server clean

help:  ## list the commands
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml $(VENV)/.installed
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

demo: $(VENV)/.installed  ## install riskstream into .venv and run `riskstream demo` (no servers)
	$(VENV)/bin/riskstream demo

redis-server:  ## install Debian's redis-server when it is missing (the tests start their own)
	@command -v redis-server >/dev/null || { \
	  echo "installing redis-server (Debian package)"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq redis-server >/dev/null; }

fetch-kafka: $(VENV)/.installed-dev  ## download the Kafka broker's jars from Maven Central (cached)
	$(PY) deploy/local/services.py fetch

test: $(VENV)/.installed-dev redis-server fetch-kafka  ## install everything, start Kafka + Redis, run all tests
	$(PY) -m pytest $(PYTEST_ARGS)

services: $(VENV)/.installed-dev redis-server fetch-kafka  ## run a local Kafka broker and Redis until Ctrl-C
	$(PY) deploy/local/services.py up

lint: $(VENV)/.installed-dev  ## ruff
	$(VENV)/bin/ruff check src tests $(wildcard bench) deploy/local .ci
	$(VENV)/bin/ruff format --check src tests $(wildcard bench) deploy/local .ci

typecheck: $(VENV)/.installed-dev  ## mypy --strict on the package
	$(VENV)/bin/mypy

check: lint typecheck  ## lint and type-check

clean:  ## remove the virtualenv and caches (not the cached Kafka jars)
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .ci/out
