# Every entry point runs scripts/setup.sh first, so a fresh clone needs no manual step.
SHELL := /bin/bash
export LIBTORCH := $(CURDIR)/.deps/libtorch

.PHONY: setup run cluster test lint bench bench-encoders

setup:
	@scripts/setup.sh

## Run a local node on the embedded defaults with the bundled demo catalog, on 127.0.0.1:8080.
run: setup
	@echo "Inkling: the demo storefront at http://127.0.0.1:8080/ and the API docs at http://127.0.0.1:8080/docs (the demo catalog loads on a first start)"
	cargo run --release --bin inkling -- serve --catalog demo

## Run a local cluster of 3 nodes on 127.0.0.1-3:7280 with the demo catalog, until Ctrl-C.
cluster: setup
	cargo run --release --bin inkling -- cluster up --nodes 3

# Tests build the actors' fail-points (fault injection); `make run` and release builds never do.
TEST_FEATURES := --features inkling-actors/failpoints

## Run the whole test suite, fuzz the HTTP API against its OpenAPI document, and drive the
## demo page in headless Chromium (screenshots in target/browser-test).
test: setup
	cargo test --workspace $(TEST_FEATURES)
	cargo build --bin inkling $(TEST_FEATURES)
	REPORT=target/schemathesis scripts/fuzz-api.sh 100
	scripts/browser-test.sh target/browser-test

lint: setup
	cargo fmt --all -- --check
	python3 scripts/check-module-cycles.py .
	python3 scripts/check-file-lengths.py .
	cargo clippy --workspace --all-targets $(TEST_FEATURES) -- -D warnings

## Events/s through POST /v1/events with durable acknowledgements.
bench: setup
	cargo run --release --bin inkling -- bench events

## Encoder texts/s by batch size beside Python sentence-transformers, and pool latency.
bench-encoders: setup
	cargo run --release --bin inkling -- bench encoders --python "$$(scripts/reference-venv.sh)"
