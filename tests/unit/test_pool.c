// SPDX-License-Identifier: Apache-2.0
// The pool: command line, wire messages (datagrams and stream framing), descriptors, rejections, texts.
#include <criterion/criterion.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../launcher/cli.h"
#include "../../pool/proto.h"

#define ARGV(...) ((char *const[]){ "sandbox", __VA_ARGS__ })
#define ARGC(...) \
	((int)(sizeof((char *[]){ "sandbox", __VA_ARGS__ }) / sizeof(char *)))
#define PARSE(cli, ...)                                              \
	cli__parse(ARGC(__VA_ARGS__), ARGV(__VA_ARGS__), (cli), err, \
		   sizeof(err))

static char err[256];
static int sv[2];
static char buf[POOL_PAYLOAD_MAX + 1];

static void pair(void)
{
	cr_assert_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv),
		     0);
}

static void unpair(void)
{
	close(sv[0]);
	close(sv[1]);
}

static void stream_pair(void)
{
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
}

static struct pool_msg wire_header(uint16_t type, uint32_t len)
{
	return (struct pool_msg){ .magic = htole32(POOL_MAGIC),
				  .version = htole16(POOL_VERSION),
				  .type = htole16(type),
				  .len = htole32(len) };
}

/* Sends @n bytes of @data with @nfds descriptors, as one sendmsg(). */
static void send_raw(int fd, const void *data, size_t n, const int *fds,
		     unsigned int nfds)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * 8)];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = { (void *)data, n };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

	if (nfds) {
		memset(&ctl, 0, sizeof(ctl));
		mh.msg_control = ctl.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		CMSG_FIRSTHDR(&mh)->cmsg_level = SOL_SOCKET;
		CMSG_FIRSTHDR(&mh)->cmsg_type = SCM_RIGHTS;
		CMSG_FIRSTHDR(&mh)->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(CMSG_FIRSTHDR(&mh)), fds, sizeof(int) * nfds);
	}
	cr_assert_eq(sendmsg(fd, &mh, 0), (ssize_t)n);
}

/* A few non-blocking reads: what is queued is read, nothing is waited for. */
static int rx_all(int fd, struct pool_rx *rx, unsigned int max_fds)
{
	int r = 0;

	for (int i = 0; i < 4 && r == 0; i++)
		r = pool__rx_read(fd, rx, max_fds, MSG_DONTWAIT);
	return r;
}

Test(pool, start_has_defaults)
{
	struct cli c;

	cr_assert_eq(PARSE(&c, "pool", "start"), 0);
	cr_assert_eq(c.cmd, CLI_POOL_START);
	cr_assert_eq(c.pool.size, CLI_DEFAULT_POOL_SIZE);
	cr_assert_eq(c.pool.max_vms, 64);
	cr_assert_eq(c.pool.mem_budget_mib, 0);
	cr_assert_eq(c.pool.queue_timeout_s, 30);
	cr_assert_not(c.pool.daemon);
	cr_assert_null(c.pool.snapshot);
	cr_assert_null(c.pool.socket);
	cr_assert_null(c.pool.pid_file);
	cr_assert_null(c.pool.log);
}

Test(pool, start_takes_the_limits_and_daemon_flags)
{
	struct cli c;

	cr_assert_eq(PARSE(&c, "pool", "start", "--size", "4", "--max-vms=6",
			   "--mem-budget", "1024", "--queue-timeout", "0",
			   "--daemon", "--pid-file", "/p.pid", "--log=/p.log"),
		     0, "%s", err);
	cr_assert_eq(c.pool.size, 4);
	cr_assert_eq(c.pool.max_vms, 6);
	cr_assert_eq(c.pool.mem_budget_mib, 1024);
	cr_assert_eq(c.pool.queue_timeout_s, 0);
	cr_assert(c.pool.daemon);
	cr_assert_str_eq(c.pool.pid_file, "/p.pid");
	cr_assert_str_eq(c.pool.log, "/p.log");
}

Test(pool, max_vms_must_hold_size)
{
	struct cli c;

	cr_assert_eq(
		PARSE(&c, "pool", "start", "--size", "8", "--max-vms", "7"),
		-EINVAL);
	cr_assert(strstr(err, "--max-vms"), "%s", err);
	/* The order of the flags does not matter. */
	cr_assert_eq(
		PARSE(&c, "pool", "start", "--max-vms", "8", "--size", "8"), 0);
	cr_assert_eq(PARSE(&c, "pool", "start", "--max-vms", "1"), -EINVAL);
	cr_assert_eq(PARSE(&c, "pool", "start", "--max-vms", "0"), -EINVAL);
	cr_assert_eq(PARSE(&c, "pool", "start", "--max-vms", "1025"), -EINVAL);
}

Test(pool, rejects_bad_limits)
{
	struct cli c;

	cr_assert_eq(PARSE(&c, "pool", "start", "--mem-budget", "0"), -EINVAL);
	cr_assert_eq(PARSE(&c, "pool", "start", "--mem-budget", "-1"), -EINVAL);
	cr_assert_eq(PARSE(&c, "pool", "start", "--queue-timeout", "x"),
		     -EINVAL);
	cr_assert_eq(PARSE(&c, "pool", "start", "--queue-timeout", "604801"),
		     -EINVAL);
	cr_assert_eq(PARSE(&c, "pool", "start", "--pid-file"), -EINVAL);
	cr_assert_eq(PARSE(&c, "pool", "start", "--log="), -EINVAL);
	cr_assert_eq(PARSE(&c, "pool", "status", "--daemon"), -EINVAL);
	cr_assert_eq(PARSE(&c, "pool", "stop", "--max-vms", "2"), -EINVAL);
	cr_assert_eq(PARSE(&c, "pool", "status", "--queue-timeout", "2"),
		     -EINVAL);
}

Test(pool, metrics_is_a_status_variant)
{
	struct cli c;

	cr_assert_eq(PARSE(&c, "pool", "metrics", "--socket", "/p.sock"), 0);
	cr_assert_eq(c.cmd, CLI_POOL_STATUS);
	cr_assert(c.pool.metrics);
	cr_assert_str_eq(c.pool.socket, "/p.sock");
	cr_assert_eq(PARSE(&c, "pool", "metrics", "--json"), -EINVAL);
	cr_assert_eq(PARSE(&c, "pool", "status"), 0);
	cr_assert_not(c.pool.metrics);
}

Test(pool, start_takes_every_flag)
{
	struct cli c;

	cr_assert_eq(PARSE(&c, "pool", "start", "--size=8", "--snapshot",
			   "/s.snap", "--socket", "/p.sock"),
		     0);
	cr_assert_eq(c.pool.size, 8);
	cr_assert_str_eq(c.pool.snapshot, "/s.snap");
	cr_assert_str_eq(c.pool.socket, "/p.sock");
}

Test(pool, rejects_bad_commands)
{
	struct cli c;

	cr_assert_eq(PARSE(&c, "pool"), -EINVAL);
	cr_assert_eq(PARSE(&c, "pool", "restart"), -EINVAL);
	cr_assert_eq(PARSE(&c, "pool", "start", "--size", "0"), -EINVAL);
	cr_assert_eq(PARSE(&c, "pool", "start", "--size", "65"), -EINVAL);
	cr_assert_eq(PARSE(&c, "pool", "status", "--size", "2"), -EINVAL);
	cr_assert_eq(PARSE(&c, "pool", "stop", "--snapshot", "x"), -EINVAL);
	cr_assert_eq(PARSE(&c, "pool", "stop", "--socket"), -EINVAL);
	cr_assert_eq(PARSE(&c, "pool", "stop", "--json"), -EINVAL);
}

Test(pool, status_takes_json)
{
	struct cli c;

	cr_assert_eq(PARSE(&c, "pool", "status", "--json"), 0, "%s", err);
	cr_assert_eq(c.cmd, CLI_POOL_STATUS);
	cr_assert(c.pool.json);
	cr_assert_eq(PARSE(&c, "pool", "status"), 0);
	cr_assert_not(c.pool.json);
}

Test(pool, run_takes_pool_flags)
{
	struct cli c;

	cr_assert_eq(PARSE(&c, "run", "--pool", "/p.sock", "fn"), 0);
	cr_assert_str_eq(c.run.pool, "/p.sock");
	cr_assert_not(c.run.no_pool);
	cr_assert_eq(PARSE(&c, "run", "--no-pool", "fn", "--pool"), 0);
	cr_assert(c.run.no_pool);
	cr_assert_str_eq(c.run.fn, "fn");
	cr_assert_eq(PARSE(&c, "run", "--no-pool", "--pool=/p", "fn"), -EINVAL);
	cr_assert_eq(PARSE(&c, "run", "--pool=", "fn"), -EINVAL);
}

Test(pool, message_round_trips_with_fds, .init = pair, .fini = unpair)
{
	struct pool_msg m = { .flags = POOL_F_STDIN, .arg0 = 7, .arg1 = 2 };
	int fds[2] = { STDIN_FILENO, STDOUT_FILENO }, got[POOL_MAX_FDS];
	unsigned int n = POOL_MAX_FDS;
	const char *argv[3];

	cr_assert_eq(pool__send(sv[0], POOL_RUN, &m, "fn\0a", 5, fds, 2), 0);
	memset(&m, 0, sizeof(m));
	cr_assert_eq(pool__recv(sv[1], &m, buf, POOL_PAYLOAD_MAX, got, &n, 0),
		     0);
	cr_assert_eq(m.type, POOL_RUN);
	cr_assert_eq(m.len, 5);
	cr_assert_eq(m.flags, POOL_F_STDIN);
	cr_assert_eq(m.arg0, 7);
	cr_assert_eq(n, 2);
	cr_assert(fcntl(got[0], F_GETFD) & FD_CLOEXEC);
	cr_assert_eq(pool__parse_argv(buf, m.len, m.arg1, argv), 0);
	cr_assert_str_eq(argv[0], "fn");
	cr_assert_str_eq(argv[1], "a");
	cr_assert_null(argv[2]);
	close(got[0]);
	close(got[1]);
}

Test(pool, rejects_wrong_magic_and_version, .init = pair, .fini = unpair)
{
	struct pool_msg w = { .magic = htole32(0x12345678),
			      .version = htole16(POOL_VERSION) },
			m;
	unsigned int n = 0;

	cr_assert_eq(send(sv[0], &w, sizeof(w), 0), (ssize_t)sizeof(w));
	cr_assert_eq(pool__recv(sv[1], &m, buf, POOL_PAYLOAD_MAX, NULL, &n, 0),
		     -EPROTO);
	w.magic = htole32(POOL_MAGIC);
	w.version = htole16(POOL_VERSION + 1);
	cr_assert_eq(send(sv[0], &w, sizeof(w), 0), (ssize_t)sizeof(w));
	cr_assert_eq(pool__recv(sv[1], &m, buf, POOL_PAYLOAD_MAX, NULL, &n, 0),
		     -EPROTO);
}

Test(pool, rejects_length_mismatch_and_short_header, .init = pair,
     .fini = unpair)
{
	struct pool_msg w = { .magic = htole32(POOL_MAGIC),
			      .version = htole16(POOL_VERSION),
			      .len = htole32(10) },
			m;
	unsigned int n = 0;

	cr_assert_eq(send(sv[0], &w, sizeof(w), 0), (ssize_t)sizeof(w));
	cr_assert_eq(pool__recv(sv[1], &m, buf, POOL_PAYLOAD_MAX, NULL, &n, 0),
		     -EPROTO);
	cr_assert_eq(send(sv[0], &w, 8, 0), 8);
	cr_assert_eq(pool__recv(sv[1], &m, buf, POOL_PAYLOAD_MAX, NULL, &n, 0),
		     -EPROTO);
}

Test(pool, too_many_fds_are_closed_and_rejected, .init = pair, .fini = unpair)
{
	int fds[3], p[2], got[1];
	unsigned int n = 1;
	struct pool_msg m;
	char c;

	cr_assert_eq(pipe(p), 0);
	fds[0] = fds[1] = fds[2] = p[1];
	cr_assert_eq(pool__send(sv[0], POOL_RESULT, NULL, NULL, 0, fds, 3), 0);
	close(p[1]);
	cr_assert_eq(pool__recv(sv[1], &m, buf, POOL_PAYLOAD_MAX, got, &n, 0),
		     -EPROTO);
	cr_assert_eq(n, 0);
	/* Every copy of the write end is closed: the read end sees EOF. */
	cr_assert_eq(read(p[0], &c, 1), 0);
	close(p[0]);
}

Test(pool, end_of_stream_is_connreset, .init = pair, .fini = unpair)
{
	struct pool_msg m;
	unsigned int n = 0;

	shutdown(sv[0], SHUT_WR);
	cr_assert_eq(pool__recv(sv[1], &m, buf, POOL_PAYLOAD_MAX, NULL, &n, 0),
		     -ECONNRESET);
}

Test(pool, payload_over_the_limit_is_refused)
{
	static char big[POOL_PAYLOAD_MAX + 1];

	cr_assert_eq(pool__send(-1, POOL_RUN, NULL, big, sizeof(big), NULL, 0),
		     -EMSGSIZE);
}

Test(pool, argv_must_match_argc)
{
	char two[] = "a\0b";
	char open_end[] = { 'a', '\0', 'b' };
	const char *argv[4];

	cr_assert_eq(pool__parse_argv(two, 4, 2, argv), 0);
	cr_assert_eq(pool__parse_argv(two, 4, 1, argv), -EPROTO);
	cr_assert_eq(pool__parse_argv(two, 4, 3, argv), -EPROTO);
	cr_assert_eq(pool__parse_argv(two, 4, 0, argv), -EPROTO);
	cr_assert_eq(pool__parse_argv(open_end, 3, 2, argv), -EPROTO);
}

Test(pool, stream_message_round_trips_with_fds, .init = stream_pair,
     .fini = unpair)
{
	struct pool_msg m = { .flags = POOL_F_STDIN, .arg0 = 7, .arg1 = 2 };
	int fds[2] = { STDIN_FILENO, STDOUT_FILENO };
	struct pool_rx rx = { 0 };
	const char *argv[3];

	cr_assert_eq(pool__send(sv[0], POOL_RUN, &m, "fn\0a", 5, fds, 2), 0);
	cr_assert_eq(pool__rx_wait(sv[1], &rx, POOL_MAX_FDS), 1);
	cr_assert_eq(rx.m.type, POOL_RUN);
	cr_assert_eq(rx.m.len, 5);
	cr_assert_eq(rx.m.flags, POOL_F_STDIN);
	cr_assert_eq(rx.m.arg0, 7);
	cr_assert_eq(rx.nfds, 2);
	cr_assert(fcntl(rx.fds[0], F_GETFD) & FD_CLOEXEC);
	cr_assert_eq(pool__parse_argv(rx.payload, rx.m.len, rx.m.arg1, argv),
		     0);
	cr_assert_str_eq(argv[1], "a");
	pool__rx_reset(&rx);
	cr_assert_eq(rx.nfds, 0);
	cr_assert_null(rx.payload);
}

Test(pool, stream_collects_a_message_sent_in_pieces, .init = stream_pair,
     .fini = unpair)
{
	struct pool_msg w = wire_header(POOL_RESULT, 5);
	struct pool_rx rx = { 0 };
	int p[2];

	cr_assert_eq(pipe(p), 0);
	/* The descriptor comes with the first byte; then nothing more for now. */
	send_raw(sv[0], &w, 3, &p[1], 1);
	cr_assert_eq(pool__rx_read(sv[1], &rx, 1, MSG_DONTWAIT), 0);
	cr_assert_eq(pool__rx_read(sv[1], &rx, 1, MSG_DONTWAIT), 0);
	cr_assert_eq(rx.have, 3);
	send_raw(sv[0], (char *)&w + 3, sizeof(w) - 3, NULL, 0);
	cr_assert_eq(pool__rx_read(sv[1], &rx, 1, MSG_DONTWAIT), 0);
	send_raw(sv[0], "he", 2, NULL, 0);
	cr_assert_eq(pool__rx_read(sv[1], &rx, 1, MSG_DONTWAIT), 0);
	send_raw(sv[0], "llo", 3, NULL, 0);
	cr_assert_eq(pool__rx_read(sv[1], &rx, 1, MSG_DONTWAIT), 1);
	cr_assert_str_eq(rx.payload, "hello");
	cr_assert_eq(rx.nfds, 1);
	pool__rx_reset(&rx);
	close(p[0]);
	close(p[1]);
}

Test(pool, stream_reads_stop_at_the_end_of_a_message, .init = stream_pair,
     .fini = unpair)
{
	struct pool_rx rx = { 0 };

	cr_assert_eq(pool__send(sv[0], POOL_RESULT, NULL, "one", 3, NULL, 0),
		     0);
	cr_assert_eq(pool__send(sv[0], POOL_STOP, NULL, NULL, 0, NULL, 0), 0);
	cr_assert_eq(pool__rx_wait(sv[1], &rx, 0), 1);
	cr_assert_eq(rx.m.type, POOL_RESULT);
	cr_assert_str_eq(rx.payload, "one");
	pool__rx_reset(&rx);
	cr_assert_eq(pool__rx_wait(sv[1], &rx, 0), 1);
	cr_assert_eq(rx.m.type, POOL_STOP);
	cr_assert_eq(rx.m.len, 0);
	pool__rx_reset(&rx);
}

Test(pool, stream_rejects_garbage_and_bad_headers, .init = stream_pair,
     .fini = unpair)
{
	struct pool_msg w = wire_header(POOL_RUN, POOL_PAYLOAD_MAX + 1);
	struct pool_rx rx = { 0 };

	send_raw(sv[0], "HELLO", 5, NULL, 0);
	cr_assert_eq(rx_all(sv[1], &rx, 0), -EPROTO);
	cr_assert_eq(rx.have, 0);
	unpair();
	stream_pair();
	/* A length over the limit is refused before any payload is read. */
	send_raw(sv[0], &w, sizeof(w), NULL, 0);
	cr_assert_eq(rx_all(sv[1], &rx, 0), -EPROTO);
	unpair();
	stream_pair();
	w = wire_header(POOL_RUN, 0);
	w.version = htole16(POOL_VERSION - 1);
	send_raw(sv[0], &w, sizeof(w), NULL, 0);
	cr_assert_eq(rx_all(sv[1], &rx, 0), -EPROTO);
}

Test(pool, stream_end_mid_message_is_connreset, .init = stream_pair,
     .fini = unpair)
{
	struct pool_msg w = wire_header(POOL_RESULT, 10);
	struct pool_rx rx = { 0 };

	send_raw(sv[0], &w, sizeof(w), NULL, 0);
	send_raw(sv[0], "abc", 3, NULL, 0);
	shutdown(sv[0], SHUT_WR);
	cr_assert_eq(pool__rx_wait(sv[1], &rx, 0), -ECONNRESET);
	cr_assert_null(rx.payload);
}

Test(pool, stream_fds_after_the_first_byte_are_closed_and_rejected,
     .init = stream_pair, .fini = unpair)
{
	struct pool_msg w = wire_header(POOL_RESULT, 4);
	struct pool_rx rx = { 0 };
	int p[2];
	char c;

	cr_assert_eq(pipe(p), 0);
	send_raw(sv[0], &w, sizeof(w), NULL, 0);
	cr_assert_eq(pool__rx_read(sv[1], &rx, 4, MSG_DONTWAIT), 0);
	send_raw(sv[0], "abcd", 4, &p[1], 1);
	close(p[1]);
	cr_assert_eq(pool__rx_read(sv[1], &rx, 4, MSG_DONTWAIT), -EPROTO);
	cr_assert_eq(read(p[0], &c, 1), 0);
	close(p[0]);
}

Test(pool, stream_too_many_fds_are_closed_and_rejected, .init = stream_pair,
     .fini = unpair)
{
	struct pool_msg w = wire_header(POOL_RESULT, 0);
	struct pool_rx rx = { 0 };
	int p[2], fds[3];
	char c;

	cr_assert_eq(pipe(p), 0);
	fds[0] = fds[1] = fds[2] = p[1];
	send_raw(sv[0], &w, sizeof(w), fds, 3);
	close(p[1]);
	cr_assert_eq(pool__rx_read(sv[1], &rx, 2, MSG_DONTWAIT), -EPROTO);
	cr_assert_eq(rx.nfds, 0);
	cr_assert_eq(read(p[0], &c, 1), 0);
	close(p[0]);
}

Test(pool, stream_tells_an_http_request_apart, .init = stream_pair,
     .fini = unpair)
{
	static const char req[] = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
	struct pool_rx rx = { 0 };
	const char *path;
	size_t len;

	send_raw(sv[0], "GE", 2, NULL, 0);
	cr_assert_eq(pool__rx_read(sv[1], &rx, 0, MSG_DONTWAIT), 0);
	send_raw(sv[0], req + 2, sizeof(req) - 3, NULL, 0);
	cr_assert_eq(pool__rx_read(sv[1], &rx, 0, MSG_DONTWAIT), POOL_RX_HTTP);
	cr_assert_geq(rx.have, 4);
	cr_assert_eq(memcmp(rx.head, "GET ", 4), 0);
	cr_assert_eq(pool__http_request(req, 10, &path, &len), 0);
	cr_assert_eq(pool__http_request(req, sizeof(req) - 1, &path, &len), 1);
	cr_assert_eq(len, 8);
	cr_assert_eq(memcmp(path, "/metrics", 8), 0);
	cr_assert_eq(
		pool__http_request("POST / HTTP/1.0\r\n\r\n", 19, &path, &len),
		-EPROTO);
	/* Shorter than "GET ": a prefix of it waits, anything else is refused. */
	cr_assert_eq(pool__http_request("GE", 2, &path, &len), 0);
	cr_assert_eq(pool__http_request("\n\n", 2, &path, &len), -EPROTO);
	cr_assert_eq(pool__http_request("G\n\n", 3, &path, &len), -EPROTO);
	cr_assert_eq(pool__http_request("GET /\r\n\r\n", 9, &path, &len),
		     -EPROTO);
	cr_assert_eq(pool__http_request("GET / HTTP/1.0\n\n", 16, &path, &len),
		     1);
	cr_assert_eq(len, 1);
}

Test(pool, quantiles_are_nearest_rank)
{
	double v[100];

	for (int i = 0; i < 100; i++)
		v[i] = 100 - i; /* 100 .. 1, unsorted */
	cr_assert_eq(pool__quantile(v, 100, 0.5), 50);
	cr_assert_eq(pool__quantile(v, 100, 0.9), 90);
	cr_assert_eq(pool__quantile(v, 100, 0.99), 99);
	cr_assert_eq(pool__quantile(v, 1, 0.99), 1);
	cr_assert_eq(pool__quantile(v, 0, 0.5), 0);
	v[0] = 3, v[1] = 1, v[2] = 2;
	cr_assert_eq(pool__quantile(v, 3, 0.5), 2);
}

static const struct pool_stats some_stats = {
	.snapshot = "/s/base\n.snap",
	.ready = 2,
	.busy = 1,
	.restoring = 3,
	.queued = 4,
	.served = 10,
	.failed = 1,
	.queue_timeouts = 2,
	.reloads = 5,
	.runs = 11,
	.latency_sum_ms = 1500,
	.have_latency = true,
	.latency_ms = { 12.5, 40, 99.25 },
	.wait_ms = { 0.5, 7 },
};

Test(pool, status_text_has_every_key)
{
	char buf[1024];

	cr_assert_gt(pool__format_status(&some_stats, buf, sizeof(buf)), 0);
	cr_assert_str_eq(buf, "snapshot /s/base?.snap\n"
			      "ready 2\nbusy 1\nrestoring 3\nqueued 4\n"
			      "served 10\nfailed 1\nqueue_timeouts 2\n"
			      "latency_p50_ms 12.500\nlatency_p90_ms 40.000\n"
			      "latency_p99_ms 99.250\n"
			      "wait_p50_ms 0.500\nwait_p99_ms 7.000\n");
	cr_assert_eq(pool__format_status(&some_stats, buf, 40), -E2BIG);
}

Test(pool, status_json_has_numbers_and_a_string)
{
	char out[256];

	cr_assert_gt(pool__status_json("snapshot /a \"b\"\\c\nready 2\n"
				       "latency_p50_ms 1.500\nodd 01\n",
				       out, sizeof(out)),
		     0);
	cr_assert_str_eq(out, "{\"snapshot\": \"/a \\\"b\\\"\\\\c\", "
			      "\"ready\": 2, \"latency_p50_ms\": 1.500, "
			      "\"odd\": \"01\"}");
	/* The snapshot stays a string even when its name is a number. */
	cr_assert_gt(pool__status_json("snapshot 12\n", out, sizeof(out)), 0);
	cr_assert_str_eq(out, "{\"snapshot\": \"12\"}");
	cr_assert_eq(pool__status_json("nospace\n", out, sizeof(out)), -EPROTO);
	cr_assert_eq(pool__status_json("ready 2\n", out, 8), -E2BIG);
}

Test(pool, metrics_are_prometheus_text)
{
	struct pool_stats none = { .snapshot = "x" };
	char buf[8192];

	cr_assert_gt(pool__format_metrics(&some_stats, buf, sizeof(buf)), 0);
	cr_assert(strstr(buf, "# TYPE sandbox_pool_vms gauge\n"));
	cr_assert(strstr(buf, "\nsandbox_pool_vms{state=\"ready\"} 2\n"));
	cr_assert(strstr(buf, "\nsandbox_pool_vms{state=\"busy\"} 1\n"));
	cr_assert(strstr(buf, "\nsandbox_pool_vms{state=\"restoring\"} 3\n"));
	cr_assert(strstr(buf, "\nsandbox_pool_queued 4\n"));
	cr_assert(strstr(buf, "# TYPE sandbox_pool_invocations_total counter\n"
			      "sandbox_pool_invocations_total 10\n"));
	cr_assert(strstr(buf, "\nsandbox_pool_failures_total 1\n"));
	cr_assert(strstr(buf, "\nsandbox_pool_queue_timeouts_total 2\n"));
	cr_assert(strstr(buf, "\nsandbox_pool_reloads_total 5\n"));
	cr_assert(strstr(buf,
			 "# TYPE sandbox_pool_invocation_seconds summary\n"));
	cr_assert(strstr(
		buf,
		"\nsandbox_pool_invocation_seconds{quantile=\"0.99\"} 0.099250\n"));
	cr_assert(strstr(buf, "\nsandbox_pool_invocation_seconds_sum 1.500000\n"
			      "sandbox_pool_invocation_seconds_count 11\n"));
	/* Every line is a comment or "name[{labels}] value". */
	for (char *l = strtok(buf, "\n"); l; l = strtok(NULL, "\n"))
		cr_assert(l[0] == '#' || strncmp(l, "sandbox_pool_", 13) == 0,
			  "%s", l);
	cr_assert_gt(pool__format_metrics(&none, buf, sizeof(buf)), 0);
	cr_assert(strstr(buf, "{quantile=\"0.5\"} NaN\n"));
	cr_assert_eq(pool__format_metrics(&some_stats, buf, 100), -E2BIG);
}

/* A socket path in a fresh directory, under a subdirectory not made yet. */
static char lock_dir[PATH_MAX], lock_sock[PATH_MAX + 32],
	lock_file[PATH_MAX + 64];

static void lock_setup(void)
{
	snprintf(lock_dir, sizeof(lock_dir), "/tmp/sandbox-pool-lock-XXXXXX");
	cr_assert_not_null(mkdtemp(lock_dir));
	snprintf(lock_sock, sizeof(lock_sock), "%s/sub/pool.sock", lock_dir);
	snprintf(lock_file, sizeof(lock_file), "%s.lock", lock_sock);
}

static void lock_teardown(void)
{
	char sub[PATH_MAX + 8];

	unlink(lock_file);
	rmdir(lock_file);
	snprintf(sub, sizeof(sub), "%s/sub", lock_dir);
	rmdir(sub);
	rmdir(lock_dir);
}

Test(pool, lock_is_held_by_one_and_its_file_stays, .init = lock_setup,
     .fini = lock_teardown)
{
	struct stat st;
	int a, b;

	a = pool__lock_socket(lock_sock);
	cr_assert_geq(a, 0, "%s", strerror(-a));
	cr_assert(fcntl(a, F_GETFD) & FD_CLOEXEC);
	cr_assert_eq(stat(lock_file, &st), 0);
	cr_assert(S_ISREG(st.st_mode));
	cr_assert_eq(st.st_mode & 0777, 0600);
	/* A second start, even from this process: another open file. */
	cr_assert_eq(pool__lock_socket(lock_sock), -EADDRINUSE);
	cr_assert_eq(pool__lock_socket(lock_sock), -EADDRINUSE);
	close(a);
	/* The file left behind locks nothing. */
	cr_assert_eq(stat(lock_file, &st), 0);
	b = pool__lock_socket(lock_sock);
	cr_assert_geq(b, 0, "%s", strerror(-b));
	close(b);
}

Test(pool, lock_lasts_while_a_forked_copy_is_open, .init = lock_setup,
     .fini = lock_teardown)
{
	int fd, pipefd[2], st, again;
	char c;
	pid_t pid;

	fd = pool__lock_socket(lock_sock);
	cr_assert_geq(fd, 0);
	cr_assert_eq(pipe(pipefd), 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		/* Holds the inherited copy until the parent says. */
		close(pipefd[1]);
		_exit(read(pipefd[0], &c, 1) == 0 ? 0 : 1);
	}
	close(pipefd[0]);
	close(fd);
	/* Why the daemon's VM processes close theirs: it outlives the daemon's. */
	cr_assert_eq(pool__lock_socket(lock_sock), -EADDRINUSE);
	close(pipefd[1]);
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	again = pool__lock_socket(lock_sock);
	cr_assert_geq(again, 0, "%s", strerror(-again));
	close(again);
}

Test(pool, lock_refuses_what_is_not_a_file_of_ours, .init = lock_setup,
     .fini = lock_teardown)
{
	char target[PATH_MAX + 16], sub[PATH_MAX + 8];
	struct stat st;

	snprintf(sub, sizeof(sub), "%s/sub", lock_dir);
	cr_assert_eq(mkdir(sub, 0700), 0);
	/* A symlink someone put there, to a file that is not there yet. */
	snprintf(target, sizeof(target), "%s/target", lock_dir);
	cr_assert_eq(symlink(target, lock_file), 0);
	cr_assert_eq(pool__lock_socket(lock_sock), -EPERM);
	cr_assert_neq(stat(target, &st), 0,
		      "the lock made the symlink's target");
	cr_assert_eq(unlink(lock_file), 0);
	cr_assert_eq(mkdir(lock_file, 0700), 0);
	cr_assert_eq(pool__lock_socket(lock_sock), -EPERM);
	cr_assert_eq(rmdir(lock_file), 0);
	cr_assert_eq(mkfifo(lock_file, 0600), 0);
	cr_assert_eq(pool__lock_socket(lock_sock), -EPERM);
}

Test(pool, lock_path_too_long)
{
	static char sock[PATH_MAX];

	memset(sock, 'a', sizeof(sock) - 1);
	sock[0] = '/';
	cr_assert_eq(pool__lock_socket(sock), -ENAMETOOLONG);
}

Test(pool, a_silent_connection_ends_at_the_stall_limit)
{
	cr_assert_eq(pool__request_deadline_ms(5000, 5000),
		     5000 + POOL_STALL_MS);
	cr_assert_eq(pool__request_deadline_ms(5000, 6000),
		     6000 + POOL_STALL_MS);
}

Test(pool, a_trickling_request_ends_at_the_whole_request_limit)
{
	const uint64_t t0 = 5000, gap = POOL_STALL_MS - 100;
	uint64_t last = t0, now = t0, bytes = 0;

	cr_assert_gt(POOL_REQUEST_MS, POOL_STALL_MS);
	/* A byte just before each stall limit: the connection would never end. */
	for (;;) {
		uint64_t end = pool__request_deadline_ms(t0, last);

		cr_assert_lt(bytes, 1000, "the trickle was never cut off");
		if (now + gap >= end) {
			now = end;
			break;
		}
		now += gap;
		last = now;
		bytes++;
	}
	cr_assert_eq(now, t0 + POOL_REQUEST_MS);
	cr_assert_gt(bytes, 0);
	/* Its last byte came less than a stall limit before: no stall ended it. */
	cr_assert_lt(now - last, POOL_STALL_MS);
}
