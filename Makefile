# The two commands a new user needs: `make run` and `make test`. Both install
# any missing Debian package first (scripts/bootstrap), then build with CMake.
#
#   make            build Release into build/
#   make run        ... and start tqd with config.yaml
#   make test       ... run every test, then build the tests again with clang,
#                   AddressSanitizer + UndefinedBehaviorSanitizer (build-asan/)
#                   and run the unit, integration and client suites once more
#   make fuzz       run each libFuzzer target for FUZZ_SECONDS (default 60),
#                   built into build-asan/
#   make install    copy the built tqd and tq to $(PREFIX)/bin (default
#                   /usr/local; run make first); for systemd, see
#                   scripts/tqd.service

BUILD ?= build
ASAN_BUILD ?= build-asan
JOBS ?= $(shell nproc)
# Tests run two per core: most integration and client tests wait on tqd's
# timers (leases, timeouts), and at one per core the cores sat 74% idle.
# Four per core gave the release suites 70 s instead of 103 s, but took that
# CPU from the sanitizer build compiling beside them, and the sanitized
# suites, CPU-bound, gained little (106 s against 120 s): make test took
# 597 s, against 563 s at two per core.
TEST_JOBS ?= $(shell echo $$(( 2 * $(JOBS) )))
CONFIG ?= config.yaml
FUZZ_SECONDS ?= 60
PREFIX ?= /usr/local

.PHONY: all build bootstrap run test test-release test-asan asan-configure asan-build asan-run fuzz install clean

all: build

bootstrap:
	@scripts/bootstrap

build: bootstrap
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

run: build
	$(BUILD)/tqd --config $(CONFIG)

# The sanitizer build compiles while the release tests run, at the lowest CPU
# priority: those tests mostly wait on tqd's timers (60 s of CPU in 120 s on
# 2 cores), and a compiler at nice 19 gives way whenever a test wants a core.
# (Started with the release build instead, it gained nothing: that build
# keeps both cores busy, and took 223 s instead of 200.) Its output goes to
# $(ASAN_BUILD)/build.log, shown when it fails.
test: build
	@mkdir -p $(ASAN_BUILD)
	@echo "test: compiling $(ASAN_BUILD)/ at nice 19 beside the release tests (log: $(ASAN_BUILD)/build.log)"
	@nice -n 19 $(MAKE) --no-print-directory asan-build > $(ASAN_BUILD)/build.log 2>&1 & compiling=$$!; \
	  if ! ctest --test-dir $(BUILD) --output-on-failure -j $(TEST_JOBS); then \
	    kill $$compiling 2>/dev/null; wait $$compiling; exit 1; \
	  fi; \
	  if ! wait $$compiling; then \
	    tail -n 60 $(ASAN_BUILD)/build.log; echo "test: the sanitizer build failed"; exit 1; \
	  fi
	@$(MAKE) --no-print-directory asan-run

test-release: build
	ctest --test-dir $(BUILD) --output-on-failure -j $(TEST_JOBS)

# The sanitizer build uses clang (installed for make fuzz): it compiles this
# build in 165 s on 2 cores where g++ took 295 s, most of the gain in the
# sanitized tests' doctest expansions, and its warnings are a second opinion
# on the code g++ builds with -Werror. -O1 keeps the build quick to compile
# and the tests quick to run; -g1's line tables are all the sanitizers'
# stack traces use. A build-asan/ that g++ configured loses its cache first:
# CMake would start over by itself on the new compiler, but without the
# sanitizer flags given here, and build without them. The unit tests
# run as one process: a sanitized process takes 0.2 s to start and exit, 66 s
# for the 331 cases one by one against 14 s for all of them at once.
# The engine's random model test runs 2 of its 8 seeds here (all 8 in the
# release run): every command and setting comes up within each seed, and
# all 8 took 28 s of the sanitized run's wall time.
# ASan keeps 256 MiB of freed memory out of use by default (its quarantine,
# which catches a use after free); every sanitized tqd and test process that
# frees that much touched it all: 32 MiB took the sanitized suites from 353 s
# of CPU to 255 s, their wall time unchanged at 4 tests at once, and less
# load is fewer timing flakes.
SANITIZERS_ENV = ASAN_OPTIONS=detect_leaks=1:quarantine_size_mb=32 UBSAN_OPTIONS=print_stacktrace=1
test-asan: asan-build
	@$(MAKE) --no-print-directory asan-run

asan-configure: bootstrap
	@if [ -f $(ASAN_BUILD)/CMakeCache.txt ] && \
	    ! grep -q '^CMAKE_CXX_COMPILER:.*clang++$$' $(ASAN_BUILD)/CMakeCache.txt; then \
	  rm -rf $(ASAN_BUILD)/CMakeCache.txt $(ASAN_BUILD)/CMakeFiles; \
	fi
	@cmake -S . -B $(ASAN_BUILD) -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=Debug \
		-DCMAKE_CXX_FLAGS_DEBUG="-O1 -g1" -DTQ_SANITIZE=address,undefined -DTQ_FUZZ=ON >/dev/null

# The fuzz targets are built here too (a few files more), while the release
# tests leave cores idle, so that `make fuzz` after `make test` only runs them.
asan-build: asan-configure
	@cmake --build $(ASAN_BUILD) -j $(JOBS) --target tqd unit_tests integration_tests client_tests fuzz_targets

# The sanitized unit tests, one process on one core, run beside the other
# suites rather than before them, which left the second core idle for their
# 35 s (207 s for the three suites instead of 217). Their output goes to
# $(ASAN_BUILD)/unit_tests.log, shown when they fail.
asan-run:
	@echo "test: sanitized unit tests beside the other suites (log: $(ASAN_BUILD)/unit_tests.log)"
	@$(SANITIZERS_ENV) TQ_RANDOM_SEEDS=2 $(ASAN_BUILD)/tests/unit_tests \
	    > $(ASAN_BUILD)/unit_tests.log 2>&1 & unit=$$!; \
	  $(SANITIZERS_ENV) ctest --test-dir $(ASAN_BUILD) --output-on-failure -j $(TEST_JOBS) \
	    -R '^(integration|client)/'; suites=$$?; \
	  if ! wait $$unit; then \
	    cat $(ASAN_BUILD)/unit_tests.log; echo "test: the sanitized unit tests failed"; exit 1; \
	  fi; \
	  grep '^\[doctest\] test cases' $(ASAN_BUILD)/unit_tests.log; \
	  exit $$suites

# The fuzz targets live in the sanitizer build: the libraries they fuzz are
# compiled once for them and for the sanitized tests.
fuzz: asan-configure
	scripts/fuzz $(ASAN_BUILD) $(FUZZ_SECONDS)

# Not a rebuild: `sudo make install` would otherwise configure and build as
# root and leave root-owned files in $(BUILD). Build first with `make`.
install:
	@test -x $(BUILD)/tqd -a -x $(BUILD)/tq || { echo "make install: nothing built in $(BUILD)/; run make first" >&2; exit 1; }
	cmake --install $(BUILD) --prefix $(PREFIX)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) build-fuzz  # build-fuzz/: where older trees fuzzed
