# `make run` serves the studio on http://127.0.0.1:$(PORT); `make test` runs the whole suite.
SHELL := bash
.DEFAULT_GOAL := run
PORT ?= 8000
SANDBOX_PORT ?= 8001
WEB_WORKERS ?= 2
# Generation is waiting on the API: threads keep many requests in flight per process. At 5 s upstream
# latency the key's 14.5 requests/s need about 75 in flight, so 100 threads (bench/throughput.py).
CELERY_POOL ?= threads
CELERY_CONCURRENCY ?= 100
VENV := .venv
BIN := $(VENV)/bin
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)

# The first Python >= 3.12 on this machine (pyenv installs included).
PYTHON := $(shell for p in python3.14 python3.13 python3.12 python3 $$HOME/.pyenv/versions/3.1[2-9]*/bin/python3; do \
	"$$p" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null && { command -v "$$p"; break; }; done)
UV := $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)
# Celery beat (every 30 s, the job reconciler) keeps its last run times here.
VAR_DIR := $(or $(STUDIO_VAR_DIR),var)
KEY_FILE := $(or $(SANDBOX_KEY_FILE),$(VAR_DIR)/sandbox.key)
BEAT_SCHEDULE := $(VAR_DIR)/celerybeat-schedule
# The embedded broker cannot broadcast; these worker features need it.
WORKER_FLAGS := $(if $(REDIS_URL),,--without-gossip --without-mingle --without-heartbeat)

.PHONY: run install install-dev test test-fast sandbox worker beat lint typecheck bench clean

.tools/bin/uv:
	@test -n "$(PYTHON)" || { echo "Studio needs Python 3.12 or newer on PATH." >&2; exit 1; }
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet uv

# Running needs only the runtime dependencies; tests, lint and benchmarks add the dev group. Two stamps, so
# `make test` installs the dev group even where `make run` made the venv first (--inexact: a run after a
# test keeps the dev group instead of removing it).
$(VENV)/.installed-run: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --no-dev --inexact --python "$(PYTHON)"
	@touch $@

$(VENV)/.installed-dev: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --python "$(PYTHON)"
	@touch $@ $(VENV)/.installed-run

install: $(VENV)/.installed-run

install-dev: $(VENV)/.installed-dev

run: install
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py collectstatic --noinput --verbosity 0
	@if [ -z "$$STABILITY_API_KEY" ] && [ ! -s "$(KEY_FILE)" ]; then \
		$(BIN)/python manage.py sandbox_key --credits 1000 --email studio@localhost > "$(KEY_FILE).tmp" && \
		mv "$(KEY_FILE).tmp" "$(KEY_FILE)" && echo "Created a sandbox API key with 1,000 credits."; fi
	@trap 'kill $$(jobs -p) 2>/dev/null; wait' INT TERM EXIT; \
	PORT=$(PORT) $(BIN)/celery -A studio worker --beat --schedule $(BEAT_SCHEDULE) --loglevel INFO \
		--pool $(CELERY_POOL) --concurrency $(CELERY_CONCURRENCY) $(WORKER_FLAGS) & \
	PORT=$(PORT) $(BIN)/gunicorn studio.wsgi --bind 127.0.0.1:$(PORT) --workers $(WEB_WORKERS) --threads 8 \
		--worker-class gthread --timeout 300 --access-logfile - & \
	sleep 2; echo; echo "  Studio is running: open http://127.0.0.1:$(PORT)  (Ctrl-C stops it)"; echo; \
	wait -n

# More workers: `make worker` on each machine, and `make beat` on exactly one (the reconciler's clock).
worker: install
	$(BIN)/celery -A studio worker --loglevel INFO --pool $(CELERY_POOL) --concurrency $(CELERY_CONCURRENCY) $(WORKER_FLAGS)

beat: install
	$(BIN)/celery -A studio beat --loglevel INFO --schedule $(BEAT_SCHEDULE)

sandbox: install
	$(BIN)/python manage.py migrate --noinput
	@echo "Sandbox Stability v1 API on http://127.0.0.1:$(SANDBOX_PORT) (key: manage.py sandbox_key --credits N)"
	SANDBOX_STANDALONE=1 $(BIN)/gunicorn studio.wsgi --bind 127.0.0.1:$(SANDBOX_PORT) --workers 2 --threads 8 \
		--worker-class gthread --timeout 300 --access-logfile -

# axe-core, which the accessibility tests inject into Chromium (pinned in package.json and its lock).
node_modules/.installed: package.json package-lock.json
	@command -v npm >/dev/null || { echo "The accessibility tests need Node.js and npm (apt-get install npm)." >&2; exit 1; }
	npm ci --no-audit --no-fund --loglevel error
	@touch $@

test: install-dev node_modules/.installed
	@test -x /usr/bin/chromium || echo "note: browser tests need Debian's chromium at /usr/bin/chromium (apt-get install chromium)" >&2
	$(BIN)/ruff check .
	$(BIN)/mypy .
	$(BIN)/pytest

# The inner loop: everything but the browser journeys and the tests that start Celery worker processes.
test-fast: install-dev
	$(BIN)/pytest -m "not browser and not worker" -q

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install-dev
	$(BIN)/mypy .

# The throughput run needs PostgreSQL and Redis (BENCH_PG_URL, BENCH_REDIS_URL; it says so and skips without).
bench: install-dev
	$(BIN)/python -m bench
	$(BIN)/python -m bench.store
	$(BIN)/python -m bench.throughput
	$(BIN)/python -m bench.card
	$(BIN)/python -m bench.added_wait

clean:
	rm -rf $(VENV) .tools var
