// SPDX-License-Identifier: Apache-2.0
// The pool: command line, wire messages, descriptors, rejections.
#include <criterion/criterion.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
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

Test(pool, start_has_defaults)
{
	struct cli c;

	cr_assert_eq(PARSE(&c, "pool", "start"), 0);
	cr_assert_eq(c.cmd, CLI_POOL_START);
	cr_assert_eq(c.pool.size, CLI_DEFAULT_POOL_SIZE);
	cr_assert_null(c.pool.snapshot);
	cr_assert_null(c.pool.socket);
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
