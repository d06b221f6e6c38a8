// SPDX-License-Identifier: Apache-2.0
// The sandbox command: parses the command line, runs a sub-command, chooses the exit status.
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "../pool/pool.h"
#include "../vmm/log.h"
#include "../vmm/vm.h"
#include "launcher.h"

#ifndef SANDBOX_VERSION
#define SANDBOX_VERSION "unknown"
#endif

static int cmd_boot(const struct boot_opts *b)
{
	struct boot_config bc;
	enum vm_exit why = VM_EXIT_NONE;
	struct vm *vm;
	int err;

	err = launcher__boot_config(b, &bc);
	if (err)
		return err;
	err = vm__new(&bc.cfg, &vm);
	if (err)
		return launcher__exit_for_error(err);
	err = vm__run(vm, b->timeout_s * 1000U, &why);
	vm__free(vm);
	if (err)
		return EXIT_INTERNAL;
	return launcher__exit_for_vm(why);
}

/*
 * fds 0-2 closed by our parent would be reused by the first files we open
 * (a snapshot read as the function's stdin, messages written into a lock
 * file): they become /dev/null instead.
 */
static void open_std_fds(void)
{
	for (int fd = 0; fd <= 2; fd++) {
		int n;

		if (fcntl(fd, F_GETFD) >= 0)
			continue;
		n = open("/dev/null", fd ? O_WRONLY : O_RDONLY);
		if (n >= 0 && n != fd) {
			dup2(n, fd);
			close(n);
		}
	}
}

int main(int argc, char *argv[])
{
	char err[256];
	struct cli cli;

	open_std_fds();
	/* A reader that went away is an error on that write, not our death. */
	signal(SIGPIPE, SIG_IGN);

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
		return launcher__snapshot_create(&cli);
	case CLI_SNAPSHOT_INSPECT:
		return launcher__snapshot_inspect(cli.snap.output);
	case CLI_SNAPSHOT_ANALYZE:
		return launcher__snapshot_analyze(&cli.analyze);
	case CLI_RESTORE:
		return launcher__restore(&cli.restore);
	case CLI_RUN:
		return launcher__run(&cli.run);
	case CLI_POOL_START:
		return pool__daemon(&cli.pool);
	case CLI_POOL_STATUS:
		return pool__client_status(&cli.pool);
	case CLI_POOL_STOP:
		return pool__client_stop(&cli.pool);
	}
	return EXIT_INTERNAL;
}
