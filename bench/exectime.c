// SPDX-License-Identifier: Apache-2.0
// Times one command from fork to reaped, checks its standard output, passes on our timing lines.
//
// Usage: exectime [-t SEC] [-l LOG] [-o LINE] -- CMD [ARG...]
//   -t SEC   kill CMD (SIGKILL) after SEC seconds (default 60): error=timeout
//   -l LOG   append CMD's stdout and stderr to LOG, for a failed run's diagnosis
//   -o LINE  CMD's whole stdout must be LINE and one newline; out=ok, else out=bad
//            (out=none without -o)
// CMD runs with stdin /dev/null and its stdout and stderr on pipes read by us: the same
// fork + execvp + wait for every side, so that what differs between two commands is theirs.
// Lines on CMD's stderr of the form "sandbox-timing: KEY=VALUE ..." are passed on as KEY=VALUE
// (times there count from CMD's own main()). Output, one line on stdout:
//   rc=N wall_ms=T eof_ms=T user_ms=U sys_ms=S maxrss_kb=K out=ok|bad|none [KEY=VALUE...]
//   [error=WORD]
// wall_ms: CLOCK_MONOTONIC from just before fork() until wait4() returned the exit status;
// eof_ms: until both pipes reached EOF (every writer closed them); user_ms, sys_ms, maxrss_kb:
// CMD's rusage from wait4 (its reaped descendants included). Exit status: CMD's (128+N when
// killed by signal N), 124 when the time ran out, 125 when the output was wrong (and CMD said 0)
// or exectime itself could not run, 2 bad usage.
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TIMING_PREFIX "sandbox-timing:"
#define OUT_MAX 65536
#define LINE_MAX_LEN 4096
#define EXTRA_MAX 2048

struct run {
	struct timespec t0;
	int log_fd;
	char out[OUT_MAX];
	size_t out_len;
	bool out_overflow;
	char line[LINE_MAX_LEN];
	size_t line_len;
	char extra[EXTRA_MAX];
	size_t extra_len;
	const char *error;
};

static double now_ms(const struct run *r)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)(ts.tv_sec - r->t0.tv_sec) * 1e3 +
	       (double)(ts.tv_nsec - r->t0.tv_nsec) / 1e6;
}

/* Keeps a token only if it is plain KEY=VALUE: the result line must stay parseable. */
static void add_extra(struct run *r, const char *tok, size_t len)
{
	const char *eq = memchr(tok, '=', len);

	if (!eq || eq == tok || len + 2 > EXTRA_MAX - r->extra_len)
		return;
	for (size_t i = 0; i < len; i++) {
		char c = tok[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '_' || c == '.' ||
		      c == '-' || c == '=' || c == '/' || c == ':'))
			return;
	}
	r->extra[r->extra_len++] = ' ';
	memcpy(r->extra + r->extra_len, tok, len);
	r->extra_len += len;
	r->extra[r->extra_len] = '\0';
}

static void err_line(struct run *r, const char *s)
{
	if (strncmp(s, TIMING_PREFIX, strlen(TIMING_PREFIX)))
		return;
	s += strlen(TIMING_PREFIX);
	while (*s) {
		size_t len;

		while (*s == ' ' || *s == '\t')
			s++;
		len = strcspn(s, " \t\r\n");
		if (len == 0)
			break;
		add_extra(r, s, len);
		s += len;
	}
}

static void err_bytes(struct run *r, const char *p, size_t n, bool eof)
{
	for (size_t i = 0; i < n; i++) {
		/* An overlong line is cut: no timing line is that long. */
		if (p[i] != '\n' && r->line_len < sizeof(r->line) - 1) {
			r->line[r->line_len++] = p[i];
			continue;
		}
		if (p[i] != '\n')
			continue;
		r->line[r->line_len] = '\0';
		err_line(r, r->line);
		r->line_len = 0;
	}
	if (eof && r->line_len) {
		r->line[r->line_len] = '\0';
		err_line(r, r->line);
		r->line_len = 0;
	}
}

enum got { GOT_DATA, GOT_NOTHING, GOT_EOF };

/* Reads what is there (the pipes are non-blocking); GOT_EOF at EOF or on an error. */
static enum got drain(struct run *r, int fd, bool is_out)
{
	char buf[8192];
	ssize_t n = read(fd, buf, sizeof(buf));

	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return GOT_NOTHING;
	if (n <= 0) {
		if (!is_out)
			err_bytes(r, buf, 0, true);
		return GOT_EOF;
	}
	if (r->log_fd >= 0 && write(r->log_fd, buf, (size_t)n) < 0)
		r->log_fd = -1;
	if (!is_out) {
		err_bytes(r, buf, (size_t)n, false);
		return GOT_DATA;
	}
	if ((size_t)n > OUT_MAX - r->out_len) {
		r->out_overflow = true;
		n = (ssize_t)(OUT_MAX - r->out_len);
	}
	memcpy(r->out + r->out_len, buf, (size_t)n);
	r->out_len += (size_t)n;
	return GOT_DATA;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: exectime [-t SEC] [-l LOG] [-o LINE] -- CMD [ARG...]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static struct run r = { .log_fd = -1 };
	const char *expect = NULL;
	int out[2], err[2], opt, status = 0, rc, pidfd;
	bool out_open = true, err_open = true, killed = false;
	double limit = 60e3, eof = -1, wall;
	struct rusage ru;
	pid_t pid;

	while ((opt = getopt(argc, argv, "+t:l:o:")) != -1) {
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
		case 'o':
			expect = optarg;
			break;
		default:
			usage();
		}
	}
	if (optind >= argc)
		usage();

	if (pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0) {
		perror("pipe2");
		return 125;
	}
	clock_gettime(CLOCK_MONOTONIC, &r.t0);
	pid = fork();
	if (pid < 0) {
		perror("fork");
		return 125;
	}
	if (pid == 0) {
		int null = open("/dev/null", O_RDONLY);

		if (null < 0 || dup2(null, 0) < 0 || dup2(out[1], 1) < 0 ||
		    dup2(err[1], 2) < 0)
			_exit(125);
		execvp(argv[optind], argv + optind);
		dprintf(2, "exectime: exec %s: %s\n", argv[optind],
			strerror(errno));
		_exit(127);
	}
	close(out[1]);
	close(err[1]);
	fcntl(out[0], F_SETFL, O_NONBLOCK);
	fcntl(err[0], F_SETFL, O_NONBLOCK);
	/* The child's exit as an fd: the time limit holds while we wait for it too. */
	pidfd = (int)syscall(SYS_pidfd_open, pid, 0);

	for (;;) {
		struct pollfd p[3];
		int np = 0, wait_ms;
		double left = limit - now_ms(&r);
		bool gone = false;

		if (!out_open && !err_open) {
			if (eof < 0)
				eof = now_ms(&r);
			if (pidfd < 0)
				break; /* wait4 blocks below, without the limit */
		}
		if (left <= 0 && !killed) {
			kill(pid, SIGKILL);
			killed = true;
			if (!r.error)
				r.error = "timeout";
		}
		if (out_open)
			p[np++] = (struct pollfd){ .fd = out[0],
						   .events = POLLIN };
		if (err_open)
			p[np++] = (struct pollfd){ .fd = err[0],
						   .events = POLLIN };
		if (pidfd >= 0)
			p[np++] = (struct pollfd){ .fd = pidfd,
						   .events = POLLIN };
		wait_ms = killed ? -1 : (int)left + 1;
		if (poll(p, (nfds_t)np, wait_ms) < 0) {
			if (errno == EINTR)
				continue;
			perror("poll");
			kill(pid, SIGKILL);
			return 125;
		}
		for (int i = 0; i < np; i++) {
			if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			if (p[i].fd == out[0])
				out_open = drain(&r, out[0], true) != GOT_EOF;
			else if (p[i].fd == err[0])
				err_open = drain(&r, err[0], false) != GOT_EOF;
			else
				gone = true;
		}
		if (!gone)
			continue;
		/* Exited: what it wrote last may still be in the pipes. A descendant that keeps
		 * them open does not hold us up (eof_ms then stays unset). */
		for (enum got g = GOT_DATA; out_open && g == GOT_DATA;) {
			g = drain(&r, out[0], true);
			out_open = g != GOT_EOF;
		}
		for (enum got g = GOT_DATA; err_open && g == GOT_DATA;) {
			g = drain(&r, err[0], false);
			err_open = g != GOT_EOF;
		}
		if (!out_open && !err_open && eof < 0)
			eof = now_ms(&r);
		break;
	}
	if (wait4(pid, &status, 0, &ru) < 0) {
		perror("wait4");
		return 125;
	}
	wall = now_ms(&r);
	if (pidfd >= 0)
		close(pidfd);

	rc = WIFEXITED(status)	   ? WEXITSTATUS(status)
	     : WIFSIGNALED(status) ? 128 + WTERMSIG(status)
				   : 125;
	printf("rc=%d wall_ms=%.3f", rc, wall);
	if (eof >= 0)
		printf(" eof_ms=%.3f", eof);
	printf(" user_ms=%.1f sys_ms=%.1f maxrss_kb=%ld",
	       (double)ru.ru_utime.tv_sec * 1e3 + ru.ru_utime.tv_usec / 1e3,
	       (double)ru.ru_stime.tv_sec * 1e3 + ru.ru_stime.tv_usec / 1e3,
	       ru.ru_maxrss);
	if (expect) {
		size_t len = strlen(expect);
		bool ok = !r.out_overflow && r.out_len == len + 1 &&
			  !memcmp(r.out, expect, len) && r.out[len] == '\n';

		printf(" out=%s", ok ? "ok" : "bad");
		if (!ok && !r.error)
			r.error = "wrong-output";
	} else {
		printf(" out=none");
	}
	printf("%s", r.extra);
	if (r.error)
		printf(" error=%s", r.error);
	printf("\n");
	fflush(stdout);
	if (r.error && !strcmp(r.error, "timeout"))
		return 124;
	if (r.error && rc == 0)
		return 125;
	return rc;
}
