/* SPDX-License-Identifier: Apache-2.0 */
/* A UART's host side: output drained to a host fd and input read from one, each by a thread. */
#ifndef SANDBOX_CONSOLE_IO_H
#define SANDBOX_CONSOLE_IO_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../vmm/util.h"

/*
 * Transmitted bytes wait here for the writer thread: a vCPU never blocks on
 * the host's console (a stalled pipe would make it unkickable).
 */
#define CONSOLE_IO_TX_BUF 4096
/* At teardown, how long the writer may still try to flush to a stalled console. */
#define CONSOLE_IO_FLUSH_MS 1000
/* The most console_io_ops.rx_chunk may be. */
#define CONSOLE_IO_RX_CHUNK_MAX 64

struct console_io;

/*
 * One static const instance per UART kind. Every hook is called on one of
 * the console's threads with the device's lock held, and reaches its device
 * with container_of().
 */
struct console_io_ops {
	/* Prefixes the console's messages: the device's name. */
	const char *name;
	/*
	 * Bytes read from the input fd at a time, at most
	 * CONSOLE_IO_RX_CHUNK_MAX: the receive FIFO's depth, so that no more
	 * is taken from the host than one FIFO load.
	 */
	unsigned int rx_chunk;
	/*
	 * Takes up to @len received bytes into the device; returns how many
	 * it took. What it did not take is offered again, in order, after the
	 * device called console_io__wake_rx(). Required when there is input.
	 */
	size_t (*receive)(struct console_io *con, const uint8_t *buf,
			  size_t len);
	/*
	 * Optional: after each attempt of the writer to pass bytes on,
	 * whatever came of it (some written, none, the console given up).
	 */
	void (*tx_progress)(struct console_io *con);
	/*
	 * Optional: the writer has nothing to write. Returns a CLOCK_MONOTONIC
	 * time in ns at which to be asked again, or 0 to sleep until there is
	 * output or console_io__kick_tx().
	 */
	uint64_t (*tx_idle)(struct console_io *con);
};

/*
 * Embedded in a UART. Every field is guarded by the device's lock; the
 * device reads them only through the functions below.
 */
struct console_io {
	const struct console_io_ops *ops;
	pthread_mutex_t *lock; /* the device's */
	int in_fd, out_fd;
	bool closing;
	bool paused; /* the receive thread holds input back */
	pthread_cond_t room; /* the device may take input again */
	int stop_fd; /* eventfd telling the receive thread to end */
	pthread_t rx_thread;
	bool rx_started;
	pthread_cond_t tx_ready; /* bytes queued, or tx_idle() to ask again */
	uint8_t tx[CONSOLE_IO_TX_BUF];
	unsigned int tx_head, tx_count;
	bool tx_dead; /* the console failed: bytes are dropped */
	pthread_t tx_thread;
	bool tx_started;
};

/*
 * Starts the writer thread passing bytes given to console_io__put() on to
 * @out_fd and, unless @in_fd is -1, the receive thread offering what it
 * reads from @in_fd to @ops->receive() until EOF or a read error. @lock is
 * the device's, initialised, and not held; it guards @con too and must
 * outlive it. The caller keeps ownership of both fds. Returns 0 or -errno
 * after logging. Pair with console_io__exit(), which is safe after a failed
 * init.
 */
int console_io__init(struct console_io *con, const struct console_io_ops *ops,
		     pthread_mutex_t *lock, int in_fd, int out_fd) __must_check;

/*
 * Stops both threads: the writer first flushes what is queued, giving up on
 * a console that takes nothing for CONSOLE_IO_FLUSH_MS; input not yet taken
 * is dropped. Called without the lock held, and no hook runs after it.
 */
void console_io__exit(struct console_io *con);

/*
 * Queues @c for the console. Called with the lock held. False when it was
 * dropped: the buffer is full, or the console failed (it takes nothing more
 * and counts as empty from then on).
 */
bool console_io__put(struct console_io *con, uint8_t c);

/* Bytes queued and not yet written. Called with the lock held. */
unsigned int console_io__tx_queued(const struct console_io *con);

/* How many more bytes console_io__put() takes. Called with the lock held. */
unsigned int console_io__tx_room(const struct console_io *con);

/*
 * Called with the lock held when the device can take input again (it read
 * from or emptied its FIFO, or left a mode that refused input): the receive
 * thread offers what it holds back once more.
 */
void console_io__wake_rx(struct console_io *con);

/*
 * Called with the lock held when what tx_idle() returns changed: the writer
 * asks again.
 */
void console_io__kick_tx(struct console_io *con);

/*
 * Pause holds input back until resume, which also wakes both threads. Both
 * take the lock: call them without it.
 */
void console_io__pause(struct console_io *con);
void console_io__resume(struct console_io *con);

/* Whether the console is paused. Called with the lock held. */
bool console_io__paused(const struct console_io *con);

#endif
