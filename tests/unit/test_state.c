// SPDX-License-Identifier: Apache-2.0
// State records: what the writer puts the reader gets back, and short records fail.
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "../../vmm/state.h"

Test(state, round_trips_every_field_little_endian)
{
	struct state_reader r;
	struct state_buf b;
	char s[16];
	uint8_t raw[3];

	state__init(&b);
	state__put_u8(&b, 0xab);
	state__put_u32(&b, 0x11223344);
	state__put_u64(&b, 0x0102030405060708ULL);
	state__put_bytes(&b, "xyz", 3);
	state__put_str(&b, "hello");
	cr_assert_eq(state__err(&b), 0);
	cr_assert_eq(b.len, 1 + 4 + 8 + 3 + 4 + 5);
	cr_assert_eq(b.data[1], 0x44, "little-endian on disk");

	state__reader(&r, b.data, b.len);
	cr_assert_eq(state__get_u8(&r), 0xab);
	cr_assert_eq(state__get_u32(&r), 0x11223344);
	cr_assert_eq(state__get_u64(&r), 0x0102030405060708ULL);
	state__get_bytes(&r, raw, 3);
	cr_assert_eq(memcmp(raw, "xyz", 3), 0);
	state__get_str(&r, s, sizeof(s));
	cr_assert_str_eq(s, "hello");
	cr_assert_eq(state__left(&r), 0);
	cr_assert_eq(state__rerr(&r), 0);
	state__exit(&b);
}

Test(state, grows_past_its_first_allocation)
{
	struct state_buf b;
	uint32_t i;

	state__init(&b);
	for (i = 0; i < 100000; i++)
		state__put_u32(&b, i);
	cr_assert_eq(state__err(&b), 0);
	cr_assert_eq(b.len, 400000);
	cr_assert_eq(b.data[4 * 99999], (uint8_t)99999);
	state__exit(&b);
	state__exit(&b);
}

Test(state, reading_past_the_end_fails_and_sticks)
{
	struct state_reader r;
	uint8_t data[6] = { 1, 2, 3, 4, 5, 6 };

	state__reader(&r, data, sizeof(data));
	cr_assert_eq(state__get_u32(&r), 0x04030201);
	cr_assert_eq(state__get_u32(&r), 0, "short read gives zero");
	cr_assert_eq(state__rerr(&r), -EBADMSG);
	/* Sticky: even a read that would fit fails now. */
	cr_assert_eq(state__get_u8(&r), 0);
	cr_assert_null(state__get_ptr(&r, 0));
	cr_assert_eq(state__rerr(&r), -EBADMSG);
}

Test(state, strings_must_fit_and_hold_no_nul)
{
	struct state_reader r;
	struct state_buf b;
	char s[4];

	state__init(&b);
	state__put_str(&b, "toolong");
	state__reader(&r, b.data, b.len);
	state__get_str(&r, s, sizeof(s));
	cr_assert_eq(state__rerr(&r), -EBADMSG);
	cr_assert_str_eq(s, "");
	state__exit(&b);

	state__init(&b);
	state__put_u32(&b, 2);
	state__put_bytes(&b, "a\0", 2);
	state__reader(&r, b.data, b.len);
	state__get_str(&r, s, sizeof(s));
	cr_assert_eq(state__rerr(&r), -EBADMSG);
	state__exit(&b);

	/* A length larger than the record. */
	state__init(&b);
	state__put_u32(&b, 0xffffffff);
	state__reader(&r, b.data, b.len);
	state__get_str(&r, s, sizeof(s));
	cr_assert_eq(state__rerr(&r), -EBADMSG);
	state__exit(&b);
}
