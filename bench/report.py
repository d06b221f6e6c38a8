#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Aggregates the benchmark's raw lines into results.json, report.md and PNG plots.

Usage: bench/report.py [DIR]      (default build/bench)

Reads what the case wrappers left in DIR (NAME-results.txt: `INFO ...` and `RESULT key=value ...`
lines) and, when bench/all ran, DIR/all-run.txt (each case's status). Writes DIR/results.json,
DIR/report.md and DIR/plots/*.png (gnuplot). A case without results is reported as not run (or
failed, with bench/all's reason); the report is written whatever is missing. Standard library
only. Exit status: 0 when results.json and report.md were written (a plot gnuplot could not make
is recorded in results.json, and bench/check-report fails on it); 1 when they could not be; 2
bad usage.
"""

import datetime
import hashlib
import json
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WHERE_TEST_HOST = "arm64 test host (TCG-emulated, nested KVM): compare as ratios only"
SCHEMA = 1

# name, results file prefix, wrapper, section title
CASES = [
    ("boot", "boot", "bench/boot", "Cold boot to the guest's init: sandbox against QEMU"),
    ("snapshot", "snapshot", "bench/snapshot",
     "Snapshot create and restore: sandbox against QEMU's migration to a file"),
    ("run", "pool", "bench/run --pool",
     "`sandbox run examples/hello`: inline and through the pool, against native and bwrap; "
     "invocations per second; memory per idle pooled VM"),
    ("ksm", "ksm", "bench/ksm", "KSM: restored VMs merging their guest memory"),
    ("dedup", "dedup", "bench/dedup", "Memory dedup across snapshots"),
    ("blk", "blk", "bench/blk", "virtio-blk: sandbox against QEMU (aio=io_uring)"),
]

# Sides that are us, and peers, wherever a line names its side (vmm=, side=).
OURS = ("ours", "sandbox")
PEERS = ("qemu", "qemu-iothread", "bwrap", "native", "firecracker")
SIDE_KEYS = ("vmm", "side")
# Line fields that are never samples: round numbers, order, status, identifiers, set-up.
ROUND_KEYS = ("run", "round", "iter")
NOT_FIGURES = {"order", "rc", "pid", "vm", "last", "left", "src", "seconds", "guest_maps",
               "guest_kb", "bs", "qd", "count", "interval_ms", "workers", "warmup", "warm"}
# Text fields that describe a line without telling its group apart.
NOT_DIMS = {"error", "out", "first", "path", "engine", "pattern", "file", "files", "cmd", "expect"}
# Numeric fields that name a group's set-up rather than measure anything.
NUMERIC_DIMS = {"level", "vms", "busy", "callers", "n", "mem_mib", "vcpus", "size_mib",
                "snapshots", "zstd_level"}

NUM = re.compile(r"^[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$")


def is_num(v):
    return isinstance(v, str) and bool(NUM.match(v))


def unit_of(key):
    k = key.lower()
    tokens = k.split("_")
    for tok, unit in (("ms", "ms"), ("kb", "KiB"), ("kib", "KiB"), ("mib", "MiB"), ("bytes", "bytes")):
        if tok in tokens[1:] or k == tok:
            return unit
    if k.endswith("_ms") or k == "ms":
        return "ms"
    if k.endswith("_us"):
        return "us"
    if k.endswith("_kb") or k.endswith("_kib"):
        return "KiB"
    if k.endswith("_mib"):
        return "MiB"
    if k.endswith("_bytes") or k in ("size", "alloc", "allocated", "bytes"):
        return "bytes"
    if k == "mbps":
        return "MB/s"
    if k == "iops":
        return "IOPS"
    if k == "per_s":
        return "runs/s"
    if k.endswith("_per_s"):
        return "1/s"
    if k.endswith("_pct") or k.endswith("pct") or k == "percent":
        return "%"
    if k in ("wall", "t", "t_s", "time_s", "elapsed_s") or k.endswith("_s"):
        return "s"
    if k.endswith("ratio") or k.endswith("_x"):
        return "x"
    if "pages" in k or "faults" in k or k in ("ok", "failed", "late"):
        return "count"
    return ""


def lower_is_better(key):
    u = unit_of(key)
    return u not in ("MB/s", "IOPS", "1/s", "runs/s")


def nearest_rank(sorted_vals, p):
    """The smallest sample with at least p% of the samples at or below it."""
    n = len(sorted_vals)
    k = max(1, math.ceil(p * n / 100))
    return sorted_vals[min(k, n) - 1]


def rnd(x):
    if isinstance(x, float):
        if x == int(x) and abs(x) < 1e15:
            return int(x)
        return round(x, 3)
    return x


def summarize(vals, unit):
    s = sorted(vals)
    return {"n": len(s), "median": rnd(float(statistics.median(s))), "p90": rnd(nearest_rank(s, 90)),
            "p99": rnd(nearest_rank(s, 99)), "min": rnd(s[0]), "max": rnd(s[-1]), "unit": unit}


# --- raw lines -----------------------------------------------------------------------------------

def parse_fields(text):
    fields = {}
    for tok in text.split():
        if "=" not in tok:
            continue
        k, v = tok.split("=", 1)
        if k and k not in fields:
            fields[k] = v
    return fields


def read_lines(path):
    """(INFO lines as text, RESULT lines as dicts); ([], []) for a missing file."""
    infos, results = [], []
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                line = line.rstrip("\n")
                if line.startswith("INFO "):
                    infos.append(line[5:])
                elif line.startswith("RESULT "):
                    results.append(parse_fields(line[7:]))
    except OSError:
        pass
    return infos, results


def info_value(infos, tag):
    """The rest of the first `INFO TAG rest` line, or None."""
    for text in infos:
        head, _, rest = text.partition(" ")
        if head == tag:
            return rest
    return None


def is_warmup(f):
    kind = f.get("kind", "")
    return ("warm" in kind or f.get("warmup") in ("1", "yes", "true")
            or f.get("warm") in ("1", "yes", "true") or f.get("phase") == "warmup")


class Group:
    def __init__(self, dims):
        self.dims = dims
        self.values = {}   # figure -> [float]
        self.rows = []     # each line's figures, for series sampled over time
        self.rounds = {}   # figure -> {round: float}
        self.ok = 0
        self.failed = 0
        self.errors = {}

    def add(self, key, value, rnd_no):
        self.values.setdefault(key, []).append(value)
        if rnd_no is not None:
            self.rounds.setdefault(key, {})[rnd_no] = value


def label_of(dims):
    parts = []
    for k, v in dims.items():
        parts.append(v if k == "kind" else "%s=%s" % (k, v))
    return " ".join(parts) or "all"


class Case:
    def __init__(self, name, prefix, wrapper, title):
        self.name, self.prefix, self.wrapper, self.title = name, prefix, wrapper, title
        self.groups = {}
        self.order = []
        self.warmups = 0
        self.pairs = []
        self.infos = []
        self.lines = 0

    def group(self, dims):
        label = label_of(dims)
        if label not in self.groups:
            self.groups[label] = Group(dims)
            self.order.append(label)
        return self.groups[label]

    def find(self, **want):
        """Groups whose dims hold every key=value given (value None: key absent)."""
        out = []
        for label in self.order:
            g = self.groups[label]
            if all(g.dims.get(k) == v for k, v in want.items()):
                out.append((label, g))
        return out

    def one(self, **want):
        found = self.find(**want)
        return found[0] if found else (None, None)


def dims_for(case, f):
    kind = f.get("kind", "result")
    if case == "snapshot":
        if kind == "restore":
            keys = ("vmm", "mode")
        else:
            keys = ("vmm", "level")
    elif case == "run":
        keys = {"run": ("side",), "first": ("side",), "rate": ("mode", "busy", "callers"),
                "mem": ("enc", "mode", "vms"), "mempool": ("enc", "mode", "vms")}.get(kind)
        if keys is None:
            keys = generic_dim_keys(f)
    elif case == "blk":
        kind = f.get("kind", "io")
        keys = ("vmm", "spec")
    else:
        keys = generic_dim_keys(f)
    dims = {"kind": kind}
    for k in keys:
        if k in f and k != "kind":
            dims[k] = f[k]
    return dims


def generic_dim_keys(f):
    keys = []
    for k, v in f.items():
        if k == "kind" or k in ROUND_KEYS or k in NOT_FIGURES or k in NOT_DIMS:
            continue
        # A figure's key with a value that is not a number is a broken sample, not a set-up.
        if k in NUMERIC_DIMS or (not is_num(v) and not unit_of(k)):
            keys.append(k)
    return keys


def derived(case, f):
    """Figures made from several fields of one line, named so ours and the peer's pair up."""
    d = {}
    kind = f.get("kind")

    def num(k):
        v = f.get(k)
        return float(v) if is_num(v) else None

    if case == "snapshot" and kind == "restore":
        # From exec on both sides: ours is its SANDBOX_TIMING mark, QEMU's its RESUME event.
        v = num("running_ms") if f.get("vmm") == "qemu" else num("timing_ms")
        if v is not None:
            d["exec_to_running_ms"] = v
    if case == "snapshot" and kind == "create":
        if f.get("vmm") == "qemu":
            v = num("save_ms")
        else:
            w, r = num("snapshot_write_ms"), num("ready_ms")
            v = w - r if w is not None and r is not None else None
        if v is not None:
            d["write_ms"] = v
    if case == "run" and kind == "mem":
        r, g = num("rss_kb"), num("guest_rss_kb")
        if r is not None and g is not None:
            # The VMM's own: the worker's resident memory outside the guest's mapping.
            d["vmm_overhead_kb"] = r - g
    return d


def load_case(spec, outdir):
    case = Case(*spec)
    path = os.path.join(outdir, case.prefix + "-results.txt")
    case.path = path
    case.exists = os.path.isfile(path)
    case.infos, results = read_lines(path)
    case.lines = len(results)
    for f in results:
        if is_warmup(f):
            case.warmups += 1
            continue
        dims = dims_for(case.name, f)
        g = case.group(dims)
        rc = f.get("rc", "0")
        if rc != "0" or "error" in f:
            g.failed += 1
            err = f.get("error", "rc=" + rc)
            g.errors[err] = g.errors.get(err, 0) + 1
            continue
        g.ok += 1
        rnd_no = None
        for rk in ROUND_KEYS:
            if is_num(f.get(rk)):
                rnd_no = int(float(f[rk]))
                break
        for k, v in f.items():
            if k in dims or k in ROUND_KEYS or k in NOT_FIGURES or not is_num(v):
                continue
            x = float(v)
            if math.isfinite(x):
                g.add(k, x, rnd_no)
        for k, x in derived(case.name, f).items():
            g.add(k, x, rnd_no)
        g.rows.append({k: float(v) for k, v in f.items() if is_num(v)})
    return case


# --- pairs: ours against a peer --------------------------------------------------------------------

def make_pair(case, name, ours_label, peer_label, figure):
    a, b = case.groups.get(ours_label), case.groups.get(peer_label)
    if a is None or b is None or figure not in a.values or figure not in b.values:
        return None
    ma = statistics.median(a.values[figure])
    mb = statistics.median(b.values[figure])
    pair = {"name": name, "figure": figure, "unit": unit_of(figure), "ours": ours_label,
            "peer": peer_label, "ours_median": rnd(float(ma)), "peer_median": rnd(float(mb)),
            "ratio_of_medians": rnd(ma / mb) if mb else None,
            "better": "lower" if lower_is_better(figure) else "higher", "per_round": None}
    ra, rb = a.rounds.get(figure, {}), b.rounds.get(figure, {})
    ratios = [ra[r] / rb[r] for r in sorted(set(ra) & set(rb)) if rb[r]]
    if ratios:
        pair["per_round"] = {"n": len(ratios), "median": rnd(statistics.median(ratios)),
                             "min": rnd(min(ratios)), "max": rnd(max(ratios))}
    case.pairs.append(pair)
    return pair


def side_of(dims):
    for k in SIDE_KEYS:
        if k in dims:
            return k, dims[k]
    return None, None


def generic_pairs(case, figures=None):
    """Each group of ours against the peer groups that differ from it in their side alone; failing
    those, against the peer groups of the same kind that name nothing but their side (a peer
    without our modes)."""
    for la in case.order:
        a = case.groups[la]
        ka, va = side_of(a.dims)
        if va not in OURS:
            continue
        rest = {k: v for k, v in a.dims.items() if k != ka}
        peers = []
        for lb in case.order:
            b = case.groups[lb]
            kb, vb = side_of(b.dims)
            if kb == ka and vb in PEERS and {k: v for k, v in b.dims.items() if k != kb} == rest:
                peers.append(lb)
        if not peers:
            for lb in case.order:
                b = case.groups[lb]
                kb, vb = side_of(b.dims)
                if kb == ka and vb in PEERS and set(b.dims) == {"kind", kb} and b.dims["kind"] == a.dims["kind"]:
                    peers.append(lb)
        for lb in peers:
            b = case.groups[lb]
            for fig in (figures or sorted(set(a.values) & set(b.values))):
                # make_pair leaves out a figure one of the two lacks.
                make_pair(case, "%s / %s" % (la, lb), la, lb, fig)


def case_pairs(case):
    if case.name == "snapshot":
        ql, _ = case.one(kind="restore", vmm="qemu")
        for la, g in case.find(kind="restore", vmm="ours"):
            if ql:
                mode = g.dims.get("mode")
                make_pair(case, "restore %s to first instruction / QEMU" % mode, la, ql,
                          "exec_to_running_ms")
                make_pair(case, "restore %s to first guest output / QEMU" % mode, la, ql, "first_ms")
        ql, _ = case.one(kind="create", vmm="qemu")
        for la, g in case.find(kind="create", vmm="ours"):
            if ql:
                lvl = g.dims.get("level")
                make_pair(case, "snapshot file, %s / QEMU migration" % lvl, la, ql, "size")
                make_pair(case, "snapshot write, %s / QEMU migration" % lvl, la, ql, "write_ms")
    elif case.name == "run":
        for ours in ("pool", "sandbox"):
            for peer in ("bwrap", "native", "sandbox"):
                if ours == peer:
                    continue
                la, _ = case.one(kind="run", side=ours)
                lb, _ = case.one(kind="run", side=peer)
                if la and lb:
                    make_pair(case, "%s / %s" % (ours, peer), la, lb, "wall_ms")
        for la, g in case.find(kind="rate", mode="pool"):
            lb, _ = case.one(kind="rate", mode="inline", busy=g.dims.get("busy"),
                             callers=g.dims.get("callers"))
            if lb:
                make_pair(case, "runs/s pool / inline, busy=%s callers=%s"
                          % (g.dims.get("busy"), g.dims.get("callers")), la, lb, "per_s")
    elif case.name == "blk":
        for la, g in case.find(kind="io", vmm="ours"):
            spec = g.dims.get("spec", "")
            fig = "mbps" if spec.startswith("seq") else "iops"
            for lb, h in case.find(kind="io", spec=spec):
                if h.dims.get("vmm") in PEERS:
                    peer = "QEMU" if h.dims["vmm"] == "qemu" else h.dims["vmm"]
                    make_pair(case, "%s %s / %s" % (spec, unit_of(fig), peer), la, lb, fig)
    elif case.name == "ksm":
        # Each configuration with --ksm against the same mode without it, and the file mode's page
        # cache sharing against eager (nothing shared): PSS per VM once ksmd has run.
        summ = {g.dims.get("config"): la for la, g in case.find(kind="ksm-summary")}
        for conf, la in summ.items():
            if conf and conf.endswith("-ksm") and conf[:-4] in summ:
                make_pair(case, "%s / %s" % (conf, conf[:-4]), la, summ[conf[:-4]], "pss_kb_per_vm_last")
        if "file" in summ and "eager" in summ:
            make_pair(case, "file / eager", summ["file"], summ["eager"], "pss_kb_per_vm_last")
        if "uffd-ksm" in summ and "uffd" not in summ and "eager" in summ:
            make_pair(case, "uffd-ksm / eager", summ["uffd-ksm"], summ["eager"], "pss_kb_per_vm_last")
    elif case.name == "boot":
        generic_pairs(case, ["init_ms", "kernel_ms", "first_ms", "rss_kb"])
    else:
        generic_pairs(case)


# --- environment ----------------------------------------------------------------------------------

def run_cmd(argv):
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=30, cwd=REPO)
    except (OSError, subprocess.SubprocessError):
        return None
    return p.stdout.strip() if p.returncode == 0 else None


def sha256_file(path):
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    except OSError:
        return None
    return h.hexdigest()


def guest_kernel():
    """images/build-kernel's cache key, computed the way it does (sha256 over the config fragment's
    sha256sum line, the linux-source package version and the script's sha256sum line), and whether
    its cache entry holds the Image the benchmarks ran."""
    frag = os.path.join(REPO, "images", "arm64.config")
    script = os.path.join(REPO, "images", "build-kernel")
    pkgver = run_cmd(["dpkg-query", "-W", "-f=${Version}", "linux-source-6.1"])
    fs, ss = sha256_file(frag), sha256_file(script)
    gk = {"config_fragment": "images/arm64.config", "config_fragment_sha256": fs,
          "source_package": "linux-source-6.1 %s" % pkgver if pkgver else None,
          "config_key": None, "cache_entry": None, "image_sha256": None, "image_matches_cache": None}
    if fs and ss and pkgver:
        text = "%s  -\n%s\n%s  -\n" % (fs, pkgver, ss)
        gk["config_key"] = hashlib.sha256(text.encode()).hexdigest()[:16]
        cache = os.environ.get("SANDBOX_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "sandbox")
        entry = os.path.join(cache, "kernel", "arm64-" + gk["config_key"])
        if os.path.isdir(entry):
            gk["cache_entry"] = entry
            cfg = sha256_file(os.path.join(entry, "config"))
            gk["config_sha256"] = cfg
    image = os.path.join(REPO, "build", "arm64", "images", "Image")
    gk["image_sha256"] = sha256_file(image)
    if gk["cache_entry"] and gk["image_sha256"]:
        gk["image_matches_cache"] = sha256_file(os.path.join(gk["cache_entry"], "Image")) == gk["image_sha256"]
    return gk


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k.strip() in ("model name", "Hardware", "Processor"):
                    return v.strip()
    except OSError:
        pass
    return platform.processor() or None


def read_state(outdir):
    """bench/all's record: key=value lines and one `step name=... reason=...` line per case."""
    state = {"steps": {}}
    path = os.path.join(outdir, "all-run.txt")
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                line = line.rstrip("\n")
                if line.startswith("step "):
                    head, _, reason = line.partition(" reason=")
                    st = parse_fields(head[5:])
                    st["reason"] = reason
                    if "name" in st:
                        state["steps"][st["name"]] = st
                elif "=" in line:
                    k, _, v = line.partition("=")
                    state[k] = v
    except OSError:
        return None
    return state


def environment(outdir, cases, state):
    def first_info(tag):
        for c in cases:
            v = info_value(c.infos, tag)
            if v:
                return v
        return None

    th = first_info("host")
    thf = parse_fields(th) if th else {}
    env = {
        "host_kernel": platform.release(),
        "host_arch": platform.machine(),
        "cpu_model": cpu_model(),
        "cpus": os.cpu_count(),
        "test_host_qemu": (run_cmd(["qemu-system-aarch64", "--version"]) or "").split("\n")[0] or None,
        "test_host_kernel": thf.get("kernel"),
        "test_host_cpus": int(thf["cpus"]) if is_num(thf.get("cpus")) else None,
        "test_host_mem_kb": int(thf["mem_kb"]) if is_num(thf.get("mem_kb")) else None,
        "peer_qemu": first_info("qemu"),
        "peer_bwrap": first_info("bwrap"),
        "guest_kernel": guest_kernel(),
        "commit": (state or {}).get("commit") or run_cmd(["git", "describe", "--always", "--dirty"]) or "unknown",
        "date": (state or {}).get("started"),
        "finished": (state or {}).get("finished"),
        "quick": None,
        "load_average_at_report": None,
    }
    if state and state.get("quick") in ("0", "1"):
        env["quick"] = state["quick"] == "1"
    if not env["date"]:
        mt = [os.path.getmtime(c.path) for c in cases if c.exists]
        if mt:
            env["date"] = datetime.datetime.fromtimestamp(max(mt), datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    try:
        env["load_average_at_report"] = list(os.getloadavg())
    except OSError:
        pass
    return env


# --- status of each case ------------------------------------------------------------------------

def case_status(case, state):
    step = (state or {}).get("steps", {}).get(case.name)
    fname = os.path.basename(case.path)
    if step and step.get("status") == "notrun":
        return "not run", step.get("reason") or "not selected"
    if not case.exists:
        if step and step.get("status") == "failed":
            return "failed", step.get("reason") or "failed"
        if step and step.get("status") == "ok":
            return "failed", "%s exited 0 but wrote no %s" % (case.wrapper, fname)
        return "not run", "no %s in this directory" % fname
    if case.lines == 0:
        why = "%s holds no RESULT line" % fname
        if step and step.get("status") == "failed":
            why = "%s; %s" % (step.get("reason") or "failed", why)
        return "failed", why
    if step and step.get("status") == "failed":
        return "failed", step.get("reason") or "failed"
    if not any(g.values for g in case.groups.values()):
        return "failed", "no RESULT line of %s carries a figure (%d failed)" % (
            fname, sum(g.failed for g in case.groups.values()))
    return "ok", ""


# --- plots ---------------------------------------------------------------------------------------

class Plotter:
    def __init__(self, outdir):
        self.dir = os.path.join(outdir, "plots")
        os.makedirs(self.dir, exist_ok=True)
        self.gnuplot = shutil.which("gnuplot")
        self.term = None
        if self.gnuplot:
            for term in ("pngcairo size 900,480 font 'sans,10'", "png size 900,480"):
                if subprocess.run([self.gnuplot, "-e", "set terminal " + term],
                                  capture_output=True).returncode == 0:
                    self.term = term
                    break
        self.made = []

    def _run(self, name, script, title):
        path = os.path.join(self.dir, name + ".png")
        rec = {"name": name, "file": "plots/%s.png" % name, "title": title, "error": None}
        if not self.term:
            rec["error"] = "gnuplot with a png terminal not found (scripts/deps: gnuplot-nox)"
        else:
            head = "set terminal %s\nset output '%s'\nset termoption noenhanced\n" % (self.term, path)
            try:
                os.unlink(path)
            except OSError:
                pass
            p = subprocess.run([self.gnuplot], input=head + script, capture_output=True, text=True)
            if p.returncode != 0 or not os.path.isfile(path):
                rec["error"] = "gnuplot failed: " + (p.stderr.strip().splitlines() or ["?"])[-1]
        self.made.append(rec)
        return rec

    def _dat(self, name, rows):
        path = os.path.join(self.dir, name + ".dat")
        with open(path, "w") as f:
            for r in rows:
                f.write("\t".join(str(x) for x in r) + "\n")
        return path

    @staticmethod
    def _q(s):
        return '"' + str(s).replace("\\", "\\\\").replace('"', '\\"') + '"'

    def empty(self, name, title, why):
        script = ("set title %s\nunset border\nunset xtics\nunset ytics\nunset key\n"
                  "set label 1 %s at graph 0.5,0.5 center\nset xrange [0:1]\nset yrange [0:1]\n"
                  "plot 2 notitle\n" % (self._q(title), self._q("no data: " + why)))
        return self._run(name, script, title)

    def bars(self, name, title, ylabel, cats, series, logy=False, refline=None):
        """Clustered bars of medians, whiskers from min to p90. series: [(name, [stats|None])]."""
        rows = []
        ns = len(series)
        width = 0.8 / ns
        vals = []
        for i, cat in enumerate(cats):
            row = [i, cat]
            for _, sl in series:
                s = sl[i]
                if s:
                    row += [s["median"], s["min"], s["p90"]]
                    vals += [s["median"], s["min"], s["p90"]]
                else:
                    row += ["NaN", "NaN", "NaN"]
            rows.append(row)
        if not vals:
            return self.empty(name, title, "no figures")
        dat = self._dat(name, rows)
        lines = ["set title %s" % self._q(title), "set ylabel %s" % self._q(ylabel),
                 "set datafile separator '\\t'", "set style fill solid 0.6 border -1",
                 "set boxwidth %g" % width, "set grid ytics", "set xrange [-0.6:%g]" % (len(cats) - 0.4),
                 "set xtics rotate by -20"]
        positive = [v for v in vals if v > 0]
        if logy and positive:
            lines.append("set logscale y")
            lines.append("set yrange [%g:%g]" % (10 ** math.floor(math.log10(min(positive) * 0.8)),
                                                 max(positive) * 2))
        else:
            lines.append("set yrange [0:%g]" % (max(vals + [refline or 0]) * 1.15 or 1))
        if ns == 1:
            lines.append("set key off")
        else:
            lines.append("set key below")
        colors = ["#4477aa", "#ee6677", "#228833", "#ccbb44", "#66ccee", "#aa3377"]
        plots = []
        for j, (sname, _) in enumerate(series):
            off = (j - (ns - 1) / 2) * width
            c = 3 + 3 * j
            xt = ":xtic(2)" if j == 0 else ""
            plots.append("'%s' using ($1+%g):%d%s with boxes lc rgb '%s' title %s"
                         % (dat, off, c, xt, colors[j % len(colors)], self._q(sname)))
            # Whiskers as plain vectors: yerrorbars leave a gap around their (hidden) point.
            plots.append("'%s' using ($1+%g):%d:(0):($%d-$%d) with vectors nohead lc rgb 'black' notitle"
                         % (dat, off, c + 1, c + 2, c + 1))
        if refline is not None:
            plots.append("%g with lines dt 2 lc rgb 'black' notitle" % refline)
        lines.append("plot " + ", ".join(plots))
        return self._run(name, "\n".join(lines) + "\n", title)

    def lines(self, name, title, xlabel, ylabel, series, logx=False):
        """series: [(name, [(x, y)])]: one line with points each."""
        series = [(n, pts) for n, pts in series if pts]
        if not series:
            return self.empty(name, title, "no figures")
        plots = []
        for j, (sname, pts) in enumerate(series):
            dat = self._dat("%s-%d" % (name, j), sorted(pts))
            plots.append("'%s' using 1:2 with linespoints lw 2 title %s" % (dat, self._q(sname)))
        script = ["set title %s" % self._q(title), "set xlabel %s" % self._q(xlabel),
                  "set ylabel %s" % self._q(ylabel), "set datafile separator '\\t'", "set grid",
                  "set key outside right", "set yrange [0:*]"]
        if logx:
            script.append("set logscale x")
        script.append("plot " + ", ".join(plots))
        return self._run(name, "\n".join(script) + "\n", title)


def stats_of(case, label, fig):
    g = case.groups.get(label) if case and label else None
    if not g or fig not in g.values:
        return None
    return summarize(g.values[fig], unit_of(fig))


def make_plots(P, cases):
    byname = {c.name: c for c in cases}

    def gone(c, name, title):
        if c.status != "ok" and not c.groups:
            P.empty(name, title, "%s %s (%s)" % (c.name, c.status, c.reason))
            return True
        return False

    # Boot: ours against QEMU on the headline figure.
    c = byname["boot"]
    title = "Cold boot to the guest's init (median, whiskers min-p90)"
    if not gone(c, "boot", title):
        fig, rows = boot_rows(c)
        if rows:
            names = {"ours": "sandbox boot", "sandbox": "sandbox boot", "qemu": "QEMU -M virt -enable-kvm"}
            cats = [names.get(side_of(c.groups[la].dims)[1], la) for la, _ in rows]
            P.bars("boot", title, "ms from exec (%s)" % fig, cats, [("boot", [r[1] for r in rows])])
        else:
            P.empty("boot", title, "no ours/peer boot figures in boot-results.txt")

    # Restore per mode against QEMU: to the first instruction and to the first output.
    c = byname["snapshot"]
    title = "Restore per memory mode vs QEMU -incoming (median, whiskers min-p90; log scale)"
    if not gone(c, "restore", title):
        cats, s1, s2 = [], [], []
        for la, g in c.find(kind="restore", vmm="ours") + c.find(kind="restore", vmm="qemu"):
            cats.append("sandbox " + g.dims.get("mode", "") if g.dims.get("vmm") == "ours" else "QEMU -incoming")
            s1.append(stats_of(c, la, "exec_to_running_ms"))
            s2.append(stats_of(c, la, "first_ms"))
        P.bars("restore", title, "ms from exec", cats,
               [("to vCPUs running", s1), ("to first guest output", s2)], logy=True)
    title = "Snapshot file size per zstd level vs QEMU migration stream"
    if not gone(c, "snapshot-size", title):
        cats, s1, s2 = [], [], []
        for la, g in c.find(kind="create", vmm="ours") + c.find(kind="create", vmm="qemu"):
            lvl = g.dims.get("level", "")
            cats.append(("zstd " + lvl if is_num(lvl) else lvl) if g.dims.get("vmm") == "ours" else "QEMU migration")
            s1.append(mib_stats(stats_of(c, la, "size")))
            s2.append(mib_stats(stats_of(c, la, "alloc")))
        P.bars("snapshot-size", title, "MiB", cats, [("file size", s1), ("allocated on disk", s2)])

    # sandbox run latency; invocations per second; memory per VM against the number of VMs.
    c = byname["run"]
    title = "hello end to end: native, bwrap, sandbox run inline and pooled (median, min-p90; log)"
    if not gone(c, "run", title):
        cats, sl = [], []
        for side, lab in (("native", "native fork+exec"), ("bwrap", "bwrap"),
                          ("sandbox", "sandbox run (inline)"), ("pool", "sandbox run --pool")):
            la, _ = c.one(kind="run", side=side)
            if la:
                cats.append(lab)
                sl.append(stats_of(c, la, "wall_ms"))
        P.bars("run", title, "ms, fork to exit status", cats, [("wall", sl)], logy=True)
    title = "Sustained invocations per second: pool vs inline"
    if not gone(c, "rate", title):
        cats, s1, s2 = [], [], []
        for la, g in c.find(kind="rate", mode="pool"):
            lb, _ = c.one(kind="rate", mode="inline", busy=g.dims.get("busy"), callers=g.dims.get("callers"))
            cats.append("busy %s, %s callers" % (g.dims.get("busy"), g.dims.get("callers")))
            s1.append(stats_of(c, la, "per_s"))
            s2.append(stats_of(c, lb, "per_s"))
        P.bars("rate", title, "runs per second", cats, [("pool", s1), ("inline", s2)])
    title = "Host memory per idle pooled VM against the number of VMs (median over the VMs)"
    if not gone(c, "memory", title):
        series = {}
        for la, g in c.find(kind="mem"):
            n = g.dims.get("vms")
            if not is_num(n):
                continue
            tag = "%s %s" % (g.dims.get("enc", ""), g.dims.get("mode", ""))
            for fig, fl in (("uss_kb", "USS"), ("pss_kb", "PSS"), ("rss_kb", "RSS")):
                s = stats_of(c, la, fig)
                if s:
                    series.setdefault("%s (%s)" % (fl, tag), []).append((int(n), s["median"]))
        P.lines("memory", title, "idle VMs in the pool", "KiB per VM", sorted(series.items()))

    # KSM: sharing over time.
    c = byname["ksm"]
    title = "KSM: memory sharing over time"
    if not gone(c, "ksm", title):
        ksm_plot(P, c, title)

    # Dedup: what the pages are.
    c = byname["dedup"]
    title = "Memory dedup across snapshots"
    if not gone(c, "dedup", title):
        dedup_plot(P, c, title)

    # virtio-blk: ours / peer per pattern.
    c = byname["blk"]
    title = "virtio-blk: sandbox / QEMU per pattern (per-run ratio median, min-max; above 1 is faster)"
    if not gone(c, "blk", title):
        cats, sl = [], []
        for p in c.pairs:
            pr = p["per_round"]
            if pr:
                cats.append(p["name"])
                sl.append({"median": pr["median"], "min": pr["min"], "p90": pr["max"]})
            elif p["ratio_of_medians"] is not None:
                cats.append(p["name"])
                r = p["ratio_of_medians"]
                sl.append({"median": r, "min": r, "p90": r})
        P.bars("blk", title, "sandbox / QEMU", cats, [("ratio", sl)], refline=1)


def mib_stats(s):
    if not s:
        return None
    return {k: (v / 1048576 if k in ("median", "min", "p90", "p99", "max") else v) for k, v in s.items()}


def ksm_plot(P, c, title):
    """PSS per VM over time, one line per configuration (kind=ksm samples: t_s, pss_kb of all
    the configuration's VMs, vms)."""
    series = []
    for la, g in c.find(kind="ksm"):
        pts = [(r["t_s"], r["pss_kb"] / r["vms"] / 1024) for r in g.rows
               if "t_s" in r and "pss_kb" in r and r.get("vms")]
        if pts:
            series.append((g.dims.get("config") or la, pts))
    n = {g.dims.get("vms") for _, g in c.find(kind="ksm")}
    return P.lines("ksm", title + ": PSS per idle VM (%s VMs)" % "/".join(sorted(x for x in n if x)),
                   "seconds since the VMs were restored and ksmd started", "MiB per VM", series)


DEDUP_Y = (("nonzero_pages", "non-zero"), ("distinct", "distinct contents"),
           ("dup_within", "duplicated within it"), ("shared_with_other", "shared with another snapshot"),
           ("same_addr_as_base", "same page at the same address as the base"))


def dedup_plot(P, c, title):
    """Per snapshot: its non-zero pages and how many of them are duplicates or shared."""
    found = c.find(kind="dedup")
    cats = [g.dims.get("snapshot") or la for la, g in found]
    series = [(name, [stats_of(c, la, y) for la, _ in found]) for y, name in DEDUP_Y]
    series = [(n, v) for n, v in series if any(v)]
    if cats and series:
        return P.bars("dedup", title + ": 4 KiB pages per snapshot", "pages", cats, series)
    return P.empty("dedup", title, "no kind=dedup page figures in dedup-results.txt")


# --- the headline ---------------------------------------------------------------------------------

BOOT_FIGS = ("init_ms", "boot_ms", "to_init_ms", "first_ms", "ready_ms", "wall_ms")


def boot_rows(c):
    """(figure, [(label, stats)]) for ours and the peers, on the first boot figure they share."""
    ours = [(la, g) for la in c.order for g in [c.groups[la]] if side_of(g.dims)[1] in OURS]
    peers = [(la, g) for la in c.order for g in [c.groups[la]] if side_of(g.dims)[1] in PEERS]
    for fig in BOOT_FIGS:
        if any(fig in g.values for _, g in ours) and any(fig in g.values for _, g in peers):
            return fig, [(la, stats_of(c, la, fig)) for la, g in ours + peers if fig in g.values]
    return None, []


def headline(cases):
    byname = {c.name: c for c in cases}
    rows = []

    def add(case, what, pair=None, ours=None, unit=None, peer_name=None, note=""):
        c = byname[case]
        row = {"case": case, "figure": what, "where": WHERE_TEST_HOST, "status": c.status,
               "ours": None, "peer": None, "peer_name": peer_name, "ratio": None,
               "per_round": None, "unit": unit, "note": note}
        if pair:
            row.update(ours=pair["ours_median"], peer=pair["peer_median"], unit=pair["unit"],
                       ratio=pair["ratio_of_medians"], per_round=pair["per_round"],
                       better=pair["better"])
        elif ours is not None:
            row["ours"] = ours
        if c.status != "ok" and row["ours"] is not None:
            row["figure"] += " (case %s: partial data)" % c.status
        rows.append(row)

    def pair(case, name):
        return next((p for p in byname[case].pairs if p["name"] == name), None)

    # Boot
    c = byname["boot"]
    fig, got = boot_rows(c) if c.groups else (None, [])
    ps = [p for p in c.pairs if p["figure"] == fig] if fig else []
    if ps:
        for p in ps:
            peer = c.groups[p["peer"]].dims
            add("boot", "cold boot to the guest's init (%s)" % fig, p,
                peer_name="QEMU -M virt -enable-kvm" if side_of(peer)[1] == "qemu" else p["peer"])
    else:
        add("boot", "cold boot to init", peer_name="QEMU -M virt -enable-kvm")
    # Snapshot
    for mode in ("uffd", "file", "eager"):
        p = pair("snapshot", "restore %s to first instruction / QEMU" % mode)
        if p or mode == "uffd":
            add("snapshot", "restore to first instruction, %s (exec to vCPUs running)" % mode, p,
                peer_name="QEMU -incoming")
    for mode in ("uffd", "file"):
        p = pair("snapshot", "restore %s to first guest output / QEMU" % mode)
        add("snapshot", "restore to first guest output, %s" % mode, p, peer_name="QEMU -incoming")
    p = pair("snapshot", "snapshot file, 3 / QEMU migration")
    add("snapshot", "snapshot file size, zstd 3", p, peer_name="QEMU migration stream")
    # sandbox run
    for ours, peer, what in (("sandbox", "bwrap", "sandbox run hello, inline, end to end"),
                             ("pool", "bwrap", "sandbox run hello, warm pool, end to end"),
                             ("pool", "native", "sandbox run hello, warm pool, against native")):
        add("run", what, pair("run", "%s / %s" % (ours, peer)), peer_name=peer)
    c = byname["run"]
    rp = [p for p in c.pairs if p["figure"] == "per_s"]
    if rp:
        add("run", "invocations per second, pool / inline (%s)" % rp[0]["name"].split(", ", 1)[-1], rp[0],
            peer_name="sandbox run inline")
    else:
        add("run", "invocations per second, pool / inline", peer_name="sandbox run inline")
    mem = [(int(g.dims["vms"]), la, g) for la, g in c.find(kind="mem") if is_num(g.dims.get("vms"))]
    for mode in ("file", "uffd"):
        ms = sorted((n, la) for n, la, g in mem if g.dims.get("mode") == mode)
        if ms:
            n, la = ms[-1]
            s = stats_of(c, la, "uss_kb")
            add("run", "memory per idle pooled VM, %s mode, %d VMs: USS" % (mode, n),
                ours=s["median"] if s else None, unit="KiB", peer_name="-")
            s = stats_of(c, la, "vmm_overhead_kb")
            if mode == "file" and s:
                add("run", "VMM's own memory (RSS outside guest memory), %d VMs" % n,
                    ours=s["median"], unit="KiB", peer_name="-")
        elif mode == "file":
            add("run", "memory per idle pooled VM, file mode: USS", peer_name="-")
    # Dedup: what storing each distinct page (or chunk) once across the set would save.
    c = byname["dedup"]
    la, g = c.one(kind="dedup-set")
    if la:
        n = g.dims.get("snapshots", "?")
        for fig, what in (("page_store_ratio", "pages"), ("chunk_store_ratio", "chunks")):
            s = stats_of(c, la, fig)
            add("dedup", "%s snapshots: non-zero %s / distinct %s (stored once)" % (n, what, what),
                ours=s["median"] if s else None, unit="x", peer_name="-")
    else:
        add("dedup", "non-zero pages / distinct pages across the snapshots", peer_name="-")
    # KSM: PSS per VM with merging against without, and the file mode's sharing.
    c = byname["ksm"]
    for name, what in (("eager-ksm / eager", "PSS per idle VM, eager + KSM / eager (nothing shared)"),
                       ("uffd-ksm / uffd", "PSS per idle VM, uffd + KSM / uffd"),
                       ("uffd-ksm / eager", "PSS per idle VM, uffd + KSM / eager (nothing shared)"),
                       ("file / eager", "PSS per idle VM, file (page cache) / eager (nothing shared)"),
                       ("file-ksm / file", "PSS per idle VM, file + KSM / file")):
        p = pair("ksm", name)
        if p or name == "eager-ksm / eager":
            a = c.groups[p["ours"]].dims.get("vms") if p else None
            add("ksm", what + (", %s VMs" % a if a else ""), p, peer_name=name.split(" / ")[1])
    for case in ():
        c = byname[case]
        if c.pairs:
            for p in c.pairs[:2]:
                add(case, p["name"] + " (" + p["figure"] + ")", p, peer_name=p["peer"])
            continue
        fig = None
        for la in c.order:
            g = c.groups[la]
            for f in sorted(g.values):
                if unit_of(f) in ("KiB", "%", "count", "bytes", "x"):
                    fig = (la, f)
                    break
            if fig:
                break
        if fig:
            s = stats_of(c, *fig)
            add(case, "%s: %s" % fig, ours=s["median"], unit=s["unit"], peer_name="-")
        else:
            add(case, c.title, peer_name="-")
    # blk
    for spec, fig in (("seqread", "mbps"), ("randread", "iops"), ("randwrite", "iops")):
        add("blk", "virtio-blk %s (%s)" % (spec, unit_of(fig)), pair("blk", "%s %s / QEMU" % (spec, unit_of(fig))),
            peer_name="QEMU aio=io_uring")
    order = [spec[0] for spec in CASES]
    rows.sort(key=lambda r: order.index(r["case"]))
    return rows


PUBLISHED = [
    ("Firecracker", "boot to the guest's init (1 vCPU, 128 MiB)", "125 ms",
     "bare-metal hosts (its SPECIFICATION.md)", ("boot", None)),
    ("Firecracker", "VMM memory overhead (1 vCPU, 128 MiB)", "5 MiB",
     "bare-metal hosts (its SPECIFICATION.md)", ("run", "vmm_overhead")),
    ("Firecracker", "snapshot restore, 128 MiB guest", "2-6 ms", "x86_64 hosts",
     ("snapshot", "uffd")),
    ("Firecracker", "snapshot restore, 128 MiB guest", "about 2 ms", "AWS Graviton (arm64)",
     ("snapshot", "uffd")),
    ("REAP (ASPLOS'21)", "cold start with working-set prefetch against lazy paging", "3.7x faster",
     "x86_64 servers, Firecracker", (None, None)),
]


# --- report.md ------------------------------------------------------------------------------------

def fmt(v, unit=None):
    if v is None:
        return "n/a"
    if unit == "bytes":
        return "%.2f MiB" % (v / 1048576)
    if isinstance(v, int) or (isinstance(v, float) and v == int(v) and abs(v) >= 100):
        return "%d" % v
    if abs(v) >= 100:
        return "%.0f" % v
    if abs(v) >= 10:
        return "%.1f" % v
    return "%.3g" % v


def fmt_ratio(r):
    return "n/a" if r is None else "%.3g" % r


def disp_unit(u):
    return "MiB" if u == "bytes" else (u or "")


def md_escape(s):
    return str(s).replace("|", "\\|")


SHOW = {
    "snapshot": ["first_ms", "exec_to_running_ms", "restore_ms", "rss_kb", "installed_bytes", "faults",
                 "size", "alloc", "write_ms", "nonzero_bytes", "data_bytes"],
    "run": ["wall_ms", "restore_ms", "teardown_ms", "maxrss_kb", "per_s", "lat_median_ms", "lat_p90_ms",
            "rss_kb", "pss_kb", "uss_kb", "guest_rss_kb", "guest_uss_kb", "guest_shared_kb",
            "vmm_overhead_kb", "ready_ms", "avail_drop_kb", "daemon_rss_kb", "snapshot_write_ms"],
    "blk": ["mbps", "iops"],
    "ksm": ["pss_kb_per_vm_first", "pss_kb_per_vm_last", "uss_kb_per_vm_last", "rss_kb_per_vm_last",
            "saved_kb", "ksm_saved_kb", "converged_s"],
    "boot": ["init_ms", "kernel_ms", "first_ms", "wall_ms", "rss_kb", "maxrss_kb"],
    "dedup": ["pages", "zero_pages", "nonzero_pages", "distinct", "dup_within", "shared_with_other",
              "same_addr_as_base", "file_bytes", "stored_bytes", "zstd1", "zstd3", "zstd9", "zstd19",
              "zstd3_dict", "page_zstd3", "page_zstd3_dict", "shared_contents", "saved_pages",
              "nonzero_mib", "distinct_mib", "page_store_ratio", "chunks", "distinct_chunks",
              "chunk_store_ratio", "dict_bytes", "wall_ms"],
}


def write_report(outdir, data, cases, plots):
    env = data["environment"]
    L = []
    quick = env.get("quick")
    L.append("# Benchmarks: sandbox against its peers")
    L.append("")
    L.append("Generated by `bench/report.py` from `%s` (`make bench`%s), %s. Commit `%s`."
             % (os.path.relpath(outdir, REPO) if outdir.startswith(REPO) else outdir,
                " QUICK=1" if quick else "", env.get("date") or "date unknown", env.get("commit")))
    if quick:
        L.append("")
        L.append("**QUICK=1: a short run that checks the harness end to end. Its figures come from one to "
                 "three rounds each and are not measurements.**")
    elif quick is None:
        L.append("")
        L.append("(No `all-run.txt`: the cases' files were not written by one `bench/all` run, so "
                 "whether they were quick runs is unknown; each case's own .md says.)")
    L.append("")
    L.append("Every figure is the median over the measured runs (warm-up runs excluded); ratios are "
             "ours / the peer's, of the medians and, where the runs were interleaved in numbered "
             "rounds, per round (median, min-max). p90 and p99 are nearest-rank (the smallest run with at "
             "least 90%% or 99%% of the runs at or below it: with fewer than 100 runs, p99 is the "
             "slowest). Everything here was measured in the %s."
             % WHERE_TEST_HOST)
    L.append("")
    L.append("## Headline")
    L.append("")
    L.append("| case | figure | ours | peer | peer's | ours / peer | per round: median (min-max) | where |")
    L.append("|---|---|---:|---|---:|---:|---:|---|")
    for r in data["headline"]:
        if r["status"] != "ok" and r["ours"] is None:
            L.append("| %s | %s | %s | %s | | | | %s |" % (r["case"], md_escape(r["figure"]), r["status"],
                                                         md_escape(r["peer_name"] or ""), r["where"]))
            continue
        u = r["unit"]
        pr = r["per_round"]
        L.append("| %s | %s | %s | %s | %s | %s | %s | %s |" % (
            r["case"], md_escape(r["figure"]), fmt(r["ours"], u) + ("" if u == "bytes" else " " + (u or "")),
            md_escape(r["peer_name"] or ""),
            "" if r["peer"] is None else fmt(r["peer"], u) + ("" if u == "bytes" else " " + (u or "")),
            "" if r["ratio"] is None else "**%s**" % fmt_ratio(r["ratio"]),
            "" if not pr else "%s (%s-%s), %d" % (fmt_ratio(pr["median"]), fmt_ratio(pr["min"]),
                                                  fmt_ratio(pr["max"]), pr["n"]),
            r["where"]))
    L.append("")
    L.append("Ratios below 1 are in our favour for times and sizes, above 1 for MB/s, IOPS and runs per "
             "second.")
    L.append("")
    L.append("## Published figures we aim past")
    L.append("")
    L.append("Published by others, **not measured here**, on real hardware: our figures above come from "
             "an emulated machine and are not comparable to these in absolute terms.")
    L.append("")
    L.append("| source | figure | published | where they measured it |")
    L.append("|---|---|---:|---|")
    for src, what, val, where, _ in PUBLISHED:
        L.append("| %s | %s | %s | %s |" % (src, what, val, where))
    L.append("")
    L.append("## Environment")
    L.append("")
    gk = env.get("guest_kernel") or {}
    L.append("| | |")
    L.append("|---|---|")
    for k, v in (("host kernel", env.get("host_kernel")), ("host CPU", "%s (%s CPUs, %s)" % (
                    env.get("cpu_model"), env.get("cpus"), env.get("host_arch"))),
                 ("test host QEMU (TCG)", env.get("test_host_qemu")),
                 ("test host kernel", env.get("test_host_kernel")),
                 ("test host", "%s vCPUs, %s MiB" % (env.get("test_host_cpus"),
                                                    (env.get("test_host_mem_kb") or 0) // 1024)),
                 ("peer QEMU (in the test host)", env.get("peer_qemu")),
                 ("peer bwrap (in the test host)", env.get("peer_bwrap")),
                 ("guest kernel", "%s, `images/arm64.config`; build-kernel cache key `%s`%s" % (
                     gk.get("source_package"), gk.get("config_key"),
                     "" if gk.get("image_matches_cache") is None else
                     ("; build/arm64/images/Image is that entry's" if gk.get("image_matches_cache")
                      else "; build/arm64/images/Image is NOT that entry's"))),
                 ("commit", env.get("commit")), ("date", env.get("date")),
                 ("QUICK", {True: "yes", False: "no", None: "unknown"}[quick])):
        L.append("| %s | %s |" % (k, md_escape(v if v is not None else "n/a")))
    L.append("")
    pl = {p["name"]: p for p in plots}
    for c in cases:
        cd = data["cases"][c.name]
        L.append("## %s" % c.title)
        L.append("")
        L.append("Case `%s` (`%s`, raw lines `%s`%s): **%s**%s." % (
            c.name, c.wrapper, os.path.basename(c.path),
            ", tables `%s.md`" % c.prefix if os.path.isfile(os.path.join(outdir, c.prefix + ".md")) else "",
            cd["status"], (": " + md_escape(cd["reason"])) if cd["reason"] else ""))
        if cd.get("sandbox"):
            L.append("sandbox measured: %s." % md_escape(cd["sandbox"]))
        if cd["warmups_excluded"]:
            L.append("%d warm-up line(s) excluded." % cd["warmups_excluded"])
        L.append("")
        for name in PLOTS_OF[c.name]:
            p = pl.get(name)
            if p and not p["error"]:
                L.append("![%s](%s)" % (p["title"], p["file"]))
                L.append("")
            elif p:
                L.append("(plot %s: %s)" % (name, p["error"]))
                L.append("")
        if cd["pairs"]:
            L.append("| ours / peer | figure | ours | peer | ratio of medians | per round: median (min-max) | rounds |")
            L.append("|---|---|---:|---:|---:|---:|---:|")
            for p in cd["pairs"]:
                u = p["unit"]
                pr = p["per_round"]
                L.append("| %s | %s | %s | %s | %s | %s | %s |" % (
                    md_escape(p["name"]), p["figure"], fmt(p["ours_median"], u), fmt(p["peer_median"], u),
                    fmt_ratio(p["ratio_of_medians"]),
                    "" if not pr else "%s (%s-%s)" % (fmt_ratio(pr["median"]), fmt_ratio(pr["min"]),
                                                      fmt_ratio(pr["max"])),
                    pr["n"] if pr else 0))
            L.append("")
        show = SHOW.get(c.name)

        def shown(gd):
            return [f for f in (show or sorted(gd["figures"])) if f in gd["figures"]]

        single = all(gd["figures"][f]["n"] == 1 for gd in cd["groups"] for f in shown(gd))
        if cd["groups"] and single:
            # One value per figure (an analysis, not repeated runs): no percentiles to show.
            L.append("| group | figure | value | unit |")
            L.append("|---|---|---:|---|")
            for gd in cd["groups"]:
                for f in shown(gd):
                    s = gd["figures"][f]
                    L.append("| %s | %s | %s | %s |" % (md_escape(gd["label"]), f, fmt(s["median"], s["unit"]),
                                                        disp_unit(s["unit"])))
                if gd["failed"]:
                    L.append("| %s | failed | %d | %s |" % (md_escape(gd["label"]), gd["failed"],
                                                            md_escape(", ".join(gd["errors"]))))
            L.append("")
        elif cd["groups"]:
            L.append("| group | figure | n | median | p90 | p99 | min | unit | runs failed |")
            L.append("|---|---|---:|---:|---:|---:|---:|---|---:|")
            for gd in cd["groups"]:
                figs = shown(gd)
                if not figs and gd["failed"]:
                    L.append("| %s | | 0 | | | | | | %d (%s) |" % (md_escape(gd["label"]), gd["failed"],
                                                                  md_escape(", ".join(gd["errors"]))))
                for f in figs:
                    s = gd["figures"][f]
                    u = s["unit"]
                    L.append("| %s | %s | %d | %s | %s | %s | %s | %s | %s |" % (
                        md_escape(gd["label"]), f, s["n"], fmt(s["median"], u), fmt(s["p90"], u),
                        fmt(s["p99"], u), fmt(s["min"], u), disp_unit(u), gd["failed"] or ""))
            L.append("")
    path = os.path.join(outdir, "report.md")
    with open(path + ".tmp", "w") as f:
        f.write("\n".join(L))
    os.replace(path + ".tmp", path)


PLOTS_OF = {"boot": ["boot"], "snapshot": ["restore", "snapshot-size"], "run": ["run", "rate", "memory"],
            "ksm": ["ksm"], "dedup": ["dedup"], "blk": ["blk"]}


def main(argv):
    if len(argv) > 2 or (len(argv) == 2 and argv[1] in ("-h", "--help")):
        sys.stderr.write(__doc__)
        return 2
    outdir = os.path.abspath(argv[1] if len(argv) == 2 else os.path.join(REPO, "build", "bench"))
    if not os.path.isdir(outdir):
        sys.stderr.write("bench/report.py: %s is not a directory\n" % outdir)
        return 2
    state = read_state(outdir)
    cases = []
    for spec in CASES:
        c = load_case(spec, outdir)
        c.status, c.reason = case_status(c, state)
        case_pairs(c)
        cases.append(c)
    env = environment(outdir, cases, state)
    P = Plotter(outdir)
    make_plots(P, cases)
    data = {"schema": SCHEMA, "generated": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "where": WHERE_TEST_HOST, "environment": env, "cases": {}, "headline": [],
            "published": [{"source": s, "figure": w, "value": v, "where": wh, "measured_here": False}
                          for s, w, v, wh, _ in PUBLISHED],
            "plots": P.made}
    for c in cases:
        groups = []
        for la in c.order:
            g = c.groups[la]
            groups.append({"label": la, "dims": g.dims, "ok": g.ok, "failed": g.failed, "errors": g.errors,
                           "figures": {k: summarize(v, unit_of(k)) for k, v in g.values.items()}})
        data["cases"][c.name] = {
            "status": c.status, "reason": c.reason, "wrapper": c.wrapper, "title": c.title,
            "results_file": os.path.basename(c.path) if c.exists else None,
            "where": WHERE_TEST_HOST, "result_lines": c.lines, "warmups_excluded": c.warmups,
            "failed_runs": sum(g.failed for g in c.groups.values()),
            "sandbox": info_value(c.infos, "sandbox"),
            "groups": groups, "pairs": c.pairs}
    data["headline"] = headline(cases)
    path = os.path.join(outdir, "results.json")
    try:
        with open(path + ".tmp", "w") as f:
            json.dump(data, f, indent=1, allow_nan=False)
            f.write("\n")
        os.replace(path + ".tmp", path)
        write_report(outdir, data, cases, P.made)
    except (OSError, ValueError) as e:
        sys.stderr.write("bench/report.py: %s\n" % e)
        return 1
    bad = [p["name"] + ": " + p["error"] for p in P.made if p["error"]]
    for b in bad:
        sys.stderr.write("bench/report.py: plot %s\n" % b)
    for c in cases:
        sys.stderr.write("bench/report.py: %-8s %s%s\n" % (c.name, c.status, (" (" + c.reason + ")") if c.reason else ""))
    sys.stderr.write("bench/report.py: wrote %s, %s and %d plot(s) in %s\n"
                     % (path, os.path.join(outdir, "report.md"), len(P.made) - len(bad), P.dir))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
