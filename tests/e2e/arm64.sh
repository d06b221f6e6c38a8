#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# End-to-end tests of `sandbox boot`, run inside the arm64 test host (busybox sh, /dev/kvm).
# Usage: sh e2e.sh [TEST...]   (default: all). Ends with "N passed, N failed".

SANDBOX=${SANDBOX:-/sandbox/sandbox}
IMAGES=${IMAGES:-/sandbox/images}
QUIET="console=ttyAMA0 quiet"
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
	has "Booting Linux on physical CPU" || { bad boot_log "no kernel boot log"; return; }
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
	# An ELF (our own init), a text file and a truncated Image are all refused.
	run not_an_image boot --kernel "$IMAGES/init" --timeout 10
	[ $rc -eq 101 ] || { bad not_an_image "ELF: exit status $rc, expected 101"; return; }
	has "not a bootable arm64 Image" || { bad not_an_image "ELF: no clear message"; return; }
	echo "this is not a kernel" >"$tmp/text"
	run not_an_image boot --kernel "$tmp/text" --timeout 10
	[ $rc -eq 101 ] || { bad not_an_image "text: exit status $rc"; return; }
	has "too short" || { bad not_an_image "text: no clear message"; return; }
	head -c 40 "$IMAGES/Image" >"$tmp/short"
	run not_an_image boot --kernel "$tmp/short" --timeout 10
	[ $rc -eq 101 ] || { bad not_an_image "truncated: exit status $rc"; return; }
	ok not_an_image
}

t_missing_files() {
	run missing boot --kernel /nonexistent/Image --timeout 10
	[ $rc -eq 101 ] || { bad missing_files "kernel: exit status $rc"; return; }
	has "/nonexistent/Image" || { bad missing_files "kernel: path not named"; return; }
	run missing boot --initrd /nonexistent/initrd --timeout 10
	[ $rc -eq 101 ] || { bad missing_files "initrd: exit status $rc"; return; }
	ok missing_files
}

t_too_small() {
	# 16 MiB of RAM cannot hold the kernel, a 20 MiB initrd and the DTB's 2 MiB.
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

all="boot_hello boot_log two_vcpus one_vcpu reboot_ends_vm guest_panic timeout
not_an_image missing_files too_small bad_flag no_root_panics
root_boot_persists read_only_drive dd_64mib missing_drive"
[ $# -gt 0 ] && all="$*"
for t in $all; do
	"t_$t"
	rm -f "$tmp/out"
done
rm -rf "$tmp"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
