# Two entry points for a fresh machine (see README): `make demo` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.amodal_depth_ros-setup
OUT ?= out/demo

.PHONY: setup demo test clean

setup: $(STAMP)

# Re-run the setup whenever the dependency lists or the interfaces change.
$(STAMP): scripts/setup_env.sh requirements.txt requirements-build.txt constraints.txt CMakeLists.txt package.xml setup.py msg/*.msg srv/*.srv
	bash scripts/setup_env.sh $(VENV)
	touch $@

demo: $(STAMP)
	$(VENV)/bin/amodal-depth demo --out $(OUT)

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(PY) -m pytest test

clean:
	rm -rf build out $(VENV)
