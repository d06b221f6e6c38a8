// SPDX-License-Identifier: Apache-2.0
// PL011 UART emulation: registers, a receive FIFO fed from a host fd, level interrupts.
#include <errno.h>
#include <libfdt.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "../vmm/log.h"
#include "../vmm/state.h"
#include "console_io.h"
#include "pl011.h"

/* Register offsets (PL011 TRM, DDI 0183). */
#define UARTDR 0x000
#define UARTRSR 0x004
#define UARTFR 0x018
#define UARTILPR 0x020
#define UARTIBRD 0x024
#define UARTFBRD 0x028
#define UARTLCR_H 0x02c
#define UARTCR 0x030
#define UARTIFLS 0x034
#define UARTIMSC 0x038
#define UARTRIS 0x03c
#define UARTMIS 0x040
#define UARTICR 0x044
#define UARTDMACR 0x048
#define UARTPERIPHID0 0xfe0

#define FR_RXFE (1U << 4)
#define FR_TXFF (1U << 5)
#define FR_RXFF (1U << 6)
#define FR_TXFE (1U << 7)

#define INT_RX (1U << 4)
#define INT_TX (1U << 5)
#define INT_RT (1U << 6)
#define INT_ALL 0x7ffU

#define LCRH_FEN (1U << 4)

#define FIFO_DEPTH 32

/* PeriphID0-3 then PCellID0-3: an r1p5 PL011, as the AMBA bus expects. */
static const uint8_t pl011_ids[8] = { 0x11, 0x10, 0x14, 0x00,
				      0x0d, 0xf0, 0x05, 0xb1 };

struct pl011 {
	struct device dev;
	pthread_mutex_t lock; /* guards the registers, the FIFO and con */
	uint8_t fifo[FIFO_DEPTH];
	unsigned int head, count;
	uint32_t ris, imsc, lcr_h, cr, ibrd, fbrd, ifls, ilpr, dmacr;
	bool line; /* last level driven on the interrupt line */
	struct console_io con; /* the host fds and their threads */
};

static unsigned int fifo_depth(const struct pl011 *u)
{
	return (u->lcr_h & LCRH_FEN) ? FIFO_DEPTH : 1;
}

/* Called with the lock held: drives the line to (RIS & IMSC) != 0. */
static void update_irq(struct pl011 *u)
{
	bool level = (u->ris & u->imsc) != 0;

	if (level == u->line)
		return;
	u->line = level;
	if (irq__set_level(u->dev.vm, (uint32_t)u->dev.irq, level) < 0)
		pr_debug("pl011: cannot set interrupt line %d", u->dev.irq);
}

/* Called with the lock held. */
static size_t receive_locked(struct pl011 *u, const uint8_t *buf, size_t len)
{
	size_t n = 0;

	while (n < len && u->count < fifo_depth(u)) {
		u->fifo[(u->head + u->count) % FIFO_DEPTH] = buf[n++];
		u->count++;
	}
	if (n) {
		/* Linux drains on RX or receive-timeout; raise both while data waits. */
		u->ris |= INT_RX | INT_RT;
		update_irq(u);
	}
	return n;
}

size_t pl011__receive(struct pl011 *u, const uint8_t *buf, size_t len)
{
	size_t n;

	pthread_mutex_lock(&u->lock);
	n = receive_locked(u, buf, len);
	pthread_mutex_unlock(&u->lock);
	return n;
}

static uint32_t read_dr(struct pl011 *u)
{
	uint32_t c;

	if (!u->count)
		return 0;
	c = u->fifo[u->head];
	u->head = (u->head + 1) % FIFO_DEPTH;
	u->count--;
	if (!u->count)
		u->ris &= ~(INT_RX | INT_RT);
	console_io__wake_rx(&u->con);
	update_irq(u);
	return c;
}

static uint32_t read_reg(struct pl011 *u, uint64_t off)
{
	uint32_t fr;

	if (off >= UARTPERIPHID0 && off < UARTPERIPHID0 + 0x20)
		return pl011_ids[(off - UARTPERIPHID0) / 4];
	switch (off) {
	case UARTDR:
		return read_dr(u);
	case UARTRSR:
		return 0;
	case UARTFR:
		/*
		 * The host buffer stands for the transmit FIFO: while it is
		 * full the guest sees TXFF and polls, each poll an MMIO exit.
		 */
		fr = console_io__tx_queued(&u->con) ? 0 : FR_TXFE;
		if (!console_io__tx_room(&u->con))
			fr |= FR_TXFF;
		if (!u->count)
			fr |= FR_RXFE;
		if (u->count >= fifo_depth(u))
			fr |= FR_RXFF;
		return fr;
	case UARTILPR:
		return u->ilpr;
	case UARTIBRD:
		return u->ibrd;
	case UARTFBRD:
		return u->fbrd;
	case UARTLCR_H:
		return u->lcr_h;
	case UARTCR:
		return u->cr;
	case UARTIFLS:
		return u->ifls;
	case UARTIMSC:
		return u->imsc;
	case UARTRIS:
		return u->ris;
	case UARTMIS:
		return u->ris & u->imsc;
	case UARTDMACR:
		return u->dmacr;
	default:
		return 0;
	}
}

static void write_reg(struct pl011 *u, uint64_t off, uint32_t v)
{
	switch (off) {
	case UARTDR:
		console_io__put(&u->con, (uint8_t)v);
		/* Below the trigger level while the buffer has room, as a FIFO would be. */
		if (console_io__tx_room(&u->con))
			u->ris |= INT_TX;
		else
			u->ris &= ~INT_TX;
		break;
	case UARTRSR:
		break;
	case UARTILPR:
		u->ilpr = v & 0xff;
		break;
	case UARTIBRD:
		u->ibrd = v & 0xffff;
		break;
	case UARTFBRD:
		u->fbrd = v & 0x3f;
		break;
	case UARTLCR_H:
		/* Switching the FIFO off or on flushes it, as in the TRM. */
		if ((u->lcr_h ^ v) & LCRH_FEN) {
			u->count = 0;
			u->ris &= ~(INT_RX | INT_RT);
			console_io__wake_rx(&u->con);
		}
		u->lcr_h = v & 0xff;
		break;
	case UARTCR:
		u->cr = v & 0xffff;
		break;
	case UARTIFLS:
		u->ifls = v & 0x3f;
		break;
	case UARTIMSC:
		u->imsc = v & INT_ALL;
		break;
	case UARTICR:
		u->ris &= ~(v & INT_ALL);
		/* Data still waiting keeps its interrupt asserted. */
		if (u->count)
			u->ris |= (v & (INT_RX | INT_RT));
		break;
	case UARTDMACR:
		u->dmacr = v & 0x7;
		break;
	default:
		break;
	}
	update_irq(u);
}

static uint32_t load_le(const void *data, uint32_t len)
{
	const uint8_t *p = data;
	uint32_t v = 0;
	uint32_t i;

	for (i = 0; i < len && i < 4; i++)
		v |= (uint32_t)p[i] << (8 * i);
	return v;
}

static void pl011_mmio_read(struct device *dev, uint64_t off, void *data,
			    uint32_t len)
{
	struct pl011 *u = container_of(dev, struct pl011, dev);
	uint8_t *p = data;
	uint32_t v, i;

	pthread_mutex_lock(&u->lock);
	v = read_reg(u, off & ~3ULL);
	pthread_mutex_unlock(&u->lock);
	for (i = 0; i < len; i++)
		p[i] = i < 4 ? (uint8_t)(v >> (8 * i)) : 0;
}

static void pl011_mmio_write(struct device *dev, uint64_t off, const void *data,
			     uint32_t len)
{
	struct pl011 *u = container_of(dev, struct pl011, dev);

	pthread_mutex_lock(&u->lock);
	write_reg(u, off & ~3ULL, load_le(data, len));
	pthread_mutex_unlock(&u->lock);
}

/* The receive thread's hook: input the FIFO takes. */
static size_t console_receive(struct console_io *con, const uint8_t *buf,
			      size_t len)
{
	return receive_locked(container_of(con, struct pl011, con), buf, len);
}

/* The writer thread's hook: room again, so a driver waiting for TX gets its interrupt. */
static void console_tx_progress(struct console_io *con)
{
	struct pl011 *u = container_of(con, struct pl011, con);

	u->ris |= INT_TX;
	update_irq(u);
}

static const struct console_io_ops pl011_console_ops = {
	.name = "pl011",
	.rx_chunk = FIFO_DEPTH,
	.receive = console_receive,
	.tx_progress = console_tx_progress,
};

static void pl011_destroy(struct device *dev)
{
	struct pl011 *u = container_of(dev, struct pl011, dev);

	console_io__exit(&u->con);
	pthread_mutex_destroy(&u->lock);
	free(u);
}

static int pl011_fdt_props(struct device *dev, void *fdt,
			   uint32_t clock_phandle)
{
	fdt32_t clocks[2] = { cpu_to_fdt32(clock_phandle),
			      cpu_to_fdt32(clock_phandle) };

	(void)dev;
	if (fdt_property(fdt, "clocks", clocks, sizeof(clocks)) < 0 ||
	    fdt_property(fdt, "clock-names", "uartclk\0apb_pclk",
			 sizeof("uartclk\0apb_pclk")) < 0)
		return -ENOSPC;
	return 0;
}

/*
 * Registers and the receive FIFO. Bytes still waiting for the host console
 * are not state: the writer thread delivers them from this process.
 */
static int pl011_save(struct device *dev, struct state_buf *b)
{
	struct pl011 *u = container_of(dev, struct pl011, dev);
	unsigned int i;

	pthread_mutex_lock(&u->lock);
	state__put_u32(b, u->ris);
	state__put_u32(b, u->imsc);
	state__put_u32(b, u->lcr_h);
	state__put_u32(b, u->cr);
	state__put_u32(b, u->ibrd);
	state__put_u32(b, u->fbrd);
	state__put_u32(b, u->ifls);
	state__put_u32(b, u->ilpr);
	state__put_u32(b, u->dmacr);
	state__put_u8(b, u->line);
	state__put_u32(b, u->count);
	for (i = 0; i < u->count; i++)
		state__put_u8(b, u->fifo[(u->head + i) % FIFO_DEPTH]);
	pthread_mutex_unlock(&u->lock);
	return state__err(b);
}

static int pl011_pause(struct device *dev)
{
	console_io__pause(&container_of(dev, struct pl011, dev)->con);
	return 0;
}

static void pl011_resume(struct device *dev)
{
	console_io__resume(&container_of(dev, struct pl011, dev)->con);
}

static int pl011_restore(struct device *dev, struct state_reader *r)
{
	struct pl011 *u = container_of(dev, struct pl011, dev);
	uint32_t regs[9], count, i;
	uint8_t fifo[FIFO_DEPTH], early[FIFO_DEPTH];
	unsigned int nearly, kept;
	bool level;

	for (i = 0; i < ARRAY_SIZE(regs); i++)
		regs[i] = state__get_u32(r);
	(void)state__get_u8(r); /* the line level then: recomputed below */
	count = state__get_u32(r);
	for (i = 0; i < count && i < FIFO_DEPTH; i++)
		fifo[i] = state__get_u8(r);
	if (state__rerr(r) || count > FIFO_DEPTH) {
		pr_err("pl011: malformed state record");
		return -EBADMSG;
	}
	pthread_mutex_lock(&u->lock);
	/* Input the receive thread delivered while the VM was being built comes after. */
	for (nearly = 0; nearly < u->count; nearly++)
		early[nearly] = u->fifo[(u->head + nearly) % FIFO_DEPTH];
	u->ris = regs[0] & INT_ALL;
	u->imsc = regs[1] & INT_ALL;
	u->lcr_h = regs[2] & 0xff;
	u->cr = regs[3] & 0xffff;
	u->ibrd = regs[4] & 0xffff;
	u->fbrd = regs[5] & 0x3f;
	u->ifls = regs[6] & 0x3f;
	u->ilpr = regs[7] & 0xff;
	u->dmacr = regs[8] & 0x7;
	memcpy(u->fifo, fifo, count);
	u->head = 0;
	u->count = count;
	kept = 0;
	while (kept < nearly && u->count < FIFO_DEPTH)
		u->fifo[u->count++] = early[kept++];
	if (kept < nearly)
		pr_debug("pl011: %u input bytes lost to a full FIFO at restore",
			 nearly - kept);
	if (u->count)
		u->ris |= INT_RX | INT_RT;
	/* Driven whatever the shadow says: the line must match the registers. */
	level = (u->ris & u->imsc) != 0;
	u->line = level;
	if (irq__set_level(u->dev.vm, (uint32_t)u->dev.irq, level) < 0)
		pr_debug("pl011: cannot set interrupt line %d", u->dev.irq);
	console_io__wake_rx(&u->con);
	pthread_mutex_unlock(&u->lock);
	return 0;
}

static const struct device_ops pl011_ops = {
	.name = "pl011",
	.mmio_read = pl011_mmio_read,
	.mmio_write = pl011_mmio_write,
	.fdt_compatible = "arm,pl011\0arm,primecell",
	.fdt_compatible_len = sizeof("arm,pl011\0arm,primecell"),
	.fdt_props = pl011_fdt_props,
	.destroy = pl011_destroy,
	.pause = pl011_pause,
	.resume = pl011_resume,
	.save = pl011_save,
	.restore = pl011_restore,
};

struct device *pl011__device(struct pl011 *uart)
{
	return &uart->dev;
}

int pl011__new(struct vm *vm, uint64_t base, uint32_t irq, int in_fd,
	       int out_fd, struct pl011 **out)
{
	struct pl011 *u;
	int err;

	*out = NULL;
	u = calloc(1, sizeof(*u));
	if (!u)
		return -ENOMEM;
	u->dev.ops = &pl011_ops;
	u->dev.vm = vm;
	u->dev.base = base;
	u->dev.size = PL011_MMIO_SIZE;
	u->dev.irq = (int)irq;
	/* Reset values from the TRM: TX and RX enabled, UART enabled, FIFOs half full. */
	u->cr = 0x300;
	u->ifls = 0x12;
	pthread_mutex_init(&u->lock, NULL);
	/* Last: its threads may call the hooks at once. */
	err = console_io__init(&u->con, &pl011_console_ops, &u->lock, in_fd,
			       out_fd);
	if (err) {
		pl011_destroy(&u->dev);
		return err;
	}
	*out = u;
	return 0;
}
