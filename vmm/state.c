// SPDX-License-Identifier: Apache-2.0
// State records for snapshots: sticky-error writer and reader of little-endian fields.
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "state.h"

void state__init(struct state_buf *b)
{
	memset(b, 0, sizeof(*b));
}

void state__exit(struct state_buf *b)
{
	free(b->data);
	memset(b, 0, sizeof(*b));
}

void state__put_bytes(struct state_buf *b, const void *p, size_t len)
{
	if (b->err || !len)
		return;
	if (len > b->cap - b->len) {
		size_t cap = b->cap ? b->cap : 256;
		uint8_t *n;

		while (cap - b->len < len) {
			if (cap > SIZE_MAX / 2) {
				b->err = -ENOMEM;
				return;
			}
			cap *= 2;
		}
		n = realloc(b->data, cap);
		if (!n) {
			b->err = -ENOMEM;
			return;
		}
		b->data = n;
		b->cap = cap;
	}
	memcpy(b->data + b->len, p, len);
	b->len += len;
}

void state__put_u8(struct state_buf *b, uint8_t v)
{
	state__put_bytes(b, &v, 1);
}

void state__put_u32(struct state_buf *b, uint32_t v)
{
	uint32_t le = htole32(v);

	state__put_bytes(b, &le, sizeof(le));
}

void state__put_u64(struct state_buf *b, uint64_t v)
{
	uint64_t le = htole64(v);

	state__put_bytes(b, &le, sizeof(le));
}

void state__put_str(struct state_buf *b, const char *s)
{
	size_t len = s ? strlen(s) : 0;

	if (len > UINT32_MAX) {
		b->err = -ENOMEM;
		return;
	}
	state__put_u32(b, (uint32_t)len);
	state__put_bytes(b, s, len);
}

int state__err(const struct state_buf *b)
{
	return b->err;
}

void state__reader(struct state_reader *r, const void *data, size_t len)
{
	r->data = data;
	r->len = data ? len : 0;
	r->off = 0;
	r->err = 0;
}

const void *state__get_ptr(struct state_reader *r, size_t len)
{
	const void *p;

	if (r->err || len > r->len - r->off) {
		r->err = -EBADMSG;
		return NULL;
	}
	p = r->data + r->off;
	r->off += len;
	return p;
}

void state__get_bytes(struct state_reader *r, void *dst, size_t len)
{
	const void *p = state__get_ptr(r, len);

	if (p)
		memcpy(dst, p, len);
	else
		memset(dst, 0, len);
}

uint8_t state__get_u8(struct state_reader *r)
{
	uint8_t v;

	state__get_bytes(r, &v, sizeof(v));
	return v;
}

uint32_t state__get_u32(struct state_reader *r)
{
	uint32_t v;

	state__get_bytes(r, &v, sizeof(v));
	return le32toh(v);
}

uint64_t state__get_u64(struct state_reader *r)
{
	uint64_t v;

	state__get_bytes(r, &v, sizeof(v));
	return le64toh(v);
}

void state__get_str(struct state_reader *r, char *dst, size_t size)
{
	uint32_t len = state__get_u32(r);
	const char *p;

	dst[0] = '\0';
	if (r->err)
		return;
	if (len >= size) {
		r->err = -EBADMSG;
		return;
	}
	p = state__get_ptr(r, len);
	if (!p)
		return;
	if (memchr(p, '\0', len)) {
		r->err = -EBADMSG;
		return;
	}
	memcpy(dst, p, len);
	dst[len] = '\0';
}

int state__rerr(const struct state_reader *r)
{
	return r->err;
}

size_t state__left(const struct state_reader *r)
{
	return r->len - r->off;
}
