// SPDX-License-Identifier: Apache-2.0
// A pool worker process: one VM restored ahead of time, one invocation, then the end.
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../images/agent/proto.h"
#include "../launcher/launcher.h"
#include "../snapshot/snap.h"
#include "../vmm/log.h"
#include "../vmm/vm.h"
#include "proto.h"
#include "worker.h"

/* The function from the client's sealed memfd, checked against the guest's memory. */
static int read_function(int mfd, const char *name, uint64_t mem_size,
			 void **out, size_t *size)
{
	struct stat st;
	size_t have = 0;
	ssize_t n;
	char *buf;

	if (fstat(mfd, &st) < 0 || st.st_size < 0 ||
	    (uint64_t)st.st_size > AGENT_FN_MAX) {
		pr_err("function %s: the pool received no usable copy of it",
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
		n = pread(mfd, buf + have, *size - have, (off_t)have);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		have += (size_t)n;
	}
	if (!buf || have != *size) {
		pr_err("function %s: cannot read the pool's copy of it", name);
		free(buf);
		return EXIT_INTERNAL;
	}
	*out = buf;
	return EXIT_OK;
}

static int report(int fd, int status)
{
	struct pool_msg m = { .arg0 = (uint32_t)status };

	return pool__send(fd, POOL_RESULT, &m, NULL, 0, NULL, 0);
}

/* Receives the POOL_RUN and runs it. An exit status; -1 when none came. */
static int serve(int fd, struct vm *vm, const char *uds, const char *dir,
		 uint64_t mem_size)
{
	/* The worker's stack is the process's main stack: 32 KiB fit. */
	char payload[POOL_PAYLOAD_MAX + 1];
	const char *argv[POOL_PAYLOAD_MAX / 2 + 1];
	int fds[POOL_MAX_FDS];
	unsigned int nfds = POOL_MAX_FDS, want;
	struct pool_msg m;
	struct run_vm r;
	struct timing t;
	void *fn = NULL;
	size_t fn_size = 0;
	int err, status;

	err = pool__recv(fd, &m, payload, POOL_PAYLOAD_MAX, fds, &nfds, 0);
	if (err)
		return -1;
	want = 3 + !!(m.flags & POOL_F_STDIN);
	if (m.type != POOL_RUN || nfds != want ||
	    m.arg1 > POOL_PAYLOAD_MAX / 2 ||
	    pool__parse_argv(payload, m.len, m.arg1, argv)) {
		pr_err("pool worker: a malformed run request");
		status = EXIT_INTERNAL;
		goto out;
	}
	/* From here our messages are the caller's, as they are for an inline run. */
	if (dup2(fds[2], STDERR_FILENO) < 0) {
		status = EXIT_INTERNAL;
		goto out;
	}
	timing__init(&t);
	status = read_function(fds[0], argv[0], mem_size, &fn, &fn_size);
	if (status)
		goto out;
	r = (struct run_vm){
		.vm = vm,
		.uds = uds,
		.dir = dir,
		.argv = argv,
		.fn = fn,
		.fn_size = fn_size,
		.in_fd = want == 4 ? fds[3] : -1,
		.out_fd = fds[1],
		.err_fd = fds[2],
		.timeout_s = m.arg0,
		.timing = &t,
	};
	status = launcher__run_vm(&r);
out:
	free(fn);
	while (nfds)
		close(fds[--nfds]);
	return status;
}

int pool__worker(int fd, const char *snap_path)
{
	char dir[PATH_MAX] = "", uds[PATH_MAX + 16];
	struct vm_restore_opts ro = { .console_in = -1 };
	const struct snap_info *info;
	struct snap *s = NULL;
	struct vm *vm = NULL;
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
	if (pool__send(fd, POOL_READY, NULL, NULL, 0, NULL, 0)) {
		status = EXIT_INTERNAL;
		goto out;
	}
	status = serve(fd, vm, uds, dir, info->mem_size);
	if (status < 0) {
		/* Drained before any run: a clean end. */
		status = EXIT_OK;
		goto out;
	}
	if (report(fd, status))
		pr_debug("pool worker: the daemon is gone");
	goto out;
fail:
	if (report(fd, status))
		pr_debug("pool worker: the daemon is gone");
out:
	vm__free(vm);
	if (dir[0])
		launcher__rmdir(dir);
	snap__close(s);
	if (null_fd >= 0)
		close(null_fd);
	return status;
}
