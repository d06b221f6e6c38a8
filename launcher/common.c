// SPDX-License-Identifier: Apache-2.0
// What the sub-commands share: default images, boot configuration, exit statuses, timings.
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../vmm/log.h"
#include "launcher.h"

/*
 * Default guest images: $SANDBOX_IMAGES, else images/ beside the sandbox
 * binary (the build tree's layout: build/<arch>/sandbox, build/<arch>/images/).
 */
int launcher__images_dir(char *buf, size_t size)
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

int launcher__exit_for_error(int err)
{
	switch (err) {
	case -ENOENT:
	case -EACCES:
	case -EINVAL:
	case -ENOEXEC:
	case -E2BIG:
	case -EISDIR:
	case -EADDRINUSE:
	case -ENAMETOOLONG:
		return EXIT_BAD_INPUT;
	case -ENODEV:
		return EXIT_NO_KVM;
	default:
		return EXIT_INTERNAL;
	}
}

int launcher__exit_for_vm(enum vm_exit why)
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

int launcher__exit_for_snap(int err)
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
		return launcher__exit_for_error(err);
	}
}

/* stdin feeds the guest console only if it is open. */
int launcher__console_input(void)
{
	return fcntl(STDIN_FILENO, F_GETFD) < 0 ? -1 : STDIN_FILENO;
}

int launcher__boot_config(const struct boot_opts *b, struct boot_config *bc)
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
		err = launcher__images_dir(dir, sizeof(dir));
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
	cfg->console_in = launcher__console_input();
	cfg->console_out = STDOUT_FILENO;
	for (i = 0; i < b->nr_drives; i++) {
		cfg->drives[i].path = b->drives[i].path;
		cfg->drives[i].ro = b->drives[i].ro;
		cfg->drives[i].direct = b->drives[i].direct;
	}
	cfg->nr_drives = b->nr_drives;
	cfg->vsock_cid = b->vsock_cid;
	cfg->vsock_uds = b->vsock_cid ? b->vsock_uds : NULL;
	return EXIT_OK;
}

void timing__init(struct timing *t)
{
	const char *env = getenv("SANDBOX_TIMING");

	t->on = env && *env && strcmp(env, "0");
	clock_gettime(CLOCK_MONOTONIC, &t->start);
}

double timing__ms(const struct timing *t)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - t->start.tv_sec) * 1e3 +
	       (double)(now.tv_nsec - t->start.tv_nsec) / 1e6;
}

void timing__note_ms(const struct timing *t, const char *key)
{
	if (t->on)
		fprintf(stderr, "sandbox-timing: %s=%.3f\n", key,
			timing__ms(t));
}

void timing__note_u64(const struct timing *t, const char *key, uint64_t v)
{
	if (t->on)
		fprintf(stderr, "sandbox-timing: %s=%llu\n", key,
			(unsigned long long)v);
}

int launcher__console_sink(void)
{
	int fd = getenv("SANDBOX_DEBUG")
			 ? fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 0)
			 : open("/dev/null", O_WRONLY | O_CLOEXEC);

	if (fd < 0) {
		fd = -errno;
		pr_err("cannot open the guest console's sink: %s",
		       strerror(-fd));
	}
	return fd;
}

int launcher__tmpdir(char *buf, size_t size)
{
	const char *base = getenv("TMPDIR");

	if (!base || !*base)
		base = "/tmp";
	if (snprintf(buf, size, "%s/sandbox-XXXXXX", base) >= (int)size)
		return -ENAMETOOLONG;
	if (!mkdtemp(buf)) {
		int err = -errno;

		pr_err("cannot make a private directory in %s: %s", base,
		       strerror(-err));
		return err;
	}
	return 0;
}

void launcher__rmdir(const char *dir)
{
	char path[PATH_MAX];
	struct dirent *e;
	DIR *d = opendir(dir);

	if (d) {
		while ((e = readdir(d))) {
			if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
				continue;
			if (snprintf(path, sizeof(path), "%s/%s", dir,
				     e->d_name) < (int)sizeof(path))
				unlink(path);
		}
		closedir(d);
	}
	if (rmdir(dir) < 0)
		pr_debug("cannot remove %s: %s", dir, strerror(errno));
}
