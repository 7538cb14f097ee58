# Entry points; the build itself is Meson's. Every target first installs the
# Debian packages that are missing (scripts/deps.sh does nothing when all are
# there).
BUILD ?= build

.PHONY: all deps build check demo bench clean

all: build

deps:
	@./scripts/deps.sh

$(BUILD)/build.ninja: | deps
	meson setup $(BUILD)

build: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)

check: build
	@tests/run-all $(BUILD)

demo: build
	@scripts/demo.sh $(BUILD)

bench: build
	@bench/throughput.sh $(BUILD)

clean:
	rm -rf $(BUILD)
