# shellcheck shell=sh disable=SC2034 # pool_waited_ms is read by the drivers
# SPDX-License-Identifier: Apache-2.0
# Pool helpers for the benchmark drivers (busybox sh, inside the arm64 test host), sourced by
# bench/run-driver.sh and bench/pool-driver.sh. Expects $dir (the tree, with ./sandbox).
: "${dir:?}"
# Every pool runs on its own socket, never the default one: a `sandbox run` without --pool then
# restores inline as it does without any pool (one failed connect() to the default socket).

# now_cs: hundredths of a second since the test host booted.
now_cs() {
	read -r up _ </proc/uptime
	echo "${up%.*}${up#*.}"
}

# pool_field SOCK NAME: one count from `sandbox pool status` (empty when no pool answers).
pool_field() {
	"$dir/sandbox" pool status --socket "$1" 2>/dev/null | sed -n "s/^$2 //p"
}

# pool_start SOCK SIZE LOG [pool start options]: starts a daemon in the background, its output
# appended to LOG; sets pool_pid. The caller waits for it with pool_wait.
pool_start() {
	ps_sock=$1 ps_size=$2 ps_log=$3
	shift 3
	rm -f "$ps_sock"
	"$dir/sandbox" pool start --size "$ps_size" --socket "$ps_sock" "$@" >>"$ps_log" 2>&1 </dev/null &
	pool_pid=$!
}

# pool_wait SOCK N SEC: returns 0 once the pool has N ready VMs and no run in progress, 1 when
# SEC seconds pass first or the daemon is gone. Sets pool_waited_ms.
pool_wait() {
	pw_t0=$(now_cs)
	pw_end=$((pw_t0 + $3 * 100))
	while :; do
		pw_st=$("$dir/sandbox" pool status --socket "$1" 2>/dev/null |
			awk '$1 == "ready" { r = $2 } $1 == "busy" { b = $2 } END { print r "," b }')
		if [ "$pw_st" = "$2,0" ]; then
			pool_waited_ms=$((($(now_cs) - pw_t0) * 10))
			return 0
		fi
		pool_waited_ms=$((($(now_cs) - pw_t0) * 10))
		[ "$(now_cs)" -lt $pw_end ] || return 1
		[ -n "$pool_pid" ] && ! kill -0 "$pool_pid" 2>/dev/null && return 1
		sleep 0.1
	done
}

# pool_stop SOCK: drains the daemon started by pool_start and reaps it (SIGKILL after 30 s).
pool_stop() {
	[ -n "$pool_pid" ] || return 0
	"$dir/sandbox" pool stop --socket "$1" >/dev/null 2>&1 || kill "$pool_pid" 2>/dev/null
	pst_end=$(($(now_cs) + 3000))
	while kill -0 "$pool_pid" 2>/dev/null && [ "$(now_cs)" -lt $pst_end ]; do
		sleep 0.1
	done
	kill -9 "$pool_pid" 2>/dev/null
	wait "$pool_pid" 2>/dev/null
	pool_pid=
}
