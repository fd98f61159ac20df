# mailevents: `make run` and `make test` are all a newcomer needs.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DATA ?= data
DB ?= $(DATA)/mailevents.db
BUF := .tools/node_modules/.bin/buf
PROTO_SRC := $(wildcard protos/mailevents/v1/*.proto)

.PHONY: install run test test-sqlite lint protos protos-check bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev,postgres,otel]'
	touch $(STAMP)

install: $(STAMP)

## run: the service on the embedded SQLite default, with demo data loaded on first start.
run: $(STAMP)
	@mkdir -p $(DATA)
	@if [ ! -f $(DB) ]; then \
	  echo "First start: loading 100,000 demo events into $(DB) (tenant 'demo')..."; \
	  $(BIN)/mailevents demo --database $(DB) --tenant demo --events 100000 | tail -n 1 > $(DATA)/demo.key; \
	fi
	@echo "API key for tenant 'demo': $$(cat $(DATA)/demo.key)  (also in $(DATA)/demo.key)"
	@echo "Try:  export MAILEVENTS_API_KEY=$$(cat $(DATA)/demo.key); $(BIN)/mailevents search --type bounce --since 24h --limit 5"
	$(BIN)/mailevents serve --database $(DB)

## test: the whole suite (PostgreSQL tests run when scripts/postgres.sh can start a server).
test: $(STAMP)
	@bash scripts/test.sh

lint: $(STAMP) protos-check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	@bash scripts/buf.sh lint
	@bash scripts/buf.sh breaking

## protos: regenerate the Python stubs from protos/ (reproducible: pinned grpcio-tools).
protos: $(STAMP)
	$(PY) -m grpc_tools.protoc -Iprotos --python_out=client --pyi_out=client --grpc_python_out=client $(PROTO_SRC)

## protos-check: fail when the committed stubs differ from what `make protos` would write.
protos-check: $(STAMP)
	@tmp=$$(mktemp -d); \
	$(PY) -m grpc_tools.protoc -Iprotos --python_out=$$tmp --pyi_out=$$tmp --grpc_python_out=$$tmp $(PROTO_SRC) && \
	for f in $$tmp/mailevents/v1/*; do \
	  if ! cmp -s $$f client/mailevents/v1/$$(basename $$f); then echo "stale: client/mailevents/v1/$$(basename $$f) (run make protos)"; rm -rf $$tmp; exit 1; fi; \
	done; rm -rf $$tmp; echo "generated stubs are up to date"

## bench: throughput and memory figures next to the raw-SQLite floor, measured in the same run.
bench: $(STAMP)
	$(PY) -m benchmarks $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .tools .mypy_cache .ruff_cache .pytest_cache
