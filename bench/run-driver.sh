#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# sandbox-run benchmark driver, run inside the arm64 test host by bench/run (busybox sh): the same
# static binary (examples/hello) run natively (fork + exec), under bwrap, and by `sandbox run`,
# interleaved; prints one RESULT line per run.
#
# Usage: sh bench.sh RUNS WARMUP SIDES
#   RUNS    measured rounds: each runs every side once, rotating who goes first
#   WARMUP  rounds before those, checked but not measured
#   SIDES   e.g. "native bwrap sandbox sandbox-uffd sandbox-eager":
#             native         $dir/examples/hello bench
#             bwrap          Debian's bwrap (loader run by path) $BWRAP_ARGS examples/hello bench
#             sandbox        sandbox run examples/hello bench (default memory mode)
#             sandbox-MODE   sandbox run --mem-mode MODE examples/hello bench
#             pool           sandbox run --pool SOCK examples/hello bench, through a pool of
#                            $POOL_SIZE VMs (default 2) of the base snapshot on $POOL_SOCK
#                            (default /tmp/bench-pool.sock), started before the
#                            first round (SANDBOX_TIMING=1 in its environment); before every run
#                            of any side we wait until it has them all ready again (at most 60 s),
#                            so each pool run meets a warm pool and no refill runs beside another
#                            side's run
# Expects in its own directory: sandbox, images/{Image,initramfs.cpio}, examples/hello, exectime
# (bench/exectime.c), bwrap/{bin/bwrap,lib/} (bench/fetch-bwrap), pool-lib.sh (bench/). Output
# lines:
#   INFO ...                                                      about the set-up
#   RESULT kind=first side=sandbox rc=0 EXECTIME-FIELDS           the run that made the snapshot
#   RESULT kind=warmup|run side=S run=I order=N rc=0 EXECTIME-FIELDS...
#                          pool side: vm_connected_ms, vm_started_ms, vm_ended_ms (the VM's own
#                          SANDBOX_TIMING keys, ms since the run reached its worker) and
#                          pool_wait_ms (waiting for the pool to be full before the run)
#   RESULT ... rc=N ... error=WORD       (followed by the run's last lines, "  | ...")
# EXECTIME-FIELDS are bench/exectime's (wall_ms from fork to reaped; every run's stdout must be
# exactly the hello line) and, for the sandbox, its SANDBOX_TIMING=1 keys (ms since its main()).
# Exit status 0 when every run succeeded, 1 otherwise.

[ $# -eq 3 ] || {
	echo "usage: sh bench.sh RUNS WARMUP SIDES" >&2
	exit 2
}
runs=$1 warmup=$2 sides=$3
dir=$(cd "$(dirname "$0")" && pwd)
et=$dir/exectime
hello=$dir/examples/hello
arg=bench
expect="Hello from a sandboxed function! $arg"
bw=$dir/bwrap
bwrap_args="--ro-bind / / --dev /dev --proc /proc --unshare-all --die-with-parent"
log=/tmp/run.log
# The base snapshot is made by the first run, in a cache of our own.
export SANDBOX_CACHE=/tmp/sandbox-cache
limit=60
failed=0
pool_sock=${POOL_SOCK:-/tmp/bench-pool.sock}
pool_size=${POOL_SIZE:-2}
pool_log=/tmp/bench-pool.log
pool_pid=
# shellcheck source-path=SCRIPTDIR source=pool-lib.sh
. "$dir/pool-lib.sh"

# bwrap is dynamically linked and the test host has no /lib: its own loader runs it by path,
# directly, so that no wrapper shell's start-up is timed.
bwrap() {
	"$bw/lib/ld-linux-aarch64.so.1" --library-path "$bw/lib" "$bw/bin/bwrap" "$@"
}

echo "INFO host kernel=$(uname -r) cpus=$(nproc) mem_kb=$(awk '/MemTotal/ { print $2 }' /proc/meminfo) fs=$(stat -f -c %T /tmp) load=$(cut -d' ' -f1-3 /proc/loadavg | tr ' ' ,)"
echo "INFO bwrap $(cat "$bw/VERSION" 2>/dev/null || echo unknown) ($(bwrap --version 2>&1 | head -n1))"
echo "INFO bwrap-args $bwrap_args"
echo "INFO sandbox $("$dir/sandbox" version 2>&1 | head -n1)"
echo "INFO function $hello $arg size=$(stat -c %s "$hello") expect=$(echo "$expect" | tr ' ' _)"

# What bwrap's sandbox is, as seen from inside it, against the test host's own view.
ns_ids() {
	for n in cgroup ipc mnt net pid time user uts; do
		printf '%s=%s\n' "$n" "$(readlink "/proc/self/ns/$n" | tr -dc 0-9)"
	done
}
# The probe runs inside bwrap; /tmp is in the read-only view it gets of /.
cat >/tmp/bwrap-probe.sh <<'PROBE'
for n in cgroup ipc mnt net pid time user uts; do
	printf '%s=%s\n' "$n" "$(readlink "/proc/self/ns/$n" | tr -dc 0-9)"
done
awk '{ printf "uid_map=%s:%s:%s\n", $1, $2, $3; exit }' /proc/self/uid_map
awk '/^CapEff:/ { print "cap_eff=" $2 } /^CapBnd:/ { print "cap_bnd=" $2 }
	/^NoNewPrivs:/ { print "no_new_privs=" $2 } /^Seccomp:/ { print "seccomp=" $2 }' /proc/self/status
if touch /.bwrap-probe 2>/dev/null; then echo root=rw; else echo root=ro; fi
echo "dev=$(ls /dev | tr '\n' , | sed 's/,$//')"
echo "ifaces=$(awk -F: 'NR > 2 { gsub(/ /, "", $1); printf "%s%s", s, $1; s = "," }' /proc/net/dev)"
echo "pids=$(ls /proc | grep -c '^[0-9]*$')"
echo "kvm=$([ -e /dev/kvm ] && echo yes || echo no)"
PROBE
host_ns=$(ns_ids)
# shellcheck disable=SC2086 # bwrap_args is split into words on purpose
inside=$(bwrap $bwrap_args /bin/busybox sh /tmp/bwrap-probe.sh 2>&1)
p_rc=$?
new='' shared=''
for n in cgroup ipc mnt net pid time user uts; do
	h=$(echo "$host_ns" | sed -n "s/^$n=//p")
	b=$(echo "$inside" | sed -n "s/^$n=//p")
	if [ -n "$b" ] && [ "$b" != "$h" ]; then new="$new,$n"; else shared="$shared,$n"; fi
done
echo "INFO bwrap-isolation rc=$p_rc new_ns=${new#,} shared_ns=${shared#,} $(echo "$inside" |
	grep -E '^(uid_map|cap_eff|cap_bnd|no_new_privs|seccomp|root|dev|ifaces|pids|kvm)=' | tr '\n' ' ' | sed 's/ $//')"
host_caps=$(awk '/^CapEff:/ { print $2 }' /proc/self/status)
echo "INFO host-caps cap_eff=$host_caps"

# report TAG RC FIELDS: one RESULT line; a failed run also shows its last lines.
report() {
	r_tag=$1 r_rc=$2 r_fields=$3
	case " $r_fields " in
	*" error="*) [ "$r_rc" -ne 0 ] || r_rc=1 ;;
	esac
	if [ "$r_rc" -eq 0 ]; then
		echo "RESULT $r_tag $r_fields"
		return
	fi
	case " $r_fields " in
	*" error="*) ;;
	*) r_fields="$r_fields error=failed" ;;
	esac
	echo "RESULT $r_tag rc=$r_rc ${r_fields#rc=* }"
	tail -n 10 "$log" | tr -d '\r' | sed 's/^/  | /'
	failed=1
}

# measure TAG SIDE
measure() {
	m_tag=$1 m_side=$2
	m_extra=
	# A refill still running would slow down whichever side runs next.
	if [ -n "$pool_pid" ]; then
		pool_wait "$pool_sock" "$pool_size" 60 ||
			echo "INFO pool-not-full $m_tag side=$m_side waited_ms=$pool_waited_ms status=$("$dir/sandbox" pool status --socket "$pool_sock" 2>&1 | tr '\n' ,)"
		m_extra=" pool_wait_ms=$pool_waited_ms"
	fi
	: >"$log"
	case $m_side in
	native)
		res=$("$et" -t $limit -l "$log" -o "$expect" -- "$hello" "$arg")
		;;
	bwrap)
		# shellcheck disable=SC2086 # bwrap_args is split into words on purpose
		res=$("$et" -t $limit -l "$log" -o "$expect" -- \
			"$bw/lib/ld-linux-aarch64.so.1" --library-path "$bw/lib" "$bw/bin/bwrap" \
			$bwrap_args "$hello" "$arg")
		;;
	sandbox)
		res=$(SANDBOX_TIMING=1 "$et" -t $limit -l "$log" -o "$expect" -- \
			"$dir/sandbox" run "$hello" "$arg")
		;;
	pool)
		# The VM's timings (the daemon has SANDBOX_TIMING=1) reach the caller's stderr too,
		# counted from the run's arrival in its worker: renamed so as not to pass for the
		# inline run's keys, which count from main().
		res=$(SANDBOX_TIMING=1 "$et" -t $limit -l "$log" -o "$expect" -- \
			"$dir/sandbox" run --pool "$pool_sock" "$hello" "$arg")
		m_rc=$?
		res=$(echo "$res" | sed 's/ connected_ms=/ vm_connected_ms=/; s/ started_ms=/ vm_started_ms=/; s/ ended_ms=/ vm_ended_ms=/')
		report "$m_tag side=$m_side" "$m_rc" "$res$m_extra"
		return
		;;
	sandbox-*)
		res=$(SANDBOX_TIMING=1 "$et" -t $limit -l "$log" -o "$expect" -- \
			"$dir/sandbox" run --mem-mode "${m_side#sandbox-}" "$hello" "$arg")
		;;
	*)
		res="rc=2 error=unknown-side"
		;;
	esac
	m_rc=$?
	report "$m_tag side=$m_side" "$m_rc" "$res"
}

# rotate RUN LIST...: LIST rotated left by RUN-1, so who goes first changes from run to run.
rotate() {
	ro_k=$((($1 - 1) % ($# - 1)))
	shift
	ro_i=0
	for w in "$@"; do
		[ $ro_i -lt $ro_k ] || printf '%s ' "$w"
		ro_i=$((ro_i + 1))
	done
	ro_i=0
	for w in "$@"; do
		[ $ro_i -ge $ro_k ] || printf '%s ' "$w"
		ro_i=$((ro_i + 1))
	done
}

# The first sandbox run boots the guest and saves the base snapshot: timed once, kept apart.
case " $sides " in
*" sandbox"* | *" pool "*)
	rm -rf "$SANDBOX_CACHE"
	measure "kind=first" sandbox
	for f in "$SANDBOX_CACHE"/snapshots/*.snap; do
		[ -f "$f" ] && echo "INFO base-snapshot path=$f size=$(stat -c %s "$f") allocated=$(stat -c '%b %B' "$f" | awk '{ print $1 * $2 }')"
	done
	;;
esac
case " $sides " in
*" pool "*)
	trap 'pool_stop "$pool_sock"' EXIT
	trap 'exit 130' INT TERM HUP
	: >"$pool_log"
	t0=$(now_cs)
	export SANDBOX_TIMING=1
	pool_start "$pool_sock" "$pool_size" "$pool_log"
	unset SANDBOX_TIMING
	if pool_wait "$pool_sock" "$pool_size" 120; then
		echo "INFO pool size=$pool_size socket=$pool_sock ready_ms=$((($(now_cs) - t0) * 10))"
	else
		echo "INFO pool size=$pool_size socket=$pool_sock error=not-ready"
		sed 's/^/  | /' "$pool_log"
		failed=1
		# Its runs then fail at once (no pool listening) instead of each waiting for it.
		pool_stop "$pool_sock"
	fi
	;;
esac

i=1
while [ $i -le "$warmup" ]; do
	k=0
	# shellcheck disable=SC2086 # the list is split into words on purpose
	for s in $(rotate $i $sides); do
		k=$((k + 1))
		measure "kind=warmup run=$i order=$k" "$s"
	done
	i=$((i + 1))
done
i=1
while [ $i -le "$runs" ]; do
	k=0
	# shellcheck disable=SC2086 # the list is split into words on purpose
	for s in $(rotate $i $sides); do
		k=$((k + 1))
		measure "kind=run run=$i order=$k" "$s"
	done
	i=$((i + 1))
done
if [ -n "$pool_pid" ]; then
	echo "INFO pool-end $("$dir/sandbox" pool status --socket "$pool_sock" 2>&1 |
		awk 'NF == 2 { printf "%s%s=%s", s, $1, $2; s = " " }')"
	pool_stop "$pool_sock"
	grep -v '^sandbox-timing:' "$pool_log" | sed 's/^/INFO pool-log /'
fi
echo "INFO end load=$(cut -d' ' -f1-3 /proc/loadavg | tr ' ' ,)"
exit $failed
