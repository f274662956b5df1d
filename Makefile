# xmppd — `make run` starts the server on the embedded default; `make test` runs the suite
# (the server's tests and those of the bot SDK, bot/, which is its own distribution).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test install check-config wheel bench bench-parser bench-presence mypy clean

$(STAMP): setup.cfg setup.py pyproject.toml bot/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m pip install --quiet -e ./bot
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/xmppd --config conf/xmppd.toml

check-config: $(STAMP)
	$(BIN)/xmppctl --config conf/xmppd.toml check-config

# A wheel for `pip install` on a server (default config, migrations and dashboard inside);
# packaging/xmppd.service runs it (docs/OPERATIONS.md).
wheel: $(STAMP)
	$(BIN)/python -m pip wheel --no-deps -w dist .

test: $(STAMP)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

mypy: $(STAMP)
	$(BIN)/mypy --strict xmppd stanzas storage modules
	$(BIN)/mypy --config-file bot/pyproject.toml bot/xmppd_bot bot/examples

# Side-by-side with Prosody and ejabberd (Debian packages; run as root: they drop to their users).
bench: $(STAMP)
	$(BIN)/python bench/compare.py --servers prosody,prosody+mam,ejabberd,xmppd --repeat 3 \
		--nice -10 --json-out /tmp/xmppd-bench.json

bench-memory: $(STAMP)
	PYTHONPATH=. $(BIN)/python bench/memory_bench.py

bench-parser: $(STAMP)
	PYTHONPATH=. $(BIN)/python bench/parser_bench.py

bench-presence: $(STAMP)
	PYTHONPATH=. $(BIN)/python bench/presence_bench.py

clean:
	rm -rf $(VENV) var dist build .pytest_cache .mypy_cache *.egg-info bot/*.egg-info
