// SPDX-License-Identifier: Apache-2.0
// snapshot create, snapshot inspect and restore: a VM to a file at its ready point, and back.
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "../images/agent/proto.h"
#include "../snapshot/analyze.h"
#include "../snapshot/pager.h"
#include "../snapshot/snap.h"
#include "../vmm/log.h"
#include "../vmm/vm.h"
#include "invoke.h"
#include "launcher.h"

/*
 * Watches for the ready point while the VM runs: the console is copied to
 * console_fd (or dropped) and searched for the ready line, or the guest
 * agent's READY arrives on the ready listener. Either asks the VM to pause.
 */
struct ready_watch {
	pthread_mutex_t lock; /* vm goes NULL before the VM is freed */
	struct vm *vm;
	bool seen;
	int console; /* read end of the console pipe */
	int console_fd; /* -1: drop the console */
	const char *ready; /* NULL: the agent reports */
	int listen_fd; /* the agent's ready port, or -1 */
	int stop_fd; /* eventfd: stop watching for the agent */
	unsigned int timeout_ms;
};

static void ready(struct ready_watch *w)
{
	pthread_mutex_lock(&w->lock);
	w->seen = true;
	if (w->vm)
		vm__request_pause(w->vm);
	pthread_mutex_unlock(&w->lock);
}

static void watch_detach(struct ready_watch *w)
{
	pthread_mutex_lock(&w->lock);
	w->vm = NULL;
	pthread_mutex_unlock(&w->lock);
}

static void *watch_console(void *arg)
{
	struct ready_watch *w = arg;
	size_t want = w->ready ? strlen(w->ready) : 0, have = 0;
	/* The current line so far equals a prefix of the ready line. */
	bool match = true, done = !w->ready;
	char buf[4096];
	ssize_t n, i;

	while ((n = read(w->console, buf, sizeof(buf))) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (w->console_fd >= 0 &&
		    write(w->console_fd, buf, (size_t)n) < 0)
			pr_debug("console: cannot copy the guest's output");
		for (i = 0; i < n && !done; i++) {
			char c = buf[i];

			if (c == '\n') {
				if (match && have == want) {
					ready(w);
					done = true;
				}
				have = 0;
				match = true;
			} else if (c != '\r') {
				match = match && have < want &&
					w->ready[have] == c;
				have++;
			}
		}
	}
	return NULL;
}

static void *watch_agent(void *arg)
{
	struct ready_watch *w = arg;
	struct pollfd pfd[2] = { { .fd = w->listen_fd, .events = POLLIN },
				 { .fd = w->stop_fd, .events = POLLIN } };
	int fd, err;

	for (;;) {
		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return NULL;
		}
		if (pfd[1].revents)
			return NULL;
		fd = accept4(w->listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		err = invoke__wait_ready(fd, w->timeout_ms);
		close(fd);
		if (!err) {
			ready(w);
			return NULL;
		}
	}
}

/* The host end of the agent's ready port: "<uds>_53", Firecracker's convention. */
static int listen_ready(const char *uds, char *path, size_t size)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int fd, err;

	if (snprintf(path, size, "%s_%u", uds, AGENT_READY_PORT) >= (int)size ||
	    strlen(path) >= sizeof(a.sun_path)) {
		pr_err("vsock socket path too long: %s", uds);
		return -ENAMETOOLONG;
	}
	strcpy(a.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    listen(fd, 4) < 0) {
		err = -errno;
		pr_err("cannot listen on %s: %s", path, strerror(-err));
		close(fd);
		return err;
	}
	return fd;
}

static void print_mem_stats(FILE *f, const struct snap_mem_stats *m,
			    uint32_t page_size)
{
	double raw = (double)m->pages * page_size;

	fprintf(f,
		"memory: %llu pages of %u bytes (%.1f MiB), %llu zero, %llu stored (%.1f MiB)\n",
		(unsigned long long)m->pages, page_size, raw / (1 << 20),
		(unsigned long long)m->zero_pages,
		(unsigned long long)(m->pages - m->zero_pages),
		(double)m->raw_bytes / (1 << 20));
	fprintf(f,
		"memory data: %llu bytes in %llu chunks (%llu all zero); %.1fx smaller than raw memory, %.2fx than its non-zero pages\n",
		(unsigned long long)m->stored_bytes,
		(unsigned long long)m->chunks,
		(unsigned long long)m->zero_chunks,
		m->stored_bytes ? raw / (double)m->stored_bytes : 0.0,
		m->stored_bytes ? (double)m->raw_bytes / (double)m->stored_bytes
				: 0.0);
}

int launcher__create(const struct create_params *p)
{
	struct ready_watch w = {
		.lock = PTHREAD_MUTEX_INITIALIZER,
		.console = -1,
		.console_fd = p->console_fd,
		.ready = p->ready_line,
		.listen_fd = -1,
		.stop_fd = -1,
		.timeout_ms = p->timeout_s * 1000U,
	};
	struct vm_config cfg = *p->cfg;
	enum vm_exit why = VM_EXIT_NONE;
	char ready_path[PATH_MAX] = "";
	pthread_t console_thread, agent_thread;
	bool console_started = false, agent_started = false;
	struct snap_mem_stats stats;
	struct vm *vm = NULL;
	int pipefd[2], status, err;
	uint64_t one = 1;

	if (pipe2(pipefd, O_CLOEXEC) < 0) {
		pr_err("pipe: %s", strerror(errno));
		return EXIT_INTERNAL;
	}
	w.console = pipefd[0];
	if (!p->ready_line) {
		w.listen_fd = listen_ready(cfg.vsock_uds, ready_path,
					   sizeof(ready_path));
		w.stop_fd = eventfd(0, EFD_CLOEXEC);
		if (w.listen_fd < 0 || w.stop_fd < 0) {
			status = w.listen_fd == -ENAMETOOLONG ? EXIT_BAD_INPUT
							      : EXIT_INTERNAL;
			goto out;
		}
	}
	/* The ready point is the guest's own: no console input reaches it. */
	cfg.console_in = -1;
	cfg.console_out = pipefd[1];
	err = vm__new(&cfg, &vm);
	if (err) {
		status = launcher__exit_for_error(err);
		goto out;
	}
	w.vm = vm;
	err = pthread_create(&console_thread, NULL, watch_console, &w);
	console_started = !err;
	if (!err && w.listen_fd >= 0) {
		err = pthread_create(&agent_thread, NULL, watch_agent, &w);
		agent_started = !err;
	}
	if (err) {
		pr_err("cannot start a watcher thread: %s", strerror(err));
		status = EXIT_INTERNAL;
		goto out;
	}
	err = vm__run(vm, p->timeout_s * 1000U, &why);
	if (err) {
		status = EXIT_INTERNAL;
		goto out;
	}
	if (why != VM_EXIT_PAUSED) {
		status = launcher__exit_for_vm(why);
		if (status == EXIT_OK) {
			if (p->ready_line)
				pr_err("the guest ended before its ready line \"%s\"",
				       p->ready_line);
			else
				pr_err("the guest ended before its agent reported ready");
			status = EXIT_NOT_READY;
		}
		goto out;
	}
	timing__note_ms(p->timing, "ready_ms");
	err = vm__save(vm, p->output, &p->wo, &stats);
	if (err) {
		status = err == -ENOENT || err == -EACCES || err == -EROFS ||
					 err == -ENOTDIR
				 ? EXIT_BAD_INPUT
				 : EXIT_INTERNAL;
		goto out;
	}
	timing__note_ms(p->timing, "snapshot_write_ms");
	if (p->stats)
		*p->stats = stats;
	status = EXIT_OK;
	if (p->resume) {
		err = vm__resume(vm);
		if (!err)
			err = vm__run(vm, p->timeout_s * 1000U, &why);
		status = err ? EXIT_INTERNAL : launcher__exit_for_vm(why);
	}
out:
	/* The console's last bytes reach the pipe while the VM is freed. */
	watch_detach(&w);
	vm__free(vm);
	close(pipefd[1]);
	if (console_started)
		pthread_join(console_thread, NULL);
	close(pipefd[0]);
	if (agent_started) {
		if (write(w.stop_fd, &one, sizeof(one)) < 0)
			pr_debug("cannot stop the agent watcher");
		pthread_join(agent_thread, NULL);
	}
	if (w.listen_fd >= 0) {
		close(w.listen_fd);
		unlink(ready_path);
	}
	if (w.stop_fd >= 0)
		close(w.stop_fd);
	return status;
}

int launcher__snapshot_create(const struct cli *c)
{
	struct create_params p = {
		.output = c->snap.output,
		.wo = {
			.encoding = c->snap.raw ? SNAP_ENC_RAW : SNAP_ENC_ZSTD,
			.level = (int)c->snap.level,
			.chunk_size = SNAP_DEFAULT_CHUNK_SIZE,
		},
		.ready_line = c->snap.agent ? NULL : c->snap.ready_line,
		/* A guest that never gets ready must not hang a build forever. */
		.timeout_s = c->boot.timeout_s ? c->boot.timeout_s : 300,
		.resume = c->snap.resume,
		.console_fd = STDOUT_FILENO,
	};
	char dir[PATH_MAX] = "", uds[PATH_MAX + 16], cmdline[4096 + 16];
	struct snap_mem_stats stats;
	struct boot_config bc;
	struct timing t;
	struct stat st;
	int status;

	timing__init(&t);
	p.timing = &t;
	p.stats = &stats;
	status = launcher__boot_config(&c->boot, &bc);
	if (status)
		return status;
	if (c->snap.agent) {
		if (snprintf(cmdline, sizeof(cmdline), "sandbox.agent %s",
			     bc.cmdline) >= (int)sizeof(cmdline)) {
			pr_err("kernel command line too long");
			return EXIT_USAGE;
		}
		bc.cfg.cmdline = cmdline;
		/* The agent needs a vsock device; a private one unless --vsock gave it. */
		if (!bc.cfg.vsock_cid) {
			if (launcher__tmpdir(dir, sizeof(dir)))
				return EXIT_INTERNAL;
			snprintf(uds, sizeof(uds), "%s/vsock", dir);
			bc.cfg.vsock_cid = 3;
			bc.cfg.vsock_uds = uds;
		}
	}
	p.cfg = &bc.cfg;
	status = launcher__create(&p);
	if (dir[0])
		launcher__rmdir(dir);
	if (status != EXIT_OK || c->snap.resume)
		return status;
	if (stat(c->snap.output, &st) == 0)
		timing__note_u64(&t, "file_bytes", (uint64_t)st.st_size);
	timing__note_u64(&t, "mem_bytes",
			 stats.pages * (uint64_t)getpagesize());
	fprintf(stderr, "sandbox: snapshot written to %s\n", c->snap.output);
	print_mem_stats(stderr, &stats, (uint32_t)getpagesize());
	return EXIT_OK;
}

static const char *encoding_name(enum snap_encoding e)
{
	return e == SNAP_ENC_ZSTD ? "zstd" : e == SNAP_ENC_RAW ? "raw" : "?";
}

int launcher__snapshot_inspect(const char *path)
{
	static const char *const names[SNAP_NR_STATES] = {
		[SNAP_STATE_CONFIG] = "config",
		[SNAP_STATE_VCPUS] = "vcpus",
		[SNAP_STATE_IRQCHIP] = "irqchip",
		[SNAP_STATE_DEVICES] = "devices",
	};
	const struct snap_info *info;
	struct snap *s;
	unsigned int i;
	int err;

	err = snap__open(path, 0, &s);
	if (err)
		return launcher__exit_for_snap(err);
	info = snap__info(s);
	printf("snapshot: %s\n", path);
	printf("format version: %u\n", info->version);
	printf("arch: %s\n", info->arch == SNAP_ARCH_ARM64    ? "arm64"
			     : info->arch == SNAP_ARCH_X86_64 ? "x86_64"
							      : "unknown");
	printf("page size: %u\n", info->page_size);
	printf("file size: %llu\n", (unsigned long long)info->file_size);
	printf("memory encoding: %s", encoding_name(info->encoding));
	if (info->encoding == SNAP_ENC_ZSTD)
		printf(" level %d", info->level);
	printf(", chunks of %u KiB\n", info->chunk_size >> 10);
	for (i = 0; i < info->nr_regions; i++)
		printf("memory region %u: gpa 0x%llx, %llu MiB\n", i,
		       (unsigned long long)info->regions[i].gpa,
		       (unsigned long long)(info->regions[i].size >> 20));
	for (i = 0; i < SNAP_NR_STATES; i++) {
		size_t len;

		(void)snap__state(s, i, &len);
		printf("section %s: %zu bytes\n", names[i], len);
	}
	print_mem_stats(stdout, &info->mem, info->page_size);
	err = snap__verify_memory(s);
	if (!err)
		printf("checksums: all sections and chunks verified\n");
	snap__close(s);
	return err ? launcher__exit_for_snap(err) : EXIT_OK;
}

int launcher__snapshot_analyze(const struct analyze_cli_opts *o)
{
	struct analyze_opts ao = {
		.nr_levels = o->nr_levels,
		.dict = !o->no_dict,
	};
	struct analyze *a;
	unsigned int i;
	int err;

	_Static_assert(CLI_MAX_ANALYZE_LEVELS <= ANALYZE_MAX_LEVELS,
		       "every --levels value fits");
	for (i = 0; i < o->nr_levels; i++)
		ao.levels[i] = o->levels[i];
	err = analyze__run(o->files, o->nr_files, &ao, &a);
	if (err)
		return launcher__exit_for_snap(err);
	err = analyze__print(a, stdout, o->json);
	analyze__free(a);
	if (err) {
		pr_err("cannot write the report: %s", strerror(-err));
		return EXIT_INTERNAL;
	}
	return EXIT_OK;
}

int launcher__restore(const struct restore_opts *o)
{
	static const enum vm_mem_mode modes[] = {
		[CLI_MEM_UFFD] = VM_MEM_UFFD,
		[CLI_MEM_EAGER] = VM_MEM_EAGER,
		[CLI_MEM_FILE] = VM_MEM_FILE,
	};
	struct vm_restore_opts ro = {
		.mem_mode = modes[o->mem_mode],
		.console_in = launcher__console_input(),
		.console_out = STDOUT_FILENO,
		.vsock_uds = o->vsock_uds,
		.ksm = o->ksm,
	};
	enum vm_exit why = VM_EXIT_NONE;
	struct pager_stats ps;
	struct timing t;
	struct snap *s;
	struct vm *vm;
	int err, status;

	timing__init(&t);
	err = snap__open(o->snapshot, vm__arch_snap_id(), &s);
	if (err)
		return launcher__exit_for_snap(err);
	err = vm__restore(s, &ro, &vm);
	if (err) {
		snap__close(s);
		return err == -EINVAL ? EXIT_BAD_INPUT
				      : launcher__exit_for_snap(err);
	}
	timing__note_ms(&t, "restore_ms");
	err = vm__run(vm, o->timeout_s * 1000U, &why);
	if (vm->pager) {
		pager__stats(vm->pager, &ps);
		timing__note_u64(&t, "faults", ps.faults);
		timing__note_u64(&t, "installed_bytes", ps.bytes_installed);
	}
	vm__free(vm);
	snap__close(s);
	if (err)
		return EXIT_INTERNAL;
	if (why == VM_EXIT_CORRUPT) {
		pr_err("the snapshot's memory proved corrupt while the guest ran");
		return EXIT_SNAP_CORRUPT;
	}
	status = launcher__exit_for_vm(why);
	return status;
}
