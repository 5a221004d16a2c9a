# Every target builds its own virtualenv, so a fresh clone needs nothing but python3,
# the gcloud emulators and Java (the harness says what to install if they are missing).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: help venv test lint typecheck unit dev demo sweep bench soak chaos schema diagram deploy clean

help:
	@echo "make demo   - run the whole pipeline on local emulators and check the outcome"
	@echo "make test   - lint, typecheck and the full test suite (emulators started for you)"
	@echo "make dev    - emulators + both functions, runs until Ctrl-C"
	@echo "make bench  - benchmarks, writes bench/results/"
	@echo "make soak   - 10,000 Stripe-simulator stories through the domain, agreement per kind"
	@echo "make chaos  - 2,000 events through the emulator stack under kills and a Firestore stall"
	@echo "make sweep  - publish outbox entries stuck longer than the threshold"
	@echo "make deploy - how to apply infra/terraform to a Google Cloud project"

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy functions statemachine schemas infra bench main.py

# pytest exits 5 when it collected nothing; make treats any non-zero exit as failure.
test: lint typecheck
	$(PY) -m pytest -q -p no:cacheprovider --durations=10 --cov --cov-report=term-missing:skip-covered

unit: $(STAMP)
	$(PY) -m pytest -q -m "not emulator"

dev: $(STAMP)
	$(PY) -m infra.local.stack dev

demo: $(STAMP)
	$(PY) -m infra.local.demo

sweep: $(STAMP)
	$(VENV)/bin/billing-ops relay sweep

bench: $(STAMP)
	$(PY) -m bench.run

# 10,000 simulator stories through the domain (SOAK_STORIES to change); fails on any
# disagreement with Stripe. make test runs a bounded sample of the same check.
SOAK_STORIES ?= 10000
soak: $(STAMP)
	$(PY) -m tests.support.soak --stories $(SOAK_STORIES)

# Worker and master kills of both functions and a 20 s Firestore stall during a burst of
# 2,000 events over 200 customers; fails unless nothing is lost, applied twice, out of
# version order or unlike the in-order outcome. make test runs a smaller slice of it.
chaos: $(STAMP)
	$(PY) -m tests.support.chaos

schema: $(STAMP)
	$(PY) -m schemas.export

diagram: $(STAMP)
	$(PY) -m statemachine.diagram > runbooks/state-diagram.md

deploy:
	@cat infra/terraform/DEPLOY.md

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .coverage
