# make demo: the whole chain on a phantom cohort.  make test: the default test run
# (with the IDC extra, so the download tests run against a local S3 endpoint, and the
# DICOMweb extra, so the DICOMweb tests run against a local Orthanc).
# Both create .venv by themselves on a fresh machine (torch/torchvision pinned as a pair);
# the demo installs the package with its training packages ('.[train]'), the tests add the
# dev and idc extras on top, and build .venv-base too: the base install alone (no torch),
# in which tests/test_base_install.py runs an exported model.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
DEV_STAMP := $(VENV)/.installed-dev-stamp
BASE_VENV := .venv-base
BASE_STAMP := $(BASE_VENV)/.installed-stamp
DEMO_OUT ?= demo_out

.PHONY: demo test test-slow lint bench gpu-check clean venv

venv: $(DEV_STAMP)

# pip byte-compiles every installed file on one core (about 100 s for torch's 6 GB);
# compileall -j0 does the same on every core (about 30 s). It skips, as pip does, files
# that are not Python 3.11 syntax (torch's py312 test helpers), hence the || true.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --no-compile -e '.[train]'
	$(PY) -m compileall -q -j0 "$$($(PY) -c 'import sysconfig; print(sysconfig.get_path("purelib"))')" >/dev/null || true
	$(PY) -m detect.torch_check
	touch $(STAMP)

# the base install alone (pip install detect): rebuilt only when pyproject.toml changes
$(BASE_STAMP): pyproject.toml
	test -x $(BASE_VENV)/bin/python || $(PYTHON) -m venv $(BASE_VENV)
	$(BASE_VENV)/bin/python -m pip install --quiet --no-compile -e .
	$(BASE_VENV)/bin/python -m compileall -q -j0 "$$($(BASE_VENV)/bin/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')" >/dev/null || true
	touch $(BASE_STAMP)

$(DEV_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e '.[train,dev,idc,dicomweb]'
	touch $(DEV_STAMP)

demo: $(STAMP)
	rm -rf $(DEMO_OUT)  # the demo's own output folder: each make demo starts afresh
	$(VENV)/bin/detect demo --out $(DEMO_OUT)

# dciodvfy (dicom3tools) checks the DICOM SRs predict writes, Orthanc with its DICOMweb
# plugin is the server of the DICOMweb tests; installed when apt-get can, never failing
# the target (those tests skip visibly without them)
test: $(DEV_STAMP) $(BASE_STAMP)
	command -v dciodvfy >/dev/null || (command -v apt-get >/dev/null && apt-get install -y -qq dicom3tools >/dev/null 2>&1) || true
	(command -v Orthanc >/dev/null && test -e /usr/share/orthanc/plugins/libOrthancDicomWeb.so) || (command -v apt-get >/dev/null && apt-get install -y -qq orthanc orthanc-dicomweb >/dev/null 2>&1) || true
	$(PY) -m pytest

test-slow: $(DEV_STAMP)
	$(PY) -m pytest -m slow

lint: $(DEV_STAMP)
	$(VENV)/bin/ruff check detect tests tools
	$(VENV)/bin/mypy

bench: $(STAMP)
	$(PY) tools/benchmarks/convert.py

# on a machine with a GPU: train, DDP (2+ GPUs) and predict speed in one table (~8 min)
gpu-check: $(STAMP)
	$(PY) tools/gpu_check.py

clean:
	rm -rf $(VENV) $(BASE_VENV) $(DEMO_OUT) .pytest_cache .mypy_cache .ruff_cache
