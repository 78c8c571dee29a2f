# Two commands matter: `make run` (the local stack) and `make test` (every check and test).
# Both install what they need on first use, into .venv (the SAM CLI into .venv/sam: its pins clash with moto's).

SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
SAM := $(VENV)/sam/bin/sam
export SAM_CLI_TELEMETRY := 0
# Bytecode is written once and reused by every later interpreter (each Lambda worker, each test process), in
# .venv/pycache rather than in the repository's __pycache__ folders; uv installs packages without it.
unexport PYTHONDONTWRITEBYTECODE
export PYTHONPYCACHEPREFIX := $(CURDIR)/$(VENV)/pycache

RUN_STAMP := $(VENV)/.installed-run
DEV_STAMP := $(VENV)/.installed-dev
SAM_STAMP := $(VENV)/sam/.installed
CHECKOV_STAMP := $(VENV)/checkov/.installed
# pytest-xdist: a worker per core; a test file stays on one worker (its module fixtures, an e2e module's own
# local stack, start once). `make test XDIST=` runs everything in one process.
XDIST ?= -n auto --dist loadfile

.PHONY: run metrics test pytest fuzz load scan lint typecheck template openapi openapi-check unit integration e2e bench build deploy-dev deploy-prod admin-key rotate-token-secret invoke lock clean demo

run: $(RUN_STAMP) ## Start the local stack: API :3000, Lambda invoke :3001, AWS emulation :5000
	ROLLUP_SETTLE_SECONDS=$${ROLLUP_SETTLE_SECONDS:-0} $(PY) -m local_stack run $(ARGS)

metrics: $(RUN_STAMP) ## The last hour of a running `make run`'s metrics (AWS_PORT, default 5000)
	$(PY) -m local_stack metrics

demo: $(RUN_STAMP) ## Against a running `make run`: a demo tenant with weeks of activity; prints the dashboard URL and key
	$(PY) -m ops.demo

test: lint typecheck template openapi-check scan pytest ## Everything CI checks (`make -j test`: all at once, as .ci/run does)

pytest: $(DEV_STAMP) ## Every test tier
	$(PY) -m pytest tests $(XDIST)
	@# The e2e conftest names it too, but not from pytest-xdist's workers
	@! ls $${SCREENSHOT_DIR:-.artifacts/screenshots}/*.png >/dev/null 2>&1 || echo "Dashboard screenshots in $${SCREENSHOT_DIR:-.artifacts/screenshots}"

scan: $(DEV_STAMP) $(CHECKOV_STAMP) ## bandit (medium and up fail), pip-audit on the locked dependencies, checkov on template.yaml
	$(VENV)/bin/bandit -q -r layers functions local_stack ops clients/python/src -ll
	$(VENV)/bin/pip-audit --disable-pip --no-deps -r requirements/run.txt -r layers/deps/requirements.txt 2>&1 | tee .venv/pip-audit.txt | head -3
	@! grep -q "could not be audited" .venv/pip-audit.txt || echo "pip-audit: the vulnerability service was out of reach for some packages (listed in .venv/pip-audit.txt); they were not audited."
	$(VENV)/checkov/bin/checkov --config-file .checkov.yaml -f template.yaml

lint: $(DEV_STAMP) ## ruff, and the architecture contracts of pyproject.toml (import-linter)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	PYTHONPATH=layers/tracker $(VENV)/bin/lint-imports --no-cache

typecheck: $(DEV_STAMP)
	$(VENV)/bin/mypy layers/tracker/tracker functions local_stack ops clients/python/src

template: $(SAM_STAMP) ## sam validate --lint and sam build (compiled packages must match the functions' architecture)
	$(SAM) validate --lint
	$(SAM) build --cached --parallel
	$(PY) -m local_stack check-build .aws-sam/build

openapi: $(RUN_STAMP) ## Regenerate docs/openapi.json from the handlers' models
	$(PY) -m local_stack openapi

openapi-check: $(RUN_STAMP)
	$(PY) -m local_stack openapi --check

unit: $(DEV_STAMP)
	$(PY) -m pytest tests/unit $(XDIST)

integration: $(DEV_STAMP)
	$(PY) -m pytest tests/integration $(XDIST)

e2e: $(DEV_STAMP)
	$(PY) -m pytest tests/e2e $(XDIST)

fuzz: $(DEV_STAMP) ## schemathesis over every operation of the OpenAPI document, longer than in make test
	FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-500} $(PY) -m pytest tests/e2e/test_fuzz.py -s

load: $(DEV_STAMP) ## 64 keep-alive and new-connection clients (singles, batches of 500, queries, statistics); then checks nothing was lost or counted twice
	$(PY) -m loadtest --clients $${LOAD_CLIENTS:-64} --seconds $${LOAD_SECONDS:-60} --batch-size $${LOAD_BATCH:-500}

bench: $(DEV_STAMP) ## Cold-import times and local ingest throughput
	$(PY) -m bench

build: $(SAM_STAMP)
	$(SAM) build --cached --parallel

deploy-dev: build
	$(SAM) deploy --config-env dev

deploy-prod: build
	$(SAM) deploy --config-env prod

admin-key: $(RUN_STAMP) ## Make an admin key in a deployed stack: make admin-key STACK=activity-tracker-dev
	$(PY) -m ops.admin_key --stack $(STACK)

rotate-token-secret: $(RUN_STAMP) ## New signing secret for access tokens in a deployed stack: make rotate-token-secret STACK=...
	$(PY) -m ops.rotate_token_secret --stack $(STACK)

invoke: $(RUN_STAMP) ## Like sam local invoke, in-process: make invoke FUNCTION=IngestFunction EVENT=events/ingest/post_event.json
	$(PY) -m local_stack invoke $(FUNCTION) -e $(EVENT)

lock: $(VENV)/bin/uv ## Re-pin requirements/*.txt from requirements/*.in
	cd requirements && for name in run dev sam checkov; do ../$(UV) pip compile -q --python-version 3.11 $$name.in -o $$name.txt; done

clean:
	rm -rf .aws-sam .pytest_cache .mypy_cache .ruff_cache .hypothesis

# The venvs get no pip of their own (ensurepip costs seconds): this Python's pip puts uv into .venv, and uv
# installs everything else. A Python whose pip cannot (older than 22.3, or none) falls back to ensurepip.
$(VENV)/bin/uv:
	$(PYTHON) -m venv --without-pip $(VENV)
	$(PYTHON) -m pip --python $(PY) install -q --disable-pip-version-check uv==0.13.9 2>/dev/null || \
		{ $(PY) -m ensurepip -q && $(PY) -m pip install -q --disable-pip-version-check uv==0.13.9; }

$(RUN_STAMP): requirements/run.txt | $(VENV)/bin/uv
	$(UV) pip install -q --python $(PY) -r requirements/run.txt
	touch $@

$(DEV_STAMP): requirements/dev.txt $(RUN_STAMP)
	$(UV) pip install -q --python $(PY) -r requirements/dev.txt
	touch $@

$(CHECKOV_STAMP): requirements/checkov.txt | $(VENV)/bin/uv
	$(PYTHON) -m venv --without-pip $(VENV)/checkov
	$(UV) pip install -q --python $(VENV)/checkov/bin/python -r requirements/checkov.txt
	touch $@

$(SAM_STAMP): requirements/sam.txt | $(VENV)/bin/uv
	$(PYTHON) -m venv --without-pip $(VENV)/sam
	$(UV) pip install -q --python $(VENV)/sam/bin/python -r requirements/sam.txt
	touch $@
