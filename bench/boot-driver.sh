#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Cold-boot benchmark driver, run inside the arm64 test host by bench/boot (busybox sh): the same
# kernel and initramfs booted by `sandbox boot` and by QEMU, alternately, each run timed from the
# VMM's exec to the guest init's first line, then killed; prints one RESULT line per run.
#
# Usage: sh bench.sh RUNS WARMUP CMDLINE
#   RUNS     measured rounds: each boots ours, then QEMU (strict alternation: every run follows
#            one of the other side, so neither profits from its own previous run)
#   WARMUP   rounds before those, checked but not measured
#   CMDLINE  the guest kernel command line, the same for both
# Expects in its own directory: sandbox, images/{Image,initramfs.cpio}, boottime
# (bench/boottime.c), qemu/{bin/qemu-system-aarch64,lib/} (bench/fetch-qemu). Output lines:
#   INFO ...                                                      about the set-up
#   RESULT kind=warmup|boot vmm=ours|qemu run=I order=J rc=0 BOOTTIME-FIELDS...
#   RESULT ... rc=N ... error=WORD       (followed by the run's last lines, "  | ...")
# BOOTTIME-FIELDS are bench/boottime's: wall_ms (exec to every process reaped), first_ms,
# kernel_ms (the first line with a printk time stamp, if the command line lets the kernel
# print), init_ms ("Hello from Linux!", the first thing images/agent/init.c prints), rss_kb
# (then), user_ms, sys_ms, maxrss_kb, left (processes left after the SIGKILL: must be 0).
# Exit status 0 when every run succeeded, 1 otherwise.

[ $# -eq 3 ] || {
	echo "usage: sh bench.sh RUNS WARMUP CMDLINE" >&2
	exit 2
}
runs=$1 warmup=$2 cmdline=$3
dir=$(cd "$(dirname "$0")" && pwd)
bt=$dir/boottime
q=$dir/qemu
image=$dir/images/Image
initrd=$dir/images/initramfs.cpio
want="Hello from Linux!"
log=/tmp/run.log
# A nested boot takes 2-5 s; a hang must not take the whole benchmark with it.
limit=60
failed=0

# QEMU is run through its own loader, directly, so that no wrapper shell's start-up is timed
# (bench/fetch-qemu's qemu-system-aarch64 script adds one). The machine is the one of
# bench/snapshot-driver.sh, without its QMP socket and migration options.
qemu() {
	"$q/lib/ld-linux-aarch64.so.1" --library-path "$q/lib" "$q/bin/qemu-system-aarch64" "$@"
}
qemu_args="-M virt,gic-version=3 -accel kvm -cpu host -m 128M -smp 1 -nographic -no-reboot -nic none -monitor none"
# Ours: the default images beside the binary (images/), memory and vCPUs spelled out.
ours_args="--mem 128 --vcpus 1"

echo "INFO host kernel=$(uname -r) cpus=$(nproc) mem_kb=$(awk '/MemTotal/ { print $2 }' /proc/meminfo) fs=$(stat -f -c %T /tmp) load=$(cut -d' ' -f1-3 /proc/loadavg | tr ' ' ,)"
qemu --version | head -n1 | sed 's/^/INFO qemu /'
echo "INFO sandbox $("$dir/sandbox" version 2>&1 | head -n1)"
echo "INFO guest image_bytes=$(stat -c %s "$image") initrd_bytes=$(stat -c %s "$initrd") mem_mib=128 vcpus=1 wait_for=$(echo "$want" | tr ' ' _)"
echo "INFO cmdline $cmdline"
echo "INFO ours sandbox boot $ours_args --cmdline '...'"
echo "INFO qemu-args $qemu_args -kernel Image -initrd initramfs.cpio -append '...'"

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

# measure KIND RUN ORDER VMM
measure() {
	m_tag="kind=$1 vmm=$4 run=$2 order=$3"
	: >"$log"
	if [ "$4" = qemu ]; then
		# shellcheck disable=SC2086 # qemu_args is split into words on purpose
		res=$("$bt" -t $limit -l "$log" -w "$want" -- \
			"$q/lib/ld-linux-aarch64.so.1" --library-path "$q/lib" "$q/bin/qemu-system-aarch64" \
			$qemu_args -kernel "$image" -initrd "$initrd" -append "$cmdline")
	else
		# shellcheck disable=SC2086 # ours_args is split into words on purpose
		res=$("$bt" -t $limit -l "$log" -w "$want" -- \
			"$dir/sandbox" boot $ours_args --cmdline "$cmdline")
	fi
	m_rc=$?
	case " $res " in
	*" init_ms="*) ;;
	*" error="*) ;;
	*) res="$res error=no-init-line" ;;
	esac
	report "$m_tag" "$m_rc" "$res"
}

i=1
while [ $i -le $((warmup + runs)) ]; do
	kind=boot run=$((i - warmup))
	if [ $i -le "$warmup" ]; then
		kind=warmup run=$i
	fi
	measure $kind $run 1 ours
	measure $kind $run 2 qemu
	i=$((i + 1))
done
echo "INFO end load=$(cut -d' ' -f1-3 /proc/loadavg | tr ' ' ,)"
exit $failed
