# One front door for developer commands.  `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.DEFAULT_GOAL := help

.PHONY: help demo test lint typecheck check services fetch-kafka tools system-packages clean

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

# Debian packages the tests use: redis-server (started by the tests), chromium +
# chromedriver (the console's browser test).  promtool is built by `make tools` instead,
# at the Prometheus release docker-compose.yml runs.
SYSTEM_PACKAGES := redis-server:redis-server chromium:chromium chromedriver:chromium-driver

system-packages:  ## install the Debian packages the tests need, when missing
	@missing=; for pair in $(SYSTEM_PACKAGES); do \
	  command -v $${pair%%:*} >/dev/null || missing="$$missing $${pair##*:}"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; fi

fetch-kafka: $(VENV)/.installed-dev  ## download the Kafka broker's jars from Maven Central (cached)
	$(PY) deploy/local/services.py fetch

# Go (1.26, /usr/local/go/bin on these machines) builds them through the Go module proxy.
tools: $(VENV)/.installed-dev  ## build compose-check (compose-go) and promtool (compose's Prometheus), cached
	PATH="$$PATH:/usr/local/go/bin" $(PY) deploy/local/gotools.py build

test: $(VENV)/.installed-dev system-packages fetch-kafka tools  ## install everything, start Kafka + Redis, run all tests
	$(PY) -m pytest $(PYTEST_ARGS)

services: $(VENV)/.installed-dev system-packages fetch-kafka  ## run a local Kafka broker and Redis until Ctrl-C
	$(PY) deploy/local/services.py up

lint: $(VENV)/.installed-dev  ## ruff
	$(VENV)/bin/ruff check src tests $(wildcard bench) deploy/local .ci
	$(VENV)/bin/ruff format --check src tests $(wildcard bench) deploy/local .ci

typecheck: $(VENV)/.installed-dev  ## mypy --strict on the package
	$(VENV)/bin/mypy

check: lint typecheck  ## lint and type-check

clean:  ## remove the virtualenv and caches (not the cached Kafka jars)
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .ci/out

.PHONY: console-screenshot
console-screenshot: $(VENV)/.installed-dev system-packages fetch-kafka  ## redo docs/console-incident.png from the browser test
	RISKSTREAM_SCREENSHOT_DIR=docs $(PY) -m pytest -p no:cacheprovider tests/integration/test_console.py
