# Build, run, test, check and benchmark the VMM and its guest kernel.
#
#   make          build the guest kernel (always optimised), the VMM (release) and the user
#                 programs (target/user/NAME, Rust and C)
#   make run      build, then the kernel's self-tests, then the paging demo with its statistics
#   make test     build, then run every test: host unit tests and end-to-end tests on KVM,
#                 the latter once in each kernel mode (fast and classic)
#   make check    rustfmt check, clippy (warnings denied) for host and guest, unit tests
#   make bench    build, then run the benchmarks (boot time)
#
# The guest kernel is built for x86_64-unknown-none first; the VMM embeds it (vmm/build.rs).

CARGO        ?= cargo
GUEST_TARGET := x86_64-unknown-none
HOST_PKGS    := -p abi -p vmm -p tests
GUEST_FLAGS  := --release -p guest-kernel --target $(GUEST_TARGET)
VMM          := target/release/vmm

.PHONY: stress fuzz all kernel vmm run test check bench clean guest-target user

all: vmm user

# rustup does not install the toolchain file's targets when the toolchain already exists,
# so ask for the guest target explicitly (idempotent, fast when present).
guest-target:
	@rustup target add $(GUEST_TARGET) >/dev/null 2>&1 || rustup target add $(GUEST_TARGET)

kernel: guest-target
	$(CARGO) build $(GUEST_FLAGS)

vmm: kernel
	$(CARGO) build --release -p vmm

# The demo: a program whose working set (bss, data and a mapped file) exceeds a 10 MiB
# guest's user pool, so pages load lazily, go to swap and come back, and dirty mapped pages
# are written back; then the fault statistics table.
run: vmm user
	$(VMM) run --self-test
	$(VMM) run --mem 10 --stats $(USER_DIR)/pressure-mix

# The end-to-end tests run once per kernel mode (VMM_KERNEL_MODE is the default of
# `vmm run --kernel-mode`).
test: vmm user
	$(CARGO) test --release -p abi -p vmm
	VMM_KERNEL_MODE=fast $(CARGO) test --release -p tests
	VMM_KERNEL_MODE=classic $(CARGO) test --release -p tests

# Longer pressure than the tests: `stress` for 20 rounds under every eviction policy, in
# both kernel modes (a few minutes on a PVM host).
stress: vmm user
	for mode in fast classic; do for policy in clock fifo random; do \
	  echo "stress: $$mode, $$policy"; \
	  $(VMM) run --timeout 1200 --kernel-mode $$mode --evict $$policy --mem 8 $(USER_DIR)/stress 20 || exit 1; \
	done; done

# Fuzzing (fuzz/: cargo-fuzz, libFuzzer, nightly Rust; `cargo install cargo-fuzz` once):
# each target for FUZZ_SECONDS, from the checked-in seeds in fuzz/corpus/TARGET, growing a
# working corpus under target/fuzz-corpus/. A crash stops it and leaves the input in
# fuzz/artifacts/TARGET/.
FUZZ_SECONDS ?= 120
FUZZ_TARGETS := elf_check disk_image virtio_blk_chain
fuzz:
	cargo +nightly fuzz --version >/dev/null 2>&1 || { echo "make fuzz needs nightly Rust and cargo-fuzz: rustup toolchain install nightly && cargo install cargo-fuzz"; exit 1; }
	for t in $(FUZZ_TARGETS); do \
	  mkdir -p target/fuzz-corpus/$$t; \
	  cargo +nightly fuzz run $$t target/fuzz-corpus/$$t fuzz/corpus/$$t -- \
	    -max_total_time=$(FUZZ_SECONDS) -max_len=65552 || exit 1; \
	done

check: kernel
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --release $(HOST_PKGS) --all-targets -- -D warnings
	$(CARGO) clippy $(GUEST_FLAGS) $(USER_PKGS) -- -D warnings
	$(CARGO) test --release -p abi -p vmm

# Every benchmark runs even when an earlier one misses its target; make still fails then.
bench: vmm
	$(CARGO) bench -p tests --no-fail-fast

clean:
	$(CARGO) clean

# --- User programs ------------------------------------------------------------------------
# Every program, Rust or C, ends up as target/user/NAME, where the tests look for them.
# Rust: one binary per file in user/rust/src/bin, linked by user/rust/build.rs with
# user/user.ld. C: one file per program in user/c/programs, linked with the C runtime.
USER_DIR     := target/user
USER_PKGS    := -p ulib -p user-programs
RUST_PROGS   := $(basename $(notdir $(wildcard user/rust/src/bin/*.rs)))
C_PROGS      := $(basename $(notdir $(wildcard user/c/programs/*.c)))
C_RUNTIME    := user/c/crt0.S user/c/syscall.S user/c/lib.c
USER_CFLAGS  := -static -nostdlib -ffreestanding -fno-pie -no-pie -fno-stack-protector \
                -fno-builtin -fno-tree-loop-distribute-patterns -mno-red-zone -mno-avx -O2 \
                -Wall -Wextra -Werror -T user/user.ld -Wl,--build-id=none

user: guest-target $(addprefix $(USER_DIR)/,$(C_PROGS))
	$(CARGO) build --release --target $(GUEST_TARGET) $(USER_PKGS)
	@mkdir -p $(USER_DIR)
	cd target/$(GUEST_TARGET)/release && cp $(RUST_PROGS) $(CURDIR)/$(USER_DIR)/

$(USER_DIR)/%: user/c/programs/%.c $(C_RUNTIME) user/c/lib.h user/user.ld
	@mkdir -p $(USER_DIR)
	gcc $(USER_CFLAGS) -o $@ $(C_RUNTIME) $<
