# The real-Xen test lab (scripts/xenlab/README.md). Included by the top-level Makefile.
#   make lab        build (or find cached) the lab images: dom0, guest kernel, replica and NV-domain initramfs
#   make lab-test   boot Xen 4.17 in QEMU (TCG) and run the checks; non-zero exit on any failed check
# Variables (also from the environment):
#   DOMAIN_NV_BIN=path  static binary used as the NV domain's /init (default: the real domain-nv,
#                       target/x86_64-unknown-linux-musl/release/domain-nv, rebuilt by `make static` first)
#   NVCTL_BIN=path      static nvctl run in dom0 (default target/x86_64-unknown-linux-musl/release/nvctl)
#   LAB_DNSD_BIN=path   static UDP service of the replicas (default: nv-testbed's nv-lab-dnsd,
#                       target/x86_64-unknown-linux-musl/release/nv-lab-dnsd, rebuilt by lab-static)
#   LAB_SPEC=file       the replica group nvctl starts (default xl-configs/xenlab-group.yaml)
#   LAB_CHECKS="..."    run only these checks (names in scripts/xenlab/lab-checks.sh)
#   FORCE=1             rebuild every cached image
XENLAB_DIR := scripts/xenlab
DOMAIN_NV_BIN ?= $(TARGET_DIR)/x86_64-unknown-linux-musl/release/domain-nv
NVCTL_BIN ?= $(TARGET_DIR)/x86_64-unknown-linux-musl/release/nvctl
LAB_DNSD_BIN ?= $(TARGET_DIR)/x86_64-unknown-linux-musl/release/nv-lab-dnsd
export DOMAIN_NV_BIN NVCTL_BIN LAB_DNSD_BIN

.PHONY: lab lab-test lab-static

# the static domain-nv, nvctl and the replicas' nv-lab-dnsd are rebuilt (cargo: a no-op when current)
lab-static:
	@$(MAKE) --no-print-directory static
	$(CARGO) build --release --target $(MUSL) -p nv-testbed --bin nv-lab-dnsd

lab: lab-static
	$(XENLAB_DIR)/build-images.sh

lab-test: lab-static
	$(XENLAB_DIR)/run.sh
