# A thin layer over CMake. `make demo` and `make test` are the quick start:
# both install what is missing, build, and run.
BUILD ?= build
ASAN_BUILD ?= build-asan
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: all deps build test unit demo asan asan-test fuzz clean format install

all: build

deps:
	@bash scripts/deps.sh

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DTM_WERROR=ON $(CMAKE_FLAGS)

build: $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

test: deps build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

unit: build
	cd $(BUILD) && ctest --output-on-failure -L unit -j $(JOBS)

demo: deps build
	bash scripts/demo.sh $(BUILD)/bin

# The sanitizer build also links the fuzz targets with libFuzzer (TM_FUZZ), so
# its fuzz.* tests replay the corpora and, with TM_FUZZ_SECONDS=N in the
# environment (.ci/run: 30), fuzz each target for N seconds.
ASAN_FLAGS = -DCMAKE_BUILD_TYPE=Debug -DTM_WERROR=ON -DTM_SANITIZE=address,undefined -DTM_FUZZ=ON

$(ASAN_BUILD)/CMakeCache.txt:
	CC=clang cmake -S . -B $(ASAN_BUILD) $(ASAN_FLAGS) $(CMAKE_FLAGS)

# re-configured every time: a build-asan from before TM_FUZZ picks it up
asan: deps $(ASAN_BUILD)/CMakeCache.txt
	CC=clang cmake -S . -B $(ASAN_BUILD) $(ASAN_FLAGS) $(CMAKE_FLAGS) >/dev/null
	cmake --build $(ASAN_BUILD) -j $(JOBS)

asan-test: asan
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	    UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	    LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp \
	    ctest --output-on-failure -j $(JOBS)

# An optimised libFuzzer build for long runs: tests/fuzz/campaign.sh uses it.
fuzz: deps
	CC=clang cmake -S . -B build-fuzz -DTM_FUZZ=ON -DTM_SANITIZE=address,undefined
	cmake --build build-fuzz -j $(JOBS) --target $$(cd tests/fuzz && ls fuzz_*.c | sed 's/\.c$$//')

# standard staging: make install DESTDIR=/tmp/stage PREFIX=/usr
PREFIX ?= /usr/local
install: build
	DESTDIR="$(DESTDIR)" cmake --install $(BUILD) --prefix "$(PREFIX)"

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) build-fuzz
