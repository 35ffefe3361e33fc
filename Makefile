# Two commands for a newcomer: `make run` serves the demo, `make test` runs the whole suite.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
# Front-end packages (the official socket.io-client, used by tests/js); needs Node 20 and npm.
NODE_STAMP := node_modules/.installed-stamp

.PHONY: install run test lint typecheck clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $(NODE_STAMP)

install: $(STAMP) $(NODE_STAMP)

# The demo's banned words (Cantonese and Mandarin insults, a spam phrase); set your own to override.
run: export SHOWROOM_BANNED_WORDS ?= 垃圾,廢柴,仆街,傻逼,加微信
run: install
	$(BIN)/showroom migrate
	$(BIN)/showroom seed-demo
	$(BIN)/showroom serve

test: install lint typecheck
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check server media tests bench
	$(BIN)/ruff format --check server media tests bench

typecheck: install
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache node_modules
