#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# timeout: 300
#
# curl uploads (HTTP PUT) of 501 KiB and 100 MiB through sluiced and
# sluice-passthrough to a real nginx, which stores each body with its DAV
# module; the stored file must hash like the one curl sent. nginx runs as a
# private instance: its own prefix, config, pid file, logs and temp paths in
# the test's directory, listening on a loopback port.
. "$(dirname "$0")/lib.sh"

need curl sha256sum
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$NGINX" ] || skip "nginx is not installed"
"$NGINX" -V 2>&1 | grep -q -- --with-http_dav_module || skip "nginx has no DAV module (PUT)"

N=$T/nginx
mkdir -p "$N/www/up" "$N/tmp" "$N/logs"
UP_PORT=$(free_port)
UP=$(addr 127.0.0.1 "$UP_PORT")
# nginx started as root would switch its worker to "nobody", which cannot
# enter the test's private directory; keep the worker as the current user.
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
	access_log $N/logs/access.log;
	client_body_temp_path $N/tmp/body;
	proxy_temp_path $N/tmp/proxy;
	fastcgi_temp_path $N/tmp/fastcgi;
	uwsgi_temp_path $N/tmp/uwsgi;
	scgi_temp_path $N/tmp/scgi;
	server {
		listen $UP;
		root $N/www;
		client_max_body_size 0;
		location /up/ {
			dav_methods PUT;
		}
	}
}
CONF
spawn nginx "$NGINX" -p "$N" -c "$N/nginx.conf" -e "$N/logs/error.log"
wait_listening "$UP" "$SPAWNED_PID" nginx

LISTEN=$(addr 127.0.0.1 "$(free_port)")
start_sluiced "$LISTEN" "$UP"
start_filter

for size in 501K 100M; do
	src=$T/body-$size
	head -c "$size" /dev/urandom >"$src"
	code=$(curl -sS --max-time 120 -o "$T/curl-$size.out" -w '%{http_code}' \
		-T "$src" "http://$LISTEN/up/$size" 2>"$T/curl-$size.err") ||
		fail "curl PUT of $size through sluiced failed: $(cat "$T/curl-$size.err")"
	[ "$code" = 201 ] || [ "$code" = 204 ] || fail "PUT of $size answered HTTP $code"
	want=$(sha256sum <"$src" | cut -d' ' -f1)
	got=$(sha256sum <"$N/www/up/$size" | cut -d' ' -f1)
	[ "$want" = "$got" ] || fail "$size: nginx stored sha256 $got ($(stat -c %s "$N/www/up/$size") bytes), curl sent $want ($(stat -c %s "$src") bytes)"
	log "$size: HTTP $code, sha256 $got intact"
	rm -f "$src" "$N/www/up/$size"
done
stop_sluiced
