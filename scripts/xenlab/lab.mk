# The real-Xen test lab (scripts/xenlab/README.md). Included by the top-level Makefile.
#   make lab        build (or find cached) the lab images: dom0, guest kernel, replica and NV-domain initramfs
#   make lab-test   boot Xen 4.17 in QEMU (TCG) and run the checks; non-zero exit on any failed check
# Variables (also from the environment):
#   DOMAIN_NV_BIN=path  static binary used as the NV domain's /init (default: the real domain-nv,
#                       target/x86_64-unknown-linux-musl/release/domain-nv, rebuilt by `make static`
#                       first; DOMAIN_NV_BIN=stand-in: the lab's test program nv-test-init.c)
#   LAB_CHECKS="..."    run only these checks (names in scripts/xenlab/lab-checks.sh)
#   NV_CONFIG=file      domain-nv config written to the NV domain's xenstore (default scripts/xenlab/nv-config.yaml)
#   FORCE=1             rebuild every cached image
XENLAB_DIR := scripts/xenlab
LAB_NV_DEFAULT := target/x86_64-unknown-linux-musl/release/domain-nv
DOMAIN_NV_BIN ?= $(LAB_NV_DEFAULT)
export DOMAIN_NV_BIN

.PHONY: lab lab-test lab-static

# the real domain-nv is rebuilt (cargo: a no-op when current) unless another /init was asked for
lab-static:
	@if [ "$(DOMAIN_NV_BIN)" = "$(LAB_NV_DEFAULT)" ]; then $(MAKE) --no-print-directory static; fi

lab: lab-static
	$(XENLAB_DIR)/build-images.sh

lab-test: lab-static
	$(XENLAB_DIR)/run.sh
