# The two commands of the README: `make demo` and `make test`. Both set everything up first and are
# idempotent: the virtual environment lives in .venv/ and is rebuilt only when pyproject.toml changes.
SHELL := /bin/bash
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD := 1
PY := .venv/bin/python
STAMP := .venv/.anonreid-installed
PACKAGES := events models nodes gallery proto orchestration
TYPECHECK_ROOT := .build/typecheck

.PHONY: setup system-deps demo test lint typecheck unit unit-fast proto clean

$(STAMP): pyproject.toml setup.py
	test -x $(PY) || python3 -m venv .venv
	$(PY) -m pip install -q --upgrade pip
	# torch and torchvision install from this machine's disk; a CUDA machine gets the same API.
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP) system-deps

# Debian packages the tests drive for real (a browser, Prometheus); installed once, only when missing.
SYSTEM_PACKAGES := chromium prometheus
system-deps:
	@ANONREID_SYSTEM_PACKAGES="$(SYSTEM_PACKAGES)" ./orchestration/system_deps.sh

# a bounded run that ends with its summary (Ctrl-C also stops it); `anonreid demo` alone runs until Ctrl-C
demo: setup
	.venv/bin/anonreid demo --duration 60 --json .build/demo-summary.json

lint: $(STAMP)
	$(PY) -m ruff check $(PACKAGES) tests setup.py

# mypy needs a directory named `anonreid`: a tree of links maps the pipeline folders onto it.
typecheck: $(STAMP)
	@rm -rf $(TYPECHECK_ROOT) && mkdir -p $(TYPECHECK_ROOT)/anonreid
	@for p in $(PACKAGES); do ln -s "$(CURDIR)/$$p" $(TYPECHECK_ROOT)/anonreid/$$p; done
	MYPYPATH=$(TYPECHECK_ROOT) $(PY) -m mypy -p anonreid

# The tests run in two phases (tests/parallel.py): every test but the `alone` ones on two pytest-xdist
# workers, a test file (or an xdist_group) each at a time; then the `alone` tests (a wall-clock assertion,
# a multi-node Ray cluster) one after another with the machine to themselves. Both phases always run, and
# either failing fails the target. `pytest` by itself runs everything in one process.
# Bytecode caching stays on for the tests even where the environment turns it off (PYTHONDONTWRITEBYTECODE):
# the suite starts many Python processes (CLI subprocesses, Ray workers, pytest workers) that each import
# the package and its test modules, and without the __pycache__ files each compiles them again.
# numpy's OpenBLAS runs one thread in the tests (OPENBLAS_NUM_THREADS=1, as Ray gives its actors through
# OMP_NUM_THREADS): the suite keeps both cores busy, and the threads of a BLAS call spin on the core the other
# worker needs (docs/BENCHMARKS.md, "Normalisation without BLAS"; the product's code avoids BLAS where it hurt).
TEST_WORKERS ?= 2
TEST_ENV = env -u PYTHONDONTWRITEBYTECODE OPENBLAS_NUM_THREADS=1
PARALLEL_PHASE = $(TEST_ENV) $(PY) -m pytest -n $(TEST_WORKERS) --dist loadgroup -m "$(1)not alone"
ALONE_PHASE = $(TEST_ENV) $(PY) -m pytest -m "$(1)alone"

unit: $(STAMP)
	@$(call PARALLEL_PHASE,); parallel=$$?; $(call ALONE_PHASE,); alone=$$?; [ $$parallel -eq 0 ] && [ $$alone -eq 0 ]

# the tests not marked slow (a slow one takes more than ~20 s here: full demo, Ray actors, training, browser);
# every pytest summary lists the unmarked tests that took longer (tests/conftest.py)
unit-fast: $(STAMP)
	@$(call PARALLEL_PHASE,not slow and ); parallel=$$?; $(call ALONE_PHASE,not slow and ); alone=$$?; \
	[ $$parallel -eq 0 ] && [ $$alone -eq 0 ]

# lint and typecheck run beside the parallel phase at a lower CPU priority (nice 10): mypy takes the core
# time the suite leaves idle (it waits on servers, streams and one-thread torch) instead of adding its own
# minutes before it, and is done before the `alone` tests start; their output comes after the tests', and
# either failing fails `make test`
test: setup
	@mkdir -p .build
	@nice -n 10 $(MAKE) --no-print-directory -k lint typecheck > .build/static-checks.log 2>&1 & checks=$$!; \
	$(call PARALLEL_PHASE,); parallel=$$?; \
	wait $$checks; static=$$?; \
	$(call ALONE_PHASE,); alone=$$?; \
	echo "--- make lint typecheck (beside the tests; .build/static-checks.log):"; cat .build/static-checks.log; \
	if [ $$static -ne 0 ]; then echo "make test: lint or typecheck failed"; fi; \
	[ $$parallel -eq 0 ] && [ $$alone -eq 0 ] && [ $$static -eq 0 ]

proto: $(STAMP)
	$(PY) -m anonreid.proto.codegen

clean:
	rm -rf .build build dist *.egg-info
