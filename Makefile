# Edge Metrics Server: `make run` serves on $(PORT), `make test` runs the whole suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=
# The suite runs on SQLite, then on PostgreSQL at TEST_DATABASE_URL, or at this address
# when a server answers on 127.0.0.1:5432.
LOCAL_POSTGRES_URL ?= postgres://postgres@127.0.0.1:5432/test

.PHONY: run test bench lint lock api-reference superuser token clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is required")'
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e .
	@touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $@ $(VENV)/.installed

run: $(VENV)/.installed
	$(BIN)/python manage.py prepare_server
	exec $(BIN)/gunicorn -c edgeserver/gunicorn.conf.py

test: $(VENV)/.installed-dev
	@echo "== test suite on SQLite =="
	env -u DATABASE_URL $(BIN)/python -m pytest $(PYTEST_ARGS)
	@url="$${TEST_DATABASE_URL:-}"; \
	if [ -z "$$url" ] && $(BIN)/python -c 'import socket; socket.create_connection(("127.0.0.1", 5432), 2)' 2>/dev/null; then \
	  url="$(LOCAL_POSTGRES_URL)"; \
	fi; \
	if [ -n "$$url" ]; then \
	  echo "== test suite on PostgreSQL =="; \
	  DATABASE_URL="$$url" $(BIN)/python -m pytest $(PYTEST_ARGS) || exit 1; \
	elif [ "$${REQUIRE_POSTGRES:-}" = "1" ]; then \
	  echo "REQUIRE_POSTGRES=1 but no PostgreSQL: set TEST_DATABASE_URL or start one on 127.0.0.1:5432" >&2; exit 1; \
	else \
	  echo "== PostgreSQL pass skipped: no TEST_DATABASE_URL and nothing on 127.0.0.1:5432 =="; \
	fi

# Benchmarks (bench/README.md): needs wrk (apt-get install wrk); never part of `make test`.
bench: $(VENV)/.installed-dev
	$(BIN)/python -m bench $(BENCH_ARGS)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .

# docs/API.md and the README's error table, from the OpenAPI schema (a test checks them).
api-reference: $(VENV)/.installed
	$(BIN)/python manage.py api_reference

# The exact, hashed dependency set the container image installs (Dockerfile): refresh it
# after changing the dependencies in pyproject.toml, and commit it.
lock: $(VENV)/.installed-dev
	$(BIN)/pip-compile --quiet --generate-hashes --strip-extras --allow-unsafe \
	    --no-emit-index-url --no-emit-find-links --output-file requirements.lock pyproject.toml

# Interactive on a terminal; with DJANGO_SUPERUSER_USERNAME, DJANGO_SUPERUSER_PASSWORD (and
# optionally DJANGO_SUPERUSER_EMAIL) set, it runs without questions (scripts, CI).
superuser: $(VENV)/.installed
	$(BIN)/python manage.py prepare_server --skip-static
	$(BIN)/python manage.py createsuperuser $${DJANGO_SUPERUSER_PASSWORD:+--noinput}

token: $(VENV)/.installed
	$(BIN)/python manage.py prepare_server --skip-static
	$(BIN)/python manage.py create_api_token --name "$${NAME:-operator}"

clean:
	rm -rf $(VENV) staticfiles .pytest_cache .ruff_cache
