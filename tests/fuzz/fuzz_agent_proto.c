// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: bytes from a hostile agent, through the frame decoders and invoke's receive path.
#include <errno.h>
#include <fcntl.h>
#include <sanitizer/common_interface_defs.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../../images/agent/proto.h"
#include "../../launcher/invoke.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Below a socket's default buffer, so the whole input is queued before the host reads. */
#define MAX_INPUT (64U << 10)

static void check(bool ok)
{
	if (!ok)
		abort();
}

/* Whatever decodes must encode back to the same bytes. */
static void round_trip(const uint8_t *frame, const struct agent_frame *f)
{
	static uint8_t out[AGENT_HDR_SIZE + AGENT_FRAME_MAX];
	static struct agent_extent ext[AGENT_WINDOW_EXTENTS_MAX];
	const uint8_t *p = frame + AGENT_HDR_SIZE;
	struct agent_window w;
	struct agent_error e;
	struct agent_exit x;
	uint32_t version;
	size_t len = 0;

	switch (f->type) {
	case AGENT_READY:
		if (agent__decode_ready(p, f->len, &version, NULL) < 0 ||
		    version != AGENT_VERSION)
			return;
		check(agent__encode_ready(out, sizeof(out), &len) == 0);
		break;
	case AGENT_EXIT:
		if (agent__decode_exit(p, f->len, &x, NULL) < 0)
			return;
		check(agent__encode_exit(out, sizeof(out), &x, &len) == 0);
		break;
	case AGENT_ERROR:
		if (agent__decode_error(p, f->len, &e, NULL) < 0)
			return;
		check(strlen(e.message) == f->len - 4);
		check(agent__encode_error(out, sizeof(out), e.code, e.message,
					  &len) == 0);
		break;
	case AGENT_STARTED:
		check(agent__encode_started(out, sizeof(out), &len) == 0);
		break;
	case AGENT_WINDOW:
		if (agent__decode_window(p, f->len, &w, NULL) < 0)
			return;
		check(w.count <= AGENT_WINDOW_EXTENTS_MAX);
		for (uint32_t i = 0; i < w.count; i++)
			ext[i] = agent__window_extent(&w, i);
		check(agent__encode_window(out, sizeof(out), w.size, ext,
					   w.count, &len) == 0);
		break;
	default:
		return;
	}
	check(len == AGENT_HDR_SIZE + f->len);
	check(memcmp(out, frame, len) == 0);
}

/* The input as a stream of guest frames, decoded the way the host does. */
static void decode_all(const uint8_t *data, size_t size)
{
	struct agent_frame f;
	size_t off = 0;

	while (size - off >= AGENT_HDR_SIZE) {
		if (agent__decode_hdr(data + off, true, &f, NULL) < 0)
			return;
		check(f.len <= AGENT_FRAME_MAX);
		check((f.type & AGENT_FROM_GUEST) != 0);
		if (size - off - AGENT_HDR_SIZE < f.len)
			return;
		round_trip(data + off, &f);
		off += AGENT_HDR_SIZE + f.len;
	}
}

/*
 * invoke logs every rejection, and a fuzz run makes millions: fd 2 goes to /dev/null around
 * each call. Sanitizer reports keep the real stderr through their own report fd.
 */
static int devnull = -1;
static int real_stderr = -1;

static void quiet(bool on)
{
	if (real_stderr >= 0)
		dup2(on ? devnull : real_stderr, STDERR_FILENO);
}

/* The input queued on a socketpair and ended: sv[0] reads it as if from an agent. */
static void feed(const uint8_t *data, size_t size, int sv[2])
{
	ssize_t n;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		abort();
	if (size) {
		n = send(sv[1], data, size, MSG_NOSIGNAL);
		check(n == (ssize_t)size);
	}
	shutdown(sv[1], SHUT_WR);
	/* The host's own frames pile up unread in sv[1]'s buffer; they are small. */
}

/* Guest memory that takes anything the window's checks let through. */
static int write_guest(void *arg, uint64_t gpa, const void *src, size_t len)
{
	(void)arg;
	(void)src;
	check(len > 0 && len <= AGENT_WINDOW_MAX);
	check(gpa % AGENT_WINDOW_PAGE == 0 && gpa + len > gpa);
	return 0;
}

static void run_invoke(const uint8_t *data, size_t size)
{
	static const char *const argv[] = { "fn", "arg", NULL };
	static const char fn[] = "\x7f"
				 "ELF function bytes";
	struct invoke_request req = { .argv = argv,
				      .fn = fn,
				      .fn_size = sizeof(fn),
				      .in_fd = -1,
				      .out_fd = devnull,
				      .err_fd = devnull,
				      .timeout_ms = 5000,
				      .cancel_fd = -1,
				      .write_guest = write_guest };
	struct invoke_result res;
	int sv[2], r;
	size_t i;

	feed(data, size, sv);
	quiet(true);
	r = invoke__run(sv[0], &req, &res);
	quiet(false);
	/* The stream always ends, so a timeout would be a hang. */
	check(r == 0 || r == -EPROTO || r == -ECONNRESET);
	check(res.stdout_bytes + res.stderr_bytes <= size);
	if (r == 0) {
		check(res.ended_ns > 0);
		switch (res.kind) {
		case INVOKE_EXITED:
			check(res.code >= 0 && res.code <= 255);
			check(res.started_ns > 0);
			break;
		case INVOKE_SIGNALED:
			check(res.code >= 1 && res.code <= 64);
			check(res.started_ns > 0);
			break;
		case INVOKE_AGENT_ERROR:
			check(res.code >= 1 && res.code <= 4095);
			for (i = 0; res.message[i]; i++)
				check(res.message[i] >= 0x20 &&
				      res.message[i] <= 0x7e);
			check(i <= AGENT_MSG_MAX);
			break;
		default:
			check(false);
		}
	}
	close(sv[0]);
	close(sv[1]);
}

static void run_wait_ready(const uint8_t *data, size_t size)
{
	int sv[2], r;

	feed(data, size, sv);
	quiet(true);
	r = invoke__wait_ready(sv[0], 5000);
	quiet(false);
	check(r == 0 || r == -EPROTO || r == -ECONNRESET);
	if (r == 0)
		check(size >= AGENT_READY_FRAME);
	close(sv[0]);
	close(sv[1]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > MAX_INPUT)
		return 0;
	if (devnull < 0) {
		devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
		if (devnull < 0)
			abort();
		/* FUZZ_VERBOSE=1 shows invoke's messages. */
		if (!getenv("FUZZ_VERBOSE")) {
			real_stderr = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 10);
			if (real_stderr >= 0)
				__sanitizer_set_report_fd(
					(void *)(intptr_t)real_stderr);
		}
	}
	decode_all(data, size);
	run_invoke(data, size);
	run_wait_ready(data, size);
	return 0;
}
