# Developer and CI entry points. `make help` lists the targets.
# .ci/run runs: fmt check, vet, verify-generated, console-verify, test.

SHELL := /bin/bash

GO    ?= go
SQLC  := $(GO) run github.com/sqlc-dev/sqlc/cmd/sqlc@v1.31.1
# Directories written by sqlc (see sqlc.yaml).
GENERATED := internal/dbsqlc examples/licensing/licensingdb
# The admin console's source and its built, embedded copy.
CONSOLE      := examples/licensing/console
CONSOLE_DIST := $(CONSOLE)/dist

.DEFAULT_GOAL := help
.PHONY: help test generate verify-generated vet fmt bench lint console console-verify

help: ## List the targets.
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

test: ## Run every test against a real PostgreSQL (the README's test command).
	$(GO) test -race -count=1 -timeout 20m ./...

generate: ## Regenerate the sqlc code (sqlc v1.31.1 pinned, built with cgo on first use).
	$(SQLC) generate

verify-generated: generate ## Fail if the committed sqlc code differs from what sqlc generates.
	@if ! git diff --exit-code -- $(GENERATED); then \
		echo "verify-generated: the sqlc output above differs from the committed code."; \
		echo "verify-generated: run 'make generate' and commit the result."; \
		exit 1; \
	fi
	@untracked="$$(git ls-files --others --exclude-standard -- $(GENERATED))"; \
	if [ -n "$$untracked" ]; then \
		echo "verify-generated: sqlc generated files that are not committed:"; \
		echo "$$untracked"; \
		echo "verify-generated: run 'make generate' and commit them."; \
		exit 1; \
	fi
	@echo "verify-generated: the generated code is up to date."

vet: ## Run go vet on every package.
	$(GO) vet ./...

fmt: ## Format every Go file with gofmt.
	gofmt -w .

bench: ## Run the router benchmarks.
	$(GO) test -run '^$$' -bench . -benchtime 2s ./router/...

lint: ## Check formatting (gofmt -l) and run go vet.
	@out="$$(gofmt -l .)"; \
	if [ -n "$$out" ]; then \
		echo "lint: these files are not gofmt-formatted (run 'make fmt'):"; \
		echo "$$out"; \
		exit 1; \
	fi
	$(GO) vet ./...

console: ## Build the admin console into examples/licensing/console/dist (npm ci && npm run build; Node 18+).
	cd $(CONSOLE) && npm ci --no-audit --no-fund && npm run build

console-verify: console ## Rebuild the console and fail if the embedded dist/ differs from the committed copy; run its unit tests.
	cd $(CONSOLE) && npm test
	@if ! git diff --exit-code --stat -- $(CONSOLE_DIST); then \
		echo "console-verify: the built console differs from the committed $(CONSOLE_DIST)."; \
		echo "console-verify: run 'make console' and commit $(CONSOLE_DIST)."; \
		exit 1; \
	fi
	@untracked="$$(git ls-files --others --exclude-standard -- $(CONSOLE_DIST))"; \
	if [ -n "$$untracked" ]; then \
		echo "console-verify: built files that are not committed:"; \
		echo "$$untracked"; \
		exit 1; \
	fi
	@echo "console-verify: the embedded console matches its source."
