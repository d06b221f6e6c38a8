#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# KSM benchmark driver, run inside the arm64 test host by bench/ksm (busybox sh): N idle VMs
# restored from one snapshot per configuration (memory mode, with or without `restore --ksm`),
# ksmd started, and the host memory they cost sampled every 2 s while it merges. A progress line
# per step on stderr, RESULT lines on stdout.
#
# Usage: sh ksm-driver.sh VMS SECONDS CONFIGS PAGES_TO_SCAN SLEEP_MS
#   VMS            idle VMs per configuration
#   SECONDS        how long each configuration is sampled after ksmd starts
#   CONFIGS        e.g. "eager-ksm uffd-ksm file eager file-ksm": MODE or MODE-ksm, MODE one of
#                  uffd eager file
#   PAGES_TO_SCAN, SLEEP_MS   ksmd's pace (/sys/kernel/mm/ksm), the same for every configuration
# Expects in its own directory: sandbox, images/Image, images/initramfs.cpio, examples/hello. The
# snapshot is the base snapshot `sandbox run` makes (raw, an idle guest whose agent waits), used
# by every configuration. Output lines:
#   INFO ...                                                      about the set-up
#   RESULT kind=ksm config=C mode=M ksm=0|1 vms=N t_s=T pages_shared= pages_sharing=
#          pages_unshared= pages_volatile= full_scans= rss_kb= pss_kb= uss_kb= anon_huge_kb=
#          alive=N
#       one sample: the /sys/kernel/mm/ksm counters (full_scans counted from this
#       configuration's start) and the sums over the N VM processes of smaps_rollup's Rss, Pss,
#       USS (Private_Clean + Private_Dirty) and AnonHugePages; alive: VM processes still
#       there; t_s=0 is taken before ksmd starts
#   RESULT kind=ksm-summary config=C mode=M ksm=0|1 vms=N rc=0|1 pss_kb_per_vm_first=
#          pss_kb_per_vm_last= uss_kb_per_vm_last= rss_kb_per_vm_last= saved_kb= ksm_saved_kb=
#          converged_s=
#       saved_kb: the VMs' summed Pss at t=0 minus at the end; ksm_saved_kb: pages_sharing at the
#       end in kB (what ksmd reports saved); converged_s: the first sample from which
#       pages_sharing stays within 5% of its last value (n/a: nothing merged, or it still moved
#       at the last sample)
# Exit status 0 when every configuration ran (all its VMs restored and alive to the end), 1
# otherwise.

[ $# -eq 5 ] || {
	echo "usage: sh ksm-driver.sh VMS SECONDS CONFIGS PAGES_TO_SCAN SLEEP_MS" >&2
	exit 2
}
vms=$1 secs=$2 configs=$3 pages_to_scan=$4 sleep_ms=$5
dir=$(cd "$(dirname "$0")" && pwd)
ksm=/sys/kernel/mm/ksm
tmp=/tmp/ksm-bench
export SANDBOX_CACHE=/tmp/sandbox-cache
# Seconds between the last VM's restore and the t=0 sample: the restored guests' first steps
# (the agent's vsock reset, timers) touch their pages then, not during the measurement.
settle=3
failed=0
vm_pids=
orig_pages='' orig_sleep=''

progress() {
	echo "ksm-bench: $*" >&2
}

# now_cs: hundredths of a second since the test host booted.
now_cs() {
	read -r up _ </proc/uptime
	echo "${up%.*}${up#*.}"
}

# ksm_set FILE VALUE: writes one ksmd knob; 1 (and an INFO line) if the kernel refused.
ksm_set() {
	if ! echo "$2" >"$ksm/$1" 2>/dev/null; then
		echo "INFO ksm-write file=$1 value=$2 error=refused"
		return 1
	fi
}

# stop_vms: SIGTERM to every VM of the configuration, reaped; SIGKILL for one still there.
stop_vms() {
	[ -n "$vm_pids" ] || return 0
	# shellcheck disable=SC2086 # a list of pids
	kill -TERM $vm_pids 2>/dev/null
	for p in $vm_pids; do
		{ wait "$p"; } 2>/dev/null
	done
	for p in $vm_pids; do
		if kill -0 "$p" 2>/dev/null; then
			echo "INFO leftover pid=$p"
			kill -KILL "$p" 2>/dev/null
			failed=1
		fi
	done
	vm_pids=
	rm -f "$tmp"/vm*.sock "$tmp"/vm*.sock_*
}

# unmerge: ksmd stopped and every merged page given back, so that the next configuration starts
# from nothing; 1 if the counters do not reach zero within 30 s.
unmerge() {
	ksm_set run 2 || return 1
	u_end=$(($(now_cs) + 3000))
	while [ "$(cat $ksm/pages_shared)" != 0 ] || [ "$(cat $ksm/pages_sharing)" != 0 ]; do
		if [ "$(now_cs)" -ge $u_end ]; then
			echo "INFO unmerge error=timeout pages_shared=$(cat $ksm/pages_shared) pages_sharing=$(cat $ksm/pages_sharing)"
			return 1
		fi
		sleep 0.2
	done
	ksm_set run 0
}

# shellcheck disable=SC2317 # run by the trap
cleanup() {
	stop_vms
	if [ -d "$ksm" ]; then
		echo 2 >"$ksm/run" 2>/dev/null
		[ -z "$orig_pages" ] || echo "$orig_pages" >"$ksm/pages_to_scan" 2>/dev/null
		[ -z "$orig_sleep" ] || echo "$orig_sleep" >"$ksm/sleep_millisecs" 2>/dev/null
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

rm -rf "$tmp"
mkdir -p "$tmp"

page_kb=$(awk '$1 == "KernelPageSize:" { print $2; exit }' /proc/self/smaps)
# Transparent huge pages matter: ksmd splits a huge page to merge its small ones.
thp=$(sed 's/.*\[\(.*\)\].*/\1/' /sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null)
echo "INFO host kernel=$(uname -r) cpus=$(grep -c '^processor' /proc/cpuinfo) mem_total_kb=$(awk '$1 == "MemTotal:" { print $2 }' /proc/meminfo) page_kb=$page_kb thp=${thp:-none}"
if [ ! -d $ksm ]; then
	echo "INFO ksm error=absent (this kernel has no /sys/kernel/mm/ksm: CONFIG_KSM is off)"
	progress "this kernel has no KSM: nothing to measure"
	exit 1
fi
orig_pages=$(cat $ksm/pages_to_scan)
orig_sleep=$(cat $ksm/sleep_millisecs)
echo "INFO ksm defaults pages_to_scan=$orig_pages sleep_millisecs=$orig_sleep max_page_sharing=$(cat $ksm/max_page_sharing 2>/dev/null) use_zero_pages=$(cat $ksm/use_zero_pages 2>/dev/null) merge_across_nodes=$(cat $ksm/merge_across_nodes 2>/dev/null)"
echo "INFO ksm settings pages_to_scan=$pages_to_scan sleep_millisecs=$sleep_ms max_pages_per_s=$((pages_to_scan * 1000 / sleep_ms)) sample_every_s=2 settle_s=$settle"
unmerge || failed=1

# --- the snapshot: the base snapshot of `sandbox run`, an idle guest ------------------------------
progress "making the base snapshot (sandbox run examples/hello)"
t0=$(now_cs)
if ! "$dir/sandbox" run --no-pool "$dir/examples/hello" ksm >"$tmp/run.log" 2>&1 </dev/null; then
	echo "INFO snapshot error=run-failed"
	tail -n 10 "$tmp/run.log" | sed 's/^/  | /'
	exit 1
fi
snap=
for f in "$SANDBOX_CACHE"/snapshots/*.snap; do
	[ -f "$f" ] && snap=$f
done
[ -n "$snap" ] || {
	echo "INFO snapshot error=missing"
	exit 1
}
# shellcheck disable=SC2046 # two numbers
set -- $("$dir/sandbox" snapshot inspect "$snap" 2>/dev/null | awk '
	/^memory: / { pages = $2; size = $5; zero = $9 }
	/^memory region / { guest += $(NF - 1) * 1024 }
	END { printf "%d %d", (pages - zero) * size / 1024, guest }')
echo "INFO snapshot path=$snap size=$(stat -c %s "$snap") allocated=$(stat -c '%b %B' "$snap" | awk '{ print $1 * $2 }') touched_kb=$1 guest_kb=$2 made_ms=$((($(now_cs) - t0) * 10))"

# --- one configuration -----------------------------------------------------------------------------
# sample CONFIG MODE KSM T: one RESULT line; appends "T PAGES_SHARING RSS PSS USS" to $tmp/samples.
sample() {
	s_alive=0
	for p in $vm_pids; do
		kill -0 "$p" 2>/dev/null && s_alive=$((s_alive + 1))
	done
	# shellcheck disable=SC2046 # five numbers
	set -- "$@" $(cat $ksm/pages_shared $ksm/pages_sharing $ksm/pages_unshared \
		$ksm/pages_volatile $ksm/full_scans)
	# shellcheck disable=SC2046 # four numbers
	set -- "$@" $(for p in $vm_pids; do cat "/proc/$p/smaps_rollup" 2>/dev/null; done | awk '
		$1 == "Rss:" { r += $2 }
		$1 == "Pss:" { p += $2 }
		$1 == "Private_Clean:" || $1 == "Private_Dirty:" { u += $2 }
		$1 == "AnonHugePages:" { h += $2 }
		END { printf "%d %d %d %d", r, p, u, h }')
	echo "RESULT kind=ksm config=$1 mode=$2 ksm=$3 vms=$vms t_s=$4 pages_shared=$5 pages_sharing=$6 pages_unshared=$7 pages_volatile=$8 full_scans=$((${9} - scans0)) rss_kb=${10} pss_kb=${11} uss_kb=${12} anon_huge_kb=${13} alive=$s_alive"
	echo "$4 $6 ${10} ${11} ${12}" >>"$tmp/samples"
	[ "$s_alive" -eq "$vms" ] || c_rc=1
}

# config NAME: N VMs restored, settled, sampled for SECONDS with ksmd running, stopped, unmerged.
config() {
	c_name=$1 c_mode=${1%-ksm} c_ksm=0 c_rc=0
	c_flag=
	if [ "$c_mode" != "$c_name" ]; then
		c_ksm=1
		c_flag=--ksm
	fi
	progress "$c_name: restoring $vms VM(s) (--mem-mode $c_mode${c_flag:+ $c_flag})"
	c_t0=$(now_cs)
	i=1
	while [ $i -le "$vms" ]; do
		# The limit is only a net for a driver that dies; the VMs are stopped below.
		# shellcheck disable=SC2086 # c_flag: empty or one word
		SANDBOX_TIMING=1 "$dir/sandbox" restore "$snap" --mem-mode "$c_mode" $c_flag \
			--vsock-uds "$tmp/vm$i.sock" --timeout $((secs + 600)) \
			>"$tmp/vm$i.log" 2>&1 </dev/null &
		vm_pids="$vm_pids $!"
		i=$((i + 1))
	done
	# Every VM past its restore (restore_ms: memory provided, madvise done, vCPUs about to run).
	c_end=$(($(now_cs) + 6000 + vms * 1000))
	while :; do
		c_ready=0 c_dead=0
		i=1
		for p in $vm_pids; do
			if grep -q 'restore_ms=' "$tmp/vm$i.log" 2>/dev/null; then
				c_ready=$((c_ready + 1))
			elif ! kill -0 "$p" 2>/dev/null; then
				c_dead=$((c_dead + 1))
			fi
			i=$((i + 1))
		done
		if [ $c_ready -eq "$vms" ] || [ $c_dead -gt 0 ] || [ "$(now_cs)" -ge $c_end ]; then
			break
		fi
		sleep 0.2
	done
	if [ "$c_ready" -ne "$vms" ]; then
		echo "RESULT kind=ksm-summary config=$c_name mode=$c_mode ksm=$c_ksm vms=$vms rc=1 error=not-restored ready=$c_ready dead=$c_dead"
		for f in "$tmp"/vm*.log; do
			grep -v '^sandbox-timing:' "$f" | tail -n 3 | sed "s|^|  | ${f##*/}: |"
		done
		stop_vms
		unmerge
		failed=1
		return
	fi
	echo "INFO config=$c_name restored_ms=$((($(now_cs) - c_t0) * 10))"
	sleep $settle
	: >"$tmp/samples"
	scans0=$(cat $ksm/full_scans)
	sample "$c_name" "$c_mode" $c_ksm 0
	# ksmd runs in every configuration, so that each pays for it; without --ksm it finds nothing.
	ksm_set pages_to_scan "$pages_to_scan" || c_rc=1
	ksm_set sleep_millisecs "$sleep_ms" || c_rc=1
	ksm_set run 1 || c_rc=1
	progress "$c_name: ksmd started; sampling every 2 s for $secs s"
	c_start=$(now_cs)
	t=2
	while [ $t -le "$secs" ]; do
		while [ "$(now_cs)" -lt $((c_start + t * 100)) ]; do
			sleep 0.1
		done
		sample "$c_name" "$c_mode" $c_ksm $t
		t=$((t + 2))
	done
	stop_vms
	unmerge || c_rc=1
	c_sum=$(awk -v n="$vms" -v pk="$page_kb" '
		{ t[NR] = $1; ps[NR] = $2; rss[NR] = $3; pss[NR] = $4; uss[NR] = $5 }
		END {
			l = NR; f = ps[l]; conv = "n/a"
			if (f > 0) {
				c = l
				for (i = l; i >= 1; i--) {
					d = ps[i] - f
					if (d < 0) d = -d
					if (d > 0.05 * f) break
					c = i
				}
				if (c < l) conv = t[c]
			}
			printf "pss_kb_per_vm_first=%d pss_kb_per_vm_last=%d uss_kb_per_vm_last=%d rss_kb_per_vm_last=%d saved_kb=%d ksm_saved_kb=%d converged_s=%s",
				pss[1] / n, pss[l] / n, uss[l] / n, rss[l] / n, pss[1] - pss[l], f * pk, conv
		}' "$tmp/samples")
	echo "RESULT kind=ksm-summary config=$c_name mode=$c_mode ksm=$c_ksm vms=$vms rc=$c_rc $c_sum"
	[ $c_rc -eq 0 ] || failed=1
	progress "$c_name: done (rc=$c_rc) $c_sum"
}

for c in $configs; do
	config "$c"
done
echo "INFO end load=$(cut -d' ' -f1-3 /proc/loadavg | tr ' ' ,) mem_available_kb=$(awk '$1 == "MemAvailable:" { print $2 }' /proc/meminfo)"
exit $failed
