#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Uploads and downloads over HTTP, HTTPS and FTP, intercepted by sluiced
# and checked end to end.
#
#   scripts/demo.sh BUILD
#
# Makes a throwaway pair of network namespaces joined by a veth (client
# 10.77.1.1, server 10.77.1.2; tests/integration/netns.sh builds it), runs
# nginx (HTTP and HTTPS, with a self-signed certificate made on the spot)
# and vsftpd in the server namespace, and in the client namespace
# sluiced --intercept with sluice-passthrough attached, so every byte of
# every intercepted connection makes a round trip through the filter. curl
# in the client namespace then uploads and downloads random files over each
# protocol (FTP in passive mode: control and data connections are both
# intercepted), knowing nothing of sluiced: nftables redirects its
# connections. For each transfer the demo prints whether the sha256 of what
# arrived equals what was sent, the throughput curl measured, and how many
# flows the filter saw.
#
# Exit status: 0 when every transfer arrived intact and the filter saw its
# bytes; 1 otherwise. Needs root (namespaces, nftables). Everything it makes
# (namespaces, processes, files) is removed at exit.
#
# Environment: SIZES (default "1M 100M", head -c suffixes), KEEP=1 (keep
# the temporary directory).
set -euo pipefail

if [ $# -ne 1 ]; then
	echo "usage: $0 BUILD" >&2
	exit 2
fi
build=$1
SLUICED=$build/sluiced
PASSTHROUGH=$build/sluice-passthrough
sizes=${SIZES:-1M 100M}
top=$(cd "$(dirname "$0")/.." && pwd)

if [ "$(id -u)" -ne 0 ]; then
	echo "demo: run as root: it makes network namespaces and nftables rules" >&2
	exit 1
fi
for tool in curl nginx vsftpd nft openssl ip sha256sum ss setsid; do
	if ! command -v "$tool" >/dev/null; then
		echo "demo: $tool is missing (scripts/deps.sh installs it)" >&2
		exit 1
	fi
done
for bin in "$SLUICED" "$PASSTHROUGH"; do
	if [ ! -x "$bin" ]; then
		echo "demo: $bin not found; build first (meson setup $build && ninja -C $build)" >&2
		exit 1
	fi
done

NETNS_DIR=$(mktemp -d /tmp/sluice-demo.XXXXXX)
NETNS_PREFIX=sl-demo-$$-

cleanup()
{
	local rc=$?

	trap - EXIT INT TERM
	set +e
	netns_cleanup
	if [ "${KEEP:-0}" = 1 ]; then
		echo "demo: files kept in $NETNS_DIR" >&2
	else
		rm -rf "$NETNS_DIR"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# shellcheck source=tests/integration/netns.sh
. "$top/tests/integration/netns.sh"

netns_pair
netns_start_nginx "$NS_SERVER"
netns_start_vsftpd "$NS_SERVER"
netns_start_sluiced "$NS_CLIENT" intercepting --intercept "$INTERCEPT_PORTS"
netns_start_filter

echo "sluice demo: curl in $NS_CLIENT ($CLIENT4) -> nginx and vsftpd in $NS_SERVER ($SERVER4)"
echo "  intercepted by: sluiced --intercept $INTERCEPT_PORTS, every byte through sluice-passthrough"
echo
fmt='  %-8s %9s  %-9s %-13s %6s  %s\n'
# shellcheck disable=SC2059
printf "$fmt" protocol size direction "sha256 match" "MiB/s" "flows seen by filter"

rows=0
bad=0
problems=()
for size in $sizes; do
	netns_payload "p$size" "$size"
	label=$(awk -v b="$PAYLOAD_SIZE" 'BEGIN { printf (b % 1048576 ? "%.1f MiB" : "%d MiB"), b / 1048576 }')
	for proto in http https ftp; do
		for dir in up down; do
			flows_mark
			ok=yes
			netns_xfer "$NS_CLIENT" "$proto" "$dir" "p$size" "$SERVER4" || ok=no
			want=1
			[ "$proto" != ftp ] || want=2
			# Every flow the transfer made is closed shortly after curl
			# ends; the filter prints its counts then.
			flows_wait_closed "$want" 10 || true
			seen=$(filter_flows | awk '$3 != "-"' | wc -l)
			# Bytes the filter saw in the payload's direction, over
			# all of the transfer's flows.
			col=3 way=out
			[ "$dir" = up ] || col=4 way=in
			bytes=$(filter_flows | awk -v c="$col" '$c != "-" { s += $c } END { print s + 0 }')
			name=$(echo "$proto" | tr '[:lower:]' '[:upper:]')
			rows=$((rows + 1))
			if [ "$ok" != yes ]; then
				bad=$((bad + 1))
				problems+=("$name ${dir}load of $label: $XFER_MSG")
			elif [ "$seen" -ne "$want" ] || [ "$bytes" -lt "$PAYLOAD_SIZE" ]; then
				bad=$((bad + 1))
				ok="yes (filter?)"
				problems+=("$name ${dir}load of $label: the filter saw $seen flows (expected $want) and $bytes bytes $way (payload $PAYLOAD_SIZE)")
			fi
			# shellcheck disable=SC2059
			printf "$fmt" "$name" "$label" "${dir}load" "$ok" "$XFER_MIBS" \
				"$seen$([ "$proto" != ftp ] || echo " (control + data)")"
		done
	done
	netns_payload_rm "p$size"
done
echo "  (FTP in passive mode; throughput as curl measured it)"
echo

if [ "$bad" -ne 0 ]; then
	echo "demo: FAIL: $bad of $rows transfers were not intact or not seen by the filter:" >&2
	printf '  %s\n' "${problems[@]}" >&2
	echo "demo: last lines of sluiced's log:" >&2
	tail -n 8 "$SLUICED_LOG" | sed 's/^/  /' >&2
	echo "demo: last lines of sluice-passthrough's log:" >&2
	tail -n 4 "$FILTER_LOG" | sed 's/^/  /' >&2
	exit 1
fi
flows=$(grep -c ': open: ' "$SLUICED_LOG" || true)
echo "sluice demo: all $rows transfers intact; sluiced filtered $flows flows through sluice-passthrough"
