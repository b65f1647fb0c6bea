# Two commands: `make run` (the app on its offline demo data) and `make test` (the whole suite).
# Both create the virtual environment they need.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8501
# Listen on this machine only; `make run ADDRESS=0.0.0.0` serves the network (turn on sign-in
# first: .streamlit/secrets.toml.example). Streamlit reads it as STREAMLIT_SERVER_ADDRESS.
ADDRESS ?= 127.0.0.1
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test bench demo-data chromium clean

$(VENV)/.runtime: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

chromium:
	@test -x /usr/bin/chromium || { $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q chromium; }

demo-data: $(VENV)/.runtime
	$(PY) -m services.datasets.demo

# The launcher starts the web server and the remote-logging endpoint; Ctrl-C stops them and every
# background process of the data root (job runner, workers, model service) within 10 s.
run: export STREAMLIT_SERVER_ADDRESS = $(ADDRESS)
run: $(VENV)/.runtime demo-data
	$(PY) -m services.supervisor --address $(ADDRESS) --port $(PORT)

test: $(VENV)/.dev chromium
	$(PY) -m pytest

bench: $(VENV)/.dev
	for script in bench/bench_*.py; do $(PY) $$script || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache build
