# The two commands of README.md: `make demo` (install + the main job on generated sample data)
# and `make test` (install + the whole test suite; .ci/run runs exactly this).
PYTHON ?= python3
OUT ?= demo_out

.PHONY: install demo test bench

install:
	$(PYTHON) -m pip install -q -e ".[test]"

demo: install
	$(PYTHON) -m demo --output_dir=$(OUT)

test: install
	$(PYTHON) -m pytest tests
