# chute — developer tasks.
#
#   make install            create .venv from pyproject.toml (instant when up to date)
#   make lint               ruff + mypy
#   make test               lint, then every test (slow ones included)
#   make test-fast          tests not marked slow
#   make run [PATH=DIR]     init the default store, back up DIR (default examples/sample),
#                           print what each snapshot holds
#   make bench              chute side by side with restic and borg (python -m chute.bench);
#                           options in BENCH_ARGS, e.g. make bench BENCH_ARGS='--quick'
#   make bench-graph        the history graph at scale (python -m chute.bench.graph_scale):
#                           size, write time, query latencies; options in GRAPH_BENCH_ARGS
#   make clean              remove .venv and caches

# ---------------------------------------------------------------------------
# `make run PATH=/some/dir` names the tree to back up.  A variable given on the
# command line overrides the environment's PATH for the whole run: recipes (and,
# from GNU make 4.4 on, $(shell ...)) would see PATH=/some/dir and find no tools.
# So take the tree from it, then put the caller's real search path back:
#  * make <= 4.3 gives $(shell) make's own, untouched environment;
#  * make >= 4.4 exports variables to $(shell), but for a variable that is being
#    expanded at that moment it hands over the value from the original
#    environment instead.  PATH below is recursive and expands to $(shell), so
#    while it is expanded, the shell it starts gets the original PATH.
# The `:=` line then expands it once, so later lines see a plain string.
THIS_MAKEFILE := $(abspath $(lastword $(MAKEFILE_LIST)))

ifeq ($(origin PATH),command line)
TREE := $(value PATH)
export PATH
override PATH = $(shell echo "$$PATH")
override PATH := $(PATH)
else
TREE := examples/sample
endif
export PATH

SHELL := /bin/sh
PYTHON ?= python3

VENV  := $(CURDIR)/.venv
BIN   := $(VENV)/bin
STAMP := $(VENV)/.installed

# Quote $(1) for the shell: '...' with any ' inside written as '\''.
shquote = '$(subst ','\'',$(1))'

.DEFAULT_GOAL := help
.PHONY: help install lint test test-fast run bench bench-graph clean

help:
	@sed -n '/^#   make install/,/^#   make clean/s/^# \{0,1\}//p' $(call shquote,$(THIS_MAKEFILE))

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(call shquote,$(VENV))
	$(call shquote,$(BIN)/pip) install -e '.[dev]'
	touch $(call shquote,$@)

lint: install
	$(call shquote,$(BIN)/ruff) check chute tests
	$(call shquote,$(BIN)/mypy)

test: install lint
	$(call shquote,$(BIN)/pytest) -q

test-fast: install
	$(call shquote,$(BIN)/pytest) -q -m "not slow"

run: install
	@test -n $(call shquote,$(TREE)) || { echo 'make run: PATH= names no directory' >&2; exit 2; }
	$(call shquote,$(BIN)/chute) init --exist-ok --generate-key
	$(call shquote,$(BIN)/chute) put $(call shquote,$(TREE))
	$(call shquote,$(BIN)/chute) query --file $(call shquote,$(CURDIR)/examples/queries/run-summary.rq)

BENCH_ARGS ?=

bench: install
	$(call shquote,$(BIN)/python) -m chute.bench $(BENCH_ARGS)

bench-graph: install
	$(call shquote,$(BIN)/python) -m chute.bench.graph_scale $(GRAPH_BENCH_ARGS)

clean:
	rm -rf $(call shquote,$(VENV)) .mypy_cache .ruff_cache .pytest_cache .hypothesis \
		build dist *.egg-info
	find . -path ./.git -prune -o -type d -name __pycache__ -prune -exec rm -rf {} +
