// SPDX-License-Identifier: Apache-2.0
// The sandbox command: parses the command line, runs a sub-command, chooses the exit status.
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../snapshot/pager.h"
#include "../snapshot/snap.h"
#include "../vmm/log.h"
#include "../vmm/vm.h"
#include "cli.h"

#ifndef SANDBOX_VERSION
#define SANDBOX_VERSION "unknown"
#endif

#define DEFAULT_INITRD_NAME "initramfs.cpio"

/*
 * Default guest images: $SANDBOX_IMAGES, else images/ beside the sandbox
 * binary (the build tree's layout: build/<arch>/sandbox, build/<arch>/images/).
 */
static int images_dir(char *buf, size_t size)
{
	const char *env = getenv("SANDBOX_IMAGES");
	char exe[PATH_MAX];
	ssize_t n;

	if (env && *env)
		return snprintf(buf, size, "%s", env) < (int)size
			       ? 0
			       : -ENAMETOOLONG;
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n < 0)
		return -errno;
	exe[n] = '\0';
	return snprintf(buf, size, "%s/images", dirname(exe)) < (int)size
		       ? 0
		       : -ENAMETOOLONG;
}

static int exit_status_for_error(int err)
{
	switch (err) {
	case -ENOENT:
	case -EACCES:
	case -EINVAL:
	case -ENOEXEC:
	case -E2BIG:
	case -EISDIR:
		return EXIT_BAD_INPUT;
	case -ENODEV:
		return EXIT_NO_KVM;
	default:
		return EXIT_INTERNAL;
	}
}

static int exit_status_for_vm(enum vm_exit why)
{
	switch (why) {
	case VM_EXIT_POWEROFF:
	case VM_EXIT_RESET:
		return EXIT_OK;
	case VM_EXIT_PANIC:
		pr_err("the guest kernel panicked");
		return EXIT_GUEST_PANIC;
	case VM_EXIT_TIMEOUT:
		pr_err("the guest ran past its time limit and was stopped");
		return EXIT_TIMEOUT;
	default:
		return EXIT_INTERNAL;
	}
}

/* stdin feeds the guest console only if it is open. */
static int console_input(void)
{
	return fcntl(STDIN_FILENO, F_GETFD) < 0 ? -1 : STDIN_FILENO;
}

/* What boot and snapshot create build a VM from; strings live in here. */
struct boot_config {
	struct vm_config cfg;
	char kernel[PATH_MAX + 32];
	char initrd[PATH_MAX + 32];
	char cmdline[4096];
};

static int boot_config(const struct boot_opts *b, struct boot_config *bc)
{
	bool no_initrd = b->no_initrd || (b->root_drive >= 0 && !b->initrd);
	struct vm_config *cfg = &bc->cfg;
	char dir[PATH_MAX];
	unsigned int i;
	int err;

	memset(cfg, 0, sizeof(*cfg));
	if (cli__kernel_cmdline(b, bc->cmdline, sizeof(bc->cmdline))) {
		pr_err("kernel command line too long");
		return EXIT_USAGE;
	}
	if (!b->kernel || (!b->initrd && !no_initrd)) {
		err = images_dir(dir, sizeof(dir));
		if (err) {
			pr_err("cannot find the default images: %s",
			       strerror(-err));
			return EXIT_INTERNAL;
		}
		snprintf(bc->kernel, sizeof(bc->kernel), "%s/%s", dir,
			 ARCH_KERNEL_NAME);
		snprintf(bc->initrd, sizeof(bc->initrd), "%s/%s", dir,
			 DEFAULT_INITRD_NAME);
	}
	cfg->kernel_path = b->kernel ? b->kernel : bc->kernel;
	cfg->initrd_path = no_initrd   ? NULL
			   : b->initrd ? b->initrd
				       : bc->initrd;
	cfg->cmdline = bc->cmdline;
	cfg->mem_size = (uint64_t)b->mem_mib << 20;
	cfg->nr_vcpus = b->vcpus;
	cfg->console_in = console_input();
	cfg->console_out = STDOUT_FILENO;
	for (i = 0; i < b->nr_drives; i++) {
		cfg->drives[i].path = b->drives[i].path;
		cfg->drives[i].ro = b->drives[i].ro;
		cfg->drives[i].direct = b->drives[i].direct;
	}
	cfg->nr_drives = b->nr_drives;
	return EXIT_OK;
}

static int cmd_boot(const struct boot_opts *b)
{
	struct boot_config bc;
	enum vm_exit why = VM_EXIT_NONE;
	struct vm *vm;
	int err;

	err = boot_config(b, &bc);
	if (err)
		return err;
	err = vm__new(&bc.cfg, &vm);
	if (err)
		return exit_status_for_error(err);
	err = vm__run(vm, b->timeout_s * 1000U, &why);
	vm__free(vm);
	if (err)
		return EXIT_INTERNAL;
	return exit_status_for_vm(why);
}

/* SANDBOX_TIMING=1: machine-readable timings on stderr, for bench/. */
struct timing {
	bool on;
	struct timespec start;
};

static void timing_init(struct timing *t)
{
	const char *env = getenv("SANDBOX_TIMING");

	t->on = env && *env && strcmp(env, "0");
	clock_gettime(CLOCK_MONOTONIC, &t->start);
}

static double timing_ms(const struct timing *t)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - t->start.tv_sec) * 1e3 +
	       (double)(now.tv_nsec - t->start.tv_nsec) / 1e6;
}

static void timing_ms_note(const struct timing *t, const char *key)
{
	if (t->on)
		fprintf(stderr, "sandbox-timing: %s=%.3f\n", key, timing_ms(t));
}

static void timing_u64(const struct timing *t, const char *key, uint64_t v)
{
	if (t->on)
		fprintf(stderr, "sandbox-timing: %s=%llu\n", key,
			(unsigned long long)v);
}

static int exit_status_for_snap(int err)
{
	switch (err) {
	case -EBADMSG:
		return EXIT_SNAP_CORRUPT;
	case -ENODATA:
		return EXIT_SNAP_TRUNCATED;
	case -EPROTONOSUPPORT:
	case -EXDEV:
		return EXIT_SNAP_INCOMPATIBLE;
	default:
		return exit_status_for_error(err);
	}
}

/*
 * snapshot create: copies the guest console to stdout and watches it for
 * the ready line, then asks the VM to pause.
 */
struct console_watch {
	struct vm *vm;
	int fd; /* read end of the console pipe */
	const char *ready;
	bool seen;
};

static void *watch_console(void *arg)
{
	struct console_watch *w = arg;
	size_t want = strlen(w->ready), have = 0;
	char buf[4096], line[256];
	bool match =
		true; /* the current line so far equals a prefix of ready */
	ssize_t n, i;

	while ((n = read(w->fd, buf, sizeof(buf))) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (write(STDOUT_FILENO, buf, (size_t)n) < 0)
			pr_debug("console: cannot copy to stdout");
		for (i = 0; i < n && !w->seen; i++) {
			char c = buf[i];

			if (c == '\n') {
				if (match && have == want) {
					w->seen = true;
					vm__request_pause(w->vm);
				}
				have = 0;
				match = true;
			} else if (c != '\r') {
				match = match && have < want &&
					w->ready[have] == c;
				if (have < sizeof(line))
					line[have] = c;
				have++;
			}
		}
	}
	return NULL;
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

static int cmd_snapshot_create(const struct cli *c)
{
	struct snap_write_opts wo = {
		.encoding = c->snap.raw ? SNAP_ENC_RAW : SNAP_ENC_ZSTD,
		.level = (int)c->snap.level,
		.chunk_size = SNAP_DEFAULT_CHUNK_SIZE,
	};
	/* A guest that never gets ready must not hang a build forever. */
	unsigned int timeout_s = c->boot.timeout_s ? c->boot.timeout_s : 300;
	struct console_watch w = { .ready = c->snap.ready_line, .fd = -1 };
	enum vm_exit why = VM_EXIT_NONE;
	struct snap_mem_stats stats;
	struct boot_config bc;
	struct timing t;
	pthread_t watcher;
	bool watching = false;
	struct vm *vm = NULL;
	int pipefd[2], status, err;

	timing_init(&t);
	status = boot_config(&c->boot, &bc);
	if (status)
		return status;
	if (pipe2(pipefd, O_CLOEXEC) < 0) {
		pr_err("pipe: %s", strerror(errno));
		return EXIT_INTERNAL;
	}
	w.fd = pipefd[0];
	/* The ready point is the guest's own: no console input reaches it. */
	bc.cfg.console_in = -1;
	bc.cfg.console_out = pipefd[1];
	err = vm__new(&bc.cfg, &vm);
	if (err) {
		status = exit_status_for_error(err);
		goto out;
	}
	w.vm = vm;
	err = pthread_create(&watcher, NULL, watch_console, &w);
	if (err) {
		pr_err("cannot start the console thread: %s", strerror(err));
		status = EXIT_INTERNAL;
		goto out;
	}
	watching = true;
	err = vm__run(vm, timeout_s * 1000U, &why);
	if (err) {
		status = EXIT_INTERNAL;
		goto out;
	}
	if (why != VM_EXIT_PAUSED) {
		status = exit_status_for_vm(why);
		pr_err("the guest stopped before its ready line \"%s\"",
		       w.ready);
		if (status == EXIT_OK)
			status = EXIT_NOT_READY;
		goto out;
	}
	timing_ms_note(&t, "ready_ms");
	err = vm__save(vm, c->snap.output, &wo, &stats);
	if (err) {
		status = err == -ENOENT || err == -EACCES || err == -EROFS ||
					 err == -ENOTDIR
				 ? EXIT_BAD_INPUT
				 : EXIT_INTERNAL;
		goto out;
	}
	timing_ms_note(&t, "snapshot_write_ms");
	timing_u64(&t, "file_bytes", stats.stored_bytes);
	timing_u64(&t, "mem_bytes", stats.pages * (uint64_t)getpagesize());
	fprintf(stderr, "sandbox: snapshot written to %s\n", c->snap.output);
	print_mem_stats(stderr, &stats, (uint32_t)getpagesize());
	status = EXIT_OK;
	if (c->snap.resume) {
		err = vm__resume(vm);
		if (!err)
			err = vm__run(vm, timeout_s * 1000U, &why);
		status = err ? EXIT_INTERNAL : exit_status_for_vm(why);
	}
out:
	/* The console's last bytes reach the pipe while the VM is freed. */
	vm__free(vm);
	close(pipefd[1]);
	if (watching)
		pthread_join(watcher, NULL);
	close(pipefd[0]);
	return status;
}

static const char *encoding_name(enum snap_encoding e)
{
	return e == SNAP_ENC_ZSTD ? "zstd" : e == SNAP_ENC_RAW ? "raw" : "?";
}

static int cmd_snapshot_inspect(const char *path)
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
		return exit_status_for_snap(err);
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
	return err ? exit_status_for_snap(err) : EXIT_OK;
}

static int cmd_restore(const struct restore_opts *o)
{
	static const enum vm_mem_mode modes[] = {
		[CLI_MEM_UFFD] = VM_MEM_UFFD,
		[CLI_MEM_EAGER] = VM_MEM_EAGER,
		[CLI_MEM_FILE] = VM_MEM_FILE,
	};
	struct vm_restore_opts ro = {
		.mem_mode = modes[o->mem_mode],
		.console_in = console_input(),
		.console_out = STDOUT_FILENO,
	};
	enum vm_exit why = VM_EXIT_NONE;
	struct pager_stats ps;
	struct timing t;
	struct snap *s;
	struct vm *vm;
	int err, status;

	timing_init(&t);
	err = snap__open(o->snapshot, vm__arch_snap_id(), &s);
	if (err)
		return exit_status_for_snap(err);
	err = vm__restore(s, &ro, &vm);
	if (err) {
		snap__close(s);
		return err == -EINVAL ? EXIT_BAD_INPUT
				      : exit_status_for_snap(err);
	}
	timing_ms_note(&t, "restore_ms");
	err = vm__run(vm, o->timeout_s * 1000U, &why);
	if (vm->pager) {
		pager__stats(vm->pager, &ps);
		timing_u64(&t, "faults", ps.faults);
		timing_u64(&t, "installed_bytes", ps.bytes_installed);
	}
	vm__free(vm);
	snap__close(s);
	if (err)
		return EXIT_INTERNAL;
	if (why == VM_EXIT_CORRUPT) {
		pr_err("the snapshot's memory proved corrupt while the guest ran");
		return EXIT_SNAP_CORRUPT;
	}
	status = exit_status_for_vm(why);
	return status;
}

int main(int argc, char *argv[])
{
	char err[256];
	struct cli cli;

	if (cli__parse(argc, argv, &cli, err, sizeof(err))) {
		fprintf(stderr, "sandbox: %s\n%s", err, cli__usage);
		return EXIT_USAGE;
	}
	switch (cli.cmd) {
	case CLI_HELP:
		fputs(cli__usage, stdout);
		return EXIT_OK;
	case CLI_VERSION:
		printf("sandbox %s (%s)\n", SANDBOX_VERSION, ARCH_NAME);
		return EXIT_OK;
	case CLI_BOOT:
		return cmd_boot(&cli.boot);
	case CLI_SNAPSHOT_CREATE:
		return cmd_snapshot_create(&cli);
	case CLI_SNAPSHOT_INSPECT:
		return cmd_snapshot_inspect(cli.snap.output);
	case CLI_RESTORE:
		return cmd_restore(&cli.restore);
	}
	return EXIT_INTERNAL;
}
