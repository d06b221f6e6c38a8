/* SPDX-License-Identifier: Apache-2.0 */
/* The guest agent wire protocol: frame and payload encoders and decoders, pure (no I/O). */
#ifndef SANDBOX_AGENT_PROTO_H
#define SANDBOX_AGENT_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Shared by the guest agent and the host (launcher/invoke.c); the guest image
 * is built from images/agent/ alone, so this header needs nothing from vmm/.
 * Identical to vmm/util.h's definition, so either may come first.
 */
#ifndef __must_check
#define __must_check __attribute__((warn_unused_result))
#endif

/*
 * docs/agent-protocol.md is the specification. In short: a vsock stream
 * carries frames, each an 8-byte header {le16 version, le16 type, le32
 * length} and `length` payload bytes. Multi-byte fields are little-endian.
 */

#define AGENT_HOST_CID 2 /* VMADDR_CID_HOST */
#define AGENT_PORT 52 /* the agent listens here for the invocation */
#define AGENT_READY_PORT 53 /* the host listens here for READY */

#define AGENT_VERSION 3
#define AGENT_HDR_SIZE 8
/* The largest payload of any frame. */
#define AGENT_FRAME_MAX (1U << 20)
/* Data frames (FN_DATA, STDIN, STDOUT, STDERR) as our encoders cut them. */
#define AGENT_CHUNK (64U << 10)
#define AGENT_ENTROPY_SIZE 64
/* The largest function; the guest's memory is the practical limit. */
#define AGENT_FN_MAX (1ULL << 30)
/* Limits on EXEC: strings per vector. */
#define AGENT_ARGV_MAX 4096
#define AGENT_ENVP_MAX 4096
/* ERROR messages: printable ASCII, not NUL-terminated on the wire. */
#define AGENT_MSG_MAX 255
/*
 * The function window: guest memory the agent sets aside for the function,
 * which the host writes directly instead of sending FN_DATA. Extents are
 * whole 4 KiB pages; the agent's window is AGENT_WINDOW_SIZE, a host takes
 * up to AGENT_WINDOW_MAX.
 */
#define AGENT_WINDOW_PAGE 4096U
#define AGENT_WINDOW_SIZE (8U << 20)
#define AGENT_WINDOW_MAX (64U << 20)
#define AGENT_WINDOW_EXTENTS_MAX (AGENT_WINDOW_MAX / AGENT_WINDOW_PAGE)
/* EXEC flags: the function's bytes are in the window; no FN_DATA follows. */
#define AGENT_EXEC_IN_WINDOW 1U

/* Guest-to-host types have this bit; a frame going the wrong way is an error. */
#define AGENT_FROM_GUEST 0x0100

enum agent_type {
	/* host -> guest */
	AGENT_INIT = 0x0001, /* struct agent_init_wire */
	AGENT_EXEC =
		0x0002, /* struct agent_exec_wire, then argv and envp strings */
	AGENT_FN_DATA = 0x0003, /* 1.. bytes of the function */
	AGENT_STDIN = 0x0004, /* bytes for the function's stdin; empty: EOF */
	/* guest -> host */
	AGENT_READY = 0x0101, /* le32 AGENT_VERSION */
	AGENT_STARTED = 0x0102, /* empty: the function was exec'd */
	AGENT_STDOUT = 0x0103, /* 1.. bytes the function wrote */
	AGENT_STDERR = 0x0104,
	AGENT_EXIT = 0x0105, /* struct agent_exit_wire */
	AGENT_ERROR = 0x0106, /* struct agent_error_wire, then the message */
	AGENT_WINDOW = 0x0107, /* struct agent_window_wire, then its extents */
};

struct agent_hdr_wire {
	uint16_t version; /* le16 AGENT_VERSION */
	uint16_t type; /* le16 enum agent_type */
	uint32_t length; /* le32 payload bytes, at most AGENT_FRAME_MAX */
};
_Static_assert(sizeof(struct agent_hdr_wire) == AGENT_HDR_SIZE, "hdr size");

struct agent_init_wire {
	uint64_t realtime_ns; /* le64 host CLOCK_REALTIME, ns since the epoch */
	uint8_t entropy[AGENT_ENTROPY_SIZE]; /* from the host's getrandom() */
	uint32_t flags; /* le32 AGENT_INIT_WARM, other bits 0 */
	uint32_t reserved; /* 0 */
};
_Static_assert(sizeof(struct agent_init_wire) == 80, "init size");

/*
 * INIT's flags. WARM: the host will not send EXEC at once (a pool's VM waits
 * for its run), so the agent spends the wait running a throwaway process
 * through the same steps as a function (exec, C library start, a write to a
 * pipe, exit): the guest pages and the host's mappings of them that every
 * function needs are then in place before the run comes.
 */
#define AGENT_INIT_WARM (1u << 0)
#define AGENT_INIT_FLAGS AGENT_INIT_WARM

struct agent_exec_wire {
	uint64_t fn_size; /* le64 the function's bytes, <= AGENT_FN_MAX */
	uint32_t argc; /* le32, 1..AGENT_ARGV_MAX */
	uint32_t envc; /* le32, 0..AGENT_ENVP_MAX */
	uint32_t flags; /* le32 AGENT_EXEC_IN_WINDOW, else FN_DATA follows */
	uint32_t reserved; /* 0 */
	/* then argc + envc NUL-terminated strings, which end the payload exactly */
};
_Static_assert(sizeof(struct agent_exec_wire) == 24, "exec size");

/* The first frame of every connection to AGENT_PORT, from the agent. */
struct agent_window_wire {
	uint64_t size; /* le64 bytes, <= AGENT_WINDOW_MAX; 0: no window */
	/* then extents: { le64 guest physical address, le64 bytes }, in window order */
};
_Static_assert(sizeof(struct agent_window_wire) == 8, "window size");

struct agent_extent {
	uint64_t gpa;
	uint64_t len;
};
_Static_assert(sizeof(struct agent_extent) == 16, "extent size");

enum agent_exit_kind {
	AGENT_EXITED = 0, /* code: exit status 0-255 */
	AGENT_SIGNALED = 1, /* code: signal number 1-64 */
};

struct agent_exit_wire {
	uint32_t kind; /* le32 enum agent_exit_kind */
	uint32_t code; /* le32 */
};
_Static_assert(sizeof(struct agent_exit_wire) == 8, "exit size");

struct agent_error_wire {
	uint32_t code; /* le32 Linux errno, 1..4095 */
	/* then 0..AGENT_MSG_MAX bytes of printable ASCII (0x20-0x7e) */
};
_Static_assert(sizeof(struct agent_error_wire) == 4, "error size");

#define AGENT_READY_FRAME (AGENT_HDR_SIZE + 4)
#define AGENT_INIT_FRAME (AGENT_HDR_SIZE + sizeof(struct agent_init_wire))
#define AGENT_EXIT_FRAME (AGENT_HDR_SIZE + sizeof(struct agent_exit_wire))
#define AGENT_ERROR_FRAME_MAX \
	(AGENT_HDR_SIZE + sizeof(struct agent_error_wire) + AGENT_MSG_MAX)

/* A decoded header. */
struct agent_frame {
	uint16_t type;
	uint32_t len;
};

struct agent_init {
	uint64_t realtime_ns;
	uint8_t entropy[AGENT_ENTROPY_SIZE];
	uint32_t flags; /* AGENT_INIT_* */
};

/* A decoded EXEC: the strings stay in (and point into) the payload buffer. */
struct agent_exec {
	uint64_t fn_size;
	uint32_t argc;
	uint32_t envc;
	uint32_t flags;
	const char *strings;
	size_t strings_len;
};

/* A decoded WINDOW: the extents stay in the payload buffer (agent__window_extent()). */
struct agent_window {
	uint64_t size;
	uint32_t count;
	const uint8_t *ext;
};

struct agent_exit {
	enum agent_exit_kind kind;
	uint32_t code;
};

struct agent_error {
	uint32_t code;
	char message[AGENT_MSG_MAX + 1]; /* NUL-terminated */
};

/*
 * Decoders take untrusted bytes. Each returns 0, or -EPROTO with *@why (when
 * @why is not NULL) set to a static string saying what was wrong. They never
 * read outside [@p, @p + @len).
 */

/*
 * Checks the AGENT_HDR_SIZE bytes at @p: version, a known type going the
 * expected way (@from_guest: guest -> host), and a length that is within
 * AGENT_FRAME_MAX and possible for the type (fixed-size payloads exact; data
 * frames other than STDIN non-empty). Payload contents are for the decoders
 * below.
 */
int agent__decode_hdr(const void *p, bool from_guest, struct agent_frame *f,
		      const char **why) __must_check;
int agent__decode_ready(const void *p, size_t len, uint32_t *version,
			const char **why) __must_check;
int agent__decode_init(const void *p, size_t len, struct agent_init *out,
		       const char **why) __must_check;
/*
 * Every string must end inside the payload and the last must end it; flags
 * are known, reserved is 0, and a function in the window is not empty.
 */
int agent__decode_exec(const void *p, size_t len, struct agent_exec *out,
		       const char **why) __must_check;
/* The kind must be known and the code in its range. */
int agent__decode_exit(const void *p, size_t len, struct agent_exit *out,
		       const char **why) __must_check;
/* The code must be an errno (1..4095), the message printable ASCII. */
int agent__decode_error(const void *p, size_t len, struct agent_error *out,
			const char **why) __must_check;

/*
 * Extents are page-aligned, non-empty, do not wrap, and add up to the size;
 * a size past AGENT_WINDOW_MAX or not whole pages is refused.
 */
int agent__decode_window(const void *p, size_t len, struct agent_window *out,
			 const char **why) __must_check;
/* Extent @i (< w->count) of a decoded window. */
struct agent_extent agent__window_extent(const struct agent_window *w,
					 uint32_t i);

/*
 * Points @argv[0..argc-1] and @envp[0..envc-1] at @e's strings and
 * NULL-terminates both; @argv has room for e->argc + 1 pointers, @envp for
 * e->envc + 1. @e must come from agent__decode_exec().
 */
void agent__exec_split(const struct agent_exec *e, char **argv, char **envp);

/*
 * Encoders write a whole frame (header and payload) at @buf and its length to
 * *@len. Each returns 0, or -ENOSPC when @size is too small (nothing useful is
 * written then), or -EINVAL / -E2BIG as noted.
 */

/* A header alone, for a data frame whose @len payload bytes the caller sends. */
void agent__encode_hdr(void *buf, uint16_t type, uint32_t len);
int agent__encode_ready(void *buf, size_t size, size_t *len) __must_check;
int agent__encode_init(void *buf, size_t size, const struct agent_init *in,
		       size_t *len) __must_check;
/*
 * @argv and @envp are NULL-terminated; @envp may be NULL (none). -EINVAL if
 * argv[0] is missing; -E2BIG when a vector has too many strings or the payload
 * would pass AGENT_FRAME_MAX; -EFBIG when @fn_size passes AGENT_FN_MAX.
 * agent__exec_size() gives the frame length without writing.
 */
int agent__exec_size(const char *const *argv, const char *const *envp,
		     uint64_t fn_size, size_t *len) __must_check;
int agent__encode_exec(void *buf, size_t size, const char *const *argv,
		       const char *const *envp, uint64_t fn_size,
		       uint32_t flags, size_t *len) __must_check;
/* @count extents of @size bytes in all; -E2BIG past AGENT_WINDOW_EXTENTS_MAX. */
int agent__encode_window(void *buf, size_t size, uint64_t window_size,
			 const struct agent_extent *ext, uint32_t count,
			 size_t *len) __must_check;
#define AGENT_WINDOW_FRAME_MAX                               \
	(AGENT_HDR_SIZE + sizeof(struct agent_window_wire) + \
	 AGENT_WINDOW_EXTENTS_MAX * sizeof(struct agent_extent))
int agent__encode_started(void *buf, size_t size, size_t *len) __must_check;
/* -EINVAL for a code outside the kind's range. */
int agent__encode_exit(void *buf, size_t size, const struct agent_exit *in,
		       size_t *len) __must_check;
/*
 * @code is clamped into 1..4095; @message is cut at AGENT_MSG_MAX bytes and
 * any byte that is not printable ASCII becomes '?', so the frame always
 * decodes.
 */
int agent__encode_error(void *buf, size_t size, uint32_t code,
			const char *message, size_t *len) __must_check;

/* A name for a frame type ("STDOUT"), or "unknown", for messages. */
const char *agent__type_name(uint16_t type);

#endif
