# The two commands of README.md: `make demo` (install + the main job on generated sample data)
# and `make test` (install + the whole test suite; .ci/run runs exactly this).
PYTHON ?= python3
OUT ?= demo_out

.PHONY: install demo test bench browser

install:
	$(PYTHON) -m pip install -q -e ".[test]"

demo: install
	$(PYTHON) -m demo --output_dir=$(OUT)

# The browser test (tests/test_streamlit_browser.py) drives Debian's Chromium through its
# chromedriver: installed once, skipped when present (browser downloads do not work offline).
SUDO ?= $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser:
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then :; else \
	  $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive \
	  apt-get install -y -qq --no-install-recommends chromium chromium-driver; fi

test: install browser
	$(PYTHON) -m pytest tests
