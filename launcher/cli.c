// SPDX-License-Identifier: Apache-2.0
// Parses `sandbox <command> [flags]` strictly: every value checked, nothing guessed.
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

const char cli__usage[] =
	"usage: sandbox <command> [options]\n"
	"\n"
	"commands:\n"
	"  boot      boot a Linux guest on the serial console until it powers off\n"
	"  snapshot create -o FILE [options] [boot options]\n"
	"            boot a guest, wait for its ready line, save it to FILE\n"
	"  snapshot inspect FILE\n"
	"            print a snapshot's header, sections and memory; verify it\n"
	"  snapshot analyze [--json] [--levels L,L...] [--no-dict] FILE...\n"
	"            page-level memory analysis: zero, duplicate and shared pages,\n"
	"            zstd sizes per level (default " CLI_DEFAULT_ANALYZE_LEVELS
	") and\n"
	"            with a dictionary trained on the first FILE\n"
	"  restore FILE [options]\n"
	"            run a new VM from a snapshot until it powers off\n"
	"  run [options] FN [ARGS...]\n"
	"            run the static executable FN in a fresh VM restored from a\n"
	"            snapshot; its stdin, stdout, stderr and exit status are ours\n"
	"  pool start|status|metrics|stop [options]\n"
	"            a daemon that keeps VMs restored and ready for run\n"
	"  help      show this text\n"
	"  version   show the version\n"
	"\n"
	"boot options:\n"
	"  --kernel IMAGE   guest kernel (default: the built image)\n"
	"  --initrd FILE    initramfs (default: the built initramfs)\n"
	"  --no-initrd      boot without an initramfs\n"
	"  --cmdline STR    kernel command line (default: \"" CLI_DEFAULT_CMDLINE
	"\")\n"
	"  --mem MIB        guest memory in MiB, even (default: 128)\n"
	"  --vcpus N        number of vCPUs (default: 1)\n"
	"  --timeout SEC    stop the guest after SEC seconds (default: none)\n"
	"  --drive path=FILE[,ro][,root][,direct=on]\n"
	"                   a virtio-blk disk backed by FILE (repeatable, up to 8;\n"
	"                   /dev/vda, /dev/vdb, ... in order); root boots from it\n"
	"                   (root=/dev/vdX, and no default initramfs)\n"
	"  --vsock cid=N,uds=PATH\n"
	"                   a virtio-vsock device: guest CID N (3 or more); host\n"
	"                   processes reach it through the Unix socket PATH\n"
	"\n"
	"snapshot create options:\n"
	"  -o, --output FILE  where to write the snapshot (atomically)\n"
	"  --level N          zstd level for guest memory, 1 to 19 (default: 3)\n"
	"  --raw              store memory uncompressed (needed by --mem-mode file)\n"
	"  --ready-line STR   the console line that marks the ready point\n"
	"                     (default: \"" CLI_DEFAULT_READY_LINE "\")\n"
	"  --continue         resume the guest after the snapshot, until it ends\n"
	"  --agent            the ready point is the guest agent's report over\n"
	"                     vsock (adds sandbox.agent and a vsock device): a\n"
	"                     base snapshot for sandbox run\n"
	"\n"
	"restore options:\n"
	"  --mem-mode MODE    uffd: memory paged in on demand (default);\n"
	"                     eager: all memory read before the guest runs;\n"
	"                     file: a --raw snapshot's memory mapped privately\n"
	"  --timeout SEC      stop the guest after SEC seconds (default: none)\n"
	"  --vsock-uds PATH   the host socket for a snapshot with a vsock device\n"
	"  --ksm              offer guest memory to the kernel's same-page merging\n"
	"                     (madvise MADV_MERGEABLE; merged once\n"
	"                     /sys/kernel/mm/ksm/run is 1)\n"
	"\n"
	"run options:\n"
	"  --snapshot FILE    the snapshot to restore (default: the base snapshot,\n"
	"                     made from the default images on first use and cached)\n"
	"  --mem-mode MODE    as for restore (default: file for a raw snapshot,\n"
	"                     else uffd)\n"
	"  --timeout SEC      kill the VM after SEC seconds (default: none)\n"
	"  --pool PATH        run in a VM of the pool listening on PATH\n"
	"  --no-pool          restore inline even when a pool is listening\n"
	"\n"
	"pool commands (docs/pool.md):\n"
	"  pool start [--snapshot FILE] [--size N] [--socket PATH] [options]\n"
	"            keep N VMs (default: 2) restored and paused for sandbox run,\n"
	"            in the foreground; SIGTERM drains and exits, SIGHUP reloads\n"
	"            the snapshot\n"
	"    --max-vms M        VM processes alive at once, >= N (default: 64)\n"
	"    --mem-budget MIB   VMs alive x guest memory stay within MIB\n"
	"                       (default: no budget)\n"
	"    --queue-timeout SEC  a run waits at most SEC for a VM, then fails\n"
	"                       with status 115 (default: 30; 0: no limit)\n"
	"    --daemon           detach once listening\n"
	"    --pid-file PATH    write the daemon's pid (default with --daemon:\n"
	"                       <socket>.pid)\n"
	"    --log FILE         append the daemon's messages to FILE\n"
	"  pool status [--socket PATH] [--json]\n"
	"            print the pool's snapshot, VM and queue counts, failures and\n"
	"            latencies (one JSON object with --json)\n"
	"  pool metrics [--socket PATH]\n"
	"            print the pool's Prometheus metrics (GET /metrics)\n"
	"  pool stop [--socket PATH]\n"
	"            ask the pool to drain and exit\n";

static int fail(char *err, size_t errlen, const char *fmt, ...) __printf(3, 4);

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

/* Decimal digits only: no sign, no spaces, no hex, no trailing junk. */
static int parse_uint(const char *s, unsigned int min, unsigned int max,
		      unsigned int *out)
{
	unsigned long long v = 0;
	const char *p;

	if (!*s)
		return -EINVAL;
	for (p = s; *p; p++) {
		if (*p < '0' || *p > '9')
			return -EINVAL;
		v = v * 10 + (unsigned long long)(*p - '0');
		if (v > max)
			return -ERANGE;
	}
	if (v < min)
		return -ERANGE;
	*out = (unsigned int)v;
	return 0;
}

/*
 * Splits "--flag=value" or "--flag value". Returns the value or NULL when it
 * is missing; *@i advances past a separate value.
 */
static const char *take_value(int argc, char *const argv[], int *i,
			      const char *flag)
{
	const char *arg = argv[*i];
	size_t n = strlen(flag);

	if (arg[n] == '=')
		return arg + n + 1;
	if (*i + 1 >= argc)
		return NULL;
	return argv[++*i];
}

static bool is_flag(const char *arg, const char *flag)
{
	size_t n = strlen(flag);

	return !strncmp(arg, flag, n) && (arg[n] == '\0' || arg[n] == '=');
}

static int number_flag(const char *flag, const char *v, unsigned int min,
		       unsigned int max, unsigned int *out, char *err,
		       size_t errlen)
{
	int r = parse_uint(v, min, max, out);

	if (r == -ERANGE)
		return fail(err, errlen, "%s %s: out of range (%u to %u)", flag,
			    v, min, max);
	if (r)
		return fail(err, errlen, "%s %s: not a whole number", flag, v);
	return 0;
}

/* One comma-separated item of --drive: "path=FILE", "ro", "root", "direct=on|off". */
static int drive_item(const char *item, size_t n, struct drive_opts *d,
		      char *err, size_t errlen)
{
	if (n > 5 && !strncmp(item, "path=", 5)) {
		if (n - 5 >= sizeof(d->path))
			return fail(err, errlen, "--drive: path too long");
		memcpy(d->path, item + 5, n - 5);
		d->path[n - 5] = '\0';
	} else if (n == 2 && !strncmp(item, "ro", 2)) {
		d->ro = true;
	} else if (n == 4 && !strncmp(item, "root", 4)) {
		d->root = true;
	} else if (n == 9 && !strncmp(item, "direct=on", 9)) {
		d->direct = true;
	} else if (n == 10 && !strncmp(item, "direct=off", 10)) {
		d->direct = false;
	} else {
		return fail(err, errlen, "--drive: unknown option '%.*s'",
			    (int)n, item);
	}
	return 0;
}

static int parse_drive(const char *v, struct boot_opts *b, char *err,
		       size_t errlen)
{
	struct drive_opts *d;
	const char *p = v;

	if (b->nr_drives == CLI_MAX_DRIVES)
		return fail(err, errlen, "at most %d drives", CLI_MAX_DRIVES);
	d = &b->drives[b->nr_drives];
	memset(d, 0, sizeof(*d));
	for (;;) {
		const char *comma = strchr(p, ',');
		size_t n = comma ? (size_t)(comma - p) : strlen(p);
		int r = drive_item(p, n, d, err, errlen);

		if (r)
			return r;
		if (!comma)
			break;
		p = comma + 1;
	}
	if (!d->path[0])
		return fail(err, errlen, "--drive %s: no path=FILE", v);
	if (d->root) {
		if (b->root_drive >= 0)
			return fail(err, errlen, "only one drive can be root");
		b->root_drive = (int)b->nr_drives;
	}
	b->nr_drives++;
	return 0;
}

/*
 * snapshot create's own flags. Returns 1 if @argv[*i] was one (consumed),
 * 0 if not, or -EINVAL.
 */
static int snapshot_flag(int argc, char *const argv[], int *i,
			 struct snapshot_opts *o, char *err, size_t errlen)
{
	const char *arg = argv[*i], *v;

	if (!strcmp(arg, "--raw")) {
		o->raw = true;
		return 1;
	}
	if (!strcmp(arg, "--continue")) {
		o->resume = true;
		return 1;
	}
	if (!strcmp(arg, "--agent")) {
		o->agent = true;
		return 1;
	}
	if (!strcmp(arg, "-o") || is_flag(arg, "--output")) {
		v = arg[1] == 'o' ? (*i + 1 < argc ? argv[++*i] : NULL)
				  : take_value(argc, argv, i, "--output");
		if (!v || !*v)
			return fail(err, errlen, "%s needs a file name", arg);
		o->output = v;
		return 1;
	}
	if (is_flag(arg, "--level")) {
		v = take_value(argc, argv, i, "--level");
		if (!v)
			return fail(err, errlen, "--level needs a value");
		return number_flag("--level", v, 1, CLI_MAX_LEVEL, &o->level,
				   err, errlen)
			       ?: 1;
	}
	if (is_flag(arg, "--ready-line")) {
		v = take_value(argc, argv, i, "--ready-line");
		if (!v || !*v || strchr(v, '\n'))
			return fail(err, errlen,
				    "--ready-line needs one non-empty line");
		o->ready_line = v;
		return 1;
	}
	return 0;
}

/* --vsock cid=N,uds=PATH, in either order. */
static int parse_vsock(const char *v, struct boot_opts *b, char *err,
		       size_t errlen)
{
	const char *p = v;

	if (b->vsock_cid)
		return fail(err, errlen, "only one --vsock");
	for (;;) {
		const char *comma = strchr(p, ',');
		size_t n = comma ? (size_t)(comma - p) : strlen(p);
		char num[16];

		if (n > 4 && !strncmp(p, "cid=", 4) && n - 4 < sizeof(num)) {
			memcpy(num, p + 4, n - 4);
			num[n - 4] = '\0';
			if (number_flag("--vsock cid", num, 3, UINT32_MAX - 1,
					&b->vsock_cid, err, errlen))
				return -EINVAL;
		} else if (n > 4 && !strncmp(p, "uds=", 4)) {
			if (n - 4 >= sizeof(b->vsock_uds))
				return fail(err, errlen,
					    "--vsock: path too long");
			memcpy(b->vsock_uds, p + 4, n - 4);
			b->vsock_uds[n - 4] = '\0';
		} else {
			return fail(err, errlen,
				    "--vsock: unknown option '%.*s'", (int)n,
				    p);
		}
		if (!comma)
			break;
		p = comma + 1;
	}
	if (!b->vsock_cid || !b->vsock_uds[0])
		return fail(err, errlen, "--vsock %s: needs cid=N and uds=PATH",
			    v);
	return 0;
}

static int parse_boot(int argc, char *const argv[], int i, struct boot_opts *b,
		      struct snapshot_opts *snap, char *err, size_t errlen)
{
	static const char *const valued[] = {
		"--kernel", "--initrd",	 "--cmdline", "--mem",
		"--vcpus",  "--timeout", "--drive",   "--vsock",
	};
	int r;

	for (; i < argc; i++) {
		const char *arg = argv[i];
		const char *flag = NULL, *v;
		size_t k;

		if (!strcmp(arg, "--no-initrd")) {
			b->no_initrd = true;
			continue;
		}
		if (snap) {
			r = snapshot_flag(argc, argv, &i, snap, err, errlen);
			if (r < 0)
				return r;
			if (r)
				continue;
		}
		for (k = 0; k < ARRAY_SIZE(valued); k++)
			if (is_flag(arg, valued[k]))
				flag = valued[k];
		if (!flag)
			return fail(err, errlen, "%s: unknown option '%s'",
				    snap ? "snapshot create" : "boot", arg);
		v = take_value(argc, argv, &i, flag);
		if (!v)
			return fail(err, errlen, "%s needs a value", flag);
		if (!strcmp(flag, "--kernel") || !strcmp(flag, "--initrd")) {
			if (!*v)
				return fail(err, errlen, "%s: empty path",
					    flag);
			if (!strcmp(flag, "--kernel"))
				b->kernel = v;
			else
				b->initrd = v;
		} else if (!strcmp(flag, "--cmdline")) {
			b->cmdline = v;
		} else if (!strcmp(flag, "--drive")) {
			r = parse_drive(v, b, err, errlen);
			if (r)
				return r;
		} else if (!strcmp(flag, "--vsock")) {
			r = parse_vsock(v, b, err, errlen);
			if (r)
				return r;
		} else if (!strcmp(flag, "--mem")) {
			r = number_flag(flag, v, CLI_MIN_MEM_MIB,
					CLI_MAX_MEM_MIB, &b->mem_mib, err,
					errlen);
			if (r)
				return r;
			if (b->mem_mib % 2)
				return fail(
					err, errlen,
					"--mem %s: must be a multiple of 2 MiB",
					v);
		} else if (!strcmp(flag, "--vcpus")) {
			r = number_flag(flag, v, 1, CLI_MAX_VCPUS, &b->vcpus,
					err, errlen);
			if (r)
				return r;
		} else {
			r = number_flag(flag, v, 0, CLI_MAX_TIMEOUT_S,
					&b->timeout_s, err, errlen);
			if (r)
				return r;
		}
	}
	if (b->no_initrd && b->initrd)
		return fail(err, errlen,
			    "--initrd and --no-initrd exclude each other");
	if (snap && !snap->output)
		return fail(err, errlen,
			    "snapshot create needs -o FILE for the snapshot");
	if (snap && snap->raw && snap->level)
		return fail(err, errlen,
			    "--level and --raw exclude each other");
	return 0;
}

static int mem_mode(const char *v, enum cli_mem_mode *out, char *err,
		    size_t errlen)
{
	if (!strcmp(v, "uffd"))
		*out = CLI_MEM_UFFD;
	else if (!strcmp(v, "eager"))
		*out = CLI_MEM_EAGER;
	else if (!strcmp(v, "file"))
		*out = CLI_MEM_FILE;
	else
		return fail(err, errlen,
			    "--mem-mode %s: not uffd, eager or file", v);
	return 0;
}

#define RESTORE_FLAG_MEM_MODE 1
#define RESTORE_FLAG_TIMEOUT 2

/*
 * --mem-mode and --timeout, which restore and run share. Returns which one
 * @argv[*i] was (consumed), 0 if neither, or -EINVAL.
 */
static int restore_flag(int argc, char *const argv[], int *i,
			enum cli_mem_mode *mode, unsigned int *timeout_s,
			char *err, size_t errlen)
{
	const char *arg = argv[*i], *v;

	if (is_flag(arg, "--mem-mode")) {
		v = take_value(argc, argv, i, "--mem-mode");
		if (!v)
			return fail(err, errlen, "--mem-mode needs a value");
		if (mem_mode(v, mode, err, errlen))
			return -EINVAL;
		return RESTORE_FLAG_MEM_MODE;
	}
	if (is_flag(arg, "--timeout")) {
		v = take_value(argc, argv, i, "--timeout");
		if (!v)
			return fail(err, errlen, "--timeout needs a value");
		if (number_flag("--timeout", v, 0, CLI_MAX_TIMEOUT_S, timeout_s,
				err, errlen))
			return -EINVAL;
		return RESTORE_FLAG_TIMEOUT;
	}
	return 0;
}

/* Options stop at the function: what follows it is the function's own argv. */
static int parse_run(int argc, char *const argv[], int i, struct run_opts *o,
		     char *err, size_t errlen)
{
	const char *v;
	int r;

	for (; i < argc; i++) {
		const char *arg = argv[i];

		if (!strcmp(arg, "--")) {
			i++;
			break;
		}
		if (arg[0] != '-' || !arg[1])
			break;
		if (is_flag(arg, "--snapshot")) {
			v = take_value(argc, argv, &i, "--snapshot");
			if (!v || !*v)
				return fail(err, errlen,
					    "--snapshot needs a file");
			o->snapshot = v;
		} else if ((r = restore_flag(argc, argv, &i, &o->mem_mode,
					     &o->timeout_s, err, errlen))) {
			if (r < 0)
				return r;
			o->mem_mode_set |= r == RESTORE_FLAG_MEM_MODE;
		} else if (is_flag(arg, "--pool")) {
			v = take_value(argc, argv, &i, "--pool");
			if (!v || !*v)
				return fail(err, errlen,
					    "--pool needs a socket path");
			o->pool = v;
		} else if (!strcmp(arg, "--no-pool")) {
			o->no_pool = true;
		} else {
			return fail(err, errlen, "run: unknown option '%s'",
				    arg);
		}
	}
	if (o->pool && o->no_pool)
		return fail(err, errlen,
			    "--pool and --no-pool exclude each other");
	if (i >= argc || !*argv[i])
		return fail(err, errlen, "run needs a function to run");
	o->fn = argv[i];
	o->args = &argv[i];
	return 0;
}

static int parse_restore(int argc, char *const argv[], int i,
			 struct restore_opts *o, char *err, size_t errlen)
{
	const char *v;
	int r;

	for (; i < argc; i++) {
		const char *arg = argv[i];

		r = restore_flag(argc, argv, &i, &o->mem_mode, &o->timeout_s,
				 err, errlen);
		if (r < 0)
			return r;
		if (r)
			continue;
		if (is_flag(arg, "--vsock-uds")) {
			v = take_value(argc, argv, &i, "--vsock-uds");
			if (!v || !*v)
				return fail(err, errlen,
					    "--vsock-uds needs a path");
			o->vsock_uds = v;
		} else if (!strcmp(arg, "--ksm")) {
			o->ksm = true;
		} else if (arg[0] == '-' && arg[1]) {
			return fail(err, errlen, "restore: unknown option '%s'",
				    arg);
		} else if (o->snapshot) {
			return fail(err, errlen,
				    "restore takes one snapshot file");
		} else {
			o->snapshot = arg;
		}
	}
	if (!o->snapshot || !*o->snapshot)
		return fail(err, errlen, "restore needs a snapshot file");
	return 0;
}

/* "1,3,9,19": each a zstd level, at most CLI_MAX_ANALYZE_LEVELS of them. */
static int parse_levels(const char *v, struct analyze_cli_opts *o, char *err,
			size_t errlen)
{
	const char *p = v;

	o->nr_levels = 0;
	for (;;) {
		const char *comma = strchr(p, ',');
		size_t n = comma ? (size_t)(comma - p) : strlen(p);
		char num[16];
		unsigned int l;

		if (o->nr_levels == CLI_MAX_ANALYZE_LEVELS)
			return fail(err, errlen, "--levels: at most %d levels",
				    CLI_MAX_ANALYZE_LEVELS);
		if (n >= sizeof(num))
			return fail(err, errlen, "--levels %s: not a level", v);
		memcpy(num, p, n);
		num[n] = '\0';
		if (number_flag("--levels", num, 1, CLI_MAX_LEVEL, &l, err,
				errlen))
			return -EINVAL;
		o->levels[o->nr_levels++] = (int)l;
		if (!comma)
			return 0;
		p = comma + 1;
	}
}

static int parse_analyze(int argc, char *const argv[],
			 struct analyze_cli_opts *o, char *err, size_t errlen)
{
	const char *levels = CLI_DEFAULT_ANALYZE_LEVELS, *v;
	bool files_only = false;
	int i;

	for (i = 3; i < argc; i++) {
		const char *arg = argv[i];

		if (files_only || arg[0] != '-') {
			if (!arg[0])
				return fail(
					err, errlen,
					"snapshot analyze: empty file name");
			if (o->nr_files == CLI_MAX_ANALYZE_FILES)
				return fail(
					err, errlen,
					"snapshot analyze: at most %d files",
					CLI_MAX_ANALYZE_FILES);
			o->files[o->nr_files++] = arg;
		} else if (!strcmp(arg, "--")) {
			files_only = true;
		} else if (!strcmp(arg, "--json")) {
			o->json = true;
		} else if (!strcmp(arg, "--no-dict")) {
			o->no_dict = true;
		} else if (is_flag(arg, "--levels")) {
			v = take_value(argc, argv, &i, "--levels");
			if (!v)
				return fail(err, errlen,
					    "--levels needs a value");
			levels = v;
		} else {
			return fail(err, errlen,
				    "snapshot analyze: unknown option '%s'",
				    arg);
		}
	}
	if (!o->nr_files)
		return fail(
			err, errlen,
			"snapshot analyze needs one or more snapshot files");
	return parse_levels(levels, o, err, errlen);
}

static int parse_snapshot(int argc, char *const argv[], struct cli *out,
			  char *err, size_t errlen)
{
	int r;

	if (argc < 3)
		return fail(
			err, errlen,
			"snapshot needs a sub-command: create, inspect or analyze");
	if (!strcmp(argv[2], "create")) {
		out->cmd = CLI_SNAPSHOT_CREATE;
		r = parse_boot(argc, argv, 3, &out->boot, &out->snap, err,
			       errlen);
		if (!r && !out->snap.level)
			out->snap.level = out->snap.raw ? 0 : CLI_DEFAULT_LEVEL;
		if (!r && !out->snap.ready_line)
			out->snap.ready_line = CLI_DEFAULT_READY_LINE;
		return r;
	}
	if (!strcmp(argv[2], "inspect")) {
		out->cmd = CLI_SNAPSHOT_INSPECT;
		if (argc != 4 || !argv[3][0] || argv[3][0] == '-')
			return fail(err, errlen,
				    "snapshot inspect takes one snapshot file");
		out->snap.output = argv[3];
		return 0;
	}
	if (!strcmp(argv[2], "analyze")) {
		out->cmd = CLI_SNAPSHOT_ANALYZE;
		return parse_analyze(argc, argv, &out->analyze, err, errlen);
	}
	return fail(err, errlen, "unknown snapshot sub-command '%s'", argv[2]);
}

static int parse_pool(int argc, char *const argv[], struct cli *out, char *err,
		      size_t errlen)
{
	struct pool_opts *o = &out->pool;
	const char *v;
	int i;

	if (argc < 3)
		return fail(
			err, errlen,
			"pool needs a sub-command: start, status, metrics or stop");
	if (!strcmp(argv[2], "start")) {
		out->cmd = CLI_POOL_START;
	} else if (!strcmp(argv[2], "status")) {
		out->cmd = CLI_POOL_STATUS;
	} else if (!strcmp(argv[2], "metrics")) {
		/* status's exchange, another answer: main.c need not know. */
		out->cmd = CLI_POOL_STATUS;
		o->metrics = true;
	} else if (!strcmp(argv[2], "stop")) {
		out->cmd = CLI_POOL_STOP;
	} else {
		return fail(err, errlen, "unknown pool sub-command '%s'",
			    argv[2]);
	}
	o->size = CLI_DEFAULT_POOL_SIZE;
	o->max_vms = CLI_DEFAULT_POOL_MAX_VMS;
	o->queue_timeout_s = CLI_DEFAULT_QUEUE_TIMEOUT_S;
	for (i = 3; i < argc; i++) {
		const char *arg = argv[i];
		bool start = out->cmd == CLI_POOL_START;

		if (out->cmd == CLI_POOL_STATUS && !o->metrics &&
		    !strcmp(arg, "--json")) {
			o->json = true;
		} else if (is_flag(arg, "--socket")) {
			v = take_value(argc, argv, &i, "--socket");
			if (!v || !*v)
				return fail(err, errlen,
					    "--socket needs a path");
			o->socket = v;
		} else if (out->cmd == CLI_POOL_START &&
			   is_flag(arg, "--snapshot")) {
			v = take_value(argc, argv, &i, "--snapshot");
			if (!v || !*v)
				return fail(err, errlen,
					    "--snapshot needs a file");
			o->snapshot = v;
		} else if (out->cmd == CLI_POOL_START &&
			   is_flag(arg, "--size")) {
			v = take_value(argc, argv, &i, "--size");
			if (!v)
				return fail(err, errlen,
					    "--size needs a value");
			if (number_flag("--size", v, 1, CLI_MAX_POOL_SIZE,
					&o->size, err, errlen))
				return -EINVAL;
		} else if (start && is_flag(arg, "--max-vms")) {
			v = take_value(argc, argv, &i, "--max-vms");
			if (!v)
				return fail(err, errlen,
					    "--max-vms needs a value");
			if (number_flag("--max-vms", v, 1, CLI_MAX_POOL_VMS,
					&o->max_vms, err, errlen))
				return -EINVAL;
		} else if (start && is_flag(arg, "--mem-budget")) {
			v = take_value(argc, argv, &i, "--mem-budget");
			if (!v)
				return fail(err, errlen,
					    "--mem-budget needs a value");
			if (number_flag("--mem-budget", v, 1,
					CLI_MAX_MEM_BUDGET_MIB,
					&o->mem_budget_mib, err, errlen))
				return -EINVAL;
		} else if (start && is_flag(arg, "--queue-timeout")) {
			v = take_value(argc, argv, &i, "--queue-timeout");
			if (!v)
				return fail(err, errlen,
					    "--queue-timeout needs a value");
			if (number_flag("--queue-timeout", v, 0,
					CLI_MAX_TIMEOUT_S, &o->queue_timeout_s,
					err, errlen))
				return -EINVAL;
		} else if (start && !strcmp(arg, "--daemon")) {
			o->daemon = true;
		} else if (start && (is_flag(arg, "--pid-file") ||
				     is_flag(arg, "--log"))) {
			bool pid = is_flag(arg, "--pid-file");
			const char *flag = pid ? "--pid-file" : "--log";

			v = take_value(argc, argv, &i, flag);
			if (!v || !*v)
				return fail(err, errlen, "%s needs a path",
					    flag);
			if (pid)
				o->pid_file = v;
			else
				o->log = v;
		} else {
			return fail(err, errlen, "pool %s: unknown option '%s'",
				    argv[2], arg);
		}
	}
	/* Every ready VM is a VM alive: a pool that cannot hold --size of them is a mistake. */
	if (o->max_vms < o->size)
		return fail(err, errlen, "--max-vms %u is below --size %u",
			    o->max_vms, o->size);
	return 0;
}

int cli__parse(int argc, char *const argv[], struct cli *out, char *err,
	       size_t errlen)
{
	const char *cmd;

	memset(out, 0, sizeof(*out));
	out->boot.mem_mib = CLI_DEFAULT_MEM_MIB;
	out->boot.vcpus = 1;
	out->boot.root_drive = -1;
	if (errlen)
		err[0] = '\0';
	if (argc < 2)
		return fail(err, errlen, "no command given");
	cmd = argv[1];
	if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") ||
	    !strcmp(cmd, "-h")) {
		out->cmd = CLI_HELP;
		return argc == 2 ? 0
				 : fail(err, errlen, "help takes no arguments");
	}
	if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
		out->cmd = CLI_VERSION;
		return argc == 2 ? 0
				 : fail(err, errlen,
					"version takes no arguments");
	}
	if (!strcmp(cmd, "boot")) {
		out->cmd = CLI_BOOT;
		return parse_boot(argc, argv, 2, &out->boot, NULL, err, errlen);
	}
	if (!strcmp(cmd, "snapshot"))
		return parse_snapshot(argc, argv, out, err, errlen);
	if (!strcmp(cmd, "restore")) {
		out->cmd = CLI_RESTORE;
		return parse_restore(argc, argv, 2, &out->restore, err, errlen);
	}
	if (!strcmp(cmd, "run")) {
		out->cmd = CLI_RUN;
		return parse_run(argc, argv, 2, &out->run, err, errlen);
	}
	if (!strcmp(cmd, "pool"))
		return parse_pool(argc, argv, out, err, errlen);
	return fail(err, errlen, "unknown command '%s'", cmd);
}

/* Where the kernel's own parameters end: at a "--" word, which starts init's arguments. */
static size_t kernel_params_end(const char *cmdline)
{
	const char *p = cmdline;

	while ((p = strstr(p, "--")) != NULL) {
		bool starts = p == cmdline || p[-1] == ' ';
		bool ends = p[2] == '\0' || p[2] == ' ';

		if (starts && ends)
			return (size_t)(p - cmdline);
		p += 2;
	}
	return strlen(cmdline);
}

int cli__kernel_cmdline(const struct boot_opts *b, char *buf, size_t size)
{
	const char *base = b->cmdline ? b->cmdline : CLI_DEFAULT_CMDLINE;
	size_t end = kernel_params_end(base);
	int n;

	if (b->root_drive < 0)
		n = snprintf(buf, size, "%s", base);
	else
		n = snprintf(buf, size, "%.*s%sroot=/dev/vd%c %s%s%s", (int)end,
			     base, end && base[end - 1] != ' ' ? " " : "",
			     'a' + b->root_drive,
			     b->drives[b->root_drive].ro ? "ro" : "rw",
			     base[end] ? " " : "", base + end);
	return n < 0 || (size_t)n >= size ? -E2BIG : 0;
}
