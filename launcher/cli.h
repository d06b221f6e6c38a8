/* SPDX-License-Identifier: Apache-2.0 */
/* Command-line parsing for `sandbox`: pure, so every flag is unit-tested. */
#ifndef SANDBOX_CLI_H
#define SANDBOX_CLI_H

#include <stdbool.h>
#include <stddef.h>

#include "../vmm/util.h"
#include "arch.h" /* ARCH_CONSOLE, from vmm/arch/<arch>/ on the include path */

/* Exit statuses of the sandbox command; docs/cli.md lists them. */
enum {
	/* The guest powered off or rebooted. */
	EXIT_OK = 0,
	/* Bad command line. */
	EXIT_USAGE = 2,
	/* The host side failed (KVM ioctl, memory, threads). */
	EXIT_INTERNAL = 100,
	/* Kernel or initrd missing, unreadable, not bootable, too big. */
	EXIT_BAD_INPUT = 101,
	/* /dev/kvm missing or lacking what the arch needs. */
	EXIT_NO_KVM = 102,
	/* The guest kernel panicked. */
	EXIT_GUEST_PANIC = 103,
	/* The guest ran past --timeout and was stopped. */
	EXIT_TIMEOUT = 104,
	/* The snapshot is corrupt: bad magic, a checksum mismatch, an inconsistent table. */
	EXIT_SNAP_CORRUPT = 105,
	/* The snapshot file is truncated. */
	EXIT_SNAP_TRUNCATED = 106,
	/* The snapshot is for another format version, arch or page size. */
	EXIT_SNAP_INCOMPATIBLE = 107,
	/* snapshot create: the guest powered off or stopped before its ready line. */
	EXIT_NOT_READY = 108,
	/* run: the function file is missing or unreadable. */
	EXIT_FN_MISSING = 109,
	/* run: the function is not an ELF executable. */
	EXIT_FN_NOT_ELF = 110,
	/* run: the function is an ELF for another architecture. */
	EXIT_FN_WRONG_ARCH = 111,
	/* run: the function does not fit in the guest's memory. */
	EXIT_FN_TOO_BIG = 112,
	/* run: the guest agent could not start the function (the message says why). */
	EXIT_FN_NOT_RUN = 113,
	/* run: the guest ended the invocation without the function's status. */
	EXIT_AGENT_FAILED = 114,
	/* run: the pool had no VM free within its --queue-timeout. */
	EXIT_POOL_EXHAUSTED = 115,
};

enum cli_cmd {
	CLI_HELP,
	CLI_VERSION,
	CLI_BOOT,
	CLI_SNAPSHOT_CREATE,
	CLI_SNAPSHOT_INSPECT,
	CLI_SNAPSHOT_ANALYZE,
	CLI_RESTORE,
	CLI_RUN,
	CLI_POOL_START,
	CLI_POOL_STATUS,
	CLI_POOL_STOP,
};

/* How a restored VM gets its memory (--mem-mode). */
enum cli_mem_mode {
	CLI_MEM_UFFD,
	CLI_MEM_EAGER,
	CLI_MEM_FILE,
};

#define CLI_DEFAULT_READY_LINE "sandbox: ready"
#define CLI_DEFAULT_LEVEL 3
#define CLI_MAX_LEVEL 19

#define CLI_DEFAULT_MEM_MIB 128
#define CLI_MIN_MEM_MIB 16
#define CLI_MAX_MEM_MIB (256U * 1024)
#define CLI_MAX_VCPUS 32
#define CLI_MAX_TIMEOUT_S (7U * 24 * 3600)
#define CLI_DEFAULT_CMDLINE "console=" ARCH_CONSOLE

#define CLI_DEFAULT_POOL_SIZE 2
#define CLI_MAX_POOL_SIZE 64
#define CLI_DEFAULT_POOL_MAX_VMS 64
#define CLI_MAX_POOL_VMS 1024
#define CLI_DEFAULT_QUEUE_TIMEOUT_S 30
#define CLI_MAX_MEM_BUDGET_MIB (64U * 1024 * 1024)

#define CLI_MAX_DRIVES 8
#define CLI_PATH_MAX 4096

/* --drive path=FILE[,ro][,root][,direct=on|off] */
struct drive_opts {
	char path[CLI_PATH_MAX];
	bool ro;
	bool root;
	bool direct;
};

struct boot_opts {
	const char *kernel; /* NULL: the default image */
	const char *initrd; /* NULL: the default initramfs unless no_initrd */
	bool no_initrd;
	const char *cmdline; /* NULL: CLI_DEFAULT_CMDLINE */
	unsigned int mem_mib;
	unsigned int vcpus;
	unsigned int timeout_s; /* 0: none */
	struct drive_opts drives[CLI_MAX_DRIVES];
	unsigned int nr_drives;
	int root_drive; /* index into drives, or -1 */
	unsigned int vsock_cid; /* --vsock cid=N,uds=PATH; 0: no vsock */
	char vsock_uds[CLI_PATH_MAX];
};

/* sandbox snapshot create -o FILE [--level N | --raw] [--ready-line STR] [boot options] */
struct snapshot_opts {
	const char *output;
	unsigned int level; /* zstd level, 1..CLI_MAX_LEVEL */
	bool raw; /* uncompressed memory, for --mem-mode file */
	const char *ready_line; /* console line that marks the ready point */
	bool resume; /* --continue: the VM runs on after the snapshot */
	bool agent; /* --agent: ready when the guest agent reports it, over vsock */
};

#define CLI_MAX_ANALYZE_FILES 64
#define CLI_MAX_ANALYZE_LEVELS 8
#define CLI_DEFAULT_ANALYZE_LEVELS "1,3,9,19"

/* sandbox snapshot analyze [--json] [--levels L,L...] [--no-dict] FILE... */
struct analyze_cli_opts {
	const char *files[CLI_MAX_ANALYZE_FILES]; /* the first is the base */
	unsigned int nr_files;
	int levels[CLI_MAX_ANALYZE_LEVELS]; /* zstd levels, 1..CLI_MAX_LEVEL */
	unsigned int nr_levels;
	bool json;
	bool no_dict; /* skip the dictionary trained on the first file */
};

/* sandbox restore FILE [--mem-mode MODE] [--timeout SEC] [--vsock-uds PATH] [--ksm] */
struct restore_opts {
	const char *snapshot;
	enum cli_mem_mode mem_mode;
	unsigned int timeout_s; /* 0: none */
	const char *vsock_uds; /* --vsock-uds PATH */
	bool ksm; /* --ksm: guest memory offered to KSM (MADV_MERGEABLE) */
};

/* sandbox run [--snapshot FILE] [--timeout SEC] [--mem-mode MODE] FN [ARGS...] */
struct run_opts {
	const char *snapshot; /* NULL: the cached base snapshot */
	unsigned int timeout_s; /* 0: none */
	enum cli_mem_mode mem_mode;
	bool mem_mode_set;
	const char *pool; /* --pool PATH: this pool's socket, or fail */
	bool no_pool; /* --no-pool: restore inline */
	const char *fn;
	char *const *
		args; /* argv for the function: args[0] is FN, NULL-terminated */
};

/*
 * sandbox pool start|status|metrics|stop [--socket PATH]; start: [--snapshot
 * FILE] [--size N] [--max-vms M] [--mem-budget MIB] [--queue-timeout SEC]
 * [--daemon] [--pid-file PATH] [--log FILE]
 */
struct pool_opts {
	const char *snapshot; /* NULL: the cached base snapshot */
	unsigned int size; /* VMs kept ready */
	unsigned int max_vms; /* VM processes alive at once */
	unsigned int mem_budget_mib; /* 0: no budget */
	unsigned int queue_timeout_s; /* 0: no limit */
	bool daemon; /* detach once listening */
	const char *pid_file; /* NULL: <socket>.pid with --daemon, else none */
	const char *log; /* NULL: stderr (/dev/null with --daemon) */
	const char *socket; /* NULL: the default path (pool/pool.h) */
	bool json; /* pool status --json */
	bool metrics; /* pool metrics: CLI_POOL_STATUS printing /metrics */
};

struct cli {
	enum cli_cmd cmd;
	struct boot_opts boot; /* boot, snapshot create */
	struct snapshot_opts
		snap; /* snapshot create; .output is inspect's FILE */
	struct restore_opts restore;
	struct analyze_cli_opts analyze;
	struct run_opts run;
	struct pool_opts pool;
};

/*
 * Parses argv (argv[0] is the program) into *@out. Strings in *@out point
 * into argv. Returns 0, or -EINVAL with a one-line reason in @err (@errlen
 * bytes), for unknown commands or flags, missing or malformed values, and
 * numbers out of range (--mem multiple of 2 MiB from CLI_MIN_MEM_MIB,
 * --vcpus 1..CLI_MAX_VCPUS, --timeout up to a week), and malformed drives
 * (no path, unknown option, more than CLI_MAX_DRIVES, two root drives);
 * snapshot create without -o, --level outside 1..19 or with --raw;
 * restore or inspect without exactly one FILE, an unknown --mem-mode;
 * snapshot analyze without a FILE or with more than CLI_MAX_ANALYZE_FILES,
 * or --levels not a list of 1..CLI_MAX_ANALYZE_LEVELS levels 1..19 split
 * by commas;
 * run with both --pool and --no-pool; pool without start, status, metrics
 * or stop, --size outside 1..CLI_MAX_POOL_SIZE, --max-vms outside
 * 1..CLI_MAX_POOL_VMS or below --size, --mem-budget 0 or over
 * CLI_MAX_MEM_BUDGET_MIB, --queue-timeout over a week, start's flags given
 * to the other sub-commands.
 */
int cli__parse(int argc, char *const argv[], struct cli *out, char *err,
	       size_t errlen) __must_check;

/*
 * Writes the kernel command line for @b into @buf (@size bytes): the user's
 * (or CLI_DEFAULT_CMDLINE), plus "root=/dev/vdX rw|ro" for a root drive, as
 * Firecracker does for its root device, placed before any "--" word (the
 * words after it are init's arguments). Returns 0 or -E2BIG.
 */
int cli__kernel_cmdline(const struct boot_opts *b, char *buf,
			size_t size) __must_check;

/* The usage text printed by `sandbox help`. */
extern const char cli__usage[];

#endif
