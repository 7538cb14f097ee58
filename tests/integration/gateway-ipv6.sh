#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# timeout: 600
#
# Gateway mode over IPv6: gateway.sh with the client at fd77:1::1 and the
# server at fd77:2::2. nginx must log the client's IPv6 address, not the
# gateway's (fd77:2::fe); the rest as in gateway.sh.
GW_FAMILY=6
. "$(dirname "$0")/gateway.sh"
