#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# End-to-end tests of the pool (`sandbox pool start` and `sandbox run` through it), run inside
# a test host (arm64 or x86_64; busybox sh, /dev/kvm). Usage: sh pool.sh. Ends with "N passed, N failed".
# LEAK_RUNS (default 1000): how many runs pool_leak makes in a row (about 0.2 s each in a
# quiet test host, 0.5 to 1 s when its host is busy); LEAK_MAX_S (default 900): it stops there
# anyway, says so, and checks what those runs left, so that the whole file fits in
# `tests/<arch>-host/run --timeout 1500`.
# UNIXGET (default tests/unixget beside this script, built from tests/e2e/unixget.c): how
# pool_metrics reads GET /metrics from the pool's socket (busybox nc has no Unix sockets), and
# pool_slow_request trickles a request into it.

SANDBOX=${SANDBOX:-/sandbox/sandbox}
EX=${EX:-/sandbox/examples}
UNIXGET=${UNIXGET:-$(dirname "$0")/unixget}
LEAK_RUNS=${LEAK_RUNS:-1000}
LEAK_MAX_S=${LEAK_MAX_S:-900}
pass=0
fail=0
tmp=$(mktemp -d)
export SANDBOX_CACHE="$tmp/cache"
unset XDG_RUNTIME_DIR
# The default socket without XDG_RUNTIME_DIR (docs/pool.md).
SOCK=/tmp/sandbox-pool-$(id -u).sock
# The main pool, on $SOCK: its pid (our child).
daemon=
# The second pool (pool_daemon): detached, on its own socket, 1 VM at most.
QSOCK=$tmp/q.sock
qpid=
# Every status line `pool status` prints (docs/pool.md).
KEYS="snapshot ready busy restoring queued served failed queue_timeouts latency_p50_ms latency_p90_ms latency_p99_ms wait_p50_ms wait_p99_ms"

# Hundredths of a second since the test host booted.
now_cs() {
	read -r up _ </proc/uptime
	echo "${up%.*}${up#*.}"
}

# cs_to_s CS: "S.ss" seconds.
cs_to_s() {
	echo "$(($1 / 100)).$(printf %02d $(($1 % 100)))"
}

ok() {
	pass=$((pass + 1))
	echo "PASS $1"
}

bad() {
	fail=$((fail + 1))
	echo "FAIL $1: $2"
	for f in "$tmp/out" "$tmp/err" "$tmp/pool.log" "$tmp/q.log"; do
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

# bg_run NAME ARGS...: sandbox run ARGS in the background, stdout in $tmp/NAME.out, stderr in
# $tmp/NAME.err; its pid in $bg (the sandbox process itself: ash execs a lone command).
bg_run() {
	name=$1
	shift
	"$SANDBOX" run "$@" >"$tmp/$name.out" 2>"$tmp/$name.err" </dev/null &
	bg=$!
}

# alive PID: PID runs (a child of ours that ended is a zombie until waited for: not alive).
alive() {
	[ -e "/proc/$1" ] && ! grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null
}

# wait_gone PID SECS: until PID has ended, at most SECS seconds. 1 if it has not.
wait_gone() {
	end=$(($(now_cs) + $2 * 100))
	while alive "$1"; do
		[ "$(now_cs)" -ge $end ] && return 1
		sleep 0.1
	done
	return 0
}

# at_most_one_alive PID...: no two of the PIDs run.
at_most_one_alive() {
	n=0
	for p in "$@"; do
		alive "$p" && n=$((n + 1))
	done
	[ $n -le 1 ]
}

# within SECS CMD...: polls CMD until it succeeds, at most SECS seconds. 1 if it never did.
within() {
	end=$(($(now_cs) + $1 * 100))
	shift
	until "$@"; do
		[ "$(now_cs)" -ge $end ] && return 1
		sleep 0.1
	done
	return 0
}

# procs: "PID ARGS" of every running sandbox process (the test host has no pgrep). A pool's
# VM processes are forked from it: they show its command line.
procs() {
	for d in /proc/[0-9]*; do
		a=$(tr '\0' ' ' 2>/dev/null <"$d/cmdline")
		case $a in
		"$SANDBOX "*) echo "${d#/proc/} $a" ;;
		esac
	done
}

no_procs() {
	[ -z "$(procs)" ]
}

# children PID: the pids whose parent is PID.
children() {
	for d in /proc/[0-9]*; do
		[ "$(sed -n 's/^PPid:[[:space:]]*//p' "$d/status" 2>/dev/null)" = "$1" ] && echo "${d#/proc/}"
	done
}

# refs PATTERN: the sandbox processes that have a file matching PATTERN (grep -F) open or
# mapped, as "PID" lines.
refs() {
	procs | while read -r pid _; do
		{ ls -l "/proc/$pid/fd"; cat "/proc/$pid/maps"; } 2>/dev/null | grep -qF -- "$1" && echo "$pid"
	done
}

# status [SOCK]: `sandbox pool status` into $st (empty when no pool answers).
status() {
	if [ -n "$1" ]; then
		st=$("$SANDBOX" pool status --socket "$1" 2>/dev/null)
	else
		st=$("$SANDBOX" pool status 2>/dev/null)
	fi
}

# get NAME: a value of the last status.
get() {
	echo "$st" | sed -n "s/^$1 //p"
}

# field NAME [SOCK]: a value from a new `sandbox pool status`.
field() {
	status "$2"
	get "$1"
}

# settled N [SOCK]: the pool has N ready VMs and nothing else going on.
settled() {
	status "$2"
	[ "$(get ready)" = "$1" ] && [ "$(get busy)" = 0 ] && [ "$(get restoring)" = 0 ] && [ "$(get queued)" = 0 ]
}

# is_busy N [SOCK]: N runs hold a VM.
is_busy() {
	[ "$(field busy "$2")" = "$1" ]
}

# started N: the pool on $SOCK runs one function and has N VMs ready besides, and the running
# VM's agent connected (`sandbox run` removes a VM's socket directory then, so at most the
# ready VMs have one): the function runs.
started() {
	status
	[ "$(get busy)" = 1 ] && [ "$(get ready)" = "$1" ] && [ "$(get restoring)" = 0 ] &&
		[ "$(ls "$SOCK.d" 2>/dev/null | wc -l)" -le "$1" ]
}

# tmp_files: what /tmp holds, but for our own directory, the pool's VM directories and its
# lock file (it stays once made: docs/pool.md).
tmp_files() {
	find /tmp -path "$tmp" -prune -o -path "$SOCK.d" -prune -o -path "$SOCK.lock" -prune -o -print | sort
}

# start_pool: the main pool of 2 on the default socket, in the background (its pid in
# $daemon); waits until both VMs are ready. At most 4 VMs (--mem-budget, 128 MiB each). A
# burst's runs wait their turn for long in a busy test host: more than the 30 s default.
start_pool() {
	"$SANDBOX" pool start --size 2 --mem-budget 512 --queue-timeout 180 >"$tmp/pool.log" 2>&1 </dev/null &
	daemon=$!
	# The first start makes the base snapshot: give it time.
	end=$(($(now_cs) + 30000))
	until settled 2; do
		[ "$(now_cs)" -ge $end ] && return 1
		alive $daemon || return 1
		sleep 0.2
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
	for opt in "--size 0" "--max-vms x" "--mem-budget x" "--queue-timeout x"; do
		# shellcheck disable=SC2086 # the option and its value are two words
		"$SANDBOX" pool start $opt --socket "$tmp/bad.sock" >"$tmp/out" 2>"$tmp/err" </dev/null
		rc=$?
		[ $rc -eq 2 ] || { bad pool_bad_snapshot "$opt: exit status $rc, expected 2"; return; }
	done
	ok pool_bad_snapshot
}

t_pool_start() {
	s0=$(now_cs)
	start_pool || { bad pool_start "the pool never had 2 ready VMs"; return; }
	echo "  timing: pool start to 2 ready VMs (base snapshot made): $(cs_to_s $(($(now_cs) - s0))) s"
	[ -S "$SOCK" ] || { bad pool_start "no socket at $SOCK"; return; }
	status
	for k in $KEYS; do
		[ "$(echo "$st" | grep -c "^$k ")" = 1 ] || { bad pool_start "no line '$k' in pool status: $st"; return; }
	done
	[ -f "$(get snapshot)" ] || { bad pool_start "the snapshot line names no file: $(get snapshot)"; return; }
	for k in busy restoring queued served failed queue_timeouts; do
		[ "$(get $k)" = 0 ] || { bad pool_start "$k is not 0: $st"; return; }
	done
	json=$("$SANDBOX" pool status --json)
	[ "$(echo "$json" | wc -l)" = 1 ] || { bad pool_start "status --json is not one line: $json"; return; }
	case $json in
	"{"*"}") ;;
	*) bad pool_start "status --json is not an object: $json"; return ;;
	esac
	for k in $KEYS; do
		echo "$json" | grep -q "\"$k\": *[0-9\"]" || { bad pool_start "no \"$k\" in status --json: $json"; return; }
	done
	echo "$json" | grep -q '"ready": *2[,}]' || { bad pool_start "status --json: ready is not 2: $json"; return; }
	echo "$json" | grep -qF "\"snapshot\": \"$(get snapshot)\"" || { bad pool_start "status --json: another snapshot: $json"; return; }
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
			[ $how = pool ] && within 30 settled 2
			s0=$(now_cs)
			"$SANDBOX" run --$how $([ $how = pool ] && echo "$SOCK") "$EX/hello" >/dev/null 2>&1 </dev/null
			total=$((total + $(now_cs) - s0))
		done
		echo "  timing: sandbox run hello --$how: $((total * 2)) ms on average over 5 runs"
	done
	# The daemon's own view of those runs: latencies are numbers now.
	status
	for k in latency_p50_ms latency_p90_ms latency_p99_ms wait_p50_ms wait_p99_ms; do
		get $k | grep -Eq '^[0-9]+(\.[0-9]+)?$' || { bad pool_hello "$k is not a number: $st"; return; }
	done
	echo "  daemon: latency p50 $(get latency_p50_ms) ms, p99 $(get latency_p99_ms) ms; wait p50 $(get wait_p50_ms) ms"
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

# burst NAME N: N runs of hello at once, with arguments NAME1..NAMEn, each stdout in
# $tmp/NAMEi.out and status in $tmp/NAMEi.rc.
burst() {
	i=1
	while [ $i -le "$2" ]; do
		rm -f "$tmp/$1$i.rc"
		# The status file appears whole (mv): a reader never sees it empty.
		("$SANDBOX" run "$EX/hello" "$1$i" >"$tmp/$1$i.out" 2>"$tmp/$1$i.err" </dev/null
		echo $? >"$tmp/$1$i.rc.new"
		mv "$tmp/$1$i.rc.new" "$tmp/$1$i.rc") &
		i=$((i + 1))
	done
}

# burst_done NAME N: every run of the burst has its status.
burst_done() {
	i=1
	while [ $i -le "$2" ]; do
		[ -f "$tmp/$1$i.rc" ] || return 1
		i=$((i + 1))
	done
}

# burst_check TEST NAME N: each run of the burst ended with 0 and its own greeting.
burst_check() {
	i=1
	while [ $i -le "$3" ]; do
		r=$(cat "$tmp/$2$i.rc" 2>/dev/null)
		[ "$r" = 0 ] || { cp "$tmp/$2$i.err" "$tmp/err"; bad "$1" "run $i: status ${r:-none}"; return 1; }
		[ "$(cat "$tmp/$2$i.out")" = "Hello from a sandboxed function! $2$i" ] || { bad "$1" "run $i: wrong output: $(cat "$tmp/$2$i.out")"; return 1; }
		i=$((i + 1))
	done
	return 0
}

t_pool_concurrent() {
	within 30 settled 2
	before=$(field served)
	burst c 6
	within 240 burst_done c 6 || { bad pool_concurrent "6 runs at once did not all end within 240 s"; return; }
	burst_check pool_concurrent c 6 || return
	[ "$(field served)" = $((before + 6)) ] || { bad pool_concurrent "not all 6 went through the pool"; return; }
	ok pool_concurrent
}

t_pool_burst() {
	# 12 runs at once, 2 VMs ready and room for 4 (--mem-budget): runs wait their turn.
	within 30 settled 2
	before=$(field served)
	s0=$(now_cs)
	burst b 12
	maxq=0
	maxalive=0
	end=$(($(now_cs) + 24000))
	until burst_done b 12; do
		[ "$(now_cs)" -ge $end ] && { bad pool_burst "12 runs at once did not all end within 240 s: $st"; return; }
		status
		q=$(get queued) r=$(get ready) b=$(get busy) rs=$(get restoring)
		n=$((${r:-0} + ${b:-0} + ${rs:-0}))
		[ "${q:-0}" -gt $maxq ] && maxq=$q
		[ $n -gt $maxalive ] && maxalive=$n
		sleep 0.05
	done
	burst_check pool_burst b 12 || return
	status
	[ "$(get served)" = $((before + 12)) ] || { bad pool_burst "not all 12 went through the pool: $st"; return; }
	echo "  burst: 12 runs in $(cs_to_s $(($(now_cs) - s0))) s; at most $maxq queued and $maxalive VMs seen; wait p99 $(get wait_p99_ms) ms"
	[ $maxalive -le 4 ] || { bad pool_burst "$maxalive VMs at once, over --mem-budget 512 (4 VMs)"; return; }
	# The queue may form and drain between two looks at it; the runs' wait says it formed.
	wait99=$(get wait_p99_ms)
	[ $maxq -gt 0 ] || [ "${wait99%.*}" -ge 100 ] 2>/dev/null || { bad pool_burst "no run ever waited: $st"; return; }
	ok pool_burst
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
	within 30 settled 2
	bg_run gone "$EX/burn"
	within 30 started 2 || { kill -KILL $bg; bad pool_client_gone "the function did not start in the pool: $st"; return; }
	kill -TERM $bg
	wait $bg
	rc=$?
	[ $rc -eq 143 ] || { bad pool_client_gone "exit status $rc, expected 143"; return; }
	within 30 settled 2 || { bad pool_client_gone "the pool did not recover: $st"; return; }
	# The daemon and its 2 ready VMs, nothing more.
	within 10 eval '[ "$(procs | wc -l)" -eq 3 ]' || { bad pool_client_gone "processes: $(procs)"; return; }
	ok pool_client_gone
}

t_pool_worker_kill() {
	# SIGKILL to the VM process running a function: its caller gets 100 and a message, the
	# daemon counts it as failed, refills, and serves the next run.
	within 30 settled 2
	failed=$(field failed)
	bg_run k "$EX/burn" 30
	within 30 started 2 || { kill -KILL $bg; bad pool_worker_kill "the function did not start in the pool: $st"; return; }
	# The VM process that holds the caller's stdout.
	w=
	for pid in $(children $daemon); do
		ls -l "/proc/$pid/fd" 2>/dev/null | grep -qF "$tmp/k.out" && w=$pid
	done
	[ -n "$w" ] || { kill -KILL $bg; bad pool_worker_kill "no VM process of the pool holds the run's stdout"; return; }
	kill -KILL "$w"
	wait_gone $bg 20 || { kill -KILL $bg; bad pool_worker_kill "the caller still waits 20 s after its VM was killed"; return; }
	wait $bg
	rc=$?
	cp "$tmp/k.err" "$tmp/err"
	[ $rc -eq 100 ] || { bad pool_worker_kill "exit status $rc, expected 100"; return; }
	[ -s "$tmp/k.err" ] || { bad pool_worker_kill "no message"; return; }
	alive $daemon || { bad pool_worker_kill "the daemon died"; return; }
	within 30 settled 2 || { bad pool_worker_kill "the pool did not refill: $st"; return; }
	[ "$(get failed)" = $((failed + 1)) ] || { bad pool_worker_kill "failed is $(get failed), expected $((failed + 1))"; return; }
	frun --pool "$SOCK" "$EX/hello" next
	[ $rc -eq 0 ] && [ "$(cat "$tmp/out")" = "Hello from a sandboxed function! next" ] || { bad pool_worker_kill "the next run: status $rc"; return; }
	ok pool_worker_kill
}

t_pool_metrics() {
	# GET /metrics on the pool's socket: Prometheus' text format.
	[ -x "$UNIXGET" ] || { bad pool_metrics "no $UNIXGET (build tests/e2e/unixget.c)"; return; }
	"$UNIXGET" "$SOCK" /metrics >"$tmp/out" 2>"$tmp/err"
	rc=$?
	[ $rc -eq 0 ] || { bad pool_metrics "GET /metrics: status $rc"; return; }
	[ -s "$tmp/out" ] || { bad pool_metrics "no answer to 'GET /metrics HTTP/1.0' (the connection closed)"; return; }
	head -n 1 "$tmp/out" | grep -q "^HTTP/1\.[01] 200" || { bad pool_metrics "not HTTP 200: $(head -n 1 "$tmp/out")"; return; }
	served=$(field served)
	# The sum of its samples (one per label set, if it has labels).
	n=$(tr -d '\r' <"$tmp/out" | awk -v m=sandbox_pool_invocations_total '$1 == m || index($1, m "{") == 1 { n++; s += $2 } END { if (n) printf "%d\n", s }')
	[ -n "$n" ] || { bad pool_metrics "no sample of sandbox_pool_invocations_total"; return; }
	grep -q "^# TYPE sandbox_pool_invocations_total counter" "$tmp/out" || { bad pool_metrics "sandbox_pool_invocations_total has no TYPE counter line"; return; }
	[ "$n" -ge "$served" ] || { bad pool_metrics "sandbox_pool_invocations_total $n, but $served served"; return; }
	"$UNIXGET" "$SOCK" /nonexistent >"$tmp/out" 2>"$tmp/err"
	head -n 1 "$tmp/out" | grep -q "^HTTP/1\.[01] 404" || { bad pool_metrics "GET /nonexistent: not HTTP 404: $(head -n 1 "$tmp/out")"; return; }
	# A run still works after HTTP clients came and went.
	frun "$EX/hello" m
	[ $rc -eq 0 ] || { bad pool_metrics "a run after GET /metrics: status $rc"; return; }
	ok pool_metrics
}

# trickle KIND MS NAME: unixget --trickle MS $SOCK KIND in the background, its output in
# $tmp/NAME.out and status in $tmp/NAME.rc.
trickle() {
	("$UNIXGET" --trickle "$2" "$SOCK" "$1" >"$tmp/$3.out" 2>&1
	echo $? >"$tmp/$3.rc.new"
	mv "$tmp/$3.rc.new" "$tmp/$3.rc") &
}

# closed_after NAME: the milliseconds after which the pool closed trickle NAME's connection;
# empty if it did not.
closed_after() {
	[ "$(cat "$tmp/$1.rc" 2>/dev/null)" = 0 ] && sed -n 's/^closed after \([0-9]*\) ms, .*/\1/p' "$tmp/$1.out"
}

t_pool_slow_request() {
	# A client that sends its request a byte a second never stalls for 2 s, yet it may hold
	# one of the pool's connection slots for 10 s at most (POOL_REQUEST_MS, docs/pool.md):
	# an HTTP request and a pool message, each longer than 10 bytes. One that sends nothing
	# for 2 s is closed then, as before.
	[ -x "$UNIXGET" ] || { bad pool_slow_request "no $UNIXGET (build tests/e2e/unixget.c)"; return; }
	trickle http 1000 th
	trickle pool 1000 tp
	trickle pool 3000 ts
	within 60 eval '[ -f "$tmp/th.rc" ] && [ -f "$tmp/tp.rc" ] && [ -f "$tmp/ts.rc" ]' ||
		{ bad pool_slow_request "the trickling clients still run after 60 s"; return; }
	for c in th tp; do
		ms=$(closed_after $c)
		[ -n "$ms" ] || { bad pool_slow_request "$c: not closed by the pool (status $(cat "$tmp/$c.rc")): $(cat "$tmp/$c.out")"; return; }
		echo "  $c: $(cat "$tmp/$c.out")"
		[ "$ms" -ge 9000 ] && [ "$ms" -le 20000 ] || { bad pool_slow_request "$c: closed after $ms ms, expected about 10000"; return; }
	done
	ms=$(closed_after ts)
	[ -n "$ms" ] || { bad pool_slow_request "ts: not closed by the pool: $(cat "$tmp/ts.out")"; return; }
	[ "$ms" -ge 1500 ] && [ "$ms" -le 6000 ] || { bad pool_slow_request "ts: closed after $ms ms, expected about 2000 (stalled)"; return; }
	alive $daemon || { bad pool_slow_request "the daemon died"; return; }
	frun "$EX/hello" slow
	[ $rc -eq 0 ] && [ "$(cat "$tmp/out")" = "Hello from a sandboxed function! slow" ] || { bad pool_slow_request "a run after the slow clients: status $rc"; return; }
	rm -f "$tmp/th.out" "$tmp/th.rc" "$tmp/tp.out" "$tmp/tp.rc" "$tmp/ts.out" "$tmp/ts.rc"
	ok pool_slow_request
}

t_pool_daemon() {
	# pool start --daemon returns once it listens; the pid file names the daemon.
	s0=$(now_cs)
	"$SANDBOX" pool start --daemon --pid-file "$tmp/q.pid" --log "$tmp/q.log" --socket "$QSOCK" \
		--snapshot "$tmp/a.snap" --size 1 --max-vms 1 --queue-timeout 2 >"$tmp/out" 2>"$tmp/err" </dev/null
	rc=$?
	el=$(($(now_cs) - s0))
	echo "  timing: pool start --daemon returned after $(cs_to_s $el) s"
	[ $rc -eq 0 ] || { bad pool_daemon "exit status $rc"; return; }
	[ -S "$QSOCK" ] || { bad pool_daemon "not listening when pool start returned"; return; }
	qpid=$(cat "$tmp/q.pid" 2>/dev/null)
	case $qpid in
	"" | *[!0-9]*) bad pool_daemon "the pid file holds '$qpid'"; qpid=; return ;;
	esac
	alive "$qpid" || { bad pool_daemon "pid $qpid from the pid file is not alive"; return; }
	case $(tr '\0' ' ' <"/proc/$qpid/cmdline") in
	"$SANDBOX pool start "*) ;;
	*) bad pool_daemon "pid $qpid is not the pool"; return ;;
	esac
	[ $el -lt 1000 ] || { bad pool_daemon "pool start --daemon took $(cs_to_s $el) s"; return; }
	within 60 settled 1 "$QSOCK" || { bad pool_daemon "never 1 VM ready: $st"; return; }
	[ "$(get snapshot)" = "$tmp/a.snap" ] || { bad pool_daemon "snapshot line: $(get snapshot)"; return; }
	ok pool_daemon
}

t_pool_start_race() {
	# Three pool starts at once on one socket: all find nobody listening; one gets the lock
	# on $rsock.lock, the others exit 100 with the message.
	rsock=$tmp/race.sock
	# The first pool's snapshot (a.snap is garbage since pool_reload).
	rsnap=$(field snapshot)
	[ -f "$rsnap" ] || { bad pool_start_race "no snapshot from the first pool: '$rsnap'"; return; }
	racers=
	for i in 1 2 3; do
		"$SANDBOX" pool start --socket "$rsock" --snapshot "$rsnap" --size 1 >/dev/null 2>"$tmp/race$i.err" </dev/null &
		racers="$racers $!"
	done
	within 60 settled 1 "$rsock" || { kill -KILL $racers 2>/dev/null; bad pool_start_race "no pool ready: $st; $(cat "$tmp"/race?.err)"; return; }
	# The losers end at once with the message; the winner serves.
	within 10 at_most_one_alive $racers
	winner= losers=0 i=0
	for r in $racers; do
		i=$((i + 1))
		if alive $r; then
			[ -z "$winner" ] || { kill -KILL $racers 2>/dev/null; bad pool_start_race "two pools are running: $winner and $r"; return; }
			winner=$r
			continue
		fi
		wait $r
		rc=$?
		[ $rc -eq 100 ] || { kill -KILL $racers 2>/dev/null; bad pool_start_race "start $i ended with $rc, expected 100: $(cat "$tmp/race$i.err")"; return; }
		grep -qF "a pool is already running on $rsock" "$tmp/race$i.err" || { kill -KILL $racers 2>/dev/null; bad pool_start_race "start $i: no 'already running' message: $(cat "$tmp/race$i.err")"; return; }
		losers=$((losers + 1))
	done
	[ -n "$winner" ] && [ $losers -eq 2 ] || { kill -KILL $racers 2>/dev/null; bad pool_start_race "$losers starts refused, and the winner: '$winner'"; return; }
	frun --pool "$rsock" "$EX/hello" race
	[ $rc -eq 0 ] && grep -qx "Hello from a sandboxed function! race" "$tmp/out" || { kill -KILL $winner; bad pool_start_race "a run through the winner: status $rc"; return; }
	# A start while it runs: refused the same way.
	"$SANDBOX" pool start --socket "$rsock" --snapshot "$rsnap" --size 1 >/dev/null 2>"$tmp/race4.err" </dev/null
	rc=$?
	[ $rc -eq 100 ] && grep -qF "a pool is already running on $rsock" "$tmp/race4.err" || { kill -KILL $winner; bad pool_start_race "a start beside a running pool: status $rc: $(cat "$tmp/race4.err")"; return; }
	"$SANDBOX" pool stop --socket "$rsock" >/dev/null 2>&1
	wait_gone $winner 30 || { kill -KILL $winner; bad pool_start_race "the pool did not stop"; return; }
	wait $winner
	# The lock file stays (an empty file, mode 0600), and locks nothing: the next start runs.
	[ ! -e "$rsock" ] && [ ! -e "$rsock.d" ] || { bad pool_start_race "left $(ls -d "$rsock"* 2>/dev/null | tr '\n' ' ')"; return; }
	[ -f "$rsock.lock" ] && [ ! -s "$rsock.lock" ] || { bad pool_start_race "no empty lock file $rsock.lock after the stop"; return; }
	case $(ls -l "$rsock.lock") in
	-rw-------*) ;;
	*) bad pool_start_race "the lock file's mode: $(ls -l "$rsock.lock")"; return ;;
	esac
	"$SANDBOX" pool start --socket "$rsock" --snapshot "$rsnap" --size 1 >/dev/null 2>"$tmp/race5.err" </dev/null &
	r5=$!
	within 60 settled 1 "$rsock" || { kill -KILL $r5; bad pool_start_race "no pool over the lock file left behind: $(cat "$tmp/race5.err")"; return; }
	"$SANDBOX" pool stop --socket "$rsock" >/dev/null 2>&1
	wait_gone $r5 30 || { kill -KILL $r5; bad pool_start_race "the second pool did not stop"; return; }
	wait $r5
	rm -f "$tmp"/race?.err
	ok pool_start_race
}

t_pool_exit_deadline() {
	# A VM process the daemon is done with that does not end (here: stopped with SIGSTOP
	# while ready, then the pool stops) holds its --max-vms share until it is waited for: the
	# daemon kills it 5 s after it let it go (docs/pool.md), logs it, and finishes its drain.
	xsock=$tmp/x.sock
	xsnap=$(field snapshot)
	[ -f "$xsnap" ] || { bad pool_exit_deadline "no snapshot from the first pool: '$xsnap'"; return; }
	"$SANDBOX" pool start --socket "$xsock" --snapshot "$xsnap" --size 1 --max-vms 1 --log "$tmp/x.log" >/dev/null 2>&1 </dev/null &
	x=$!
	within 60 settled 1 "$xsock" || { kill -KILL $x; bad pool_exit_deadline "no VM ready: $st"; return; }
	w=$(children $x)
	case $w in
	"" | *[!0-9]*) kill -KILL $x; bad pool_exit_deadline "not one VM process: '$w'"; return ;;
	esac
	kill -STOP "$w"
	s0=$(now_cs)
	"$SANDBOX" pool stop --socket "$xsock" >/dev/null 2>&1
	wait_gone $x 30 || { kill -KILL $x "$w"; bad pool_exit_deadline "the pool still runs 30 s after pool stop: a stopped VM process holds it"; return; }
	el=$(($(now_cs) - s0))
	wait $x
	rc=$?
	echo "  timing: pool stop with a stopped VM process took $(cs_to_s $el) s"
	[ $rc -eq 0 ] || { bad pool_exit_deadline "the pool exited with $rc"; return; }
	[ $el -ge 400 ] || { bad pool_exit_deadline "it stopped after $(cs_to_s $el) s, before the 5 s deadline"; return; }
	grep -q "pool: a VM process (pid $w) did not end within 5 s of its last use: killed" "$tmp/x.log" || { bad pool_exit_deadline "no line about the kill in the log: $(tail -n 5 "$tmp/x.log")"; return; }
	alive "$w" && { kill -KILL "$w"; bad pool_exit_deadline "the stopped VM process $w is still there"; return; }
	[ ! -e "$xsock" ] && [ ! -e "$xsock.d" ] || { bad pool_exit_deadline "left $(ls -d "$xsock"* 2>/dev/null | tr '\n' ' ')"; return; }
	rm -f "$tmp/x.log"
	ok pool_exit_deadline
}

t_pool_queue_timeout() {
	# The only VM (--max-vms 1) is busy: a second run waits 2 s (--queue-timeout), then 115.
	[ -n "$qpid" ] || { bad pool_queue_timeout "no second pool (pool_daemon failed)"; return; }
	within 30 settled 1 "$QSOCK"
	bg_run long --pool "$QSOCK" "$EX/burn" 8
	within 30 is_busy 1 "$QSOCK" || { kill -KILL $bg; bad pool_queue_timeout "the long run never held the VM: $st"; return; }
	s0=$(now_cs)
	frun --pool "$QSOCK" "$EX/hello" late
	el=$(($(now_cs) - s0))
	echo "  timing: the queued run ended after $(cs_to_s $el) s"
	[ $rc -eq 115 ] || { kill -KILL $bg; bad pool_queue_timeout "exit status $rc, expected 115"; return; }
	grep -qF "sandbox: pool exhausted: no VM became free within 2 s" "$tmp/err" || { kill -KILL $bg; bad pool_queue_timeout "no 'pool exhausted' message"; return; }
	[ -s "$tmp/out" ] && { kill -KILL $bg; bad pool_queue_timeout "the queued run printed something"; return; }
	[ $el -ge 180 ] && [ $el -le 600 ] || { kill -KILL $bg; bad pool_queue_timeout "it took $(cs_to_s $el) s, expected about 2"; return; }
	# No second VM meanwhile: the one alive is the busy one.
	status "$QSOCK"
	[ "$(get busy)" = 1 ] && [ "$(get ready)" = 0 ] && [ "$(get restoring)" = 0 ] || { kill -KILL $bg; bad pool_queue_timeout "more than 1 VM (--max-vms 1): $st"; return; }
	[ "$(get queue_timeouts)" = 1 ] || { kill -KILL $bg; bad pool_queue_timeout "queue_timeouts: $st"; return; }
	wait_gone $bg 30 || { kill -KILL $bg; bad pool_queue_timeout "the long run did not end"; return; }
	wait $bg
	rc=$?
	cp "$tmp/long.err" "$tmp/err"
	[ $rc -eq 0 ] || { bad pool_queue_timeout "the long run: status $rc"; return; }
	grep -Eqx '[0-9]+ loops' "$tmp/long.out" || { bad pool_queue_timeout "the long run: output $(cat "$tmp/long.out")"; return; }
	within 30 settled 1 "$QSOCK" || { bad pool_queue_timeout "no VM ready again: $st"; return; }
	ok pool_queue_timeout
}

# unused PATTERN: no sandbox process has a file matching PATTERN open or mapped.
unused() {
	[ -z "$(refs "$1")" ]
}

t_pool_reload() {
	# SIGHUP: the snapshot file is checked again, idle VMs are replaced by VMs restored from it.
	[ -n "$qpid" ] || { bad pool_reload "no second pool (pool_daemon failed)"; return; }
	# The daemon and its VMs hold a.snap (open or mapped): once the file at that path is
	# replaced, the old one shows as "a.snap (deleted)" until nothing uses it any more.
	[ -n "$(refs "$tmp/a.snap")" ] || { bad pool_reload "no process of the pool holds $tmp/a.snap"; return; }
	# Another snapshot at that path: the base one (raw, file mode); a.snap was compressed.
	ln -f "$(field snapshot)" "$tmp/a.snap" || { bad pool_reload "cannot replace a.snap"; return; }
	kill -HUP "$qpid"
	# Without any run: the idle VM of the old file is replaced.
	within 60 eval 'settled 1 "$QSOCK" && unused "$tmp/a.snap (deleted)"' ||
		{ bad pool_reload "VMs of the replaced snapshot are still there: $(refs "$tmp/a.snap (deleted)"); $st"; return; }
	[ -n "$(refs "$tmp/a.snap")" ] || { bad pool_reload "no process of the pool holds the new $tmp/a.snap"; return; }
	alive "$qpid" || { bad pool_reload "the daemon ended on SIGHUP"; return; }
	[ "$(get snapshot)" = "$tmp/a.snap" ] || { bad pool_reload "snapshot line after SIGHUP: $(get snapshot)"; return; }
	if [ -x "$UNIXGET" ]; then
		"$UNIXGET" "$QSOCK" /metrics | grep -qx "sandbox_pool_reloads_total 1" || { bad pool_reload "sandbox_pool_reloads_total is not 1"; return; }
	fi
	for i in 1 2; do
		frun --pool "$QSOCK" "$EX/hello" "r$i"
		[ $rc -eq 0 ] && [ "$(cat "$tmp/out")" = "Hello from a sandboxed function! r$i" ] || { bad pool_reload "run $i after SIGHUP: status $rc"; return; }
		within 30 settled 1 "$QSOCK" || { bad pool_reload "no VM ready after run $i: $st"; return; }
	done
	# A file that is no snapshot: the reload fails, said in the log, and the pool goes on
	# with the file it holds.
	echo garbage >"$tmp/g.snap"
	mv -f "$tmp/g.snap" "$tmp/a.snap"
	kill -HUP "$qpid"
	within 30 grep -q "reload failed" "$tmp/q.log" || { bad pool_reload "no 'reload failed' in the log after a SIGHUP with a bad file"; return; }
	alive "$qpid" || { bad pool_reload "the daemon ended on a failed reload"; return; }
	within 30 settled 1 "$QSOCK" || { bad pool_reload "no VM ready after a failed reload: $st"; return; }
	frun --pool "$QSOCK" "$EX/hello" r3
	[ $rc -eq 0 ] && [ "$(cat "$tmp/out")" = "Hello from a sandboxed function! r3" ] || { bad pool_reload "a run after a failed reload: status $rc"; return; }
	ok pool_reload
}

t_pool_daemon_stop() {
	# pool stop: the detached daemon drains, exits and removes its pid file and socket.
	[ -n "$qpid" ] || { bad pool_daemon_stop "no second pool (pool_daemon failed)"; return; }
	"$SANDBOX" pool stop --socket "$QSOCK" >"$tmp/out" 2>"$tmp/err" </dev/null
	rc=$?
	[ $rc -eq 0 ] || { bad pool_daemon_stop "pool stop: status $rc"; return; }
	wait_gone "$qpid" 30 || { bad pool_daemon_stop "the daemon still runs 30 s after pool stop"; return; }
	qpid=
	within 5 eval '[ ! -e "$tmp/q.pid" ]' || { bad pool_daemon_stop "pid file left"; return; }
	[ -e "$QSOCK" ] && { bad pool_daemon_stop "socket left"; return; }
	[ -e "$QSOCK.d" ] && { bad pool_daemon_stop "$QSOCK.d left"; return; }
	within 10 eval '! procs | grep -qF "$QSOCK"' || { bad pool_daemon_stop "processes left: $(procs | grep -F "$QSOCK")"; return; }
	# --log: the daemon's stderr went there (it says at least that it listens).
	[ -s "$tmp/q.log" ] || { bad pool_daemon_stop "nothing in the --log file"; return; }
	ok pool_daemon_stop
}

# sample: what the main pool's daemon and the test host hold, into s_*.
sample() {
	s_fds=$(ls "/proc/$daemon/fd" | wc -l)
	s_rss=$(sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\) kB$/\1/p' "/proc/$daemon/status")
	s_procs=$(procs | wc -l)
	s_vmdir=$(find "$SOCK.d" 2>/dev/null | wc -l)
	s_avail=$(sed -n 's/^MemAvailable:[[:space:]]*\([0-9]*\) kB$/\1/p' /proc/meminfo)
	tmp_files >"$tmp/files.$1"
}

t_pool_leak() {
	# LEAK_RUNS runs one after the other leave the daemon and the test host as they were.
	i=0
	while [ $i -lt 20 ]; do
		i=$((i + 1))
		"$SANDBOX" run --pool "$SOCK" "$EX/hello" "w$i" >/dev/null 2>&1 </dev/null
	done
	within 30 settled 2 || { bad pool_leak "the pool did not settle after the warm-up: $st"; return; }
	sample before
	served=$(get served)
	failed=$(get failed)
	bad_runs=0
	first_bad=
	s0=$(now_cs)
	cap=$((s0 + LEAK_MAX_S * 100))
	i=0
	while [ $i -lt "$LEAK_RUNS" ]; do
		# now_cs without the fork of $(...)
		read -r up _ </proc/uptime
		[ "${up%.*}${up#*.}" -lt $cap ] || break
		i=$((i + 1))
		# Through a file and read, not $(...): one fork less per run.
		"$SANDBOX" run --pool "$SOCK" "$EX/hello" "$i" >"$tmp/out" 2>"$tmp/err" </dev/null
		rc=$?
		out= more=
		{
			read -r out
			read -r more
		} <"$tmp/out"
		if [ $rc -ne 0 ] || [ "$out" != "Hello from a sandboxed function! $i" ] || [ -n "$more" ]; then
			bad_runs=$((bad_runs + 1))
			[ -z "$first_bad" ] && first_bad="run $i: status $rc, output '$out', stderr '$(cat "$tmp/err")'"
			# A broken pool would make this loop long for nothing.
			[ $bad_runs -ge 5 ] && break
		fi
	done
	el=$(($(now_cs) - s0))
	echo "  timing: $i runs through the pool in $(cs_to_s $el) s, $((el * 10 / i)) ms each"
	[ $bad_runs -eq 0 ] || { bad pool_leak "$bad_runs bad runs, the first: $first_bad"; return; }
	within 30 settled 2 || { bad pool_leak "the pool did not settle after the runs: $st"; return; }
	echo "  daemon: latency p50 $(get latency_p50_ms) ms, p99 $(get latency_p99_ms) ms; wait p50 $(get wait_p50_ms) ms, p99 $(get wait_p99_ms) ms"
	[ "$(get served)" = $((served + i)) ] || { bad pool_leak "served $(get served), expected $((served + i))"; return; }
	[ "$(get failed)" = "$failed" ] || { bad pool_leak "failed went from $failed to $(get failed)"; return; }
	b_fds=$s_fds b_rss=$s_rss b_procs=$s_procs b_vmdir=$s_vmdir b_avail=$s_avail
	# The VMs that just ended may still be on their way out.
	within 10 eval '[ "$(procs | wc -l)" -eq $b_procs ]'
	sample after
	echo "  daemon fds $b_fds -> $s_fds, RSS $b_rss -> $s_rss kB; processes $b_procs -> $s_procs;" \
		"$SOCK.d entries $b_vmdir -> $s_vmdir; MemAvailable $b_avail -> $s_avail kB"
	for v in "$b_fds" "$s_fds" "$b_rss" "$s_rss" "$b_avail" "$s_avail"; do
		case $v in
		"" | *[!0-9]*) bad pool_leak "a sample is not a number: '$v'"; return ;;
		esac
	done
	[ "$s_fds" -eq "$b_fds" ] || { bad pool_leak "the daemon's open fds went from $b_fds to $s_fds"; return; }
	[ $((s_rss - b_rss)) -lt 2048 ] || { bad pool_leak "the daemon's RSS grew from $b_rss to $s_rss kB"; return; }
	[ "$s_procs" -eq 3 ] && [ "$b_procs" -eq 3 ] || { bad pool_leak "sandbox processes: $b_procs before, $s_procs after, expected 3: $(procs)"; return; }
	[ "$s_vmdir" -eq "$b_vmdir" ] || { bad pool_leak "$SOCK.d went from $b_vmdir to $s_vmdir entries: $(find "$SOCK.d")"; return; }
	cmp -s "$tmp/files.before" "$tmp/files.after" || { bad pool_leak "/tmp changed: $(diff "$tmp/files.before" "$tmp/files.after" | grep '^[-+]/' | head -n 10)"; return; }
	[ $((b_avail - s_avail)) -lt 65536 ] || { bad pool_leak "MemAvailable fell from $b_avail to $s_avail kB"; return; }
	if [ $i -lt "$LEAK_RUNS" ]; then
		echo "  note: pool_leak stopped after $i of $LEAK_RUNS runs: LEAK_MAX_S=$LEAK_MAX_S s passed (a slow test host)"
		ok "pool_leak ($i of $LEAK_RUNS runs)"
		return
	fi
	ok pool_leak
}

t_pool_sigkill() {
	# SIGKILL to the daemon while 2 VMs are ready and 1 runs a function.
	within 30 settled 2
	bg_run kill "$EX/burn" 30
	within 30 started 2 || { kill -KILL $bg; bad pool_sigkill "the function did not start in the pool: $st"; return; }
	[ "$(children $daemon | wc -l)" -ge 3 ] || { kill -KILL $bg; bad pool_sigkill "expected 3 VM processes: $(procs)"; return; }
	kill -KILL $daemon
	wait $daemon 2>/dev/null
	# The caller learns it at once: its connection to the daemon closed.
	wait_gone $bg 20 || { kill -KILL $bg; bad pool_sigkill "the caller still waits 20 s after the daemon was killed"; return; }
	wait $bg
	rc=$?
	cp "$tmp/kill.err" "$tmp/err"
	[ $rc -eq 100 ] || { bad pool_sigkill "the caller's exit status $rc, expected 100"; return; }
	[ -s "$tmp/kill.err" ] || { bad pool_sigkill "the caller printed no message"; return; }
	# The VM processes die with the daemon (PR_SET_PDEATHSIG); teardown takes a moment here.
	within 20 no_procs || { bad pool_sigkill "sandbox processes left: $(procs)"; return; }
	[ -d "$SOCK.d" ] && [ -n "$(ls -A "$SOCK.d")" ] && { bad pool_sigkill "left in $SOCK.d: $(ls -A "$SOCK.d")"; return; }
	# Nothing else of ours in /tmp but the stale socket (nobody listens), an empty $SOCK.d and
	# the lock file (tmp_files leaves it out).
	tmp_files | grep -vxF "$SOCK" >"$tmp/files.now"
	cmp -s "$tmp/files.start" "$tmp/files.now" || { bad pool_sigkill "/tmp changed: $(diff "$tmp/files.start" "$tmp/files.now" | grep '^[-+]/' | head -n 10)"; return; }
	# The socket file stays, stale: nobody listens, so a run restores inline.
	frun "$EX/hello" after
	[ $rc -eq 0 ] && [ "$(cat "$tmp/out")" = "Hello from a sandboxed function! after" ] || { bad pool_sigkill "run after the pool died: status $rc"; return; }
	frun --pool "$SOCK" "$EX/hello"
	[ $rc -eq 100 ] || { bad pool_sigkill "--pool to a dead pool: status $rc, expected 100"; return; }
	ok pool_sigkill
}

t_pool_stop() {
	start_pool || { bad pool_stop "the pool never had 2 ready VMs"; return; }
	# At most the 2 ready VMs' directories are there.
	[ "$(ls "$SOCK.d" 2>/dev/null | wc -l)" -le 2 ] || { bad pool_stop "$SOCK.d holds $(ls "$SOCK.d")"; return; }
	"$SANDBOX" pool stop || { bad pool_stop "pool stop failed"; return; }
	wait_gone $daemon 30 || { bad pool_stop "the pool still runs 30 s after pool stop"; return; }
	wait $daemon
	rc=$?
	[ $rc -eq 0 ] || { bad pool_stop "the pool exited with $rc"; return; }
	[ -e "$SOCK" ] && { bad pool_stop "socket left"; return; }
	[ -e "$SOCK.d" ] && { bad pool_stop "$SOCK.d left"; return; }
	within 10 no_procs || { bad pool_stop "sandbox processes left: $(procs)"; return; }
	ok pool_stop
}

t_pool_drain() {
	# SIGTERM drains: the running function finishes and reports, then the daemon exits 0.
	start_pool || { bad pool_drain "the pool never had 2 ready VMs"; return; }
	bg_run drain "$EX/burn" 3
	within 30 started 2 || { kill -KILL $bg; bad pool_drain "the function did not start in the pool: $st"; return; }
	kill -TERM $daemon
	wait_gone $daemon 30 || { kill -KILL $bg; bad pool_drain "the pool still runs 30 s after SIGTERM"; return; }
	wait $daemon
	rc=$?
	[ $rc -eq 0 ] || { kill -KILL $bg; bad pool_drain "the pool exited with $rc after SIGTERM"; return; }
	wait_gone $bg 10 || { kill -KILL $bg; bad pool_drain "the run still waits after the pool exited"; return; }
	wait $bg
	rc=$?
	cp "$tmp/drain.err" "$tmp/err"
	[ $rc -eq 0 ] || { bad pool_drain "the running function: status $rc"; return; }
	grep -Eqx '[0-9]+ loops' "$tmp/drain.out" || { bad pool_drain "the running function: output $(cat "$tmp/drain.out")"; return; }
	[ -e "$SOCK" ] && { bad pool_drain "socket left after SIGTERM"; return; }
	[ -e "$SOCK.d" ] && { bad pool_drain "$SOCK.d left after SIGTERM"; return; }
	within 10 no_procs || { bad pool_drain "sandbox processes left: $(procs)"; return; }
	tmp_files >"$tmp/files.now"
	cmp -s "$tmp/files.start" "$tmp/files.now" || { bad pool_drain "/tmp changed: $(diff "$tmp/files.start" "$tmp/files.now" | grep '^[-+]/' | head -n 10)"; return; }
	ok pool_drain
}

t0=$(now_cs)
tmp_files >"$tmp/files.start"
for t in pool_bad_snapshot pool_start pool_hello pool_exit_codes pool_stdin pool_concurrent pool_burst \
	pool_timeout_panic pool_client_gone pool_worker_kill pool_metrics pool_slow_request; do
	"t_$t"
	rm -f "$tmp/out" "$tmp/err"
done
# The second pool's snapshot: made here, compressed (uffd mode), replaced by pool_reload.
s0=$(now_cs)
case $("$SANDBOX" --version) in
*"(x86_64)"*) CONSOLE=ttyS0 ;;
*) CONSOLE=ttyAMA0 ;;
esac
"$SANDBOX" snapshot create --agent --cmdline "console=$CONSOLE quiet loglevel=1" -o "$tmp/a.snap" >"$tmp/out" 2>"$tmp/err" </dev/null ||
	echo "  snapshot create --agent failed: $(tail -n 5 "$tmp/err")"
echo "  timing: snapshot create --agent: $(cs_to_s $(($(now_cs) - s0))) s"
for t in pool_daemon pool_queue_timeout pool_reload pool_daemon_stop pool_start_race pool_exit_deadline pool_leak pool_sigkill \
	pool_stop pool_drain; do
	"t_$t"
	rm -f "$tmp/out" "$tmp/err"
done
[ -n "$daemon" ] && kill -KILL $daemon 2>/dev/null
[ -n "$qpid" ] && kill -KILL "$qpid" 2>/dev/null
# What a failed test left running must not outlive it.
for p in $(procs | cut -d' ' -f1); do
	kill -KILL "$p" 2>/dev/null
done
rm -rf "$tmp" "$SOCK" "$SOCK.d" "$SOCK.lock"
echo "  timing: pool.sh took $(cs_to_s $(($(now_cs) - t0))) s"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
