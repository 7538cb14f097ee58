#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# shellcheck shell=bash
# timeout: 300
#
# Network-namespace topologies, servers and transfers for the tests of
# sluiced's intercept and gateway modes, and for scripts/demo.sh.
#
# Sourced by a test after lib.sh:
#
#	. "$(dirname "$0")/lib.sh"
#	. "$(dirname "$0")/netns.sh"
#
# it puts its files in lib.sh's $T and hooks into lib.sh's EXIT trap, so the
# namespaces go before lib.sh stops the processes it spawned. Sourced alone
# (scripts/demo.sh), set NETNS_DIR first and call netns_cleanup from your own
# EXIT trap. Run as a script (tests/run-all does, as integration/netns), it
# tests itself: both topologies, nginx over HTTP and HTTPS on IPv4 and IPv6,
# vsftpd active and passive, forwarding through the gateway, and that
# cleanup leaves nothing behind; no sluiced is involved.
#
# Topologies. Every interface is made inside the test's own namespaces (the
# veth pair is created in one namespace with its peer in the other), so the
# host's network configuration is never touched. Names are unique per run:
# ${NETNS_PREFIX}c, ...s, ...g, with NETNS_PREFIX=sl-PID- by default.
#
#	netns_pair:     client (eth0) <-> (eth0) server
#	                10.77.1.1/24  fd77:1::1/64    10.77.1.2/24  fd77:1::2/64
#	netns_gateway:  client (eth0) <-> (eth0) gateway (eth1) <-> (eth0) server
#	                10.77.1.1     10.77.1.254   10.77.2.254     10.77.2.2
#	                fd77:1::1     fd77:1::fe    fd77:2::fe      fd77:2::2
#	                forwarding on in the gateway only; client and server
#	                route everything through it.
#
# Both set NS_CLIENT, NS_SERVER (and NS_GW), CLIENT4, SERVER4, CLIENT6,
# SERVER6. IPv6 addresses are added with nodad, so they are usable at once.
#
# Servers (in the namespace given; configuration, logs and pid files under
# $NETNS_DIR; both stop with the namespace):
#	netns_start_nginx NS     HTTP on 80 and 8080, HTTPS on 443 (a self-signed
#	                         certificate made on the spot), IPv4 and IPv6;
#	                         GET /dl/NAME serves payloads (/slow/NAME the
#	                         same at 2 MiB/s: curl's own --limit-rate lets
#	                         downloads burst), PUT /up/NAME stores a file
#	                         (the DAV module). Access log lines:
#	                         "REMOTE_ADDR METHOD URI STATUS REQ_LEN BODY_SENT".
#	netns_start_vsftpd NS    FTP on 21 (IPv4 and IPv6), anonymous, /dl/NAME to
#	                         download, /up/ to upload; passive data ports
#	                         $FTP_PASV_MIN-$FTP_PASV_MAX; active mode allowed
#	                         (data from port 20).
#
# Transfers: netns_payload NAME SIZE makes a random file both servers offer;
# netns_xfer runs one curl upload or download from the client namespace and
# compares sha256 on both ends. Flows: netns_start_sluiced starts the daemon
# in a namespace, netns_start_filter sluice-passthrough beside it, and
# flows_mark / daemon_flows / filter_flows read what each logged per flow.

NETNS_PREFIX=${NETNS_PREFIX:-sl-$$-}
_NETNS_SELFTEST=
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	set -eu
	_NETNS_SELFTEST=1
	NETNS_DIR=$(mktemp -d "${SLUICE_TEST_TMP:-${TMPDIR:-/tmp}}/sluice-netns.XXXXXX")
fi
NETNS_DIR=${NETNS_DIR:-${T:-}}
FTP_PASV_MIN=${FTP_PASV_MIN:-30000}
FTP_PASV_MAX=${FTP_PASV_MAX:-30009}

_NETNS_LIST=()
_NETNS_RM=()
_NETNS_SLUICED_N=0
_XFER_N=0

_netns_die() {
	if declare -F fail >/dev/null; then
		fail "$*"
	fi
	echo "netns: $*" >&2
	exit 1
}

[ -n "$NETNS_DIR" ] || _netns_die "set NETNS_DIR (or source lib.sh first)"
[ "$(id -u)" -eq 0 ] || {
	if declare -F skip >/dev/null; then
		skip "network namespaces need root"
	fi
	_netns_die "network namespaces need root"
}

# ---------------------------------------------------------------- namespaces

# netns_add VAR SUFFIX: makes namespace ${NETNS_PREFIX}SUFFIX with loopback
# up, remembers it for netns_cleanup, and stores its name in VAR.
netns_add() {
	local var=$1 ns=$NETNS_PREFIX$2
	ip netns add "$ns" || _netns_die "ip netns add $ns failed"
	_NETNS_LIST+=("$ns")
	ip -n "$ns" link set lo up
	printf -v "$var" %s "$ns"
}

# netns_veth NS1 IF1 NS2 IF2: a veth pair between two namespaces, both ends up.
netns_veth() {
	ip -n "$1" link add "$2" type veth peer name "$4" netns "$3" ||
		_netns_die "cannot make a veth pair between $1 and $3"
	ip -n "$1" link set "$2" up
	ip -n "$3" link set "$4" up
}

# netns_addr NS IF ADDR/LEN...: addresses; IPv6 ones without DAD.
netns_addr() {
	local ns=$1 dev=$2 a
	shift 2
	for a in "$@"; do
		case $a in
		*:*) ip -n "$ns" addr add "$a" dev "$dev" nodad ;;
		*) ip -n "$ns" addr add "$a" dev "$dev" ;;
		esac
	done
}

netns_pair() {
	netns_add NS_CLIENT c
	netns_add NS_SERVER s
	CLIENT4=10.77.1.1 SERVER4=10.77.1.2
	CLIENT6=fd77:1::1 SERVER6=fd77:1::2
	netns_veth "$NS_CLIENT" eth0 "$NS_SERVER" eth0
	netns_addr "$NS_CLIENT" eth0 "$CLIENT4/24" "$CLIENT6/64"
	netns_addr "$NS_SERVER" eth0 "$SERVER4/24" "$SERVER6/64"
}

netns_gateway() {
	netns_add NS_CLIENT c
	netns_add NS_GW g
	netns_add NS_SERVER s
	CLIENT4=10.77.1.1 GW4_CLIENT=10.77.1.254 GW4_SERVER=10.77.2.254 SERVER4=10.77.2.2
	CLIENT6=fd77:1::1 GW6_CLIENT=fd77:1::fe GW6_SERVER=fd77:2::fe SERVER6=fd77:2::2
	netns_veth "$NS_CLIENT" eth0 "$NS_GW" eth0
	netns_veth "$NS_GW" eth1 "$NS_SERVER" eth0
	netns_addr "$NS_CLIENT" eth0 "$CLIENT4/24" "$CLIENT6/64"
	netns_addr "$NS_GW" eth0 "$GW4_CLIENT/24" "$GW6_CLIENT/64"
	netns_addr "$NS_GW" eth1 "$GW4_SERVER/24" "$GW6_SERVER/64"
	netns_addr "$NS_SERVER" eth0 "$SERVER4/24" "$SERVER6/64"
	ip -n "$NS_CLIENT" route add default via "$GW4_CLIENT"
	ip -n "$NS_CLIENT" -6 route add default via "$GW6_CLIENT"
	ip -n "$NS_SERVER" route add default via "$GW4_SERVER"
	ip -n "$NS_SERVER" -6 route add default via "$GW6_SERVER"
	# These sysctls belong to the gateway's namespace, not to the host.
	ip netns exec "$NS_GW" sysctl -q -w net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 ||
		_netns_die "cannot enable forwarding in $NS_GW"
}

# netns_exec NS CMD...: CMD in the namespace, in the foreground.
netns_exec() {
	local ns=$1
	shift
	ip netns exec "$ns" "$@"
}

# netns_spawn NAME NS CMD...: CMD in the background in the namespace, in a
# session of its own, stdout and stderr in $NETNS_DIR/NAME.out and .err.
# Sets NETNS_PID (CMD's own pid: setsid and ip netns exec both exec). Under
# lib.sh the process group is also registered with its EXIT trap.
netns_spawn() {
	local name=$1 ns=$2
	shift 2
	setsid ip netns exec "$ns" "$@" >"$NETNS_DIR/$name.out" 2>"$NETNS_DIR/$name.err" </dev/null &
	NETNS_PID=$!
	if declare -p _PGIDS >/dev/null 2>&1; then
		_PGIDS+=("$NETNS_PID")
	fi
}

_netns_pids() {
	local ns
	for ns in "${_NETNS_LIST[@]}"; do
		ip netns pids "$ns" 2>/dev/null || true
	done
}

# netns_cleanup: every process in our namespaces gets SIGTERM, SIGKILL 3 s
# later, then the namespaces are deleted (their veths go with them), and
# the directories netns_public_dir made are removed.
netns_cleanup() {
	local pids i
	[ "${#_NETNS_LIST[@]}" -gt 0 ] || [ "${#_NETNS_RM[@]}" -gt 0 ] || return 0
	pids=$(_netns_pids)
	if [ -n "$pids" ]; then
		# shellcheck disable=SC2086
		kill -TERM $pids 2>/dev/null || true
		for i in $(seq 30); do
			pids=$(_netns_pids)
			[ -n "$pids" ] || break
			sleep 0.1
		done
		# shellcheck disable=SC2086
		[ -z "$pids" ] || kill -KILL $pids 2>/dev/null || true
		for i in $(seq 20); do
			[ -n "$(_netns_pids)" ] || break
			sleep 0.1
		done
	fi
	for i in "${_NETNS_LIST[@]}"; do
		ip netns del "$i" 2>/dev/null || true
	done
	_NETNS_LIST=()
	for i in "${_NETNS_RM[@]}"; do
		rm -rf "$i"
	done
	_NETNS_RM=()
}

# netns_public_dir VAR: a new directory under /tmp that every user may
# enter and write (for a process run as another uid, which cannot reach
# the test's private directory), removed by netns_cleanup. Its name is
# stored in VAR.
netns_public_dir() {
	local d
	d=$(mktemp -d /tmp/sluice-public.XXXXXX)
	_NETNS_RM+=("$d")
	chmod 0777 "$d"
	printf -v "$1" %s "$d"
}

_netns_exit() {
	local rc=$?
	trap - EXIT
	set +e
	netns_cleanup
	(exit "$rc")
	_cleanup
}
if declare -F _cleanup >/dev/null; then
	trap _netns_exit EXIT
fi

# netns_wait_listen NS PORT PID WHAT: until something listens on PORT in NS
# (10 s), failing early when PID is gone.
netns_wait_listen() {
	local ns=$1 port=$2 pid=$3 what=$4 i
	for i in $(seq 200); do
		[ -z "$(ip netns exec "$ns" ss -Hltn "sport = :$port")" ] || return 0
		kill -0 "$pid" 2>/dev/null || _netns_die "$what exited before listening on port $port: $(tail -n 3 "$NETNS_DIR"/"${what%% *}".err 2>/dev/null)"
		sleep 0.05
	done
	_netns_die "$what is not listening on port $port after 10 s"
}

# netns_url PROTO HOST [PORT]: a URL base, IPv6 in brackets. HOST may be
# IPV4:PORT already (one colon); two or more colons make it IPv6.
netns_url() {
	local h=$2
	case $h in *:*:*) h="[$h]" ;; esac
	echo "$1://$h${3:+:$3}"
}

# netns_has_sluice_table NS: true when table inet sluice exists in NS.
netns_has_sluice_table() {
	ip netns exec "$1" nft list tables 2>/dev/null | grep -qE '^table inet sluice$'
}

# ------------------------------------------------------------------ servers

netns_start_nginx() {
	local ns=$1 nginx
	nginx=$(command -v nginx || echo /usr/sbin/nginx)
	[ -x "$nginx" ] || _netns_die "nginx is not installed"
	NGINX_DIR=$NETNS_DIR/nginx
	NGINX_WWW=$NGINX_DIR/www
	NGINX_ACCESS=$NGINX_DIR/logs/access.log
	mkdir -p "$NGINX_WWW/dl" "$NGINX_WWW/up" "$NGINX_DIR/tmp" "$NGINX_DIR/logs"
	openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=test -days 1 \
		-keyout "$NGINX_DIR/key.pem" -out "$NGINX_DIR/cert.pem" >/dev/null 2>&1 ||
		_netns_die "openssl could not make a certificate"
	# Workers run as root: the default "nobody" cannot enter the test's
	# private directory.
	cat >"$NGINX_DIR/nginx.conf" <<CONF
user root root;
daemon off;
master_process on;
worker_processes 2;
pid $NGINX_DIR/nginx.pid;
error_log $NGINX_DIR/logs/error.log warn;
events { worker_connections 256; }
http {
	log_format sluice '\$remote_addr \$request_method \$request_uri \$status \$request_length \$body_bytes_sent';
	access_log $NGINX_ACCESS sluice;
	client_body_temp_path $NGINX_DIR/tmp/body;
	proxy_temp_path $NGINX_DIR/tmp/proxy;
	fastcgi_temp_path $NGINX_DIR/tmp/fastcgi;
	uwsgi_temp_path $NGINX_DIR/tmp/uwsgi;
	scgi_temp_path $NGINX_DIR/tmp/scgi;
	sendfile on;
	default_type application/octet-stream;
	ssl_certificate $NGINX_DIR/cert.pem;
	ssl_certificate_key $NGINX_DIR/key.pem;
	server {
		listen 80;
		listen [::]:80;
		listen 8080;
		listen [::]:8080;
		listen 443 ssl;
		listen [::]:443 ssl;
		root $NGINX_WWW;
		client_max_body_size 0;
		location /up/ {
			dav_methods PUT;
		}
		location /slow/ {
			alias $NGINX_WWW/dl/;
			limit_rate 2m;
		}
	}
}
CONF
	netns_spawn nginx "$ns" "$nginx" -p "$NGINX_DIR" -c "$NGINX_DIR/nginx.conf" -e "$NGINX_DIR/logs/error.log"
	NGINX_PID=$NETNS_PID
	netns_wait_listen "$ns" 80 "$NGINX_PID" nginx
	netns_wait_listen "$ns" 443 "$NGINX_PID" nginx
	netns_wait_listen "$ns" 8080 "$NGINX_PID" nginx
}

netns_start_vsftpd() {
	local ns=$1 vsftpd ftpuser
	vsftpd=$(command -v vsftpd || echo /usr/sbin/vsftpd)
	[ -x "$vsftpd" ] || _netns_die "vsftpd is not installed"
	ftpuser=ftp
	getent passwd ftp >/dev/null || ftpuser=nobody
	FTP_DIR=$NETNS_DIR/ftp
	FTP_ROOT=$FTP_DIR/root
	# vsftpd refuses a chroot it can write to: the root belongs to root,
	# only up/ to the anonymous user. secure_chroot_dir must be empty and
	# not writable by others.
	mkdir -p "$FTP_ROOT/dl" "$FTP_ROOT/up" "$FTP_DIR/empty"
	chmod 0755 "$FTP_ROOT" "$FTP_ROOT/dl" "$FTP_DIR/empty"
	chown "$ftpuser" "$FTP_ROOT/up"
	chmod 0755 "$FTP_ROOT/up"
	cat >"$FTP_DIR/vsftpd.conf" <<CONF
listen=NO
listen_ipv6=YES
listen_port=21
background=NO
anonymous_enable=YES
local_enable=NO
no_anon_password=YES
ftp_username=$ftpuser
anon_root=$FTP_ROOT
write_enable=YES
anon_upload_enable=YES
anon_umask=022
pasv_enable=YES
pasv_min_port=$FTP_PASV_MIN
pasv_max_port=$FTP_PASV_MAX
port_enable=YES
connect_from_port_20=YES
ftp_data_port=20
secure_chroot_dir=$FTP_DIR/empty
seccomp_sandbox=NO
xferlog_enable=YES
xferlog_std_format=NO
vsftpd_log_file=$FTP_DIR/vsftpd.log
log_ftp_protocol=YES
max_clients=50
max_per_ip=50
data_connection_timeout=120
idle_session_timeout=120
CONF
	netns_spawn vsftpd "$ns" "$vsftpd" "$FTP_DIR/vsftpd.conf"
	VSFTPD_PID=$NETNS_PID
	netns_wait_listen "$ns" 21 "$VSFTPD_PID" vsftpd
}

# ---------------------------------------------------------------- transfers

# netns_payload NAME SIZE: $NETNS_DIR/data/NAME, SIZE random bytes (head -c
# suffixes: K, M), offered as /dl/NAME by nginx and vsftpd when they run
# (hard links, so no copy). Sets PAYLOAD, PAYLOAD_SIZE, PAYLOAD_SHA.
netns_payload() {
	local name=$1 d
	mkdir -p "$NETNS_DIR/data"
	PAYLOAD=$NETNS_DIR/data/$name
	head -c "$2" /dev/urandom >"$PAYLOAD"
	chmod 0644 "$PAYLOAD"
	PAYLOAD_SIZE=$(stat -c %s "$PAYLOAD")
	PAYLOAD_SHA=$(sha256sum <"$PAYLOAD" | cut -d' ' -f1)
	for d in "${NGINX_WWW:-}" "${FTP_ROOT:-}"; do
		[ -n "$d" ] || continue
		ln -f "$PAYLOAD" "$d/dl/$name"
	done
}

# netns_payload_rm NAME: removes the payload and its links.
netns_payload_rm() {
	rm -f "$NETNS_DIR/data/$1" "${NGINX_WWW:-/nonexistent}/dl/$1" "${FTP_ROOT:-/nonexistent}/dl/$1"
}

# netns_xfer NS PROTO DIR NAME HOST [CURL ARGS...]: one curl transfer from
# namespace NS, of payload NAME (see netns_payload), to or from the server
# at HOST. PROTO: http, https, ftp (passive) or ftp-active; DIR: up or down.
# An upload lands in the server's up/ under a new name, a download in
# $NETNS_DIR/client/; both are compared with the payload's sha256 and
# removed. Sets:
#	XFER_OK      yes or no
#	XFER_MSG     what went wrong (empty when intact)
#	XFER_RC      curl's exit status; XFER_CODE its response code
#	XFER_BYTES   bytes that arrived; XFER_SHA their sha256
#	XFER_SECS    curl's total time; XFER_MIBS throughput in MiB/s
# Returns 0 when intact. XFER_TIMEOUT (default 300) bounds curl; XFER_PORT
# sets a port other than the protocol's.
netns_xfer() {
	local ns=$1 proto=$2 dir=$3 name=$4 host=$5 scheme url dest rdir opts=() w out speed
	shift 5
	_XFER_N=$((_XFER_N + 1))
	local uname=$name-$proto-$dir-$_XFER_N
	case $proto in
	http) scheme=http rdir=$NGINX_WWW ;;
	https) scheme=https rdir=$NGINX_WWW opts+=(-k) ;;
	ftp) scheme=ftp rdir=$FTP_ROOT opts+=(--ftp-pasv) ;;
	ftp-active) scheme=ftp rdir=$FTP_ROOT opts+=(--ftp-port -) ;;
	*) _netns_die "netns_xfer: unknown protocol $proto" ;;
	esac
	mkdir -p "$NETNS_DIR/client"
	if [ "$dir" = up ]; then
		url=$(netns_url "$scheme" "$host" "${XFER_PORT:-}")/up/$uname
		dest=$rdir/up/$uname
		opts+=(-T "$NETNS_DIR/data/$name" -o /dev/null)
	else
		url=$(netns_url "$scheme" "$host" "${XFER_PORT:-}")/dl/$name
		dest=$NETNS_DIR/client/$uname
		opts+=(-o "$dest")
	fi
	XFER_OK=no XFER_MSG='' XFER_RC=0 XFER_CODE=- XFER_BYTES=0 XFER_SHA=- XFER_SECS=0 XFER_MIBS=0
	w='%{response_code} %{speed_upload} %{speed_download} %{time_total}'
	out=$(ip netns exec "$ns" curl -sS -g --connect-timeout 10 --max-time "${XFER_TIMEOUT:-300}" \
		-w "$w" "${opts[@]}" "$@" "$url" 2>"$NETNS_DIR/curl-$_XFER_N.err") || XFER_RC=$?
	read -r XFER_CODE speed_up speed_down XFER_SECS <<<"$out" || true
	speed=${speed_down:-0}
	[ "$dir" = up ] && speed=${speed_up:-0}
	XFER_MIBS=$(awk -v s="$speed" 'BEGIN { printf "%.1f", s / 1048576 }')
	if [ -f "$dest" ]; then
		XFER_BYTES=$(stat -c %s "$dest")
		XFER_SHA=$(sha256sum <"$dest" | cut -d' ' -f1)
	fi
	rm -f "$dest"
	if [ "$XFER_RC" -ne 0 ]; then
		XFER_MSG="curl exited $XFER_RC: $(head -c 300 "$NETNS_DIR/curl-$_XFER_N.err")"
	elif [ "$XFER_SHA" != "$(sha256sum <"$NETNS_DIR/data/$name" | cut -d' ' -f1)" ]; then
		XFER_MSG="sha256 differs: $XFER_BYTES bytes arrived of $(stat -c %s "$NETNS_DIR/data/$name") (response $XFER_CODE)"
	else
		XFER_OK=yes
	fi
	rm -f "$NETNS_DIR/curl-$_XFER_N.err"
	[ "$XFER_OK" = yes ]
}

# ------------------------------------------------------------ sluiced, flows

# netns_start_sluiced NS WAIT_TEXT ARGS...: sluiced in NS with a private
# filter socket. Waits (15 s) until table inet sluice exists in NS and the
# daemon's log contains WAIT_TEXT (an extended regex; empty: the table
# only); fails with the daemon's last words if it exits first. Sets
# SLUICED_PID, SLUICED_LOG, FILTER_SOCK (lib.sh's names, so its helpers work)
# and SLUICED_NS.
netns_start_sluiced() {
	local ns=$1 text=$2 i
	shift 2
	_NETNS_SLUICED_N=$((_NETNS_SLUICED_N + 1))
	FILTER_SOCK=$NETNS_DIR/filter-ns$_NETNS_SLUICED_N.sock
	# The tests check that flows name their owner; on a loaded machine (and
	# under the sanitizers) finding it can take longer than the default
	# 100 ms wait, after which a flow goes on without one.
	netns_spawn "sluiced-ns$_NETNS_SLUICED_N" "$ns" "$SLUICED" --filter-socket "$FILTER_SOCK" \
		--control "$NETNS_DIR/control-ns$_NETNS_SLUICED_N.sock" --owner-wait 3000 "$@"
	SLUICED_PID=$NETNS_PID
	SLUICED_LOG=$NETNS_DIR/sluiced-ns$_NETNS_SLUICED_N.err
	SLUICED_NS=$ns
	for i in $(seq 300); do
		if netns_has_sluice_table "$ns" &&
			{ [ -z "$text" ] || grep -qE -- "$text" "$SLUICED_LOG"; }; then
			return 0
		fi
		if ! kill -0 "$SLUICED_PID" 2>/dev/null; then
			wait "$SLUICED_PID" 2>/dev/null && i=0 || i=$?
			_netns_die "sluiced $* exited (status $i) before intercepting: $(tail -n 3 "$SLUICED_LOG")"
		fi
		sleep 0.05
	done
	_netns_die "sluiced $* did not install its table${text:+ and say \"$text\"} within 15 s: $(tail -n 3 "$SLUICED_LOG")"
}

# netns_start_filter [ARGS...]: sluice-passthrough on FILTER_SOCK, in the
# daemon's namespace (so cleanup finds it), until it says it is connected.
# Sets FILTER_PID, FILTER_LOG.
netns_start_filter() {
	local i name=filter-ns$_NETNS_SLUICED_N
	for i in $(seq 200); do
		[ -S "$FILTER_SOCK" ] && break
		kill -0 "$SLUICED_PID" 2>/dev/null || _netns_die "sluiced exited before making $FILTER_SOCK"
		sleep 0.05
	done
	[ -S "$FILTER_SOCK" ] || _netns_die "sluiced did not make its filter socket $FILTER_SOCK"
	netns_spawn "$name" "$SLUICED_NS" "$PASSTHROUGH" --socket "$FILTER_SOCK" "$@"
	FILTER_PID=$NETNS_PID
	FILTER_LOG=$NETNS_DIR/$name.err
	for i in $(seq 200); do
		grep -qF "sluice-passthrough: connected to" "$FILTER_LOG" 2>/dev/null && return 0
		kill -0 "$FILTER_PID" 2>/dev/null || break
		sleep 0.05
	done
	_netns_die "sluice-passthrough did not connect to $FILTER_SOCK: $(tail -n 3 "$FILTER_LOG")"
}

# flows_mark: later daemon_flows / filter_flows calls report only flows that
# opened after this point.
flows_mark() {
	FLOWS_SD_MARK=$(wc -l <"$SLUICED_LOG")
	FLOWS_PT_MARK=$(wc -l <"$FILTER_LOG")
}

# daemon_flows: one line per flow sluiced opened since flows_mark, in order:
# "ID DST OUT IN APP" (OUT and IN are "-" while it is open), from its lines
#	flow S:G: open: APP -> DST, filter N (NAME)
#	flow S:G: closed: out N bytes, in M bytes, T ms
daemon_flows() {
	awk -v from="${FLOWS_SD_MARK:-0}" '
	NR > from && match($0, /flow [0-9]+:[0-9]+: open: [^ ]+ -> [^ ,]+/) {
		split(substr($0, RSTART, RLENGTH), a, " ")
		order[++n] = a[2]; dst[a[2]] = a[6]; app[a[2]] = a[4]
	}
	NR > from && match($0, /flow [0-9]+:[0-9]+: closed: out [0-9]+ bytes, in [0-9]+ bytes/) {
		split(substr($0, RSTART, RLENGTH), a, " ")
		out[a[2]] = a[5]; in_[a[2]] = a[8]
	}
	END {
		for (i = 1; i <= n; i++) {
			id = order[i]
			print id, dst[id], (id in out) ? out[id] : "-", (id in in_) ? in_[id] : "-", app[id]
		}
	}' "$SLUICED_LOG"
}

# filter_flows: one line per flow sluice-passthrough saw since flows_mark:
# "ID DST OUT IN UID PID COMM" from its lines
#	sluice-passthrough: flow HEX open: SRC -> DST uid U pid P comm C
#	sluice-passthrough: flow HEX closed: out N in M bytes
# A flow whose open line is missing is still listed, with DST and the rest "?".
filter_flows() {
	awk -v from="${FLOWS_PT_MARK:-0}" '
	NR <= from { next }
	match($0, /flow [0-9a-f]+ open: .*/) {
		split(substr($0, RSTART, RLENGTH), a, " ")
		id = a[2]
		if (!(id in seen)) { seen[id] = 1; order[++n] = id }
		dst[id] = a[6]
		for (k = 7; k < length(a); k++) {
			if (a[k] == "uid") uid[id] = a[k + 1]
			if (a[k] == "pid") pid[id] = a[k + 1]
			if (a[k] == "comm") comm[id] = a[k + 1]
		}
	}
	match($0, /flow [0-9a-f]+ closed: out [0-9]+ in [0-9]+ bytes/) {
		split(substr($0, RSTART, RLENGTH), a, " ")
		id = a[2]
		if (!(id in seen)) { seen[id] = 1; order[++n] = id }
		out[id] = a[5]; in_[id] = a[7]
	}
	END {
		for (i = 1; i <= n; i++) {
			id = order[i]
			print id, (id in dst) ? dst[id] : "?", (id in out) ? out[id] : "-", \
				(id in in_) ? in_[id] : "-", (id in uid) ? uid[id] : "?", \
				(id in pid) ? pid[id] : "?", (id in comm) ? comm[id] : "?"
		}
	}' "$FILTER_LOG"
}

# flows_wait_closed N SECONDS: until both the daemon and the filter have
# logged at least N closed flows since flows_mark, and every flow the
# daemon opened since then is closed. Returns 1 on timeout.
flows_wait_closed() {
	local n=$1 end=$((SECONDS + $2)) d f o
	while :; do
		d=$(daemon_flows | awk '$3 != "-"' | wc -l)
		o=$(daemon_flows | awk '$3 == "-"' | wc -l)
		f=$(filter_flows | awk '$3 != "-"' | wc -l)
		[ "$d" -ge "$n" ] && [ "$f" -ge "$n" ] && [ "$o" -eq 0 ] && return 0
		[ "$SECONDS" -lt "$end" ] || return 1
		sleep 0.1
	done
}

# flows_check_transfer DIR SIZE DST [TLS]: after one HTTP(S) transfer of
# SIZE payload bytes (DIR up or down) to DST (ADDR:PORT as the daemon prints
# it), checks that the daemon opened exactly one flow since flows_mark, to
# DST, that the filter saw one flow with the same byte counts, and that its
# payload direction carries between SIZE and SIZE + 16 KiB (headers; with
# TLS non-empty also SIZE/64 for the records' headers and tags) while the
# other carries less than 16 KiB. Sets FLOWS_MSG on failure, FLOWS_SEEN
# (flows the filter saw) and FLOWS_OUT, FLOWS_IN. Returns 0 when all hold.
flows_check_transfer() {
	local dir=$1 size=$2 want=$3 tls=${4:-} d f id dst out in fid fdst fout fin pay other slack=16384
	[ -z "$tls" ] || slack=$((slack + size / 64))
	FLOWS_MSG='' FLOWS_SEEN=0 FLOWS_OUT=- FLOWS_IN=-
	if ! flows_wait_closed 1 15; then
		FLOWS_MSG="no closed flow after 15 s; daemon: $(daemon_flows | tr '\n' ';') filter: $(filter_flows | tr '\n' ';')"
		return 1
	fi
	d=$(daemon_flows)
	f=$(filter_flows)
	FLOWS_SEEN=$(printf '%s\n' "$f" | grep -c . || true)
	if [ "$(printf '%s\n' "$d" | grep -c .)" -ne 1 ]; then
		FLOWS_MSG="daemon opened $(printf '%s\n' "$d" | grep -c .) flows, expected 1: $(printf '%s' "$d" | tr '\n' ';')"
		return 1
	fi
	if [ "$FLOWS_SEEN" -ne 1 ]; then
		FLOWS_MSG="filter saw $FLOWS_SEEN flows, expected 1: $(printf '%s' "$f" | tr '\n' ';')"
		return 1
	fi
	read -r id dst out in _ <<<"$d"
	read -r fid fdst fout fin _ <<<"$f"
	FLOWS_OUT=$fout FLOWS_IN=$fin
	if [ "$dst" != "$want" ]; then
		FLOWS_MSG="daemon flow $id goes to $dst, expected $want"
		return 1
	fi
	if [ "$fdst" != "?" ] && [ "$fdst" != "$want" ]; then
		FLOWS_MSG="filter flow $fid goes to $fdst, expected $want"
		return 1
	fi
	if [ "$out" != "$fout" ] || [ "$in" != "$fin" ]; then
		FLOWS_MSG="daemon counted out $out in $in, filter out $fout in $fin"
		return 1
	fi
	pay=$out other=$in
	[ "$dir" = up ] || pay=$in other=$out
	if [ "$pay" -lt "$size" ] || [ "$pay" -gt $((size + slack)) ] || [ "$other" -ge 16384 ]; then
		FLOWS_MSG="filter saw out $fout in $fin bytes for a $size-byte ${dir}load"
		return 1
	fi
}

# netns_http_suite PROTO HOST SIZE...: for each SIZE a payload, uploaded and
# downloaded with netns_xfer over PROTO (http or https) to HOST from
# NS_CLIENT through the running sluiced and filter, each checked for
# integrity and with flows_check_transfer; fails at the first fault.
netns_http_suite() {
	local proto=$1 host=$2 size dir port=80 dst
	shift 2
	[ "$proto" = http ] || port=443
	case $host in *:*) dst="[$host]:$port" ;; *) dst=$host:$port ;; esac
	for size in "$@"; do
		netns_payload "p$size" "$size"
		for dir in up down; do
			flows_mark
			netns_xfer "$NS_CLIENT" "$proto" "$dir" "p$size" "$host" ||
				_netns_die "$proto ${dir}load of $size ($PAYLOAD_SIZE bytes) to $host: $XFER_MSG"
			flows_check_transfer "$dir" "$PAYLOAD_SIZE" "$dst" "${proto#http}" ||
				_netns_die "$proto ${dir}load of $size to $host: $FLOWS_MSG"
			echo "$proto ${dir}load $size -> $dst: sha256 equal, filter saw out $FLOWS_OUT in $FLOWS_IN, $XFER_SECS s, $XFER_MIBS MiB/s"
		done
		netns_payload_rm "p$size"
	done
}

# The ports the tests and the demo intercept: HTTP, HTTPS, FTP control and
# vsftpd's passive data ports.
INTERCEPT_PORTS="80,443,21,$FTP_PASV_MIN-$FTP_PASV_MAX"

# ---------------------------------------------------------------- self-test

_netns_selftest() {
	local p proto dir v host names ns
	need_cmd() {
		command -v "$1" >/dev/null || { echo "netns: skipped: $1 is not installed"; exit 77; }
	}
	for p in ip nginx vsftpd curl openssl sha256sum ss setsid; do need_cmd "$p"; done
	echo "netns: prefix $NETNS_PREFIX, files in $NETNS_DIR"

	netns_pair
	[ "$(ip netns exec "$NS_CLIENT" ip -br link | awk '{ sub(/@.*/, "", $1); print $1 }' | sort | tr '\n' ' ')" = "eth0 lo " ] ||
		_netns_die "client links: $(ip netns exec "$NS_CLIENT" ip -br link)"
	netns_start_nginx "$NS_SERVER"
	netns_start_vsftpd "$NS_SERVER"
	netns_payload p1 1M
	netns_payload p2 3M
	for proto in http https ftp ftp-active; do
		for v in 4 6; do
			host=$SERVER4
			[ "$v" = 4 ] || host=$SERVER6
			case $proto in ftp*) [ "$v" = 4 ] || continue ;; esac
			for dir in up down; do
				for p in p1 p2; do
					netns_xfer "$NS_CLIENT" "$proto" "$dir" "$p" "$host" ||
						_netns_die "$proto $dir $p IPv$v: $XFER_MSG"
					echo "netns: $proto IPv$v ${dir}load $p: intact, $XFER_MIBS MiB/s"
				done
			done
		done
	done
	grep -q "^$CLIENT4 PUT /up/" "$NGINX_ACCESS" || _netns_die "nginx did not log $CLIENT4"
	grep -q "^$CLIENT6 GET /dl/" "$NGINX_ACCESS" || _netns_die "nginx did not log $CLIENT6"
	names=("${_NETNS_LIST[@]}")
	netns_cleanup
	for ns in "${names[@]}"; do
		! ip netns list | grep -qw "$ns" || _netns_die "namespace $ns still exists"
	done
	[ -z "$(pgrep -f "$NETNS_DIR" || true)" ] || _netns_die "processes left: $(pgrep -af "$NETNS_DIR")"
	echo "netns: pair topology, nginx and vsftpd work; cleanup left nothing"

	netns_gateway
	[ "$(ip netns exec "$NS_GW" sysctl -n net.ipv4.ip_forward)" = 1 ] || _netns_die "gateway does not forward"
	[ "$(ip netns exec "$NS_CLIENT" sysctl -n net.ipv4.ip_forward)" = 0 ] || _netns_die "client forwards"
	[ "$(ip netns exec "$NS_SERVER" sysctl -n net.ipv6.conf.all.forwarding)" = 0 ] || _netns_die "server forwards"
	NGINX_WWW='' FTP_ROOT=''
	netns_start_nginx "$NS_SERVER"
	netns_payload p1 1M
	for host in "$SERVER4" "$SERVER6"; do
		for dir in up down; do
			netns_xfer "$NS_CLIENT" http "$dir" p1 "$host" || _netns_die "gateway http $dir $host: $XFER_MSG"
		done
	done
	grep -q "^$CLIENT4 PUT /up/" "$NGINX_ACCESS" || _netns_die "server did not see $CLIENT4: $(cat "$NGINX_ACCESS")"
	grep -q "^$CLIENT6 PUT /up/" "$NGINX_ACCESS" || _netns_die "server did not see $CLIENT6: $(cat "$NGINX_ACCESS")"
	echo "netns: gateway topology forwards IPv4 and IPv6; the server sees the client's addresses"
}

if [ -n "$_NETNS_SELFTEST" ]; then
	_netns_selftest_exit() {
		local rc=$?
		trap - EXIT
		set +e
		netns_cleanup
		[ -n "${KEEP_TMP:-}" ] || rm -rf "$NETNS_DIR"
		exit "$rc"
	}
	trap _netns_selftest_exit EXIT
	trap 'exit 143' TERM
	trap 'exit 130' INT
	_netns_selftest
fi
