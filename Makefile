# The two commands a new user needs: `make run` and `make test`. Both install
# any missing Debian package first (scripts/bootstrap), then build with CMake.

BUILD ?= build
JOBS ?= $(shell nproc)
CONFIG ?= config.yaml

.PHONY: all build bootstrap run test clean

all: build

bootstrap:
	@scripts/bootstrap

build: bootstrap
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

run: build
	$(BUILD)/tqd --config $(CONFIG)

test: build
	ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS)

clean:
	rm -rf $(BUILD)
