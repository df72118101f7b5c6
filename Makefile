# Two commands on a fresh machine: `make demo` and `make test`.
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TYPINGS := .typings

.PHONY: setup demo test lint typecheck pytest clean

setup: $(STAMP)

# torch is installed first and pinned on its own line, so no requirement can pull another torch.
$(STAMP): requirements.txt requirements-dev.txt setup.py
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -r requirements-dev.txt
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	$(PY) -m pip install -q --no-deps --upgrade --target $(TYPINGS) \
		rclpy-intellisense==1.2.0 common-interfaces-intellisense==0.1.0
	$(PY) -c "import torch; assert torch.__version__.startswith('2.13.0'), torch.__version__"
	touch $(STAMP)

demo: setup
	$(VENV)/bin/action-recognition demo

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/mypy --strict action_recognition/ros launch

typecheck: lint

pytest: setup
	$(VENV)/bin/pytest -q

test: lint pytest

clean:
	rm -rf $(VENV) $(TYPINGS) .mypy_cache .ruff_cache .pytest_cache *.egg-info
