# Two commands: `make demo` (set up, then run the main job) and `make test` (set up, then the tests).
# Needs python3.11, Node.js 20 with npm (TF.js runner) and apt-get as root (Debian's chromium for browser tests).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TFJS_RUNNER := device_runtime/tfjs_node
ORT_WEB := device_runtime/ort_browser
STAMP := $(VENV)/.installed-$(shell cat requirements.lock pyproject.toml $(TFJS_RUNNER)/package-lock.json $(ORT_WEB)/package-lock.json | sha256sum | cut -c1-12)

.PHONY: setup demo test test-fast lint clean

setup: $(STAMP)

$(STAMP): requirements.lock pyproject.toml $(TFJS_RUNNER)/package-lock.json $(ORT_WEB)/package-lock.json
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "pip==26.3"
	$(BIN)/pip install --quiet -r requirements.lock
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/pip check
	npm ci --prefix $(TFJS_RUNNER) --no-audit --no-fund --loglevel=error
	npm ci --prefix $(ORT_WEB) --no-audit --no-fund --loglevel=error
	command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null)
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

demo: setup
	$(BIN)/pipeline sweep --report
	@echo "Report: workspace/report/report.html (and report.md). Results: workspace/results.sqlite."
	$(BIN)/pipeline app --workspace workspace

test: setup lint
	$(BIN)/pytest

# For iteration: skips the slow marker (training, large models, full sweeps); `make test` runs everything.
test-fast: setup lint
	$(BIN)/pytest -m "not slow"

lint: setup
	$(BIN)/ruff check pipeline quantize exporters device_runtime demo_app tests benchmarks examples
	$(BIN)/lint-imports --no-logo --no-cache

clean:
	rm -rf $(VENV) workspace
