#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# virtio-blk benchmark driver, run inside the arm64 test host by bench/blk (busybox sh): boots the
# same guest (kernel, initramfs with blkload) under our sandbox and under QEMU, interleaved, on the
# same data file, and prints one RESULT line per guest run.
#
# Usage: sh bench.sh RUNS SECONDS WARMUP SIZE_MIB VMMS SPEC...
#   VMMS  which to run, in this order on odd runs (rotated by one on each run): "ours qemu" or
#         "ours qemu qemu-iothread" (QEMU with its virtio-blk in a dedicated -object iothread)
#   SPEC  "NAME BLKLOAD-ARGS...", e.g. "randread -p randread -b 4096 -q 32"
# Expects in its own directory: sandbox, Image, initramfs.cpio, qemu/qemu-system-aarch64.
# Output lines:
#   INFO ...                                          about the set-up
#   RESULT vmm=VMM spec=NAME run=I order=N rc=0 wall=S BLKLOAD-FIELDS...
#   RESULT vmm=VMM spec=NAME run=I order=N rc=N error=...   (and the guest's last lines)
# Exit status 0 when every run produced a result, 1 otherwise.

[ $# -ge 6 ] || {
	echo "usage: sh bench.sh RUNS SECONDS WARMUP SIZE_MIB VMMS SPEC..." >&2
	exit 2
}
runs=$1 secs=$2 warm=$3 size=$4 vmms=$5
shift 5
dir=$(cd "$(dirname "$0")" && pwd)
data=/tmp/data.img
out=/tmp/bench.out
# A guest that hangs must not take the whole benchmark with it.
limit=$(awk -v s="$secs" -v w="$warm" 'BEGIN { printf "%d", s + w + 60 }')
# Quiet: every console byte is an emulated MMIO exit in a nested guest.
append_base="console=ttyAMA0 quiet loglevel=1"
failed=0

# The test host's /tmp is tmpfs, which in its 6.1 kernel refuses O_DIRECT: both sides use the
# host page cache (ours: direct=off, the default; QEMU: cache=writeback). Written data, not a
# sparse file: holes would read as the shared zero page.
dd if=/dev/zero of="$data" bs=1M count="$size" 2>/dev/null || {
	echo "INFO error: cannot create $size MiB $data"
	exit 1
}
echo "INFO host kernel=$(uname -r) cpus=$(nproc) mem_kb=$(awk '/MemTotal/ { print $2 }' /proc/meminfo) data=$data size_mib=$size fs=$(stat -f -c %T /tmp)"
"$dir/qemu/qemu-system-aarch64" --version | head -n1 | sed 's/^/INFO qemu /'

now_cs() {
	read -r up _ </proc/uptime
	echo "${up%.*}${up#*.}"
}

# run_one VMM NAME RUN ORDER BLKLOAD-ARGS...
run_one() {
	vmm=$1 name=$2 run=$3 order=$4
	shift 4
	cmd="/bin/blkload -t $secs -w $warm $* /dev/vda"
	t0=$(now_cs)
	case $vmm in
	ours)
		"$dir/sandbox" boot --kernel "$dir/Image" --initrd "$dir/initramfs.cpio" \
			--mem 256 --vcpus 1 --timeout "$limit" \
			--drive "path=$data" \
			--cmdline "$append_base -- $cmd" >"$out" 2>&1 </dev/null
		rc=$?
		;;
	qemu | qemu-iothread)
		iot='' dev=virtio-blk-device,drive=d0
		if [ "$vmm" = qemu-iothread ]; then
			iot="-object iothread,id=io0" dev=$dev,iothread=io0
		fi
		# shellcheck disable=SC2086 # $iot is two words or none
		timeout -s KILL "$limit" "$dir/qemu/qemu-system-aarch64" \
			-M virt,gic-version=3 -enable-kvm -cpu host -smp 1 -m 256 \
			-nographic -no-reboot -nic none \
			-kernel "$dir/Image" -initrd "$dir/initramfs.cpio" \
			-append "$append_base -- $cmd" \
			-drive "if=none,id=d0,file=$data,format=raw,aio=io_uring,cache=writeback" \
			$iot -device "$dev" >"$out" 2>&1 </dev/null
		rc=$?
		;;
	*)
		echo "INFO error: unknown VMM '$vmm'"
		exit 2
		;;
	esac
	wall=$(($(now_cs) - t0))
	wall=$((wall / 100)).$(printf %02d $((wall % 100)))
	line=$(grep -m1 '^BLKLOAD ' "$out" | tr -d '\r')
	tag="RESULT vmm=$vmm spec=$name run=$run order=$order"
	if [ "$rc" -eq 0 ] && [ -n "$line" ]; then
		echo "$tag rc=0 wall=$wall ${line#BLKLOAD }"
	else
		[ "$rc" -ne 0 ] || rc=1
		echo "$tag rc=$rc error=no-result"
		tail -n 8 "$out" | sed 's/^/  | /'
		failed=1
	fi
}

nv=$(echo "$vmms" | wc -w)

# round RUN NAME ARGS: one guest run of each VMM; who goes first rotates from run to run, so no
# side always follows the same other. (A function: its "set --" leaves the caller's SPECs alone.)
round() {
	r_run=$1 r_name=$2 r_args=$3 r_k=0
	while [ $r_k -lt "$nv" ]; do
		# shellcheck disable=SC2086 # the list is split into words on purpose
		set -- $vmms
		shift $(((r_run - 1 + r_k) % nv))
		r_k=$((r_k + 1))
		# shellcheck disable=SC2086 # the spec's arguments are split into words on purpose
		run_one "$1" "$r_name" "$r_run" "$r_k" $r_args
	done
}

i=1
while [ "$i" -le "$runs" ]; do
	for spec in "$@"; do
		name=${spec%% *}
		round "$i" "$name" "${spec#"$name"}"
	done
	i=$((i + 1))
done
exit $failed
