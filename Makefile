# The README's commands. Every target installs what it needs first (.ci/setup is idempotent).
PYTHON ?= python3
SPEC ?= examples/lab.json

.PHONY: setup test test-fast demo demo-down lint bench

setup:
	@bash .ci/setup

test: setup lint
	$(PYTHON) -m pytest

test-fast: setup
	$(PYTHON) -m pytest -m "not lab and not terraform and not vm"

lint:
	$(PYTHON) -m ruff check cloudcast tests benchmarks
	$(PYTHON) -m mypy

demo: setup
	$(PYTHON) -m cloudcast lab up
	$(PYTHON) -m cloudcast apply $(SPEC) --auto-approve
	$(PYTHON) -m cloudcast status $(SPEC)

demo-down:
	-$(PYTHON) -m cloudcast destroy $(SPEC) --auto-approve
	$(PYTHON) -m cloudcast lab down

bench: setup
	$(PYTHON) benchmarks/bench_compile.py
