# hookrelay: `make dev` runs the whole system locally, `make test` runs the tests.
# Both install what they need first (the pinned Python tools into .venv).

SHELL := /bin/bash
VENV := .venv
STAMP := $(VENV)/.installed
PYTHON ?= python3
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export SAM_CLI_TELEMETRY := 0
FUNCTION_BINS := ingest delivery sweeper admin

.PHONY: dev test lint fmt build venv clean bench bench-peer soak fairness fixtures sync wrk deploy deploy-check admin-key

## Install the pinned tools (moto's server, cargo-lambda, SAM CLI, cfn-lint, standardwebhooks).
venv: $(STAMP)
$(STAMP): infra/requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --upgrade pip
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r infra/requirements-dev.txt
	touch $@

## The whole system on 127.0.0.1: API on $$HOOKRELAY_PORT (3000), moto, the functions.
# Each function is built on its own (`cargo build --bin NAME`, its own feature set); the local
# stack runs these binaries as Lambda would, with the template's Timeout and MemorySize.
DEV_BUILD = for f in $(FUNCTION_BINS); do cargo build --bin $$f || exit 1; done; cargo build -p hookrelay-local --bins
dev: $(STAMP)
	$(DEV_BUILD)
	cargo run --quiet -p hookrelay-local --bin hookrelay-local

## Unit and integration tests; starts its own moto server.
test: $(STAMP)
	cargo test --workspace --no-fail-fast

DEPLOYED_CRATES = hookrelay-shared hookrelay-ingest hookrelay-delivery hookrelay-admin hookrelay-sweeper hookrelay-plugins hookrelay-cli

## fmt, clippy, SAM and CloudFormation lint.
lint: $(STAMP)
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings
	# What deploys answers an error, never panics on one: no unwrap or expect outside tests.
	cargo clippy --lib --bins $(foreach p,$(DEPLOYED_CRATES),-p $(p)) -- -D warnings -D clippy::unwrap_used -D clippy::expect_used
	sam validate --lint
	cfn-lint template.yaml

fmt:
	cargo fmt --all

## arm64 release binaries for `sam deploy`.
build: $(STAMP)
	sam build

## Deploy to AWS: make deploy [STACK=hookrelay] [REGION=eu-west-1] [PARAMS="AlarmEmail=you@example.com"]
## Checks the parameters, builds, checks credentials, creates the admin key in SSM (in REGION)
## when missing, runs sam deploy unattended and prints the API URL and the next commands.
## REGION defaults to AWS_REGION, AWS_DEFAULT_REGION, the profile's region, then us-east-1.
export STACK REGION PARAMS
deploy: $(STAMP)
	$(VENV)/bin/python3 infra/deploy.py

## Every step of `make deploy` before its first AWS call, offline (CI runs it): the script's
## syntax, the parameters of samconfig.toml, PARAMS and the README's walk-through against the
## template, sam validate --lint and sam build.
deploy-check: $(STAMP)
	$(VENV)/bin/python3 -m py_compile infra/deploy.py
	bash -n .ci/run
	@if command -v shellcheck >/dev/null; then shellcheck .ci/run; else echo "shellcheck not installed: bash -n only"; fi
	$(VENV)/bin/python3 infra/deploy.py --check --check-readme

## The admin key of a deployed stack, from SSM: export KEY=$$(make -s admin-key REGION=…)
admin-key: $(STAMP)
	@$(VENV)/bin/python3 infra/deploy.py --show-admin-key

clean:
	cargo clean
	rm -rf .aws-sam .local

## Benchmarks and the cost model, summarised in bench/results/summary.md (and .json;
## HOOKRELAY_BENCH_OUT=dir writes them elsewhere):
## CPU per event (criterion), delivery concurrency, AWS requests and log bytes per event on
## the local stack, cost growth, each function's binary size and cold start, and a load test
## (wrk) against the `make dev` stack.
CRITERION_QUICK = -- --warm-up-time 1 --measurement-time 2
BENCH_COSTS = cargo test --profile bench -p hookrelay-tests --test bench_costs
bench: $(STAMP) wrk
	mkdir -p "$${HOOKRELAY_BENCH_OUT:-bench/results}" target
	rm -f "$${HOOKRELAY_BENCH_OUT:-bench/results}"/requests-*.json
	date +%s > target/bench-started
	cargo bench -p hookrelay-ingest -p hookrelay-delivery --bench pipeline --bench per_task --bench concurrency $(CRITERION_QUICK)
	cargo bench -p hookrelay-plugins --features engines --bench transforms $(CRITERION_QUICK)
	$(BENCH_COSTS) --no-run
	# Two processes at once, each with its own emulator (one core each): half the time.
	HOOKRELAY_BENCH_SCENARIOS=1:0,3:0.3,1:0:1 $(BENCH_COSTS) bench_requests_per_event -- --ignored --test-threads 1 \
	  > target/bench-costs-a.log 2>&1 & a=$$!; \
	HOOKRELAY_BENCH_SCENARIOS=1:0.3,3:0 $(BENCH_COSTS) -- --ignored --test-threads 1 > target/bench-costs-b.log 2>&1; b=$$?; \
	wait $$a; a=$$?; tail -n 3 target/bench-costs-a.log target/bench-costs-b.log; [ $$a = 0 ] && [ $$b = 0 ]
	cargo build --release $(foreach f,$(FUNCTION_BINS),--bin $(f))
	cargo run --release --quiet -p hookrelay-local --bin hookrelay-coldstart
	$(DEV_BUILD)
	./target/debug/hookrelay-load
	$(VENV)/bin/python3 bench/summarize.py

## Soak: 10 000 events through the `make dev` stack under faults (a flaky endpoint, one down
## for a compressed day, the delivery function killed mid-batch, SQS and DynamoDB throttling);
## events lost, duplicates, the in-flight peak and latencies in bench/results/soak.md (and
## .json). 10 000 events at 3 a second take about an hour on two cores; SOAK_ARGS="--events
## 1000 --rate 2.5" about 13 minutes. Not part of `make test`.
soak: $(STAMP)
	$(DEV_BUILD)
	./target/debug/hookrelay-soak $(SOAK_ARGS)

## Fairness: how much one workspace's flood (fanned out to a failing and a hanging endpoint)
## delays another workspace's deliveries: alone, beside the flood rate limited, and beside
## it unlimited; p50/p99 in bench/results/fairness.md (and .json). About 10 minutes with the
## default FAIRNESS_ARGS="--phase-seconds 60 --flood 10". Not part of `make test`.
fairness: $(STAMP)
	$(DEV_BUILD)
	./target/debug/hookrelay-fairness $(FAIRNESS_ARGS)

## Side by side with Svix's open-source server: bench/peer/svix.sh fetches svix-server's
## public source (PEER_DIR, default ~/.cache/hookrelay-peer; about 11 minutes to build on 2
## cores the first time) and runs it on Debian's PostgreSQL and Redis (postgresql-15 and
## redis-server installed); the same workload goes through it and the local stack (release
## builds), then the EC2 cost comparison. Tables in bench/results/peer.md and peer-cost.md
## (and .json). PEER_ARGS="--rates 5,10 --seconds 20" (the defaults); about 10 minutes.
## By hand only: not part of `make bench`, `make test` or CI.
bench-peer: $(STAMP)
	bash bench/peer/svix.sh build
	cargo build --release $(foreach f,$(FUNCTION_BINS),--bin $(f))
	cargo build --release -p hookrelay-local --bin hookrelay-local
	cargo build -p hookrelay-local --bin hookrelay-peer
	./target/debug/hookrelay-peer $(PEER_ARGS)
	$(VENV)/bin/python3 bench/peer/ec2_cost.py

# The load test's generator, from Debian's packages.
wrk:
	@command -v wrk >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get install -y -q wrk >/dev/null; \
	  else echo "the load test needs wrk: sudo apt-get install wrk"; exit 1; fi; }

## Re-sign tests/fixtures/signed.json with the providers' own libraries (needs Node and npm).
fixtures: $(STAMP)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r tests/fixtures/requirements.txt
	cd tests/fixtures && npm install --silent && node generate-github.mjs && ../../$(VENV)/bin/python3 generate.py

## Sync a declarative config file to a workspace: make sync FILE=examples/config.yaml
## [WS=default] [DRY_RUN=true] [PRUNE=true]; HOOKRELAY_URL and HOOKRELAY_ADMIN_KEY say where.
sync:
	@test -n "$(FILE)" || (echo "usage: make sync FILE=config.yaml [WS=default] [DRY_RUN=true] [PRUNE=true]"; exit 2)
	HOOKRELAY_KEY="$${HOOKRELAY_ADMIN_KEY:?set HOOKRELAY_ADMIN_KEY}" cargo run --quiet -p hookrelay-cli -- \
	  sync "$(FILE)" -w "$${WS:-default}" $(if $(filter true,$(DRY_RUN)),--dry-run) $(if $(filter true,$(PRUNE)),--prune)
