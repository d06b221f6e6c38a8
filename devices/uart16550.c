// SPDX-License-Identifier: Apache-2.0
// 16550A UART emulation: registers, FIFOs fed from and drained to host fds, the interrupt line.
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../vmm/log.h"
#include "../vmm/state.h"
#include "console_io.h"
#include "uart16550.h"

/* Register offsets and bits (Linux include/uapi/linux/serial_reg.h). */
#define REG_RX 0 /* RBR on read, THR on write; DLL while LCR.DLAB */
#define REG_IER 1 /* DLM while LCR.DLAB */
#define REG_IIR 2 /* IIR on read, FCR on write */
#define REG_LCR 3
#define REG_MCR 4
#define REG_LSR 5
#define REG_MSR 6
#define REG_SCR 7

#define IER_RDI 0x01
#define IER_THRI 0x02
#define IER_RLSI 0x04
#define IER_MSI 0x08
/* The upper nibble reads 0: Linux's autoconfig requires it of a 16550A. */
#define IER_MASK 0x0f

#define IIR_NO_INT 0x01
#define IIR_MSI 0x00
#define IIR_THRI 0x02
#define IIR_RDI 0x04
#define IIR_RLSI 0x06
#define IIR_FIFO 0xc0 /* both set: "16550A with working FIFOs" */

#define FCR_ENABLE 0x01
#define FCR_CLEAR_RX 0x02
/* Enable, DMA mode and RX trigger level stick; the rest are actions. */
#define FCR_KEEP 0xc9

#define LCR_DLAB 0x80

#define MCR_DTR 0x01
#define MCR_RTS 0x02
#define MCR_OUT1 0x04
#define MCR_OUT2 0x08
#define MCR_LOOP 0x10
#define MCR_MASK 0x1f

#define LSR_DR 0x01
#define LSR_OE 0x02
#define LSR_PE 0x04
#define LSR_FE 0x08
#define LSR_BI 0x10
#define LSR_THRE 0x20
#define LSR_TEMT 0x40
#define LSR_ERRORS (LSR_OE | LSR_PE | LSR_FE | LSR_BI)

#define MSR_DCTS 0x01
#define MSR_DDSR 0x02
#define MSR_TERI 0x04
#define MSR_DDCD 0x08
#define MSR_DELTAS 0x0f
#define MSR_CTS 0x10
#define MSR_DSR 0x20
#define MSR_RI 0x40
#define MSR_DCD 0x80
/*
 * Outside loopback the host end is a null modem that is always ready:
 * carrier present (an open without CLOCAL does not wait) and CTS (hardware
 * flow control never stalls the guest).
 */
#define MSR_HOST (MSR_CTS | MSR_DSR | MSR_DCD)

#define FIFO_DEPTH 16 /* both FIFOs of a 16550A; Linux's tx_loadsz */
/*
 * The transmitter counts as empty again the moment a byte is buffered, but
 * raising THRE right then, while the driver is still filling the FIFO,
 * would latch a second edge that arrives after the handler found nothing
 * left to do. Linux's handler reads IIR again after every burst, so a burst
 * ends there instead (see read_iir()); this delay is the fallback for a
 * driver that stops reading IIR with THRE enabled (Linux's PASS_LIMIT):
 * several times the 1.4 ms a 16-byte FIFO takes to drain at 115200 baud.
 */
#define THRE_DRAIN_NS 10000000ULL

/* Reset values: 8N1 and OUT2 (interrupts routed on a PC), as Firecracker's. */
#define LCR_RESET 0x03
#define MCR_RESET MCR_OUT2
#define DIVISOR_RESET 12 /* 9600 baud from 1.8432 MHz */

struct uart16550 {
	struct device dev;
	pthread_mutex_t lock; /* guards the registers, the FIFO and con */
	uint8_t rx[FIFO_DEPTH];
	unsigned int rx_head, rx_count;
	uint8_t ier, lcr, mcr, scr, dll, dlm, fcr;
	uint8_t lsr; /* the error bits only: DR and THRE are derived */
	uint8_t msr; /* modem inputs and their pending deltas */
	bool thr_ipending; /* the THRE interrupt is pending (cleared by IIR) */
	bool draining; /* THR written since the THRE interrupt: see read_iir() */
	uint64_t drain_since; /* CLOCK_MONOTONIC ns of the last such write */
	bool line; /* last level driven on the interrupt line */
	/* The host fds and their threads; paused, no thread raises an interrupt. */
	struct console_io con;
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static unsigned int rx_depth(const struct uart16550 *u)
{
	return (u->fcr & FCR_ENABLE) ? FIFO_DEPTH : 1;
}

/*
 * THRE is reported while a FIFO load still fits in the host buffer, so a
 * driver that writes 16 bytes per THRE interrupt never loses one; when the
 * console stalls the guest sees a busy transmitter. A failed console keeps
 * the buffer empty.
 */
static bool thr_empty(const struct uart16550 *u)
{
	return (u->mcr & MCR_LOOP) ||
	       console_io__tx_room(&u->con) >= FIFO_DEPTH;
}

/* The highest-priority pending interrupt, without the side effects of reading IIR. */
static uint8_t pending(const struct uart16550 *u)
{
	if ((u->ier & IER_RLSI) && (u->lsr & LSR_ERRORS))
		return IIR_RLSI;
	if ((u->ier & IER_RDI) && u->rx_count)
		return IIR_RDI;
	if ((u->ier & IER_THRI) && u->thr_ipending)
		return IIR_THRI;
	if ((u->ier & IER_MSI) && (u->msr & MSR_DELTAS))
		return IIR_MSI;
	return IIR_NO_INT;
}

/*
 * Called with the lock held: the line is high while an interrupt is
 * pending. QEMU and kvmtool drive an 8250 on an edge ISA pin the same way;
 * the guest's handler loops on IIR until nothing is pending, which takes
 * the line low, so the next interrupt is a fresh edge.
 */
static void update_irq(struct uart16550 *u)
{
	bool level = pending(u) != IIR_NO_INT;

	if (level == u->line)
		return;
	u->line = level;
	if (irq__set_level(u->dev.vm, (uint32_t)u->dev.irq, level) < 0)
		pr_debug("uart16550: cannot set interrupt line %d", u->dev.irq);
}

/* Called with the lock held: the modem inputs follow MCR in loopback. */
static void set_modem_inputs(struct uart16550 *u)
{
	uint8_t old = u->msr & ~MSR_DELTAS, now = MSR_HOST, delta = 0;

	if (u->mcr & MCR_LOOP)
		now = ((u->mcr & MCR_RTS) ? MSR_CTS : 0) |
		      ((u->mcr & MCR_DTR) ? MSR_DSR : 0) |
		      ((u->mcr & MCR_OUT1) ? MSR_RI : 0) |
		      ((u->mcr & MCR_OUT2) ? MSR_DCD : 0);
	if ((old ^ now) & MSR_CTS)
		delta |= MSR_DCTS;
	if ((old ^ now) & MSR_DSR)
		delta |= MSR_DDSR;
	if ((old & MSR_RI) && !(now & MSR_RI))
		delta |= MSR_TERI;
	if ((old ^ now) & MSR_DCD)
		delta |= MSR_DDCD;
	u->msr = now | (u->msr & MSR_DELTAS) | delta;
}

/* Called with the lock held. */
static size_t receive_locked(struct uart16550 *u, const uint8_t *buf,
			     size_t len)
{
	size_t n = 0;

	/* In loopback the receiver hears the transmitter, not the line. */
	if (u->mcr & MCR_LOOP)
		return 0;
	while (n < len && u->rx_count < rx_depth(u)) {
		u->rx[(u->rx_head + u->rx_count) % FIFO_DEPTH] = buf[n++];
		u->rx_count++;
	}
	if (n)
		update_irq(u);
	return n;
}

size_t uart16550__receive(struct uart16550 *u, const uint8_t *buf, size_t len)
{
	size_t n;

	pthread_mutex_lock(&u->lock);
	n = receive_locked(u, buf, len);
	pthread_mutex_unlock(&u->lock);
	return n;
}

static void clear_rx(struct uart16550 *u)
{
	u->rx_head = 0;
	u->rx_count = 0;
	console_io__wake_rx(&u->con);
}

static uint8_t read_rbr(struct uart16550 *u)
{
	uint8_t c;

	if (!u->rx_count)
		return 0;
	c = u->rx[u->rx_head];
	u->rx_head = (u->rx_head + 1) % FIFO_DEPTH;
	/*
	 * The receive thread refills an empty FIFO, not each freed slot: one
	 * wakeup per FIFO load, and the guest's handler drains whole loads.
	 */
	if (!--u->rx_count)
		console_io__wake_rx(&u->con);
	return c;
}

/*
 * Transmission is instantaneous: a written byte is on its way to the host
 * at once. The THRE interrupt that would follow is not raised on the THR
 * write but taken as due when the guest next reads IIR, which Linux's
 * handler does after each burst of up to 16 bytes: the burst continues
 * without the line ever rising mid-handler. The writer thread raises it
 * after THRE_DRAIN_NS for a driver that does not come back.
 */
static uint8_t read_iir(struct uart16550 *u)
{
	uint8_t iir;

	if (u->draining && thr_empty(u)) {
		u->draining = false;
		u->thr_ipending = true;
	}
	iir = pending(u);
	if (iir == IIR_THRI)
		u->thr_ipending = false;
	return iir | ((u->fcr & FCR_ENABLE) ? IIR_FIFO : 0);
}

static uint8_t read_lsr(struct uart16550 *u)
{
	uint8_t v = u->lsr;

	if (u->rx_count)
		v |= LSR_DR;
	/* TEMT with THRE: the host buffer is the shift register, and waiting on it costs exits. */
	if (thr_empty(u))
		v |= LSR_THRE | LSR_TEMT;
	u->lsr &= ~LSR_ERRORS;
	return v;
}

static uint8_t read_reg(struct uart16550 *u, uint64_t off)
{
	uint8_t v;

	switch (off) {
	case REG_RX:
		return (u->lcr & LCR_DLAB) ? u->dll : read_rbr(u);
	case REG_IER:
		return (u->lcr & LCR_DLAB) ? u->dlm : u->ier;
	case REG_IIR:
		return read_iir(u);
	case REG_LCR:
		return u->lcr;
	case REG_MCR:
		return u->mcr;
	case REG_LSR:
		return read_lsr(u);
	case REG_MSR:
		v = u->msr;
		u->msr &= ~MSR_DELTAS;
		return v;
	case REG_SCR:
		return u->scr;
	default:
		return 0xff;
	}
}

/* Called with the lock held. */
static void transmit(struct uart16550 *u, uint8_t c)
{
	if (u->mcr & MCR_LOOP) {
		if (u->rx_count < rx_depth(u)) {
			u->rx[(u->rx_head + u->rx_count) % FIFO_DEPTH] = c;
			u->rx_count++;
		} else {
			u->lsr |= LSR_OE;
		}
		return;
	}
	console_io__put(&u->con, c);
}

/* Called with the lock held: THRE goes pending once the transmitter drained. */
static void start_drain(struct uart16550 *u)
{
	u->drain_since = now_ns();
	if (!u->draining) {
		u->draining = true;
		/* The writer may sleep untimed: it has a deadline to keep now. */
		console_io__kick_tx(&u->con);
	}
}

static void write_thr(struct uart16550 *u, uint8_t c)
{
	transmit(u, c);
	u->thr_ipending = false;
	if (u->ier & IER_THRI)
		start_drain(u);
}

static void write_ier(struct uart16550 *u, uint8_t v)
{
	uint8_t changed = (u->ier ^ v) & IER_THRI;

	u->ier = v & IER_MASK;
	if (!changed)
		return;
	/*
	 * Enabling THRE with the transmitter empty raises it at once (Linux's
	 * start_tx and its THRE test rely on it; QEMU does the same); with
	 * the transmitter busy, once it drains.
	 */
	u->thr_ipending = false;
	u->draining = false;
	if (!(v & IER_THRI))
		return;
	if (thr_empty(u))
		u->thr_ipending = true;
	else
		start_drain(u);
}

static void write_fcr(struct uart16550 *u, uint8_t v)
{
	/* Switching the FIFOs on or off empties them, as on a 16550A. */
	if (((u->fcr ^ v) & FCR_ENABLE) || (v & FCR_CLEAR_RX))
		clear_rx(u);
	/* Clearing the transmit FIFO drops nothing: its bytes have left. */
	u->fcr = (v & FCR_ENABLE) ? (v & FCR_KEEP) : 0;
}

static void write_reg(struct uart16550 *u, uint64_t off, uint8_t v)
{
	switch (off) {
	case REG_RX:
		if (u->lcr & LCR_DLAB)
			u->dll = v;
		else
			write_thr(u, v);
		break;
	case REG_IER:
		if (u->lcr & LCR_DLAB)
			u->dlm = v;
		else
			write_ier(u, v);
		break;
	case REG_IIR:
		write_fcr(u, v);
		break;
	case REG_LCR:
		u->lcr = v;
		break;
	case REG_MCR:
		if ((u->mcr & MCR_LOOP) && !(v & MCR_LOOP))
			console_io__wake_rx(&u->con); /* the line is back */
		u->mcr = v & MCR_MASK;
		set_modem_inputs(u);
		break;
	case REG_SCR:
		u->scr = v;
		break;
	default:
		break; /* LSR and MSR writes are for factory tests */
	}
}

/* Bytes of a wider access go to consecutive ports, as an ISA bus splits them. */
static void uart_read(struct device *dev, uint64_t off, void *data,
		      uint32_t len)
{
	struct uart16550 *u = container_of(dev, struct uart16550, dev);
	uint8_t *p = data;
	uint32_t i;

	pthread_mutex_lock(&u->lock);
	for (i = 0; i < len; i++)
		p[i] = read_reg(u, off + i);
	update_irq(u);
	pthread_mutex_unlock(&u->lock);
}

static void uart_write(struct device *dev, uint64_t off, const void *data,
		       uint32_t len)
{
	struct uart16550 *u = container_of(dev, struct uart16550, dev);
	const uint8_t *p = data;
	uint32_t i;

	pthread_mutex_lock(&u->lock);
	for (i = 0; i < len; i++)
		write_reg(u, off + i, p[i]);
	update_irq(u);
	pthread_mutex_unlock(&u->lock);
}

/* Called with the lock held: the fallback THRE interrupt once a drain is due. */
static void finish_drain(struct uart16550 *u)
{
	if (!u->draining || console_io__paused(&u->con) || !thr_empty(u) ||
	    now_ns() - u->drain_since < THRE_DRAIN_NS)
		return;
	u->draining = false;
	u->thr_ipending = true;
	update_irq(u);
}

/* The receive thread's hook: input the FIFO takes. */
static size_t console_receive(struct console_io *con, const uint8_t *buf,
			      size_t len)
{
	return receive_locked(container_of(con, struct uart16550, con), buf,
			      len);
}

/* The writer thread's hook: room again after a stall, so a driver waiting on THRE gets it. */
static void console_tx_progress(struct console_io *con)
{
	finish_drain(container_of(con, struct uart16550, con));
}

/* The writer thread's hook with nothing to write: when a drain falls due. */
static uint64_t console_tx_idle(struct console_io *con)
{
	struct uart16550 *u = container_of(con, struct uart16550, con);

	if (!u->draining || console_io__paused(con))
		return 0;
	finish_drain(u);
	return u->draining ? u->drain_since + THRE_DRAIN_NS : 0;
}

static const struct console_io_ops uart_console_ops = {
	.name = "uart16550",
	.rx_chunk = FIFO_DEPTH,
	.receive = console_receive,
	.tx_progress = console_tx_progress,
	.tx_idle = console_tx_idle,
};

static void uart_destroy(struct device *dev)
{
	struct uart16550 *u = container_of(dev, struct uart16550, dev);

	console_io__exit(&u->con);
	pthread_mutex_destroy(&u->lock);
	free(u);
}

static int uart_pause(struct device *dev)
{
	console_io__pause(&container_of(dev, struct uart16550, dev)->con);
	return 0;
}

/* The writer looks again at a drain it put off while paused. */
static void uart_resume(struct device *dev)
{
	console_io__resume(&container_of(dev, struct uart16550, dev)->con);
}

/*
 * Every guest-visible register and the receive FIFO. Bytes still waiting
 * for the host console are not state: the writer thread delivers them from
 * this process.
 */
static int uart_save(struct device *dev, struct state_buf *b)
{
	struct uart16550 *u = container_of(dev, struct uart16550, dev);
	unsigned int i;

	pthread_mutex_lock(&u->lock);
	state__put_u8(b, u->ier);
	state__put_u8(b, u->lcr);
	state__put_u8(b, u->mcr);
	state__put_u8(b, u->lsr);
	state__put_u8(b, u->msr);
	state__put_u8(b, u->scr);
	state__put_u8(b, u->dll);
	state__put_u8(b, u->dlm);
	state__put_u8(b, u->fcr);
	state__put_u8(b, u->thr_ipending);
	state__put_u8(b, u->draining);
	state__put_u32(b, u->rx_count);
	for (i = 0; i < u->rx_count; i++)
		state__put_u8(b, u->rx[(u->rx_head + i) % FIFO_DEPTH]);
	pthread_mutex_unlock(&u->lock);
	return state__err(b);
}

static int uart_restore(struct device *dev, struct state_reader *r)
{
	struct uart16550 *u = container_of(dev, struct uart16550, dev);
	uint8_t regs[11], fifo[FIFO_DEPTH], early[FIFO_DEPTH];
	unsigned int nearly, kept, depth;
	uint32_t count, i;
	bool level;

	for (i = 0; i < ARRAY_SIZE(regs); i++)
		regs[i] = state__get_u8(r);
	count = state__get_u32(r);
	for (i = 0; i < count && i < FIFO_DEPTH; i++)
		fifo[i] = state__get_u8(r);
	depth = (regs[8] & FCR_ENABLE) ? FIFO_DEPTH : 1;
	if (state__rerr(r) || count > depth || regs[9] > 1 || regs[10] > 1) {
		pr_err("uart16550: malformed state record");
		return -EBADMSG;
	}
	pthread_mutex_lock(&u->lock);
	/* Input the receive thread delivered while the VM was being built comes after. */
	for (nearly = 0; nearly < u->rx_count; nearly++)
		early[nearly] = u->rx[(u->rx_head + nearly) % FIFO_DEPTH];
	u->ier = regs[0] & IER_MASK;
	u->lcr = regs[1];
	u->mcr = regs[2] & MCR_MASK;
	u->lsr = regs[3] & LSR_ERRORS;
	u->scr = regs[5];
	u->dll = regs[6];
	u->dlm = regs[7];
	u->fcr = (regs[8] & FCR_ENABLE) ? (regs[8] & FCR_KEEP) : 0;
	/* The inputs follow from MCR; the deltas the guest has not read are state. */
	set_modem_inputs(u);
	u->msr = (u->msr & ~MSR_DELTAS) | (regs[4] & MSR_DELTAS);
	u->thr_ipending = regs[9] && (u->ier & IER_THRI);
	u->draining = false;
	if (regs[10] && (u->ier & IER_THRI))
		start_drain(u);
	memcpy(u->rx, fifo, count);
	u->rx_head = 0;
	u->rx_count = count;
	kept = 0;
	if (!(u->mcr & MCR_LOOP))
		while (kept < nearly && u->rx_count < depth)
			u->rx[u->rx_count++] = early[kept++];
	if (kept < nearly)
		pr_debug("uart16550: %u input bytes lost at restore",
			 nearly - kept);
	/* Driven whatever the shadow says: the line must match the registers. */
	level = pending(u) != IIR_NO_INT;
	u->line = level;
	if (irq__set_level(u->dev.vm, (uint32_t)u->dev.irq, level) < 0)
		pr_debug("uart16550: cannot set interrupt line %d", u->dev.irq);
	console_io__wake_rx(&u->con);
	pthread_mutex_unlock(&u->lock);
	return 0;
}

static const struct device_ops uart16550_ops = {
	.name = "uart16550",
	.mmio_read = uart_read,
	.mmio_write = uart_write,
	.destroy = uart_destroy,
	.pause = uart_pause,
	.resume = uart_resume,
	.save = uart_save,
	.restore = uart_restore,
};

struct device *uart16550__device(struct uart16550 *uart)
{
	return &uart->dev;
}

int uart16550__new(struct vm *vm, uint64_t base, uint32_t irq, int in_fd,
		   int out_fd, struct uart16550 **out)
{
	struct uart16550 *u;
	int err;

	*out = NULL;
	u = calloc(1, sizeof(*u));
	if (!u)
		return -ENOMEM;
	u->dev.ops = &uart16550_ops;
	u->dev.vm = vm;
	u->dev.base = base;
	u->dev.size = UART16550_PORTS;
	u->dev.irq = (int)irq;
	u->lcr = LCR_RESET;
	u->mcr = MCR_RESET;
	u->dll = DIVISOR_RESET;
	set_modem_inputs(u);
	u->msr &= ~MSR_DELTAS;
	pthread_mutex_init(&u->lock, NULL);
	/* Last: its threads may call the hooks at once. */
	err = console_io__init(&u->con, &uart_console_ops, &u->lock, in_fd,
			       out_fd);
	if (err) {
		uart_destroy(&u->dev);
		return err;
	}
	*out = u;
	return 0;
}
