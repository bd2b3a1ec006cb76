# lossmap — every target sets up what it needs on a fresh machine.
# `make demo` runs the main job, `make test` runs the whole suite, `make bench`
# measures speed. A second run reuses .venv and starts in seconds.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.lossmap-installed
OUT    ?= out

.PHONY: demo test lint bench explore chromium clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# torch first, from the CPU wheel on disk: a bare `torch` requirement resolved
# later would otherwise pull a multi-GB CUDA build.
$(STAMP): pyproject.toml requirements.lock requirements-nodeps.txt | $(PY)
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -c requirements.lock -e '.[all,test]'
	# curvlinops (a reference for the curvature tests and benchmarks) depends on
	# backpack, which asks for torchvision and so a CUDA torch: its pure-Python
	# dependencies are installed one by one, without their own requirements.
	$(PIP) install -q --no-deps -c requirements-nodeps.txt -r requirements-nodeps.txt
	touch $(STAMP)

chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the browser tests"; \
	  apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }

demo: $(STAMP)
	$(PY) -m demo --out $(OUT)/demo

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks demo
	$(VENV)/bin/lint-imports

test: $(STAMP) chromium lint
	$(PY) -m pytest -q

bench: $(STAMP)
	# comparison baselines (pure Python, depend only on numpy/torch)
	$(PIP) install -q loss-landscapes==3.0.6 pyhessian==0.1
	$(PY) -m benchmarks

explore: $(STAMP)
	$(PY) -m lossmap explore

clean:
	rm -rf $(OUT) .pytest_cache .ruff_cache test-artifacts
