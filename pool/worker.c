// SPDX-License-Identifier: Apache-2.0
// A pool worker process: one VM restored ahead of time, one invocation, then the end.
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../images/agent/proto.h"
#include "../launcher/launcher.h"
#include "../snapshot/snap.h"
#include "../vmm/log.h"
#include "../vmm/vm.h"
#include "proto.h"
#include "worker.h"

/*
 * The function from the caller's file, read (never mapped: a file its owner
 * truncates would kill a reader of a mapping with SIGBUS) and checked
 * against the guest's memory. The caller checked its header.
 */
static int read_function(int fd, const char *name, uint64_t mem_size,
			 void **out, size_t *size)
{
	struct stat st;
	size_t have = 0;
	ssize_t n = 0;
	char *buf;

	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    (uint64_t)st.st_size > AGENT_FN_MAX) {
		pr_err("function %s: the pool received no usable file of it",
		       name);
		return EXIT_INTERNAL;
	}
	if ((uint64_t)st.st_size > mem_size / RUN_FN_MEM_SHARE) {
		pr_err("function %s: %zu bytes do not fit in the guest's %llu MiB of memory",
		       name, (size_t)st.st_size,
		       (unsigned long long)(mem_size >> 20));
		return EXIT_FN_TOO_BIG;
	}
	*size = (size_t)st.st_size;
	buf = malloc(*size ? *size : 1);
	while (buf && have < *size) {
		n = pread(fd, buf + have, *size - have, (off_t)have);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		have += (size_t)n;
	}
	if (!buf || have != *size) {
		pr_err("function %s: %s", name,
		       !buf    ? strerror(ENOMEM)
		       : n < 0 ? strerror(errno)
			       : "changed while being read");
		free(buf);
		return buf ? EXIT_FN_MISSING : EXIT_INTERNAL;
	}
	*out = buf;
	return EXIT_OK;
}

static int report(int fd, int status)
{
	struct pool_msg m = { .arg0 = (uint32_t)status };

	return pool__send(fd, POOL_RESULT, &m, NULL, 0, NULL, 0);
}

/* The worker's one run, as it came from the daemon. */
struct await {
	int fd; /* to the daemon */
	uint64_t mem_size;
	bool got; /* a POOL_RUN came: its status must be reported */
	bool reported; /* it was, by ran() */
	int log_fd; /* the daemon's stderr, while ours is the caller's */
	struct timing t;
	char payload[POOL_PAYLOAD_MAX + 1];
	const char *argv[POOL_PAYLOAD_MAX / 2 + 1];
	int fds[POOL_MAX_FDS];
	unsigned int nfds;
	void *fn;
	size_t fn_size;
};

/* run_vm's ended: the caller has its output and need not wait for the VM's teardown. */
static void ran(void *arg, int status)
{
	struct await *a = arg;

	a->reported = !report(a->fd, status);
	/*
	 * The caller's descriptors go now: one reading our output to its end
	 * ($(sandbox run ...)) must not wait for the VM's teardown.
	 */
	if (a->log_fd >= 0)
		dup2(a->log_fd, STDERR_FILENO);
	while (a->nfds > 1)
		close(a->fds[--a->nfds]);
}

/*
 * run_vm's await: the VM runs and its agent is prepared. Says POOL_READY and
 * waits for the POOL_RUN (or the VM's end, or the daemon's: a drain).
 */
static int await_run(void *arg, struct run_vm *r, int cancel_fd)
{
	struct await *a = arg;
	struct pollfd p[2] = { { .fd = a->fd, .events = POLLIN },
			       { .fd = cancel_fd, .events = POLLIN } };
	unsigned int want;
	struct pool_msg m;
	int status;

	if (pool__send(a->fd, POOL_READY, NULL, NULL, 0, NULL, 0))
		return -1;
	while (poll(p, 2, -1) < 0)
		if (errno != EINTR)
			return -1;
	if (p[1].revents)
		return -1;
	a->nfds = POOL_MAX_FDS;
	if (pool__recv(a->fd, &m, a->payload, POOL_PAYLOAD_MAX, a->fds,
		       &a->nfds, 0))
		return -1; /* drained before any run: a clean end */
	a->got = true;
	timing__init(&a->t);
	r->timing = &a->t;
	want = 3 + !!(m.flags & POOL_F_STDIN);
	if (m.type != POOL_RUN || a->nfds != want ||
	    m.arg1 > POOL_PAYLOAD_MAX / 2 ||
	    pool__parse_argv(a->payload, m.len, m.arg1, a->argv)) {
		pr_err("pool worker: a malformed run request");
		return EXIT_INTERNAL;
	}
	/* From here our messages are the caller's, as they are for an inline run. */
	a->log_fd = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3);
	if (dup2(a->fds[2], STDERR_FILENO) < 0)
		return EXIT_INTERNAL;
	status = read_function(a->fds[0], a->argv[0], a->mem_size, &a->fn,
			       &a->fn_size);
	if (status)
		return status;
	r->argv = a->argv;
	r->fn = a->fn;
	r->fn_size = a->fn_size;
	r->in_fd = want == 4 ? a->fds[3] : -1;
	r->out_fd = a->fds[1];
	r->err_fd = a->fds[2];
	/* A --timeout sandbox run would refuse: the longest it takes. */
	r->timeout_s = m.arg0 <= CLI_MAX_TIMEOUT_S ? m.arg0 : CLI_MAX_TIMEOUT_S;
	return 0;
}

int pool__worker(int fd, const char *snap_path)
{
	char dir[PATH_MAX] = "", uds[PATH_MAX + 16];
	struct vm_restore_opts ro = { .console_in = -1 };
	const struct snap_info *info;
	struct snap *s = NULL;
	struct vm *vm = NULL;
	struct await *a = NULL;
	struct run_vm r;
	int status, err, null_fd;

	null_fd = launcher__console_sink();
	if (null_fd < 0) {
		status = EXIT_INTERNAL;
		goto fail;
	}
	err = snap__open(snap_path, vm__arch_snap_id(), &s);
	if (err) {
		status = launcher__exit_for_snap(err);
		goto fail;
	}
	/* The daemon verified the memory of this very file (check_snapshot()). */
	snap__memory_verified(s);
	info = snap__info(s);
	ro.mem_mode =
		info->encoding == SNAP_ENC_RAW ? VM_MEM_FILE : VM_MEM_UFFD;
	if (launcher__tmpdir(dir, sizeof(dir))) {
		status = EXIT_INTERNAL;
		goto fail;
	}
	ro.console_out = null_fd;
	snprintf(uds, sizeof(uds), "%s/vsock", dir);
	ro.vsock_uds = uds;
	err = vm__restore(s, &ro, &vm);
	if (err) {
		status = err == -EINVAL ? EXIT_BAD_INPUT
					: launcher__exit_for_snap(err);
		goto fail;
	}
	if (!vm->vsock_cid) {
		pr_err("snapshot %s has no vsock device: it was not made for sandbox run (snapshot create --agent)",
		       snap_path);
		status = EXIT_BAD_INPUT;
		goto fail;
	}
	/* The agent is connected and prepared before POOL_READY: a run only sends EXEC. */
	a = calloc(1, sizeof(*a));
	if (!a) {
		status = EXIT_INTERNAL;
		goto fail;
	}
	a->fd = fd;
	a->log_fd = -1;
	a->mem_size = info->mem_size;
	timing__init(&a->t);
	r = (struct run_vm){
		.vm = vm,
		.uds = uds,
		.dir = dir,
		.timing = &a->t,
		.await = await_run,
		.ended = ran,
		.await_arg = a,
	};
	status = launcher__run_vm(&r);
	/* A VM that failed before its run is a failed restore for the daemon. */
	if ((!a->got && status == EXIT_OK) || a->reported)
		goto out;
	if (report(fd, status))
		pr_debug("pool worker: the daemon is gone");
	goto out;
fail:
	if (report(fd, status))
		pr_debug("pool worker: the daemon is gone");
out:
	vm__free(vm);
	if (a) {
		while (a->nfds)
			close(a->fds[--a->nfds]);
		free(a->fn);
		if (a->log_fd >= 0)
			close(a->log_fd);
		free(a);
	}
	if (dir[0])
		launcher__rmdir(dir);
	snap__close(s);
	if (null_fd >= 0)
		close(null_fd);
	return status;
}
