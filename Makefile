# Entry points; the build itself is Meson's. Every target first installs the
# Debian packages that are missing (scripts/deps.sh does nothing when all are
# there).
BUILD ?= build

.PHONY: all deps build check check-asan demo bench clean

all: build

deps:
	@./scripts/deps.sh

$(BUILD)/build.ninja: | deps
	meson setup $(BUILD)

build: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)

check: build
	@tests/run-all $(BUILD)

# The whole suite again on an ASan+UBSan (and LeakSanitizer) build: any
# report makes the process exit non-zero, so the test that ran it fails.
ASAN_BUILD ?= build-asan
check-asan: deps
	@[ -f $(ASAN_BUILD)/build.ninja ] || meson setup $(ASAN_BUILD) \
		-Db_sanitize=address,undefined -Dc_args=-fno-sanitize-recover=all
	ninja -C $(ASAN_BUILD)
	@ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:exitcode=86 \
		UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		tests/run-all $(ASAN_BUILD)

demo: build
	@scripts/demo.sh $(BUILD)

bench: build
	@bench/throughput.sh $(BUILD)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
