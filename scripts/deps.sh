#!/bin/sh
# Install the Debian packages sluice needs to build, test and demo, but only
# those that are missing: a machine that has them all is not touched, and
# `apt-get update` runs only when something must be installed.
set -eu

PACKAGES="
	meson ninja-build pkg-config gcc clang
	libcmocka-dev libnftables-dev libmnl-dev
	curl nginx-light socat haproxy iperf3 openssl valgrind
	python3 iproute2 procps psmisc nftables vsftpd util-linux tmux
	scdoc man-db
"

missing=""
for p in $PACKAGES; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done

[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "deps: missing packages:$missing (run as root to install them)" >&2
	exit 1
fi

echo "deps: installing:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
# The servers (nginx, vsftpd, haproxy) are test peers that the tests start
# themselves, in their own namespaces; keep the packages from starting
# system-wide instances on install.
policy=/usr/sbin/policy-rc.d
made_policy=
if [ ! -e "$policy" ]; then
	printf '#!/bin/sh\nexit 101\n' >"$policy"
	chmod +x "$policy"
	made_policy=1
fi
trap '[ -n "$made_policy" ] && rm -f "$policy"' EXIT
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
