// SPDX-License-Identifier: Apache-2.0
// The sandbox command: parses the command line, runs a sub-command, chooses the exit status.
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

static int cmd_boot(const struct boot_opts *b)
{
	char dir[PATH_MAX], kernel[PATH_MAX + 32], initrd[PATH_MAX + 32];
	char cmdline[4096];
	bool no_initrd = b->no_initrd || (b->root_drive >= 0 && !b->initrd);
	struct vm_config cfg;
	unsigned int i;
	enum vm_exit why = VM_EXIT_NONE;
	struct vm *vm;
	int err;

	memset(&cfg, 0, sizeof(cfg));
	if (cli__kernel_cmdline(b, cmdline, sizeof(cmdline))) {
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
		snprintf(kernel, sizeof(kernel), "%s/%s", dir,
			 ARCH_KERNEL_NAME);
		snprintf(initrd, sizeof(initrd), "%s/%s", dir,
			 DEFAULT_INITRD_NAME);
	}
	cfg.kernel_path = b->kernel ? b->kernel : kernel;
	cfg.initrd_path = no_initrd ? NULL : b->initrd ? b->initrd : initrd;
	cfg.cmdline = cmdline;
	cfg.mem_size = (uint64_t)b->mem_mib << 20;
	cfg.nr_vcpus = b->vcpus;
	cfg.console_in = console_input();
	cfg.console_out = STDOUT_FILENO;
	for (i = 0; i < b->nr_drives; i++) {
		cfg.drives[i].path = b->drives[i].path;
		cfg.drives[i].ro = b->drives[i].ro;
		cfg.drives[i].direct = b->drives[i].direct;
	}
	cfg.nr_drives = b->nr_drives;

	err = vm__new(&cfg, &vm);
	if (err)
		return exit_status_for_error(err);
	err = vm__run(vm, b->timeout_s * 1000U, &why);
	vm__free(vm);
	if (err)
		return EXIT_INTERNAL;
	return exit_status_for_vm(why);
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
	}
	return EXIT_INTERNAL;
}
