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

test: lint
	$(VENV)/bin/python -m pytest $(ARGS)

# On a machine with a CUDA GPU: baselines, bench, overhead and the gate study (docs/gpu.md).
gpu-evidence: $(VENV)/.installed
	bash scripts/gpu_evidence.sh $(OUT_DIR)

clean:
	rm -rf $(VENV) .benchmarks .pytest_cache .mypy_cache .ruff_cache .hypothesis causvid-perf-out causvid-perf-demo
