#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# timeout: 120
#
# --log-format: one record per line in both formats, for grep and for log
# shippers.
#  1. json: a daemon's whole life (start, a flow through sluice-passthrough
#     with debug messages, drain, exit) logs lines that each parse as one
#     JSON object with exactly the keys time (RFC 3339 UTC, milliseconds),
#     level (error|warning|info|debug) and msg; the expected events are
#     there. A filter socket path holding a quote, a backslash, a newline,
#     a tab and a byte that is not UTF-8 comes back intact from the JSON
#     (the byte as U+FFFD), on one line.
#  2. text: the same life gives "HH:MM:SS.mmm sluiced LEVEL: msg" lines; the
#     control characters of that path are shown as '?'.
#  3. a wrong --log-format is refused before anything starts.
. "$(dirname "$0")/lib.sh"

UP=$(addr 127.0.0.1 "$(free_port)")
start_server srv "$UP" --count 2 --send 64K
# A path that needs every kind of escape: " \ newline tab and 0xff.
WEIRD=$T/$'q"b\\n\nt\t\xff.sock'

# life FORMAT N: a daemon on the weird filter socket, one flow through
# sluice-passthrough, then SIGTERM. Its stderr is $T/sluiced-N.err.
life() {
	local fmt=$1 listen
	listen=$(addr 127.0.0.1 "$(free_port)")
	spawn "sluiced-$2" "$SLUICED" --listen "$listen" --upstream "$UP" --filter-socket "$WEIRD" \
		--log-format "$fmt" --log-level debug
	SLUICED_PID=$SPAWNED_PID
	# shellcheck disable=SC2034 # lib.sh's, for start_filter and the logs
	SLUICED_LOG=$T/sluiced-$2.err
	wait_listening "$listen" "$SLUICED_PID" sluiced
	# shellcheck disable=SC2034
	FILTER_SOCK=$WEIRD
	start_filter
	run_client "cli-$2" 30 "$listen" --send 32K
	stop_sluiced
}

life json 1
python3 - "$T/sluiced-1.err" "$WEIRD" <<'EOF' || fail "the json log is not one JSON object per line as expected"
import json, re, sys

path, weird = sys.argv[1], sys.argv[2].encode("utf-8", "surrogateescape")
raw = open(path, "rb").read()
assert raw.endswith(b"\n"), "no newline after the last record"
records = []
for n, line in enumerate(raw.split(b"\n")[:-1], 1):
    line.decode("utf-8")  # strict: every line is UTF-8
    r = json.loads(line)
    assert isinstance(r, dict), f"line {n}: not an object"
    assert list(r) == ["time", "level", "msg"], f"line {n}: keys {list(r)}"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", r["time"]), f"line {n}: time {r['time']}"
    assert r["level"] in ("error", "warning", "info", "debug"), f"line {n}: level {r['level']}"
    assert isinstance(r["msg"], str) and r["msg"], f"line {n}: msg"
    records.append(r)
msgs = [r["msg"] for r in records]
levels = {r["level"] for r in records}
def has(text, level=None):
    ok = any(text in r["msg"] and (level is None or r["level"] == level) for r in records)
    assert ok, f"no {level or ''} record with {text!r}"
has("listening on 127.0.0.1:", "info")
has("flow ", "info")
has("stopping on Terminated", "info")
assert "debug" in levels, "no debug records at --log-level debug"
want = weird.decode("utf-8", "replace")
assert "\ufffd" in want and "\n" in want and '"' in want and "\\" in want and "\t" in want
has("filter socket " + want + ",")
print(f"{len(records)} records, levels {sorted(levels)}")
EOF
log "json: $(wc -l <"$T/sluiced-1.err") lines parse"

life text 2
grep -vqE '^[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3} sluiced (error|warning|info|debug): .' "$T/sluiced-2.err" &&
	fail "text lines out of format: $(grep -vE '^[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3} sluiced (error|warning|info|debug): .' "$T/sluiced-2.err" | head -n 3)"
grep -qF "filter socket $T/q\"b\\n?t?"$'\xff'".sock, window" "$T/sluiced-2.err" ||
	fail "text: the filter socket path is not shown with '?' for control characters"
grep -q ' sluiced debug: ' "$T/sluiced-2.err" || fail "text: no debug lines at --log-level debug"
log "text: $(wc -l <"$T/sluiced-2.err") lines in format"

# 3. Refused at once, on stderr, with status 2.
rc=0
"$SLUICED" --listen 127.0.0.1:1 --upstream 127.0.0.1:2 --log-format xml >"$T/bad.out" 2>"$T/bad.err" || rc=$?
[ "$rc" -eq 2 ] || fail "--log-format xml: exit status $rc, expected 2"
grep -qxF "sluiced: --log-format: 'xml' is not text or json" "$T/bad.err" ||
	fail "--log-format xml: $(cat "$T/bad.err")"
wait_server 30
log "ok"
