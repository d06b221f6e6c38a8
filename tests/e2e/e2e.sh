#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# End-to-end tests of `sandbox boot`, snapshots, restore and `sandbox run`, run inside a test host
# (tests/arm64-host/run or tests/x86_64-host/run: busybox sh, /dev/kvm) for the arch sandbox was
# built for. Usage: sh e2e.sh [TEST...]   (default: all). Ends with "N passed, N failed".

SANDBOX=${SANDBOX:-/sandbox/sandbox}
IMAGES=${IMAGES:-/sandbox/images}
# What differs between the arches: the console's name, the kernel file, and the other arch's ELF
# machine (octal, for printf) with its number, for a function built for the wrong arch.
case $("$SANDBOX" --version) in
*"(x86_64)"*) ARCH=x86_64 CONSOLE=ttyS0 KERNEL=vmlinux FOREIGN='\267' FOREIGN_NR=183 ;;
*) ARCH=arm64 CONSOLE=ttyAMA0 KERNEL=Image FOREIGN='\076' FOREIGN_NR=62 ;;
esac
QUIET="console=$CONSOLE quiet"
pass=0
fail=0
tmp=$(mktemp -d)

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
	if [ -f "$tmp/out" ]; then
		echo "---- output of $1 (last 30 lines) ----"
		tail -n 30 "$tmp/out"
		echo "----"
	fi
	# sandbox crashed (SIGILL, SIGABRT, SIGBUS, SIGFPE, SIGSEGV, SIGSYS; not the 137 or 143 a
	# function's own death passes on): the test host kernel's report (pc, lr, fault address).
	case ${rc:-0} in
	132 | 134 | 135 | 136 | 139 | 159)
		echo "---- the test host's kernel log (last 40 lines) ----"
		dmesg | tail -n 40
		echo "----"
		;;
	esac
}

# run NAME ARGS...: runs sandbox with ARGS, output in $tmp/out, status in $rc.
run() {
	name=$1
	shift
	start=$(now_cs)
	"$SANDBOX" "$@" >"$tmp/out" 2>&1 </dev/null
	rc=$?
	elapsed=$(($(now_cs) - start))
}

has() {
	grep -q -- "$1" "$tmp/out"
}

# Whether a process whose command line contains PATTERN runs (busybox has no pgrep).
running() {
	for c in /proc/[0-9]*/cmdline; do
		[ -r "$c" ] || continue
		tr '\0' ' ' <"$c" 2>/dev/null | grep -q -- "$1" && return 0
	done
	return 1
}

t_boot_hello() {
	# Time stamps each console line as it arrives, to time the greeting itself.
	start=$(now_cs)
	{
		"$SANDBOX" boot --cmdline "$QUIET" --timeout 60 </dev/null 2>&1
		echo "@rc $?"
	} | while IFS= read -r line; do
		case $line in
		*"Hello from Linux!"*) echo "@hello $(($(now_cs) - start))" ;;
		esac
		echo "$line"
	done >"$tmp/out"
	rc=$(sed -n 's/^@rc //p' "$tmp/out")
	hello=$(sed -n 's/^@hello //p' "$tmp/out")
	[ "$rc" = 0 ] || { bad boot_hello "exit status $rc, expected 0"; return; }
	[ -n "$hello" ] || { bad boot_hello "no greeting"; return; }
	echo "  timing: sandbox boot to 'Hello from Linux!' took $((hello / 100)).$(printf %02d $((hello % 100))) s (quiet console)"
	ok boot_hello
}

t_boot_log() {
	# The default command line is not quiet: the kernel's log shows on the console.
	run boot_log boot --timeout 90
	[ $rc -eq 0 ] || { bad boot_log "exit status $rc, expected 0"; return; }
	has "Linux version" || { bad boot_log "no kernel boot log"; return; }
	has "Hello from Linux!" || { bad boot_log "no greeting"; return; }
	ok boot_log
}

t_two_vcpus() {
	run two_vcpus boot --vcpus 2 --cmdline "$QUIET" --timeout 60
	[ $rc -eq 0 ] || { bad two_vcpus "exit status $rc"; return; }
	has "vcpus: 2" || { bad two_vcpus "guest did not see 2 CPUs"; return; }
	ok two_vcpus
}

t_one_vcpu() {
	run one_vcpu boot --vcpus 1 --mem 64 --cmdline "$QUIET" --timeout 60
	[ $rc -eq 0 ] || { bad one_vcpu "exit status $rc"; return; }
	has "vcpus: 1" || { bad one_vcpu "guest did not see 1 CPU"; return; }
	ok one_vcpu
}

t_reboot_ends_vm() {
	run reboot boot --cmdline "$QUIET sandbox.test=reboot" --timeout 60
	[ $rc -eq 0 ] || { bad reboot_ends_vm "exit status $rc, expected 0"; return; }
	ok reboot_ends_vm
}

t_guest_panic() {
	run panic boot --cmdline "$QUIET sandbox.test=panic" --timeout 60
	[ $rc -eq 103 ] || { bad guest_panic "exit status $rc, expected 103"; return; }
	has "guest kernel panicked" || { bad guest_panic "no panic message"; return; }
	ok guest_panic
}

t_timeout() {
	run timeout boot --cmdline "$QUIET sandbox.test=hang" --timeout 3
	[ $rc -eq 104 ] || { bad timeout "exit status $rc, expected 104"; return; }
	has "time limit" || { bad timeout "no timeout message"; return; }
	ok timeout
}

t_not_an_image() {
	# An ELF (our own init), a text file and a truncated kernel are all refused.
	run not_an_image boot --kernel "$IMAGES/init" --timeout 10
	[ $rc -eq 101 ] || { bad not_an_image "ELF: exit status $rc, expected 101"; return; }
	has "not a bootable $ARCH" || { bad not_an_image "ELF: no clear message"; return; }
	echo "this is not a kernel" >"$tmp/text"
	run not_an_image boot --kernel "$tmp/text" --timeout 10
	[ $rc -eq 101 ] || { bad not_an_image "text: exit status $rc"; return; }
	has "too short" || { bad not_an_image "text: no clear message"; return; }
	head -c 40 "$IMAGES/$KERNEL" >"$tmp/short"
	run not_an_image boot --kernel "$tmp/short" --timeout 10
	[ $rc -eq 101 ] || { bad not_an_image "truncated: exit status $rc"; return; }
	ok not_an_image
}

t_missing_files() {
	run missing boot --kernel /nonexistent/$KERNEL --timeout 10
	[ $rc -eq 101 ] || { bad missing_files "kernel: exit status $rc"; return; }
	has "/nonexistent/$KERNEL" || { bad missing_files "kernel: path not named"; return; }
	run missing boot --initrd /nonexistent/initrd --timeout 10
	[ $rc -eq 101 ] || { bad missing_files "initrd: exit status $rc"; return; }
	ok missing_files
}

t_too_small() {
	# 16 MiB of RAM cannot hold the kernel and a 20 MiB initrd.
	dd if=/dev/zero of="$tmp/big" bs=1M count=20 2>/dev/null
	run too_small boot --mem 16 --initrd "$tmp/big" --cmdline "$QUIET" --timeout 10
	[ $rc -eq 101 ] || { bad too_small "exit status $rc, expected 101"; return; }
	has "do not fit" || { bad too_small "no clear message"; return; }
	rm -f "$tmp/big"
	ok too_small
}

t_bad_flag() {
	run bad_flag boot --vcpus many
	[ $rc -eq 2 ] || { bad bad_flag "exit status $rc, expected 2"; return; }
	has "not a whole number" || { bad bad_flag "no clear message"; return; }
	ok bad_flag
}

t_no_root_panics() {
	# No initramfs and no root device: the kernel cannot mount a root and panics.
	run no_root boot --no-initrd --cmdline "$QUIET" --timeout 60
	[ $rc -eq 103 ] || { bad no_root_panics "exit status $rc, expected 103"; return; }
	ok no_root_panics
}

# --- virtio-blk -----------------------------------------------------------------

# A private copy of the root filesystem: a rw boot changes it in place.
fresh_root() {
	cp "$IMAGES/rootfs.ext4" "$tmp/root.ext4"
}

t_root_boot_persists() {
	fresh_root
	run root_write boot --drive "path=$tmp/root.ext4,root" --timeout 60 \
		--cmdline "$QUIET -- /bin/sh -c \"echo persisted-$$ > /root/f\""
	[ $rc -eq 0 ] || { bad root_boot_persists "write boot: exit status $rc"; return; }
	has "command exited with status 0" || { bad root_boot_persists "write failed in the guest"; return; }
	run root_read boot --drive "path=$tmp/root.ext4,root" --timeout 60 \
		--cmdline "$QUIET -- /bin/cat /root/f /sys/block/vda/serial"
	[ $rc -eq 0 ] || { bad root_boot_persists "read boot: exit status $rc"; return; }
	has "persisted-$$" || { bad root_boot_persists "file did not survive power-off"; return; }
	# GET_ID: the serial is 20 hex digits derived from the file's device and inode.
	grep -q '[0-9a-f]\{20\}' "$tmp/out" || { bad root_boot_persists "no drive serial (GET_ID)"; return; }
	ok root_boot_persists
}

t_read_only_drive() {
	fresh_root
	before=$(sha256sum "$tmp/root.ext4")
	run ro boot --drive "path=$tmp/root.ext4,root,ro" --timeout 60 \
		--cmdline "$QUIET -- /bin/sh -c \"echo x > /root/g\""
	[ $rc -eq 0 ] || { bad read_only_drive "exit status $rc"; return; }
	has "Read-only file system" || { bad read_only_drive "guest write was not refused"; return; }
	has "command exited with status 0" && { bad read_only_drive "write reported success"; return; }
	# A raw write to the device must fail too, and the file must not change.
	run ro_raw boot --drive "path=$tmp/root.ext4,root,ro" --timeout 60 \
		--cmdline "$QUIET -- /bin/dd if=/dev/zero of=/dev/vda bs=4096 count=1 seek=100"
	has "command exited with status 0" && { bad read_only_drive "raw write reported success"; return; }
	[ "$(sha256sum "$tmp/root.ext4")" = "$before" ] || { bad read_only_drive "backing file changed"; return; }
	ok read_only_drive
}

t_dd_64mib() {
	# 64 MiB from the guest to a raw data drive (/dev/vdb) and back, checked
	# against the backing file on the host side in both directions.
	fresh_root
	dd if=/dev/zero of="$tmp/data.img" bs=1M count=64 2>/dev/null
	run dd_write boot --mem 256 --drive "path=$tmp/root.ext4,root" \
		--drive "path=$tmp/data.img" --timeout 120 --cmdline "$QUIET -- /bin/sh -c \"mount -t tmpfs -o size=80m tmpfs /tmp && dd if=/dev/urandom of=/tmp/src bs=1M count=64 2>/dev/null && dd if=/tmp/src of=/dev/vdb bs=1M 2>/dev/null && sync && sha256sum /tmp/src\""
	[ $rc -eq 0 ] || { bad dd_64mib "write boot: exit status $rc"; return; }
	guest=$(sed -n 's|^\([0-9a-f]\{64\}\)  /tmp/src.*|\1|p' "$tmp/out")
	host=$(sha256sum "$tmp/data.img" | cut -d' ' -f1)
	[ -n "$guest" ] || { bad dd_64mib "guest printed no checksum"; return; }
	[ "$guest" = "$host" ] || { bad dd_64mib "host file differs from what the guest wrote"; return; }
	run dd_read boot --mem 256 --drive "path=$tmp/root.ext4,root" \
		--drive "path=$tmp/data.img,ro" --timeout 120 --cmdline "$QUIET -- /bin/sha256sum /dev/vdb"
	[ $rc -eq 0 ] || { bad dd_64mib "read boot: exit status $rc"; return; }
	has "^$host  /dev/vdb" || { bad dd_64mib "guest read back different data"; return; }
	rm -f "$tmp/data.img"
	ok dd_64mib
}

t_missing_drive() {
	run missing_drive boot --drive path=/nonexistent.img --timeout 10
	[ $rc -eq 101 ] || { bad missing_drive "exit status $rc, expected 101"; return; }
	has "/nonexistent.img" || { bad missing_drive "path not named"; return; }
	ok missing_drive
}


# --- snapshots -------------------------------------------------------------------
COUNT="$QUIET sandbox.test=count sandbox.count=60 sandbox.interval_ms=20"

# The last "count N" before the snapshot, from snapshot create's output (0 if none).
last_count() {
	tr -d '\r' <"$1" | sed -n 's/^count \([0-9][0-9]*\)$/\1/p' | tail -n 1 | grep . || echo 0
}

# check_counts FILE LAST LIMIT: FILE's counts start right after LAST (or one later, when the
# snapshot split a line) and go up by one to LIMIT. Prints what is wrong, if anything.
check_counts() {
	tr -d '\r' <"$1" | sed -n 's/^count \([0-9][0-9]*\)$/\1/p' >"$tmp/counts"
	awk -v last="$2" -v limit="$3" '
		NR == 1 && $1 != last + 1 && $1 != last + 2 { print "first count " $1 " after " last; bad = 1; exit }
		NR > 1 && $1 != prev + 1 { print "count " $1 " after " prev; bad = 1; exit }
		{ prev = $1 }
		END { if (!bad && prev != limit) print "ended at " prev ", expected " limit }
	' "$tmp/counts"
}

# The snapshots every later test restores: made once.
snap_made=
make_snapshots() {
	[ -n "$snap_made" ] && return 0
	snap_made=1
	"$SANDBOX" snapshot create -o "$tmp/count.snap" --cmdline "$COUNT" --timeout 60 \
		>"$tmp/create.out" 2>&1 </dev/null || return 1
	"$SANDBOX" snapshot create -o "$tmp/count.raw" --raw --cmdline "$COUNT" --timeout 60 \
		>"$tmp/create-raw.out" 2>&1 </dev/null
}

t_snapshot_create() {
	start=$(now_cs)
	make_snapshots
	rc=$?
	elapsed=$(($(now_cs) - start))
	cp "$tmp/create.out" "$tmp/out"
	[ $rc -eq 0 ] || { bad snapshot_create "exit status $rc"; return; }
	has "^sandbox: ready" || { bad snapshot_create "no ready line shown"; return; }
	[ -s "$tmp/count.snap" ] && [ -s "$tmp/count.raw" ] || { bad snapshot_create "no snapshot file"; return; }
	ls "$tmp" | grep -q 'tmp' && { bad snapshot_create "temporary file left: $(ls "$tmp")"; return; }
	has "smaller than raw memory" || { bad snapshot_create "no memory statistics"; return; }
	echo "  snapshot: $(wc -c <"$tmp/count.snap") bytes zstd, $(du -k "$tmp/count.raw" | cut -f1) KiB raw on disk; $(grep 'smaller than raw' "$tmp/out")"
	ok snapshot_create
}

t_snapshot_continue() {
	# Pause, save, resume: the original guest counts on to the end.
	run snapshot_continue snapshot create -o "$tmp/cont.snap" --continue --cmdline "$COUNT" --timeout 60
	[ $rc -eq 0 ] || { bad snapshot_continue "exit status $rc"; return; }
	why=$(check_counts "$tmp/out" 0 60)
	[ -z "$why" ] || { bad snapshot_continue "$why"; return; }
	[ -s "$tmp/cont.snap" ] || { bad snapshot_continue "no snapshot file"; return; }
	ok snapshot_continue
}

t_snapshot_inspect() {
	make_snapshots || { bad snapshot_inspect "snapshot create failed"; return; }
	run snapshot_inspect snapshot inspect "$tmp/count.snap"
	[ $rc -eq 0 ] || { bad snapshot_inspect "exit status $rc"; return; }
	has "^arch: $ARCH" || { bad snapshot_inspect "no arch"; return; }
	has "verified" || { bad snapshot_inspect "checksums not verified"; return; }
	ok snapshot_inspect
}

# restore_mode NAME SNAPSHOT CREATE-OUTPUT MODE
restore_mode() {
	make_snapshots || { bad "$1" "snapshot create failed"; return; }
	run "$1" restore "$2" --mem-mode "$4" --timeout 60
	[ $rc -eq 0 ] || { bad "$1" "exit status $rc"; return; }
	why=$(check_counts "$tmp/out" "$(last_count "$3")" 60)
	[ -z "$why" ] || { bad "$1" "$why"; return; }
	has "sandbox: ready" && { bad "$1" "the guest started again instead of going on"; return; }
	echo "  timing: restore --mem-mode $4 to poweroff took $((elapsed / 100)).$(printf %02d $((elapsed % 100))) s"
	ok "$1"
}

t_restore_uffd() { restore_mode restore_uffd "$tmp/count.snap" "$tmp/create.out" uffd; }
t_restore_eager() { restore_mode restore_eager "$tmp/count.snap" "$tmp/create.out" eager; }
t_restore_file() { restore_mode restore_file "$tmp/count.raw" "$tmp/create-raw.out" file; }
t_restore_raw_uffd() { restore_mode restore_raw_uffd "$tmp/count.raw" "$tmp/create-raw.out" uffd; }

t_restore_two_vcpus() {
	# Both vCPUs, their redistributors and the secondary's PSCI state come back.
	run restore_two_vcpus snapshot create -o "$tmp/two.snap" --vcpus 2 --cmdline "$COUNT" --timeout 60
	[ $rc -eq 0 ] || { bad restore_two_vcpus "snapshot create: exit status $rc"; return; }
	has "vcpus: 2" || { bad restore_two_vcpus "the guest did not see 2 CPUs"; return; }
	cp "$tmp/out" "$tmp/two.out"
	run restore_two_vcpus restore "$tmp/two.snap" --timeout 60
	[ $rc -eq 0 ] || { bad restore_two_vcpus "restore: exit status $rc"; return; }
	why=$(check_counts "$tmp/out" "$(last_count "$tmp/two.out")" 60)
	[ -z "$why" ] || { bad restore_two_vcpus "$why"; return; }
	rm -f "$tmp/two.snap" "$tmp/two.out"
	ok restore_two_vcpus
}

t_restore_four() {
	# Four VMs from one snapshot at once, each going on by itself.
	make_snapshots || { bad restore_four "snapshot create failed"; return; }
	last=$(last_count "$tmp/create-raw.out")
	for i in 1 2 3 4; do
		mode=uffd
		[ $i -gt 2 ] && mode=file
		("$SANDBOX" restore "$tmp/count.raw" --mem-mode $mode --timeout 90 >"$tmp/four$i" 2>&1 </dev/null
		 echo $? >"$tmp/four$i.rc") &
	done
	wait
	for i in 1 2 3 4; do
		cp "$tmp/four$i" "$tmp/out"
		[ "$(cat "$tmp/four$i.rc")" = 0 ] || { bad restore_four "VM $i: exit status $(cat "$tmp/four$i.rc")"; return; }
		why=$(check_counts "$tmp/four$i" "$last" 60)
		[ -z "$why" ] || { bad restore_four "VM $i: $why"; return; }
	done
	rm -f "$tmp/out"
	# The shared, privately mapped memory file is unchanged by their writes.
	run restore_four snapshot inspect "$tmp/count.raw"
	[ $rc -eq 0 ] || { bad restore_four "snapshot changed: inspect exit status $rc"; return; }
	ok restore_four
}

t_restore_block() {
	# A snapshot taken while the guest waits; after restore it reads its disk.
	cp "$IMAGES/rootfs.ext4" "$tmp/root.ext4"
	dd if=/dev/urandom of="$tmp/blk.img" bs=1M count=4 2>/dev/null
	run restore_block snapshot create -o "$tmp/blk.snap" --timeout 60 \
		--drive "path=$tmp/root.ext4,root,ro" --drive "path=$tmp/blk.img,ro" \
		--cmdline "$QUIET -- /bin/sh -c \"echo sandbox: ready; sleep 1; sha256sum /dev/vdb\""
	[ $rc -eq 0 ] || { bad restore_block "snapshot create: exit status $rc"; return; }
	run restore_block restore "$tmp/blk.snap" --timeout 60
	[ $rc -eq 0 ] || { bad restore_block "restore: exit status $rc"; return; }
	host=$(sha256sum "$tmp/blk.img" | cut -d' ' -f1)
	has "^$host  /dev/vdb" || { bad restore_block "the restored guest read other data than the disk holds"; return; }
	rm -f "$tmp/blk.img" "$tmp/root.ext4" "$tmp/blk.snap"
	ok restore_block
}

t_snapshot_corrupt() {
	make_snapshots || { bad snapshot_corrupt "snapshot create failed"; return; }
	size=$(wc -c <"$tmp/count.snap")
	cp "$tmp/count.snap" "$tmp/bad.snap"
	# One byte flipped in the middle of the file: a checksum catches it.
	printf '\377' | dd of="$tmp/bad.snap" bs=1 seek=$((size / 2)) conv=notrunc 2>/dev/null
	run snapshot_corrupt restore "$tmp/bad.snap" --mem-mode eager --timeout 30
	[ $rc -eq 105 ] || { bad snapshot_corrupt "flipped byte: exit status $rc, expected 105"; return; }
	head -c $((size / 3)) "$tmp/count.snap" >"$tmp/bad.snap"
	run snapshot_corrupt restore "$tmp/bad.snap" --timeout 30
	[ $rc -eq 106 ] || { bad snapshot_corrupt "truncated: exit status $rc, expected 106"; return; }
	has "truncated" || { bad snapshot_corrupt "truncation not named"; return; }
	echo "not a snapshot" >"$tmp/bad.snap"
	run snapshot_corrupt restore "$tmp/bad.snap" --timeout 30
	[ $rc -eq 105 ] || [ $rc -eq 106 ] || { bad snapshot_corrupt "text file: exit status $rc"; return; }
	run snapshot_corrupt restore "$tmp/count.snap" --mem-mode file --timeout 30
	[ $rc -eq 101 ] || { bad snapshot_corrupt "file mode on zstd: exit status $rc, expected 101"; return; }
	run snapshot_corrupt restore "$tmp/nonexistent.snap"
	[ $rc -eq 101 ] || { bad snapshot_corrupt "missing file: exit status $rc, expected 101"; return; }
	run snapshot_corrupt restore "$tmp/count.snap" --mem-mode lazy
	[ $rc -eq 2 ] || { bad snapshot_corrupt "bad mode: exit status $rc, expected 2"; return; }
	rm -f "$tmp/bad.snap"
	ok snapshot_corrupt
}

t_snapshot_not_ready() {
	run snapshot_not_ready snapshot create -o "$tmp/never.snap" --cmdline "$QUIET" --timeout 60
	[ $rc -eq 108 ] || { bad snapshot_not_ready "exit status $rc, expected 108"; return; }
	[ -e "$tmp/never.snap" ] && { bad snapshot_not_ready "a snapshot was written"; return; }
	ok snapshot_not_ready
}

# --- sandbox run -------------------------------------------------------------------
EX=${EX:-/sandbox/examples}
# The base snapshot is made by the first run, in a cache of this test's own.
export SANDBOX_CACHE="$tmp/cache"

# frun NAME ARGS...: sandbox run ARGS, stdout in $tmp/out, stderr in $tmp/err, status in $rc.
frun() {
	name=$1
	shift
	start=$(now_cs)
	"$SANDBOX" run "$@" >"$tmp/out" 2>"$tmp/err" </dev/null
	rc=$?
	elapsed=$(($(now_cs) - start))
}

errhas() {
	grep -q -- "$1" "$tmp/err"
}

t_run_hello() {
	frun run_hello "$EX/hello" a b
	[ $rc -eq 0 ] || { cat "$tmp/err" >>"$tmp/out"; bad run_hello "exit status $rc"; return; }
	[ "$(cat "$tmp/out")" = "Hello from a sandboxed function! a b" ] || { bad run_hello "stdout is not exactly the function's"; return; }
	frun run_hello "$EX/hello" warm
	[ $rc -eq 0 ] || { bad run_hello "second run: exit status $rc"; return; }
	echo "  timing: sandbox run hello (base snapshot cached) took $((elapsed / 100)).$(printf %02d $((elapsed % 100))) s"
	ok run_hello
}

t_run_exit_codes() {
	frun run_exit_codes "$EX/exitcode" 7
	[ $rc -eq 7 ] || { bad run_exit_codes "exit status $rc, expected 7"; return; }
	errhas "exiting with status 7" || { bad run_exit_codes "stderr not passed on"; return; }
	frun run_exit_codes "$EX/exitcode" 0
	[ $rc -eq 0 ] || { bad run_exit_codes "exit status $rc, expected 0"; return; }
	# Killed by a signal: 128 + N, like a shell. The OOM killer sends SIGKILL.
	frun run_exit_codes "$EX/hog"
	[ $rc -eq 137 ] || { bad run_exit_codes "hog: exit status $rc, expected 137 (SIGKILL)"; return; }
	ok run_exit_codes
}

t_run_stdin() {
	# 1 MiB through the function's stdin and back, unchanged.
	dd if=/dev/urandom of="$tmp/in" bs=1024 count=1024 2>/dev/null
	"$SANDBOX" run "$EX/copy" <"$tmp/in" >"$tmp/out" 2>"$tmp/err"
	rc=$?
	[ $rc -eq 0 ] || { bad run_stdin "copy: exit status $rc"; return; }
	[ "$(sha256sum <"$tmp/in")" = "$(sha256sum <"$tmp/out")" ] || { bad run_stdin "1 MiB came back different ($(wc -c <"$tmp/out") bytes)"; return; }
	# The same binary run natively here (the test host has the guest's arch) agrees with the sandboxed one.
	"$SANDBOX" run "$EX/cksum" <"$tmp/in" >"$tmp/out" 2>"$tmp/err"
	[ "$(cat "$tmp/out")" = "$("$EX/cksum" <"$tmp/in")" ] || { bad run_stdin "cksum differs from a native run"; return; }
	rm -f "$tmp/in"
	ok run_stdin
}

t_run_random_differs() {
	# Two restores of one snapshot at once must not share random numbers.
	("$SANDBOX" run "$EX/random" >"$tmp/r1" 2>&1 </dev/null) &
	("$SANDBOX" run "$EX/random" >"$tmp/r2" 2>&1 </dev/null) &
	wait
	cat "$tmp/r1" "$tmp/r2" >"$tmp/out"
	[ "$(wc -c <"$tmp/r1")" -eq 33 ] && [ "$(wc -c <"$tmp/r2")" -eq 33 ] || { bad run_random_differs "no random output"; return; }
	cmp -s "$tmp/r1" "$tmp/r2" && { bad run_random_differs "both VMs printed $(cat "$tmp/r1")"; return; }
	# The clock is the host's now, not the snapshot's (made by an earlier test).
	frun run_random_differs "$EX/clock"
	host=$(date +%s)
	guest=$(cat "$tmp/out")
	[ $rc -eq 0 ] && [ -n "$guest" ] || { bad run_random_differs "clock: exit status $rc"; return; }
	d=$((host - guest))
	[ $d -ge -2 ] && [ $d -le 5 ] || { bad run_random_differs "guest clock $guest, host $host"; return; }
	ok run_random_differs
}

t_run_timeout() {
	frun run_timeout --timeout 3 "$EX/burn"
	[ $rc -eq 104 ] || { bad run_timeout "exit status $rc, expected 104"; return; }
	errhas "timeout" || { bad run_timeout "no message"; return; }
	[ $elapsed -lt 2000 ] || { bad run_timeout "took $elapsed cs"; return; }
	ok run_timeout
}

t_run_signal() {
	# SIGTERM to sandbox run: the VM is stopped and torn down, 128 + 15, nothing left.
	"$SANDBOX" run "$EX/burn" >"$tmp/out" 2>"$tmp/err" </dev/null &
	pid=$!
	sleep 3
	kill -TERM $pid
	wait $pid
	rc=$?
	[ $rc -eq 143 ] || { bad run_signal "exit status $rc, expected 143"; return; }
	ls -d /tmp/sandbox-* >/dev/null 2>&1 && { bad run_signal "socket directory left"; return; }
	# A closed stdout: the function's output goes nowhere, the status still comes back.
	"$SANDBOX" run "$EX/exitcode" 5 >&- 2>/dev/null
	rc=$?
	[ $rc -eq 5 ] || { bad run_signal "closed stdout: exit status $rc, expected 5"; return; }
	ok run_signal
}

t_run_panic() {
	frun run_panic --timeout 120 "$EX/panic"
	[ $rc -eq 103 ] || { bad run_panic "exit status $rc, expected 103"; return; }
	errhas "panicked" || { bad run_panic "no message"; return; }
	ok run_panic
}

t_run_isolated() {
	# A fork bomb and a memory hog beside a well-behaved function: it is not affected.
	("$SANDBOX" run --timeout 20 "$EX/forkbomb" >"$tmp/bomb" 2>&1 </dev/null; echo $? >"$tmp/bomb.rc") &
	("$SANDBOX" run "$EX/hog" >"$tmp/hog" 2>&1 </dev/null; echo $? >"$tmp/hog.rc") &
	sleep 1
	frun run_isolated "$EX/hello" beside
	wait
	[ $rc -eq 0 ] || { bad run_isolated "hello beside them: exit status $rc"; return; }
	[ "$(cat "$tmp/out")" = "Hello from a sandboxed function! beside" ] || { bad run_isolated "hello's output changed"; return; }
	[ "$(cat "$tmp/bomb.rc")" = 104 ] || { bad run_isolated "fork bomb: exit status $(cat "$tmp/bomb.rc"), expected 104"; return; }
	[ "$(cat "$tmp/hog.rc")" = 137 ] || { bad run_isolated "hog: exit status $(cat "$tmp/hog.rc"), expected 137"; return; }
	ok run_isolated
}

t_run_bad_input() {
	frun run_bad_input "$tmp/nonexistent"
	[ $rc -eq 109 ] || { bad run_bad_input "missing: exit status $rc, expected 109"; return; }
	echo "#!/bin/sh" >"$tmp/notelf"
	frun run_bad_input "$tmp/notelf"
	[ $rc -eq 110 ] || { bad run_bad_input "not ELF: exit status $rc, expected 110"; return; }
	# An ELF header of the other arch: e_machine 62 (x86_64) or 183 (arm64).
	{ printf "\177ELF\002\001\001\000\000\000\000\000\000\000\000\000\002\000$FOREIGN\000"; head -c 100 /dev/zero; } >"$tmp/x86"
	frun run_bad_input "$tmp/x86"
	[ $rc -eq 111 ] || { bad run_bad_input "other arch's ELF: exit status $rc, expected 111"; return; }
	errhas "machine $FOREIGN_NR" || { bad run_bad_input "arch not named"; return; }
	{ head -c 64 "$EX/hello"; head -c $((100 << 20)) /dev/zero; } >"$tmp/big"
	frun run_bad_input "$tmp/big"
	rm -f "$tmp/big"
	[ $rc -eq 112 ] || { bad run_bad_input "100 MiB function: exit status $rc, expected 112"; return; }
	frun run_bad_input --snapshot "$tmp/nonexistent.snap" "$EX/hello"
	[ $rc -eq 101 ] || { bad run_bad_input "missing snapshot: exit status $rc, expected 101"; return; }
	echo "garbage" >"$tmp/garbage.snap"
	frun run_bad_input --snapshot "$tmp/garbage.snap" "$EX/hello"
	[ $rc -ge 105 ] && [ $rc -le 106 ] || { bad run_bad_input "corrupt snapshot: exit status $rc"; return; }
	frun run_bad_input --bogus "$EX/hello"
	[ $rc -eq 2 ] || { bad run_bad_input "bad flag: exit status $rc, expected 2"; return; }
	rm -f "$tmp/notelf" "$tmp/x86" "$tmp/garbage.snap"
	ok run_bad_input
}

t_run_no_leaks() {
	# Many sequential runs: no process, socket directory or file is left behind.
	n=${LEAK_RUNS:-200}
	before=$(ls /tmp | wc -l)
	i=0
	: >"$tmp/lat"
	while [ $i -lt $n ]; do
		s0=$(now_cs)
		"$SANDBOX" run "$EX/hello" $i >"$tmp/out" 2>&1 </dev/null || { bad run_no_leaks "run $i failed"; return; }
		echo $(($(now_cs) - s0)) >>"$tmp/lat"
		i=$((i + 1))
	done
	after=$(ls /tmp | wc -l)
	[ "$before" = "$after" ] || { bad run_no_leaks "/tmp went from $before to $after entries: $(ls /tmp)"; return; }
	ls -d /tmp/sandbox-* >/dev/null 2>&1 && { bad run_no_leaks "socket directories left"; return; }
	running "sandbox run" && { bad run_no_leaks "sandbox processes left"; return; }
	med=$(sort -n "$tmp/lat" | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
	p99=$(sort -n "$tmp/lat" | awk '{ a[NR] = $1 } END { i = int(NR * 0.99); if (i < 1) i = 1; print a[i] }')
	echo "  timing: $n sequential sandbox run hello: median ${med}0 ms, p99 ${p99}0 ms"
	ok run_no_leaks
}

# --- KSM (restore --ksm) -----------------------------------------------------------

# base_snapshot: prints the cached base snapshot's path, made by one run if no test made it yet.
base_snapshot() {
	for f in "$SANDBOX_CACHE"/snapshots/*.snap; do
		[ -f "$f" ] && { echo "$f"; return 0; }
	done
	"$SANDBOX" run "$EX/hello" >/dev/null 2>&1 </dev/null || return 1
	for f in "$SANDBOX_CACHE"/snapshots/*.snap; do
		[ -f "$f" ] && { echo "$f"; return 0; }
	done
	return 1
}

# guest_vmflags PID KB: the VmFlags of each rw mapping of exactly KB kB in PID (its guest memory).
guest_vmflags() {
	awk -v kb="$2" '
		/^[0-9a-f]+-[0-9a-f]+ / { rw = $2 ~ /^rw/; size = ""; next }
		$1 == "Size:" { size = $2 }
		$1 == "VmFlags:" && rw && size == kb { $1 = ""; print }
	' "/proc/$1/smaps"
}

# ksm_restore MODE [FLAGS...]: restores $ksm_snap (an idle guest) in the background, waits until
# its restore is done (restore_ms: after the madvise, before the vCPUs run), reads the VmFlags of
# its guest memory into $flags, then stops it. rc: 0 if it was running then, else its status.
ksm_restore() {
	k_mode=$1
	shift
	rm -f "$tmp/ksm.vsock"
	SANDBOX_TIMING=1 "$SANDBOX" restore "$ksm_snap" --mem-mode "$k_mode" \
		--vsock-uds "$tmp/ksm.vsock" --timeout 60 "$@" >"$tmp/out" 2>&1 </dev/null &
	k_pid=$!
	k_end=$(($(now_cs) + 3000))
	while ! has "restore_ms=" && kill -0 $k_pid 2>/dev/null && [ "$(now_cs)" -lt $k_end ]; do
		sleep 0.1
	done
	flags=
	if has "restore_ms=" && kill -0 $k_pid 2>/dev/null; then
		flags=$(guest_vmflags $k_pid "$ksm_kb")
		kill -TERM $k_pid
		# The shell's "Terminated" for the job it reaps is no news here.
		{ wait $k_pid; } 2>/dev/null
		rc=0
	else
		kill -KILL $k_pid 2>/dev/null
		wait $k_pid
		rc=$?
	fi
	rm -f "$tmp/ksm.vsock"
}

t_restore_ksm() {
	ksm_snap=$(base_snapshot) || { bad restore_ksm "no base snapshot: sandbox run failed"; return; }
	ksm_kb=$("$SANDBOX" snapshot inspect "$ksm_snap" | awk '/^memory region / { kb += $(NF - 1) * 1024 } END { print kb + 0 }')
	[ "$ksm_kb" -gt 0 ] || { bad restore_ksm "no guest memory size from snapshot inspect"; return; }
	if [ ! -d /sys/kernel/mm/ksm ]; then
		# A kernel without KSM: --ksm is bad input, with the reason.
		ksm_restore file --ksm
		[ $rc -eq 101 ] || { bad restore_ksm "kernel without KSM: exit status $rc, expected 101"; return; }
		has "no KSM" || { bad restore_ksm "kernel without KSM: no clear message"; return; }
		echo "  this kernel has no KSM: only the refusal was tested"
		ok restore_ksm
		return
	fi
	# file mode maps the image over the range after the pager starts: the flag must survive it.
	for k in "file --ksm" "uffd --ksm" "eager --ksm" "file" "uffd"; do
		# shellcheck disable=SC2086 # a mode and a flag
		ksm_restore $k
		[ $rc -eq 0 ] || { bad restore_ksm "$k: exit status $rc before the restore was done"; return; }
		[ "$(echo "$flags" | grep -c .)" -eq 1 ] ||
			{ bad restore_ksm "$k: not one mapping of $ksm_kb kB in /proc/PID/smaps: '$flags'"; return; }
		case "$k $flags " in
		*--ksm*" mg "*) ;;
		*--ksm*) bad restore_ksm "$k: guest memory is not mergeable (VmFlags:$flags)"; return ;;
		*" mg "*) bad restore_ksm "$k: guest memory is mergeable without --ksm (VmFlags:$flags)"; return ;;
		esac
		echo "  restore --mem-mode $k: guest memory ($ksm_kb kB) VmFlags:$flags"
	done
	ok restore_ksm
}

all="boot_hello boot_log two_vcpus one_vcpu reboot_ends_vm guest_panic timeout
not_an_image missing_files too_small bad_flag no_root_panics
root_boot_persists read_only_drive dd_64mib missing_drive
snapshot_create snapshot_continue snapshot_inspect restore_uffd restore_eager restore_file
restore_raw_uffd restore_two_vcpus restore_four restore_block snapshot_corrupt snapshot_not_ready
run_hello run_exit_codes run_stdin run_random_differs run_timeout run_signal run_panic run_isolated
run_bad_input run_no_leaks restore_ksm"
[ $# -gt 0 ] && all="$*"
for t in $all; do
	"t_$t"
	rm -f "$tmp/out"
done
rm -rf "$tmp"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
