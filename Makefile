# Two commands: `make reproduce` (run every notebook for PROFILE) and `make test`.
# Every target installs what it needs into $(VENV) first.

PROFILE ?= smoke
PYTHON ?= $(shell command -v python3.11 >/dev/null 2>&1 && echo python3.11 || echo python3)
VENV = .venv
# torch/torchvision are pinned here (the local wheel cache holds exactly these); override if needed.
TORCH_PINS ?= torch==2.14.1 torchvision==0.29.1
PYTEST_ARGS ?=

.PHONY: install data reproduce figures test notebooks notebook-outputs clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install $(TORCH_PINS)
	$(VENV)/bin/pip install -e .
	touch $@

# Fetch the datasets PROFILE reads into the data root ($L2L_DATA_DIR, else ./data): smoke, the smoke profiles' files
# and VGG-19's ImageNet weights (L2L's neural art); cpu and paper, also every other dataset the paper settings read
# that torchvision can download (KMNIST and USPS train splits, QMNIST, SVHN, CIFAR-10, STL-10, ResNet-18's weights).
# Files already there are only verified (md5); without a network it says what is missing and exits 0, and the checks
# that need it are skipped.
data: $(VENV)/.installed
	$(VENV)/bin/l2l-fetch-data --profile $(PROFILE)

# Jobs run in parallel on a Dask LocalCluster sized to the machine; a rerun skips finished notebooks and resumes
# interrupted ones. More options through REPRODUCE_ARGS, e.g. "--jobs 1" (one after another, without Dask),
# "--seeds 0-4", "--scheduler tcp://host:8786", "--slurm ..." (README, "Running notebooks").
REPRODUCE_ARGS ?=

reproduce: data
	$(VENV)/bin/l2l-reproduce --profile $(PROFILE) $(REPRODUCE_ARGS)

# Notebooks reuse stored results (they only retrain what is missing), so re-running
# them (--force: finished ones too) for a profile whose results exist only redraws the figures under figures/.
figures: data
	$(VENV)/bin/l2l-reproduce --profile $(PROFILE) --force $(REPRODUCE_ARGS)

# The notebooks are written from their percent scripts (notebooks/src/*.py, paired in jupytext.toml): edit a script,
# then `make notebooks`; `make notebook-outputs` re-executes them at the smoke profile for their committed outputs.
NOTEBOOK_NAMES = $(basename $(notdir $(wildcard notebooks/src/*.py)))

notebooks: $(VENV)/.installed
	for name in $(NOTEBOOK_NAMES); do \
		$(VENV)/bin/jupytext --update --to ipynb -o notebooks/$$name.ipynb notebooks/src/$$name.py || exit 1; done

notebook-outputs: notebooks data
	for name in $(NOTEBOOK_NAMES); do \
		$(VENV)/bin/papermill notebooks/$$name.ipynb notebooks/$$name.ipynb --cwd notebooks || exit 1; done

test: data
	$(VENV)/bin/python -m pytest tests $(PYTEST_ARGS)
	$(VENV)/bin/python -m pytest --nbval-lax --nbval-sanitize-with tests/nbval_sanitize.cfg notebooks -p no:cacheprovider $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
