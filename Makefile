# The two commands a newcomer needs (see README): `make bench` and `make test`.
# Both set up .venv on first use through scripts/setup.sh.
VENV := .venv
.PHONY: bench test setup clean

$(VENV)/.installed: pyproject.toml scripts/setup.sh
	bash scripts/setup.sh

setup: $(VENV)/.installed

bench: $(VENV)/.installed
	$(VENV)/bin/causvid-perf bench $(ARGS)

test: $(VENV)/.installed
	$(VENV)/bin/python -m pytest $(ARGS)

clean:
	rm -rf $(VENV) .benchmarks .pytest_cache causvid-perf-out
