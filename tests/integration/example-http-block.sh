#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# timeout: 240
#
# sluice-http-block between curl and a real nginx: blocked hosts and path
# prefixes are answered 403 and never reach nginx (its access log shows no
# such request), allowed requests get nginx's files intact, keep-alive
# connections are inspected request by request (a block closes them, after
# the earlier responses), request bodies with Content-Length and chunked
# framing pass intact to a python upstream behind nginx that hashes them,
# pipelined requests work, oversized and malformed heads are refused, and an
# Upgrade request makes the rest of the connection pass unseen.
# nginx, the upstream and sluiced run on 127.0.0.1 with private ports.
. "$(dirname "$0")/lib.sh"

need curl sha256sum
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$NGINX" ] || skip "nginx is not installed"
BLOCKER=${HTTP_BLOCK:-$BUILD/sluice-http-block}
[ -x "$BLOCKER" ] || fail "no sluice-http-block binary at $BLOCKER"
HTTP_UPSTREAM=$TESTS_DIR/tools/http-upstream.py
HTTP_CLIENT=$TESTS_DIR/tools/http-client.py

sha() { sha256sum <"$1" | cut -d' ' -f1; }

# ----------------------------------------------------------------- set-up

PY=$(addr 127.0.0.1 "$(free_port)")
spawn upstream python3 "$HTTP_UPSTREAM" --listen "$PY"
wait_listening "$PY" "$SPAWNED_PID" http-upstream.py

N=$T/nginx
mkdir -p "$N/www/private" "$N/www/public" "$N/tmp" "$N/logs"
head -c 4M /dev/urandom >"$N/www/file.bin"
for f in a b c; do head -c 300K /dev/urandom >"$N/www/$f.bin"; done
echo secret >"$N/www/private/secret.txt"
echo public >"$N/www/public/index.html"
head -c 10M /dev/urandom >"$T/post-10m"
head -c 3M /dev/urandom >"$T/post-3m"
head -c 5000 /dev/urandom >"$T/post-small"

UP=$(addr 127.0.0.1 "$(free_port)")
ACCESS=$N/logs/access.log
# Workers as the current user: "nobody" cannot enter the test's directory.
user_line=
[ "$(id -u)" -ne 0 ] || user_line="user $(id -un) $(id -gn);"
cat >"$N/nginx.conf" <<CONF
$user_line
daemon off;
master_process on;
worker_processes 1;
pid $N/nginx.pid;
error_log $N/logs/error.log warn;
events { worker_connections 64; }
http {
	log_format t '\$connection \$request_method \$request_uri \$status \$http_host';
	access_log $ACCESS t;
	client_body_temp_path $N/tmp/body;
	proxy_temp_path $N/tmp/proxy;
	fastcgi_temp_path $N/tmp/fastcgi;
	uwsgi_temp_path $N/tmp/uwsgi;
	scgi_temp_path $N/tmp/scgi;
	server {
		listen $UP;
		root $N/www;
		client_max_body_size 0;
		location /post/ {
			proxy_pass http://$PY;
		}
		location /stream/ {
			proxy_pass http://$PY;
		}
		location /stall/ {
			proxy_pass http://$PY;
		}
		location /ws/ {
			proxy_pass http://$PY;
			proxy_http_version 1.1;
			proxy_set_header Upgrade \$http_upgrade;
			proxy_set_header Connection upgrade;
		}
	}
}
CONF
spawn nginx "$NGINX" -p "$N" -c "$N/nginx.conf" -e "$N/logs/error.log"
wait_listening "$UP" "$SPAWNED_PID" nginx

LISTEN=$(addr 127.0.0.1 "$(free_port)")
URL=http://$LISTEN
# A short --verdict-timeout: the filter must say, with a peek, that it holds
# bytes on purpose (a head not complete yet, a refusal waiting), or the
# daemon drops it.
start_sluiced "$LISTEN" "$UP" --log-level debug --verdict-timeout 2
for i in $(seq 200); do
	[ -S "$FILTER_SOCK" ] && break
	sleep 0.05
done
spawn filter "$BLOCKER" --socket "$FILTER_SOCK" --host blocked.test --host Evil.Example. \
	--path /private/ --path /admin
FILTER_PID=$SPAWNED_PID
FILTER_LOG=$T/filter.err
wait_for_log "$FILTER_LOG" "sluice-http-block: connected to" 10 ||
	fail "sluice-http-block did not connect to $FILTER_SOCK within 10 s"

# curl_get NAME [ARGS...]: one transfer, body in $T/NAME.body; sets CODE.
curl_get() {
	local name=$1
	shift
	CODE=$(curl -sS --max-time 30 -o "$T/$name.body" -w '%{http_code}' "$@" 2>"$T/$name.curl") ||
		fail "curl $name ($*) failed: $(cat "$T/$name.curl")"
}

# not_in_access TEXT WHAT: nginx logged no request line containing TEXT.
not_in_access() {
	! grep -qF -- "$1" "$ACCESS" || fail "$2 reached nginx: $(grep -F -- "$1" "$ACCESS")"
}

# host_not_in_access NAME: nginx logged no request whose Host is NAME or a
# subdomain of it (case, port and a trailing dot aside).
host_not_in_access() {
	local hits
	hits=$(awk -v n="$1" '{ h = tolower($5); sub(/:[0-9]*$/, "", h); sub(/\.$/, "", h) }
		h == n || substr(h, length(h) - length(n)) == "." n' "$ACCESS")
	[ -z "$hits" ] || fail "a request for blocked host $1 reached nginx: $hits"
}

flows_opened() { count_log "$SLUICED_LOG" ": open: "; }

step_start() { STEP_T0=$(date +%s.%N); }
step_done() { log "$1 ($(awk -v a="$STEP_T0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }') s)"; }

# ----------------------------------------------------------------- allowed

step_start
curl_get allowed "$URL/file.bin"
[ "$CODE" = 200 ] || fail "allowed GET answered $CODE"
[ "$(sha "$T/allowed.body")" = "$(sha "$N/www/file.bin")" ] ||
	fail "allowed GET: the 4 MiB file arrived changed ($(stat -c %s "$T/allowed.body") bytes)"
grep -qF "allowed Host 127.0.0.1 /file.bin" "$FILTER_LOG" || fail "no 'allowed' line for /file.bin"
curl_get lookalike -H 'Host: notblocked.test' "$URL/public/index.html"
[ "$CODE" = 200 ] || fail "Host notblocked.test (not a subdomain of blocked.test) answered $CODE"
step_done "allowed: 4 MiB GET intact (sha256), notblocked.test passes"

# ----------------------------------------------------------------- blocked host

step_start
for h in www.blocked.test BLOCKED.TEST.:8080 deep.sub.evil.example; do
	curl_get host -D "$T/host.head" -H "Host: $h" "$URL/public/index.html"
	[ "$CODE" = 403 ] || fail "Host $h answered $CODE, expected 403"
	grep -q "403 Forbidden" "$T/host.body" || fail "Host $h: no 403 page: $(head -c 200 "$T/host.body")"
	grep -qi '^Connection: close' "$T/host.head" || fail "Host $h: 403 without Connection: close"
	len=$(sed -n 's/^Content-Length: \([0-9]*\).*/\1/Ip' "$T/host.head")
	[ "$len" = "$(stat -c %s "$T/host.body")" ] || fail "Host $h: Content-Length $len, body $(stat -c %s "$T/host.body")"
done
grep -qF "blocked Host www.blocked.test /public/index.html" "$FILTER_LOG" ||
	fail "no 'blocked Host www.blocked.test /public/index.html' line: $(grep blocked "$FILTER_LOG")"
host_not_in_access blocked.test
host_not_in_access evil.example
step_done "blocked hosts: 403 with Content-Length and Connection: close, nginx saw none"

# ----------------------------------------------------------------- blocked path

step_start
for p in /private/secret.txt /%70rivate/secret.txt //private/./secret.txt /public/../private/secret.txt \
	/admin /administrator/x; do
	curl_get path --path-as-is "$URL$p"
	[ "$CODE" = 403 ] || fail "path $p answered $CODE, expected 403"
done
# A refused upload: curl sends the 10 MiB body at once (no Expect), and
# must get the 403 rather than hang or see a reset.
curl_get postblock -H 'Expect:' --data-binary @"$T/post-10m" "$URL/private/upload"
[ "$CODE" = 403 ] || fail "a 10 MiB POST to a blocked path answered $CODE"
not_in_access private "a request for a blocked path"
not_in_access %70rivate "a request for a blocked path"
not_in_access /admin "a request for a blocked path"
curl_get path "$URL/public/index.html"
[ "$CODE" = 200 ] || fail "/public/index.html answered $CODE"
step_done "blocked path prefixes (also encoded, dotted, doubled slashes, a 10 MiB POST): 403, nginx saw none"

# ----------------------------------------------------------------- keep-alive

step_start
before=$(flows_opened)
W='%{http_code} %{num_connects}\n'
curl -sS --max-time 30 -w "$W" -o "$T/ka1" "$URL/a.bin" \
	--next -w "$W" -o "$T/ka2" "$URL/b.bin" \
	--next -w "$W" -o "$T/ka3" -H 'Host: www.blocked.test' "$URL/c.bin" \
	>"$T/ka.out" 2>"$T/ka.err" || fail "keep-alive curl failed: $(cat "$T/ka.err")"
[ "$(tr '\n' ' ' <"$T/ka.out")" = "200 1 200 0 403 0 " ] ||
	fail "keep-alive: expected '200 1 200 0 403 0' (code, new connections), got '$(tr '\n' ' ' <"$T/ka.out")'"
[ "$(sha "$T/ka1")" = "$(sha "$N/www/a.bin")" ] || fail "keep-alive: a.bin changed"
[ "$(sha "$T/ka2")" = "$(sha "$N/www/b.bin")" ] || fail "keep-alive: b.bin changed"
grep -q "403 Forbidden" "$T/ka3" || fail "keep-alive: third answer is not the 403 page"
conns=$(awk '$3 == "/a.bin" || $3 == "/b.bin" { print $1 }' "$ACCESS" | tail -n 2 | sort -u | wc -l)
[ "$conns" = 1 ] || fail "keep-alive: nginx saw a.bin and b.bin on $conns connections"
not_in_access /c.bin "the blocked third request"
[ $(($(flows_opened) - before)) = 1 ] || fail "keep-alive: sluiced opened $(($(flows_opened) - before)) flows"
step_done "keep-alive: a.bin, b.bin intact on one connection (one flow), then 403 for the blocked host"

# ----------------------------------------------------------------- request bodies

# post_check NAME FILE: the upstream's JSON answer in $T/NAME matches FILE.
post_check() {
	local want got
	want="\"len\": $(stat -c %s "$2"), \"sha256\": \"$(sha "$2")\""
	got=$(cat "$T/$1")
	case $got in *"$want"*) ;; *) fail "$1: upstream saw $got, expected $want" ;; esac
}

step_start
curl -sS --max-time 60 -w "$W" -o "$T/post1" --data-binary @"$T/post-10m" "$URL/post/one" \
	--next -w "$W" -o "$T/post2" --data-binary @"$T/post-small" "$URL/post/two" \
	>"$T/post.out" 2>"$T/post.err" || fail "POST curl failed: $(cat "$T/post.err")"
[ "$(tr '\n' ' ' <"$T/post.out")" = "200 1 200 0 " ] ||
	fail "POSTs: expected '200 1 200 0', got '$(tr '\n' ' ' <"$T/post.out")'"
post_check post1 "$T/post-10m"
post_check post2 "$T/post-small"
conns=$(awk '$3 == "/post/one" || $3 == "/post/two" { print $1 }' "$ACCESS" | sort -u | wc -l)
[ "$conns" = 1 ] || fail "POSTs: nginx saw them on $conns connections"
step_done "10 MiB Content-Length POST, then a second POST on the same connection: both intact"

step_start
curl -sS --max-time 60 -w "$W" -o "$T/chunked" -H 'Transfer-Encoding: chunked' \
	--data-binary @"$T/post-3m" "$URL/post/chunked" \
	--next -w "$W" -o "$T/after-chunked" "$URL/a.bin" \
	>"$T/chunked.out" 2>"$T/chunked.err" || fail "chunked curl failed: $(cat "$T/chunked.err")"
[ "$(tr '\n' ' ' <"$T/chunked.out")" = "200 1 200 0 " ] ||
	fail "chunked POST: expected '200 1 200 0', got '$(tr '\n' ' ' <"$T/chunked.out")'"
post_check chunked "$T/post-3m"
[ "$(sha "$T/after-chunked")" = "$(sha "$N/www/a.bin")" ] || fail "GET after the chunked POST: a.bin changed"
step_done "3 MiB chunked POST intact, and the GET after it on the same connection"

# ----------------------------------------------------------------- pipelining

# Raw requests, several per write. The chunked body has small chunks, an
# extension, a trailer field, and a blocked-looking request inside its data.
step_start
python3 - "$T" <<'PY'
import sys
t = sys.argv[1]
def get(path, host="ok.test", extra=""):
    return ("GET %s HTTP/1.1\r\nHost: %s\r\n%s\r\n" % (path, host, extra)).encode()
inner = b"GET /private/secret.txt HTTP/1.1\r\nHost: www.blocked.test\r\n\r\n"
body = b"".join(b"%x;ext=1\r\n%s\r\n" % (len(inner[i:i + 7]), inner[i:i + 7]) for i in range(0, len(inner), 7))
chunked = (b"POST /post/pipe HTTP/1.1\r\nHost: ok.test\r\nTransfer-Encoding: chunked\r\n\r\n"
           + body + b"0\r\nX-Trailer: yes\r\n\r\n")
cl = b"POST /post/cl HTTP/1.1\r\nHost: ok.test\r\nContent-Length: %d\r\n\r\n%s" % (len(inner), inner)
open(t + "/pipe-ok", "wb").write(get("/a.bin") + chunked + cl + get("/b.bin"))
open(t + "/pipe-inner", "wb").write(inner)
open(t + "/pipe-block", "wb").write(get("/file.bin") + get("/c.bin", "www.blocked.test"))
open(t + "/big-head", "wb").write(get("/public/index.html", extra="X-Big: %s\r\n" % ("x" * 70000)))
open(t + "/bare-lf", "wb").write(b"GET /public/index.html HTTP/1.1\r\nHost: ok.test\r\nX-A: 1\nHost: www.blocked.test\r\n\r\n")
open(t + "/upgrade-ignored", "wb").write(get("/a.bin", extra="Connection: Upgrade\r\nUpgrade: websocket\r\n")
                                          + get("/private/secret.txt"))
open(t + "/framing", "wb").write(("HEAD /a.bin HTTP/1.1\r\nHost: ok.test\r\n\r\n").encode()
                                  + get("/stream/1048699") + get("/c.bin", "www.blocked.test"))
open(t + "/slow-1", "wb").write(b"GET /a.bin HTTP/1.1\r\nHost: ok.te")
open(t + "/slow-2", "wb").write(b"st\r\n\r\n")
open(t + "/stall", "wb").write(get("/stall/100000") + get("/private/secret.txt"))
open(t + "/cut-head", "wb").write(b"GET /private/secret.txt HTTP/1.1\nHost: ok.test\n\n")
PY
python3 "$HTTP_CLIENT" raw --connect "$LISTEN" --send "$T/pipe-ok" --responses 4 >"$T/pipe-ok.out" ||
	fail "pipelined client failed"
[ "$(json "$T/pipe-ok.out" '[x.get("status") for x in rs[:4]]')" = "[200, 200, 200, 200]" ] ||
	fail "pipelined: $(cat "$T/pipe-ok.out")"
[ "$(json "$T/pipe-ok.out" 'rs[0]["sha256"]')" = "$(sha "$N/www/a.bin")" ] || fail "pipelined: a.bin changed"
[ "$(json "$T/pipe-ok.out" 'rs[3]["sha256"]')" = "$(sha "$N/www/b.bin")" ] || fail "pipelined: b.bin changed"
for i in 1 2; do
	case $(json "$T/pipe-ok.out" "rs[$i]['body']") in
	*"\"sha256\": \"$(sha "$T/pipe-inner")\""*) ;;
	*) fail "pipelined POST $i: upstream saw $(json "$T/pipe-ok.out" "rs[$i]['body']")" ;;
	esac
done
host_not_in_access blocked.test
step_done "pipelined: GET, chunked POST (with trailer), Content-Length POST, GET in one write, all intact"

step_start
python3 "$HTTP_CLIENT" raw --connect "$LISTEN" --send "$T/pipe-block" >"$T/pipe-block.out" ||
	fail "pipelined block client failed"
[ "$(json "$T/pipe-block.out" '[x.get("status") for x in rs]')" = "[200, 403, None]" ] ||
	fail "pipelined allowed + blocked: $(cat "$T/pipe-block.out")"
[ "$(json "$T/pipe-block.out" 'rs[0]["sha256"]')" = "$(sha "$N/www/file.bin")" ] ||
	fail "pipelined allowed + blocked: the 4 MiB response before the 403 was cut or changed"
[ "$(json "$T/pipe-block.out" 'rs[2]["eof"] and not rs[2]["error"] and rs[2]["extra"] == 0')" = 1 ] ||
	fail "pipelined allowed + blocked: no clean close after the 403: $(tail -n 1 "$T/pipe-block.out")"
not_in_access /c.bin "the blocked pipelined request"
! grep -q "did not close within" "$FILTER_LOG" || fail "the filter waited for nginx to close: $(grep "did not close" "$FILTER_LOG")"
step_done "pipelined allowed + blocked: the 4 MiB response whole, then the 403 and the close"

step_start
python3 "$HTTP_CLIENT" raw --connect "$LISTEN" --send "$T/framing" --no-body 1 >"$T/framing.out" ||
	fail "framing client failed"
[ "$(json "$T/framing.out" '[(x.get("status"), x.get("len")) for x in rs]')" = \
	"[(200, 0), (200, 1048699), (403, $(json "$T/framing.out" 'rs[2]["len"]')), (None, None)]" ] ||
	fail "HEAD, chunked response, blocked: $(cut -c1-150 "$T/framing.out")"
[ "$(json "$T/framing.out" 'rs[1]["headers"].get("transfer-encoding")')" = chunked ] ||
	fail "nginx did not send /stream/ chunked: $(json "$T/framing.out" 'rs[1]["headers"]')"
want=$(python3 -c 'import hashlib; print(hashlib.sha256((bytes(range(256)) * 4097)[:1048699]).hexdigest())')
[ "$(json "$T/framing.out" 'rs[1]["sha256"]')" = "$want" ] || fail "the chunked response changed"
not_in_access /c.bin "the blocked request after HEAD and a chunked response"
! grep -q "no response progress" "$FILTER_LOG" || fail "a refusal waited for a response already complete"
step_done "responses followed: HEAD (no body), 1 MiB chunked, then the 403 at once"

step_start
python3 "$HTTP_CLIENT" raw --connect "$LISTEN" --send "$T/slow-1" --pause 3 --send "$T/slow-2" \
	--responses 1 >"$T/slow.out" || fail "slow head client failed"
[ "$(json "$T/slow.out" 'r.get("status")')" = 200 ] || fail "a head sent in two parts 3 s apart: $(cut -c1-150 "$T/slow.out")"
! grep -q "read nothing sent to it for" "$SLUICED_LOG" || fail "sluiced dropped the filter: $(grep "read nothing sent" "$SLUICED_LOG")"
check_alive "$FILTER_PID" sluice-http-block
step_done "a head completed after 3 s (verdict timeout 2 s): passed, the filter kept"

step_start
t0=$SECONDS
python3 "$HTTP_CLIENT" raw --connect "$LISTEN" --send "$T/stall" >"$T/stall.out" || true
if [ $((SECONDS - t0)) -lt 9 ] || [ $((SECONDS - t0)) -gt 20 ]; then
	fail "a refusal behind a stalled response was answered after $((SECONDS - t0)) s, expected about 10"
fi
grep -q "no response progress for 10000 ms; answering the refusal now" "$FILTER_LOG" ||
	fail "no line about the stalled response"
not_in_access /private/ "the request behind a stalled response"
step_done "a refusal behind a response stalled mid-body: answered after $((SECONDS - t0)) s, the connection closed"

# ----------------------------------------------------------------- refused heads

step_start
python3 "$HTTP_CLIENT" raw --connect "$LISTEN" --send "$T/big-head" >"$T/big-head.out"
[ "$(json "$T/big-head.out" 'r.get("status")')" = 431 ] || fail "70 KB head: $(cat "$T/big-head.out")"
python3 "$HTTP_CLIENT" raw --connect "$LISTEN" --send "$T/bare-lf" >"$T/bare-lf.out"
[ "$(json "$T/bare-lf.out" 'r.get("status")')" = 400 ] || fail "bare LF in a head: $(cat "$T/bare-lf.out")"
python3 "$HTTP_CLIENT" raw --connect "$LISTEN" --send "$T/cut-head" --shut >"$T/cut-head.out"
[ "$(json "$T/cut-head.out" 'r.get("eof") and "status" not in r')" = 1 ] ||
	fail "LF-only head cut by FIN: $(cat "$T/cut-head.out")"
host_not_in_access blocked.test
not_in_access private "a head cut short by FIN"
grep -c "rejected:" "$FILTER_LOG" | grep -qx 2 || fail "expected 2 'rejected' lines: $(grep rejected "$FILTER_LOG")"
step_done "70 KB head: 431; bare LF: 400; unterminated head then FIN: dropped, nginx saw nothing"

# ----------------------------------------------------------------- upgrade

step_start
python3 "$HTTP_CLIENT" upgrade --connect "$LISTEN" --host ok.test --path /ws/echo --send 1048576 \
	>"$T/upgrade.out" || fail "upgrade: $(cat "$T/upgrade.out")"
grep -qF "allowed Host ok.test /ws/echo (Upgrade: holding the rest until the response)" "$FILTER_LOG" ||
	fail "no 'allowed' line for the Upgrade request: $(grep /ws/ "$FILTER_LOG")"
id=$(sed -n 's/.*flow \([0-9a-f]*\): allowed Host ok.test \/ws\/echo (Upgrade.*/\1/p' "$FILTER_LOG")
grep -qF "flow $id: server answered 101: passing the rest" "$FILTER_LOG" ||
	fail "no pass_rest line after the 101: $(grep "flow $id" "$FILTER_LOG")"
wait_for_log "$FILTER_LOG" "flow $id: closed:" 10 || fail "the upgraded flow $id did not close"
seen=$(sed -n "s/.*flow $id: closed: 1 requests passed, saw out \([0-9]*\) in.*/\1/p" "$FILTER_LOG")
if [ -z "$seen" ] || [ "$seen" -ge 4096 ]; then
	fail "after the switch the filter still saw the out direction (${seen:-?} bytes)"
fi
step_done "Upgrade: 101, 1 MiB echoed intact with request-like bytes inside, the filter saw only the $seen-byte head"

# An Upgrade the server ignores (nginx serves a file) does not open the
# connection: the blocked request pipelined behind it is still refused.
step_start
python3 "$HTTP_CLIENT" raw --connect "$LISTEN" --send "$T/upgrade-ignored" >"$T/upgrade-ignored.out" ||
	fail "ignored upgrade client failed"
[ "$(json "$T/upgrade-ignored.out" '[x.get("status") for x in rs]')" = "[200, 403, None]" ] ||
	fail "Upgrade without a switch, then a blocked request: $(cat "$T/upgrade-ignored.out")"
[ "$(json "$T/upgrade-ignored.out" 'rs[0]["sha256"]')" = "$(sha "$N/www/a.bin")" ] ||
	fail "Upgrade without a switch: a.bin changed"
grep -qF "server answered 200 without switching: inspecting on" "$FILTER_LOG" ||
	fail "no 'without switching' line"
not_in_access /private/ "a request pipelined after an ignored Upgrade"
step_done "Upgrade ignored by nginx: 200, and the request behind it is still inspected (403)"

# ----------------------------------------------------------------- health

! grep -q "daemon refused" "$FILTER_LOG" || fail "the daemon refused verdicts: $(grep "daemon refused" "$FILTER_LOG")"
check_alive "$FILTER_PID" sluice-http-block
stop_sluiced
log "$(grep -c ': allowed ' "$FILTER_LOG") allowed, $(grep -c ': blocked ' "$FILTER_LOG") blocked, $(grep -c ': rejected: ' "$FILTER_LOG") rejected"
