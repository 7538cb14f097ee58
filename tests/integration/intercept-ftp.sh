#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# timeout: 900
#
# Intercept mode, FTP: sluiced --intercept 80,443,21 plus vsftpd's passive
# data ports, in a client namespace with sluice-passthrough attached; curl
# in that namespace uploads (-T) and downloads files of 1 KiB, 499 KiB,
# 501 KiB, 10 MiB and 200 MiB to and from vsftpd (anonymous) in a server
# namespace, in passive and in active mode. Every file must arrive with the
# same sha256.
#
# What the filter sees:
#  - passive (EPSV): curl opens both connections, to port 21 and to a port
#    in the passive range, so both are locally originated and intercepted:
#    two flows per transfer. The data flow carries exactly the file in its
#    payload direction and nothing in the other; the control flow only
#    commands and replies.
#  - active (curl --ftp-port -, EPRT): the control connection is locally
#    originated and intercepted (one flow). The data connection is opened
#    by the server, from its port 20 to a port curl listens on: to the
#    client's host it is an incoming connection, which the output hook of
#    intercept mode never sees, so the file's bytes pass unfiltered. The
#    filter does see the EPRT command (and could rewrite or refuse it). The
#    address curl announces is its control socket's local address, the
#    client's own, because a redirected socket keeps its original addresses.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/netns.sh"
need curl sha256sum nft

netns_pair
netns_start_vsftpd "$NS_SERVER"
netns_start_sluiced "$NS_CLIENT" intercepting --intercept "$INTERCEPT_PORTS"
netns_start_filter

# check_ftp_flows MODE DIR SIZE: the flows since flows_mark, as above.
check_ftp_flows() {
	local mode=$1 dir=$2 size=$3 want=2 d f what="$1 ${2}load of $3 bytes"
	local ctl data nd nf out in pd pf
	[ "$mode" = ftp ] || want=1
	flows_wait_closed "$want" 15 ||
		fail "$what: flows not closed after 15 s; daemon: $(daemon_flows | tr '\n' ';') filter: $(filter_flows | tr '\n' ';')"
	d=$(daemon_flows)
	f=$(filter_flows)
	nd=$(printf '%s\n' "$d" | grep -c .)
	nf=$(printf '%s\n' "$f" | grep -c .)
	[ "$nd" -eq "$want" ] || fail "$what: daemon opened $nd flows, expected $want: $(printf '%s' "$d" | tr '\n' ';')"
	[ "$nf" -eq "$want" ] || fail "$what: filter saw $nf flows, expected $want: $(printf '%s' "$f" | tr '\n' ';')"
	ctl=$(printf '%s\n' "$d" | awk -v a="$SERVER4:21" '$2 == a')
	[ "$(printf '%s\n' "$ctl" | grep -c .)" -eq 1 ] || fail "$what: no single control flow to $SERVER4:21: $(printf '%s' "$d" | tr '\n' ';')"
	read -r _ _ out in _ <<<"$ctl"
	[ "$out" -lt 16384 ] && [ "$in" -lt 16384 ] || fail "$what: control flow carried out $out in $in bytes"
	if [ "$mode" = ftp ]; then
		data=$(printf '%s\n' "$d" | awk -v h="$SERVER4" -v lo="$FTP_PASV_MIN" -v hi="$FTP_PASV_MAX" '
			{ n = split($2, a, ":"); if (a[1] == h && a[2] + 0 >= lo && a[2] + 0 <= hi) print }')
		[ "$(printf '%s\n' "$data" | grep -c .)" -eq 1 ] ||
			fail "$what: no single data flow to $SERVER4:$FTP_PASV_MIN-$FTP_PASV_MAX: $(printf '%s' "$d" | tr '\n' ';')"
		read -r _ _ out in _ <<<"$data"
		if [ "$dir" = up ]; then
			[ "$out" -eq "$size" ] && [ "$in" -eq 0 ] || fail "$what: data flow carried out $out in $in bytes"
		else
			[ "$in" -eq "$size" ] && [ "$out" -eq 0 ] || fail "$what: data flow carried out $out in $in bytes"
		fi
	fi
	# The filter's byte counts per flow are the daemon's.
	pd=$(printf '%s\n' "$d" | awk '{ print $3, $4 }' | sort)
	pf=$(printf '%s\n' "$f" | awk '{ print $3, $4 }' | sort)
	[ "$pd" = "$pf" ] || fail "$what: daemon counted $(echo "$pd" | tr '\n' ';'), filter $(echo "$pf" | tr '\n' ';')"
	# Where the filter names destinations, they are the daemon's.
	if ! printf '%s\n' "$f" | awk '$2 == "?" { x = 1 } END { exit !x }'; then
		[ "$(printf '%s\n' "$d" | awk '{ print $2 }' | sort)" = "$(printf '%s\n' "$f" | awk '{ print $2 }' | sort)" ] ||
			fail "$what: destinations differ: daemon $(printf '%s' "$d" | tr '\n' ';') filter $(printf '%s' "$f" | tr '\n' ';')"
	fi
}

for size in 1K 499K 501K 10M 200M; do
	netns_payload "p$size" "$size"
	for mode in ftp ftp-active; do
		for dir in up down; do
			flows_mark
			netns_xfer "$NS_CLIENT" "$mode" "$dir" "p$size" "$SERVER4" ||
				fail "$mode ${dir}load of $size: $XFER_MSG"
			check_ftp_flows "$mode" "$dir" "$PAYLOAD_SIZE"
			log "$mode ${dir}load $size: sha256 equal, flows: $(daemon_flows | awk '{ printf "%s%s out %s in %s", s, $2, $3, $4; s = "; " }'), $XFER_SECS s, $XFER_MIBS MiB/s"
		done
	done
	netns_payload_rm "p$size"
done
# vsftpd saw both modes.
grep -q '"EPRT\|"PORT' "$FTP_DIR/vsftpd.log" || fail "vsftpd never got EPRT/PORT: active mode was not used"
grep -q '"EPSV\|"PASV' "$FTP_DIR/vsftpd.log" || fail "vsftpd never got EPSV/PASV: passive mode was not used"
stop_sluiced
! netns_has_sluice_table "$NS_CLIENT" || fail "table inet sluice is still there after sluiced exited"
