#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Memory-dedup benchmark driver, run inside the arm64 test host by bench/dedup (busybox sh): makes
# the four snapshots of docs/snapshot-analyze.md's table the way that table's were made, runs
# `sandbox snapshot analyze --json` on them, prints the JSON and one RESULT line per snapshot.
#
# Usage: sh bench.sh LEVELS COUNT
#   LEVELS  zstd levels for analyze --levels, comma-separated, e.g. "1,3,9,19" (3 must be one:
#           the zstd snapshots are level 3, and their level-3 figure must equal their stored data)
#   COUNT   the counting guest is snapshotted at its line "count COUNT"
# The snapshots, all of our guest (kernel + initramfs beside the binary, 1 vCPU), in /tmp/dedup:
#   base      the base snapshot `sandbox run examples/hello x` makes in $SANDBOX_CACHE (128 MiB,
#             --agent, raw; a symlink to it)
#   agent128  snapshot create --agent, the base's command line, zstd 3 (a second boot)
#   agent256  the same with --mem 256
#   count     no agent: sandbox.test=count, snapshotted at its line "count COUNT", zstd 3 (a guest
#             that ran code after its ready point; it counts on to 2 x COUNT, 10 ms apart)
# Expects in its own directory: sandbox, images/{Image,initramfs.cpio}, examples/hello. Output:
#   INFO ...                                                      about the set-up
#   RESULT kind=make snapshot=NAME rc=0 wall_ms=T size=B [sandbox-timing keys]
#   INFO dedup-json-begin / the JSON (one line) / INFO dedup-json-end
#   RESULT kind=dedup snapshot=NAME encoding=E level=L mem_mib=M file_bytes=B stored_bytes=B
#          pages=N zero_pages=N nonzero_pages=N distinct=N dup_within=N dup_saved=N
#          shared_with_other=N same_addr_as_base=N nonzero_chunks=N distinct_chunks=N
#          zstdL=RATIO zstdL_bytes=B... zstd3_dict=RATIO zstd3_dict_bytes=B page_zstd3=RATIO
#          page_zstd3_dict=RATIO ms=T
#   RESULT kind=dedup-set snapshots=N pages=N distinct=N shared_contents=N saved_pages=N
#          nonzero_mib=M distinct_mib=M page_store_ratio=R chunks=N distinct_chunks=N
#          chunk_store_ratio=R dict_bytes=B dict_samples=N dict_ms=T ms=T
#   RESULT ... rc=N ... error=WORD       (followed by the step's last lines, "  | ...")
# Ratios are the analysis's: non-zero bytes / compressed (docs/snapshot-analyze.md); a figure the
# analysis did not make (no dictionary) is absent. Exit status 0 when every step succeeded and
# every check held, 1 otherwise.

[ $# -eq 2 ] || {
	echo "usage: sh bench.sh LEVELS COUNT" >&2
	exit 2
}
levels=$1 count=$2
dir=$(cd "$(dirname "$0")" && pwd)
sb=$dir/sandbox
work=/tmp/dedup
log=/tmp/step.log
json=/tmp/dedup.json
# The base snapshot is made by the first run, in a cache of our own.
export SANDBOX_CACHE=/tmp/sandbox-cache
# As launcher/run.c's BASE_CMDLINE: the base snapshot's command line, without the sandbox.agent
# that --agent adds.
base_cmdline="console=ttyAMA0 quiet loglevel=1"
interval=10
count_cmdline="$base_cmdline sandbox.test=count sandbox.count=$((count * 2)) sandbox.interval_ms=$interval"
failed=0

case ",$levels," in
*,3,*) ;;
*)
	echo "bench.sh: LEVELS must include 3, got '$levels'" >&2
	exit 2
	;;
esac

# now_cs: hundredths of a second since the test host booted.
now_cs() {
	read -r up _ </proc/uptime
	echo "${up%.*}${up#*.}"
}

echo "INFO host kernel=$(uname -r) cpus=$(nproc) mem_kb=$(awk '/MemTotal/ { print $2 }' /proc/meminfo) fs=$(stat -f -c %T /tmp) load=$(cut -d' ' -f1-3 /proc/loadavg | tr ' ' ,)"
echo "INFO sandbox $("$sb" version 2>&1 | head -n1)"
echo "INFO levels $levels"
echo "INFO made base=run_examples/hello agent128=create_--agent_zstd3 agent256=create_--agent_--mem_256_zstd3 count=create_--ready-line_count_${count}_zstd3"
echo "INFO cmdline-agent $base_cmdline"
echo "INFO cmdline-count $count_cmdline"

# report TAG RC FIELDS: one RESULT line; a failed step also shows its last lines.
report() {
	r_tag=$1 r_rc=$2 r_fields=$3
	case " $r_fields " in
	*" error="*) [ "$r_rc" -ne 0 ] || r_rc=1 ;;
	esac
	if [ "$r_rc" -eq 0 ]; then
		echo "RESULT $r_tag rc=0 $r_fields"
		return
	fi
	case " $r_fields " in
	*" error="*) ;;
	*) r_fields="$r_fields error=failed" ;;
	esac
	echo "RESULT $r_tag rc=$r_rc $r_fields"
	tail -n 10 "$log" | tr -d '\r' | sed 's/^/  | /'
	failed=1
}

# timing_keys: the sandbox-timing KEY=VALUE words of the step's log, on one line.
timing_keys() {
	sed -n 's/^sandbox-timing: //p' "$log" | tr '\n' ' ' | sed 's/ $//'
}

# make_snap NAME ARGS...: one `sandbox snapshot create` into $work/NAME.snap.
make_snap() {
	m_name=$1
	shift
	t0=$(now_cs)
	SANDBOX_TIMING=1 "$sb" snapshot create -o "$work/$m_name.snap" --timeout 300 "$@" >"$log" 2>&1
	m_rc=$?
	m_extra=
	[ -f "$work/$m_name.snap" ] || m_extra=" error=no-file"
	report "kind=make snapshot=$m_name" $m_rc "wall_ms=$((($(now_cs) - t0) * 10)) size=$(stat -c %s "$work/$m_name.snap" 2>/dev/null || echo 0) $(timing_keys)$m_extra"
}

rm -rf "$SANDBOX_CACHE" "$work"
mkdir -p "$work"

# base: what the first `sandbox run` leaves in the cache.
t0=$(now_cs)
out=$(SANDBOX_TIMING=1 "$sb" run --no-pool --timeout 300 "$dir/examples/hello" x 2>"$log")
b_rc=$?
b_extra=
[ "$out" = "Hello from a sandboxed function! x" ] || b_extra=" error=bad-output"
b_snap=
for f in "$SANDBOX_CACHE"/snapshots/base-*.snap; do
	[ -f "$f" ] && b_snap=$f
done
if [ -n "$b_snap" ]; then
	ln -s "$b_snap" "$work/base.snap"
	echo "INFO base-snapshot path=$b_snap"
else
	b_extra="$b_extra error=no-base-snapshot"
fi
report "kind=make snapshot=base" $b_rc "wall_ms=$((($(now_cs) - t0) * 10)) size=$(stat -L -c %s "$work/base.snap" 2>/dev/null || echo 0) $(timing_keys)$b_extra"

make_snap agent128 --agent --level 3 --cmdline "$base_cmdline"
make_snap agent256 --agent --level 3 --mem 256 --cmdline "$base_cmdline"
make_snap count --level 3 --ready-line "count $count" --cmdline "$count_cmdline"

names=
for n in base agent128 agent256 count; do
	[ -f "$work/$n.snap" ] && names="$names $n"
done
names=${names# }
if [ "$names" != "base agent128 agent256 count" ]; then
	echo "INFO dedup-analyze skipped: only '$names' made"
	exit 1
fi

# analyze: the base first (the same-address figures and the dictionary are the base's).
t0=$(now_cs)
"$sb" snapshot analyze --json --levels "$levels" "$work/base.snap" "$work/agent128.snap" \
	"$work/agent256.snap" "$work/count.snap" >"$json" 2>"$log"
a_rc=$?
a_extra=
[ "$(wc -l <"$json")" -eq 1 ] || a_extra=" error=not-one-line"
report "kind=analyze" $a_rc "wall_ms=$((($(now_cs) - t0) * 10)) json_bytes=$(stat -c %s "$json")$a_extra"
echo "INFO dedup-json-begin"
cat "$json"
echo "INFO dedup-json-end"
[ $a_rc -eq 0 ] || exit 1

# The JSON's layout is fixed (snapshot/analyze.c print_json: one line, no blanks, keys in a set
# order), so a few regular expressions read it; "[{]" because a bare "{" opens an interval.
# Checks: four snapshots, non-zero pages in each, and each zstd snapshot's figure at its own
# level equal to its stored memory data (docs/snapshot-analyze.md, "Compression unit").
lines=$(awk '
function num(s, k) {
	if (match(s, "\"" k "\":-?[0-9.]+"))
		return substr(s, RSTART + length(k) + 3, RLENGTH - length(k) - 3)
	return ""
}
{
	i = index($0, "],\"set\":{")
	if (i == 0) {
		print "RESULT kind=dedup-set rc=1 error=no-set"
		exit
	}
	ns = split(substr($0, 1, i), part, "[{]\"path\":\"")
	for (k = 2; k <= ns; k++) {
		s = part[k]
		path = substr(s, 1, index(s, "\"") - 1)
		name = path
		sub(/.*\//, "", name)
		sub(/\.snap$/, "", name)
		enc = s
		sub(/^.*"encoding":"/, "", enc)
		sub(/".*$/, "", enc)
		lvl = num(s, "level")
		nz = num(s, "nonzero_pages")
		line = sprintf("snapshot=%s encoding=%s level=%s mem_mib=%d file_bytes=%s stored_bytes=%s pages=%s zero_pages=%s nonzero_pages=%s distinct=%s dup_within=%s dup_saved=%s shared_with_other=%s same_addr_as_base=%s nonzero_chunks=%s distinct_chunks=%s",
			name, enc, lvl, num(s, "mem_bytes") / 1048576, num(s, "file_bytes"), num(s, "stored_bytes"),
			num(s, "pages"), num(s, "zero_pages"), nz, num(s, "distinct_contents"),
			num(s, "duplicated_pages"), num(s, "duplicates_saved_pages"), num(s, "shared_pages"),
			num(s, "same_address_as_base_pages"), num(s, "nonzero_chunks"), num(s, "distinct_chunks"))
		z = substr(s, index(s, "\"zstd\":["))
		z = substr(z, 1, index(z, "]"))
		nl = split(z, lv, "[{]\"level\":")
		own = ""
		for (j = 2; j <= nl; j++) {
			line = line sprintf(" zstd%d=%s zstd%d_bytes=%s", lv[j] + 0, num(lv[j], "ratio"), lv[j] + 0, num(lv[j], "bytes"))
			if (enc == "zstd" && lv[j] + 0 == lvl + 0)
				own = num(lv[j], "bytes")
		}
		d = substr(s, index(s, "\"dict\":") + 7)
		if (d !~ /^null/)
			line = line sprintf(" zstd3_dict=%s zstd3_dict_bytes=%s", num(d, "ratio"), num(d, "bytes"))
		pp = substr(s, index(s, "\"per_page\":{"))
		line = line sprintf(" page_zstd3=%s", num(pp, "ratio"))
		if (num(pp, "dict_ratio") != "")
			line = line sprintf(" page_zstd3_dict=%s", num(pp, "dict_ratio"))
		line = line sprintf(" ms=%s", num(pp, "ms"))
		err = ""
		if (nz + 0 <= 0)
			err = " error=no-nonzero-pages"
		else if (enc == "zstd" && own != "" && own != num(s, "stored_bytes"))
			err = " error=own-level-differs"
		printf "RESULT kind=dedup rc=%d %s%s\n", err != "", line, err
	}
	st = substr($0, i + 9)
	d = substr(st, index(st, "},\"dict\":") + 9)
	ms = $0
	sub(/.*"ms":/, "", ms)
	sub(/}$/, "", ms)
	err = ns - 1 == 4 ? "" : " error=not-4-snapshots"
	printf "RESULT kind=dedup-set rc=%d snapshots=%s pages=%s distinct=%s shared_contents=%s saved_pages=%s nonzero_mib=%s distinct_mib=%s page_store_ratio=%s chunks=%s distinct_chunks=%s chunk_store_ratio=%s",
		err != "", num(st, "snapshots"), num(st, "nonzero_pages"), num(st, "distinct_contents"),
		num(st, "shared_contents"), num(st, "saved_pages"), num(st, "nonzero_mib"), num(st, "distinct_mib"),
		num(st, "ratio"), num(st, "nonzero_chunks"), num(st, "distinct_chunks"), num(st, "chunk_ratio")
	if (d ~ /^[{]"trained_on"/)
		printf " dict_bytes=%s dict_samples=%s dict_ms=%s", num(d, "bytes"), num(d, "samples"), num(d, "ms")
	printf " ms=%s%s\n", ms, err
}' "$json")
echo "$lines"
case "$lines" in
*" error="*) failed=1 ;;
esac
[ -n "$lines" ] || failed=1
echo "INFO end load=$(cut -d' ' -f1-3 /proc/loadavg | tr ' ' ,)"
exit $failed
