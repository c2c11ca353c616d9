# keel: thin wrapper over CMake. Every target installs the Debian packages it needs first.
#   make demo       set up, build, run the demo on ./demo-store
#   make test       set up, build, run every test
#   make asan-test  the tests under ASan+UBSan        make tsan-test  the concurrency tests under TSan
#   make release-demo  a Release build without tests (what an embedding user builds), demo run on it
#   make example-check  install the build, build and run examples/orders against it (find_package,
#                   pkg-config) and through add_subdirectory (Debug, shared libkeel)
#   make fuzz-smoke a short run of every fuzz target  make bench      the benchmarks
#   make compare    keel beside LevelDB, RocksDB and SQLite on the same workloads (COMPARE_ARGS,
#                   e.g. COMPARE_ARGS="--events 100000 --repetitions 1"; keel-compare --help)
#   make bench-report  the same, written to docs/BENCHMARKS.md with plots (docs/benchmarks/)
#   make crash-loop the SIGKILL crash loop of real processes, ITERATIONS (500) kills in a temp dir
#   make power-loss-loop  the same workload and oracle with ITERATIONS power losses (fault FS)
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=
# Warnings are errors in every build made here (developers and CI); a plain cmake build leaves them
# warnings (KEEL_WERROR in CMakeLists.txt).
WERROR := -DKEEL_WERROR=ON
FUZZ_SECONDS ?= 30
ITERATIONS ?= 500

.PHONY: deps build test demo asan-test tsan-test release-demo example-check fuzz-build fuzz-smoke bench compare \
	compare-build bench-report bench-replication crash-loop \
	power-loss-loop golden format \
	clean

deps:
	@scripts/install-deps

# Release (-O3, what users build and what the benchmarks measure; GCC warns differently there), so
# that one build serves the tests, the demo and example-check's install (CI builds on 2 cores
# within 30 minutes). For a debugger: CMAKE_FLAGS=-DCMAKE_BUILD_TYPE=RelWithDebInfo.
RELEASE := -DCMAKE_BUILD_TYPE=Release

build: deps
	@cmake -S . -B $(BUILD) -G Ninja $(RELEASE) $(WERROR) $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

test: build
	ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS)

demo: build
	@rm -rf demo-store
	$(BUILD)/tools/keel demo demo-store

# The sanitizer builds keep line tables only (-g1): enough for symbolized reports, a third faster to
# compile than full debug information.
SANITIZER_DEBUG := -DCMAKE_CXX_FLAGS_DEBUG=-g1

# The cases run in $(JOBS) processes per test binary, not one process per case as ctest runs them:
# under ASan a process start costs more than most cases (scripts/run-shards).
asan-test: deps
	@cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DKEEL_SANITIZE=address $(SANITIZER_DEBUG) $(WERROR) >/dev/null
	@cmake --build build-asan -j $(JOBS)
	scripts/run-shards build-asan/tests/keel_tests $(JOBS)
	scripts/run-shards build-asan/tests/keel_props $(JOBS)

# The concurrency tests are the Catch2 cases tagged [concurrency].
tsan-test: deps
	@cmake -S . -B build-tsan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DKEEL_SANITIZE=thread $(SANITIZER_DEBUG) $(WERROR) >/dev/null
	@cmake --build build-tsan -j $(JOBS) --target keel_tests
	build-tsan/tests/keel_tests "[concurrency]"

# What a user embedding keel builds: Release without the tests; the demo runs on the result.
release-demo: deps
	@cmake -S . -B build-release-lib -G Ninja -DCMAKE_BUILD_TYPE=Release -DKEEL_BUILD_TESTS=OFF $(WERROR) >/dev/null
	@cmake --build build-release-lib -j $(JOBS)
	@scratch=$$(mktemp -d) && build-release-lib/tools/keel demo $$scratch/store && rm -rf $$scratch

# Installs the `make build` tree (Release, what `make test` just tested) rather than building the
# library a third time; the add_subdirectory build checks a build without keel's tests and tools.
example-check: build
	scripts/example-check $(BUILD)

# -O1 with line tables and assertions on (RelWithDebInfo's -O2 -g -DNDEBUG compiled a third slower
# and switched the asserts off, which fuzzing wants on).
fuzz-build: deps
	@CXX=clang++-14 cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1" -DKEEL_FUZZ=ON -DKEEL_BUILD_TESTS=OFF $(WERROR) >/dev/null
	@cmake --build build-fuzz -j $(JOBS) --target keel_fuzz

fuzz-smoke: fuzz-build
	scripts/fuzz-smoke build-fuzz $(FUZZ_SECONDS)

bench:
	@scripts/install-deps bench
	@cmake -S . -B build-bench -G Ninja -DCMAKE_BUILD_TYPE=Release -DKEEL_BUILD_BENCH=ON -DKEEL_BUILD_TESTS=OFF >/dev/null
	@cmake --build build-bench -j $(JOBS)
	scripts/run-benchmarks build-bench

COMPARE_ARGS ?=
compare-build:
	@scripts/install-deps bench
	@cmake -S . -B build-bench -G Ninja -DCMAKE_BUILD_TYPE=Release -DKEEL_BUILD_BENCH=ON -DKEEL_BUILD_TESTS=OFF >/dev/null
	@cmake --build build-bench -j $(JOBS) --target keel-compare

compare: compare-build
	build-bench/bench/compare/keel-compare --csv build-bench/compare.csv $(COMPARE_ARGS)

# The comparison with its defaults (about 40 minutes; COMPARE_ARGS to change them) written to
# docs/BENCHMARKS.md with plots in docs/benchmarks/ (scripts/bench-report).
bench-report: compare-build
	scripts/bench-report build-bench $(COMPARE_ARGS)

# Replication through NATS JetStream on loopback (bench/replication/main.cc), beside the raw
# JetStream publish rate of the same run.
REPLICATION_BENCH_ARGS ?=
bench-replication: compare-build
	@cmake --build build-bench -j $(JOBS) --target keel-replication-bench
	build-bench/bench/replication/keel-replication-bench $(REPLICATION_BENCH_ARGS)

# The long crash loop (tests/crash_loop_test.cc runs a short one): the store is removed when the
# run passes and kept for inspection when it fails.
crash-loop: deps
	@cmake -S . -B $(BUILD) -G Ninja $(RELEASE) $(WERROR) $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS) --target keel-crash-loop
	@scratch=$$(mktemp -d) && \
	if $(BUILD)/tools/keel-crash-loop run --dir $$scratch/store --iterations $(ITERATIONS); then \
	  rm -rf $$scratch; \
	else \
	  echo "crash loop failed; the store is kept in $$scratch/store"; exit 1; \
	fi

# The crash loop's workload and oracle with power losses instead of SIGKILLs: in one process, on
# the fault-injecting file system in memory (tests/crash_loop_test.cc runs a short one).
power-loss-loop: deps
	@cmake -S . -B $(BUILD) -G Ninja $(RELEASE) $(WERROR) $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS) --target keel-crash-loop
	$(BUILD)/tools/keel-crash-loop power --dir /store --iterations $(ITERATIONS)

# Regenerates segments/golden/store (commit the result together with any format change).
# segments/golden/store-v1, store-v2, index-v1 and index-v2 are not regenerated: the last builds
# that wrote segment format versions 1 and 2 and index image versions 1 and 2 wrote them.
golden: build
	rm -rf segments/golden/store
	$(BUILD)/tools/keel-golden segments/golden/store
	rm -f segments/golden/store/LOCK segments/golden/store/SYNCED

clean:
	rm -rf build build-asan build-tsan build-release build-release-lib build-fuzz build-bench demo-store
