# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
NATIVE := $(VENV)/.native

.PHONY: run test lint typecheck unit browser bench scenarios native clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The per-event modules compiled with mypyc (infra/native.py); without a C compiler
# the build says so and everything runs from the sources, unless
# LUCIDSTREAM_NATIVE_REQUIRED is set (CI: a change that breaks the build fails there).
# Bytecode too: where writing it is off (PYTHONDONTWRITEBYTECODE, common in containers)
# every process would compile the project's sources at its start.
$(NATIVE): $(STAMP) infra/native.py $(wildcard operators/*.py)
	$(BIN)/python infra/native.py || { test -z "$$LUCIDSTREAM_NATIVE_REQUIRED" && \
	  echo "native build skipped: running from the sources"; }
	$(BIN)/python -m compileall -q flows operators sinks benchmarks infra >/dev/null
	touch $(NATIVE)

native: $(NATIVE)

run: $(NATIVE)
	$(BIN)/lucidstream run --duration 30 --store chdb://$(CURDIR)/lucidstream-data

lint: $(STAMP)
	$(BIN)/ruff check flows operators sinks tests benchmarks infra

typecheck: $(STAMP)
	$(BIN)/mypy

# Two workers, a test file each at a time (module fixtures such as the scenario
# suite's run and the Kafka broker are built once per file).
unit: $(NATIVE) browser
	$(BIN)/python -m pytest -q -n 2 --dist loadfile
	LUCIDSTREAM_NATIVE=0 $(BIN)/python -m pytest -q -p no:cacheprovider $(wildcard operators/*.py)

# The dashboard's browser test drives Debian's headless Chromium.
browser:
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

test: lint typecheck unit

bench: $(NATIVE)
	$(BIN)/python -m benchmarks --events 1000000
	$(BIN)/python -m benchmarks.detection

# The fault scenario suite in full: every scenario, 5 seeds, 300 s of event time each.
scenarios: $(NATIVE)
	$(BIN)/lucidstream scenarios run --seeds 1,2,3,4,5 --dir $(CURDIR)/scenario-results

clean:
	rm -f operators/*.so operators/_native.json
	rm -rf $(VENV) lucidstream-data scenario-results .pytest_cache .mypy_cache .ruff_cache
