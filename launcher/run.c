// SPDX-License-Identifier: Apache-2.0
// sandbox run: one function in a fresh VM restored from a snapshot, its stdio and status ours.
#include <dirent.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <xxhash.h>

#include "../images/agent/proto.h"
#include "../pool/pool.h"
#include "../snapshot/pager.h"
#include "../snapshot/snap.h"
#include "../vmm/log.h"
#include "../vmm/vm.h"
#include "invoke.h"
#include "launcher.h"

#ifndef SANDBOX_VERSION
#define SANDBOX_VERSION "unknown"
#endif

/* The base snapshot: what `sandbox run` restores unless told otherwise. */
#define BASE_MEM_MIB 128
#define BASE_CMDLINE "console=" ARCH_CONSOLE " quiet loglevel=1"
#define BASE_CID 3
/* How long the agent may take to accept the invocation's connection. */
#define CONNECT_TIMEOUT_MS 10000
/* A VM made ready ahead of its run (a pool's) must have its agent answer within this. */
#define PREPARE_TIMEOUT_MS 30000

/* The function, checked on the host before any VM exists. */
struct function {
	int file; /* the caller's file, opened once: what the pool gets */
	size_t size; /* as checked */
	Elf64_Ehdr ehdr; /* its header, as checked */
	void *bytes; /* inline: @fd mapped */
	int fd; /* inline: a sealed memfd copy of @file */
};

/*
 * For an inline run the file's bytes go into a memfd (copied by the kernel,
 * sendfile()) that is then sealed and mapped: a file truncated under a
 * mapping of its own would kill us with SIGBUS, a sealed memfd cannot
 * change. A pooled run needs no copy: its VM's process reads the file.
 */
static int copy_function(const char *path, struct function *fn)
{
	off_t off = 0;
	ssize_t n;

	fn->fd = memfd_create("sandbox-fn", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fn->fd < 0) {
		pr_err("function %s: memfd_create: %s", path, strerror(errno));
		return EXIT_INTERNAL;
	}
	while ((size_t)off < fn->size) {
		n = sendfile(fn->fd, fn->file, &off, fn->size - (size_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			pr_err("function %s: %s", path,
			       n < 0 ? strerror(errno)
				     : "changed while being read");
			return n < 0 && errno == ENOSPC ? EXIT_INTERNAL
							: EXIT_FN_MISSING;
		}
	}
	if (fcntl(fn->fd, F_ADD_SEALS,
		  F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) <
	    0) {
		pr_err("function %s: sealing its copy: %s", path,
		       strerror(errno));
		return EXIT_INTERNAL;
	}
	fn->bytes = mmap(NULL, fn->size, PROT_READ, MAP_SHARED | MAP_POPULATE,
			 fn->fd, 0);
	if (fn->bytes == MAP_FAILED) {
		fn->bytes = NULL;
		pr_err("function %s: mapping its copy: %s", path,
		       strerror(errno));
		return EXIT_INTERNAL;
	}
	/* The copy must still be what was checked. */
	if (memcmp(fn->bytes, &fn->ehdr, sizeof(fn->ehdr))) {
		pr_err("function %s: changed while being read", path);
		return EXIT_FN_MISSING;
	}
	return EXIT_OK;
}

/* Opens @path and checks its size and ELF header: the same errors inline and pooled. */
static int load_function(const char *path, struct function *fn)
{
	Elf64_Ehdr *eh = &fn->ehdr;
	struct stat st;
	ssize_t n;

	fn->file = open(path, O_RDONLY | O_CLOEXEC);
	if (fn->file < 0 || fstat(fn->file, &st) < 0) {
		pr_err("function %s: %s", path, strerror(errno));
		return EXIT_FN_MISSING;
	}
	if (!S_ISREG(st.st_mode) || st.st_size < (off_t)sizeof(*eh)) {
		pr_err("function %s: not an ELF executable (%s)", path,
		       S_ISREG(st.st_mode) ? "too short"
					   : "not a regular file");
		return EXIT_FN_NOT_ELF;
	}
	if ((uint64_t)st.st_size > AGENT_FN_MAX) {
		pr_err("function %s: %lld bytes, more than the %llu a function may have",
		       path, (long long)st.st_size,
		       (unsigned long long)AGENT_FN_MAX);
		return EXIT_FN_TOO_BIG;
	}
	fn->size = (size_t)st.st_size;
	do {
		n = pread(fn->file, eh, sizeof(*eh), 0);
	} while (n < 0 && errno == EINTR);
	if (n != (ssize_t)sizeof(*eh)) {
		pr_err("function %s: %s", path,
		       n < 0 ? strerror(errno) : "changed while being read");
		return EXIT_FN_MISSING;
	}
	if (memcmp(eh->e_ident, ELFMAG, SELFMAG) ||
	    eh->e_ident[EI_CLASS] != ELFCLASS64 ||
	    eh->e_ident[EI_DATA] != ELFDATA2LSB ||
	    (eh->e_type != ET_EXEC && eh->e_type != ET_DYN)) {
		pr_err("function %s: not a 64-bit little-endian ELF executable",
		       path);
		return EXIT_FN_NOT_ELF;
	}
	if (eh->e_machine != ARCH_ELF_MACHINE) {
		pr_err("function %s: built for ELF machine %u, but the guest is %s (machine %u)",
		       path, eh->e_machine, ARCH_NAME, ARCH_ELF_MACHINE);
		return EXIT_FN_WRONG_ARCH;
	}
	return EXIT_OK;
}

static void free_function(struct function *fn)
{
	if (fn->bytes)
		munmap(fn->bytes, fn->size);
	fn->bytes = NULL;
	if (fn->fd >= 0)
		close(fn->fd);
	fn->fd = -1;
	if (fn->file >= 0)
		close(fn->file);
	fn->file = -1;
}

/* What the base snapshot is made from; a change of any of it makes a new one. */
static void base_key(const struct boot_config *bc, XXH3_state_t *h)
{
	/* Our own binary too: a VMM that changed may not read an older snapshot. */
	const char *files[] = { bc->cfg.kernel_path, bc->cfg.initrd_path,
				"/proc/self/exe" };
	struct stat st;

	XXH3_64bits_update(h, SANDBOX_VERSION, strlen(SANDBOX_VERSION));
	XXH3_64bits_update(h, BASE_CMDLINE, strlen(BASE_CMDLINE));
	for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
		uint64_t id[5] = { 0 };

		if (stat(files[i], &st) == 0) {
			id[0] = st.st_dev;
			id[1] = st.st_ino;
			id[2] = (uint64_t)st.st_size;
			id[3] = (uint64_t)st.st_mtim.tv_sec;
			id[4] = (uint64_t)st.st_mtim.tv_nsec;
		}
		XXH3_64bits_update(h, files[i], strlen(files[i]));
		XXH3_64bits_update(h, id, sizeof(id));
	}
}

static int cache_dir(char *buf, size_t size)
{
	const char *env = getenv("SANDBOX_CACHE"), *home = getenv("HOME");
	int n;

	if (env && *env)
		n = snprintf(buf, size, "%s/snapshots", env);
	else
		n = snprintf(buf, size, "%s/.cache/sandbox/snapshots",
			     home && *home ? home : "/tmp");
	return n < (int)size ? 0 : -ENAMETOOLONG;
}

static int mkdir_p(char *path)
{
	for (char *p = path + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(path, 0755) < 0 && errno != EEXIST) {
			*p = '/';
			return -errno;
		}
		*p = '/';
	}
	return mkdir(path, 0755) < 0 && errno != EEXIST ? -errno : 0;
}

/*
 * The default snapshot: the default images booted with the agent, saved at
 * its ready point, raw (any memory mode can restore it; `file` shares it).
 * Made once per set of images, under a lock so that concurrent first runs
 * make it once.
 */
/* Removes other base snapshots and stale temporary files: the cache holds one. */
static void prune(const char *dir, const char *keep)
{
	char path[PATH_MAX], prefix[64];
	struct dirent *e;
	DIR *d = opendir(dir);
	size_t n;

	if (!d)
		return;
	n = (size_t)snprintf(prefix, sizeof(prefix), "base-%s-", ARCH_NAME);
	while ((e = readdir(d))) {
		const char *dot = strrchr(e->d_name, '.');

		if (strncmp(e->d_name, prefix, n) || !strcmp(e->d_name, keep))
			continue;
		/* Lock files stay: another process may hold one. */
		if (dot && !strcmp(dot, ".lock"))
			continue;
		if (snprintf(path, sizeof(path), "%s/%s", dir, e->d_name) <
		    (int)sizeof(path))
			unlink(path);
	}
	closedir(d);
}

static int base_snapshot(char *path, size_t size, bool remake)
{
	struct boot_opts b = {
		.cmdline = BASE_CMDLINE,
		.mem_mib = BASE_MEM_MIB,
		.vcpus = 1,
		.root_drive = -1,
	};
	struct create_params p = {
		.wo = { .encoding = SNAP_ENC_RAW,
			.chunk_size = SNAP_DEFAULT_CHUNK_SIZE },
		.timeout_s = 120,
		.console_fd = -1,
	};
	char dir[PATH_MAX], tmp[PATH_MAX] = "", uds[PATH_MAX + 16];
	char lock[PATH_MAX + 16], cmdline[4096 + 16];
	struct boot_config bc;
	struct timing t;
	XXH3_state_t *h;
	int status, lfd, err;

	status = launcher__boot_config(&b, &bc);
	if (status)
		return status;
	h = XXH3_createState();
	if (!h || XXH3_64bits_reset(h) == XXH_ERROR) {
		XXH3_freeState(h);
		return EXIT_INTERNAL;
	}
	base_key(&bc, h);
	err = cache_dir(dir, sizeof(dir));
	if (!err)
		err = mkdir_p(dir);
	if (err) {
		XXH3_freeState(h);
		pr_err("cannot make the snapshot cache %s: %s", dir,
		       strerror(-err));
		return EXIT_INTERNAL;
	}
	err = snprintf(path, size, "%s/base-%s-%016llx.snap", dir, ARCH_NAME,
		       (unsigned long long)XXH3_64bits_digest(h)) >= (int)size
		      ? -ENAMETOOLONG
		      : 0;
	XXH3_freeState(h);
	if (err) {
		pr_err("snapshot cache path too long: %s", dir);
		return EXIT_INTERNAL;
	}
	snprintf(lock, sizeof(lock), "%s.lock", path);
	lfd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (lfd < 0 || flock(lfd, LOCK_EX) < 0) {
		pr_err("cannot lock %s: %s", lock, strerror(errno));
		if (lfd >= 0)
			close(lfd);
		return EXIT_INTERNAL;
	}
	if (remake)
		unlink(path);
	if (access(path, F_OK) == 0) {
		close(lfd);
		return EXIT_OK;
	}
	prune(dir, strrchr(path, '/') + 1);
	fprintf(stderr,
		"sandbox: making the base snapshot %s (once for these guest images)\n",
		path);
	snprintf(cmdline, sizeof(cmdline), "sandbox.agent %s", bc.cmdline);
	bc.cfg.cmdline = cmdline;
	status = launcher__tmpdir(tmp, sizeof(tmp)) ? EXIT_INTERNAL : EXIT_OK;
	if (!status) {
		snprintf(uds, sizeof(uds), "%s/vsock", tmp);
		bc.cfg.vsock_cid = BASE_CID;
		bc.cfg.vsock_uds = uds;
		timing__init(&t);
		p.cfg = &bc.cfg;
		p.output = path;
		p.timing = &t;
		status = launcher__create(&p);
		launcher__rmdir(tmp);
	}
	close(lfd);
	return status;
}

/* One invocation, on its own thread while the main thread runs the VM. */
struct invocation {
	pthread_mutex_t lock;
	struct vm *vm; /* asked to stop when the invocation ends */
	int fd; /* the stream to the agent, once connected */
	int stop_fd; /* eventfd: the VM ended, give up */
	const char *uds;
	struct run_vm *r;
	struct invoke_session session;
	struct invoke_request req;
	struct invoke_result res;
	int err; /* invoke__run()'s result, or the handshake's */
	bool done; /* res is valid */
	int await_status; /* r->await's: > 0 ends the run with that status */
	bool no_run; /* r->await said no run will come */
	enum vm_exit stop_why; /* what the VM is stopped with once we are done */
	double connected_ms;
};

/* Waits until @fd is readable, or the stop eventfd fires. 0, -ETIMEDOUT, -ECANCELED. */
static int wait_readable(struct invocation *inv, int fd, int timeout_ms)
{
	struct pollfd pfd[2] = { { .fd = fd, .events = POLLIN },
				 { .fd = inv->stop_fd, .events = POLLIN } };
	int n;

	do {
		n = poll(pfd, 2, timeout_ms);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	if (!n)
		return -ETIMEDOUT;
	return pfd[1].revents ? -ECANCELED : 0;
}

/* Firecracker's host-side vsock handshake: "CONNECT <port>\n", then "OK <port>\n". */
static int connect_agent(struct invocation *inv)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	char line[64];
	size_t have = 0;
	int fd, n, err;

	if (strlen(inv->uds) >= sizeof(a.sun_path))
		return -ENAMETOOLONG;
	strcpy(a.sun_path, inv->uds);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	pthread_mutex_lock(&inv->lock);
	inv->fd = fd;
	pthread_mutex_unlock(&inv->lock);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
		return -errno;
	n = snprintf(line, sizeof(line), "CONNECT %u\n", AGENT_PORT);
	if (send(fd, line, (size_t)n, MSG_NOSIGNAL) != n)
		return -EIO;
	/* Byte by byte: what follows the line is the agent's stream. */
	while (have < sizeof(line) - 1) {
		err = wait_readable(inv, fd, CONNECT_TIMEOUT_MS);
		if (err)
			return err;
		n = (int)recv(fd, line + have, 1, 0);
		if (n <= 0)
			return n ? -errno : -ECONNRESET;
		if (line[have++] == '\n')
			break;
	}
	line[have] = '\0';
	if (strncmp(line, "OK ", 3)) {
		pr_err("vsock: the agent did not accept the connection (\"%.*s\")",
		       (int)strcspn(line, "\n"), line);
		return -ECONNREFUSED;
	}
	return 0;
}

static int write_guest(void *arg, uint64_t gpa, const void *src, size_t len)
{
	struct vm *vm = arg;

	return mem__write(&vm->mem, gpa, src, len);
}

/* The invocation as @r now describes it. */
static void fill_request(struct invocation *inv)
{
	static const char *const envp[] = { "PATH=/bin:/sbin", "HOME=/", NULL };
	const struct run_vm *r = inv->r;

	inv->req.argv = r->argv;
	inv->req.envp = envp;
	inv->req.fn = r->fn;
	inv->req.fn_size = r->fn_size;
	inv->req.in_fd = r->in_fd;
	inv->req.out_fd = r->out_fd;
	inv->req.err_fd = r->err_fd;
	inv->req.cancel_fd = inv->stop_fd;
	inv->req.session = &inv->session;
	inv->req.write_guest = write_guest;
	inv->req.write_arg = r->vm;
	/* Without a wait, vm__run() counts --timeout, from the command's start. */
	if (r->await)
		inv->req.timeout_ms = r->timeout_s * 1000U;
}

static void *invoke_thread(void *arg)
{
	struct invocation *inv = arg;
	struct run_vm *r = inv->r;
	int st;

	inv->stop_why = VM_EXIT_POWEROFF;
	inv->err = connect_agent(inv);
	/* Connected: nothing on disk is needed any more, even if we are killed. */
	launcher__rmdir(r->dir);
	if (!inv->err) {
		inv->connected_ms = timing__ms(r->timing);
		/* A VM that waits for its run (a pool's) warms up meanwhile. */
		inv->err = invoke__prepare(
			inv->fd, r->await ? PREPARE_TIMEOUT_MS : 0,
			inv->stop_fd, r->await != NULL, &inv->session);
	}
	if (!inv->err && r->await) {
		st = r->await(r->await_arg, r, inv->stop_fd);
		if (st < 0)
			inv->no_run = true;
		else
			inv->await_status = st;
		if (st)
			inv->err = -ECANCELED;
	}
	if (!inv->err) {
		fill_request(inv);
		inv->err = invoke__run(inv->fd, &inv->req, &inv->res);
		inv->done = !inv->err;
		if (inv->err == -ETIMEDOUT && r->await)
			inv->stop_why = VM_EXIT_TIMEOUT;
		/* Its output is all written: the status need not wait for the VM's end. */
		if (inv->done && inv->res.kind != INVOKE_AGENT_ERROR &&
		    r->ended)
			r->ended(r->await_arg, inv->res.kind == INVOKE_EXITED
						       ? inv->res.code
						       : 128 + inv->res.code);
	}
	pthread_mutex_lock(&inv->lock);
	if (inv->vm)
		vm__request_stop(inv->vm, inv->stop_why);
	pthread_mutex_unlock(&inv->lock);
	return NULL;
}

/* The VM ended (or is about to be freed): the invocation gives up. */
static void abort_invocation(struct invocation *inv)
{
	uint64_t one = 1;

	pthread_mutex_lock(&inv->lock);
	inv->vm = NULL;
	if (inv->fd >= 0)
		shutdown(inv->fd, SHUT_RDWR);
	pthread_mutex_unlock(&inv->lock);
	if (write(inv->stop_fd, &one, sizeof(one)) < 0)
		pr_debug("cannot signal the invocation thread");
}

static int status_for(const struct invocation *inv, enum vm_exit why,
		      unsigned int timeout_s)
{
	if (inv->no_run)
		return EXIT_OK;
	if (inv->await_status)
		return inv->await_status;
	if (inv->done) {
		switch (inv->res.kind) {
		case INVOKE_EXITED:
			return inv->res.code;
		case INVOKE_SIGNALED:
			return 128 + inv->res.code;
		case INVOKE_AGENT_ERROR:
			if (inv->res.started_ns) {
				pr_err("the guest agent failed after starting the function: %s",
				       inv->res.message);
				return EXIT_AGENT_FAILED;
			}
			pr_err("the function could not be started: %s",
			       inv->res.message);
			return EXIT_FN_NOT_RUN;
		}
	}
	switch (why) {
	case VM_EXIT_TIMEOUT:
		pr_err("the function ran past --timeout %u s; its VM was killed",
		       timeout_s);
		return EXIT_TIMEOUT;
	case VM_EXIT_PANIC:
		pr_err("the guest kernel panicked");
		return EXIT_GUEST_PANIC;
	case VM_EXIT_CORRUPT:
		pr_err("the snapshot's memory proved corrupt while the guest ran");
		return EXIT_SNAP_CORRUPT;
	case VM_EXIT_ERROR:
		pr_err("the VM failed (see above); the function's status is unknown");
		return EXIT_INTERNAL;
	default:
		/* The guest powered off, reset, or broke the protocol. */
		pr_err("the guest ended the invocation before the function's exit status arrived: %s",
		       strerror(-inv->err));
		return EXIT_AGENT_FAILED;
	}
}

/*
 * SIGINT, SIGTERM and SIGHUP stop the VM, so that the usual teardown runs
 * and nothing is left behind; the command then exits 128 + the signal.
 */
struct sig_watch {
	pthread_mutex_t lock;
	struct vm *vm;
	sigset_t set;
	int sig; /* the signal that arrived, or 0 */
	bool finished;
};

static void *watch_signals(void *arg)
{
	struct sig_watch *w = arg;
	int sig;

	for (;;) {
		if (sigwait(&w->set, &sig))
			continue;
		pthread_mutex_lock(&w->lock);
		if (w->finished) {
			pthread_mutex_unlock(&w->lock);
			return NULL;
		}
		if (!w->sig)
			w->sig = sig;
		if (w->vm)
			vm__request_stop(w->vm, VM_EXIT_ERROR);
		pthread_mutex_unlock(&w->lock);
	}
}

/* Snapshot errors worth making the cached base snapshot again for. */
static bool stale(int err)
{
	return err == -EBADMSG || err == -ENODATA || err == -EPROTONOSUPPORT ||
	       err == -EXDEV;
}

int launcher__find_snapshot(const char *snapshot, bool remake, char *path,
			    size_t size)
{
	if (snapshot) {
		snprintf(path, size, "%s", snapshot);
		return EXIT_OK;
	}
	return base_snapshot(path, size, remake);
}

int launcher__run_vm(struct run_vm *r)
{
	struct invocation inv = {
		.lock = PTHREAD_MUTEX_INITIALIZER,
		.fd = -1,
		.stop_fd = -1,
		.r = r,
	};
	struct sig_watch sw = { .lock = PTHREAD_MUTEX_INITIALIZER };
	enum vm_exit why = VM_EXIT_NONE;
	pthread_t thread, sig_thread;
	bool started = false, sig_started = false;
	unsigned int timeout_ms = 0;
	sigset_t old_mask;
	int status, err;

	inv.stop_fd = eventfd(0, EFD_CLOEXEC);
	if (inv.stop_fd < 0) {
		pr_err("cannot open the guest console's sink: %s",
		       strerror(errno));
		return EXIT_INTERNAL;
	}
	/* From here a signal stops the VM and the teardown below still runs. */
	sigemptyset(&sw.set);
	sigaddset(&sw.set, SIGINT);
	sigaddset(&sw.set, SIGTERM);
	sigaddset(&sw.set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sw.set, &old_mask);
	sw.vm = r->vm;
	sig_started = !pthread_create(&sig_thread, NULL, watch_signals, &sw);
	inv.vm = r->vm;
	inv.uds = r->uds;
	err = pthread_create(&thread, NULL, invoke_thread, &inv);
	if (err) {
		pr_err("cannot start the invocation thread: %s", strerror(err));
		status = EXIT_INTERNAL;
		goto out;
	}
	started = true;
	/* --timeout counts from r->timing's start (the command's, restore included). */
	if (r->timeout_s && !r->await) {
		double left = r->timeout_s * 1000.0 - timing__ms(r->timing);

		timeout_ms = left < 1 ? 1 : (unsigned int)left;
	}
	err = vm__run(r->vm, timeout_ms, &why);
	abort_invocation(&inv);
	pthread_join(thread, NULL);
	started = false;
	if (r->timing->on) {
		/* After a wait, the run's own timing starts when it came. */
		double base = r->await ? 0 : inv.connected_ms;

		if (!r->await)
			fprintf(stderr, "sandbox-timing: connected_ms=%.3f\n",
				inv.connected_ms);
		if (inv.res.sent_ns)
			fprintf(stderr, "sandbox-timing: sent_ms=%.3f\n",
				base + inv.res.sent_ns / 1e6);
		if (inv.res.started_ns)
			fprintf(stderr, "sandbox-timing: started_ms=%.3f\n",
				base + inv.res.started_ns / 1e6);
		if (inv.res.ended_ns)
			fprintf(stderr, "sandbox-timing: ended_ms=%.3f\n",
				base + inv.res.ended_ns / 1e6);
	}
	pthread_mutex_lock(&sw.lock);
	if (sw.sig) {
		pr_err("stopped by signal %d", sw.sig);
		status = 128 + sw.sig;
	} else {
		status = err ? EXIT_INTERNAL
			     : status_for(&inv, why, r->timeout_s);
	}
	pthread_mutex_unlock(&sw.lock);
out:
	if (started) {
		abort_invocation(&inv);
		pthread_join(thread, NULL);
	}
	if (sig_started) {
		pthread_mutex_lock(&sw.lock);
		sw.vm = NULL;
		sw.finished = true;
		pthread_mutex_unlock(&sw.lock);
		pthread_kill(sig_thread, SIGTERM);
		pthread_join(sig_thread, NULL);
	}
	/* The signals stay blocked: the caller unblocks them after its teardown. */
	if (inv.fd >= 0)
		close(inv.fd);
	close(inv.stop_fd);
	invoke__session_free(&inv.session);
	return status;
}

int launcher__run(const struct run_opts *o)
{
	static const enum vm_mem_mode modes[] = {
		[CLI_MEM_UFFD] = VM_MEM_UFFD,
		[CLI_MEM_EAGER] = VM_MEM_EAGER,
		[CLI_MEM_FILE] = VM_MEM_FILE,
	};
	char snap_path[PATH_MAX], dir[PATH_MAX] = "", uds[PATH_MAX + 16];
	struct vm_restore_opts ro = { .console_in = -1 };
	const struct snap_info *info;
	struct function fn = { .file = -1, .fd = -1 };
	unsigned int attempt;
	bool masked = false;
	sigset_t mask;
	struct run_vm r;
	struct timing t;
	struct snap *s = NULL;
	struct vm *vm = NULL;
	int status, err = 0, null_fd = -1;

	timing__init(&t);
	status = load_function(o->fn, &fn);
	if (status)
		goto out;
	if (pool__client_run(o, fn.file, &status) == 0)
		goto out;
	status = copy_function(o->fn, &fn);
	if (status)
		goto out;
	close(fn.file);
	fn.file = -1;
	null_fd = launcher__console_sink();
	if (null_fd < 0) {
		status = EXIT_INTERNAL;
		goto out;
	}
	/* A cached base snapshot that no longer fits this VMM is made again, once. */
	for (attempt = 0; attempt < 2; attempt++) {
		bool retry = attempt == 0 && !o->snapshot;

		status = launcher__find_snapshot(o->snapshot, attempt > 0,
						 snap_path, sizeof(snap_path));
		if (status)
			goto out;
		err = snap__open(snap_path, vm__arch_snap_id(), &s);
		if (err && retry && stale(err)) {
			pr_warn("the cached base snapshot is unusable; making it again");
			continue;
		}
		if (err) {
			status = launcher__exit_for_snap(err);
			goto out;
		}
		info = snap__info(s);
		if (fn.size > info->mem_size / RUN_FN_MEM_SHARE) {
			pr_err("function %s: %zu bytes do not fit in the guest's %llu MiB of memory",
			       o->fn, fn.size,
			       (unsigned long long)(info->mem_size >> 20));
			status = EXIT_FN_TOO_BIG;
			goto out;
		}
		ro.mem_mode = o->mem_mode_set ? modes[o->mem_mode]
			      : info->encoding == SNAP_ENC_RAW ? VM_MEM_FILE
							       : VM_MEM_UFFD;
		if (launcher__tmpdir(dir, sizeof(dir))) {
			status = EXIT_INTERNAL;
			goto out;
		}
		ro.console_out = null_fd;
		snprintf(uds, sizeof(uds), "%s/vsock", dir);
		ro.vsock_uds = uds;
		err = vm__restore(s, &ro, &vm);
		if (!err)
			break;
		launcher__rmdir(dir);
		dir[0] = '\0';
		snap__close(s);
		s = NULL;
		if (!retry || !stale(err)) {
			status = err == -EINVAL ? EXIT_BAD_INPUT
						: launcher__exit_for_snap(err);
			goto out;
		}
		pr_warn("the cached base snapshot does not restore; making it again");
	}
	if (!vm) {
		status = launcher__exit_for_snap(err);
		goto out;
	}
	if (!vm->vsock_cid) {
		pr_err("snapshot %s has no vsock device: it was not made for sandbox run (snapshot create --agent)",
		       snap_path);
		status = EXIT_BAD_INPUT;
		goto out;
	}
	timing__note_ms(&t, "restore_ms");
	r = (struct run_vm){
		.vm = vm,
		.uds = uds,
		.dir = dir,
		.argv = (const char *const *)o->args,
		.fn = fn.bytes,
		.fn_size = fn.size,
		.in_fd = launcher__console_input(),
		.out_fd = STDOUT_FILENO,
		.err_fd = STDERR_FILENO,
		.timeout_s = o->timeout_s,
		.timing = &t,
	};
	pthread_sigmask(SIG_SETMASK, NULL, &mask);
	status = launcher__run_vm(&r);
	masked = true;
out:
	vm__free(vm);
	/* Only now: a second signal must not cut the teardown short. */
	if (masked)
		pthread_sigmask(SIG_SETMASK, &mask, NULL);
	timing__note_ms(&t, "teardown_ms");
	if (null_fd >= 0)
		close(null_fd);
	if (dir[0])
		launcher__rmdir(dir);
	snap__close(s);
	free_function(&fn);
	return status;
}
