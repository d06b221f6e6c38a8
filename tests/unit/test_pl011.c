// SPDX-License-Identifier: Apache-2.0
// PL011 registers as the Linux driver uses them: TX, RX FIFO, flags, interrupts, IDs.
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <poll.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../../devices/pl011.h"
#include "../../vmm/state.h"
#include "fakes.h"

#define IRQ 5
#define DR 0x000
#define FR 0x018
#define LCR_H 0x02c
#define IMSC 0x038
#define RIS 0x03c
#define MIS 0x040
#define ICR 0x044

#define FR_RXFE 0x10
#define FR_RXFF 0x40
#define FR_TXFE 0x80
#define INT_RX 0x10
#define INT_TX 0x20

static struct pl011 *uart;
static struct device *dev;
static int out[2];

static uint32_t rd(uint64_t off)
{
	uint32_t v = 0;

	dev->ops->mmio_read(dev, off, &v, 4);
	return v;
}

static void wr(uint64_t off, uint32_t v)
{
	dev->ops->mmio_write(dev, off, &v, 4);
}

static void setup(void)
{
	fakes_reset();
	cr_assert_eq(pipe2(out, O_NONBLOCK), 0);
	cr_assert_eq(pl011__new(NULL, 0x9000000, IRQ, -1, out[1], &uart), 0);
	dev = pl011__device(uart);
}

static void teardown(void)
{
	dev->ops->destroy(dev);
	close(out[0]);
	close(out[1]);
}

TestSuite(pl011, .init = setup, .fini = teardown);

/* Reads what the writer thread passed on, waiting up to 2 s for @want bytes. */
static size_t drain_out(char *buf, size_t want)
{
	struct pollfd p = { .fd = out[0], .events = POLLIN };
	size_t got = 0;

	while (got < want && poll(&p, 1, 2000) > 0) {
		ssize_t n = read(out[0], buf + got, want - got);

		if (n <= 0)
			break;
		got += (size_t)n;
	}
	return got;
}

Test(pl011, transmits_to_the_output_fd)
{
	char got[8] = { 0 };
	int i;

	wr(DR, 'h');
	wr(DR, 'i');
	cr_assert_eq(drain_out(got, 2), 2);
	cr_assert_str_eq(got, "hi");
	for (i = 0; i < 200 && !(rd(FR) & FR_TXFE); i++)
		usleep(1000);
	cr_assert(rd(FR) & FR_TXFE);
}

Test(pl011, a_stalled_console_never_blocks_the_guest)
{
	char junk[65536];
	int i;

	/* Fill the pipe: nobody reads it from now on. */
	memset(junk, 'j', sizeof(junk));
	while (write(out[1], junk, sizeof(junk)) > 0)
		;
	/* More than the buffer holds: every write returns, the rest is refused. */
	for (i = 0; i < 5000; i++)
		wr(DR, 'x');
	cr_assert(rd(FR) & 0x20, "TXFF not set with the buffer full");
	/* Teardown gives up on the stuck console instead of hanging (fini). */
}

Test(pl011, tx_interrupt_follows_mask_and_clear)
{
	wr(DR, 'x');
	cr_assert(rd(RIS) & INT_TX);
	cr_assert_not(fake_irq_level[IRQ]);
	wr(IMSC, INT_TX);
	cr_assert(fake_irq_level[IRQ]);
	cr_assert_eq(rd(MIS), INT_TX);
	wr(ICR, INT_TX);
	cr_assert_not(fake_irq_level[IRQ]);
	cr_assert_eq(rd(RIS) & INT_TX, 0);
}

Test(pl011, receives_in_order_and_drops_the_line_when_empty)
{
	const uint8_t msg[] = "abc";

	wr(LCR_H, 0x70); /* 8 bits, FIFO on */
	wr(IMSC, INT_RX);
	cr_assert(rd(FR) & FR_RXFE);
	cr_assert_eq(pl011__receive(uart, msg, 3), 3);
	cr_assert_eq(rd(FR) & FR_RXFE, 0);
	cr_assert(fake_irq_level[IRQ]);
	cr_assert_eq(rd(DR), 'a');
	cr_assert_eq(rd(DR), 'b');
	cr_assert(fake_irq_level[IRQ]);
	cr_assert_eq(rd(DR), 'c');
	cr_assert_not(fake_irq_level[IRQ]);
	cr_assert(rd(FR) & FR_RXFE);
	cr_assert_eq(rd(DR), 0);
}

Test(pl011, fifo_fills_and_refuses_the_rest)
{
	uint8_t many[64];
	size_t n;

	memset(many, 'z', sizeof(many));
	/* FIFO off: a one-byte holding register. */
	cr_assert_eq(pl011__receive(uart, many, sizeof(many)), 1);
	cr_assert(rd(FR) & FR_RXFF);
	rd(DR);
	wr(LCR_H, 0x70);
	n = pl011__receive(uart, many, sizeof(many));
	cr_assert_eq(n, 32);
	cr_assert(rd(FR) & FR_RXFF);
	cr_assert_eq(pl011__receive(uart, many, 1), 0);
	rd(DR);
	cr_assert_eq(rd(FR) & FR_RXFF, 0);
	cr_assert_eq(pl011__receive(uart, many, 4), 1);
}

Test(pl011, clearing_rx_while_data_waits_keeps_it_pending)
{
	const uint8_t c = 'q';

	wr(IMSC, INT_RX);
	cr_assert_eq(pl011__receive(uart, &c, 1), 1);
	wr(ICR, 0x7ff);
	cr_assert(rd(RIS) & INT_RX);
	cr_assert(fake_irq_level[IRQ]);
}

Test(pl011, identifies_as_a_primecell_pl011)
{
	static const uint8_t ids[8] = { 0x11, 0x10, 0x14, 0x00,
					0x0d, 0xf0, 0x05, 0xb1 };
	int i;

	for (i = 0; i < 8; i++)
		cr_assert_eq(rd(0xfe0 + 4 * i), ids[i]);
}

Test(pl011_input, reads_host_input_through_its_thread)
{
	struct pl011 *u;
	struct device *d;
	int in[2], o[2];
	uint32_t v = 0, fr;
	struct timespec ts = { 0, 1000000 };
	int tries;

	fakes_reset();
	cr_assert_eq(pipe(in), 0);
	cr_assert_eq(pipe(o), 0);
	cr_assert_eq(pl011__new(NULL, 0x9000000, IRQ, in[0], o[1], &u), 0);
	d = pl011__device(u);
	cr_assert_eq(write(in[1], "k", 1), 1);
	for (tries = 0; tries < 2000; tries++) {
		d->ops->mmio_read(d, FR, &fr, 4);
		if (!(fr & FR_RXFE))
			break;
		nanosleep(&ts, NULL);
	}
	d->ops->mmio_read(d, DR, &v, 4);
	cr_assert_eq(v, 'k');
	/* Destroy with the thread blocked in poll(): it must end promptly. */
	d->ops->destroy(d);
	close(in[0]);
	close(in[1]);
	close(o[0]);
	close(o[1]);
}

Test(pl011, state_round_trips_registers_and_fifo)
{
	struct pl011 *u2;
	struct device *d2;
	struct state_reader r;
	struct state_buf b;
	uint32_t v;

	wr(LCR_H, 0x70);
	wr(IMSC, INT_RX);
	cr_assert_eq(pl011__receive(uart, (const uint8_t *)"abc", 3), 3);
	cr_assert(fake_irq_level[IRQ]);
	state__init(&b);
	cr_assert_eq(dev->ops->save(dev, &b), 0);

	cr_assert_eq(pl011__new(NULL, 0x9000000, IRQ + 1, -1, out[1], &u2), 0);
	d2 = pl011__device(u2);
	state__reader(&r, b.data, b.len);
	cr_assert_eq(d2->ops->restore(d2, &r), 0);
	cr_assert_eq(state__left(&r), 0);
	d2->ops->mmio_read(d2, LCR_H, &v, 4);
	cr_assert_eq(v, 0x70);
	d2->ops->mmio_read(d2, MIS, &v, 4);
	cr_assert_eq(v & INT_RX, INT_RX);
	d2->ops->mmio_read(d2, DR, &v, 4);
	cr_assert_eq(v, 'a');
	d2->ops->mmio_read(d2, DR, &v, 4);
	cr_assert_eq(v, 'b');
	d2->ops->mmio_read(d2, DR, &v, 4);
	cr_assert_eq(v, 'c');
	d2->ops->mmio_read(d2, FR, &v, 4);
	cr_assert(v & FR_RXFE);
	d2->ops->destroy(d2);
	state__exit(&b);
}

Test(pl011, restore_refuses_a_bad_record)
{
	struct state_reader r;
	struct state_buf b;
	size_t cut;

	state__init(&b);
	cr_assert_eq(dev->ops->save(dev, &b), 0);
	for (cut = 0; cut < b.len; cut++) {
		state__reader(&r, b.data, cut);
		cr_assert_eq(dev->ops->restore(dev, &r), -EBADMSG, "cut %zu",
			     cut);
	}
	/* A FIFO count beyond its depth. */
	state__exit(&b);
	state__init(&b);
	for (cut = 0; cut < 9; cut++)
		state__put_u32(&b, 0);
	state__put_u8(&b, 0);
	state__put_u32(&b, 33);
	for (cut = 0; cut < 33; cut++)
		state__put_u8(&b, 'x');
	state__reader(&r, b.data, b.len);
	cr_assert_eq(dev->ops->restore(dev, &r), -EBADMSG);
	state__exit(&b);
}

/* Polls the flag register until the receive FIFO holds data or ~2 s pass. */
static bool rx_arrives(struct device *d)
{
	struct timespec ts = { 0, 1000000 };
	uint32_t fr;

	for (int tries = 0; tries < 2000; tries++) {
		d->ops->mmio_read(d, FR, &fr, 4);
		if (!(fr & FR_RXFE))
			return true;
		nanosleep(&ts, NULL);
	}
	return false;
}

Test(pl011_input, pause_holds_input_back_and_restore_keeps_it)
{
	struct timespec wait = { 0, 50000000 };
	struct state_reader r;
	struct state_buf b;
	struct pl011 *u;
	struct device *d;
	int in[2], o[2];
	uint32_t v = 0, fr;

	fakes_reset();
	cr_assert_eq(pipe(in), 0);
	cr_assert_eq(pipe(o), 0);
	cr_assert_eq(pl011__new(NULL, 0x9000000, IRQ, in[0], o[1], &u), 0);
	d = pl011__device(u);
	cr_assert_eq(d->ops->pause(d), 0);
	cr_assert_eq(write(in[1], "p", 1), 1);
	nanosleep(&wait, NULL);
	d->ops->mmio_read(d, FR, &fr, 4);
	cr_assert(fr & FR_RXFE, "input reached a paused UART");
	d->ops->resume(d);
	cr_assert(rx_arrives(d));
	d->ops->mmio_read(d, DR, &v, 4);
	cr_assert_eq(v, 'p');

	/* A byte taken in before the restore stays, after the saved FIFO. */
	state__init(&b);
	cr_assert_eq(pl011__receive(u, (const uint8_t *)"s", 1), 1);
	cr_assert_eq(d->ops->save(d, &b), 0);
	d->ops->mmio_read(d, DR, &v, 4);
	cr_assert_eq(write(in[1], "e", 1), 1);
	cr_assert(rx_arrives(d));
	state__reader(&r, b.data, b.len);
	cr_assert_eq(d->ops->restore(d, &r), 0);
	d->ops->mmio_read(d, DR, &v, 4);
	cr_assert_eq(v, 's');
	d->ops->mmio_read(d, DR, &v, 4);
	cr_assert_eq(v, 'e');
	cr_assert(fake_irq_level[IRQ] == false);
	state__exit(&b);
	d->ops->destroy(d);
	close(in[0]);
	close(in[1]);
	close(o[0]);
	close(o[1]);
}
