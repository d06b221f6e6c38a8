#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Where a virtio-blk guest's time goes, ours against QEMU: run inside the arm64 test host from the
# tree bench/blk builds (bench/blk --profile does both). For each side, one guest run of blkload;
# between a start and an end marker printed by the guest, it takes the deltas of
#   - KVM's exit counters (debugfs; they cover only live VMs, so both samples are taken while the
#     guest sleeps around blkload),
#   - the VMM's CPU time and context switches per thread (/proc/PID/task),
#   - the guest's interrupt counts (/proc/interrupts, printed by the guest itself),
# and prints them per completed I/O.
#
# Usage: sh profile.sh SECONDS SPEC...    SPEC: "NAME BLKLOAD-ARGS...", as for bench.sh
#   VMMS="ours qemu qemu-iothread" in the environment picks the sides (that is the default).
# Output: PROFILE lines: per VMM and SPEC, blkload's result, each counter's delta and per I/O, each
# thread's CPU time and context switches, and the guest's interrupt table before and after.

dir=$(cd "$(dirname "$0")" && pwd)
[ $# -ge 2 ] || {
	echo "usage: sh profile.sh SECONDS SPEC..." >&2
	exit 2
}
secs=$1
shift
data=/tmp/data.img
dbg=/sys/kernel/debug/kvm
[ -d "$dbg" ] || mount -t debugfs none /sys/kernel/debug
[ -f "$data" ] || dd if=/dev/zero of="$data" bs=1M count=256 2>/dev/null
limit=$((secs + 60))

# sample PID: one line of counters: kvm exits..., then per thread tid:comm:ticks:vol:invol
sample() {
	s=
	for c in exits mmio_exit_user mmio_exit_kernel wfi_exit_stat halt_wakeup halt_successful_poll \
		halt_attempted_poll signal_exits; do
		s="$s $c=$(cat "$dbg/$c" 2>/dev/null || echo 0)"
	done
	# shellcheck disable=SC2046 # the fields, split on purpose
	set -- $(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null)
	s="$s proc_ticks=$((${12:-0} + ${13:-0}))"
	echo "$s"
}

threads() {
	for t in /proc/"$1"/task/*; do
		[ -r "$t/stat" ] || continue
		comm=$(tr ' ' '_' <"$t/comm" 2>/dev/null)
		# Fields after the ")" that closes comm: utime is the 12th, stime the 13th.
		st=$(sed 's/^.*) //' "$t/stat" 2>/dev/null)
		# shellcheck disable=SC2086 # the fields, split on purpose
		set -- $st
		vol=$(awk '/^voluntary_ctxt_switches/ { print $2 }' "$t/status" 2>/dev/null)
		inv=$(awk '/^nonvoluntary_ctxt_switches/ { print $2 }' "$t/status" 2>/dev/null)
		echo "${t##*/}:$comm:$((${12:-0} + ${13:-0})):$vol:$inv"
	done
}

# profile VMM NAME BLKLOAD-ARGS
profile() {
	vmm=$1 tag="$1 $2"
	gcmd="/bin/busybox sh -c \"echo PROFILE-START; grep -E 'virtio|timer' /proc/interrupts; sleep 1; /bin/blkload -w 0 -t $secs $3 /dev/vda; grep -E 'virtio|timer' /proc/interrupts; echo PROFILE-END; sleep 2\""
	append="console=ttyAMA0 quiet loglevel=1 -- $gcmd"
	out=/tmp/profile.$vmm
	case $vmm in
	ours)
		"$dir/sandbox" boot --kernel "$dir/Image" --initrd "$dir/initramfs.cpio" --mem 256 \
			--timeout "$limit" --drive "path=$data" --cmdline "$append" >"$out" 2>&1 </dev/null &
		;;
	qemu | qemu-iothread)
		extra=virtio-blk-device,drive=d0
		iot=
		if [ "$vmm" = qemu-iothread ]; then
			iot="-object iothread,id=io0"
			extra=$extra,iothread=io0
		fi
		# shellcheck disable=SC2086
		"$dir/qemu/qemu-system-aarch64" -M virt,gic-version=3 -enable-kvm -cpu host -smp 1 \
			-m 256 -nographic -no-reboot -nic none -kernel "$dir/Image" \
			-initrd "$dir/initramfs.cpio" -append "$append" \
			-drive "if=none,id=d0,file=$data,format=raw,aio=io_uring,cache=writeback" \
			$iot -device "$extra" >"$out" 2>&1 </dev/null &
		;;
	esac
	pid=$!
	# The wrapper script execs the loader: same pid.
	before='' after='' tb='' ta=''
	while kill -0 "$pid" 2>/dev/null; do
		if [ -z "$before" ] && grep -q PROFILE-START "$out"; then
			sleep 0.5
			before=$(sample "$pid")
			tb=$(threads "$pid")
		fi
		if [ -n "$before" ] && [ -z "$after" ] && grep -q PROFILE-END "$out"; then
			sleep 0.3
			after=$(sample "$pid")
			ta=$(threads "$pid")
		fi
		sleep 0.2
	done
	wait "$pid"
	ops=$(sed -n 's/.* ops=\([0-9]*\).*/\1/p' "$out" | head -n1)
	echo "PROFILE $tag $(grep -m1 '^BLKLOAD' "$out" | tr -d '\r')"
	if [ -z "$after" ] || [ -z "$ops" ] || [ "$ops" -eq 0 ]; then
		echo "PROFILE $tag error: no complete sample"
		tail -n 20 "$out"
		return
	fi
	# Counter deltas per I/O.
	echo "$before" "|" "$after" | awk -v ops="$ops" -v vmm="$tag" '{
		for (i = 1; i <= NF && $i != "|"; i++) { split($i, kv, "="); b[kv[1]] = kv[2]; n[i] = kv[1] }
		for (i++; i <= NF; i++) { split($i, kv, "="); a[kv[1]] = kv[2] }
		for (k in a) printf "PROFILE %s %-22s %10d  %8.3f per I/O\n", vmm, k, a[k] - b[k], (a[k] - b[k]) / ops
	}' | sort
	# Per thread: CPU ticks (10 ms) and context switches, between the markers.
	{
		echo "$tb" | sed 's/^/B /'
		echo "$ta" | sed 's/^/A /'
	} | awk -v ops="$ops" -v vmm="$tag" -F'[ :]' '
		$1 == "B" { bt[$2] = $4; bv[$2] = $5; bi[$2] = $6 }
		$1 == "A" { name[$2] = $3; at[$2] = $4; av[$2] = $5; ai[$2] = $6 }
		END { for (t in at) printf "PROFILE %s thread %-7s %-16s cpu_ms %6d  vol_csw %7d (%.3f/I/O)  invol %6d\n",
			vmm, t, name[t], (at[t] - bt[t]) * 10, av[t] - bv[t], (av[t] - bv[t]) / ops, ai[t] - bi[t] }'
	# The guest's interrupt counts, before and after blkload.
	sed -n '/PROFILE-START/,/PROFILE-END/p' "$out" | grep -v BLKLOAD | tr -d '\r' | sed "s/^/PROFILE $tag guest| /"
}

for spec in "$@"; do
	name=${spec%% *}
	for v in ${VMMS:-ours qemu qemu-iothread}; do
		profile "$v" "$name" "${spec#"$name"}"
	done
done
