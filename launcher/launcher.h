/* SPDX-License-Identifier: Apache-2.0 */
/* The sub-commands of `sandbox` and what they share; only launcher/ decides exit statuses. */
#ifndef SANDBOX_LAUNCHER_H
#define SANDBOX_LAUNCHER_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "../snapshot/snap.h"
#include "../vmm/vm.h"
#include "cli.h"

#define DEFAULT_INITRD_NAME "initramfs.cpio"

/*
 * Default guest images: $SANDBOX_IMAGES, else images/ beside the sandbox
 * binary (the build tree's layout: build/<arch>/sandbox, build/<arch>/images/).
 * 0 or -errno.
 */
int launcher__images_dir(char *buf, size_t size) __must_check;

/* Exit statuses (cli.h) for an -errno from building a VM, a VM's end, a snapshot error. */
int launcher__exit_for_error(int err) __must_check;
int launcher__exit_for_vm(enum vm_exit why) __must_check;
int launcher__exit_for_snap(int err) __must_check;

/* STDIN_FILENO when stdin is open, else -1. */
int launcher__console_input(void) __must_check;

/* What boot and snapshot create build a VM from; strings live in here. */
struct boot_config {
	struct vm_config cfg;
	char kernel[PATH_MAX + 32];
	char initrd[PATH_MAX + 32];
	char cmdline[4096];
};

/* Fills @bc from the boot options (default images resolved). An exit status. */
int launcher__boot_config(const struct boot_opts *b,
			  struct boot_config *bc) __must_check;

/*
 * Where a sandbox run's guest console goes: it is not the function's
 * output. /dev/null, or a copy of stderr with SANDBOX_DEBUG set. An fd
 * (O_CLOEXEC) or -errno after logging.
 */
int launcher__console_sink(void) __must_check;

/*
 * A private directory for a VM's sockets, under $TMPDIR or /tmp, into @buf.
 * 0 or -errno (logged).
 */
int launcher__tmpdir(char *buf, size_t size) __must_check;
/* Removes @dir and the files left in it (not recursive beyond one level). */
void launcher__rmdir(const char *dir);

/* SANDBOX_TIMING=1: machine-readable timings on stderr, for bench/. */
struct timing {
	bool on;
	struct timespec start;
};

void timing__init(struct timing *t);
/* Milliseconds since timing__init(). */
double timing__ms(const struct timing *t);
/* "sandbox-timing: KEY=VALUE" lines, when on. */
void timing__note_ms(const struct timing *t, const char *key);
void timing__note_u64(const struct timing *t, const char *key, uint64_t v);

/* How snapshot create and sandbox run's base snapshot are made. */
struct create_params {
	struct vm_config *cfg; /* with vsock_cid and vsock_uds set for an agent */
	const char *output;
	struct snap_write_opts wo;
	const char *ready_line; /* the console line; NULL: the agent's READY */
	unsigned int timeout_s; /* until ready (and again after --continue) */
	bool resume; /* --continue */
	int console_fd; /* where the guest console is copied, or -1 */
	const struct timing *timing;
	struct snap_mem_stats *stats; /* filled on success when non-NULL */
};

/*
 * Boots @p->cfg, waits for the ready point, pauses, writes the snapshot and
 * frees the VM (or runs it on with @p->resume). Returns an exit status.
 */
int launcher__create(const struct create_params *p) __must_check;

/* A function may take at most this share of guest memory (it lives in a memfd there). */
#define RUN_FN_MEM_SHARE 2

/*
 * The snapshot sandbox run restores: @snapshot when not NULL, else the cached
 * base snapshot, made (again, with @remake) when needed. Its path goes into
 * @path. An exit status (logged).
 */
int launcher__find_snapshot(const char *snapshot, bool remake, char *path,
			    size_t size) __must_check;

/* One invocation in a restored VM whose vCPUs have not run yet. */
struct run_vm {
	struct vm *vm;
	const char *uds; /* the vsock device's host socket */
	const char *dir; /* its directory: removed once the agent is connected */
	const char *const *argv; /* argv[0] names the function in messages */
	const void *fn;
	size_t fn_size;
	int in_fd; /* -1: empty stdin */
	int out_fd;
	int err_fd;
	unsigned int timeout_s; /* 0: none; counted from @timing's start */
	const struct timing *timing;
	/*
	 * NULL: the invocation above is given. Else the fields above it are
	 * filled in by @await, called on another thread once the VM runs and
	 * its agent is connected and prepared (invoke__prepare()); @cancel_fd
	 * becomes readable if the VM ends meanwhile. It returns 0 when the run
	 * is there (--timeout then counts from this moment), an exit status >
	 * 0 to end with (messages printed), or -1 when no run will come (the
	 * VM is stopped; EXIT_OK). A pool's worker waits for its run there.
	 */
	int (*await)(void *arg, struct run_vm *r, int cancel_fd);
	/*
	 * NULL, or called (on that thread, with @await_arg) as soon as the
	 * function's exit status is known and its output written, before the
	 * VM is stopped: the status launcher__run_vm() will return, unless a
	 * signal to this process overrides it.
	 */
	void (*ended)(void *arg, int status);
	void *await_arg;
};

/*
 * Runs the VM until the invocation ends (connect to the agent, send the
 * function, stream stdio, receive the status), --timeout, a guest panic or
 * SIGINT/SIGTERM/SIGHUP (blocked meanwhile, so the VM is stopped and the
 * caller's teardown runs; they are still blocked on return, for the caller
 * to unblock after freeing the VM). Messages go to stderr. Does not free
 * the VM.
 * Returns the exit status `sandbox run` reports.
 */
int launcher__run_vm(struct run_vm *r) __must_check;

/* The sub-commands; each returns the exit status. */
int launcher__snapshot_create(const struct cli *c) __must_check;
int launcher__snapshot_inspect(const char *path) __must_check;
int launcher__snapshot_analyze(const struct analyze_cli_opts *o) __must_check;
int launcher__restore(const struct restore_opts *o) __must_check;
int launcher__run(const struct run_opts *o) __must_check;

#endif
