# domain-nv: the two commands a new user runs are `make demo` and `make test` (see README.md).
SHELL := /bin/bash
export PATH := $(HOME)/.cargo/bin:$(PATH)
CARGO ?= cargo
MUSL := x86_64-unknown-linux-musl
TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)

.PHONY: all deps build check test unit-test ns-test static demo lab lab-test bench lossbench fuzz clean

all: build

## deps: install apt packages and rustup targets that build and tests need (idempotent)
deps:
	@scripts/install-deps.sh

## build: debug build of the whole workspace
build: deps
	$(CARGO) build --workspace --all-targets

## check: the gates run first by CI: formatting, clippy with every warning an error (the lints are
## set once in Cargo.toml's [workspace.lints]), and the docs with broken links as errors
check: deps
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --workspace --no-deps

## Test tiers: a plain `cargo test --workspace` runs, unprivileged, everything that needs no root
## (unit, property, sim-Xen, header-layout, nvctl); the tests that need root (network namespaces,
## TAP, AF_PACKET, nftables: domain-nv/tests/e2e.rs and the loss tier domain-nv/tests/loss.rs)
## are #[ignore]d there and run by the second command.
UNPRIVILEGED_TESTS = $(CARGO) test --workspace --release
ROOT_TESTS = $(CARGO) test -p domain-nv --release --test e2e --test loss -- --ignored

## test: every fast test: both tiers (as root), static build
test: deps
	$(UNPRIVILEGED_TESTS)
	$(ROOT_TESTS)
	$(MAKE) --no-print-directory static
	scripts/check-static.sh $(TARGET_DIR)/$(MUSL)/release/domain-nv $(TARGET_DIR)/$(MUSL)/release/nvctl
	@echo "make test: all passed"

## unit-test: the tier that needs no root (what a plain `cargo test --workspace` runs)
unit-test: deps
	$(UNPRIVILEGED_TESTS)

## ns-test: the tier that needs root: the end-to-end tests in network namespaces (they build
## and remove their own namespaces)
ns-test: deps
	$(ROOT_TESTS)

## static: the statically linked musl binaries (domain-nv is the NV domain's /init)
static: deps
	$(CARGO) build --release --target $(MUSL) -p domain-nv -p toolstack-plugin

## demo: 3 replicas of a real service behind domain-nv, one of them faulty, one killed mid-stream
demo: deps
	$(CARGO) build --release -p domain-nv -p nv-testbed
	$(TARGET_DIR)/release/nv-demo $(TARGET_DIR)/release/domain-nv

## lab / lab-test: real Xen 4.17 in QEMU (TCG) with our netback and domain-nv (scripts/xenlab)
include scripts/xenlab/lab.mk

## bench: voting cost against direct and HAProxy (BENCH_ARGS=--quick for a short run), then the
## voter alone against memcmp
bench: deps
	scripts/install-deps.sh haproxy wrk
	$(CARGO) build --release -p domain-nv -p nv-testbed
	$(TARGET_DIR)/release/nv-bench $(TARGET_DIR)/release/domain-nv bench-results.json $(BENCH_ARGS)
	$(CARGO) bench -p domain-nv --bench voter

## lossbench: bulk MiB/s and the longest stall through domain-nv (3 nginx replicas) and directly,
## under 0, 1 and 5 % random loss on the client link (nftables), medians of 3 rounds
## (LOSSBENCH_ARGS, e.g. "--mib 64 --rounds 5 --loss 0,2")
lossbench: deps
	$(CARGO) build --release -p domain-nv -p nv-testbed
	$(TARGET_DIR)/release/nv-lossbench $(TARGET_DIR)/release/domain-nv $(LOSSBENCH_ARGS)

## fuzz: run every cargo-fuzz target for FUZZ_SECONDS (default 60); stable toolchain with
## RUSTC_BOOTSTRAP=1 (cargo-fuzz needs nightly flags)
FUZZ_SECONDS ?= 60
fuzz: deps
	command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	cd xen && RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run xs_reply -- -max_total_time=$(FUZZ_SECONDS)
	cd netback && RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run tx_chain -- -max_total_time=$(FUZZ_SECONDS)

clean:
	$(CARGO) clean
