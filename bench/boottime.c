// SPDX-License-Identifier: Apache-2.0
// boottime: starts a VMM, times its console up to the guest init's first line, kills it, reaps it.
//
// Usage: boottime [-t SEC] [-l LOG] [-w LINE] [-k PREFIX] -- CMD [ARG...]
//   -t SEC     give up after SEC seconds: SIGKILL, error=timeout                (60)
//   -l LOG     append CMD's stdout and stderr to LOG                             (none)
//   -w LINE    the line that ends the run (carriage returns ignored): its arrival gives
//              init_ms and CMD's resident set size then (rss_kb, VmRSS); then CMD's process
//              group gets SIGKILL and every process of it is reaped   ("Hello from Linux!")
//   -k PREFIX  the first line starting with PREFIX gives kernel_ms; "" for none
//              ("[": a printk time stamp, CONFIG_PRINTK_TIME)
// CMD runs in a process group of its own with stdin /dev/null, its stdout and stderr on pipes
// read by us; we are a child subreaper, so whatever CMD forks comes back to us to be reaped.
// All times are ms of CLOCK_MONOTONIC since just before fork(). Output, one line on stdout:
//   rc=N wall_ms=T [first_ms=T first=TEXT] [kernel_ms=T] [init_ms=T rss_kb=K] user_ms=U
//   sys_ms=S maxrss_kb=K left=N [error=WORD]
// rc: 0 when LINE arrived (we killed CMD then), else CMD's own status (128+N for signal N);
// first: the first output line of any kind (blanks and other odd bytes as '_', cut at 40);
// wall_ms: until the last process was reaped; user_ms, sys_ms, maxrss_kb: CMD's rusage from
// wait4; left: our children still there 5 s after the SIGKILL (0: nothing was left behind).
// Exit status: 0 when LINE arrived and nothing was left, 124 when the time ran out, 125 when
// CMD ended without LINE (error=no-line), left something (error=left-behind) or could not run;
// 2 bad usage.
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define LINE_MAX_LEN 4096
#define FIRST_MAX 40
/* How long the killed processes get to disappear before they count as left behind. */
#define REAP_MS 5000

struct linebuf {
	char buf[LINE_MAX_LEN];
	size_t len;
};

struct run {
	struct timespec t0;
	pid_t pid;
	int log_fd;
	const char *want;
	const char *kernel_prefix;
	/* results; < 0: not seen */
	double first, kernel, init;
	long rss_kb;
	char first_text[FIRST_MAX + 1];
	const char *error;
};

static double now_ms(const struct run *r)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)(ts.tv_sec - r->t0.tv_sec) * 1e3 +
	       (double)(ts.tv_nsec - r->t0.tv_nsec) / 1e6;
}

static long rss_kb(pid_t pid)
{
	char path[64], buf[4096];
	ssize_t n;
	char *p;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	p = strstr(buf, "\nVmRSS:");
	return p ? strtol(p + 7, NULL, 10) : -1;
}

/* The result line must stay KEY=VALUE words: the first line's text is made one word. */
static void keep_first(struct run *r, const char *line)
{
	size_t i;

	for (i = 0; i < FIRST_MAX && line[i]; i++) {
		char c = line[i];
		bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			     (c >= '0' && c <= '9') || c == '.' || c == '-' ||
			     c == ':' || c == '/' || c == '!' || c == '[' ||
			     c == ']';

		r->first_text[i] = plain ? c : '_';
	}
	r->first_text[i] = '\0';
}

static void output_line(struct run *r, char *line)
{
	char *w = line;

	/* Serial consoles end lines with "\r\n"; QEMU and we pass them on as the guest wrote. */
	for (char *p = line; *p; p++)
		if (*p != '\r' && *p != '\n')
			*w++ = *p;
	*w = '\0';
	if (r->first < 0 && line[0]) {
		r->first = now_ms(r);
		keep_first(r, line);
	}
	if (r->kernel < 0 && r->kernel_prefix &&
	    !strncmp(line, r->kernel_prefix, strlen(r->kernel_prefix)))
		r->kernel = now_ms(r);
	if (r->init < 0 && !strcmp(line, r->want)) {
		r->init = now_ms(r);
		r->rss_kb = rss_kb(r->pid);
	}
}

/*
 * Reads what is there from fd into lb and hands on each complete line (a full buffer counts as
 * a line). Returns false at EOF or error.
 */
static bool drain(struct run *r, int fd, struct linebuf *lb)
{
	ssize_t n;

	n = read(fd, lb->buf + lb->len, sizeof(lb->buf) - 1 - lb->len);
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return true;
	if (n <= 0) {
		if (lb->len) {
			lb->buf[lb->len] = '\0';
			output_line(r, lb->buf);
			lb->len = 0;
		}
		return false;
	}
	if (r->log_fd >= 0 &&
	    write(r->log_fd, lb->buf + lb->len, (size_t)n) < 0)
		r->log_fd = -1;
	lb->len += (size_t)n;
	for (;;) {
		char *nl = memchr(lb->buf, '\n', lb->len);
		size_t used;

		if (!nl && lb->len < sizeof(lb->buf) - 1)
			break;
		used = nl ? (size_t)(nl - lb->buf) + 1 : lb->len;
		lb->buf[used - 1 + (nl ? 0 : 1)] = '\0';
		output_line(r, lb->buf);
		memmove(lb->buf, lb->buf + used, lb->len - used);
		lb->len -= used;
	}
	return true;
}

/*
 * Counts our children still alive or unreaped, from /proc: what the SIGKILL of CMD's group left
 * behind (another group, or a process stuck in the kernel). Each gets its own SIGKILL: the
 * result is reported, the processes are not kept.
 */
static int sweep_children(void)
{
	pid_t self = getpid();
	struct dirent *de;
	int n = 0;
	DIR *d;

	d = opendir("/proc");
	if (!d)
		return -1;
	while ((de = readdir(d))) {
		char path[300], buf[512], *p;
		ssize_t len;
		int fd, ppid;

		if (de->d_name[0] < '1' || de->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/stat", de->d_name);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		len = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (len <= 0)
			continue;
		buf[len] = '\0';
		/* "pid (comm) state ppid ...": comm may hold blanks and parentheses. */
		p = strrchr(buf, ')');
		if (p && sscanf(p + 1, " %*c %d", &ppid) == 1 && ppid == self) {
			kill(atoi(de->d_name), SIGKILL);
			n++;
		}
	}
	closedir(d);
	return n;
}

/*
 * Kills CMD's process group and reaps every child (CMD's status and rusage into *status and
 * *ru when it is reaped here). Returns how many children were still there after REAP_MS.
 */
static int kill_and_reap(struct run *r, bool *reaped, int *status,
			 struct rusage *ru)
{
	double deadline = now_ms(r) + REAP_MS;

	kill(-r->pid, SIGKILL);
	/* Not after it was reaped: its pid may be another process's by now. */
	if (!*reaped)
		kill(r->pid, SIGKILL);
	for (;;) {
		int st;
		struct rusage u;
		pid_t p = wait4(-1, &st, WNOHANG, &u);

		if (p == r->pid) {
			*reaped = true;
			*status = st;
			*ru = u;
		}
		if (p > 0)
			continue;
		if (p < 0 && errno == EINTR)
			continue;
		if (p < 0)
			return 0; /* ECHILD: nothing left */
		if (now_ms(r) > deadline) {
			int n = sweep_children();

			/* Reaped if they go within a second; either way, reported. */
			for (int i = 0; i < 1000; i++) {
				if (waitpid(-1, NULL, WNOHANG) < 0 &&
				    errno == ECHILD)
					break;
				usleep(1000);
			}
			return n;
		}
		usleep(1000);
	}
}

static void print_ms(const char *key, double v)
{
	if (v >= 0)
		printf(" %s=%.1f", key, v);
}

static double tv_ms(const struct timeval *tv)
{
	return (double)tv->tv_sec * 1e3 + (double)tv->tv_usec / 1e3;
}

static void usage(void)
{
	fprintf(stderr, "usage: boottime [-t SEC] [-l LOG] [-w LINE] "
			"[-k PREFIX] -- CMD [ARG...]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static struct linebuf ob, eb;
	struct run r = {
		.log_fd = -1,
		.want = "Hello from Linux!",
		.kernel_prefix = "[",
		.first = -1,
		.kernel = -1,
		.init = -1,
		.rss_kb = -1,
	};
	int out[2], err[2], opt, status = 0, rc, left;
	bool out_open = true, err_open = true, reaped = false,
	     timed_out = false;
	double limit = 60e3;
	struct rusage ru = { 0 };

	while ((opt = getopt(argc, argv, "+t:l:w:k:")) != -1) {
		switch (opt) {
		case 't':
			limit = strtod(optarg, NULL) * 1e3;
			if (!(limit > 0))
				usage();
			break;
		case 'l':
			r.log_fd =
				open(optarg,
				     O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
				     0644);
			if (r.log_fd < 0) {
				perror(optarg);
				return 125;
			}
			break;
		case 'w':
			if (!optarg[0])
				usage();
			r.want = optarg;
			break;
		case 'k':
			r.kernel_prefix = optarg[0] ? optarg : NULL;
			break;
		default:
			usage();
		}
	}
	if (optind >= argc)
		usage();

	/* Whatever CMD forks and leaves behind is reparented to us, not to PID 1. */
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0) {
		perror("PR_SET_CHILD_SUBREAPER");
		return 125;
	}
	if (pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0) {
		perror("pipe2");
		return 125;
	}
	clock_gettime(CLOCK_MONOTONIC, &r.t0);
	r.pid = fork();
	if (r.pid < 0) {
		perror("fork");
		return 125;
	}
	if (r.pid == 0) {
		int null = open("/dev/null", O_RDONLY);

		if (setpgid(0, 0) < 0 || null < 0 || dup2(null, 0) < 0 ||
		    dup2(out[1], 1) < 0 || dup2(err[1], 2) < 0)
			_exit(125);
		execvp(argv[optind], argv + optind);
		dprintf(2, "boottime: exec %s: %s\n", argv[optind],
			strerror(errno));
		_exit(127);
	}
	/* Both sides set the group: a kill right after fork() must not miss it. */
	setpgid(r.pid, r.pid);
	close(out[1]);
	close(err[1]);
	fcntl(out[0], F_SETFL, O_NONBLOCK);
	fcntl(err[0], F_SETFL, O_NONBLOCK);

	/* Until the line, the end of CMD's output (it exited, or closed both), or the limit. */
	while (r.init < 0 && (out_open || err_open)) {
		struct pollfd p[2];
		int np = 0;
		double t = now_ms(&r);

		if (t > limit) {
			timed_out = true;
			break;
		}
		if (out_open)
			p[np++] = (struct pollfd){ .fd = out[0],
						   .events = POLLIN };
		if (err_open)
			p[np++] = (struct pollfd){ .fd = err[0],
						   .events = POLLIN };
		if (poll(p, (nfds_t)np, (int)(limit - t) + 1) < 0 &&
		    errno != EINTR) {
			perror("poll");
			r.error = "poll";
			break;
		}
		for (int i = 0; i < np; i++) {
			if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			if (p[i].fd == out[0])
				out_open = drain(&r, out[0], &ob);
			else
				err_open = drain(&r, err[0], &eb);
			if (r.init >= 0)
				break;
		}
	}
	/* A CMD that closed its output without exiting still ends here: at the limit. */
	if (r.init < 0 && !timed_out && !r.error) {
		while (now_ms(&r) < limit &&
		       wait4(r.pid, &status, WNOHANG, &ru) == 0)
			usleep(1000);
		if (now_ms(&r) >= limit)
			timed_out = true;
		else
			reaped = true;
	}
	left = kill_and_reap(&r, &reaped, &status, &ru);
	close(out[0]);
	close(err[0]);

	if (r.init >= 0)
		rc = 0;
	else if (!reaped)
		rc = 125;
	else
		rc = WIFEXITED(status)	   ? WEXITSTATUS(status)
		     : WIFSIGNALED(status) ? 128 + WTERMSIG(status)
					   : 125;
	if (timed_out)
		r.error = "timeout";
	else if (r.init < 0 && !r.error)
		r.error = "no-line";
	if (left != 0 && !r.error)
		r.error = "left-behind";

	printf("rc=%d", rc);
	print_ms("wall_ms", now_ms(&r));
	if (r.first >= 0) {
		print_ms("first_ms", r.first);
		printf(" first=%s", r.first_text);
	}
	print_ms("kernel_ms", r.kernel);
	if (r.init >= 0) {
		print_ms("init_ms", r.init);
		if (r.rss_kb >= 0)
			printf(" rss_kb=%ld", r.rss_kb);
	}
	if (reaped) {
		printf(" user_ms=%.1f sys_ms=%.1f maxrss_kb=%ld",
		       tv_ms(&ru.ru_utime), tv_ms(&ru.ru_stime), ru.ru_maxrss);
	}
	printf(" left=%d", left);
	if (r.error)
		printf(" error=%s", r.error);
	printf("\n");
	fflush(stdout);
	if (timed_out)
		return 124;
	return r.error ? 125 : 0;
}
