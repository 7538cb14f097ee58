#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# timeout: 300
#
# Installing like any other daemon: `make install PREFIX=/usr
# DESTDIR=$T/root` (from a build directory of the test's own) must put
#  1. every file where a distribution expects it: sluiced in sbin;
#     sluicectl and the example filters in bin; libsluice shared (with its
#     soname links) and static, exporting only sluice_* symbols; the headers;
#     libsluice.pc; the four man pages; docs/protocol.md; the systemd unit,
#     its paths fitted to the prefix; /etc/default/sluiced. And every file
#     meson says it installs is there, and no test program is;
#  2. a libsluice a filter builds against: a small filter compiled with
#     `pkg-config --cflags --libs libsluice` from the staged tree (shared,
#     and again against the static library) runs --help, then upper-cases
#     what a server sends through the installed sluiced;
#  3. a unit `systemd-analyze verify` accepts (without running systemd;
#     skipped with a reason when systemd-analyze is not installed), whose
#     sandbox `systemd-analyze security` rates below 5 (of 10);
#  4. man pages that `man` renders with no warning, where sluiced(8)
#     documents every option of `sluiced --help`, libsluice(3) every
#     function of sluice.h, and sluicectl(8) every command of sluicectl.
. "$(dirname "$0")/lib.sh"
need make meson ninja pkg-config cc man python3

TOP=$(cd "$TESTS_DIR/.." && pwd)
R=$T/root
log "make install PREFIX=/usr DESTDIR=$R (build in $T/build)"
make -C "$TOP" install PREFIX=/usr DESTDIR="$R" INSTALL_BUILD="$T/build" >"$T/install.log" 2>&1 ||
	fail "make install failed: $(tail -n 20 "$T/install.log")"

# Where meson put things for prefix /usr on this system.
opt() {
	meson introspect --buildoptions "$T/build" |
		python3 -c 'import json, sys; print([o["value"] for o in json.load(sys.stdin) if o["name"] == sys.argv[1]][0])' "$1"
}
LIBDIR=/usr/$(opt libdir)
case $LIBDIR in /usr//*) LIBDIR=${LIBDIR#/usr/} ;; esac
UNITDIR=$(opt systemdunitdir)
[ -n "$UNITDIR" ] || UNITDIR=$(pkg-config --variable=systemdsystemunitdir systemd 2>/dev/null) || true
[ -n "$UNITDIR" ] || UNITDIR=/usr/lib/systemd/system
log "libdir $LIBDIR, unit dir $UNITDIR"

# 1. The files.
expect=(
	/usr/sbin/sluiced
	/usr/include/sluice/sluice.h
	/usr/include/sluice/protocol.h
	"$LIBDIR/libsluice.so"
	"$LIBDIR/libsluice.so.0"
	"$LIBDIR/libsluice.a"
	"$LIBDIR/pkgconfig/libsluice.pc"
	/usr/share/man/man8/sluiced.8
	/usr/share/man/man8/sluicectl.8
	/usr/share/man/man3/libsluice.3
	/usr/share/man/man7/sluice-protocol.7
	/usr/share/doc/sluice/protocol.md
	/usr/share/doc/sluice/control.md
	"$UNITDIR/sluiced.service"
	/etc/default/sluiced
)
for c in "$TOP"/examples/*.c; do
	expect+=("/usr/bin/sluice-$(basename "$c" .c)")
done
# sluicectl, once the tree builds it.
if grep -q "'sluicectl'" "$TOP/meson.build"; then
	expect+=(/usr/bin/sluicectl)
fi
for f in "${expect[@]}"; do
	[ -e "$R$f" ] || fail "make install did not install $f"
done
for f in /usr/sbin/sluiced /usr/bin/sluice-passthrough; do
	[ -x "$R$f" ] || fail "$f is not executable"
done
"$R/usr/sbin/sluiced" --version | grep -q '^sluiced ' || fail "the installed sluiced does not run"
# Everything meson lists as installed is there (the list names the final
# paths; the staged copy is under DESTDIR).
meson introspect --installed "$T/build" |
	python3 -c 'import json, sys; print("\n".join(json.load(sys.stdin).values()))' >"$T/installed.txt"
while read -r f; do
	[ -e "$R$f" ] || [ -L "$R$f" ] || fail "meson lists $f as installed, but it is not in $R"
done <"$T/installed.txt"
find "$R" -name 'test-*' -o -name 'replay-*' -o -name 'fuzz-*' | grep . &&
	fail "test programs were installed"
log "$(wc -l <"$T/installed.txt") files installed, the ${#expect[@]} expected among them"

# The shared library exports sluice_* only, under its version node.
nm -D --defined-only "$R$LIBDIR/libsluice.so" | awk '{print $3}' | grep -v '^sluice_' |
	grep -vx 'LIBSLUICE_[0-9.]*' >"$T/exports.txt" &&
	fail "libsluice.so exports more than sluice_*: $(head -n 5 "$T/exports.txt")"

# The unit's paths are those of the prefix.
unit=$R$UNITDIR/sluiced.service
# shellcheck disable=SC2016 # $SLUICED_ARGS is the unit's, not ours
grep -qx 'ExecStart=/usr/sbin/sluiced $SLUICED_ARGS' "$unit" || fail "unit: ExecStart is $(grep ^ExecStart "$unit")"
grep -qx 'EnvironmentFile=-/etc/default/sluiced' "$unit" || fail "unit: $(grep ^EnvironmentFile "$unit")"
grep -q '^SLUICED_ARGS=' "$R/etc/default/sluiced" || fail "/etc/default/sluiced sets no SLUICED_ARGS"

# 2. A filter built against the staged libsluice.
cat >"$T/upper.c" <<'EOF'
/* Upper-cases what servers send; passes what applications send. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sluice/sluice.h>

static int on_data(struct sluice_client *c, uint64_t flow, enum sluice_dir dir, uint64_t off,
		   const uint8_t *data, size_t len, void *user)
{
	uint8_t up[len ? len : 1];

	if (dir == SLUICE_DIR_OUT)
		return sluice_pass(c, flow, dir, off + len);
	for (size_t i = 0; i < len; i++)
		up[i] = (uint8_t)toupper(data[i]);
	return sluice_replace(c, flow, dir, off, off + len, up, len);
}

int main(int argc, char **argv)
{
	struct sluice_callbacks cb = { .sz = sizeof(cb), .on_data = on_data };
	struct sluice_client_opts o = { .sz = sizeof(o), .name = "upper" };
	struct sluice_client *c;
	int r;

	if (argc == 2 && !strcmp(argv[1], "--help")) {
		printf("usage: upper [SOCKET] (default %s)\n", SLUICE_DEFAULT_SOCKET);
		return 0;
	}
	o.path = argc > 1 ? argv[1] : NULL;
	r = sluice_client_connect(&o, &cb, NULL, &c);
	if (r < 0) {
		fprintf(stderr, "upper: %s\n", strerror(-r));
		return 1;
	}
	fprintf(stderr, "upper: connected\n");
	r = sluice_client_run(c);
	sluice_client_free(c);
	return r == -ECONNRESET ? 0 : 1;
}
EOF
export PKG_CONFIG_SYSROOT_DIR=$R PKG_CONFIG_LIBDIR=$R$LIBDIR/pkgconfig
flags=$(pkg-config --cflags --libs libsluice) || fail "pkg-config does not find the staged libsluice.pc"
cflags=$(pkg-config --cflags libsluice)
log "pkg-config --cflags --libs libsluice: $flags"
unset PKG_CONFIG_SYSROOT_DIR PKG_CONFIG_LIBDIR
# shellcheck disable=SC2086 # flags are words
cc -std=gnu11 -Wall -Werror -o "$T/upper" "$T/upper.c" $flags ||
	fail "the filter does not build against the staged libsluice"
readelf -d "$T/upper" | grep -q 'NEEDED.*\[libsluice\.so\.0\]' || fail "upper is not linked with libsluice.so.0"
# shellcheck disable=SC2086
cc -std=gnu11 -Wall -Werror -o "$T/upper-static" "$T/upper.c" $cflags "$R$LIBDIR/libsluice.a" ||
	fail "the filter does not build against the staged libsluice.a"
readelf -d "$T/upper-static" | grep -q libsluice && fail "upper-static still needs libsluice.so"
export LD_LIBRARY_PATH=$R$LIBDIR
for prog in upper upper-static; do
	"$T/$prog" --help | grep -q '^usage: upper' || fail "$prog --help failed"
done
ldd "$T/upper" | grep -qF "$R$LIBDIR/libsluice.so.0" || fail "upper does not load the staged libsluice: $(ldd "$T/upper")"

# ... and filters through the installed daemon.
SLUICED=$R/usr/sbin/sluiced
for prog in upper upper-static; do
	UP=$(addr 127.0.0.1 "$(free_port)")
	LISTEN=$(addr 127.0.0.1 "$(free_port)")
	spawn "srv-$prog" python3 -c '
import socket, sys
h, p = sys.argv[1].rsplit(":", 1)
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((h, int(p))); s.listen(1)
c, _ = s.accept(); c.sendall(b"hello, installed sluice\n"); c.close()' "$UP"
	wait_listening "$UP" "$SPAWNED_PID" "server"
	start_sluiced "$LISTEN" "$UP" --control "$T/control-$prog.sock"
	spawn "filter-$prog" "$T/$prog" "$FILTER_SOCK"
	wait_for_log "$T/filter-$prog.err" "upper: connected" 10 || fail "$prog did not connect"
	wait_for_log "$SLUICED_LOG" "(upper) ready" 10 || fail "sluiced did not take $prog as a filter"
	got=$(timeout 10 python3 -c '
import socket, sys
h, p = sys.argv[1].rsplit(":", 1)
s = socket.create_connection((h, int(p)))
b = b""
while True:
    d = s.recv(4096)
    if not d: break
    b += d
sys.stdout.write(b.decode())' "$LISTEN") || fail "client through the installed sluiced failed"
	[ "$got" = "HELLO, INSTALLED SLUICE" ] || fail "$prog: got '$got' through the installed sluiced"
	stop_sluiced
	log "$prog: --help, and 'HELLO, INSTALLED SLUICE' through the installed sluiced"
done
unset LD_LIBRARY_PATH

# 3. The unit. systemd-analyze only reads files here; systemd is not run.
if command -v systemd-analyze >/dev/null; then
	# The staged sluiced stands in for /usr/sbin/sluiced, and the staged
	# man pages answer the unit's Documentation= lines.
	mkdir -p "$T/verify"
	sed "s|^ExecStart=/usr/sbin/sluiced|ExecStart=$R/usr/sbin/sluiced|" "$unit" >"$T/verify/sluiced.service"
	MANPATH=$R/usr/share/man systemd-analyze verify "$T/verify/sluiced.service" >"$T/verify.out" 2>&1 ||
		fail "systemd-analyze verify refuses the unit: $(cat "$T/verify.out")"
	grep -F sluiced "$T/verify.out" && fail "systemd-analyze verify warns about the unit"
	log "systemd-analyze verify: ok"
	if systemd-analyze security --offline=yes "$T/verify/sluiced.service" >"$T/security.out" 2>&1; then
		score=$(sed -n 's/.*Overall exposure level for sluiced.service: \([0-9.]*\).*/\1/p' "$T/security.out")
		[ -n "$score" ] || fail "no exposure level in: $(tail -n 3 "$T/security.out")"
		awk -v s="$score" 'BEGIN { exit !(s < 5.0) }' ||
			fail "the unit's sandbox rates $score; keep it below 5: $(grep '✗' "$T/security.out" | head -n 20)"
		log "systemd-analyze security: exposure $score"
	else
		log "systemd-analyze security --offline not available: $(tail -n 1 "$T/security.out")"
	fi
else
	log "skipped: systemd-analyze verify (systemd-analyze is not installed; it comes with the systemd package, not installed here so as not to change this machine's init)"
fi

# The unit's capability bounding set is all the installed sluiced needs to
# intercept and to act as a gateway (root, in a namespace of the test's).
caps=$(sed -n 's/^CapabilityBoundingSet=//p' "$unit" | tr 'A-Z ' 'a-z\n' | sed -n 's/^cap_/+/p' | paste -sd,)
if [ "$(id -u)" -ne 0 ] || ! command -v setpriv >/dev/null || ! command -v nft >/dev/null; then
	log "not checked: sluiced with only the unit's capabilities (needs root, setpriv and nft)"
elif [ -z "$caps" ]; then
	fail "the unit sets no CapabilityBoundingSet"
else
	. "$(dirname "$0")/netns.sh"
	netns_add NS_CAPS caps
	n=0
	for mode in "--intercept 80,443" "--gateway 80"; do
		n=$((n + 1))
		# shellcheck disable=SC2086 # mode is two words
		netns_spawn "caps-$n" "$NS_CAPS" setpriv --bounding-set "-all,$caps" --inh-caps -all -- \
			"$R/usr/sbin/sluiced" $mode --filter-socket "$T/caps-$n.sock" --control "$T/caps-ctl-$n.sock"
		pid=$NETNS_PID
		for _ in $(seq 100); do
			netns_has_sluice_table "$NS_CAPS" && [ -S "$T/caps-$n.sock" ] && break
			alive "$pid" || fail "sluiced $mode with only $caps: $(cat "$T/caps-$n.err")"
			sleep 0.05
		done
		netns_has_sluice_table "$NS_CAPS" || fail "sluiced $mode with only $caps made no table: $(cat "$T/caps-$n.err")"
		eff=$(awk '$1 == "CapEff:" { print $2 }' "/proc/$pid/status")
		kill -TERM "$pid"
		rc=0
		wait_pid "$pid" 10 || rc=$?
		[ "$rc" -eq 0 ] || fail "sluiced $mode with only $caps: exit status $rc"
		grep -E 'error|warning' "$T/caps-$n.err" && fail "sluiced $mode with only $caps complained"
		log "sluiced $mode runs with only $caps (CapEff $eff)"
	done
fi

# 4. The man pages render without a warning, in a UTF-8 and in the C
# locale, and are complete (read in the C locale, where a hyphen is '-').
for page in "$R"/usr/share/man/man*/*; do
	for loc in C.UTF-8 C; do
		LC_ALL=$loc MANWIDTH=80 man --warnings -l "$page" >"$T/page.txt" 2>"$T/man.err" ||
			fail "man -l $(basename "$page") ($loc) failed: $(cat "$T/man.err")"
		[ -s "$T/man.err" ] && fail "man -l $(basename "$page") ($loc) warns: $(cat "$T/man.err")"
		grep -q '^NAME' "$T/page.txt" || fail "$(basename "$page") has no NAME section"
	done
done
export LC_ALL=C
for o in $("$R/usr/sbin/sluiced" --help | grep -oE -- '--[a-z][a-z-]+' | sort -u); do
	MANWIDTH=1000 man -l "$R/usr/share/man/man8/sluiced.8" 2>/dev/null | grep -qF -- "$o" ||
		fail "sluiced.8 does not document $o (docs/sluiced.8.scd)"
done
for f in $(grep -oE '^[a-z_ ]+\**sluice_[a-z_]+\(' "$TOP/include/sluice/sluice.h" | grep -oE 'sluice_[a-z_]+'); do
	MANWIDTH=1000 man -l "$R/usr/share/man/man3/libsluice.3" 2>/dev/null | grep -qE "^ +$f\(" ||
		fail "libsluice.3 does not describe $f() (docs/libsluice.3.scd)"
done
if [ -x "$R/usr/bin/sluicectl" ]; then
	for o in $("$R/usr/bin/sluicectl" --help | grep -oE -- '--[a-z][a-z-]+' | sort -u); do
		MANWIDTH=1000 man -l "$R/usr/share/man/man8/sluicectl.8" 2>/dev/null | grep -qF -- "$o" ||
			fail "sluicectl.8 does not document $o (docs/sluicectl.8.scd)"
	done
	for c in status flows top kill filters; do
		MANWIDTH=1000 man -l "$R/usr/share/man/man8/sluicectl.8" 2>/dev/null | grep -qE "^ +$c( |$)" ||
			fail "sluicectl.8 does not describe $c (docs/sluicectl.8.scd)"
	done
fi
log "man pages: $(find "$R"/usr/share/man -type f | wc -l) render cleanly and cover every option and function"
log "ok"
