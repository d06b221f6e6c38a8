#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# End-to-end tests of the pool (`sandbox pool start` and `sandbox run` through it), run inside
# the arm64 test host (busybox sh, /dev/kvm). Usage: sh pool.sh. Ends with "N passed, N failed".

SANDBOX=${SANDBOX:-/sandbox/sandbox}
EX=${EX:-/sandbox/examples}
pass=0
fail=0
tmp=$(mktemp -d)
export SANDBOX_CACHE="$tmp/cache"
unset XDG_RUNTIME_DIR
# The default socket without XDG_RUNTIME_DIR (docs/pool.md).
SOCK=/tmp/sandbox-pool-$(id -u).sock
daemon=

# Hundredths of a second since the test host booted.
now_cs() {
	read -r up _ </proc/uptime
	echo "${up%.*}${up#*.}"
}

ok() {
	pass=$((pass + 1))
	echo "PASS $1"
}

bad() {
	fail=$((fail + 1))
	echo "FAIL $1: $2"
	for f in "$tmp/out" "$tmp/err" "$tmp/pool.log"; do
		[ -s "$f" ] || continue
		echo "---- $f (last 20 lines) ----"
		tail -n 20 "$f"
	done
	echo "----"
}

# frun ARGS...: sandbox run ARGS, stdout in $tmp/out, stderr in $tmp/err, status in $rc.
frun() {
	"$SANDBOX" run "$@" >"$tmp/out" 2>"$tmp/err" </dev/null
	rc=$?
}

# procs: "PID ARGS" of every running sandbox process (the test host has no pgrep).
procs() {
	for d in /proc/[0-9]*; do
		a=$(tr '\0' ' ' <"$d/cmdline" 2>/dev/null)
		case $a in
		"$SANDBOX "*) echo "${d#/proc/} $a" ;;
		esac
	done
}

# field NAME: a count from `sandbox pool status`.
field() {
	"$SANDBOX" pool status 2>/dev/null | sed -n "s/^$1 //p"
}

# start_pool: a pool of 2 on the default socket, in the background; waits until both VMs are ready.
start_pool() {
	"$SANDBOX" pool start --size 2 >"$tmp/pool.log" 2>&1 </dev/null &
	daemon=$!
	i=0
	# The first start makes the base snapshot: give it time.
	while [ "$(field ready)" != 2 ]; do
		i=$((i + 1))
		[ $i -gt 300 ] && return 1
		kill -0 $daemon 2>/dev/null || return 1
		sleep 0.5
	done
	return 0
}

t_pool_bad_snapshot() {
	# A snapshot that cannot be used stops pool start at once, with run's exit status for it.
	echo "garbage" >"$tmp/garbage.snap"
	"$SANDBOX" pool start --snapshot "$tmp/garbage.snap" --socket "$tmp/bad.sock" >"$tmp/out" 2>"$tmp/err" </dev/null
	rc=$?
	[ $rc -ge 105 ] && [ $rc -le 106 ] || { bad pool_bad_snapshot "exit status $rc, expected 105 or 106"; return; }
	[ -e "$tmp/bad.sock" ] && { bad pool_bad_snapshot "socket left"; return; }
	"$SANDBOX" pool start --size 0 >"$tmp/out" 2>"$tmp/err" </dev/null
	rc=$?
	[ $rc -eq 2 ] || { bad pool_bad_snapshot "--size 0: exit status $rc, expected 2"; return; }
	ok pool_bad_snapshot
}

t_pool_start() {
	start_pool || { bad pool_start "the pool never had 2 ready VMs"; return; }
	[ -S "$SOCK" ] || { bad pool_start "no socket at $SOCK"; return; }
	[ "$(field busy)" = 0 ] && [ "$(field served)" = 0 ] || { bad pool_start "status: $("$SANDBOX" pool status)"; return; }
	json=$("$SANDBOX" pool status --json)
	[ "$json" = '{"ready": 2, "busy": 0, "restoring": 0, "queued": 0, "served": 0}' ] || { bad pool_start "status --json: $json"; return; }
	ok pool_start
}

t_pool_hello() {
	before=$(field served)
	frun "$EX/hello" a b
	[ $rc -eq 0 ] || { bad pool_hello "exit status $rc"; return; }
	[ "$(cat "$tmp/out")" = "Hello from a sandboxed function! a b" ] || { bad pool_hello "stdout is not exactly the function's"; return; }
	[ "$(field served)" = $((before + 1)) ] || { bad pool_hello "the run did not go through the pool"; return; }
	frun --pool "$SOCK" "$EX/hello" forced
	[ $rc -eq 0 ] && [ "$(cat "$tmp/out")" = "Hello from a sandboxed function! forced" ] || { bad pool_hello "--pool: status $rc"; return; }
	# --no-pool restores inline: same output, the pool untouched.
	before=$(field served)
	frun --no-pool "$EX/hello" inline
	[ $rc -eq 0 ] && [ "$(cat "$tmp/out")" = "Hello from a sandboxed function! inline" ] || { bad pool_hello "--no-pool: status $rc"; return; }
	[ "$(field served)" = "$before" ] || { bad pool_hello "--no-pool went through the pool"; return; }
	# How long a run takes with a ready VM in the pool against an inline restore, 5 of each.
	for how in pool no-pool; do
		total=0
		for i in 1 2 3 4 5; do
			# Let the pool refill first, so each run finds a ready VM.
			j=0
			while [ $how = pool ] && [ "$(field ready)" != 2 ] && [ $j -lt 300 ]; do
				j=$((j + 1))
				sleep 0.1
			done
			s0=$(now_cs)
			"$SANDBOX" run --$how $([ $how = pool ] && echo "$SOCK") "$EX/hello" >/dev/null 2>&1 </dev/null
			total=$((total + $(now_cs) - s0))
		done
		echo "  timing: sandbox run hello --$how: $((total * 2)) ms on average over 5 runs"
	done
	ok pool_hello
}

t_pool_exit_codes() {
	frun "$EX/exitcode" 7
	[ $rc -eq 7 ] || { bad pool_exit_codes "exit status $rc, expected 7"; return; }
	grep -q "exiting with status 7" "$tmp/err" || { bad pool_exit_codes "stderr not passed on"; return; }
	frun "$EX/hog"
	[ $rc -eq 137 ] || { bad pool_exit_codes "hog: exit status $rc, expected 137"; return; }
	# Errors found on the host are the same with a pool.
	frun "$tmp/nonexistent"
	[ $rc -eq 109 ] || { bad pool_exit_codes "missing function: exit status $rc, expected 109"; return; }
	ok pool_exit_codes
}

t_pool_stdin() {
	dd if=/dev/urandom of="$tmp/in" bs=1024 count=1024 2>/dev/null
	"$SANDBOX" run "$EX/copy" <"$tmp/in" >"$tmp/out" 2>"$tmp/err"
	rc=$?
	[ $rc -eq 0 ] || { bad pool_stdin "copy: exit status $rc"; return; }
	[ "$(sha256sum <"$tmp/in")" = "$(sha256sum <"$tmp/out")" ] || { bad pool_stdin "1 MiB came back different ($(wc -c <"$tmp/out") bytes)"; return; }
	rm -f "$tmp/in"
	ok pool_stdin
}

t_pool_concurrent() {
	before=$(field served)
	for i in 1 2 3 4; do
		("$SANDBOX" run "$EX/hello" "c$i" >"$tmp/c$i" 2>"$tmp/c$i.err" </dev/null; echo $? >"$tmp/c$i.rc") &
	done
	wait_for=0
	while [ $wait_for -lt 600 ]; do
		[ -f "$tmp/c1.rc" ] && [ -f "$tmp/c2.rc" ] && [ -f "$tmp/c3.rc" ] && [ -f "$tmp/c4.rc" ] && break
		wait_for=$((wait_for + 1))
		sleep 0.5
	done
	for i in 1 2 3 4; do
		[ "$(cat "$tmp/c$i.rc" 2>/dev/null)" = 0 ] || { cp "$tmp/c$i.err" "$tmp/err"; bad pool_concurrent "run $i: status $(cat "$tmp/c$i.rc" 2>/dev/null)"; return; }
		[ "$(cat "$tmp/c$i")" = "Hello from a sandboxed function! c$i" ] || { bad pool_concurrent "run $i: wrong output"; return; }
	done
	[ "$(field served)" = $((before + 4)) ] || { bad pool_concurrent "not all 4 went through the pool"; return; }
	ok pool_concurrent
}

t_pool_timeout_panic() {
	frun --timeout 3 "$EX/burn"
	[ $rc -eq 104 ] || { bad pool_timeout_panic "burn: exit status $rc, expected 104"; return; }
	grep -q "timeout" "$tmp/err" || { bad pool_timeout_panic "no timeout message"; return; }
	frun "$EX/panic"
	[ $rc -eq 103 ] || { bad pool_timeout_panic "panic: exit status $rc, expected 103"; return; }
	# Two VMs of the pool, restored from one snapshot, do not share random numbers.
	"$SANDBOX" run "$EX/random" >"$tmp/r1" 2>&1 </dev/null
	"$SANDBOX" run "$EX/random" >"$tmp/r2" 2>&1 </dev/null
	[ "$(wc -c <"$tmp/r1")" -eq 33 ] || { bad pool_timeout_panic "no random output"; return; }
	cmp -s "$tmp/r1" "$tmp/r2" && { bad pool_timeout_panic "both VMs printed $(cat "$tmp/r1")"; return; }
	ok pool_timeout_panic
}

t_pool_client_gone() {
	# SIGTERM to a client mid-run: 128 + 15 as without a pool; the daemon kills that VM and refills.
	"$SANDBOX" run "$EX/burn" >"$tmp/out" 2>"$tmp/err" </dev/null &
	pid=$!
	i=0
	while [ "$(field busy)" != 1 ]; do
		i=$((i + 1))
		[ $i -gt 60 ] && { bad pool_client_gone "the run is not busy in the pool: $("$SANDBOX" pool status)"; return; }
		sleep 0.5
	done
	# Let the function start, so its VM's socket directory is gone before the kill.
	sleep 2
	kill -TERM $pid
	wait $pid
	rc=$?
	[ $rc -eq 143 ] || { bad pool_client_gone "exit status $rc, expected 143"; return; }
	i=0
	while [ "$(field busy)" != 0 ] || [ "$(field ready)" != 2 ]; do
		i=$((i + 1))
		[ $i -gt 60 ] && { bad pool_client_gone "the pool did not recover: $("$SANDBOX" pool status)"; return; }
		sleep 0.5
	done
	# The daemon and its 2 ready VMs, nothing more.
	[ "$(procs | wc -l)" -eq 3 ] || { bad pool_client_gone "processes: $(procs)"; return; }
	ok pool_client_gone
}

t_pool_sigkill() {
	# The daemon and one process per ready VM: the check below can see them.
	[ "$(procs | wc -l)" -ge 3 ] || { bad pool_sigkill "expected the daemon and 2 VM processes: $(procs)"; return; }
	kill -KILL $daemon
	wait $daemon 2>/dev/null
	# The VM processes die with the daemon (PR_SET_PDEATHSIG); teardown takes a moment here.
	i=0
	while [ -n "$(procs)" ] && [ $i -lt 40 ]; do
		i=$((i + 1))
		sleep 0.5
	done
	[ -z "$(procs)" ] || { bad pool_sigkill "sandbox processes left: $(procs)"; return; }
	# The socket file stays, stale: nobody listens, so a run restores inline.
	frun "$EX/hello" after
	[ $rc -eq 0 ] && [ "$(cat "$tmp/out")" = "Hello from a sandboxed function! after" ] || { bad pool_sigkill "run after the pool died: status $rc"; return; }
	frun --pool "$SOCK" "$EX/hello"
	[ $rc -eq 100 ] || { bad pool_sigkill "--pool to a dead pool: status $rc, expected 100"; return; }
	# The ready VMs' socket directories stay too, in $SOCK.d: stale, harmless (nobody listens
	# on them), removed by the next pool started on this socket (pool_stop checks that).
	[ "$(ls "$SOCK.d" | wc -l)" -ge 2 ] || { bad pool_sigkill "expected the stale VM socket directories in $SOCK.d: $(ls "$SOCK.d")"; return; }
	ok pool_sigkill
}

t_pool_stop() {
	start_pool || { bad pool_stop "the pool never had 2 ready VMs"; return; }
	# The killed pool's stale directories are gone: only the 2 ready VMs' are there.
	[ "$(ls "$SOCK.d" | wc -l)" -eq 2 ] || { bad pool_stop "$SOCK.d holds $(ls "$SOCK.d")"; return; }
	"$SANDBOX" pool stop || { bad pool_stop "pool stop failed"; return; }
	wait $daemon
	rc=$?
	[ $rc -eq 0 ] || { bad pool_stop "the pool exited with $rc"; return; }
	[ -e "$SOCK" ] && { bad pool_stop "socket left"; return; }
	[ -e "$SOCK.d" ] && { bad pool_stop "$SOCK.d left"; return; }
	[ -z "$(procs)" ] || { bad pool_stop "sandbox processes left: $(procs)"; return; }
	ok pool_stop
}

t_pool_drain() {
	start_pool || { bad pool_drain "the second pool never had 2 ready VMs"; return; }
	frun "$EX/hello" again
	[ $rc -eq 0 ] || { bad pool_drain "run: status $rc"; return; }
	kill -TERM $daemon
	wait $daemon
	rc=$?
	[ $rc -eq 0 ] || { bad pool_drain "the pool exited with $rc after SIGTERM"; return; }
	[ -e "$SOCK" ] && { bad pool_drain "socket left after SIGTERM"; return; }
	[ -e "$SOCK.d" ] && { bad pool_drain "$SOCK.d left after SIGTERM"; return; }
	[ -z "$(procs)" ] || { bad pool_drain "sandbox processes left: $(procs)"; return; }
	ls -d /tmp/sandbox-?????? >/dev/null 2>&1 && { bad pool_drain "socket directories left: $(ls -d /tmp/sandbox-??????)"; return; }
	ok pool_drain
}

for t in pool_bad_snapshot pool_start pool_hello pool_exit_codes pool_stdin pool_concurrent pool_timeout_panic pool_client_gone pool_sigkill pool_stop pool_drain; do
	"t_$t"
	rm -f "$tmp/out" "$tmp/err"
done
[ -n "$daemon" ] && kill -KILL $daemon 2>/dev/null
rm -rf "$tmp"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
