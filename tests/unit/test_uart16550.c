// SPDX-License-Identifier: Apache-2.0
// 16550A registers as Linux's 8250 driver probes and drives them: DLAB, FIFOs, IIR, loopback, state.
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../../devices/uart16550.h"
#include "../../vmm/state.h"
#include "fakes.h"

#define IRQ 4
#define BASE 0x3f8

#define RX 0
#define IER 1
#define IIR 2
#define FCR 2
#define LCR 3
#define MCR 4
#define LSR 5
#define MSR 6
#define SCR 7

#define IER_RDI 0x01
#define IER_THRI 0x02
#define IER_RLSI 0x04
#define IER_MSI 0x08
#define IIR_NO_INT 0x01
#define IIR_ID 0x0e
#define IIR_FIFO 0xc0
#define LSR_DR 0x01
#define LSR_OE 0x02
#define LSR_THRE 0x20
#define LSR_TEMT 0x40
#define MCR_LOOP 0x10

static struct uart16550 *uart;
static struct device *dev;
static int out[2];

static uint8_t rd_dev(struct device *d, uint64_t off)
{
	uint8_t v = 0xaa;

	d->ops->mmio_read(d, off, &v, 1);
	return v;
}

static void wr_dev(struct device *d, uint64_t off, uint8_t v)
{
	d->ops->mmio_write(d, off, &v, 1);
}

static uint8_t rd(uint64_t off)
{
	return rd_dev(dev, off);
}

static void wr(uint64_t off, uint8_t v)
{
	wr_dev(dev, off, v);
}

static bool line(uint32_t irq)
{
	return __atomic_load_n(&fake_irq_level[irq], __ATOMIC_SEQ_CST);
}

static void setup(void)
{
	fakes_reset();
	cr_assert_eq(pipe2(out, O_NONBLOCK), 0);
	cr_assert_eq(uart16550__new(NULL, BASE, IRQ, -1, out[1], &uart), 0);
	dev = uart16550__device(uart);
}

static void teardown(void)
{
	dev->ops->destroy(dev);
	close(out[0]);
	close(out[1]);
}

TestSuite(uart16550, .init = setup, .fini = teardown);

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

/* True when the writer thread passed nothing on within 100 ms. */
static bool nothing_out(void)
{
	struct pollfd p = { .fd = out[0], .events = POLLIN };

	return poll(&p, 1, 100) == 0;
}

Test(uart16550, describes_its_port_window)
{
	cr_assert_eq(dev->base, BASE);
	cr_assert_eq(dev->size, UART16550_PORTS);
	cr_assert_eq(dev->irq, IRQ);
	cr_assert_null(dev->ops->fdt_compatible);
}

Test(uart16550, resets_idle_with_the_host_end_ready)
{
	cr_assert_eq(rd(IER), 0);
	cr_assert_eq(rd(IIR), IIR_NO_INT);
	cr_assert_eq(rd(LCR), 0x03);
	cr_assert_eq(rd(LSR), LSR_THRE | LSR_TEMT);
	/* CTS, DSR and DCD, and no delta pending. */
	cr_assert_eq(rd(MSR), 0xb0);
	cr_assert_not(line(IRQ));
}

Test(uart16550, dlab_switches_ports_0_and_1_to_the_divisor)
{
	char got[1] = { 0 };

	wr(IER, IER_RDI);
	wr(LCR, 0x83);
	wr(RX, 0x01);
	wr(IER, 0x02);
	cr_assert_eq(rd(RX), 0x01);
	cr_assert_eq(rd(IER), 0x02);
	wr(LCR, 0x03);
	/* IER kept its value; the divisor write sent nothing. */
	cr_assert_eq(rd(IER), IER_RDI);
	cr_assert(nothing_out());
	wr(RX, 'x');
	cr_assert_eq(drain_out(got, 1), 1);
	cr_assert_eq(got[0], 'x');
	wr(LCR, 0x83);
	cr_assert_eq(rd(RX), 0x01, "a THR write reached the DLL");
	cr_assert_eq(rd(IER), 0x02);
}

Test(uart16550, scratch_register_holds_any_byte)
{
	wr(SCR, 0x5a);
	cr_assert_eq(rd(SCR), 0x5a);
	wr(SCR, 0xa5);
	cr_assert_eq(rd(SCR), 0xa5);
}

Test(uart16550, ier_keeps_only_its_low_nibble)
{
	/* autoconfig's existence test, then the XScale UUE bit probe. */
	wr(IER, 0);
	cr_assert_eq(rd(IER) & 0x0f, 0);
	wr(IER, 0x0f);
	cr_assert_eq(rd(IER) & 0x0f, 0x0f);
	wr(IER, 0xff);
	cr_assert_eq(rd(IER), 0x0f);
	wr(IER, 0x40);
	cr_assert_eq(rd(IER), 0);
}

Test(uart16550, transmits_to_the_output_fd_and_stays_empty)
{
	char got[8] = { 0 };

	wr(RX, 'h');
	cr_assert_eq(rd(LSR) & (LSR_THRE | LSR_TEMT), LSR_THRE | LSR_TEMT);
	wr(RX, 'i');
	cr_assert_eq(drain_out(got, 2), 2);
	cr_assert_str_eq(got, "hi");
	cr_assert_eq(rd(LSR) & (LSR_THRE | LSR_TEMT), LSR_THRE | LSR_TEMT);
}

Test(uart16550, a_word_access_spans_consecutive_ports)
{
	uint16_t v = 0x3355;

	dev->ops->mmio_write(dev, SCR - 1, &v, 2); /* MSR (ignored), SCR */
	cr_assert_eq(rd(SCR), 0x33);
	v = 0;
	dev->ops->mmio_read(dev, LCR, &v, 2);
	cr_assert_eq(v, 0x03 | 0x08 << 8); /* LCR, then MCR with OUT2 */
}

Test(uart16550, a_stalled_console_never_blocks_the_guest)
{
	char junk[65536];
	int i;

	memset(junk, 'j', sizeof(junk));
	while (write(out[1], junk, sizeof(junk)) > 0)
		;
	for (i = 0; i < 5000; i++)
		wr(RX, 'x');
	cr_assert_eq(rd(LSR) & (LSR_THRE | LSR_TEMT), 0,
		     "THRE with the buffer full");
	/* Teardown gives up on the stuck console instead of hanging (fini). */
}

/* Linux 6.1 autoconfig(), then autoconfig_16550a() with the variants probed. */
Test(uart16550, linux_autoconfig_finds_a_16550a)
{
	uint8_t save_mcr, iir, s1, s2;
	int i, count;

	/* Existence: IER. */
	wr(IER, 0);
	cr_assert_eq(rd(IER) & 0x0f, 0);
	wr(IER, 0x0f);
	cr_assert_eq(rd(IER) & 0x0f, 0x0f);
	wr(IER, 0);
	/* Loopback test. */
	save_mcr = rd(MCR);
	wr(MCR, MCR_LOOP | 0x0a);
	cr_assert_eq(rd(MSR) & 0xf0, 0x90);
	wr(MCR, save_mcr);
	/* EFR reset through LCR 0xbf, then the FIFO probe through IIR. */
	wr(LCR, 0xbf);
	wr(FCR, 0);
	wr(LCR, 0);
	wr(FCR, 0x01);
	iir = rd(IIR);
	cr_assert_eq(iir >> 6, 3, "IIR 0x%02x: not a 16550A", iir);
	/* No EFR under either configuration mode. */
	wr(LCR, 0x80);
	cr_assert_neq(rd(IIR), 0);
	wr(LCR, 0xbf);
	cr_assert_neq(rd(IIR), 0);
	/* Not a National Semiconductor SuperIO: EXCR1 does not follow MCR.LOOP. */
	wr(LCR, 0);
	s1 = rd(MCR);
	wr(LCR, 0xe0);
	s2 = rd(IIR);
	cr_assert_eq((s1 ^ s2) & MCR_LOOP, 0);
	wr(LCR, 0);
	wr(MCR, s1 ^ MCR_LOOP);
	wr(LCR, 0xe0);
	s2 = rd(IIR);
	wr(LCR, 0);
	wr(MCR, s1);
	cr_assert_eq((s1 ^ s2) & MCR_LOOP, 0, "looks like an NS16550A");
	/* Not a TI16750: no 64-byte FIFO bit with or without DLAB. */
	wr(FCR, 0x21);
	s1 = rd(IIR) >> 5;
	wr(FCR, 0x01);
	wr(LCR, 0x80);
	wr(FCR, 0x21);
	s2 = rd(IIR) >> 5;
	wr(FCR, 0x01);
	wr(LCR, 0);
	cr_assert_not(s1 == 6 && s2 == 7);
	/* size_fifo(): 256 bytes in loopback, 16 come back (not a U6 16550A). */
	wr(FCR, 0x07);
	wr(MCR, MCR_LOOP);
	wr(LCR, 0x80);
	wr(RX, 1);
	wr(IER, 0);
	wr(LCR, 0x03);
	for (i = 0; i < 256; i++)
		wr(RX, (uint8_t)i);
	for (count = 0; (rd(LSR) & LSR_DR) && count < 256; count++)
		cr_assert_eq(rd(RX), count);
	cr_assert_eq(count, 16);
	wr(MCR, save_mcr);
}

Test(uart16550, loopback_receives_what_it_transmits_and_sends_nothing)
{
	wr(FCR, 0x01);
	wr(MCR, MCR_LOOP);
	wr(RX, 'L');
	cr_assert(rd(LSR) & LSR_DR);
	cr_assert_eq(rd(RX), 'L');
	cr_assert_eq(rd(LSR) & LSR_DR, 0);
	/* The line is disconnected from the receiver meanwhile. */
	cr_assert_eq(uart16550__receive(uart, (const uint8_t *)"h", 1), 0);
	wr(MCR, 0x0b);
	cr_assert(nothing_out(), "loopback data reached the host");
	cr_assert_eq(uart16550__receive(uart, (const uint8_t *)"h", 1), 1);
}

Test(uart16550, modem_status_follows_mcr_in_loopback_with_deltas)
{
	wr(MCR, MCR_LOOP);
	/* Leaving the host's CTS/DSR/DCD for MCR's (all clear): three deltas. */
	cr_assert_eq(rd(MSR), 0x0b);
	cr_assert_eq(rd(MSR), 0x00);
	wr(MCR, MCR_LOOP | 0x04); /* OUT1 -> RI */
	cr_assert_eq(rd(MSR), 0x40);
	wr(MCR, MCR_LOOP); /* RI trailing edge */
	cr_assert_eq(rd(MSR), 0x04);
	wr(MCR, MCR_LOOP | 0x01); /* DTR -> DSR */
	cr_assert_eq(rd(MSR), 0x22);
}

Test(uart16550, thre_interrupt_raised_on_enable_and_cleared_by_iir)
{
	wr(IER, IER_THRI);
	cr_assert(line(IRQ));
	cr_assert_eq(rd(IIR), 0x02);
	cr_assert_not(line(IRQ));
	cr_assert_eq(rd(IIR), IIR_NO_INT);
	/* Linux's THRE test: re-enabling re-samples an idle transmitter. */
	wr(IER, 0);
	wr(IER, IER_THRI);
	cr_assert(line(IRQ));
	cr_assert_eq(rd(IIR), 0x02);
	cr_assert_not(line(IRQ));
	wr(IER, 0);
	cr_assert_not(line(IRQ));
}

Test(uart16550, disabling_thre_clears_it)
{
	wr(IER, IER_THRI);
	cr_assert(line(IRQ));
	wr(IER, 0);
	cr_assert_not(line(IRQ));
	cr_assert_eq(rd(IIR), IIR_NO_INT);
}

/* serial8250_interrupt(): IIR, LSR, up to 16 bytes, IIR again, until no interrupt. */
Test(uart16550, a_tx_burst_keeps_the_line_low_until_the_next_iir)
{
	unsigned int changes;
	int burst, i;

	wr(FCR, 0x01);
	wr(IER, IER_RDI | IER_THRI);
	cr_assert(line(IRQ));
	changes = fake_irq_changes[IRQ];
	cr_assert_eq(rd(IIR), IIR_FIFO | 0x02);
	for (burst = 0; burst < 3; burst++) {
		cr_assert(rd(LSR) & LSR_THRE);
		for (i = 0; i < 16; i++)
			wr(RX, 'a' + i);
		cr_assert_not(line(IRQ), "line raised mid-burst");
		/* The FIFO drained meanwhile: THRE is the next interrupt. */
		cr_assert_eq(rd(IIR), IIR_FIFO | 0x02);
	}
	/* Nothing left: the driver stops THRE, and IIR is quiet. */
	wr(IER, IER_RDI);
	cr_assert_eq(rd(IIR), IIR_FIFO | IIR_NO_INT);
	cr_assert_not(line(IRQ));
	/* One fall, after the first IIR read: no edge during the bursts. */
	cr_assert_eq(fake_irq_changes[IRQ], changes + 1);
}

Test(uart16550, thre_comes_back_for_a_driver_that_stops_reading_iir)
{
	struct timespec ts = { 0, 1000000 };
	int tries;

	wr(IER, IER_THRI);
	cr_assert_eq(rd(IIR), 0x02);
	wr(RX, 'z');
	cr_assert_not(line(IRQ));
	for (tries = 0; tries < 2000 && !line(IRQ); tries++)
		nanosleep(&ts, NULL);
	cr_assert(line(IRQ), "THRE never came back");
	cr_assert_eq(rd(IIR), 0x02);
	cr_assert_not(line(IRQ));
}

Test(uart16550, receive_fifo_fills_in_order_and_drives_data_ready)
{
	uint8_t many[64];
	int i;

	for (i = 0; i < 64; i++)
		many[i] = (uint8_t)('A' + i % 26);
	/* FIFOs off: a one-byte holding register. */
	cr_assert_eq(uart16550__receive(uart, many, sizeof(many)), 1);
	cr_assert(rd(LSR) & LSR_DR);
	cr_assert_eq(rd(RX), 'A');
	cr_assert_eq(rd(LSR) & LSR_DR, 0);
	wr(FCR, 0x01);
	cr_assert_eq(uart16550__receive(uart, many, sizeof(many)), 16);
	cr_assert_eq(uart16550__receive(uart, many, 1), 0);
	for (i = 0; i < 16; i++) {
		cr_assert(rd(LSR) & LSR_DR);
		cr_assert_eq(rd(RX), many[i]);
	}
	cr_assert_eq(rd(LSR) & LSR_DR, 0);
	cr_assert_eq(rd(RX), 0);
}

Test(uart16550, rx_interrupt_follows_data_and_ier)
{
	wr(FCR, 0x01);
	cr_assert_eq(uart16550__receive(uart, (const uint8_t *)"ab", 2), 2);
	cr_assert_not(line(IRQ), "RX interrupt while disabled");
	wr(IER, IER_RDI);
	cr_assert(line(IRQ));
	cr_assert_eq(rd(IIR), IIR_FIFO | 0x04);
	/* Reading IIR does not clear it: only draining the FIFO does. */
	cr_assert(line(IRQ));
	cr_assert_eq(rd(RX), 'a');
	cr_assert(line(IRQ));
	cr_assert_eq(rd(RX), 'b');
	cr_assert_not(line(IRQ));
	cr_assert_eq(rd(IIR), IIR_FIFO | IIR_NO_INT);
}

Test(uart16550, fcr_clears_the_receive_fifo)
{
	wr(FCR, 0x01);
	wr(IER, IER_RDI);
	cr_assert_eq(uart16550__receive(uart, (const uint8_t *)"abc", 3), 3);
	cr_assert(line(IRQ));
	wr(FCR, 0x03);
	cr_assert_eq(rd(LSR) & LSR_DR, 0);
	cr_assert_not(line(IRQ));
	/* Toggling the enable bit empties it too. */
	cr_assert_eq(uart16550__receive(uart, (const uint8_t *)"d", 1), 1);
	wr(FCR, 0x00);
	cr_assert_eq(rd(LSR) & LSR_DR, 0);
	cr_assert_eq(rd(IIR) & IIR_FIFO, 0);
}

Test(uart16550, iir_reports_sources_in_priority_order)
{
	wr(FCR, 0x01);
	wr(MCR, MCR_LOOP); /* modem deltas pending */
	for (int i = 0; i < 17; i++) /* 16 fill the FIFO, one overruns */
		wr(RX, 'o');
	wr(IER, 0x0f); /* THRE pending: the transmitter is idle */
	cr_assert(line(IRQ));
	cr_assert_eq(rd(IIR), IIR_FIFO | 0x06, "line status first");
	cr_assert_eq(rd(LSR) & (LSR_OE | LSR_DR), LSR_OE | LSR_DR);
	cr_assert_eq(rd(LSR) & LSR_OE, 0, "reading LSR clears OE");
	cr_assert_eq(rd(IIR), IIR_FIFO | 0x04, "then received data");
	for (int i = 0; i < 16; i++)
		cr_assert_eq(rd(RX), 'o');
	cr_assert_eq(rd(IIR), IIR_FIFO | 0x02, "then THRE");
	cr_assert_eq(rd(IIR), IIR_FIFO | 0x00, "then modem status");
	cr_assert(line(IRQ));
	cr_assert_neq(rd(MSR) & 0x0f, 0);
	cr_assert_eq(rd(IIR), IIR_FIFO | IIR_NO_INT);
	cr_assert_not(line(IRQ));
}

Test(uart16550, state_round_trips_registers_and_fifo)
{
	struct uart16550 *u2;
	struct device *d2;
	struct state_reader r;
	struct state_buf b;

	wr(LCR, 0x80);
	wr(RX, 0x34);
	wr(IER, 0x12);
	wr(LCR, 0x1b);
	wr(FCR, 0x81);
	wr(IER, IER_RDI | IER_RLSI);
	wr(MCR, 0x0b);
	wr(SCR, 0x77);
	cr_assert_eq(uart16550__receive(uart, (const uint8_t *)"xyz", 3), 3);
	cr_assert(line(IRQ));
	state__init(&b);
	cr_assert_eq(dev->ops->save(dev, &b), 0);

	cr_assert_eq(uart16550__new(NULL, BASE, IRQ + 1, -1, out[1], &u2), 0);
	d2 = uart16550__device(u2);
	state__reader(&r, b.data, b.len);
	cr_assert_eq(d2->ops->restore(d2, &r), 0);
	cr_assert_eq(state__left(&r), 0);
	cr_assert(line(IRQ + 1), "restored line low with data pending");
	cr_assert_eq(rd_dev(d2, LCR), 0x1b);
	cr_assert_eq(rd_dev(d2, IER), IER_RDI | IER_RLSI);
	cr_assert_eq(rd_dev(d2, MCR), 0x0b);
	cr_assert_eq(rd_dev(d2, SCR), 0x77);
	cr_assert_eq(rd_dev(d2, MSR), 0xb0);
	cr_assert_eq(rd_dev(d2, IIR), IIR_FIFO | 0x04);
	cr_assert_eq(rd_dev(d2, RX), 'x');
	cr_assert_eq(rd_dev(d2, RX), 'y');
	cr_assert_eq(rd_dev(d2, RX), 'z');
	cr_assert_eq(rd_dev(d2, LSR) & LSR_DR, 0);
	cr_assert_not(line(IRQ + 1));
	wr_dev(d2, LCR, 0x9b);
	cr_assert_eq(rd_dev(d2, RX), 0x34);
	cr_assert_eq(rd_dev(d2, IER), 0x12);
	d2->ops->destroy(d2);
	state__exit(&b);
}

Test(uart16550, state_keeps_a_pending_thre_and_modem_deltas)
{
	struct uart16550 *u2;
	struct device *d2;
	struct state_reader r;
	struct state_buf b;

	wr(MCR, MCR_LOOP | 0x02); /* CTS stays, DSR and DCD drop */
	wr(MCR, 0x08);
	wr(IER, IER_THRI | IER_MSI);
	state__init(&b);
	cr_assert_eq(dev->ops->save(dev, &b), 0);
	cr_assert_eq(uart16550__new(NULL, BASE, IRQ + 1, -1, out[1], &u2), 0);
	d2 = uart16550__device(u2);
	state__reader(&r, b.data, b.len);
	cr_assert_eq(d2->ops->restore(d2, &r), 0);
	cr_assert(line(IRQ + 1));
	cr_assert_eq(rd_dev(d2, IIR), 0x02);
	cr_assert_eq(rd_dev(d2, IIR), 0x00);
	cr_assert_eq(rd_dev(d2, MSR), 0xb0 | 0x0a);
	cr_assert_eq(rd_dev(d2, IIR), IIR_NO_INT);
	cr_assert_not(line(IRQ + 1));
	d2->ops->destroy(d2);
	state__exit(&b);
}

Test(uart16550, restore_refuses_a_bad_record)
{
	struct state_reader r;
	struct state_buf b;
	size_t cut;
	int i;

	wr(FCR, 0x01);
	cr_assert_eq(uart16550__receive(uart, (const uint8_t *)"ab", 2), 2);
	state__init(&b);
	cr_assert_eq(dev->ops->save(dev, &b), 0);
	for (cut = 0; cut < b.len; cut++) {
		state__reader(&r, b.data, cut);
		cr_assert_eq(dev->ops->restore(dev, &r), -EBADMSG, "cut %zu",
			     cut);
	}
	state__exit(&b);

	/* A FIFO count beyond its depth, with the FIFO on and then off. */
	for (int fcr = 0; fcr < 2; fcr++) {
		uint32_t count = fcr ? 17 : 2;

		state__init(&b);
		for (i = 0; i < 11; i++)
			state__put_u8(&b, i == 8 ? (uint8_t)fcr : 0);
		state__put_u32(&b, count);
		for (i = 0; i < (int)count; i++)
			state__put_u8(&b, 'x');
		state__reader(&r, b.data, b.len);
		cr_assert_eq(dev->ops->restore(dev, &r), -EBADMSG);
		state__exit(&b);
	}
	/* The refused records left the device as it was. */
	cr_assert_eq(rd(RX), 'a');
	cr_assert_eq(rd(RX), 'b');
}

/* Polls LSR until the receive FIFO holds data or ~2 s pass. */
static bool rx_arrives(struct device *d)
{
	struct timespec ts = { 0, 1000000 };

	for (int tries = 0; tries < 2000; tries++) {
		if (rd_dev(d, LSR) & LSR_DR)
			return true;
		nanosleep(&ts, NULL);
	}
	return false;
}

Test(uart16550_input, reads_host_input_through_its_thread)
{
	struct uart16550 *u;
	struct device *d;
	int in[2], o[2];
	char got[20];
	int i;

	fakes_reset();
	cr_assert_eq(pipe(in), 0);
	cr_assert_eq(pipe(o), 0);
	cr_assert_eq(uart16550__new(NULL, BASE, IRQ, in[0], o[1], &u), 0);
	d = uart16550__device(u);
	wr_dev(d, FCR, 0x01);
	wr_dev(d, IER, IER_RDI);
	/* More than the FIFO holds: the rest waits on the host side, none lost. */
	cr_assert_eq(write(in[1], "0123456789abcdefghij", 20), 20);
	for (i = 0; i < 20; i++) {
		cr_assert(rx_arrives(d), "byte %d never came", i);
		got[i] = (char)rd_dev(d, RX);
	}
	cr_assert_eq(memcmp(got, "0123456789abcdefghij", 20), 0);
	/* Destroy with the thread blocked in poll(): it must end promptly. */
	d->ops->destroy(d);
	close(in[0]);
	close(in[1]);
	close(o[0]);
	close(o[1]);
}

Test(uart16550_input, pause_holds_input_back_and_restore_keeps_it)
{
	struct timespec wait = { 0, 50000000 };
	struct state_reader r;
	struct state_buf b;
	struct uart16550 *u;
	struct device *d;
	int in[2], o[2];

	fakes_reset();
	cr_assert_eq(pipe(in), 0);
	cr_assert_eq(pipe(o), 0);
	cr_assert_eq(uart16550__new(NULL, BASE, IRQ, in[0], o[1], &u), 0);
	d = uart16550__device(u);
	wr_dev(d, FCR, 0x01);
	cr_assert_eq(d->ops->pause(d), 0);
	cr_assert_eq(write(in[1], "p", 1), 1);
	nanosleep(&wait, NULL);
	cr_assert_eq(rd_dev(d, LSR) & LSR_DR, 0, "input reached a paused UART");
	d->ops->resume(d);
	cr_assert(rx_arrives(d));
	cr_assert_eq(rd_dev(d, RX), 'p');

	/* A byte taken in before the restore stays, after the saved FIFO. */
	state__init(&b);
	cr_assert_eq(uart16550__receive(u, (const uint8_t *)"s", 1), 1);
	cr_assert_eq(d->ops->save(d, &b), 0);
	rd_dev(d, RX);
	cr_assert_eq(write(in[1], "e", 1), 1);
	cr_assert(rx_arrives(d));
	state__reader(&r, b.data, b.len);
	cr_assert_eq(d->ops->restore(d, &r), 0);
	cr_assert_eq(rd_dev(d, RX), 's');
	cr_assert_eq(rd_dev(d, RX), 'e');
	cr_assert_not(line(IRQ));
	state__exit(&b);
	d->ops->destroy(d);
	close(in[0]);
	close(in[1]);
	close(o[0]);
	close(o[1]);
}

Test(uart16550_input, loopback_holds_host_input_back)
{
	struct timespec wait = { 0, 50000000 };
	struct uart16550 *u;
	struct device *d;
	int in[2], o[2];

	fakes_reset();
	cr_assert_eq(pipe(in), 0);
	cr_assert_eq(pipe(o), 0);
	cr_assert_eq(uart16550__new(NULL, BASE, IRQ, in[0], o[1], &u), 0);
	d = uart16550__device(u);
	wr_dev(d, MCR, MCR_LOOP);
	cr_assert_eq(write(in[1], "w", 1), 1);
	nanosleep(&wait, NULL);
	cr_assert_eq(rd_dev(d, LSR) & LSR_DR, 0, "input reached a looped UART");
	wr_dev(d, MCR, 0x0b);
	cr_assert(rx_arrives(d));
	cr_assert_eq(rd_dev(d, RX), 'w');
	d->ops->destroy(d);
	close(in[0]);
	close(in[1]);
	close(o[0]);
	close(o[1]);
}
