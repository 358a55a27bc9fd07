# Ordercast — the two commands are `make run` and `make test`.
.PHONY: run test bench fmt lint check

run: ## Build, start local PostgreSQL + Redis, migrate, run with a demo restaurant
	bash scripts/dev.sh

test: ## Throw-away PostgreSQL + Redis, fmt check, clippy, every test
	bash scripts/test.sh

bench: ## Order-creation benchmark (release build, durable PostgreSQL); see docs/performance.md
	bash scripts/bench.sh

fmt: ## Format the code
	cargo fmt --all

lint: ## Clippy with warnings as errors
	cargo clippy --workspace --all-targets -- -D warnings

check: ## Fast compile check
	cargo check --workspace --all-targets
