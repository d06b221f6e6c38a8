#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# virtio-vsock end to end, inside a test host (arm64 or x86_64): both directions, flow control,
# snapshot/restore.
#
# Expects in the current directory (the tree the test host copies to /sandbox):
#   sandbox, vsock_host (static, tests/guest/vsock_host.c), images/Image or images/vmlinux and
#   images/vsock.cpio (the guest init plus /bin/vsock_probe, tests/guest/vsock_probe.c).
# Prints PASS/FAIL lines; exits with the number of failures.
set -u
cd "$(dirname "$0")"
fails=0
case $(./sandbox --version) in
*"(x86_64)"*) CONSOLE=ttyS0 KERNEL=vmlinux ;;
*) CONSOLE=ttyAMA0 KERNEL=Image ;;
esac
K="--kernel images/$KERNEL --initrd images/vsock.cpio"

pass() { echo "PASS: $1"; }
fail() {
	echo "FAIL: $1"
	shift
	for f in "$@"; do echo "--- $f"; cat "$f"; done
	fails=$((fails + 1))
}
# expect FILE PATTERN WHAT [LOGS...]
expect() {
	f=$1 p=$2 what=$3
	shift 3
	if grep -q -- "$p" "$f"; then pass "$what"; else fail "$what" "$f" "$@"; fi
}
wait_sock() {
	i=0
	while [ ! -S "$1" ] && [ $i -lt 200 ]; do
		sleep 0.1
		i=$((i + 1))
	done
}

# 1. Guest to host (a line to CID 2 port 5678, answered), host to guest (CONNECT
# 1234, 4 MiB echoed: far beyond both sides' buffers, so credit updates must flow).
U=/tmp/v1.sock
./vsock_host listen "${U}_5678" 1 "hello guest" >/tmp/l1.log 2>&1 &
lpid=$!
wait_sock "${U}_5678"
start=$(date +%s)
./sandbox boot $K --timeout 240 --vsock cid=3,uds=$U \
	--cmdline "console=$CONSOLE quiet -- /bin/vsock_probe both 1234 2 2 5678 hello-host" \
	>/tmp/g1.log 2>&1 &
gpid=$!
wait_sock $U
./vsock_host echo $U 1234 4194304 >/tmp/h1.log 2>&1
./vsock_host echo $U 1234 1 >/tmp/h1b.log 2>&1
wait $gpid
echo "boot exit status: $? after $(($(date +%s) - start)) s"
wait $lpid
expect /tmp/l1.log "got: hello-host" "guest connect to the host's <uds>_5678" /tmp/g1.log
expect /tmp/g1.log "reply: hello guest" "the host's answer reaches the guest" /tmp/l1.log
expect /tmp/h1.log "echoed 4194304 bytes ok" "host CONNECT, 4 MiB echoed intact" /tmp/g1.log
expect /tmp/h1b.log "echoed 1 bytes ok" "a second host connection" /tmp/g1.log
expect /tmp/g1.log "vsock-probe: ok" "the guest program succeeded"
[ -S $U ] && fail "the socket path is left after the VM ended" || pass "the socket path is removed"

# 2. No listener on either side: a guest connect is refused, a host CONNECT closed.
U=/tmp/v2.sock
./sandbox boot $K --timeout 120 --vsock cid=3,uds=$U \
	--cmdline "console=$CONSOLE quiet -- /bin/vsock_probe send 2 9999 nobody" \
	>/tmp/g2.log 2>&1
expect /tmp/g2.log "FAIL connect 2:9999: Connection reset by peer" "a guest connect to nobody is reset" /tmp/g2.log

# 3. Snapshot with a connection open, restore in a new process: the guest's
# connection is reset (TRANSPORT_RESET), its listener keeps working.
U=/tmp/v3.sock
./vsock_host hold "${U}_5679" >/tmp/hold.log 2>&1 &
hpid=$!
wait_sock "${U}_5679"
./sandbox snapshot create -o /tmp/vsock.snap --ready-line "vsock-probe: ready" $K \
	--vsock cid=3,uds=$U \
	--cmdline "console=$CONSOLE quiet -- /bin/vsock_probe snap 1234 2 5679" \
	>/tmp/snap.log 2>&1
echo "snapshot create exit status: $?"
kill $hpid
expect /tmp/hold.log "held: before" "the guest connected before the snapshot" /tmp/snap.log
U=/tmp/v4.sock
./sandbox restore /tmp/vsock.snap --vsock-uds $U --timeout 120 >/tmp/r.log 2>&1 &
rpid=$!
wait_sock $U
./vsock_host echo $U 1234 100000 >/tmp/h3.log 2>&1
wait $rpid
echo "restore exit status: $?"
expect /tmp/r.log "connection reset after restore" "TRANSPORT_RESET resets the guest's connections" /tmp/snap.log
expect /tmp/h3.log "echoed 100000 bytes ok" "the guest's listener works after restore" /tmp/r.log
expect /tmp/r.log "vsock-probe: ok" "the restored guest program succeeded"

# 4. Snapshot with --continue: the VM is paused, saved and resumed in the same
# process, and a connection open across the pause keeps working.
U=/tmp/v5.sock
./vsock_host listen "${U}_5680" 1 "still here" >/tmp/l5.log 2>&1 &
lpid=$!
wait_sock "${U}_5680"
./sandbox snapshot create -o /tmp/vsock2.snap --continue --ready-line "vsock-probe: ready" \
	$K --vsock cid=3,uds=$U \
	--cmdline "console=$CONSOLE quiet -- /bin/vsock_probe pause 2 5680" \
	>/tmp/c.log 2>&1
echo "snapshot create --continue exit status: $?"
wait $lpid
expect /tmp/l5.log "got: before" "the host read what the guest sent before and after the pause" /tmp/c.log
expect /tmp/l5.log "^after" "the guest wrote after the pause on the same connection" /tmp/c.log
expect /tmp/c.log "reply: still here" "the host's reply after the pause reached the guest" /tmp/l5.log

echo "vsock e2e: $fails failure(s)"
exit $fails
