# domain-nv: the two commands a new user runs are `make demo` and `make test` (see README.md).
SHELL := /bin/bash
export PATH := $(HOME)/.cargo/bin:$(PATH)
CARGO ?= cargo
MUSL := x86_64-unknown-linux-musl

.PHONY: all deps build test unit-test ns-test static demo lab lab-test bench fuzz clean

all: build

## deps: install apt packages and rustup targets that build and tests need (idempotent)
deps:
	@scripts/install-deps.sh

## build: debug build of the whole workspace
build: deps
	$(CARGO) build --workspace --all-targets

## test: every fast test: unit, property, sim-Xen, header-layout, static build, namespace end-to-end
## (the namespace tests need root; they build and remove their own namespaces)
test: deps
	$(CARGO) test --workspace --release
	@echo "make test: all passed"

## static: the statically linked musl binaries (domain-nv is the NV domain's /init)
static: deps
	$(CARGO) build --release --target $(MUSL) -p domain-nv -p toolstack-plugin
	@file target/$(MUSL)/release/domain-nv 2>/dev/null || true

## demo: 3 replicas of a real service behind domain-nv, one of them faulty, one killed mid-stream
demo: deps
	$(CARGO) build --release -p domain-nv -p nv-testbed
	target/release/nv-demo target/release/domain-nv

## lab / lab-test: real Xen 4.17 in QEMU with our netback and domain-nv
lab lab-test:
	@echo "make $@: not built yet: scripts/xenlab (issue 6) is missing" >&2; exit 1

## bench: voting cost against direct and HAProxy
bench:
	@echo "make bench: not built yet: the benchmark harness (issue 7) is missing" >&2; exit 1

## fuzz: run every cargo-fuzz target for FUZZ_SECONDS (default 60)
fuzz:
	@echo "make fuzz: not built yet: no fuzz targets (issue 2)" >&2; exit 1

clean:
	$(CARGO) clean
