// SPDX-License-Identifier: Apache-2.0
// snaptime: runs a VMM, timestamps its output lines and QMP events; prints one result line.
//
// Usage: snaptime [-t SEC] [-l LOG] [-f PREFIX] [-e LINE] [-q SOCK -s URI | -q SOCK -i URI]
//                 -- CMD [ARG...]
//   -t  kill CMD (SIGKILL) after SEC seconds                                  (60)
//   -l  append all CMD writes (stdout and stderr) to LOG, and the QMP traffic as lines
//       "QMP> " (sent) and "QMP< " (received)                                (none)
//   -f  the first output line starting with PREFIX gives first_ms, and CMD's resident set
//       size at that moment rss_kb (VmRSS); "" for none                     ("count ")
//   -e  a line equal to LINE sets last=1: the guest got to its end             (none)
//   -q  CMD is QEMU with "-qmp unix:SOCK,server=on,wait=off": connect, negotiate (qmp_ms),
//       then, with
//   -s  save: at the line "sandbox: ready", QMP stop, migrate to URI, poll query-migrate
//       until it completes (stop_ms; save_ms from stop to completed), quit
//   -i  restore: QEMU runs with "-incoming defer"; migrate-incoming from URI; the RESUME
//       event gives running_ms, the VM running: its first guest instruction
// Lines on CMD's stdout or stderr of the form "sandbox-timing: KEY=VALUE ..." are passed on as
// KEY=VALUE; timing_ms is when the one with restore_ms= arrived.
// All times are milliseconds of CLOCK_MONOTONIC since just before fork(). Output, on stdout:
//   rc=N wall_ms=T [ready_line_ms=T] [first_ms=T first=LINE rss_kb=K] [last=0|1] [qmp_ms=T]
//   [running_ms=T] [stop_ms=T save_ms=T] [timing_ms=T] [KEY=VALUE...] [error=WORD]
// (LINE with blanks as '_'); ready_line_ms is when "sandbox: ready" was seen. Exit status: CMD's (128+N when killed by signal N), 124 when the
// time ran out, 125 when a QMP step failed or snaptime itself could not run; 2 bad usage.
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define READY_LINE "sandbox: ready"
#define TIMING_PREFIX "sandbox-timing:"
#define LINE_MAX_LEN 4096
#define EXTRA_MAX 2048
/* How often a save polls query-migrate. */
#define POLL_MIGRATE_MS 5

enum qmp_mode { QMP_NONE, QMP_SAVE, QMP_RESTORE };

/* QMP progress; each state waits for one reply (or, in IDLE/RUNNING, for nothing). */
enum qmp_state {
	Q_CONNECT,
	Q_GREETING,
	Q_CAPS,
	Q_IDLE, /* negotiated, nothing asked */
	Q_STOP,
	Q_MIGRATE,
	Q_QUERY,
	Q_QUERY_WAIT, /* between two query-migrate */
	Q_INCOMING,
	Q_QUIT,
	Q_DONE,
};

struct linebuf {
	char buf[LINE_MAX_LEN];
	size_t len;
};

struct run {
	struct timespec t0;
	pid_t pid;
	int log_fd;
	const char *first_prefix;
	const char *last_line;
	enum qmp_mode mode;
	const char *sock;
	const char *uri;
	enum qmp_state qs;
	int qfd;
	struct linebuf qbuf;
	bool ready_pending; /* ready seen before negotiation finished */
	double next_query;
	/* results; < 0: not seen */
	double ready, first, qmp, running, stop, save, timing;
	long rss_kb;
	char first_text[64];
	bool last_seen;
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

static void fail(struct run *r, const char *word)
{
	if (!r->error)
		r->error = word;
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

static void timing_line(struct run *r, const char *s)
{
	while (*s) {
		size_t len;

		while (*s == ' ' || *s == '\t')
			s++;
		len = strcspn(s, " \t");
		if (len == 0)
			break;
		if (len > 11 && !strncmp(s, "restore_ms=", 11) && r->timing < 0)
			r->timing = now_ms(r);
		add_extra(r, s, len);
		s += len;
	}
}

static int qmp_send(struct run *r, const char *json)
{
	size_t len = strlen(json), off = 0;

	if (r->log_fd >= 0)
		dprintf(r->log_fd, "QMP> %s", json);

	while (off < len) {
		/* QEMU may be gone: an error, not a SIGPIPE. */
		ssize_t n = send(r->qfd, json + off, len - off, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			struct pollfd p = { .fd = r->qfd, .events = POLLOUT };

			poll(&p, 1, 100);
			continue;
		}
		if (n <= 0) {
			fail(r, "qmp-write");
			return -1;
		}
		off += (size_t)n;
	}
	return 0;
}

static void start_save(struct run *r)
{
	r->stop = now_ms(r);
	if (qmp_send(r, "{\"execute\":\"stop\"}\n") == 0)
		r->qs = Q_STOP;
}

static void send_query(struct run *r)
{
	if (qmp_send(r, "{\"execute\":\"query-migrate\"}\n") == 0)
		r->qs = Q_QUERY;
}

static void send_uri(struct run *r, const char *cmd, enum qmp_state next)
{
	char json[1024];

	snprintf(json, sizeof(json),
		 "{\"execute\":\"%s\",\"arguments\":{\"uri\":\"%s\"}}\n", cmd,
		 r->uri);
	if (qmp_send(r, json) == 0)
		r->qs = next;
}

/* One QMP message, blanks removed (QEMU 7.2 writes "key": value). */
static void qmp_message(struct run *r, const char *m)
{
	bool is_return = strstr(m, "{\"return\"") == m;

	if (strstr(m, "\"event\":\"RESUME\"")) {
		if (r->running < 0)
			r->running = now_ms(r);
		return;
	}
	if (strstr(m, "\"event\":"))
		return;
	if (strstr(m, "{\"error\"") == m) {
		dprintf(STDERR_FILENO, "snaptime: QMP error: %s\n", m);
		fail(r, "qmp-error");
		/* A failed step leaves QEMU running: have it quit. */
		if (r->qs != Q_QUIT &&
		    qmp_send(r, "{\"execute\":\"quit\"}\n") == 0)
			r->qs = Q_QUIT;
		return;
	}
	switch (r->qs) {
	case Q_GREETING:
		if (strstr(m, "{\"QMP\"") == m &&
		    qmp_send(r, "{\"execute\":\"qmp_capabilities\"}\n") == 0)
			r->qs = Q_CAPS;
		break;
	case Q_CAPS:
		if (!is_return)
			break;
		r->qmp = now_ms(r);
		r->qs = Q_IDLE;
		if (r->mode == QMP_RESTORE)
			send_uri(r, "migrate-incoming", Q_INCOMING);
		else if (r->ready_pending)
			start_save(r);
		break;
	case Q_STOP:
		if (is_return)
			send_uri(r, "migrate", Q_MIGRATE);
		break;
	case Q_MIGRATE:
		if (is_return)
			send_query(r);
		break;
	case Q_QUERY:
		if (!is_return)
			break;
		if (strstr(m, "\"status\":\"completed\"")) {
			r->save = now_ms(r);
			if (qmp_send(r, "{\"execute\":\"quit\"}\n") == 0)
				r->qs = Q_QUIT;
		} else if (strstr(m, "\"status\":\"failed\"") ||
			   strstr(m, "\"status\":\"cancelled\"")) {
			dprintf(STDERR_FILENO, "snaptime: migration: %s\n", m);
			fail(r, "migration-failed");
			if (qmp_send(r, "{\"execute\":\"quit\"}\n") == 0)
				r->qs = Q_QUIT;
		} else {
			r->qs = Q_QUERY_WAIT;
			r->next_query = now_ms(r) + POLL_MIGRATE_MS;
		}
		break;
	case Q_INCOMING:
		if (is_return)
			r->qs = Q_DONE;
		break;
	default:
		break;
	}
}

static void output_line(struct run *r, char *line)
{
	size_t len = strlen(line);

	while (len && (line[len - 1] == '\r' || line[len - 1] == '\n'))
		line[--len] = '\0';
	if (r->ready < 0 && strstr(line, READY_LINE)) {
		r->ready = now_ms(r);
		if (r->mode == QMP_SAVE) {
			if (r->qs == Q_IDLE)
				start_save(r);
			else
				r->ready_pending = true;
		}
	}
	if (r->first < 0 && r->first_prefix &&
	    !strncmp(line, r->first_prefix, strlen(r->first_prefix))) {
		r->first = now_ms(r);
		r->rss_kb = rss_kb(r->pid);
		snprintf(r->first_text, sizeof(r->first_text), "%s", line);
		for (char *p = r->first_text; *p; p++)
			if (*p == ' ' || *p == '\t' || *p == '=')
				*p = '_';
	}
	if (r->last_line && !strcmp(line, r->last_line))
		r->last_seen = true;
	if (!strncmp(line, TIMING_PREFIX, strlen(TIMING_PREFIX)))
		timing_line(r, line + strlen(TIMING_PREFIX));
}

/*
 * Reads what is there from fd into lb and hands on each complete line (a full buffer counts as
 * a line). Returns false at EOF or error.
 */
static bool drain(struct run *r, int fd, struct linebuf *lb, bool is_qmp)
{
	ssize_t n;

	n = read(fd, lb->buf + lb->len, sizeof(lb->buf) - 1 - lb->len);
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return true;
	if (n <= 0) {
		if (lb->len) {
			lb->buf[lb->len] = '\0';
			if (!is_qmp)
				output_line(r, lb->buf);
			lb->len = 0;
		}
		return false;
	}
	if (!is_qmp && r->log_fd >= 0 &&
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
		if (is_qmp) {
			char *w = lb->buf;

			for (char *p = lb->buf; *p; p++)
				if (*p != ' ' && *p != '\r' && *p != '\n')
					*w++ = *p;
			*w = '\0';
			if (r->log_fd >= 0)
				dprintf(r->log_fd, "QMP< %s\n", lb->buf);
			qmp_message(r, lb->buf);
		} else {
			output_line(r, lb->buf);
		}
		memmove(lb->buf, lb->buf + used, lb->len - used);
		lb->len -= used;
	}
	return true;
}

static void try_connect(struct run *r)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(r->sock) >= sizeof(sa.sun_path)) {
		fail(r, "socket-path");
		r->qs = Q_DONE;
		return;
	}
	strcpy(sa.sun_path, r->sock);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		return;
	}
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	r->qfd = fd;
	r->qs = Q_GREETING;
}

static void print_ms(const char *key, double v)
{
	if (v >= 0)
		printf(" %s=%.1f", key, v);
}

static void usage(void)
{
	fprintf(stderr,
		"usage: snaptime [-t SEC] [-l LOG] [-f PREFIX] [-e LINE] "
		"[-q SOCK -s URI | -q SOCK -i URI] -- CMD [ARG...]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	struct run r = {
		.log_fd = -1,
		.first_prefix = "count ",
		.qfd = -1,
		.ready = -1,
		.first = -1,
		.qmp = -1,
		.running = -1,
		.stop = -1,
		.save = -1,
		.timing = -1,
		.rss_kb = -1,
	};
	struct linebuf ob = { .len = 0 }, eb = { .len = 0 };
	int out[2], err[2], opt, status = 0, rc;
	bool out_open = true, err_open = true, exited = false;
	double limit = 60e3;

	while ((opt = getopt(argc, argv, "+t:l:f:e:q:s:i:")) != -1) {
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
		case 'f':
			r.first_prefix = optarg[0] ? optarg : NULL;
			break;
		case 'e':
			r.last_line = optarg;
			break;
		case 'q':
			r.sock = optarg;
			break;
		case 's':
		case 'i':
			r.mode = opt == 's' ? QMP_SAVE : QMP_RESTORE;
			r.uri = optarg;
			break;
		default:
			usage();
		}
	}
	if (optind >= argc || (r.mode != QMP_NONE) != (r.sock != NULL))
		usage();
	if (r.uri &&
	    (strchr(r.uri, '"') || strchr(r.uri, '\\') || strlen(r.uri) > 512))
		usage();
	r.qs = r.mode == QMP_NONE ? Q_DONE : Q_CONNECT;

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

		if (null < 0 || dup2(null, 0) < 0 || dup2(out[1], 1) < 0 ||
		    dup2(err[1], 2) < 0)
			_exit(125);
		execvp(argv[optind], argv + optind);
		dprintf(2, "snaptime: exec %s: %s\n", argv[optind],
			strerror(errno));
		_exit(127);
	}
	close(out[1]);
	close(err[1]);

	while (out_open || err_open || !exited) {
		struct pollfd p[3];
		int np = 0, wait_ms = 50, qi = -1;
		double t = now_ms(&r);

		if (t > limit) {
			kill(r.pid, SIGKILL);
			fail(&r, "timeout");
			limit = 1e300;
		}
		if (!exited && waitpid(r.pid, &status, WNOHANG) == r.pid)
			exited = true;
		if (r.qs == Q_CONNECT && !exited) {
			try_connect(&r);
			if (r.qs == Q_CONNECT)
				wait_ms = 2;
		}
		if (r.qs == Q_QUERY_WAIT) {
			if (t >= r.next_query)
				send_query(&r);
			else
				wait_ms = (int)(r.next_query - t) + 1;
		}
		if (out_open)
			p[np++] = (struct pollfd){ .fd = out[0],
						   .events = POLLIN };
		if (err_open)
			p[np++] = (struct pollfd){ .fd = err[0],
						   .events = POLLIN };
		if (r.qfd >= 0) {
			qi = np;
			p[np++] = (struct pollfd){ .fd = r.qfd,
						   .events = POLLIN };
		}
		if (np == 0) {
			/* Output closed, process still there: wait for it. */
			usleep(2000);
			continue;
		}
		if (poll(p, (nfds_t)np, wait_ms) < 0 && errno != EINTR) {
			perror("poll");
			break;
		}
		for (int i = 0; i < np; i++) {
			if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			if (i == qi) {
				if (!drain(&r, r.qfd, &r.qbuf, true)) {
					close(r.qfd);
					r.qfd = -1;
					if (r.qs != Q_QUIT && r.qs != Q_DONE)
						fail(&r, "qmp-closed");
					r.qs = Q_DONE;
				}
			} else if (p[i].fd == out[0]) {
				out_open = drain(&r, out[0], &ob, false);
			} else {
				err_open = drain(&r, err[0], &eb, false);
			}
		}
	}
	if (r.qfd >= 0)
		close(r.qfd);

	rc = WIFEXITED(status)	   ? WEXITSTATUS(status)
	     : WIFSIGNALED(status) ? 128 + WTERMSIG(status)
				   : 125;
	if (r.mode == QMP_SAVE && r.save < 0)
		fail(&r, "no-save");
	if (r.mode == QMP_RESTORE && r.running < 0)
		fail(&r, "no-resume");
	printf("rc=%d", rc);
	print_ms("wall_ms", now_ms(&r));
	print_ms("ready_line_ms", r.ready);
	if (r.first >= 0) {
		print_ms("first_ms", r.first);
		printf(" first=%s", r.first_text);
		if (r.rss_kb >= 0)
			printf(" rss_kb=%ld", r.rss_kb);
	}
	if (r.last_line)
		printf(" last=%d", r.last_seen);
	print_ms("qmp_ms", r.qmp);
	print_ms("running_ms", r.running);
	print_ms("stop_ms", r.stop);
	if (r.stop >= 0 && r.save >= 0)
		print_ms("save_ms", r.save - r.stop);
	print_ms("timing_ms", r.timing);
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
