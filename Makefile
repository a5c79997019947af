# Build, run, test, check and benchmark the VMM and its guest kernel.
#
#   make          build the guest kernel (always optimised) and the VMM (release)
#   make run      build, then boot the kernel: its self-tests, then a plain boot
#   make test     build, then run every test: host unit tests and end-to-end tests on KVM
#   make check    rustfmt check, clippy (warnings denied) for host and guest, unit tests
#   make bench    build, then run the benchmarks (boot time)
#
# The guest kernel is built for x86_64-unknown-none first; the VMM embeds it (vmm/build.rs).

CARGO        ?= cargo
GUEST_TARGET := x86_64-unknown-none
HOST_PKGS    := -p abi -p vmm -p tests
GUEST_FLAGS  := --release -p guest-kernel --target $(GUEST_TARGET)
VMM          := target/release/vmm

.PHONY: all kernel vmm run test check bench clean guest-target

all: vmm

# rustup does not install the toolchain file's targets when the toolchain already exists,
# so ask for the guest target explicitly (idempotent, fast when present).
guest-target:
	@rustup target add $(GUEST_TARGET) >/dev/null 2>&1 || rustup target add $(GUEST_TARGET)

kernel: guest-target
	$(CARGO) build $(GUEST_FLAGS)

vmm: kernel
	$(CARGO) build --release -p vmm

run: vmm
	$(VMM) run --self-test
	$(VMM) run

test: vmm
	$(CARGO) test --release $(HOST_PKGS)

check: kernel
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --release $(HOST_PKGS) --all-targets -- -D warnings
	$(CARGO) clippy $(GUEST_FLAGS) -- -D warnings
	$(CARGO) test --release -p abi -p vmm

bench: vmm
	$(CARGO) bench -p tests

clean:
	$(CARGO) clean
