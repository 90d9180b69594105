# The two commands of README.md: `make demo` (install + the main job on generated sample data)
# and `make test` (install + the whole test suite; .ci/run runs exactly this).
#
# Where the project is installed: into the active virtualenv or conda environment when there is
# one (VIRTUAL_ENV or CONDA_PREFIX set: its python3), else into a project virtualenv .venv made
# here from $(PYTHON). Debian 12 and Ubuntu 23.04+ mark their own python3 "externally managed"
# (PEP 668) and pip refuses to install into it; a venv is the convention. pyenv's python3 works
# either way (a pyenv-virtualenv sets VIRTUAL_ENV; a plain pyenv version gets a .venv).
PYTHON ?= python3
VENV ?= .venv
PIP_FLAGS ?=          # extra flags for the install, e.g. --no-deps
OUT ?= demo_out
SUDO ?= $(shell [ "$$(id -u)" = 0 ] || echo sudo)

ifneq ($(VIRTUAL_ENV)$(CONDA_PREFIX),)
PY := $(PYTHON)
VENV_TARGET :=
else
PY := $(VENV)/bin/python
VENV_TARGET := $(VENV)/bin/python
endif

.PHONY: install demo test test-fast bench browser clean venv print-python

# The interpreter the targets below use (tests/test_makefile.py reads it).
print-python:
	@echo $(PY)

venv: $(VENV_TARGET)

# Debian splits venv's pip bootstrap (ensurepip) into python3-venv: installed once if missing,
# as the browser target installs Chromium.
$(VENV)/bin/python:
	@$(PYTHON) -c "import ensurepip" 2>/dev/null || { \
	  echo "$(PYTHON) cannot make a virtualenv (no ensurepip): installing Debian's python3-venv"; \
	  $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive \
	  apt-get install -y -qq --no-install-recommends python3-venv; }
	$(PYTHON) -m venv $(VENV)

install: $(VENV_TARGET)
	$(PY) -m pip install -q -e ".[test]" $(PIP_FLAGS)

demo: install
	$(PY) -m demo --output_dir=$(OUT)

# The browser test (tests/test_streamlit_browser.py) drives Debian's Chromium through its
# chromedriver: installed once, skipped when present (browser downloads do not work offline).
browser:
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then :; else \
	  $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive \
	  apt-get install -y -qq --no-install-recommends chromium chromium-driver; fi

test: install browser
	$(PY) -m pytest tests

# The fast loop while working: every test but those marked slow (training, the Inception export,
# the demo, the TF 2.20 runtime, Chromium, long Beam runs; tests/conftest.py says which). CI runs
# `make test`, all of them.
test-fast: install
	$(PY) -m pytest tests -m "not slow"

# Everything the two commands and the tests made: the project virtualenv, the demo's output,
# out/ (tests/test_serving_runtime.py's side virtualenv), build and cache files.
clean:
	rm -rf $(VENV) $(OUT) out build dist .pytest_cache *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
