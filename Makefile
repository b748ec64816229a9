# Two commands a newcomer needs:  `make demo` (install + run the main job) and `make test`.
# Both create or reuse the virtual environment in $(VENV).
#
# torch: on CPU machines `torch==2.13.0` (the default TORCH_SPEC) is a small CPU wheel. On a GPU
# box, install the CUDA build of torch into the venv first (PyTorch's "get started" selector),
# or pass TORCH_SPEC; an already-installed torch is never replaced.

VENV ?= .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
# the installer of the lock (and of `make lock`), pinned like everything else
UV_VERSION ?= 0.13.10
TORCH_SPEC ?= torch==2.13.0
DEMO_STEPS ?= 300000

.PHONY: install demo test test-fast check smoke bench fuzz lock clean-venv

# Installs the exact versions in requirements.lock (hash-checked), torch excepted: a CUDA torch that
# is already in the venv is kept. torch comes through pip, which honours the machine's pip settings
# (a local wheel, an index of CUDA builds); the lock through uv, which downloads and byte-compiles
# in parallel (about 15 s where pip took about 70 on 2 cores). The lock is the whole closure of
# pyproject's dependencies but torch, so it installs with --no-deps; `uv pip check` then proves
# every requirement, torch's included, is met. UNLOCKED=1 installs from pyproject's open ranges
# with pip instead.
$(VENV)/.installed: pyproject.toml requirements.lock
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "$(TORCH_SPEC)"
	if [ -n "$(UNLOCKED)" ]; then $(PY) -m pip install -q -e ".[dev]"; \
	else $(PY) -m pip install -q "uv==$(UV_VERSION)" \
	  && $(UV) pip install -q --python $(PY) --no-deps --require-hashes --compile-bytecode -r requirements.lock \
	  && $(UV) pip install -q --python $(PY) --no-deps -e . \
	  && $(UV) pip check -q --python $(PY); fi
	touch $@

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/ztb train --headless --total-timesteps $(DEMO_STEPS)

# `check` and `ztb smoke` first, side by side (mypy, on its own worker processes, and the smoke run,
# every command's happy path in a temporary artifacts folder, share the cores for about half a
# minute), so a lint, type or command failure stops the run within a minute instead of minutes
# into the suite. The suite runs on pytest-xdist with half again as many workers as cores (3 on 2
# cores; at most 8): about a third of its test time waits on real seconds (emulator bars, websocket
# stalls, subprocesses starting), and one worker per core left the cores idle 42 % of the time.
# Measured from fresh clones on 2 cores: 2 workers 573 s, 3 workers 409 s, 4 workers 430 s (more
# start-up, every worker importing the suite, and more contention).
# It prints the 25 slowest tests, so a test that grows slow shows in every CI log.
PYTEST_WORKERS ?= $(shell python3 -c 'import os; print(max(2, min(8, 3 * len(os.sched_getaffinity(0)) // 2)))')
test: install
	$(MAKE) --no-print-directory -j2 --output-sync=target check smoke
	$(PY) -m pytest -q -n $(PYTEST_WORKERS) --durations=25

smoke: install
	$(VENV)/bin/ztb smoke --no-record

# The edit-run loop: every test that neither trains nor starts long processes (under a minute on
# 2 cores). Tests are marked `slow` in tests/conftest.py by measured duration; `make test` and CI
# still run them all.
test-fast: install
	$(PY) -m pytest -q -n $(PYTEST_WORKERS) -m "not slow"

# lint + format check + static types + the house's import contracts (configuration in pyproject.toml)
check: install
	$(VENV)/bin/ruff check ztb_core ztb_tui tests benchmarks
	$(VENV)/bin/ruff format --check ztb_core ztb_tui tests benchmarks
	$(VENV)/bin/mypy --num-workers auto
	$(VENV)/bin/lint-imports

# Refresh requirements.lock: resolve pyproject's ranges (+ dev) to the newest versions, with hashes.
# torch and its CUDA wheels are left out so GPU boxes keep their own build. Run `make test` after.
# LOCK_CONSTRAINTS=file pins the resolution (e.g. `pip freeze` of a venv the suite passed in).
LOCK_CONSTRAINTS ?=
lock:
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q "uv==$(UV_VERSION)"
	$(VENV)/bin/uv pip compile pyproject.toml --extra dev --generate-hashes --quiet \
	  --python-version 3.11.7 --python-platform x86_64-manylinux_2_28 \
	  $(if $(LOCK_CONSTRAINTS),-c $(LOCK_CONSTRAINTS)) -o requirements.lock.tmp
	skip=$$(grep -oE '^(torch|triton|setuptools|cuda-[a-z-]+|nvidia-[a-z0-9-]+)==' requirements.lock.tmp \
	  | grep -v '^nvidia-ml-py' | tr -d '=' | sed 's/^/--no-emit-package /'); \
	$(VENV)/bin/uv pip compile pyproject.toml --extra dev --generate-hashes --quiet \
	  --python-version 3.11.7 --python-platform x86_64-manylinux_2_28 \
	  $(if $(LOCK_CONSTRAINTS),-c $(LOCK_CONSTRAINTS)) $$skip -o requirements.lock
	rm -f requirements.lock.tmp

# The live-trading fault fuzzers at full length: the order fuzzer's FUZZ_EXAMPLES sequences (CI runs
# a dozen) and the market-data fuzzer's FUZZ_MARKET_EXAMPLES (websocket stalls, REST failures; CI runs
# two; each sequence takes seconds of real time), then their positive controls (every rule broken on
# purpose must be caught). Each prints its totals, how many sequences reached each scenario and how
# many broke each rule. FUZZ_AWAITING_FIX=1 also generates the scenarios of known, not yet fixed
# defects (test_fuzz.AWAITING_FIX). An hour or so, not minutes.
FUZZ_EXAMPLES ?= 1000
FUZZ_MARKET_EXAMPLES ?= 150
FUZZ_AWAITING_FIX ?=
fuzz: install
	ZTB_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) ZTB_FUZZ_AWAITING_FIX=$(FUZZ_AWAITING_FIX) $(PY) -m pytest -q -s -p no:cacheprovider \
		--show-capture=no --timeout=0 tests/live/test_fuzz.py tests/live/test_fuzz_controls.py -k fuzzer
	ZTB_FUZZ_MARKET_EXAMPLES=$(FUZZ_MARKET_EXAMPLES) $(PY) -m pytest -q -s -p no:cacheprovider \
		--show-capture=no --timeout=0 tests/live/test_fuzz_market.py tests/live/test_fuzz_market_controls.py

bench: install
	for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean-venv:
	rm -rf $(VENV)
