// SPDX-License-Identifier: Apache-2.0
// A UART's host side: a writer thread drains its output to a host fd, a receive thread feeds its input.
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "../vmm/log.h"
#include "console_io.h"

/* How long the writer waits for a console with no room before it looks again. */
#define TX_POLL_MS 200

/* Called with the lock held: sleeps until bytes wait or closing. */
static void wait_for_output(struct console_io *con)
{
	while (!con->tx_count && !con->closing) {
		uint64_t due = con->ops->tx_idle ? con->ops->tx_idle(con) : 0;
		struct timespec ts;

		if (!due) {
			pthread_cond_wait(&con->tx_ready, con->lock);
			continue;
		}
		ts.tv_sec = (time_t)(due / 1000000000ULL);
		ts.tv_nsec = (long)(due % 1000000000ULL);
		pthread_cond_timedwait(&con->tx_ready, con->lock, &ts);
	}
}

static void *tx_thread(void *arg)
{
	struct console_io *con = arg;

	pthread_mutex_lock(con->lock);
	for (;;) {
		struct pollfd pfd = { .fd = con->out_fd, .events = POLLOUT };
		unsigned int len;
		bool closing;
		ssize_t n;
		int r, err;

		wait_for_output(con);
		if (!con->tx_count)
			break;
		len = con->tx_count;
		if (len > CONSOLE_IO_TX_BUF - con->tx_head)
			len = CONSOLE_IO_TX_BUF - con->tx_head;
		closing = con->closing;
		pthread_mutex_unlock(con->lock);
		/*
		 * POLLOUT first: a write of at most a page to a pipe with
		 * room then completes without blocking, so teardown is never
		 * held up for longer than CONSOLE_IO_FLUSH_MS.
		 */
		r = poll(&pfd, 1, closing ? CONSOLE_IO_FLUSH_MS : TX_POLL_MS);
		n = r > 0 ? write(con->out_fd, &con->tx[con->tx_head], len) : 0;
		err = n < 0 ? errno : 0;
		pthread_mutex_lock(con->lock);
		if ((r == 0 && closing) ||
		    (n < 0 && err != EINTR && err != EAGAIN)) {
			/* The console is gone or stuck: keep the guest running, drop output. */
			con->tx_dead = true;
			con->tx_count = 0;
		} else if (n > 0) {
			con->tx_head = (con->tx_head + (unsigned int)n) %
				       CONSOLE_IO_TX_BUF;
			con->tx_count -= (unsigned int)n;
		}
		if (con->ops->tx_progress)
			con->ops->tx_progress(con);
	}
	pthread_mutex_unlock(con->lock);
	return NULL;
}

static void *rx_thread(void *arg)
{
	struct console_io *con = arg;
	struct pollfd pfd[2] = {
		{ .fd = con->in_fd, .events = POLLIN },
		{ .fd = con->stop_fd, .events = POLLIN },
	};
	uint8_t buf[CONSOLE_IO_RX_CHUNK_MAX];

	for (;;) {
		ssize_t n;
		size_t done = 0;

		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pfd[1].revents)
			break;
		n = read(con->in_fd, buf, con->ops->rx_chunk);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0)
			break;
		/*
		 * Hold back the host until the device makes room (no byte is
		 * dropped), and deliver nothing while the VM is paused.
		 */
		pthread_mutex_lock(con->lock);
		while (!con->closing) {
			if (!con->paused)
				done += con->ops->receive(con, buf + done,
							  (size_t)n - done);
			if (done == (size_t)n)
				break;
			pthread_cond_wait(&con->room, con->lock);
		}
		pthread_mutex_unlock(con->lock);
	}
	return NULL;
}

int console_io__init(struct console_io *con, const struct console_io_ops *ops,
		     pthread_mutex_t *lock, int in_fd, int out_fd)
{
	pthread_condattr_t attr;
	int err;

	*con = (struct console_io){ .ops = ops,
				    .lock = lock,
				    .in_fd = in_fd,
				    .out_fd = out_fd,
				    .stop_fd = -1 };
	pthread_cond_init(&con->room, NULL);
	/* tx_idle() deadlines are CLOCK_MONOTONIC: a clock step must not move them. */
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&con->tx_ready, &attr);
	pthread_condattr_destroy(&attr);
	if (in_fd >= 0 && (!ops->receive || !ops->rx_chunk ||
			   ops->rx_chunk > CONSOLE_IO_RX_CHUNK_MAX)) {
		err = -EINVAL;
		goto fail;
	}
	err = -pthread_create(&con->tx_thread, NULL, tx_thread, con);
	if (err)
		goto fail;
	con->tx_started = true;
	if (in_fd >= 0) {
		con->stop_fd = eventfd(0, EFD_CLOEXEC);
		if (con->stop_fd < 0) {
			err = -errno;
			goto fail;
		}
		err = -pthread_create(&con->rx_thread, NULL, rx_thread, con);
		if (err)
			goto fail;
		con->rx_started = true;
	}
	return 0;
fail:
	pr_err("%s: cannot start the console threads: %s", ops->name,
	       strerror(-err));
	return err;
}

void console_io__exit(struct console_io *con)
{
	uint64_t one = 1;

	pthread_mutex_lock(con->lock);
	con->closing = true;
	pthread_cond_signal(&con->room);
	pthread_cond_signal(&con->tx_ready);
	pthread_mutex_unlock(con->lock);
	if (con->tx_started)
		pthread_join(con->tx_thread, NULL);
	/* The receive thread may sit in poll(): only the eventfd gets it out. */
	if (con->rx_started) {
		if (write(con->stop_fd, &one, sizeof(one)) < 0)
			pr_debug("%s: cannot signal the receive thread",
				 con->ops->name);
		pthread_join(con->rx_thread, NULL);
	}
	if (con->stop_fd >= 0)
		close(con->stop_fd);
	pthread_cond_destroy(&con->room);
	pthread_cond_destroy(&con->tx_ready);
}

bool console_io__put(struct console_io *con, uint8_t c)
{
	if (con->tx_dead || con->tx_count == CONSOLE_IO_TX_BUF)
		return false;
	con->tx[(con->tx_head + con->tx_count) % CONSOLE_IO_TX_BUF] = c;
	/* The writer sleeps only on an empty buffer: the first byte wakes it. */
	if (!con->tx_count++)
		pthread_cond_signal(&con->tx_ready);
	return true;
}

unsigned int console_io__tx_queued(const struct console_io *con)
{
	return con->tx_count;
}

unsigned int console_io__tx_room(const struct console_io *con)
{
	return CONSOLE_IO_TX_BUF - con->tx_count;
}

void console_io__wake_rx(struct console_io *con)
{
	pthread_cond_signal(&con->room);
}

void console_io__kick_tx(struct console_io *con)
{
	pthread_cond_signal(&con->tx_ready);
}

void console_io__pause(struct console_io *con)
{
	pthread_mutex_lock(con->lock);
	con->paused = true;
	pthread_mutex_unlock(con->lock);
}

void console_io__resume(struct console_io *con)
{
	pthread_mutex_lock(con->lock);
	con->paused = false;
	pthread_cond_signal(&con->room);
	/* A tx_idle() that defers to a pause is asked again. */
	pthread_cond_signal(&con->tx_ready);
	pthread_mutex_unlock(con->lock);
}

bool console_io__paused(const struct console_io *con)
{
	return con->paused;
}
