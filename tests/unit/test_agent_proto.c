// SPDX-License-Identifier: Apache-2.0
// Agent protocol codec: every frame round-trips, every malformed header and payload is rejected.
#include <criterion/criterion.h>
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../../images/agent/proto.h"

/* Decoders get exactly @len heap bytes, so ASan catches any read past them. */
static void *dup_bytes(const void *p, size_t len)
{
	void *d = malloc(len ? len : 1);

	cr_assert_not_null(d);
	memcpy(d, p, len);
	return d;
}

static void hdr(uint8_t *b, uint16_t version, uint16_t type, uint32_t len)
{
	struct agent_hdr_wire h = { .version = htole16(version),
				    .type = htole16(type),
				    .length = htole32(len) };

	memcpy(b, &h, sizeof(h));
}

static int decode_hdr(uint16_t version, uint16_t type, uint32_t len,
		      bool from_guest, struct agent_frame *f)
{
	uint8_t b[AGENT_HDR_SIZE];
	const char *why = NULL;
	void *d;
	int r;

	hdr(b, version, type, len);
	d = dup_bytes(b, sizeof(b));
	r = agent__decode_hdr(d, from_guest, f, &why);
	free(d);
	if (r)
		cr_assert_not_null(why, "a rejection says why");
	return r;
}

static const uint16_t host_types[] = { AGENT_INIT, AGENT_EXEC, AGENT_FN_DATA,
				       AGENT_STDIN };
static const uint16_t guest_types[] = { AGENT_READY,  AGENT_STARTED,
					AGENT_STDOUT, AGENT_STDERR,
					AGENT_EXIT,   AGENT_ERROR,
					AGENT_WINDOW };

/* A payload length each type accepts. */
static uint32_t good_len(uint16_t type)
{
	switch (type) {
	case AGENT_INIT:
		return 80;
	case AGENT_EXEC:
		return 25;
	case AGENT_WINDOW:
		return 8;
	case AGENT_READY:
		return 4;
	case AGENT_STARTED:
		return 0;
	case AGENT_EXIT:
		return 8;
	case AGENT_ERROR:
		return 4;
	default:
		return 1;
	}
}

Test(agent_proto, header_round_trips_for_every_type)
{
	struct agent_frame f;
	uint8_t b[AGENT_HDR_SIZE];
	size_t i;

	for (i = 0; i < sizeof(host_types) / sizeof(host_types[0]); i++) {
		agent__encode_hdr(b, host_types[i], good_len(host_types[i]));
		cr_assert_eq(agent__decode_hdr(b, false, &f, NULL), 0);
		cr_assert_eq(f.type, host_types[i]);
		cr_assert_eq(f.len, good_len(host_types[i]));
	}
	for (i = 0; i < sizeof(guest_types) / sizeof(guest_types[0]); i++) {
		agent__encode_hdr(b, guest_types[i], good_len(guest_types[i]));
		cr_assert_eq(agent__decode_hdr(b, true, &f, NULL), 0);
		cr_assert_eq(f.type, guest_types[i]);
	}
	/* Little-endian on the wire whatever the host. */
	agent__encode_hdr(b, AGENT_STDOUT, 0x01020304);
	cr_assert_eq(b[0], AGENT_VERSION);
	cr_assert_eq(b[1], 0);
	cr_assert_eq(b[2], 0x03);
	cr_assert_eq(b[3], 0x01);
	cr_assert_eq(b[4], 0x04);
	cr_assert_eq(b[7], 0x01);
}

Test(agent_proto, header_rejects_other_versions)
{
	struct agent_frame f;

	cr_assert_eq(decode_hdr(0, AGENT_STDOUT, 1, true, &f), -EPROTO);
	cr_assert_eq(decode_hdr(1, AGENT_STDOUT, 1, true, &f), -EPROTO);
	cr_assert_eq(decode_hdr(AGENT_VERSION - 1, AGENT_STDOUT, 1, true, &f),
		     -EPROTO);
	cr_assert_eq(decode_hdr(AGENT_VERSION + 1, AGENT_STDOUT, 1, true, &f),
		     -EPROTO);
	cr_assert_eq(decode_hdr(0x0100, AGENT_STDOUT, 1, true, &f), -EPROTO);
	cr_assert_eq(decode_hdr(0xffff, AGENT_INIT, 80, false, &f), -EPROTO);
}

Test(agent_proto, header_accepts_only_known_types_going_their_way)
{
	struct agent_frame f;
	unsigned int t, accepted = 0;
	int g, h;

	for (t = 0; t <= 0xffff; t++) {
		g = decode_hdr(AGENT_VERSION, (uint16_t)t,
			       good_len((uint16_t)t), true, &f);
		h = decode_hdr(AGENT_VERSION, (uint16_t)t,
			       good_len((uint16_t)t), false, &f);
		cr_assert(g == 0 || g == -EPROTO);
		cr_assert(h == 0 || h == -EPROTO);
		/* No type is valid both ways. */
		cr_assert(g != 0 || h != 0, "type %#x", t);
		if (!g) {
			cr_assert(t & AGENT_FROM_GUEST);
			accepted++;
		}
		if (!h) {
			cr_assert(!(t & AGENT_FROM_GUEST));
			accepted++;
		}
	}
	cr_assert_eq(accepted, 11);
}

Test(agent_proto, header_rejects_oversize_frames)
{
	struct agent_frame f;

	cr_assert_eq(decode_hdr(AGENT_VERSION, AGENT_STDOUT, AGENT_FRAME_MAX,
				true, &f),
		     0);
	cr_assert_eq(decode_hdr(AGENT_VERSION, AGENT_STDOUT,
				AGENT_FRAME_MAX + 1, true, &f),
		     -EPROTO);
	cr_assert_eq(decode_hdr(AGENT_VERSION, AGENT_STDIN, AGENT_FRAME_MAX,
				false, &f),
		     0);
	cr_assert_eq(
		decode_hdr(AGENT_VERSION, AGENT_STDIN, 0xffffffff, false, &f),
		-EPROTO);
	cr_assert_eq(decode_hdr(AGENT_VERSION, AGENT_EXEC, AGENT_FRAME_MAX + 1,
				false, &f),
		     -EPROTO);
}

Test(agent_proto, header_rejects_lengths_impossible_for_the_type)
{
	struct agent_frame f;

	cr_assert_eq(decode_hdr(AGENT_VERSION, AGENT_INIT, 71, false, &f),
		     -EPROTO);
	cr_assert_eq(decode_hdr(AGENT_VERSION, AGENT_INIT, 73, false, &f),
		     -EPROTO);
	cr_assert_eq(decode_hdr(AGENT_VERSION, AGENT_EXEC, 24, false, &f),
		     -EPROTO);
	cr_assert_eq(decode_hdr(AGENT_VERSION, AGENT_WINDOW, 7, true, &f),
		     -EPROTO);
	cr_assert_eq(decode_hdr(AGENT_VERSION, AGENT_WINDOW, 8 + 15, true, &f),
		     -EPROTO);
	cr_assert_eq(decode_hdr(AGENT_VERSION, AGENT_WINDOW, 8 + 32, true, &f),
		     0);
	cr_assert_eq(decode_hdr(AGENT_VERSION, AGENT_FN_DATA, 0, false, &f),
		     -EPROTO);
	cr_assert_eq(decode_hdr(AGENT_VERSION, AGENT_STDIN, 0, false, &f), 0);
	cr_assert_eq(decode_hdr(AGENT_VERSION, AGENT_READY, 0, true, &f),
		     -EPROTO);
	cr_assert_eq(decode_hdr(AGENT_VERSION, AGENT_READY, 5, true, &f),
		     -EPROTO);
	cr_assert_eq(decode_hdr(AGENT_VERSION, AGENT_STARTED, 1, true, &f),
		     -EPROTO);
	cr_assert_eq(decode_hdr(AGENT_VERSION, AGENT_STDOUT, 0, true, &f),
		     -EPROTO);
	cr_assert_eq(decode_hdr(AGENT_VERSION, AGENT_STDERR, 0, true, &f),
		     -EPROTO);
	cr_assert_eq(decode_hdr(AGENT_VERSION, AGENT_EXIT, 7, true, &f),
		     -EPROTO);
	cr_assert_eq(decode_hdr(AGENT_VERSION, AGENT_EXIT, 9, true, &f),
		     -EPROTO);
	cr_assert_eq(decode_hdr(AGENT_VERSION, AGENT_ERROR, 3, true, &f),
		     -EPROTO);
	cr_assert_eq(decode_hdr(AGENT_VERSION, AGENT_ERROR, 4 + AGENT_MSG_MAX,
				true, &f),
		     0);
	cr_assert_eq(decode_hdr(AGENT_VERSION, AGENT_ERROR, 5 + AGENT_MSG_MAX,
				true, &f),
		     -EPROTO);
}

Test(agent_proto, ready_round_trips)
{
	uint8_t b[AGENT_READY_FRAME];
	struct agent_frame f;
	uint32_t v = 0;
	size_t len;

	cr_assert_eq(agent__encode_ready(b, sizeof(b), &len), 0);
	cr_assert_eq(len, 12);
	cr_assert_eq(agent__decode_hdr(b, true, &f, NULL), 0);
	cr_assert_eq(f.type, AGENT_READY);
	cr_assert_eq(agent__decode_ready(b + 8, f.len, &v, NULL), 0);
	cr_assert_eq(v, AGENT_VERSION);
	cr_assert_eq(agent__encode_ready(b, sizeof(b) - 1, &len), -ENOSPC);
	cr_assert_eq(agent__decode_ready(b + 8, 3, &v, NULL), -EPROTO);
	cr_assert_eq(agent__decode_ready(b + 8, 5, &v, NULL), -EPROTO);
}

Test(agent_proto, init_round_trips)
{
	struct agent_init in, out;
	uint8_t b[AGENT_INIT_FRAME];
	struct agent_frame f;
	size_t len, i;
	void *d;

	in.realtime_ns = 0x0123456789abcdefULL;
	for (i = 0; i < sizeof(in.entropy); i++)
		in.entropy[i] = (uint8_t)(i * 7 + 1);
	in.flags = AGENT_INIT_WARM;
	cr_assert_eq(agent__encode_init(b, sizeof(b), &in, &len), 0);
	cr_assert_eq(len, 88);
	cr_assert_eq(b[8], 0xef, "realtime is little-endian");
	cr_assert_eq(b[80], AGENT_INIT_WARM, "flags after the entropy");
	cr_assert_eq(agent__decode_hdr(b, false, &f, NULL), 0);
	d = dup_bytes(b + 8, f.len);
	cr_assert_eq(agent__decode_init(d, f.len, &out, NULL), 0);
	cr_assert_eq(out.realtime_ns, in.realtime_ns);
	cr_assert_arr_eq(out.entropy, in.entropy, sizeof(in.entropy));
	cr_assert_eq(out.flags, AGENT_INIT_WARM);
	cr_assert_eq(agent__decode_init(d, 79, &out, NULL), -EPROTO);
	cr_assert_eq(agent__decode_init(d, 72, &out, NULL), -EPROTO,
		     "protocol 2's INIT");
	free(d);
	/* Unknown flags and a reserved field that is not 0 are refused. */
	b[8 + 72] = 0x02;
	d = dup_bytes(b + 8, f.len);
	cr_assert_eq(agent__decode_init(d, f.len, &out, NULL), -EPROTO);
	free(d);
	b[8 + 72] = AGENT_INIT_WARM;
	b[8 + 79] = 0x80;
	d = dup_bytes(b + 8, f.len);
	cr_assert_eq(agent__decode_init(d, f.len, &out, NULL), -EPROTO);
	free(d);
	in.flags = 0x80000000u;
	cr_assert_eq(agent__encode_init(b, sizeof(b), &in, &len), -EINVAL);
	in.flags = 0;
	cr_assert_eq(agent__encode_init(b, sizeof(b) - 1, &in, &len), -ENOSPC);
}

static uint8_t exec_buf[AGENT_HDR_SIZE + AGENT_FRAME_MAX + 16];

static void decode_exec_ok(const char *const *argv, const char *const *envp,
			   uint64_t fn_size)
{
	struct agent_exec e;
	struct agent_frame f;
	size_t len, size;
	char **av, **ev;
	void *d;
	int i;

	cr_assert_eq(agent__exec_size(argv, envp, fn_size, &size), 0);
	cr_assert_eq(agent__encode_exec(
			     exec_buf, sizeof(exec_buf), argv, envp, fn_size,
			     fn_size ? AGENT_EXEC_IN_WINDOW : 0, &len),
		     0);
	cr_assert_eq(len, size);
	cr_assert_eq(agent__decode_hdr(exec_buf, false, &f, NULL), 0);
	cr_assert_eq(f.type, AGENT_EXEC);
	cr_assert_eq(f.len, len - 8);
	d = dup_bytes(exec_buf + 8, f.len);
	cr_assert_eq(agent__decode_exec(d, f.len, &e, NULL), 0);
	cr_assert_eq(e.fn_size, fn_size);
	cr_assert_eq(e.flags, fn_size ? AGENT_EXEC_IN_WINDOW : 0);
	av = calloc(e.argc + 1, sizeof(char *));
	ev = calloc(e.envc + 1, sizeof(char *));
	agent__exec_split(&e, av, ev);
	for (i = 0; argv[i]; i++)
		cr_assert_str_eq(av[i], argv[i]);
	cr_assert_eq((uint32_t)i, e.argc);
	cr_assert_null(av[i]);
	for (i = 0; envp && envp[i]; i++)
		cr_assert_str_eq(ev[i], envp[i]);
	cr_assert_eq((uint32_t)i, e.envc);
	cr_assert_null(ev[i]);
	free(av);
	free(ev);
	free(d);
}

Test(agent_proto, exec_round_trips)
{
	const char *argv[] = { "fn", "", "two words", "--x=é", NULL };
	const char *envp[] = { "A=1", "EMPTY=", "", NULL };
	const char *one[] = { "", NULL };

	decode_exec_ok(argv, envp, 12345);
	decode_exec_ok(argv, NULL, 0);
	decode_exec_ok(one, NULL, AGENT_FN_MAX);
	decode_exec_ok(one, envp, 1);
}

Test(agent_proto, exec_encoder_refuses_what_the_protocol_cannot_carry)
{
	static const char *many[AGENT_ARGV_MAX + 2];
	static char big[AGENT_FRAME_MAX];
	const char *argv[] = { "fn", NULL };
	const char *huge[] = { big, NULL };
	const char *none[] = { NULL };
	size_t len;
	int i;

	cr_assert_eq(agent__exec_size(NULL, NULL, 0, &len), -EINVAL);
	cr_assert_eq(agent__exec_size(none, NULL, 0, &len), -EINVAL);
	cr_assert_eq(agent__exec_size(argv, NULL, AGENT_FN_MAX + 1, &len),
		     -EFBIG);
	for (i = 0; i < AGENT_ARGV_MAX + 1; i++)
		many[i] = "a";
	cr_assert_eq(agent__exec_size(many, NULL, 0, &len), -E2BIG);
	cr_assert_eq(agent__exec_size(argv, many, 0, &len), -E2BIG);
	many[AGENT_ARGV_MAX] = NULL;
	cr_assert_eq(agent__exec_size(many, NULL, 0, &len), 0);
	memset(big, 'x', sizeof(big) - 1);
	cr_assert_eq(agent__exec_size(huge, NULL, 0, &len), -E2BIG);
	/* The largest string that fits: header 24 + string + NUL = AGENT_FRAME_MAX. */
	big[AGENT_FRAME_MAX - 25] = '\0';
	cr_assert_eq(agent__exec_size(huge, NULL, 0, &len), 0);
	cr_assert_eq(len, AGENT_HDR_SIZE + AGENT_FRAME_MAX);
	big[AGENT_FRAME_MAX - 25] = 'x';
	big[AGENT_FRAME_MAX - 24] = '\0';
	cr_assert_eq(agent__exec_size(huge, NULL, 0, &len), -E2BIG);
	cr_assert_eq(agent__encode_exec(exec_buf, 8 + 24 + 2, argv, NULL, 0, 0,
					&len),
		     -ENOSPC);
	cr_assert_eq(agent__encode_exec(exec_buf, 8 + 24 + 3, argv, NULL, 0, 0,
					&len),
		     0);
}

Test(agent_proto, exec_flags_are_checked)
{
	uint8_t b[64];
	struct agent_exec_wire w = { .fn_size = htole64(0),
				     .argc = htole32(1) };
	struct agent_exec e;

	memcpy(b, &w, sizeof(w));
	b[sizeof(w)] = '\0';
	cr_assert_eq(agent__decode_exec(b, sizeof(w) + 1, &e, NULL), 0);
	/* An empty function cannot be in the window; unknown flags; reserved. */
	w.flags = htole32(AGENT_EXEC_IN_WINDOW);
	memcpy(b, &w, sizeof(w));
	cr_assert_eq(agent__decode_exec(b, sizeof(w) + 1, &e, NULL), -EPROTO);
	w.fn_size = htole64(5);
	memcpy(b, &w, sizeof(w));
	cr_assert_eq(agent__decode_exec(b, sizeof(w) + 1, &e, NULL), 0);
	w.flags = htole32(2);
	memcpy(b, &w, sizeof(w));
	cr_assert_eq(agent__decode_exec(b, sizeof(w) + 1, &e, NULL), -EPROTO);
	w.flags = 0;
	w.reserved = htole32(1);
	memcpy(b, &w, sizeof(w));
	cr_assert_eq(agent__decode_exec(b, sizeof(w) + 1, &e, NULL), -EPROTO);
}

Test(agent_proto, window_round_trips)
{
	const struct agent_extent ext[3] = {
		{ 0x40001000, 0x3000 },
		{ 0x7fff0000, 0x10000 },
		{ 0x40000000, 0x1000 },
	};
	uint8_t b[AGENT_HDR_SIZE + 8 + 3 * 16];
	struct agent_window w;
	struct agent_frame f;
	size_t len;

	cr_assert_eq(
		agent__encode_window(b, sizeof(b) - 1, 0x14000, ext, 3, &len),
		-ENOSPC);
	cr_assert_eq(agent__encode_window(b, sizeof(b), 0x14000, ext, 3, &len),
		     0);
	cr_assert_eq(len, sizeof(b));
	cr_assert_eq(agent__decode_hdr(b, true, &f, NULL), 0);
	cr_assert_eq(f.type, AGENT_WINDOW);
	cr_assert_eq(agent__decode_window(b + 8, f.len, &w, NULL), 0);
	cr_assert_eq(w.size, 0x14000);
	cr_assert_eq(w.count, 3);
	for (uint32_t i = 0; i < 3; i++) {
		struct agent_extent e = agent__window_extent(&w, i);

		cr_assert_eq(e.gpa, ext[i].gpa);
		cr_assert_eq(e.len, ext[i].len);
	}
	/* No window at all. */
	cr_assert_eq(agent__encode_window(b, sizeof(b), 0, NULL, 0, &len), 0);
	cr_assert_eq(agent__decode_hdr(b, true, &f, NULL), 0);
	cr_assert_eq(agent__decode_window(b + 8, f.len, &w, NULL), 0);
	cr_assert_eq(w.size, 0);
	cr_assert_eq(w.count, 0);
}

/* Decodes a WINDOW of @size bytes with extents {gpa, len}... from @ext (@n pairs). */
static int decode_window_raw(uint64_t size, const uint64_t *ext, uint32_t n)
{
	uint8_t b[8 + 4 * 16];
	struct agent_window w;

	size = htole64(size);
	memcpy(b, &size, 8);
	for (uint32_t i = 0; i < 2 * n; i++) {
		uint64_t v = htole64(ext[i]);

		memcpy(b + 8 + 8 * i, &v, 8);
	}
	return agent__decode_window(b, 8 + 16 * (size_t)n, &w, NULL);
}

Test(agent_proto, window_decoder_refuses_bad_extents)
{
	const uint64_t ok[] = { 0x1000, 0x2000 };
	const uint64_t unaligned[] = { 0x1800, 0x2000 };
	const uint64_t odd_len[] = { 0x1000, 0x1800 };
	const uint64_t empty[] = { 0x1000, 0, 0x3000, 0x2000 };
	const uint64_t wraps[] = { 0xfffffffffffff000ULL, 0x2000 };
	uint8_t b[8 + 8];

	cr_assert_eq(decode_window_raw(0x2000, ok, 1), 0);
	cr_assert_eq(decode_window_raw(0x2000, unaligned, 1), -EPROTO);
	cr_assert_eq(decode_window_raw(0x1800, odd_len, 1), -EPROTO);
	cr_assert_eq(decode_window_raw(0x2000, empty, 2), -EPROTO);
	cr_assert_eq(decode_window_raw(0x2000, wraps, 1), -EPROTO);
	/* Extents that add up to more or less than the size. */
	cr_assert_eq(decode_window_raw(0x1000, ok, 1), -EPROTO);
	cr_assert_eq(decode_window_raw(0x3000, ok, 1), -EPROTO);
	cr_assert_eq(
		decode_window_raw((uint64_t)AGENT_WINDOW_MAX + 0x1000, ok, 0),
		-EPROTO);
	/* A payload that is not a whole extent list. */
	memset(b, 0, sizeof(b));
	cr_assert_eq(
		agent__decode_window(b, 12, &(struct agent_window){ 0 }, NULL),
		-EPROTO);
}

/* Builds an EXEC payload by hand: the fixed part, then @strings (@slen bytes). */
static size_t exec_payload(uint8_t *b, uint64_t fn_size, uint32_t argc,
			   uint32_t envc, const char *strings, size_t slen)
{
	struct agent_exec_wire w = { .fn_size = htole64(fn_size),
				     .argc = htole32(argc),
				     .envc = htole32(envc) };

	memcpy(b, &w, sizeof(w));
	memcpy(b + sizeof(w), strings, slen);
	return sizeof(w) + slen;
}

static int decode_exec_raw(uint64_t fn_size, uint32_t argc, uint32_t envc,
			   const char *strings, size_t slen)
{
	static uint8_t b[256];
	struct agent_exec e;
	const char *why = NULL;
	size_t len;
	void *d;
	int r;

	len = exec_payload(b, fn_size, argc, envc, strings, slen);
	d = dup_bytes(b, len);
	r = agent__decode_exec(d, len, &e, &why);
	free(d);
	if (r)
		cr_assert_not_null(why);
	return r;
}

Test(agent_proto, exec_decoder_rejects_malformed_payloads)
{
	struct agent_exec e;
	uint8_t b[24] = { 0 };

	cr_assert_eq(decode_exec_raw(0, 1, 1, "fn\0A=1", 7), 0);
	/* No argv[0], or too many strings. */
	cr_assert_eq(decode_exec_raw(0, 0, 1, "A=1", 4), -EPROTO);
	cr_assert_eq(decode_exec_raw(0, AGENT_ARGV_MAX + 1, 0, "fn", 3),
		     -EPROTO);
	cr_assert_eq(decode_exec_raw(0, 1, AGENT_ENVP_MAX + 1, "fn", 3),
		     -EPROTO);
	cr_assert_eq(decode_exec_raw(0, 0xffffffff, 0xffffffff, "fn", 3),
		     -EPROTO);
	/* Counts that do not match the strings. */
	cr_assert_eq(decode_exec_raw(0, 2, 0, "fn", 3), -EPROTO);
	cr_assert_eq(decode_exec_raw(0, 1, 0, "fn\0x", 5), -EPROTO);
	cr_assert_eq(decode_exec_raw(0, 1, 1, "fn\0A=1", 7), 0);
	cr_assert_eq(decode_exec_raw(0, 1, 0, "fn\0A=1", 7), -EPROTO);
	/* The last string unterminated, or bytes after it. */
	cr_assert_eq(decode_exec_raw(0, 1, 0, "fn", 2), -EPROTO);
	cr_assert_eq(decode_exec_raw(0, 2, 0, "fn\0x", 4), -EPROTO);
	cr_assert_eq(decode_exec_raw(0, 1, 0, "", 0), -EPROTO);
	/* A function over the limit. */
	cr_assert_eq(decode_exec_raw(AGENT_FN_MAX, 1, 0, "f", 2), 0);
	cr_assert_eq(decode_exec_raw(AGENT_FN_MAX + 1, 1, 0, "f", 2), -EPROTO);
	cr_assert_eq(decode_exec_raw(~0ULL, 1, 0, "f", 2), -EPROTO);
	/* Shorter than the fixed part. */
	cr_assert_eq(agent__decode_exec(b, 23, &e, NULL), -EPROTO);
	cr_assert_eq(agent__decode_exec(b, 0, &e, NULL), -EPROTO);
}

static int decode_exit_raw(uint32_t kind, uint32_t code, struct agent_exit *x)
{
	struct agent_exit_wire w = { .kind = htole32(kind),
				     .code = htole32(code) };

	return agent__decode_exit(&w, sizeof(w), x, NULL);
}

Test(agent_proto, exit_round_trips)
{
	static const struct agent_exit ok[] = {
		{ AGENT_EXITED, 0 },   { AGENT_EXITED, 3 },
		{ AGENT_EXITED, 255 }, { AGENT_SIGNALED, 1 },
		{ AGENT_SIGNALED, 9 }, { AGENT_SIGNALED, 64 },
	};
	uint8_t b[AGENT_EXIT_FRAME];
	struct agent_frame f;
	struct agent_exit x;
	size_t len, i;

	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		cr_assert_eq(agent__encode_exit(b, sizeof(b), &ok[i], &len), 0);
		cr_assert_eq(len, 16);
		cr_assert_eq(agent__decode_hdr(b, true, &f, NULL), 0);
		cr_assert_eq(agent__decode_exit(b + 8, f.len, &x, NULL), 0);
		cr_assert_eq(x.kind, ok[i].kind);
		cr_assert_eq(x.code, ok[i].code);
	}
	cr_assert_eq(agent__encode_exit(b, sizeof(b) - 1, &ok[0], &len),
		     -ENOSPC);
}

Test(agent_proto, exit_rejects_unknown_kinds_and_codes_out_of_range)
{
	static const struct agent_exit bad[] = {
		{ AGENT_EXITED, 256 },
		{ AGENT_SIGNALED, 0 },
		{ AGENT_SIGNALED, 65 },
		{ (enum agent_exit_kind)2, 0 },
		{ (enum agent_exit_kind) - 1, 1 },
	};
	uint8_t b[AGENT_EXIT_FRAME];
	struct agent_exit x;
	size_t len, i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_assert_eq(
			decode_exit_raw((uint32_t)bad[i].kind, bad[i].code, &x),
			-EPROTO, "case %zu", i);
		cr_assert_eq(agent__encode_exit(b, sizeof(b), &bad[i], &len),
			     -EINVAL, "case %zu", i);
	}
	cr_assert_eq(decode_exit_raw(AGENT_EXITED, 0xffffffff, &x), -EPROTO);
	cr_assert_eq(agent__decode_exit(b, 7, &x, NULL), -EPROTO);
	cr_assert_eq(agent__decode_exit(b, 9, &x, NULL), -EPROTO);
}

Test(agent_proto, error_round_trips)
{
	uint8_t b[AGENT_ERROR_FRAME_MAX];
	struct agent_error e;
	struct agent_frame f;
	size_t len;
	void *d;

	cr_assert_eq(agent__encode_error(b, sizeof(b), ENOEXEC,
					 "exec fn: Exec format error", &len),
		     0);
	cr_assert_eq(agent__decode_hdr(b, true, &f, NULL), 0);
	cr_assert_eq(f.type, AGENT_ERROR);
	cr_assert_eq(len, 8 + f.len);
	d = dup_bytes(b + 8, f.len);
	cr_assert_eq(agent__decode_error(d, f.len, &e, NULL), 0);
	free(d);
	cr_assert_eq(e.code, ENOEXEC);
	cr_assert_str_eq(e.message, "exec fn: Exec format error");
	/* An empty message is fine. */
	cr_assert_eq(agent__encode_error(b, sizeof(b), EIO, "", &len), 0);
	cr_assert_eq(len, 12);
	cr_assert_eq(agent__decode_error(b + 8, 4, &e, NULL), 0);
	cr_assert_str_eq(e.message, "");
	cr_assert_eq(agent__encode_error(b, sizeof(b), EIO, NULL, &len), 0);
	cr_assert_eq(len, 12);
}

Test(agent_proto, error_encoder_always_makes_a_valid_frame)
{
	uint8_t b[AGENT_ERROR_FRAME_MAX];
	char msg[400];
	struct agent_error e;
	struct agent_frame f;
	size_t len;

	/* Too long: cut. Not printable: '?'. Out-of-range codes: clamped. */
	memset(msg, 'm', sizeof(msg) - 1);
	msg[sizeof(msg) - 1] = '\0';
	msg[0] = '\n';
	msg[1] = '\x1b';
	msg[2] = (char)0xc3;
	cr_assert_eq(agent__encode_error(b, sizeof(b), 0, msg, &len), 0);
	cr_assert_eq(len, AGENT_ERROR_FRAME_MAX);
	cr_assert_eq(agent__decode_hdr(b, true, &f, NULL), 0);
	cr_assert_eq(agent__decode_error(b + 8, f.len, &e, NULL), 0);
	cr_assert_eq(e.code, 1);
	cr_assert_eq(strlen(e.message), AGENT_MSG_MAX);
	cr_assert_eq(strncmp(e.message, "???mmm", 6), 0);
	cr_assert_eq(agent__encode_error(b, sizeof(b), 100000, "x", &len), 0);
	cr_assert_eq(agent__decode_error(b + 8, 5, &e, NULL), 0);
	cr_assert_eq(e.code, 4095);
	cr_assert_eq(agent__encode_error(b, 8 + 4 + 2, EIO, "abc", &len),
		     -ENOSPC);
}

static int decode_error_raw(uint32_t code, const char *msg, size_t n)
{
	uint8_t b[4 + 300];
	struct agent_error e;
	const char *why = NULL;
	void *d;
	int r;

	code = htole32(code);
	memcpy(b, &code, 4);
	memcpy(b + 4, msg, n);
	d = dup_bytes(b, 4 + n);
	r = agent__decode_error(d, 4 + n, &e, &why);
	free(d);
	if (r)
		cr_assert_not_null(why);
	else
		cr_assert_eq(strlen(e.message), n);
	return r;
}

Test(agent_proto, error_decoder_rejects_bad_codes_and_messages)
{
	char m[300];
	struct agent_error e;

	memset(m, 'a', sizeof(m));
	cr_assert_eq(decode_error_raw(EIO, "ok ~", 4), 0);
	cr_assert_eq(decode_error_raw(0, "x", 1), -EPROTO);
	cr_assert_eq(decode_error_raw(4096, "x", 1), -EPROTO);
	cr_assert_eq(decode_error_raw(0xffffffff, "x", 1), -EPROTO);
	cr_assert_eq(decode_error_raw(EIO, "a\0b", 3), -EPROTO);
	cr_assert_eq(decode_error_raw(EIO, "a\nb", 3), -EPROTO);
	cr_assert_eq(decode_error_raw(EIO, "\x1b[2J", 4), -EPROTO);
	cr_assert_eq(decode_error_raw(EIO, "\x7f", 1), -EPROTO);
	cr_assert_eq(decode_error_raw(EIO, "\xc3\xa9", 2), -EPROTO);
	cr_assert_eq(decode_error_raw(EIO, m, AGENT_MSG_MAX), 0);
	cr_assert_eq(decode_error_raw(EIO, m, AGENT_MSG_MAX + 1), -EPROTO);
	cr_assert_eq(agent__decode_error(m, 3, &e, NULL), -EPROTO);
}

Test(agent_proto, started_is_an_empty_frame)
{
	uint8_t b[AGENT_HDR_SIZE];
	struct agent_frame f;
	size_t len;

	cr_assert_eq(agent__encode_started(b, sizeof(b), &len), 0);
	cr_assert_eq(len, 8);
	cr_assert_eq(agent__decode_hdr(b, true, &f, NULL), 0);
	cr_assert_eq(f.type, AGENT_STARTED);
	cr_assert_eq(f.len, 0);
	cr_assert_eq(agent__encode_started(b, 7, &len), -ENOSPC);
}

Test(agent_proto, type_names)
{
	cr_assert_str_eq(agent__type_name(AGENT_STDOUT), "STDOUT");
	cr_assert_str_eq(agent__type_name(AGENT_FN_DATA), "FN_DATA");
	cr_assert_str_eq(agent__type_name(0x7777), "unknown");
}
