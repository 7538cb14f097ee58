# Entry points; the build itself is Meson's. Every target first installs the
# Debian packages that are missing (scripts/deps.sh does nothing when all are
# there).
BUILD ?= build

.PHONY: all deps build check check-asan demo bench clean install

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
	@SLUICE_SANITIZED=1 ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:exitcode=86 \
		UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		tests/run-all $(ASAN_BUILD)

# make install [PREFIX=/usr] [DESTDIR=/tmp/root]: the daemon, sluicectl,
# the example filters, libsluice (shared and static) with its headers and
# pkg-config file, the man pages, the systemd unit and /etc/default/sluiced.
# A build directory of its own, so that the prefix of $(BUILD), which the
# tests use, is left alone.
PREFIX ?= /usr/local
INSTALL_BUILD ?= build-install
install: deps
	@if [ -f $(INSTALL_BUILD)/build.ninja ]; then \
		meson configure $(INSTALL_BUILD) --prefix=$(PREFIX); \
	else \
		meson setup $(INSTALL_BUILD) --prefix=$(PREFIX); \
	fi
	ninja -C $(INSTALL_BUILD)
	meson install -C $(INSTALL_BUILD) --no-rebuild $(if $(DESTDIR),--destdir $(abspath $(DESTDIR)))

demo: build
	@scripts/demo.sh $(BUILD)

bench: build
	@bench/bench.sh $(BUILD)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(INSTALL_BUILD)
