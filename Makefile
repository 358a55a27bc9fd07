# Ordercast — the two commands are `make run` and `make test`.
.PHONY: run test bench bench-edge bench-fanout bench-idle bench-saturation bench-scale bench-regions cluster cluster-stop cluster-regions cluster-regions-stop loadtest loadtest-chaos loadtest-freeze loadtest-regions chart dashboard-test fmt lint check

run: ## Build, start local PostgreSQL + Redis, migrate, run with a demo restaurant
	bash scripts/dev.sh

test: ## Throw-away PostgreSQL + Redis, fmt check, clippy, every test
	bash scripts/test.sh

bench: ## Order-creation benchmark (release build, durable PostgreSQL); see docs/performance.md
	bash scripts/bench.sh

bench-edge: ## Edge benchmarks (idle connections, latency, mass reconnect) against one edge; see docs/performance.md
	bash scripts/bench-edge.sh

bench-fanout: ## Fan-out cost: 2,000 and 5,000 SSE screens, 200 events/s published through the api, `all` and split layouts; see docs/performance.md
	bash scripts/bench-fanout.sh

bench-idle: ## Memory per idle connection: 5,000 idle SSE, then WebSocket, screens on one `ordercast all`; see docs/performance.md
	bash scripts/bench-idle.sh

bench-scale: ## Scale: 50,000 SSE and WebSocket screens over 4 edges from 4 load testers, 100 events/s; then one edge's RSS under 15,000 screens and 200 events/s beside the chart's limit
	bash scripts/bench-scale.sh

bench-saturation: ## Saturation: 5,000 SSE screens on one `ordercast all`, the event rate stepped up until publish → read p99 > 50 ms; see docs/performance.md
	bash scripts/bench-saturation.sh

bench-regions: ## Regions targets on the two-region rig: remote latency, in-region p99 during a partition, catch-up after heal
	bash scripts/bench-regions.sh

cluster: ## 2 api + 2 edge processes, PostgreSQL, Redis on loopback, in the background
	bash scripts/cluster.sh up

cluster-stop: ## Stop what `make cluster` started
	bash scripts/cluster.sh down

cluster-regions: ## Two regions (REGIONS=3 for three) on loopback, linked through a delaying proxy; see docs/multi-region.md
	bash scripts/cluster-regions.sh up

cluster-regions-stop: ## Stop what `make cluster-regions` started
	bash scripts/cluster-regions.sh down

loadtest: ## Default load scenario against the cluster; report in target/loadtest/ (ARGS='--rate 50' to override)
	bash scripts/loadtest.sh $(ARGS)

loadtest-chaos: ## The default scenario with connection drops and edge 1 killed (SIGKILL) and restarted
	bash scripts/loadtest.sh --drop-share 0.05 --drop-every 10s \
	  --exec '20s=scripts/cluster.sh kill-edge 1' --exec '30s=scripts/cluster.sh start-edge 1' \
	  --json target/loadtest/chaos.json --report target/loadtest/chaos.html $(ARGS)

loadtest-freeze: ## The default scenario with Redis frozen (SIGSTOP) for 15 s, then PostgreSQL for 10 s
	bash scripts/loadtest.sh \
	  --exec '10s=scripts/cluster.sh freeze-redis' --exec '25s=scripts/cluster.sh thaw-redis' \
	  --exec '35s=scripts/cluster.sh freeze-postgres' --exec '45s=scripts/cluster.sh thaw-postgres' \
	  --json target/loadtest/freeze.json --report target/loadtest/freeze.html $(ARGS)

loadtest-regions: ## Regions load test with a partition, a Redis and the apis of one region killed; see docs/loadtest.md
	bash scripts/loadtest-regions.sh $(ARGS)

chart: ## Lint the Helm chart (charts/ordercast) and run its tests; helm comes from PyPI, promtool from Debian
	bash scripts/chart.sh

dashboard-test: ## The Grafana dashboard and the alert rules against a real Prometheus scraping Ordercast under a short load test
	bash scripts/dashboard-test.sh

fmt: ## Format the code
	cargo fmt --all

lint: ## Clippy with warnings as errors
	cargo clippy --workspace --all-targets -- -D warnings

check: ## Fast compile check
	cargo check --workspace --all-targets
