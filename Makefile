# xmppd — `make run` starts the server on the embedded default; `make test` installs what the
# test suite needs (Debian packages, npm packages, the venv with the bot SDK, bot/, which is its
# own distribution) and runs all of it.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
WEB    := tests/web
SUDO   := $(if $(filter 0,$(shell id -u)),,sudo)

# Debian packages the tests drive or start: Chromium (Converse.js, tests/integration/
# test_web_clients.py), Redis, and the servers tests start beside ours (HAProxy, coturn,
# Prosody, ejabberd). Node.js and npm (tests/web) are checked as commands, not packages:
# NodeSource's `nodejs` carries its own npm and conflicts with Debian's.
TEST_DEBS    := chromium redis-server haproxy coturn prosody ejabberd
# Installing a server must not start it (our tests pick their own ports) nor enable it at boot
# (Prosody and ejabberd would take 5222 and 5280 from `make run`).
QUIET_DAEMONS := haproxy coturn prosody ejabberd
POLICY_RC    := /usr/sbin/policy-rc.d

.PHONY: run run-cluster test test-setup test-debs test-services install check-config wheel \
	bench bench-memory bench-parser bench-presence mypy clean

$(STAMP): setup.cfg setup.py pyproject.toml bot/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m pip install --quiet -e ./bot
	touch $(STAMP)

install: $(STAMP)

# One process as shipped (server.processes = 1);
# `make run PROCESSES=auto` for one worker per core (docs/CLUSTER.md "Every core"). SIGUSR2 to the supervisor: rolling restart.
run: $(STAMP)
	$(BIN)/xmppd --config conf/xmppd.toml $(if $(PROCESSES),--processes $(PROCESSES))

# Three nodes (c2s 6001-6003, HTTP 6101-6103) on this machine's PostgreSQL and Redis behind
# HAProxy on 5222/5280 (docs/CLUSTER.md); Ctrl-C stops all of it.
run-cluster: $(STAMP)
	$(BIN)/python tools/run_cluster.py

check-config: $(STAMP)
	$(BIN)/xmppctl --config conf/xmppd.toml check-config

# A wheel for `pip install` on a server (default config, migrations and dashboard inside);
# packaging/xmppd.service runs it (docs/OPERATIONS.md).
wheel: $(STAMP)
	$(BIN)/python -m pip wheel --no-deps -w dist .

# The suite mostly waits on servers: 4 pytest-xdist workers, each given a whole test file at a
# time (a module's servers start once), in collection order: by test count, the default, would
# leave the slowest files (few tests, each driving servers) for the end. Not --dist loadgroup:
# under pytest 9.2 it ignores xdist_group marks. `make test PYTEST_ARGS=` runs in one process.
PYTEST_ARGS ?= -n 4 --dist loadfile --no-loadscope-reorder

test: test-setup
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

# In this order (npm and python3-venv come with the Debian packages).
test-setup: test-debs $(STAMP) $(WEB)/node_modules/.package-lock.json test-services

# Missing Debian packages, installed with a policy-rc.d that forbids service starts (the
# standard trick; an existing one is left alone), then the servers' boot start turned off.
test-debs:
	@missing=""; \
	for p in $(TEST_DEBS); do \
	  dpkg-query -W -f='$${Status}' "$$p" 2>/dev/null | grep -q 'ok installed' \
	    || missing="$$missing $$p"; \
	done; \
	command -v npm >/dev/null 2>&1 || missing="$$missing nodejs npm"; \
	$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || missing="$$missing python3-venv"; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	echo "installing Debian packages:$$missing"; \
	$(SUDO) env MISSING="$$missing" POLICY_RC="$(POLICY_RC)" QUIET="$(QUIET_DAEMONS)" sh -ec '\
	  if [ ! -e "$$POLICY_RC" ]; then \
	    trap "rm -f $$POLICY_RC" EXIT; \
	    printf "#!/bin/sh\nexit 101\n" > "$$POLICY_RC"; chmod 755 "$$POLICY_RC"; \
	  fi; \
	  apt-get update -qq; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$MISSING; \
	  for s in $$QUIET; do \
	    case " $$MISSING " in *" $$s "*) ;; *) continue ;; esac; \
	    if [ -d /run/systemd/system ]; then systemctl disable --now "$$s" >/dev/null 2>&1 || true; \
	    else update-rc.d "$$s" disable >/dev/null 2>&1 || true; fi; \
	  done'

# The npm packages pinned in tests/web/package-lock.json, when node_modules is missing or older
# than the lock file. A symlinked node_modules is someone else's install (a git worktree sharing
# its main checkout's): `npm ci` would empty it under them, so it is left alone.
$(WEB)/node_modules/.package-lock.json: $(WEB)/package-lock.json | test-debs
	@if [ -L $(WEB)/node_modules ]; then \
	  echo "$(WEB)/node_modules is a symlink: not reinstalling it"; \
	else \
	  cd $(WEB) && npm ci --no-audit --no-fund --loglevel=error; \
	fi

# PostgreSQL (127.0.0.1:5432) and Redis (127.0.0.1:6379) for the backend tests, started if down.
test-services:
	@if command -v pg_isready >/dev/null 2>&1 && ! pg_isready -h 127.0.0.1 -p 5432 -q; then \
	  $(SUDO) pg_ctlcluster --skip-systemctl-redirect "$$(ls /etc/postgresql | head -n1)" main start \
	    || true; \
	fi
	@if command -v redis-cli >/dev/null 2>&1 && \
	    ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then \
	  $(SUDO) mkdir -p /var/lib/redis /var/log/redis; \
	  $(SUDO) redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" \
	    --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log || true; \
	fi

mypy: $(STAMP)
	$(BIN)/mypy --strict xmppd stanzas storage modules
	$(BIN)/mypy --config-file bot/pyproject.toml bot/xmppd_bot bot/examples

# The comparison with Prosody and ejabberd (Debian packages; run as root: they drop to their
# users): xmppd's shipped config and archive-off, the anchors without and with archive-all,
# 3 interleaved rounds, medians; rewrites the table in docs/PERFORMANCE.md (bench/README.md).
# About 20-25 min on 2 cores; `make bench BENCH_ARGS=--quick` is a 3-5 min smoke run that
# leaves the doc alone.
bench: $(STAMP)
	BENCH_COMMAND='make bench$(if $(BENCH_ARGS), BENCH_ARGS="$(BENCH_ARGS)") (= bench/compare.py --nice -10 --json-out /tmp/xmppd-bench.json$(if $(BENCH_ARGS), $(BENCH_ARGS)))' \
		$(BIN)/python bench/compare.py --nice -10 --json-out /tmp/xmppd-bench.json $(BENCH_ARGS)

bench-memory: $(STAMP)
	PYTHONPATH=. $(BIN)/python bench/memory_bench.py

bench-parser: $(STAMP)
	PYTHONPATH=. $(BIN)/python bench/parser_bench.py

bench-presence: $(STAMP)
	PYTHONPATH=. $(BIN)/python bench/presence_bench.py

clean:
	rm -rf $(VENV) var dist build .pytest_cache .mypy_cache *.egg-info bot/*.egg-info
