#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Pool benchmark driver, run inside the arm64 test host by `bench/run --pool` (busybox sh): warm-
# pool latency against inline restore, bwrap and native (bench/run-driver.sh with the side
# "pool"), sustained invocations per second with some of the test host's vCPUs kept busy, and
# the host memory each idle pooled VM costs in each memory mode. A progress line per case on
# stderr, RESULT lines on stdout.
#
# Usage: sh pool-driver.sh RUNS WARMUP SIDES SECONDS CALLERS BUSY VMS
#   RUNS WARMUP SIDES  part 1, passed to bench/run-driver.sh (SIDES should hold "pool")
#   SECONDS            part 2: how long each rate case runs
#   CALLERS            part 2: e.g. "2 4": callers running examples/hello in a loop, in parallel
#   BUSY               part 2: e.g. "0 1 2": test host vCPUs kept busy by a spinning shell
#   VMS                part 3: e.g. "1 4 8": idle VMs in the pool whose memory is read
# Expects in its own directory what bench/run-driver.sh does, that script as bench.sh, and
# pool-lib.sh. Output lines, besides bench.sh's:
#   RESULT kind=rate mode=pool|inline busy=B callers=K seconds=T ok=N late=N failed=N per_s=R
#          lat_median_ms=M lat_p90_ms=P load=L
#       ok: runs that ended correctly (exact hello line, status 0) before the time was up;
#       per_s = ok / T; late: correct runs that ended after it (not counted); lat_*: their
#       end-to-end times (bench/exectime wall_ms)
#   RESULT kind=mem enc=raw|zstd mode=file|uffd vms=N vm=I pid=P rss_kb= pss_kb= uss_kb=
#          shared_kb= guest_kb= guest_rss_kb= guest_pss_kb= guest_uss_kb= guest_shared_kb=
#          touched_kb=
#       one idle worker (VM) of a pool of N: smaps_rollup totals (uss = Private_Clean +
#       Private_Dirty, shared = Shared_Clean + Shared_Dirty) and the same for its guest memory
#       mapping alone (from smaps: the rw mapping of exactly the guest's size); touched_kb: the
#       snapshot's non-zero guest pages (snapshot inspect)
#   RESULT kind=mempool enc= mode= vms=N rc=0 ready_ms= workers=N daemon_rss_kb=
#          daemon_pss_kb= avail_drop_kb=
#       the pool as a whole: MemAvailable before the pool started minus once all N were ready
# Exit status 0 when every part succeeded, 1 otherwise.

[ $# -eq 7 ] || {
	echo "usage: sh pool-driver.sh RUNS WARMUP SIDES SECONDS CALLERS BUSY VMS" >&2
	exit 2
}
runs=$1 warmup=$2 sides=$3 secs=$4 callers=$5 busy=$6 vms=$7
dir=$(cd "$(dirname "$0")" && pwd)
et=$dir/exectime
hello=$dir/examples/hello
arg=bench
expect="Hello from a sandboxed function! $arg"
export SANDBOX_CACHE=/tmp/sandbox-cache
pool_size=${POOL_SIZE:-2}
tmp=/tmp/pool-bench
failed=0
pool_pid=
spin_pids=
# shellcheck source-path=SCRIPTDIR source=pool-lib.sh
. "$dir/pool-lib.sh"

progress() {
	echo "pool-bench: $*" >&2
}

# shellcheck disable=SC2317 # run by the trap
cleanup() {
	# shellcheck disable=SC2086 # a list of pids
	[ -z "$spin_pids" ] || kill $spin_pids 2>/dev/null
	[ -z "$pool_pid" ] || pool_stop "$pool_sock"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

rm -rf "$tmp"
mkdir -p "$tmp"

# --- part 1: latency, interleaved with native, bwrap and inline ----------------------------------
progress "part 1: $runs round(s) after $warmup warm-up round(s) of: $sides"
POOL_SIZE=$pool_size sh "$dir/bench.sh" "$runs" "$warmup" "$sides" || failed=1
raw_snap=
for f in "$SANDBOX_CACHE"/snapshots/*.snap; do
	[ -f "$f" ] && raw_snap=$f
done
if [ -z "$raw_snap" ]; then
	# Part 1 ran without an inline side: the first pool start makes the base snapshot.
	"$dir/sandbox" run --no-pool "$hello" "$arg" >/dev/null 2>&1
	for f in "$SANDBOX_CACHE"/snapshots/*.snap; do
		[ -f "$f" ] && raw_snap=$f
	done
fi

# --- part 2: sustained invocations per second ----------------------------------------------------
# spin_start N: N shells spinning, the first on vCPU 0, the next on vCPU 1, ...
spin_start() {
	ss_i=0
	while [ $ss_i -lt "$1" ]; do
		if command -v taskset >/dev/null 2>&1; then
			taskset -c $ss_i /bin/busybox sh -c 'while :; do :; done' &
		else
			/bin/busybox sh -c 'while :; do :; done' &
		fi
		spin_pids="$spin_pids $!"
		ss_i=$((ss_i + 1))
	done
}

spin_stop() {
	[ -n "$spin_pids" ] || return 0
	# shellcheck disable=SC2086 # a list of pids
	kill $spin_pids 2>/dev/null
	# shellcheck disable=SC2086
	wait $spin_pids 2>/dev/null
	spin_pids=
}

# run_loop ID END FLAGS...: runs hello in a loop until the uptime END (hundredths), then writes
# "ok late failed" to $tmp/caller.ID and each counted run's wall_ms to $tmp/lat.ID.
run_loop() {
	c_id=$1 c_end=$2
	shift 2
	c_ok=0 c_late=0 c_bad=0
	: >"$tmp/lat.$c_id"
	while [ "$(now_cs)" -lt "$c_end" ]; do
		: >"$tmp/clog.$c_id"
		c_res=$("$et" -t 60 -l "$tmp/clog.$c_id" -o "$expect" -- "$dir/sandbox" run "$@" "$hello" "$arg")
		c_rc=$?
		if [ $c_rc -ne 0 ]; then
			c_bad=$((c_bad + 1))
			{
				echo "$c_res"
				tail -n 5 "$tmp/clog.$c_id"
			} >>"$tmp/cerr.$c_id"
		elif [ "$(now_cs)" -le "$c_end" ]; then
			c_ok=$((c_ok + 1))
			c_w=${c_res#*wall_ms=}
			echo "${c_w%% *}" >>"$tmp/lat.$c_id"
		else
			c_late=$((c_late + 1))
		fi
	done
	echo "$c_ok $c_late $c_bad" >"$tmp/caller.$c_id"
}

# rate MODE BUSY K
rate() {
	r_mode=$1 r_busy=$2 r_k=$3
	if [ "$r_mode" = pool ]; then
		set -- --pool "$pool_sock"
		pool_wait "$pool_sock" "$pool_size" 60 ||
			echo "INFO pool-not-full rate mode=$r_mode busy=$r_busy callers=$r_k waited_ms=$pool_waited_ms"
	else
		set -- --no-pool
	fi
	rm -f "$tmp"/caller.* "$tmp"/lat.* "$tmp"/cerr.*
	spin_start "$r_busy"
	r_end=$(($(now_cs) + secs * 100))
	r_pids=
	r_i=1
	while [ $r_i -le "$r_k" ]; do
		run_loop $r_i $r_end "$@" &
		r_pids="$r_pids $!"
		r_i=$((r_i + 1))
	done
	# shellcheck disable=SC2086 # a list of pids
	wait $r_pids
	r_load=$(cut -d' ' -f1 /proc/loadavg)
	spin_stop
	r_sum=$(cat "$tmp"/caller.* 2>/dev/null | awk '{ o += $1; l += $2; b += $3; n++ } END { print o + 0, l + 0, b + 0, n + 0 }')
	# shellcheck disable=SC2086 # four numbers
	set -- $r_sum
	r_lat=$(sort -n "$tmp"/lat.* 2>/dev/null | awk '
		{ v[NR] = $1 }
		function rank(p,   k) { k = int(p * NR / 100); if (k < p * NR / 100) k++; return v[k < 1 ? 1 : k] }
		END { if (NR) printf "lat_median_ms=%s lat_p90_ms=%s", (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2), rank(90); else printf "lat_median_ms=n/a lat_p90_ms=n/a" }')
	r_rate=$(awk -v n="$1" -v t="$secs" 'BEGIN { printf "%.3f", n / t }')
	r_rc=0
	[ "$3" -eq 0 ] && [ "$4" -eq "$r_k" ] || r_rc=1
	echo "RESULT kind=rate mode=$r_mode busy=$r_busy callers=$r_k seconds=$secs rc=$r_rc ok=$1 late=$2 failed=$3 per_s=$r_rate $r_lat load=$r_load"
	if [ $r_rc -ne 0 ]; then
		failed=1
		cat "$tmp"/cerr.* 2>/dev/null | tail -n 12 | sed 's/^/  | /'
	fi
	progress "rate mode=$r_mode busy=$r_busy callers=$r_k: $1 ok in $secs s ($r_rate/s), $3 failed"
}

pool_sock=/tmp/bench-rate.sock
: >"$tmp/rate-pool.log"
pool_start "$pool_sock" "$pool_size" "$tmp/rate-pool.log"
if pool_wait "$pool_sock" "$pool_size" 120; then
	echo "INFO rate-pool size=$pool_size ready_ms=$pool_waited_ms taskset=$(command -v taskset >/dev/null 2>&1 && echo yes || echo no)"
	for b in $busy; do
		for k in $callers; do
			# Pool and inline interleaved, so that a drift of the machine hits both.
			rate pool "$b" "$k"
			rate inline "$b" "$k"
		done
	done
else
	echo "INFO rate-pool size=$pool_size error=not-ready"
	sed 's/^/  | /' "$tmp/rate-pool.log"
	failed=1
fi
pool_stop "$pool_sock"
grep -v '^sandbox-timing:' "$tmp/rate-pool.log" | sed 's/^/INFO rate-pool-log /'

# --- part 3: host memory per idle pooled VM ------------------------------------------------------
# kb FILE KEY: a "Key: N kB" value of a /proc file.
kb() {
	awk -v k="$2:" '$1 == k { print $2; exit }' "$1" 2>/dev/null
}

# memline PID GUEST_KB: smaps_rollup totals and the guest mapping's, as KEY=VALUE.
memline() {
	awk -v gkb="$2" '
	FILENAME ~ /smaps_rollup$/ {
		if ($1 == "Rss:") rss = $2
		if ($1 == "Pss:") pss = $2
		if ($1 ~ /^Private_(Clean|Dirty):$/) uss += $2
		if ($1 ~ /^Shared_(Clean|Dirty):$/) shared += $2
		next
	}
	/^[0-9a-f]+-[0-9a-f]+ / { flush(); perms = $2; next }
	{ v[$1] = $2 }
	function flush() {
		if (perms ~ /^rw/ && v["Size:"] == gkb) {
			n++
			grss += v["Rss:"]; gpss += v["Pss:"]
			guss += v["Private_Clean:"] + v["Private_Dirty:"]
			gsh += v["Shared_Clean:"] + v["Shared_Dirty:"]
		}
		split("", v)
	}
	END {
		flush()
		printf "rss_kb=%d pss_kb=%d uss_kb=%d shared_kb=%d guest_kb=%d guest_maps=%d guest_rss_kb=%d guest_pss_kb=%d guest_uss_kb=%d guest_shared_kb=%d",
			rss, pss, uss, shared, gkb, n, grss, gpss, guss, gsh
	}' "/proc/$1/smaps_rollup" "/proc/$1/smaps"
}

# children PID: the processes whose parent is PID.
children() {
	for d in /proc/[0-9]*; do
		read -r _ _ _ ch_pp _ <"$d/stat" 2>/dev/null || continue
		[ "$ch_pp" = "$1" ] && echo "${d#/proc/}"
	done
}

# mem ENC MODE SNAP N TOUCHED_KB GUEST_KB
mem() {
	m_enc=$1 m_mode=$2 m_snap=$3 m_n=$4 m_touched=$5 m_gkb=$6
	sync
	echo 1 >/proc/sys/vm/drop_caches 2>/dev/null
	m_before=$(kb /proc/meminfo MemAvailable)
	m_t0=$(now_cs)
	: >"$tmp/mem-pool.log"
	pool_start "$pool_sock" "$m_n" "$tmp/mem-pool.log" --snapshot "$m_snap"
	if ! pool_wait "$pool_sock" "$m_n" $((60 + m_n * 30)); then
		echo "RESULT kind=mempool enc=$m_enc mode=$m_mode vms=$m_n rc=1 error=not-ready waited_ms=$pool_waited_ms"
		sed 's/^/  | /' "$tmp/mem-pool.log"
		failed=1
		pool_stop "$pool_sock"
		return
	fi
	m_ready=$((($(now_cs) - m_t0) * 10))
	# Let the last restore's transient buffers go before reading.
	sleep 1
	m_after=$(kb /proc/meminfo MemAvailable)
	m_i=0
	for p in $(children "$pool_pid"); do
		m_i=$((m_i + 1))
		echo "RESULT kind=mem enc=$m_enc mode=$m_mode vms=$m_n vm=$m_i pid=$p $(memline "$p" "$m_gkb") touched_kb=$m_touched"
	done
	echo "RESULT kind=mempool enc=$m_enc mode=$m_mode vms=$m_n rc=0 ready_ms=$m_ready workers=$m_i daemon_rss_kb=$(kb "/proc/$pool_pid/smaps_rollup" Rss) daemon_pss_kb=$(kb "/proc/$pool_pid/smaps_rollup" Pss) avail_drop_kb=$((m_before - m_after))"
	[ "$m_i" -eq "$m_n" ] || failed=1
	pool_stop "$pool_sock"
	progress "memory enc=$m_enc mode=$m_mode vms=$m_n: $m_i worker(s) measured, ready in $m_ready ms"
}

# touched SNAP: "TOUCHED_KB GUEST_KB" from snapshot inspect.
touched() {
	"$dir/sandbox" snapshot inspect "$1" 2>/dev/null | awk '
		/^memory: / { pages = $2; size = $5; zero = $9 }
		/^memory region / { guest += $(NF - 1) * 1024 }
		END { printf "%d %d", (pages - zero) * size / 1024, guest }'
}

pool_sock=/tmp/bench-mem.sock
zstd_snap=$tmp/zstd.snap
progress "memory: making a zstd snapshot (snapshot create --agent)"
# The base snapshot's guest: default kernel, initramfs, 128 MiB, 1 vCPU and run's command line.
"$dir/sandbox" snapshot create --agent -o "$zstd_snap" --cmdline "console=ttyAMA0 quiet loglevel=1" \
	>"$tmp/create.log" 2>&1 </dev/null || {
	echo "INFO zstd-snapshot error=create-failed"
	tail -n 10 "$tmp/create.log" | sed 's/^/  | /'
	failed=1
}
for s in raw zstd; do
	if [ $s = raw ]; then snap=$raw_snap mode=file; else snap=$zstd_snap mode=uffd; fi
	[ -f "$snap" ] || {
		echo "INFO mem-snapshot enc=$s error=missing"
		failed=1
		continue
	}
	# shellcheck disable=SC2046 # two numbers
	set -- $(touched "$snap")
	echo "INFO mem-snapshot enc=$s mode=$mode path=$snap size=$(stat -c %s "$snap") allocated=$(stat -c '%b %B' "$snap" | awk '{ print $1 * $2 }') touched_kb=$1 guest_kb=$2"
	for n in $vms; do
		mem $s $mode "$snap" "$n" "$1" "$2"
	done
done
echo "INFO end load=$(cut -d' ' -f1-3 /proc/loadavg | tr ' ' ,)"
exit $failed
