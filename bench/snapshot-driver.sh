#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Snapshot benchmark driver, run inside the arm64 test host by bench/snapshot (busybox sh): the
# same guest snapshotted and restored by our sandbox and by QEMU (migration to a file, then
# -incoming), interleaved; prints one RESULT line per run.
#
# Usage: sh bench.sh RUNS CREATE_RUNS COUNT INTERVAL_MS SIDES MODES LEVELS
#   RUNS         restore rounds: each restores once per side and mode, rotating who goes first
#   CREATE_RUNS  create rounds: each saves once per side and level (the last round's files are
#                the ones restored)
#   COUNT, INTERVAL_MS   the guest counts COUNT lines INTERVAL_MS apart after "sandbox: ready"
#   SIDES        "qemu ours" or "qemu" (QEMU only: a sandbox without snapshots)
#   MODES        our --mem-mode values, e.g. "uffd eager file" (file restores the --raw snapshot,
#                the others the level-3 one, or the first level given when 3 is not)
#   LEVELS       zstd levels, e.g. "1 3 9 19"; a raw (uncompressed) snapshot is always made too
# Expects in its own directory: sandbox, Image, initramfs.cpio, snaptime (bench/snaptime.c),
# qemu/qemu-system-aarch64. Output lines:
#   INFO ...                                                      about the set-up
#   RESULT kind=create vmm=ours|qemu level=L run=I order=N rc=0 SNAPTIME-FIELDS... size=B alloc=B
#   RESULT kind=restore vmm=ours|qemu mode=M src=L run=I order=N rc=0 SNAPTIME-FIELDS...
#   RESULT kind=inspect vmm=ours level=L rc=0 [nonzero_bytes=B] [data_bytes=B]
#   RESULT ... rc=N error=WORD      (followed by the run's last lines, "  | ...")
# SNAPTIME-FIELDS are bench/snaptime's (times in ms from exec) and our sandbox-timing keys.
# Exit status 0 when every run succeeded, 1 otherwise.

[ $# -eq 7 ] || {
	echo "usage: sh bench.sh RUNS CREATE_RUNS COUNT INTERVAL_MS SIDES MODES LEVELS" >&2
	exit 2
}
runs=$1 cruns=$2 count=$3 interval=$4 sides=$5 modes=$6 levels=$7
dir=$(cd "$(dirname "$0")" && pwd)
qemu_bin=$dir/qemu/qemu-system-aarch64
st=$dir/snaptime
log=/tmp/run.log
sock=/tmp/qmp.sock
qmig=/tmp/qemu.mig
# Quiet: every console byte is an emulated MMIO exit in a nested guest.
append="console=ttyAMA0 quiet loglevel=1 sandbox.test=count sandbox.count=$count sandbox.interval_ms=$interval"
last="count $count"
# A run that hangs must not take the whole benchmark with it. Counting takes several times its
# nominal length in the nested guest; level 19 compresses slowly under TCG.
limit=$((60 + count * interval * 8 / 1000))
climit=300
failed=0
# The restored snapshots: the default level, else the first one asked for.
src=3
case " $levels " in
*" 3 "*) ;;
*) src=${levels%% *} ;;
esac

# One machine for both sides: the same QEMU options for save and restore (incoming QEMU must
# match the source's machine). store-global-state=off: the saved VM is stopped, and without its
# run state in the stream the incoming QEMU starts the guest itself once loaded (autostart),
# as our restore does, instead of staying paused until a "cont".
qemu_args() {
	echo "-M virt,gic-version=3 -accel kvm -cpu host -m 128M -smp 1 -nographic -no-reboot"
	echo "-nic none -monitor none -qmp unix:$sock,server=on,wait=off"
	echo "-global migration.store-global-state=off -kernel $dir/Image -initrd $dir/initramfs.cpio"
}

echo "INFO host kernel=$(uname -r) cpus=$(nproc) mem_kb=$(awk '/MemTotal/ { print $2 }' /proc/meminfo) fs=$(stat -f -c %T /tmp)"
"$qemu_bin" --version | head -n1 | sed 's/^/INFO qemu /'
echo "INFO guest mem_mib=128 vcpus=1 count=$count interval_ms=$interval restore_src_level=$src"

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

# create VMM LEVEL RUN ORDER
create() {
	c_vmm=$1 c_lvl=$2 c_run=$3 c_ord=$4
	tag="kind=create vmm=$c_vmm level=$c_lvl run=$c_run order=$c_ord"
	: >"$log"
	if [ "$c_vmm" = qemu ]; then
		f=$qmig
		rm -f "$f" "$sock"
		# shellcheck disable=SC2046 # qemu_args is split into words on purpose
		res=$("$st" -t "$climit" -l "$log" -f '' -q "$sock" -s "exec:cat > $f" -- \
			"$qemu_bin" $(qemu_args) -append "$append")
	else
		f=/tmp/snap-$c_lvl.snap
		if [ "$c_lvl" = raw ]; then
			how=--raw
		else
			how="--level $c_lvl"
		fi
		rm -f "$f"
		# shellcheck disable=SC2086 # $how is one or two words
		res=$(SANDBOX_TIMING=1 "$st" -t "$climit" -l "$log" -f '' -- \
			"$dir/sandbox" snapshot create -o "$f" $how --mem 128 --vcpus 1 \
			--kernel "$dir/Image" --initrd "$dir/initramfs.cpio" --cmdline "$append")
	fi
	c_rc=$?
	size=$(stat -c %s "$f" 2>/dev/null || echo 0)
	# Allocated: a raw snapshot keeps zero pages as holes.
	alloc=$(stat -c '%b %B' "$f" 2>/dev/null | awk '{ print $1 * $2 }')
	[ "$size" -gt 0 ] || res="$res error=no-file"
	report "$tag" "$c_rc" "$res size=$size alloc=${alloc:-0}"
}

# restore VMM MODE RUN ORDER
restore() {
	r_vmm=$1 r_mode=$2 r_run=$3 r_ord=$4
	: >"$log"
	if [ "$r_vmm" = qemu ]; then
		tag="kind=restore vmm=qemu mode=$r_mode src=migration run=$r_run order=$r_ord"
		rm -f "$sock"
		# shellcheck disable=SC2046 # qemu_args is split into words on purpose
		res=$("$st" -t "$limit" -l "$log" -e "$last" -q "$sock" -i "exec:cat $qmig" -- \
			"$qemu_bin" $(qemu_args) -incoming defer -append "$append")
	else
		s=$src
		[ "$r_mode" != file ] || s=raw
		tag="kind=restore vmm=ours mode=$r_mode src=$s run=$r_run order=$r_ord"
		res=$(SANDBOX_TIMING=1 "$st" -t "$limit" -l "$log" -e "$last" -- \
			"$dir/sandbox" restore "/tmp/snap-$s.snap" --mem-mode "$r_mode" --timeout "$limit")
	fi
	r_rc=$?
	# The first error is the one reported.
	case " $res " in
	*" error="*) ;;
	*" first_ms="*" last=1 "*) ;;
	*" first_ms="*) res="$res error=guest-did-not-finish" ;;
	*) res="$res error=no-output" ;;
	esac
	report "$tag" "$r_rc" "$res"
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

# --- create: file size and write time per level, QEMU's migration to a file ----------------------
items=
for s in $sides; do
	if [ "$s" = qemu ]; then
		items="$items qemu:migration"
	else
		for l in $levels raw; do items="$items ours:$l"; done
	fi
done
i=1
while [ $i -le "$cruns" ]; do
	k=0
	# shellcheck disable=SC2086 # the list is split into words on purpose
	for it in $(rotate $i $items); do
		k=$((k + 1))
		create "${it%%:*}" "${it#*:}" $i $k
	done
	i=$((i + 1))
done

# Every file we restore from must be valid: inspect verifies all checksums.
case " $sides " in
*" ours "*)
	for l in $levels raw; do
		"$dir/sandbox" snapshot inspect "/tmp/snap-$l.snap" >"$log" 2>&1
		i_rc=$?
		# Its human-readable statistics, parsed defensively: the non-zero pages, and what the
		# memory data takes in the file.
		nz=$(sed -n 's/^memory: .* pages of \([0-9]*\) bytes.*, \([0-9]*\) stored.*/\1 \2/p' "$log" |
			awk 'NR == 1 { print "nonzero_bytes=" $1 * $2 }')
		data=$(sed -n 's/^memory data: \([0-9]*\) bytes.*/data_bytes=\1/p' "$log" | head -n1)
		report "kind=inspect vmm=ours level=$l" $i_rc "rc=0 $nz $data"
		# For the record: what one restored file holds.
		[ "$l" != "$src" ] || sed 's/^/INFO inspect | /' "$log"
	done
	;;
esac

# --- restore: to the first guest instruction and to the first output line ------------------------
items=
for s in $sides; do
	if [ "$s" = qemu ]; then
		items="$items qemu:incoming"
	else
		for m in $modes; do items="$items ours:$m"; done
	fi
done
i=1
while [ $i -le "$runs" ]; do
	k=0
	# shellcheck disable=SC2086 # the list is split into words on purpose
	for it in $(rotate $i $items); do
		k=$((k + 1))
		restore "${it%%:*}" "${it#*:}" $i $k
	done
	i=$((i + 1))
done
exit $failed
