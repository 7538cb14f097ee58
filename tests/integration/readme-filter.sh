#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# timeout: 120
#
# The filter printed in the README builds against libsluice as printed and
# does what the README says: the server's bytes reach the client upper-cased,
# the client's bytes reach the server unchanged.
. "$(dirname "$0")/lib.sh"
need gcc python3

TOP=$(cd "$(dirname "$0")/../.." && pwd)
python3 - "$TOP/README.md" "$T/upper.c" <<'PY'
import re, sys
blocks = re.findall(r"```c\n(.*?)```", open(sys.argv[1]).read(), re.S)
open(sys.argv[2], "w").write(blocks[0])
PY
gcc -Wall -Werror ${SLUICE_SANITIZED:+-fsanitize=address,undefined} -I"$TOP/include" \
	-o "$T/upper" "$T/upper.c" -L"$BUILD" -lsluice \
	-Wl,-rpath,"$(cd "$BUILD" && pwd)" || fail "the README's filter does not build"

UP=$(addr 127.0.0.1 "$(free_port)")
LISTEN=$(addr 127.0.0.1 "$(free_port)")
start_sluiced "$LISTEN" "$UP"
spawn upper "$T/upper" "$FILTER_SOCK"
wait_for_log "$SLUICED_LOG" "(upper) ready" 10 || fail "the README's filter did not connect"

got=$(python3 - "${UP%:*}" "${UP##*:}" "${LISTEN%:*}" "${LISTEN##*:}" <<'PY'
import socket, sys, threading
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind((sys.argv[1], int(sys.argv[2]))); srv.listen()
seen = []
def serve():
    c, _ = srv.accept()
    data = b""
    while True:
        d = c.recv(4096)
        if not d: break
        data += d
    seen.append(data)
    c.sendall(b"hello from the server, " + data); c.close()
t = threading.Thread(target=serve); t.start()
s = socket.create_connection((sys.argv[3], int(sys.argv[4])))
s.sendall(b"quiet client"); s.shutdown(socket.SHUT_WR)
reply = b""
while True:
    d = s.recv(4096)
    if not d: break
    reply += d
t.join()
print(seen[0].decode(), "|", reply.decode())
PY
)
[ "$got" = "quiet client | HELLO FROM THE SERVER, QUIET CLIENT" ] ||
	fail "expected 'quiet client | HELLO FROM THE SERVER, QUIET CLIENT', got '$got'"
echo "readme-filter: $got"
