# edgemux — the two commands a newcomer runs:
#   make demo    set up, build, run the main job on an embedded default
#   make check   set up, build and pass every test (C plain, ASan+UBSan, TSan;
#                Python; 60 s of fuzzing)
# Other targets: build, bench, check-plain/-asan/-tsan/-python/-fuzz,
# format, clean.

SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -ec

JOBS   ?= $(shell nproc)
CMAKE  ?= cmake
CTEST  ?= ctest
CMAKE_FLAGS ?=
TEST_TIMEOUT ?= 900

.PHONY: all setup build build-asan build-tsan demo check check-plain check-asan \
        check-tsan check-fuzz check-python bench bench-users format clean install deb \
        check-packages build-arm64 check-arm64 arm64-smoke

all: build

setup:
	@scripts/setup

build/.configured: CMakeLists.txt tests/CMakeLists.txt
	$(CMAKE) -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS)
	@touch $@

build: setup build/.configured
	$(CMAKE) --build build -j$(JOBS)

build-asan/.configured: CMakeLists.txt tests/CMakeLists.txt
	CC=clang CXX=clang++ $(CMAKE) -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug \
	    -DEMX_SANITIZE=address $(CMAKE_FLAGS)
	@touch $@

build-asan: setup build-asan/.configured
	$(CMAKE) --build build-asan -j$(JOBS)

build-tsan/.configured: CMakeLists.txt tests/CMakeLists.txt
	CC=clang CXX=clang++ $(CMAKE) -S . -B build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	    -DEMX_SANITIZE=thread $(CMAKE_FLAGS)
	@touch $@

build-tsan: setup build-tsan/.configured
	$(CMAKE) --build build-tsan -j$(JOBS)

# The in-process engine demo; the seed scenario through edgemuxd (the daemon
# demo starts and stops its own daemon on a temporary socket); then the
# failure edgemux exists for, on a simulated Edge TPU, and its remedy.
demo: build
	./build/bin/edgemux-demo
	./build/bin/edgemux-daemon-demo
	./build/bin/edgemux-tpu-demo
	./build/bin/edgemux-frigate-demo

check-plain: build
	cd build && $(CTEST) --output-on-failure --timeout $(TEST_TIMEOUT)

check-asan: build-asan
	cd build-asan && \
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:halt_on_error=1:suppressions=$(CURDIR)/tests/sanitizers/asan.supp \
	LSAN_OPTIONS=suppressions=$(CURDIR)/tests/sanitizers/lsan.supp:print_suppressions=0 \
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	EMX_SANITIZER=address $(CTEST) --output-on-failure --timeout $(TEST_TIMEOUT)

# die_after_fork=0: tests fork children that open devices while the parent
# holds an engine (threads running), which TSan refuses by default.
check-tsan: build-tsan
	cd build-tsan && \
	TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:die_after_fork=0:suppressions=$(CURDIR)/tests/sanitizers/tsan.supp \
	EMX_SANITIZER=thread $(CTEST) --output-on-failure --timeout $(TEST_TIMEOUT)

# libFuzzer over the wire decoder and over model bytes (through the model
# trial) for a bounded time each; any crash or sanitizer report fails the
# check.
FUZZ_SECONDS ?= 60
check-fuzz: build-asan
	rm -rf build-asan/fuzz-corpus && mkdir -p build-asan/fuzz-corpus
	./build-asan/bin/fuzz-make-seeds build-asan/fuzz-corpus
	./build-asan/bin/fuzz-wire -max_total_time=$(FUZZ_SECONDS) -max_len=4096 \
	    -print_final_stats=1 build-asan/fuzz-corpus 2>&1 | tail -n 12
	@# Model bytes through the trial child: seeds are two real models; each
	@# run spawns a child, so this explores slowly (tens of runs a second).
	@# Leaks are TFLite's (see tests/sanitizers/lsan.supp): not checked here.
	rm -rf build-asan/fuzz-models && mkdir -p build-asan/fuzz-models
	cp .deps/models/face_detection_short_range.tflite \
	   .deps/models/selfie_segmentation.tflite build-asan/fuzz-models/
	./build-asan/bin/fuzz-model -max_total_time=$(FUZZ_SECONDS) \
	    -max_len=300000 -detect_leaks=0 -print_final_stats=1 \
	    build-asan/fuzz-models 2>&1 | grep -v "^INFO: Created\|^ERROR: \|^WARNING" | tail -n 12

# The Python package against the plain build, with Debian's python3 (it has
# numpy; a python3 earlier on PATH may not).
check-python: build
	/usr/bin/python3 -m unittest discover -s python/tests -v 2>&1 | tail -n 40

# Each stage fails the whole check on any test failure or sanitizer report.
check: check-plain check-python check-packages check-asan check-tsan check-fuzz arm64-smoke
	@echo "make check: plain, ASan+UBSan and TSan suites and the arm64 smoke all passed"

# Benchmarks print ratios measured side by side; run on a quiet machine.
bench: build
	./build/bin/bench-engine
	./build/bin/bench-daemon
	./build/bin/bench-devices
	./build/bin/bench-sched
	./build/bin/bench-frigate

# N user programs as separate processes against the same programs as clients
# of one edgemuxd (bench/users/users.c): throughput ratios, memory, a camera
# fleet's p99. QUICK=1: 3 rounds of 0.5 s instead of 8 of 1 s.
bench-users: build
	./build/bin/bench-users $(if $(QUICK),--quick)

# Install (cmake/install.cmake): a build of its own, since the prefix is
# compiled in (where the engine finds edgemux-devhost). DESTDIR is honoured.
PREFIX ?= /usr/local
install: setup
	$(CMAKE) -S . -B build-install -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	    -DCMAKE_INSTALL_PREFIX=$(PREFIX) -DEMX_TESTS=OFF $(CMAKE_FLAGS)
	$(CMAKE) --build build-install -j$(JOBS)
	DESTDIR=$(DESTDIR) $(CMAKE) --install build-install

# Debian packages with dpkg-buildpackage (debian/), into build-deb/<arch>/;
# lintian errors fail it. ARCH=arm64 cross builds (scripts/setup --arm64).
ARCH ?=
deb: setup
	$(if $(filter arm64,$(ARCH)),scripts/setup --arm64)
	JOBS=$(JOBS) scripts/make-deb $(ARCH)

# Builds the packages, installs them on this machine (root; it refuses
# otherwise, and when edgemux packages are already installed), runs the
# installed daemon as the unit says, then purges and checks nothing is left.
check-packages: build deb
	@if [ "$$(id -u)" -ne 0 ]; then \
	    echo "check-packages: skipped: needs root (dpkg -i); CI runs it as root"; \
	else tests/packages/check_packages.sh build-deb/$$(dpkg --print-architecture); fi

# aarch64: cross build (cmake/aarch64-linux-gnu.cmake) and the tests under
# qemu-aarch64 with multiarch libc6:arm64's loader (no binfmt_misc needed).
# The programs tests start (edgemuxd, edgemux-devhost, the CLI) go through
# the emulator too: EMX_EXEC_WRAPPER (a process under qemu cannot exec an
# arm64 program by itself). Outputs are compared to the same oracle tests as
# on x86-64.
build-arm64/.configured: CMakeLists.txt tests/CMakeLists.txt cmake/aarch64-linux-gnu.cmake
	scripts/setup --arm64
	$(CMAKE) -S . -B build-arm64 -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake \
	    -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS)
	@touch $@

build-arm64: build-arm64/.configured
	$(CMAKE) --build build-arm64 -j$(JOBS)

# The subset of the suite that runs under emulation in 15 minutes, and what
# is left out with the reason for each: scripts/check-arm64 (it prints
# them). ARM64_TESTS narrows it further (a ctest -R regex).
ARM64_TESTS ?= .
check-arm64: build-arm64
	ARM64_TESTS='$(ARM64_TESTS)' scripts/check-arm64 build-arm64

# The arm64 smoke test that make check runs: the oracle test and the daemon
# seed test under emulation, built alone (with the programs they start),
# not the whole suite. The seed test's two cases that fork clients
# (seed_scenario, fork_inherited_client; the glob *e*_*c* matches those two
# and no other case) are skipped: their forked children make no progress
# under qemu-user (fork of a threaded emulated process) and die of SIGALRM.
ARM64_ENV = EMX_EXEC_WRAPPER=qemu-aarch64 EMX_TEST_TIME_SCALE=10
arm64-smoke: build-arm64/.configured
	$(CMAKE) --build build-arm64 -j$(JOBS) --target test_oracle test_daemon_seed
	cd build-arm64 && $(ARM64_ENV) $(CTEST) --output-on-failure --timeout 900 \
	    -R '^test_oracle$$'
	cd build-arm64 && $(ARM64_ENV) EMX_TEST_SKIP='*e*_*c*' $(CTEST) \
	    --output-on-failure --timeout 900 -R '^test_daemon_seed$$'

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build build-asan build-tsan build-install build-arm64
