# SPDX-License-Identifier: Apache-2.0
# sandbox: one Makefile for the VMM, the guest images, the tests and the test hosts.
#
#   make                 sandbox for ARCH (default: this machine's), plus its guest images
#   make ARCH=arm64      cross-build sandbox and the arm64 guest images
#   make deps            install the Debian packages everything needs (root)
#   make boot            boot the default guest of ARCH (in its test host unless this machine's
#                        KVM runs that arch's guests)
#   make demo            example functions through sandbox run, the same way
#   make check           unit tests, format check, fuzzing, end-to-end tests in the arm64 and
#                        x86_64 test hosts, then make bench QUICK=1 (the harness works; no speed
#                        is checked)
#   make bench           every benchmark against its peers: build/bench/report.md (QUICK=1: short)

HOST_ARCH := $(shell uname -m | sed -e 's/aarch64/arm64/')
ARCH ?= $(HOST_ARCH)
ifeq ($(ARCH),aarch64)
override ARCH := arm64
endif

BUILD := build
O := $(BUILD)/$(ARCH)
HOSTO := $(BUILD)/host
SANDBOX_CACHE ?= $(HOME)/.cache/sandbox
export SANDBOX_CACHE

ifeq ($(ARCH),arm64)
ifneq ($(HOST_ARCH),arm64)
CROSS_COMPILE ?= aarch64-linux-gnu-
endif
endif
CC := $(CROSS_COMPILE)gcc
HOSTCC := gcc

VERSION := $(shell git describe --always --dirty 2>/dev/null || echo unknown)
WARN := -Wall -Wextra -Werror -Wmissing-prototypes
CFLAGS ?= -O2 -g
CFLAGS += -std=gnu11 $(WARN) -fstack-protector-strong -D_GNU_SOURCE
CPPFLAGS += -Ivmm/arch/$(ARCH) -MMD -MP -DSANDBOX_VERSION='"$(VERSION)"'
LDLIBS := -lfdt -luring -lzstd -lxxhash -lpthread

# sandbox is static so it runs in the test hosts without a root filesystem.
# The arm64 libfdt.a comes from the arm64 package via apt-get download: libfdt-dev:arm64
# cannot be installed beside libfdt-dev.
ARM64_SYSROOT := $(SANDBOX_CACHE)/arm64-sysroot
LDFLAGS += -static
ifeq ($(ARCH),arm64)
ifneq ($(HOST_ARCH),arm64)
LDFLAGS += -L$(ARM64_SYSROOT)/usr/lib/aarch64-linux-gnu
SYSROOT_DEP := $(ARM64_SYSROOT)/.done
endif
endif

SRCS := launcher/main.c launcher/cli.c launcher/common.c \
	launcher/snapshot_cmd.c launcher/run.c launcher/invoke.c images/agent/proto.c \
	vmm/vm.c vmm/vcpu.c vmm/bus.c vmm/mem.c vmm/loader.c vmm/log.c \
	devices/pl011.c devices/console_io.c devices/pvpanic.c devices/blk_engine.c \
	devices/virtio/virtq.c devices/virtio/mmio.c devices/virtio/blk.c \
	devices/virtio/blk_req.c devices/virtio/vsock.c devices/virtio/vsock_mux.c \
	snapshot/snap.c snapshot/pager.c snapshot/analyze.c vmm/state.c vmm/vm_snapshot.c \
	pool/daemon.c pool/worker.c pool/client.c pool/proto.c
SRCS_arm64 := vmm/arch/arm64/arch.c vmm/arch/arm64/devtree.c vmm/arch/arm64/image.c \
	vmm/arch/arm64/snapshot.c
SRCS_x86_64 := vmm/arch/x86_64/arch.c vmm/arch/x86_64/boot.c vmm/arch/x86_64/cpu_state.c \
	vmm/arch/x86_64/snapshot.c devices/uart16550.c devices/i8042.c
ALL_SRCS := $(SRCS) $(SRCS_$(ARCH))
OBJS := $(ALL_SRCS:%.c=$(BUILD)/obj/$(ARCH)/%.o)

ifeq ($(SRCS_$(ARCH)),)
$(error ARCH=$(ARCH) is not supported; use arm64 or x86_64)
endif

# Guest images: the kernel (arm64: Image; x86_64: an ELF vmlinux, booted through PVH), PID 1
# and the agent in an initramfs, and a small root filesystem.
KERNEL_arm64 := Image
KERNEL_x86_64 := vmlinux
KERNEL := $(O)/images/$(KERNEL_$(ARCH))
IMAGES := $(KERNEL) $(O)/images/initramfs.cpio $(O)/images/rootfs.ext4

.PHONY: all deps images boot demo check unit fuzz e2e e2e-vsock e2e-pool bench bench-arch bench-blk bench-snapshot bench-run bench-pool bench-ksm bench-boot bench-dedup format-check format clean FORCE
.DEFAULT_GOAL := all
.SECONDEXPANSION:

# Example functions for `sandbox run`: static programs for the target arch.
EXAMPLES := $(patsubst examples/%.c,$(O)/examples/%,$(wildcard examples/*.c))

all: $(O)/sandbox $(IMAGES) $(EXAMPLES)

deps:
	scripts/deps

$(O)/sandbox: $(OBJS) $(SYSROOT_DEP)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $(OBJS) $(LDLIBS)

$(BUILD)/obj/$(ARCH)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

$(O)/examples/%: examples/%.c
	@mkdir -p $(dir $@)
	$(CC) -static -O2 -std=gnu11 $(WARN) -o $@ $<

$(ARM64_SYSROOT)/.done: scripts/arm64-sysroot
	scripts/arm64-sysroot $(ARM64_SYSROOT)

# --- guest images --------------------------------------------------------------
images: $(IMAGES)

# build-kernel keeps its own cache keyed by config and sources; it is cheap when cached.
# The Image keeps its inode and mtime while its bytes do not change: sandbox run keys
# its cached base snapshot on them.
$(KERNEL): FORCE
	@mkdir -p $(dir $@)
	images/build-kernel $(ARCH) $@.new
	@if cmp -s $@.new $@; then rm -f $@.new; else mv -f $@.new $@; fi

# PID 1 and the guest agent (one static binary); proto.c is also linked into sandbox.
AGENT_SRCS := images/agent/init.c images/agent/agent.c images/agent/proto.c
$(O)/images/init: $(AGENT_SRCS) $(wildcard images/agent/*.h)
	@mkdir -p $(dir $@)
	$(CC) -static -Os -std=gnu11 $(WARN) -D_GNU_SOURCE -o $@ $(AGENT_SRCS)

$(O)/images/initramfs.cpio: $(O)/images/init images/mkinitramfs
	images/mkinitramfs $@ $(O)/images/init

# Small: the test host carries it in RAM (its initramfs does not keep files sparse).
# Boot a copy when writing to it: a rw boot changes the file in place.
$(O)/images/rootfs.ext4: $(O)/images/init images/mkrootfs
	images/mkrootfs $@ $(O)/images/init --size 32

# --- tests ---------------------------------------------------------------------
UNIT_TESTS := $(wildcard tests/unit/test_*.c)
UNIT_SRCS := launcher/cli.c vmm/bus.c vmm/mem.c vmm/log.c devices/pl011.c \
	devices/console_io.c devices/uart16550.c devices/i8042.c vmm/arch/x86_64/boot.c vmm/arch/x86_64/cpu_state.c \
	devices/blk_engine.c devices/virtio/virtq.c devices/virtio/blk_req.c \
	devices/virtio/mmio.c devices/virtio/vsock.c devices/virtio/vsock_mux.c \
	snapshot/snap.c snapshot/pager.c snapshot/analyze.c vmm/state.c launcher/invoke.c pool/proto.c images/agent/proto.c images/agent/agent.c \
	vmm/arch/arm64/devtree.c vmm/arch/arm64/image.c
UNIT_BIN := $(HOSTO)/unit-tests

$(UNIT_BIN): $(UNIT_TESTS) tests/unit/fakes.c $(UNIT_SRCS) $(wildcard vmm/*.h devices/*.h devices/virtio/*.h launcher/*.h snapshot/*.h images/agent/*.h pool/*.h vmm/arch/*/*.h tests/unit/*.h)
	@mkdir -p $(dir $@)
	$(HOSTCC) -std=gnu11 -O1 -g $(WARN) -Wno-missing-prototypes -D_GNU_SOURCE -Ivmm/arch/$(HOST_ARCH) \
		-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer \
		-o $@ $(UNIT_TESTS) tests/unit/fakes.c $(UNIT_SRCS) -lcriterion -lfdt -luring -lzstd -lxxhash -lpthread

unit: $(UNIT_BIN)
	$(UNIT_BIN)

# libFuzzer targets for parsers of guest- or file-controlled input; `make check`
# runs each briefly, `make fuzz FUZZ_TIME=600` runs longer. New inputs go to build/.
FUZZCC := clang
FUZZ_TIME ?= 60
FUZZ_TARGETS := virtq blk_req snap agent_proto vsock state pool_proto x86_boot
FUZZ_SRCS_virtq := tests/fuzz/fuzz_virtq.c devices/virtio/virtq.c vmm/mem.c vmm/log.c vmm/state.c
FUZZ_SRCS_blk_req := tests/fuzz/fuzz_blk_req.c devices/virtio/blk_req.c
FUZZ_SRCS_snap := tests/fuzz/fuzz_snap.c snapshot/snap.c vmm/log.c
FUZZ_LIBS_snap := -lzstd -lxxhash
FUZZ_SRCS_vsock := tests/fuzz/fuzz_vsock.c devices/virtio/vsock_mux.c \
	devices/virtio/virtq.c vmm/mem.c vmm/log.c vmm/state.c
FUZZ_SRCS_state := tests/fuzz/fuzz_state.c tests/unit/fakes.c devices/virtio/mmio.c \
	devices/virtio/virtq.c devices/pl011.c devices/console_io.c vmm/mem.c vmm/log.c vmm/state.c
FUZZ_LIBS_state := -lfdt -lpthread
FUZZ_SRCS_pool_proto := tests/fuzz/fuzz_pool_proto.c pool/proto.c
FUZZ_SRCS_x86_boot := tests/fuzz/fuzz_x86_boot.c vmm/arch/x86_64/boot.c vmm/arch/x86_64/cpu_state.c \
	vmm/state.c
FUZZ_SRCS_agent_proto := tests/fuzz/fuzz_agent_proto.c launcher/invoke.c images/agent/proto.c vmm/log.c

$(HOSTO)/fuzz-%: $$(FUZZ_SRCS_%) $(wildcard vmm/*.h devices/*.h devices/virtio/*.h snapshot/*.h launcher/*.h images/agent/*.h pool/*.h)
	@mkdir -p $(dir $@)
	$(FUZZCC) -std=gnu11 -O1 -g $(WARN) -D_GNU_SOURCE \
		-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
		-fno-omit-frame-pointer -o $@ $(FUZZ_SRCS_$*) $(FUZZ_LIBS_$*)

fuzz: $(FUZZ_TARGETS:%=$(HOSTO)/fuzz-%)
	@set -e; for t in $(FUZZ_TARGETS); do \
		mkdir -p $(HOSTO)/fuzz-corpus/$$t; \
		echo "fuzz: $$t for $(FUZZ_TIME) s"; \
		$(HOSTO)/fuzz-$$t -max_total_time=$(FUZZ_TIME) -print_final_stats=1 \
			-artifact_prefix=$(HOSTO)/fuzz-$$t- $(HOSTO)/fuzz-corpus/$$t tests/fuzz/corpus/$$t \
			2>$(HOSTO)/fuzz-$$t.log || { tail -40 $(HOSTO)/fuzz-$$t.log; exit 1; }; \
		grep -E '^stat::(number_of_executed_units|peak_rss_mb)' $(HOSTO)/fuzz-$$t.log; \
	done

FORMAT_FILES = $(shell git ls-files '*.c' '*.h' 2>/dev/null)
format-check:
	@bad=$$(for f in $(FORMAT_FILES); do clang-format --dry-run --Werror $$f >/dev/null 2>&1 || echo $$f; done); \
	if [ -n "$$bad" ]; then echo "not clang-formatted (run make format):"; echo "$$bad"; exit 1; fi; \
	echo "format-check: ok"

format:
	clang-format -i $(FORMAT_FILES)

# End-to-end: each arch's build runs inside its own test host (an emulated machine with KVM,
# where the VMs are nested guests): tests/arm64-host/run and tests/x86_64-host/run.
TEST_ARCHES := arm64 x86_64

# vsock end to end: a guest probe and a host helper exercise the device directly.
$(O)/tests/guest-bin/vsock_probe: tests/guest/vsock_probe.c
	@mkdir -p $(dir $@)
	$(CC) -static -O2 -std=gnu11 $(WARN) -D_GNU_SOURCE -o $@ $<

$(O)/vsock_host: tests/guest/vsock_host.c
	@mkdir -p $(dir $@)
	$(CC) -static -O2 -std=gnu11 $(WARN) -D_GNU_SOURCE -o $@ $<

$(O)/images/vsock.cpio: $(O)/images/init $(O)/tests/guest-bin/vsock_probe images/mkinitramfs
	images/mkinitramfs $@ $(O)/images/init $(O)/tests/guest-bin/vsock_probe:/bin/vsock_probe

# An HTTP GET over a Unix socket, for pool.sh's /metrics check (busybox nc has no Unix sockets).
$(O)/tests/unixget: tests/e2e/unixget.c
	@mkdir -p $(dir $@)
	$(CC) -static -O2 -std=gnu11 $(WARN) -D_GNU_SOURCE -o $@ $<

# Per arch A: e2e-A (boot, snapshots, restore, run), e2e-vsock-A, e2e-pool-A (a daemon, runs
# through it, 1000 in a row for leaks, its teardown). e2e, e2e-vsock and e2e-pool run every arch.
#
# The x86_64 test host itself sometimes freezes (its kernel stops scheduling while it runs our
# nested guests: about once in 200 to 400 restores; see docs/architecture.md). The runner then
# ends with 124 (time limit) or 125 (test host failure), never with a test's failure status, and
# each suite runs again, saying so, up to 4 times in all (host_retry). The x86_64 suite makes 60
# runs in a row for leaks instead of 200 and gets 420 s per attempt (it takes about 5 minutes),
# and make check leaves out e2e-pool-x86_64 (1000 runs in a row).
E2E_ENV_arm64 :=
E2E_ENV_x86_64 := LEAK_RUNS=60
E2E_TIMEOUT_arm64 := 600
E2E_TIMEOUT_x86_64 := 420
# The x86_64 test host's heartbeat stopping for 60 s means it froze (the runner's --stall):
# that attempt ends then, not at its time limit. On x86_64 a suite that fails runs again too:
# a restored guest there sometimes hangs (docs/architecture.md), not yet understood; every
# failed attempt's FAIL lines stay in the log.
HOST_STALL_arm64 := 0
HOST_STALL_x86_64 := 60
HOST_RETRY_FAILED_arm64 := 0
HOST_RETRY_FAILED_x86_64 := 1
# $(call host_retry,A,TIMEOUT,CMD): CMD in A's test host, again while the runner says 124 or 125
# (or, where HOST_RETRY_FAILED_A is 1, while CMD fails).
host_retry = for try in 1 2 3 4; do \
		st=0; tests/$(1)-host/run --timeout $(2) --stall $(HOST_STALL_$(1)) -- $(3) || st=$$?; \
		if [ $$st -eq 0 ]; then exit 0; fi; \
		if [ $$st -eq 124 ] || [ $$st -eq 125 ]; then \
			echo "$@: attempt $$try: the $(1) test host did not finish (status $$st: it froze, failed or ran past its limit; no test reported a failure)" >&2; \
		elif [ $(HOST_RETRY_FAILED_$(1)) = 1 ]; then \
			echo "$@: attempt $$try: FAILED with status $$st (see the FAIL lines above); the $(1) suites run again (Makefile, HOST_RETRY_FAILED)" >&2; \
		else exit $$st; fi; \
	done; exit $$st
define arch_e2e
e2e-$(1):
	$$(MAKE) ARCH=$(1) all
	@mkdir -p $(BUILD)/$(1)/tests
	cp tests/e2e/e2e.sh $(BUILD)/$(1)/tests/e2e.sh
	@$$(call host_retry,$(1),$(E2E_TIMEOUT_$(1)),env $(E2E_ENV_$(1)) sh /sandbox/tests/e2e.sh)

e2e-vsock-$(1):
	$$(MAKE) ARCH=$(1) all $(BUILD)/$(1)/images/vsock.cpio $(BUILD)/$(1)/vsock_host
	cp tests/guest/vsock_e2e.sh $(BUILD)/$(1)/vsock_e2e.sh
	@$$(call host_retry,$(1),600,sh /sandbox/vsock_e2e.sh)

e2e-pool-$(1):
	$$(MAKE) ARCH=$(1) all $(BUILD)/$(1)/tests/unixget
	@mkdir -p $(BUILD)/$(1)/tests
	cp tests/e2e/pool.sh $(BUILD)/$(1)/tests/pool.sh
	@$$(call host_retry,$(1),1500,sh /sandbox/tests/pool.sh)
endef
$(foreach a,$(TEST_ARCHES),$(eval $(call arch_e2e,$(a))))

e2e: $(TEST_ARCHES:%=e2e-%)
e2e-vsock: $(TEST_ARCHES:%=e2e-vsock-%)
e2e-pool: $(TEST_ARCHES:%=e2e-pool-%)
.PHONY: $(foreach a,$(TEST_ARCHES),e2e-$(a) e2e-vsock-$(a) e2e-pool-$(a))

check: format-check unit
	$(MAKE) fuzz FUZZ_TIME=20
	$(MAKE) e2e
	$(MAKE) e2e-vsock
	$(MAKE) e2e-pool-arm64
	$(MAKE) bench QUICK=1

# Whether this machine's KVM runs ARCH's guests itself: scripts/kvm-runs-guests. Otherwise
# (no /dev/kvm, another arch, or kvm-pvm, which cannot run Linux guests) the test host does.
boot:
	$(MAKE) ARCH=$(ARCH) all
	@if scripts/kvm-runs-guests $(ARCH); then $(O)/sandbox boot; else tests/$(ARCH)-host/run -- sandbox boot; fi

# The main job: example functions through `sandbox run`, for ARCH (default: this machine's),
# directly where KVM runs its guests, else inside its test host.
demo:
	@echo "demo: building sandbox, the $(ARCH) guest kernel, its initramfs and the examples (cached after the first time)"
	@$(MAKE) --no-print-directory ARCH=$(ARCH) all
	@cp examples/demo.sh $(O)/demo.sh
	@if scripts/kvm-runs-guests $(ARCH); then sh $(O)/demo.sh $(O); else \
		echo "demo: this machine's KVM cannot run $(ARCH) guests: starting the $(ARCH) test host (an emulated machine with KVM)"; \
		tests/$(ARCH)-host/run -- sh /sandbox/demo.sh; fi

# --- benchmarks (inside the arm64 test host; docs/benchmarks.md) ---------------
# Every case in turn (bench/all), then build/bench/results.json, report.md and plots/*.png.
# QUICK=1 on the make command line reaches bench/all through the environment: the short run
# `make check` uses, which checks that the harness works and never how fast anything was.
bench:
	bench/all $(BENCH_ARGS)

# RUNS=N, PATTERNS="...", QUICK=1 on the make command line reach bench/blk through the environment.
bench-blk:
	bench/blk $(BENCH_BLK_ARGS)

# RUNS=N, CREATE_RUNS=N, MODES="...", LEVELS="...", QUICK=1 reach bench/snapshot through the environment.
bench-snapshot:
	bench/snapshot $(BENCH_SNAPSHOT_ARGS)

# RUNS=N, WARMUP=N, SIDES="...", QUICK=1 on the make command line reach bench/run through the environment.
bench-run:
	bench/run $(BENCH_RUN_ARGS)

# RUNS=N, WARMUP=N, DURATION=SEC, CALLERS="...", BUSY="...", VMS="...", POOL_SIZE=N, QUICK=1 on the
# make command line reach bench/run --pool through the environment.
bench-pool:
	bench/run --pool $(BENCH_POOL_ARGS)

# VMS=N, DURATION=SEC, CONFIGS="...", KSM_PAGES_TO_SCAN=N, KSM_SLEEP_MS=MS, QUICK=1 on the make
# command line reach bench/ksm through the environment.
bench-ksm:
	bench/ksm $(BENCH_KSM_ARGS)

# RUNS=N, WARMUP=N, QUICK=1 on the make command line reach bench/boot through the environment.
bench-boot:
	bench/boot $(BENCH_BOOT_ARGS)

# Boot, restore and sandbox run on both arches, each in its test host: build/bench-arch/arch.md.
# RUNS=N, QUICK=1 on the make command line reach bench/arch through the environment.
bench-arch:
	bench/arch

# LEVELS="...", QUICK=1 on the make command line reach bench/dedup through the environment.
bench-dedup:
	bench/dedup $(BENCH_DEDUP_ARGS)

clean:
	rm -rf $(BUILD)

-include $(OBJS:.o=.d)
