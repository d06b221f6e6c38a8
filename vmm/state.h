/* SPDX-License-Identifier: Apache-2.0 */
/* Device and vCPU state records: a growable little-endian writer and a bounds-checked reader. */
#ifndef SANDBOX_STATE_H
#define SANDBOX_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

/*
 * A writer appends fixed-width little-endian fields to a heap buffer. Errors
 * are sticky: after an allocation failure every put is ignored and
 * state__err() returns -ENOMEM, so a sequence of puts needs one check.
 */
struct state_buf {
	uint8_t *data;
	size_t len;
	size_t cap;
	int err;
};

/* A reader walks a record; any read past its end makes it sticky-failed. */
struct state_reader {
	const uint8_t *data;
	size_t len;
	size_t off;
	int err;
};

void state__init(struct state_buf *b);
/* Frees the buffer. Safe on an initialised or already exited writer. */
void state__exit(struct state_buf *b);
void state__put_u8(struct state_buf *b, uint8_t v);
void state__put_u32(struct state_buf *b, uint32_t v);
void state__put_u64(struct state_buf *b, uint64_t v);
void state__put_bytes(struct state_buf *b, const void *p, size_t len);
/* A u32 length, then the bytes (no NUL). */
void state__put_str(struct state_buf *b, const char *s);
/* 0, or -ENOMEM if any put failed. */
int state__err(const struct state_buf *b) __must_check;

void state__reader(struct state_reader *r, const void *data, size_t len);
/* Each returns 0 (and fails the reader) when the record is too short. */
uint8_t state__get_u8(struct state_reader *r);
uint32_t state__get_u32(struct state_reader *r);
uint64_t state__get_u64(struct state_reader *r);
/* Copies @len bytes into @dst, or zero-fills @dst and fails the reader. */
void state__get_bytes(struct state_reader *r, void *dst, size_t len);
/* A pointer to the next @len bytes inside the record, or NULL (reader failed). */
const void *state__get_ptr(struct state_reader *r, size_t len);
/*
 * A string written by state__put_str(), copied NUL-terminated into @dst
 * (@size bytes). Fails the reader when it does not fit or holds a NUL.
 */
void state__get_str(struct state_reader *r, char *dst, size_t size);
/* 0, or -EBADMSG if any get ran past the end or found a malformed string. */
int state__rerr(const struct state_reader *r) __must_check;
/* Bytes not yet read. */
size_t state__left(const struct state_reader *r);

#endif
