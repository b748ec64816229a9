# Two commands a newcomer needs:  `make demo` (install + run the main job) and `make test`.
# Both create or reuse the virtual environment in $(VENV).
#
# torch: on CPU machines `torch==2.13.0` (the default TORCH_SPEC) is a small CPU wheel. On a GPU
# box, install the CUDA build of torch into the venv first (PyTorch's "get started" selector),
# or pass TORCH_SPEC; an already-installed torch is never replaced.

VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_SPEC ?= torch==2.13.0
DEMO_STEPS ?= 100000

.PHONY: install demo test bench clean-venv

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/ztb train --headless --total-timesteps $(DEMO_STEPS)

test: install
	$(PY) -m pytest -q

bench: install
	for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean-venv:
	rm -rf $(VENV)
