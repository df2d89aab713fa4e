# whatsapp-agent-lambda: GNU make targets. Needs only the Rust toolchain and Python 3 (with
# venv); the test and deploy tools (moto, cfn-lint, SAM CLI, cargo-lambda + zig) are pinned in
# tests/requirements.txt and installed into ./.venv on first use.

# bash with pipefail: a test run piped through tee still fails the target when a test fails.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
.PHONY: help venv test lint demo pipeline events templates build deploy fuzz load bench
# One thing at a time, in the order written (`test` = venv, then lint, then the tests), even
# under `make -j`: cargo parallelises each step by itself.
.NOTPARALLEL:

VENV := .venv
STAMP := $(VENV)/.stamp
REQUIREMENTS := tests/requirements.txt
# Recipes that use the tools run with the venv first on PATH: `cargo lambda` is
# .venv/bin/cargo-lambda, and cargo-lambda finds zig as `python3 -m ziglang`, which must be the
# venv's python3. Prefixed per command (not exported) so `python3 -m venv` below still means
# the system Python.
WITH_VENV := PATH="$(CURDIR)/$(VENV)/bin:$$PATH"

help: ## list the targets
	@echo "usage: make <target>"
	@awk 'BEGIN { FS = ":.*## " } /^[a-z]+:.*## / { printf "  %-9s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

venv: $(STAMP) ## install the pinned test and deploy tools into .venv

# Rebuilt whenever the pins change.
$(STAMP): $(REQUIREMENTS)
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --disable-pip-version-check -q -r $(REQUIREMENTS)
	touch $@

test: venv lint ## the whole suite: venv, lint, doc + unit + integration tests, then the total
	mkdir -p target
	$(WITH_VENV) SAM_CLI_TELEMETRY=0 cargo test --doc 2>&1 | tee target/test-output.log
	$(WITH_VENV) SAM_CLI_TELEMETRY=0 cargo test --all-targets 2>&1 | tee -a target/test-output.log
	@awk '/^test result:/ { passed += $$4; failed += $$6 } END { printf "tests: %d passed, %d failed\n", passed, failed }' target/test-output.log

lint: ## rustfmt and clippy (warnings are errors)
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings

# Not part of `test` (CI time). Needs a nightly toolchain; without one it says so and runs
# tests/properties.rs with many more cases instead. See tests/fuzz/run.sh.
FUZZ_SECONDS ?= 60
fuzz: ## fuzz signature check, webhook parser, reply formatter: FUZZ_SECONDS (60) each
	FUZZ_SECONDS=$(FUZZ_SECONDS) bash tests/fuzz/run.sh

# Not part of `test` at this size (`cargo test` runs a small version). Release build; prints
# requests/s, p50/p99 latency and the webhook's peak RSS. See tests/load.rs.
LOAD_REQUESTS ?= 20000
LOAD_CONNECTIONS ?= 64
load: ## load test of local HTTP mode: LOAD_REQUESTS (20000) per phase, LOAD_CONNECTIONS (64)
	LOAD_REQUESTS=$(LOAD_REQUESTS) LOAD_CONNECTIONS=$(LOAD_CONNECTIONS) cargo test --release --test load -- --nocapture

# Not part of `test` (time: ~15 min cold on 2 cores, most of it the release and arm64 builds).
# Each step writes its figures under target/bench/; report.py reads them all and prints the
# table (also written to target/bench/report.md). See README.md, Performance.
BENCH_STAMP := $(VENV)/.bench-stamp
bench: venv build $(BENCH_STAMP) ## benchmarks: ack path, formatter, cold start vs a bare function, pywa, package size
	mkdir -p target/bench
	cargo build --release --bin webhook --example hello-lambda
	cargo bench --bench ack
	$(WITH_VENV) cargo bench --bench coldstart
	$(VENV)/bin/python tests/bench/pywa_bench.py
	cargo tree --duplicates --edges normal --target all > target/bench/tree-duplicates.txt
	python3 tests/bench/report.py

# pywa (the peer the bench compares with), into the same virtual environment.
$(BENCH_STAMP): tests/bench/requirements.txt $(STAMP)
	$(VENV)/bin/pip install --disable-pip-version-check -q -r tests/bench/requirements.txt
	touch $@

demo: ## run the sample events through the handler; prints what would go to WhatsApp
	cargo run --quiet --features dev --bin demo

pipeline: venv ## the production shape locally: webhook → SQS FIFO → worker, claims in DynamoDB (moto)
	cargo run --quiet --features dev --bin demo -- --pipeline

events: ## re-sign events/*.json after editing them
	cargo run --quiet --features dev --bin sign-events

# Reads WHATSAPP_ACCESS_TOKEN, ALERT_TEMPLATE, NOTICE_TEMPLATE and APPROVAL_TEMPLATE (optional), GRAPH_API_BASE_URL and
# GRAPH_API_VERSION from the environment, like the functions. DRY_RUN=1 prints the requests only.
templates: ## create the paging and approval templates through the Graph API: WABA_ID=… (DRY_RUN=1: print only)
	cargo run --quiet --features dev --bin create-templates -- --waba-id "$(WABA_ID)" $(if $(DRY_RUN),--dry-run)

build: venv ## cross-build both functions for Lambda (arm64): target/lambda/{webhook,worker}/bootstrap.zip
	$(WITH_VENV) cargo lambda build --release --arm64 --output-format zip --bin webhook --bin worker

deploy: venv ## sam build + sam deploy --guided (needs AWS credentials)
	$(WITH_VENV) sam build
	$(WITH_VENV) sam deploy --guided
