# The two commands of the README:
#   make main   set up .venv, fetch MNIST, run the main job (a real study plus its report)
#   make test   set up .venv and run the tests (what CI runs, through .ci/run)
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
CASE   ?= T2M1_T1M2
TRIALS ?= 200
CONFIRM ?= 3
CONFIRM_SEEDS ?= 8
FIDELITY ?= quick
WORKERS ?= 2
STORAGE ?= sqlite:///studies/runs/ablate.db

.PHONY: setup data main test lint browser bench clean mutation mutation-tool mutation-clean docs

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# torch first, and only the local CPU build (any other spec may pull a multi-GB CUDA build)
$(VENV)/.installed: $(BIN)/python pyproject.toml examples/digits-pipeline/pyproject.toml
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install torch==2.13.0
	$(BIN)/pip install -e '.[test]'
	$(BIN)/pip install --no-deps --no-build-isolation -e examples/digits-pipeline
	touch $@

setup: $(VENV)/.installed

data: setup
	$(BIN)/ablate data fetch

# the search, then its CONFIRM best configurations on CONFIRM_SEEDS fresh paired seeds (8: the fewest with which
# the exact sign-flip test can pass Holm's first step over 3 comparisons with one discordant seed), then both
# reports in studies/runs/report-STUDY/ (--report: ablate names the studies; nothing here spells a study name)
main: data
	$(BIN)/ablate study --case $(CASE) --trials $(TRIALS) --fidelity $(FIDELITY) --workers $(WORKERS) --storage $(STORAGE) --confirm $(CONFIRM) --confirm-seeds $(CONFIRM_SEEDS) --report

lint: setup
	$(BIN)/ruff check cgi ablate tests scripts examples
	$(BIN)/ruff format --check cgi ablate tests scripts examples

# Chromium from Debian for the browser test (tests/ablate/report/test_browser.py): installed only when missing and we
# are root (CI); otherwise the test skips with its reason outside CI and fails under CI=true.
browser:
	@if [ ! -x /usr/bin/chromium ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium \
		|| { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; } \
		|| echo "chromium could not be installed: the browser test will skip (or fail under CI=true)"; \
	fi

# Two pytest workers, one test file each at a time (--dist loadfile keeps module fixtures shared): on this 2-core
# machine the suite took 12 min 47 s in one process and 7 min 42 s in two, much of it in subprocesses, servers and
# waits (heartbeats, grace periods) that overlap. Server tests name their studies uniquely, so they can share.
PYTEST_WORKERS ?= 2
test: lint browser
	$(BIN)/pytest -q -n $(PYTEST_WORKERS) --dist loadfile

bench: data
	$(BIN)/ablate bench --json

# Regenerate what the docs show from the code and real runs (scripts/docs.py): docs/cli.md's option tables, the
# smoke-fidelity output blocks (seconds) and the long-running ones (quick fidelity: minutes; stamped with the
# commit). tests/ablate/test_docs.py fails in CI when the first two differ from what this would write.
docs: data
	$(BIN)/python scripts/docs.py cli
	$(BIN)/python scripts/docs.py outputs --long

clean:
	rm -rf $(VENV) studies/runs .pytest_cache .ruff_cache

# Mutation testing (docs/testing.md; not part of `make test` or CI). cosmic-ray mutates one module at a time in a
# scratch copy of the working tree of its own ($(MUTATION_DIR)/NAME/tree, so the real files are never touched and
# `make -j2 mutation` can run two modules at once) and runs only that module's tests against each mutant.
# SAMPLE=N keeps a seeded random N mutants per module (scripts/mutation.py sample; MUTATION_SEED, default 0).
# Rerunning resumes an interrupted session; `make mutation-clean` starts over (do that after changing the code).
# One module: `make mutation MUTATE=designs`. Scores: $(MUTATION_DIR)/NAME.score.txt and docs/data/mutation/NAME.json.
# RETEST=1 runs the survivors again against the tests as they are now. Each run first copies the working tree into
# its tree again: a run killed mid-mutant leaves the mutant in place, and the baseline must see the code as it is
# (the sampled mutants point into the module as it was sampled: after changing a module, mutation-clean it).
MUTATION_DIR ?= build/mutation
MUTATE ?= designs weightpoints queue generators storage procedures stats bnn record method
MUTATION_TIMEOUT ?= 120
MUTATION_SEED ?= 0
SAMPLE ?=
RETEST ?=
MUTATION_SPECS = \
	designs:ablate/experiment/designs.py:tests/ablate/experiment/test_designs.py \
	weightpoints:cgi/crossgen/weightpoints.py:tests/crossgen/test_weightpoints.py \
	queue:ablate/execution/queue.py:tests/ablate/execution/test_queue.py,tests/ablate/experiment/test_designs.py \
	generators:cgi/crossgen/generators.py:tests/crossgen/test_generators.py \
	storage:ablate/execution/storages/retries.py:tests/ablate/execution/test_retries.py,tests/ablate/execution/test_storage.py,tests/ablate/execution/test_connections.py \
	procedures:ablate/analysis/procedures.py:tests/ablate/analysis/test_stats.py \
	stats:ablate/analysis/stats.py:tests/ablate/analysis/test_stats.py \
	bnn:cgi/crossgen/bnn.py:tests/crossgen/test_bnn.py,tests/crossgen/test_precision.py \
	record:ablate/record.py:tests/ablate/test_record.py \
	method:ablate/method/switches.py:tests/ablate/method/test_switches.py,tests/ablate/method/test_method.py
# Left out on purpose: bitwise, %, // and ** replacements (on floats and tensors they only crash, so they are
# killed for free), ordering replacements of ==/!=/is, `is` <-> `==`, and unary ~/not/+ replacements.
MUTATION_EXCLUDE = "core/ReplaceBinaryOperator_\\w+_(BitOr|BitAnd|BitXor|LShift|RShift|Mod|FloorDiv|Pow)$$", \
	"core/ReplaceBinaryOperator_(BitOr|BitAnd|BitXor|LShift|RShift|Pow)_\\w+$$", \
	"core/ReplaceComparisonOperator_(Eq|NotEq|Is|IsNot)_(Lt|LtE|Gt|GtE)$$", \
	"core/ReplaceComparisonOperator_(Is_Eq|IsNot_NotEq|Eq_Is|NotEq_IsNot|Eq_IsNot|NotEq_Is)$$", \
	"core/ReplaceUnaryOperator_\\w+_(Invert|Not|UAdd)$$"

mutation: $(addprefix mutation-,$(MUTATE))

mutation-tool: setup
	$(BIN)/cosmic-ray --version >/dev/null 2>&1 || $(BIN)/pip install -e '.[test,mutation]'

mutation-%: mutation-tool
	@set -e; spec='$(filter $*:%,$(MUTATION_SPECS))'; [ -n "$$spec" ] || { echo "no module named $* in MUTATION_SPECS"; exit 2; }; \
	name=$*; rest=$${spec#*:}; module=$${rest%%:*}; tests=$$(echo $${rest#*:} | tr , ' '); \
	bin=$(abspath $(BIN)); py=$$bin/python; repo=$(CURDIR); dir=$(MUTATION_DIR)/$$name; \
	if [ ! -d $$dir/tree ]; then \
		mkdir -p $$dir/tree/.mutation-path && \
		ln -s ../cgi/crossgen $$dir/tree/.mutation-path/crossgen && \
		ln -s ../ablate $$dir/tree/.mutation-path/ablate && \
		ln -s ../studies $$dir/tree/.mutation-path/ablate_studies; \
	fi; \
	git ls-files -z -co --exclude-standard | tar --null -T - --ignore-failed-read -cf - 2>/dev/null \
		| tar -xf - -C $$dir/tree; \
	cd $$dir; \
	printf '%s\n' '[cosmic-ray]' "module-path = \"$$module\"" 'excluded-modules = []' \
		'timeout = $(MUTATION_TIMEOUT).0' \
		"test-command = \"env PYTHONPATH=.mutation-path $$bin/pytest -x -q -p no:cacheprovider $$tests\"" \
		'[cosmic-ray.distributor]' 'name = "local"' '[cosmic-ray.filters.operators-filter]' \
		'exclude-operators = [$(MUTATION_EXCLUDE)]' > $$name.toml; \
	if [ ! -f $$name.sqlite ]; then \
		(cd tree && $$bin/cosmic-ray init ../$$name.toml ../$$name.sqlite) && \
		$$bin/cr-filter-operators $$name.sqlite $$name.toml; \
		if [ -n "$(SAMPLE)" ]; then $$py $$repo/scripts/mutation.py sample $$name.sqlite $(SAMPLE) --seed $(MUTATION_SEED); fi; \
	elif [ -n "$(RETEST)" ]; then $$py $$repo/scripts/mutation.py retest $$name $$name.sqlite; \
	fi; \
	echo "== $$name: $$module against $$tests"; \
	(cd tree && $$bin/cosmic-ray baseline ../$$name.toml) || { echo "$$name: the tests fail unmutated"; exit 1; }; \
	(cd tree && nice $$bin/cosmic-ray exec ../$$name.toml ../$$name.sqlite); \
	$$bin/cr-report --surviving-only --show-diff $$name.sqlite > ../$$name.survivors.txt; \
	$$py $$repo/scripts/mutation.py score $$name $$name.sqlite --out $$repo/docs/data/mutation/$$name.json \
		| tee ../$$name.score.txt

mutation-clean:
	rm -rf $(MUTATION_DIR)
