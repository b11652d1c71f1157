# The two commands a newcomer needs (see README): `make bench` and `make test`.
# Both set up .venv on first use through scripts/setup.sh.
VENV := .venv
.PHONY: bench test lint setup gpu-evidence clean

$(VENV)/.installed: pyproject.toml scripts/setup.sh
	bash scripts/setup.sh

setup: $(VENV)/.installed

bench: $(VENV)/.installed
	$(VENV)/bin/causvid-perf bench $(ARGS)

# The checks that keep the package's structure: lint and format (ruff), types (mypy).
lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# The suite in three pytest sessions: the perf cases alone on a quiet CPU (their history runs stay fit
# to be references); every other test but the slow ones on two xdist workers, whole files each (a
# module's fixtures are built once); then the slow tier (`-m slow`: inductor compilation, the full
# sweep grid), kept out of the everyday suite's time. With ARGS: one session, `pytest ARGS`.
PERF_CASES := tests/perf/test_perf_cases.py tests/perf/test_recipe_cases.py
test: lint
ifeq ($(strip $(ARGS)),)
	$(VENV)/bin/python -m pytest $(PERF_CASES); perf=$$?; \
	$(VENV)/bin/python -m pytest -n 2 --dist loadfile -m "not slow" $(addprefix --ignore=,$(PERF_CASES)); rest=$$?; \
	$(VENV)/bin/python -m pytest -m slow $(addprefix --ignore=,$(PERF_CASES)); slow=$$?; \
	[ $$perf -eq 0 ] && [ $$rest -eq 0 ] && [ $$slow -eq 0 ]
else
	$(VENV)/bin/python -m pytest $(ARGS)
endif

# On a machine with a CUDA GPU: baselines, bench, overhead and the gate study (docs/gpu.md).
gpu-evidence: $(VENV)/.installed
	bash scripts/gpu_evidence.sh $(OUT_DIR)

clean:
	rm -rf $(VENV) .benchmarks .pytest_cache .mypy_cache .ruff_cache .hypothesis causvid-perf-out causvid-perf-demo
