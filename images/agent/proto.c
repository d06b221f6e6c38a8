// SPDX-License-Identifier: Apache-2.0
// The agent protocol's frame and payload codec, shared by the guest agent and the host.
#include <endian.h>
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "proto.h"

_Static_assert(offsetof(struct agent_hdr_wire, type) == 2, "hdr layout");
_Static_assert(offsetof(struct agent_hdr_wire, length) == 4, "hdr layout");
_Static_assert(offsetof(struct agent_init_wire, entropy) == 8, "init layout");
_Static_assert(offsetof(struct agent_exec_wire, argc) == 8, "exec layout");
_Static_assert(offsetof(struct agent_exec_wire, envc) == 12, "exec layout");
_Static_assert(offsetof(struct agent_exec_wire, flags) == 16, "exec layout");
_Static_assert(AGENT_WINDOW_FRAME_MAX <= AGENT_HDR_SIZE + AGENT_FRAME_MAX,
	       "a window fits a frame");
_Static_assert(offsetof(struct agent_exit_wire, code) == 4, "exit layout");
/* Frame lengths are handled as int-sized quantities by both sides. */
_Static_assert(AGENT_HDR_SIZE + AGENT_FRAME_MAX < (1U << 31), "frame max");

#define ERRNO_MAX 4095
#define SIGNAL_MAX 64

static int bad(const char **why, const char *what)
{
	if (why)
		*why = what;
	return -EPROTO;
}

static bool printable(unsigned char c)
{
	return c >= 0x20 && c <= 0x7e;
}

/* Payload lengths a type allows: exact for fixed payloads, a minimum for the others. */
static bool length_ok(uint16_t type, uint32_t len)
{
	switch (type) {
	case AGENT_INIT:
		return len == sizeof(struct agent_init_wire);
	case AGENT_EXEC:
		/* argv[0] is at least its NUL. */
		return len >= sizeof(struct agent_exec_wire) + 1;
	case AGENT_FN_DATA:
	case AGENT_STDOUT:
	case AGENT_STDERR:
		/* An empty data frame would carry nothing; only STDIN gives it a meaning. */
		return len > 0;
	case AGENT_STDIN:
		return true;
	case AGENT_READY:
		return len == 4;
	case AGENT_STARTED:
		return len == 0;
	case AGENT_EXIT:
		return len == sizeof(struct agent_exit_wire);
	case AGENT_ERROR:
		return len >= sizeof(struct agent_error_wire) &&
		       len <= sizeof(struct agent_error_wire) + AGENT_MSG_MAX;
	case AGENT_WINDOW:
		return len >= sizeof(struct agent_window_wire) &&
		       (len - sizeof(struct agent_window_wire)) %
				       sizeof(struct agent_extent) ==
			       0;
	}
	return false;
}

static bool exit_ok(uint32_t kind, uint32_t code)
{
	if (kind == AGENT_EXITED)
		return code <= 255;
	if (kind == AGENT_SIGNALED)
		return code >= 1 && code <= SIGNAL_MAX;
	return false;
}

/* NULL for a type this version does not know. */
static const char *name_of(uint16_t type)
{
	switch (type) {
	case AGENT_INIT:
		return "INIT";
	case AGENT_EXEC:
		return "EXEC";
	case AGENT_FN_DATA:
		return "FN_DATA";
	case AGENT_STDIN:
		return "STDIN";
	case AGENT_READY:
		return "READY";
	case AGENT_STARTED:
		return "STARTED";
	case AGENT_STDOUT:
		return "STDOUT";
	case AGENT_STDERR:
		return "STDERR";
	case AGENT_EXIT:
		return "EXIT";
	case AGENT_ERROR:
		return "ERROR";
	case AGENT_WINDOW:
		return "WINDOW";
	}
	return NULL;
}

int agent__decode_hdr(const void *p, bool from_guest, struct agent_frame *f,
		      const char **why)
{
	struct agent_hdr_wire h;
	uint16_t type;
	uint32_t len;

	memcpy(&h, p, sizeof(h));
	if (le16toh(h.version) != AGENT_VERSION)
		return bad(why, "unsupported protocol version");
	type = le16toh(h.type);
	len = le32toh(h.length);
	if (!name_of(type))
		return bad(why, "unknown frame type");
	if (!!(type & AGENT_FROM_GUEST) != from_guest)
		return bad(why, from_guest ? "host frame type from the guest"
					   : "guest frame type from the host");
	if (len > AGENT_FRAME_MAX)
		return bad(why, "frame longer than AGENT_FRAME_MAX");
	if (!length_ok(type, len))
		return bad(why, "payload length wrong for the frame type");
	f->type = type;
	f->len = len;
	return 0;
}

int agent__decode_ready(const void *p, size_t len, uint32_t *version,
			const char **why)
{
	uint32_t v;

	if (len != sizeof(v))
		return bad(why, "READY payload is not 4 bytes");
	memcpy(&v, p, sizeof(v));
	*version = le32toh(v);
	return 0;
}

int agent__decode_init(const void *p, size_t len, struct agent_init *out,
		       const char **why)
{
	struct agent_init_wire w;

	if (len != sizeof(w))
		return bad(why, "INIT payload is not 80 bytes");
	memcpy(&w, p, sizeof(w));
	if (le32toh(w.flags) & ~AGENT_INIT_FLAGS)
		return bad(why, "INIT has unknown flags");
	if (w.reserved)
		return bad(why, "INIT's reserved field is not 0");
	out->realtime_ns = le64toh(w.realtime_ns);
	memcpy(out->entropy, w.entropy, sizeof(out->entropy));
	out->flags = le32toh(w.flags);
	return 0;
}

int agent__decode_exec(const void *p, size_t len, struct agent_exec *out,
		       const char **why)
{
	const char *s = (const char *)p + sizeof(struct agent_exec_wire);
	struct agent_exec_wire w;
	uint64_t fn_size, n;
	uint32_t argc, envc, flags;
	size_t rest, i;

	if (len < sizeof(w))
		return bad(why, "EXEC payload shorter than its header");
	memcpy(&w, p, sizeof(w));
	fn_size = le64toh(w.fn_size);
	argc = le32toh(w.argc);
	envc = le32toh(w.envc);
	flags = le32toh(w.flags);
	if (fn_size > AGENT_FN_MAX)
		return bad(why, "EXEC function size over AGENT_FN_MAX");
	if ((flags & ~AGENT_EXEC_IN_WINDOW) || w.reserved)
		return bad(why, "EXEC flags unknown or reserved field not 0");
	if ((flags & AGENT_EXEC_IN_WINDOW) && !fn_size)
		return bad(why, "EXEC of an empty function in the window");
	if (argc < 1)
		return bad(why, "EXEC without argv[0]");
	if (argc > AGENT_ARGV_MAX)
		return bad(why, "EXEC argc over AGENT_ARGV_MAX");
	if (envc > AGENT_ENVP_MAX)
		return bad(why, "EXEC envc over AGENT_ENVP_MAX");
	rest = len - sizeof(w);
	/* Count NULs: there must be exactly argc + envc, the last one ending the payload. */
	n = 0;
	for (i = 0; i < rest; i++)
		if (s[i] == '\0')
			n++;
	if (n != (uint64_t)argc + envc)
		return bad(why, "EXEC string count does not match argc + envc");
	if (rest == 0 || s[rest - 1] != '\0')
		return bad(why, "EXEC strings do not end the payload");
	out->fn_size = fn_size;
	out->argc = argc;
	out->envc = envc;
	out->flags = flags;
	out->strings = s;
	out->strings_len = rest;
	return 0;
}

int agent__decode_window(const void *p, size_t len, struct agent_window *out,
			 const char **why)
{
	struct agent_window_wire w;
	struct agent_window win;
	uint64_t sum = 0;
	uint32_t i;

	if (len < sizeof(w) || (len - sizeof(w)) % sizeof(struct agent_extent))
		return bad(why,
			   "WINDOW payload length is not a whole extent list");
	memcpy(&w, p, sizeof(w));
	win.size = le64toh(w.size);
	win.count = (uint32_t)((len - sizeof(w)) / sizeof(struct agent_extent));
	win.ext = (const uint8_t *)p + sizeof(w);
	if (win.size > AGENT_WINDOW_MAX || win.size % AGENT_WINDOW_PAGE)
		return bad(
			why,
			"WINDOW size over AGENT_WINDOW_MAX or not whole pages");
	for (i = 0; i < win.count; i++) {
		struct agent_extent e = agent__window_extent(&win, i);

		if (!e.len || e.gpa % AGENT_WINDOW_PAGE ||
		    e.len % AGENT_WINDOW_PAGE || e.gpa + e.len < e.gpa)
			return bad(
				why,
				"WINDOW extent empty, unaligned or wrapping");
		if (e.len > win.size - sum)
			return bad(
				why,
				"WINDOW extents add up to more than its size");
		sum += e.len;
	}
	if (sum != win.size)
		return bad(why, "WINDOW extents add up to less than its size");
	*out = win;
	return 0;
}

struct agent_extent agent__window_extent(const struct agent_window *w,
					 uint32_t i)
{
	struct agent_extent e;

	memcpy(&e, w->ext + (size_t)i * sizeof(e), sizeof(e));
	e.gpa = le64toh(e.gpa);
	e.len = le64toh(e.len);
	return e;
}

void agent__exec_split(const struct agent_exec *e, char **argv, char **envp)
{
	const char *s = e->strings;
	uint32_t i;

	/* decode_exec() counted exactly argc + envc terminated strings. */
	for (i = 0; i < e->argc; i++) {
		argv[i] = (char *)s;
		s += strlen(s) + 1;
	}
	argv[e->argc] = NULL;
	for (i = 0; i < e->envc; i++) {
		envp[i] = (char *)s;
		s += strlen(s) + 1;
	}
	envp[e->envc] = NULL;
}

int agent__decode_exit(const void *p, size_t len, struct agent_exit *out,
		       const char **why)
{
	struct agent_exit_wire w;
	uint32_t kind, code;

	if (len != sizeof(w))
		return bad(why, "EXIT payload is not 8 bytes");
	memcpy(&w, p, sizeof(w));
	kind = le32toh(w.kind);
	code = le32toh(w.code);
	if (!exit_ok(kind, code))
		return bad(why, "EXIT kind unknown or code out of its range");
	out->kind = (enum agent_exit_kind)kind;
	out->code = code;
	return 0;
}

int agent__decode_error(const void *p, size_t len, struct agent_error *out,
			const char **why)
{
	const unsigned char *m = (const unsigned char *)p + 4;
	uint32_t code;
	size_t i, n;

	if (len < sizeof(code) || len - sizeof(code) > AGENT_MSG_MAX)
		return bad(why, "ERROR payload length out of range");
	memcpy(&code, p, sizeof(code));
	code = le32toh(code);
	if (code < 1 || code > ERRNO_MAX)
		return bad(why, "ERROR code is not an errno");
	n = len - sizeof(code);
	for (i = 0; i < n; i++)
		if (!printable(m[i]))
			return bad(why, "ERROR message is not printable ASCII");
	out->code = code;
	memcpy(out->message, m, n);
	out->message[n] = '\0';
	return 0;
}

void agent__encode_hdr(void *buf, uint16_t type, uint32_t len)
{
	struct agent_hdr_wire h = {
		.version = htole16(AGENT_VERSION),
		.type = htole16(type),
		.length = htole32(len),
	};

	memcpy(buf, &h, sizeof(h));
}

int agent__encode_ready(void *buf, size_t size, size_t *len)
{
	uint32_t v = htole32(AGENT_VERSION);

	if (size < AGENT_READY_FRAME)
		return -ENOSPC;
	agent__encode_hdr(buf, AGENT_READY, sizeof(v));
	memcpy((char *)buf + AGENT_HDR_SIZE, &v, sizeof(v));
	*len = AGENT_READY_FRAME;
	return 0;
}

int agent__encode_init(void *buf, size_t size, const struct agent_init *in,
		       size_t *len)
{
	struct agent_init_wire w;

	if (size < AGENT_INIT_FRAME)
		return -ENOSPC;
	if (in->flags & ~AGENT_INIT_FLAGS)
		return -EINVAL;
	w.realtime_ns = htole64(in->realtime_ns);
	memcpy(w.entropy, in->entropy, sizeof(w.entropy));
	w.flags = htole32(in->flags);
	w.reserved = 0;
	agent__encode_hdr(buf, AGENT_INIT, sizeof(w));
	memcpy((char *)buf + AGENT_HDR_SIZE, &w, sizeof(w));
	*len = AGENT_INIT_FRAME;
	return 0;
}

/* Strings in a NULL-terminated vector and their bytes with NULs; -E2BIG past @max strings. */
static int vector_size(const char *const *v, uint32_t max, uint32_t *count,
		       size_t *bytes)
{
	uint32_t n = 0;
	size_t b = 0;

	for (; v && v[n]; n++) {
		if (n == max)
			return -E2BIG;
		b += strlen(v[n]) + 1;
		/* Stop before the sum could wrap: the frame limit is far below. */
		if (b > AGENT_FRAME_MAX)
			return -E2BIG;
	}
	*count = n;
	*bytes = b;
	return 0;
}

int agent__exec_size(const char *const *argv, const char *const *envp,
		     uint64_t fn_size, size_t *len)
{
	uint32_t argc, envc;
	size_t ab, eb, payload;
	int err;

	if (!argv || !argv[0])
		return -EINVAL;
	if (fn_size > AGENT_FN_MAX)
		return -EFBIG;
	err = vector_size(argv, AGENT_ARGV_MAX, &argc, &ab);
	if (!err)
		err = vector_size(envp, AGENT_ENVP_MAX, &envc, &eb);
	if (err)
		return err;
	payload = sizeof(struct agent_exec_wire) + ab + eb;
	if (payload > AGENT_FRAME_MAX)
		return -E2BIG;
	*len = AGENT_HDR_SIZE + payload;
	return 0;
}

static char *put_vector(char *d, const char *const *v)
{
	size_t n;

	for (; v && *v; v++) {
		n = strlen(*v) + 1;
		memcpy(d, *v, n);
		d += n;
	}
	return d;
}

int agent__encode_exec(void *buf, size_t size, const char *const *argv,
		       const char *const *envp, uint64_t fn_size,
		       uint32_t flags, size_t *len)
{
	struct agent_exec_wire w;
	uint32_t argc = 0, envc = 0;
	size_t need;
	char *d;
	int err;

	err = agent__exec_size(argv, envp, fn_size, &need);
	if (err)
		return err;
	if (size < need)
		return -ENOSPC;
	while (argv[argc])
		argc++;
	while (envp && envp[envc])
		envc++;
	w.fn_size = htole64(fn_size);
	w.argc = htole32(argc);
	w.envc = htole32(envc);
	w.flags = htole32(flags);
	w.reserved = 0;
	agent__encode_hdr(buf, AGENT_EXEC, (uint32_t)(need - AGENT_HDR_SIZE));
	memcpy((char *)buf + AGENT_HDR_SIZE, &w, sizeof(w));
	d = (char *)buf + AGENT_HDR_SIZE + sizeof(w);
	d = put_vector(d, argv);
	put_vector(d, envp);
	*len = need;
	return 0;
}

int agent__encode_window(void *buf, size_t size, uint64_t window_size,
			 const struct agent_extent *ext, uint32_t count,
			 size_t *len)
{
	struct agent_window_wire w = { .size = htole64(window_size) };
	size_t need = AGENT_HDR_SIZE + sizeof(w) +
		      (size_t)count * sizeof(struct agent_extent);
	char *d = (char *)buf + AGENT_HDR_SIZE + sizeof(w);
	uint32_t i;

	if (count > AGENT_WINDOW_EXTENTS_MAX)
		return -E2BIG;
	if (size < need)
		return -ENOSPC;
	agent__encode_hdr(buf, AGENT_WINDOW, (uint32_t)(need - AGENT_HDR_SIZE));
	memcpy((char *)buf + AGENT_HDR_SIZE, &w, sizeof(w));
	for (i = 0; i < count; i++) {
		struct agent_extent e = { .gpa = htole64(ext[i].gpa),
					  .len = htole64(ext[i].len) };

		memcpy(d + (size_t)i * sizeof(e), &e, sizeof(e));
	}
	*len = need;
	return 0;
}

int agent__encode_started(void *buf, size_t size, size_t *len)
{
	if (size < AGENT_HDR_SIZE)
		return -ENOSPC;
	agent__encode_hdr(buf, AGENT_STARTED, 0);
	*len = AGENT_HDR_SIZE;
	return 0;
}

int agent__encode_exit(void *buf, size_t size, const struct agent_exit *in,
		       size_t *len)
{
	struct agent_exit_wire w;

	if (!exit_ok((uint32_t)in->kind, in->code))
		return -EINVAL;
	if (size < AGENT_EXIT_FRAME)
		return -ENOSPC;
	w.kind = htole32((uint32_t)in->kind);
	w.code = htole32(in->code);
	agent__encode_hdr(buf, AGENT_EXIT, sizeof(w));
	memcpy((char *)buf + AGENT_HDR_SIZE, &w, sizeof(w));
	*len = AGENT_EXIT_FRAME;
	return 0;
}

int agent__encode_error(void *buf, size_t size, uint32_t code,
			const char *message, size_t *len)
{
	size_t n = message ? strnlen(message, AGENT_MSG_MAX) : 0;
	char *d = (char *)buf + AGENT_HDR_SIZE + sizeof(code);
	size_t i;

	if (size < AGENT_HDR_SIZE + sizeof(code) + n)
		return -ENOSPC;
	if (code < 1 || code > ERRNO_MAX)
		code = code < 1 ? 1 : ERRNO_MAX;
	agent__encode_hdr(buf, AGENT_ERROR, (uint32_t)(sizeof(code) + n));
	code = htole32(code);
	memcpy((char *)buf + AGENT_HDR_SIZE, &code, sizeof(code));
	for (i = 0; i < n; i++)
		d[i] = printable((unsigned char)message[i]) ? message[i] : '?';
	*len = AGENT_HDR_SIZE + sizeof(code) + n;
	return 0;
}

const char *agent__type_name(uint16_t type)
{
	const char *name = name_of(type);

	return name ? name : "unknown";
}
