// SPDX-License-Identifier: Apache-2.0
/*
 * Minimal guest PID 1: mounts the pseudo filesystems, reports itself and the vCPU count, runs the
 * command given after "--" on the kernel command line if any, then, with sandbox.agent, serves
 * one function invocation over vsock (agent.c); then powers off.
 */

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"

#define AGENT_PARAM "sandbox.agent"
#define TEST_PARAM "sandbox.test="
#define COUNT_PARAM "sandbox.count="
#define INTERVAL_PARAM "sandbox.interval_ms="
/* What the host waits for before it snapshots a guest (sandbox snapshot create). */
#define READY_LINE "sandbox: ready"
/* Commands find busybox's applets here; the kernel gives PID 1 no PATH. */
#define COMMAND_PATH "/bin:/sbin"

enum test_mode {
	TEST_NONE,
	TEST_PANIC,
	TEST_HANG,
	TEST_REBOOT,
	TEST_COUNT,
};

/* What the kernel command line asks of init. */
struct opts {
	enum test_mode mode;
	bool agent; /* sandbox.agent */
	/* sandbox.test=count: how far and how fast to count. */
	unsigned long limit;
	unsigned long interval_ms;
};

static void log_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void log_err(const char *fmt, ...)
{
	va_list ap;

	dprintf(STDERR_FILENO, "init: ");
	va_start(ap, fmt);
	vdprintf(STDERR_FILENO, fmt, ap);
	va_end(ap);
	dprintf(STDERR_FILENO, "\n");
}

/* The initramfs may lack the mount point; an existing one is fine. */
static int mount_fs(const char *type, const char *dir)
{
	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		return -errno;
	/* EBUSY: the kernel already mounted it (DEVTMPFS_MOUNT with a disk root). */
	if (mount(type, dir, type, MS_NOSUID | MS_NOEXEC, NULL) < 0 &&
	    errno != EBUSY)
		return -errno;
	return 0;
}

static int mount_all(void)
{
	static const char *const fs[][2] = {
		{ "devtmpfs", "/dev" },
		{ "proc", "/proc" },
		{ "sysfs", "/sys" },
	};
	int ret = 0;

	/* Keep going after a failure so the console and the vCPU count still have a chance. */
	for (size_t i = 0; i < sizeof(fs) / sizeof(fs[0]); i++) {
		int err = mount_fs(fs[i][0], fs[i][1]);

		if (err < 0) {
			log_err("mount %s on %s: %s", fs[i][0], fs[i][1],
				strerror(-err));
			ret = err;
		}
	}
	return ret;
}

/*
 * The kernel hands PID 1 /dev/console as fds 0-2 only if it could open it from the initramfs;
 * otherwise open it ourselves from devtmpfs. These fds are inherited on purpose: no O_CLOEXEC.
 */
static void ensure_console(void)
{
	int fd;

	if (fcntl(STDOUT_FILENO, F_GETFD) >= 0)
		return;
	fd = open("/dev/console", O_RDWR | O_NOCTTY);
	if (fd < 0)
		return;
	for (int i = STDIN_FILENO; i <= STDERR_FILENO; i++)
		if (i != fd && fcntl(i, F_GETFD) < 0)
			dup2(fd, i);
	if (fd > STDERR_FILENO)
		close(fd);
}

static int read_file(const char *path, char *buf, size_t size)
{
	size_t len = 0;
	ssize_t n;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	while (len < size - 1) {
		n = read(fd, buf + len, size - 1 - len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			n = -errno;
			close(fd);
			return (int)n;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	close(fd);
	return (int)len;
}

/* Counts CPUs in a sysfs cpu list such as "0-1,3,5-7\n"; -EINVAL on anything else. */
static int count_cpu_list(const char *s)
{
	unsigned long first, last;
	int count = 0;
	char *end;

	while (*s && *s != '\n') {
		errno = 0;
		first = strtoul(s, &end, 10);
		if (end == s || errno)
			return -EINVAL;
		last = first;
		s = end;
		if (*s == '-') {
			s++;
			last = strtoul(s, &end, 10);
			if (end == s || errno || last < first)
				return -EINVAL;
			s = end;
		}
		if (last - first >= 65536)
			return -EINVAL;
		count += (int)(last - first + 1);
		if (count > 65536)
			return -EINVAL;
		if (*s == ',')
			s++;
		else if (*s && *s != '\n')
			return -EINVAL;
	}
	/* An empty list means sysfs is not what we expect, not a machine without CPUs. */
	return count ? count : -EINVAL;
}

static int online_cpus(void)
{
	char buf[256];
	int ret;

	ret = read_file("/sys/devices/system/cpu/online", buf, sizeof(buf));
	if (ret < 0)
		return ret;
	return count_cpu_list(buf);
}

/*
 * Splits the kernel command line where lib/cmdline.c next_arg() does: at blanks outside double
 * quotes. Terminates the word in place; NULL after the last one.
 */
static char *next_word(char **cursor)
{
	char *p = *cursor, *word;
	int in_quote = 0;

	while (*p == ' ' || *p == '\t' || *p == '\n')
		p++;
	if (!*p) {
		*cursor = p;
		return NULL;
	}
	word = p;
	for (; *p; p++) {
		if ((*p == ' ' || *p == '\t' || *p == '\n') && !in_quote)
			break;
		if (*p == '"')
			in_quote = !in_quote;
	}
	if (*p)
		*p++ = '\0';
	*cursor = p;
	return word;
}

/* parse_args() stops at "--", quoted or not: what follows is init's argv, not kernel parameters. */
static int is_dashes(const char *word)
{
	return !strcmp(word, "--") || !strcmp(word, "\"--\"");
}

/* The kernel does not pass dotted parameters to init, so the hook comes from /proc/cmdline. */
static unsigned long param_ulong(const char *val, unsigned long dflt,
				 unsigned long max)
{
	unsigned long v;
	char *end;

	errno = 0;
	v = strtoul(val, &end, 10);
	if (end == val || *end || errno || v > max) {
		log_err("ignoring bad number '%s'", val);
		return dflt;
	}
	return v;
}

static void parse_cmdline(struct opts *o)
{
	char buf[4096];
	char *word, *cursor = buf;
	const char *val;

	if (read_file("/proc/cmdline", buf, sizeof(buf)) < 0)
		return;
	while ((word = next_word(&cursor)) && !is_dashes(word)) {
		if (!strcmp(word, AGENT_PARAM))
			o->agent = true;
		if (!strncmp(word, COUNT_PARAM, strlen(COUNT_PARAM)))
			o->limit = param_ulong(word + strlen(COUNT_PARAM),
					       o->limit, 1000000000UL);
		if (!strncmp(word, INTERVAL_PARAM, strlen(INTERVAL_PARAM)))
			o->interval_ms =
				param_ulong(word + strlen(INTERVAL_PARAM),
					    o->interval_ms, 3600000UL);
		if (strncmp(word, TEST_PARAM, strlen(TEST_PARAM)) != 0)
			continue;
		val = word + strlen(TEST_PARAM);
		if (!strcmp(val, "panic"))
			o->mode = TEST_PANIC;
		else if (!strcmp(val, "hang"))
			o->mode = TEST_HANG;
		else if (!strcmp(val, "reboot"))
			o->mode = TEST_REBOOT;
		else if (!strcmp(val, "count"))
			o->mode = TEST_COUNT;
		else
			log_err("ignoring unknown %s%s", TEST_PARAM, val);
	}
}

/*
 * The command to run: the words after "--" on the kernel command line, up to a second "--" where
 * the kernel stops too, which it appends to init's argv. It also puts there, first, any unknown
 * parameter without '=' or '.' from before the "--" (a typo such as "quite"); those are dropped
 * rather than run, so the command is the last words of argv, as many as /proc/cmdline has between
 * the dashes. NULL when there is no command.
 */
static char **command(int argc, char **argv)
{
	char buf[4096];
	char *word, *cursor = buf;
	int words = 0;

	if (argc < 2)
		return NULL;
	if (read_file("/proc/cmdline", buf, sizeof(buf)) < 0) {
		/* Cannot tell strays from the command: run all of argv, as the kernel passed it. */
		return argv + 1;
	}
	while ((word = next_word(&cursor)) && !is_dashes(word))
		;
	while (word && (word = next_word(&cursor)) && !is_dashes(word))
		words++;
	/* /proc/cmdline disagrees with argv: run what the kernel passed rather than guess. */
	if (words > argc - 1)
		return argv + 1;
	for (int i = 1; i < argc - words; i++)
		log_err("ignoring kernel parameter '%s' passed to init",
			argv[i]);
	return words ? argv + argc - words : NULL;
}

/*
 * A guest whose progress shows on the console: the ready line (a snapshot is taken there), then
 * "count N" for N = 1..limit, one every interval. A guest restored from that snapshot must go on
 * from where it was, not start again.
 */
static void count(const struct opts *o)
{
	struct timespec ts = {
		.tv_sec = (time_t)(o->interval_ms / 1000),
		.tv_nsec = (long)(o->interval_ms % 1000) * 1000000L,
	};

	dprintf(STDOUT_FILENO, "%s\n", READY_LINE);
	for (unsigned long i = 1; i <= o->limit; i++) {
		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
		ts.tv_sec = (time_t)(o->interval_ms / 1000);
		ts.tv_nsec = (long)(o->interval_ms % 1000) * 1000000L;
		dprintf(STDOUT_FILENO, "count %lu\n", i);
	}
}

/* Runs argv in a child on the console and reports how it ended. */
static void run_command(char **argv)
{
	int status;
	pid_t pid, w;

	pid = fork();
	if (pid < 0) {
		log_err("fork: %s", strerror(errno));
		return;
	}
	if (pid == 0) {
		/*
		 * The kernel's environment (HOME, TERM and any unknown name=value parameters) is
		 * kept; only PATH is missing. fds 0-2 are the console, inherited.
		 */
		setenv("PATH", COMMAND_PATH, 1);
		execvp(argv[0], argv);
		log_err("exec %s: %s", argv[0], strerror(errno));
		/* The shell's codes: 127 not found, 126 found but not runnable. */
		_exit(errno == ENOENT ? 127 : 126);
	}
	/* As PID 1 we also inherit the command's orphans: reap them while waiting. */
	do {
		w = wait(&status);
	} while ((w >= 0 && w != pid) || (w < 0 && errno == EINTR));
	if (w < 0)
		log_err("wait: %s", strerror(errno));
	else if (WIFEXITED(status))
		dprintf(STDOUT_FILENO, "init: command exited with status %d\n",
			WEXITSTATUS(status));
	else
		dprintf(STDOUT_FILENO, "init: command killed by signal %d\n",
			WTERMSIG(status));
}

/*
 * How the guest ends its VM: a reboot, which every VMM of ours ends the VM on. A power-off
 * would do on arm64 (PSCI SYSTEM_OFF), but an x86 guest without ACPI cannot power off: the
 * kernel turns RB_POWER_OFF into a halt the VMM never sees. The reboot goes through the i8042
 * reset there (reboot=k), which the VMM tells from a panic by the warm-reset flag.
 */
#define VM_END RB_AUTOBOOT

/* How long the end of the guest waits for the console's output to reach the UART. */
#define CONSOLE_DRAIN_MS 2000

/*
 * Waits up to @ms for the console's tty buffer to empty, looking every 5 ms. Past that, silently:
 * a message about it would only wait in the same full buffer.
 */
static void drain_console(unsigned int ms)
{
	struct timespec step = { 0, 5000000 };
	int queued;

	for (unsigned int waited = 0; waited < ms; waited += 5) {
		/* Not a tty (no console): nothing to wait for. */
		if (ioctl(STDOUT_FILENO, TIOCOUTQ, &queued) < 0 || queued <= 0)
			return;
		nanosleep(&step, NULL);
	}
}

/*
 * Leaves a disk root clean before the power goes: processes the command left behind could still
 * write after sync() and would keep the remount busy, so they go first. Remounting read-only
 * flushes the filesystem and marks it cleanly unmounted (no journal replay, no fsck warning on
 * the next boot). Last the console: a write() to it returns once the bytes are in the tty
 * layer's buffer, which the UART driver empties a FIFO load per interrupt; a reboot right after
 * would lose the output's end. So we wait until the UART took everything, but not for ever: a
 * host that stopped reading the console would hold the guest until the VMM's --timeout, where
 * a reboot lets the VMM flush or drop the rest within its own limit.
 */
static void quiesce(void)
{
	if (kill(-1, SIGKILL) == 0)
		while (wait(NULL) > 0 || errno == EINTR)
			;
	sync();
	if (mount(NULL, "/", NULL, MS_REMOUNT | MS_RDONLY, NULL) < 0)
		log_err("remount / read-only: %s", strerror(errno));
	drain_console(CONSOLE_DRAIN_MS);
}

/*
 * Agent mode: the invocation's function runs with its stdio on vsock, not on the console. A
 * script function's interpreter opens /dev/fd/N, which devtmpfs does not provide.
 */
static void run_agent(void)
{
	struct agent_hooks hooks;

	if (symlink("/proc/self/fd", "/dev/fd") < 0 && errno != EEXIST)
		log_err("symlink /dev/fd: %s", strerror(errno));
	agent__system_hooks(&hooks);
	/* agent__main() said what failed; the VM powers off either way. */
	if (agent__main(&hooks) < 0)
		log_err("agent: invocation failed, powering off");
}

int main(int argc, char **argv)
{
	struct opts opts = { .limit = 100, .interval_ms = 20 };
	char **cmd;
	int cpus;

	/* INIT's warm-up runs this binary again: it must not act as init. */
	if (agent__warm_main(argc, argv) >= 0)
		return 0;
	mount_all();
	ensure_console();

	dprintf(STDOUT_FILENO, "Hello from Linux!\n");
	cpus = online_cpus();
	if (cpus < 0)
		log_err("counting online CPUs: %s", strerror(-cpus));
	else
		dprintf(STDOUT_FILENO, "vcpus: %d\n", cpus);

	parse_cmdline(&opts);
	cmd = command(argc, argv);
	/* The test hooks below still apply after a command, so a test can combine both. */
	if (cmd)
		run_command(cmd);

	if (opts.agent) {
		if (opts.mode != TEST_NONE)
			log_err("ignoring %s with %s", TEST_PARAM, AGENT_PARAM);
		run_agent();
		opts.mode = TEST_NONE;
	}

	switch (opts.mode) {
	case TEST_PANIC:
		/* PID 1 exiting panics the kernel: the VMM must report a guest panic. */
		log_err("sandbox.test=panic: exiting PID 1");
		return 1;
	case TEST_HANG:
		/* Never powers off: the VMM's --timeout must end the VM. */
		log_err("sandbox.test=hang: looping forever");
		for (;;)
			pause();
	case TEST_REBOOT:
		quiesce();
		reboot(RB_AUTOBOOT);
		break;
	case TEST_COUNT:
		count(&opts);
		quiesce();
		reboot(VM_END);
		break;
	case TEST_NONE:
		quiesce();
		reboot(VM_END);
		break;
	}
	/*
	 * reboot() only returns on failure. Exiting then panics the kernel, which the VMM reports,
	 * rather than leaving a silent guest for the timeout to find.
	 */
	log_err("reboot: %s", strerror(errno));
	return 1;
}
