#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Cross-arch figures driver, run inside a test host by bench/arch (busybox sh): the same three
# measurements on whichever arch sandbox was built for, so that bench/arch can put arm64 and
# x86_64 side by side. Prints one RESULT line per run.
#
# Usage: sh arch-driver.sh RUNS
# Expects in its own directory: boottime (bench/boottime.c); in /sandbox: sandbox, images/,
# examples/hello. For each of RUNS rounds, in this order:
#   boot     bench/boottime around `sandbox boot` (quiet console): exec to "Hello from Linux!"
#   run      `sandbox run examples/hello` from the cached base snapshot (file mode), wall time from
#            /proc/uptime around it, plus its SANDBOX_TIMING restore_ms (exec to the restored VM
#            ready to run: memory mapped, vCPU and device state set) and started_ms (to the
#            function's exec in the guest)
# Output: RESULT what=boot|run run=I rc=N FIELDS...   Exit status 0 when every run succeeded.

[ $# -eq 1 ] || {
	echo "usage: sh arch-driver.sh RUNS" >&2
	exit 2
}
runs=$1
dir=$(cd "$(dirname "$0")" && pwd)
S=/sandbox/sandbox
case $("$S" --version) in
*"(x86_64)"*) console=ttyS0 ;;
*) console=ttyAMA0 ;;
esac
export SANDBOX_CACHE=/tmp/arch-bench-cache
failed=0

now_cs() {
	read -r up _ </proc/uptime
	echo "${up%.*}${up#*.}"
}

echo "INFO arch $("$S" --version)"
# The base snapshot is made once, outside the measured runs.
"$S" run /sandbox/examples/hello warm >/dev/null 2>&1 </dev/null || {
	echo "INFO making the base snapshot failed"
	exit 1
}
i=0
while [ $i -lt "$runs" ]; do
	line=$("$dir/boottime" -t 60 -k "" -- "$S" boot --cmdline "console=$console quiet" --timeout 60)
	rc=$?
	[ $rc -eq 0 ] || failed=1
	echo "RESULT what=boot run=$i $line"
	s0=$(now_cs)
	SANDBOX_TIMING=1 "$S" run /sandbox/examples/hello "$i" >/tmp/arch-run.out 2>/tmp/arch-run.err </dev/null
	rc=$?
	wall=$(($(now_cs) - s0))
	[ $rc -eq 0 ] && grep -q "^Hello from a sandboxed function! $i" /tmp/arch-run.out || { rc=1; failed=1; }
	restore=$(sed -n 's/^sandbox-timing: restore_ms=//p' /tmp/arch-run.err)
	started=$(sed -n 's/^sandbox-timing: started_ms=//p' /tmp/arch-run.err)
	echo "RESULT what=run run=$i rc=$rc wall_ms=${wall}0 restore_ms=$restore started_ms=$started"
	i=$((i + 1))
done
exit $failed
