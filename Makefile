# Two commands do all the set-up: `make run` and `make test` (see README.md).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: run demo test test-faults lint install migrate seed lock clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	$(PY) -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[dev]'
	touch $@

install: $(STAMP)

migrate: install
	$(VENV)/bin/zhifa db upgrade

seed: migrate
	$(VENV)/bin/zhifa demo seed

run: seed
	$(VENV)/bin/zhifa serve

# The server and two simulated terminals through one whole case, narrated (README "Tour");
# DEMO_ARGS: --seconds N (recording length, default 60), --exit (stop the server at the end).
demo: seed
	$(PY) -m tour $(DEMO_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

test: install
	$(VENV)/bin/lint-imports
	$(VENV)/bin/ruff check .
	$(VENV)/bin/python -m pytest -q $(PYTEST_ARGS)

# Kills, flaky networks, a database restart, a full disk, wrong clocks, schemathesis (tests/faults).
test-faults: install
	$(VENV)/bin/python -m pytest -q -m faults tests/faults $(PYTEST_ARGS)

# Re-pin every dependency after changing pyproject.toml.
lock:
	rm -rf /tmp/zhifa-lock && $(PYTHON) -m venv /tmp/zhifa-lock
	/tmp/zhifa-lock/bin/pip install -q '.[dev]'
	/tmp/zhifa-lock/bin/pip freeze --exclude zhifa > constraints.txt

clean:
	rm -rf $(VENV) var
