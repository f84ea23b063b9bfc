# Sluice developer entry points. `make dev` runs the whole service on this machine;
# `make test` is what CI runs (.ci/run). Both honour CARGO_TARGET_DIR.

CARGO ?= cargo
TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)
SLUICE := $(TARGET_DIR)/debug/sluice
# Extra flags for `sluice dev`, e.g. make dev DEV_ARGS="--control-port 7070".
DEV_ARGS ?=

.PHONY: dev test prereqs lint fmt build

## Build every binary, then run Postgres + control plane until Ctrl-C (state in .sluice/).
dev:
	$(CARGO) build --bins
	$(SLUICE) dev $(DEV_ARGS)

## Everything CI checks, in order; stops at the first failure.
# The tests start their own Postgres clusters through the devkit, so only the binaries
# must exist (`sluice prereqs` installs them with apt when run as root). `sluice test-pg`
# runs one private server for the whole run, exports SLUICE_TEST_PG_URL, and stops it
# when the tests end, pass or fail (--no-fail-fast: CI shows every failing binary).
# Plain `cargo test` (not nextest): the tests of one binary share one server per process.
test:
	$(CARGO) run --quiet -p sluice-cli -- prereqs
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) build --workspace --bins
	$(SLUICE) test-pg -- $(CARGO) test --workspace --no-fail-fast

## Make sure Postgres binaries are installed.
prereqs:
	$(CARGO) run --quiet -p sluice-cli -- prereqs

## Formatting and clippy, as CI checks them.
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

## Format the whole workspace.
fmt:
	$(CARGO) fmt --all

build:
	$(CARGO) build --workspace --bins
