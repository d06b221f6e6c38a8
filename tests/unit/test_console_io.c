// SPDX-License-Identifier: Apache-2.0
// A UART's host side over pipes: output order and flushing, input held back for room and pause.
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "../../devices/console_io.h"

/* A device with a receive FIFO of settable room, and counters for the hooks. */
struct fake_uart {
	pthread_mutex_t lock;
	struct console_io con;
	uint8_t got[256];
	unsigned int ngot;
	unsigned int room; /* bytes receive() still takes */
	unsigned int progress; /* tx_progress() calls */
	unsigned int idle; /* tx_idle() calls */
	uint64_t due; /* what tx_idle() returns once, then 0 */
	uint64_t idle_ns; /* CLOCK_MONOTONIC time of the last tx_idle() */
};

static struct fake_uart f;
static int in[2], out[2];
static bool started;

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static uint64_t now_ms(void)
{
	return now_ns() / 1000000;
}

static size_t fake_receive(struct console_io *con, const uint8_t *buf,
			   size_t len)
{
	struct fake_uart *u = container_of(con, struct fake_uart, con);
	size_t n = len < u->room ? len : u->room;

	if (n > sizeof(u->got) - u->ngot)
		n = sizeof(u->got) - u->ngot;
	memcpy(u->got + u->ngot, buf, n);
	u->ngot += n;
	u->room -= n;
	return n;
}

static void fake_tx_progress(struct console_io *con)
{
	container_of(con, struct fake_uart, con)->progress++;
}

static uint64_t fake_tx_idle(struct console_io *con)
{
	struct fake_uart *u = container_of(con, struct fake_uart, con);
	uint64_t due = u->due;

	u->idle++;
	u->idle_ns = now_ns();
	u->due = 0;
	return due;
}

static const struct console_io_ops fake_ops = {
	.name = "fake",
	.rx_chunk = 4,
	.receive = fake_receive,
	.tx_progress = fake_tx_progress,
	.tx_idle = fake_tx_idle,
};

static void start(int in_fd)
{
	cr_assert_eq(
		console_io__init(&f.con, &fake_ops, &f.lock, in_fd, out[1]), 0);
	started = true;
}

static void stop(void)
{
	console_io__exit(&f.con);
	started = false;
}

static void setup(void)
{
	memset(&f, 0, sizeof(f));
	pthread_mutex_init(&f.lock, NULL);
	cr_assert_eq(pipe2(in, O_CLOEXEC), 0);
	cr_assert_eq(pipe2(out, O_NONBLOCK | O_CLOEXEC), 0);
}

static void teardown(void)
{
	if (started)
		stop();
	pthread_mutex_destroy(&f.lock);
	close(in[0]);
	close(in[1]);
	close(out[0]);
	close(out[1]);
}

/* A thread that never ends hangs teardown: fail instead. */
TestSuite(console_io, .init = setup, .fini = teardown, .timeout = 30);

/* Queues @len bytes under the lock; returns how many were taken. */
static size_t put(const void *buf, size_t len)
{
	const uint8_t *p = buf;
	size_t n = 0;

	pthread_mutex_lock(&f.lock);
	while (n < len && console_io__put(&f.con, p[n]))
		n++;
	pthread_mutex_unlock(&f.lock);
	return n;
}

/* Reads what the writer passed on: @want bytes, or what came within 2 s. */
static size_t read_out(uint8_t *buf, size_t want)
{
	uint64_t end = now_ms() + 2000;
	size_t got = 0;

	while (got < want && now_ms() < end) {
		struct pollfd p = { .fd = out[0], .events = POLLIN };
		ssize_t n;

		if (poll(&p, 1, 10) <= 0)
			continue;
		n = read(out[0], buf + got, want - got);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	return got;
}

/* Conditions on the fake, read with its lock held. */
static bool received_at_least(unsigned int n)
{
	return f.ngot >= n;
}

static bool idle_calls_at_least(unsigned int n)
{
	return f.idle >= n;
}

/* Bytes still in the input pipe: the receive thread has not read them. */
static bool input_left(unsigned int n)
{
	int left = -1;

	return ioctl(in[0], FIONREAD, &left) == 0 && left == (int)n;
}

/* The writer counts bytes as gone only after the write: a moment after they can be read. */
static bool tx_queued_at_most(unsigned int n)
{
	return console_io__tx_queued(&f.con) <= n;
}

/* Whether @cond(@arg) holds within 2 s, looked at every millisecond. */
static bool eventually(bool (*cond)(unsigned int), unsigned int arg)
{
	struct timespec ts = { 0, 1000000 };
	bool ok;

	for (int tries = 0; tries < 2000; tries++) {
		pthread_mutex_lock(&f.lock);
		ok = cond(arg);
		pthread_mutex_unlock(&f.lock);
		if (ok)
			return true;
		nanosleep(&ts, NULL);
	}
	return false;
}

/* Gives the console's threads 50 ms to do what they should not. */
static void settle(void)
{
	struct timespec wait = { 0, 50000000 };

	nanosleep(&wait, NULL);
}

/* How many bytes the device received, 50 ms from now. */
static unsigned int received_later(void)
{
	unsigned int got;

	settle();
	pthread_mutex_lock(&f.lock);
	got = f.ngot;
	pthread_mutex_unlock(&f.lock);
	return got;
}

/* The device takes @n more bytes, as a guest reading its FIFO. */
static void make_room(unsigned int n)
{
	pthread_mutex_lock(&f.lock);
	f.room += n;
	console_io__wake_rx(&f.con);
	pthread_mutex_unlock(&f.lock);
}

static void fill_pipe(int fd)
{
	static char junk[65536];

	while (write(fd, junk, sizeof(junk)) > 0)
		;
}

Test(console_io, writes_reach_the_console_in_order)
{
	static uint8_t msg[3000], got[3000];
	unsigned int round, progress;
	size_t i;

	start(-1);
	/* Twice 3000 bytes: the second round wraps around the 4 KiB buffer. */
	for (round = 0; round < 2; round++) {
		for (i = 0; i < sizeof(msg); i++)
			msg[i] = (uint8_t)(i * 7 + round);
		cr_assert_eq(put(msg, sizeof(msg)), sizeof(msg));
		cr_assert_eq(read_out(got, sizeof(got)), sizeof(got));
		cr_assert_eq(memcmp(got, msg, sizeof(msg)), 0, "round %u",
			     round);
		cr_assert(eventually(tx_queued_at_most, 0));
	}
	stop();
	progress = f.progress;
	cr_assert_geq(progress, 2, "tx_progress() called %u times", progress);
}

Test(console_io, teardown_flushes_what_is_queued)
{
	uint8_t got[8] = { 0 };

	start(-1);
	cr_assert_eq(put("bye", 3), 3);
	stop();
	cr_assert_eq(read_out(got, 3), 3);
	cr_assert_str_eq((char *)got, "bye");
}

Test(console_io, a_stalled_console_fills_the_buffer_and_teardown_gives_up)
{
	unsigned int first, queued, room;
	uint64_t t0, took;

	fill_pipe(out[1]);
	start(-1);
	cr_assert_eq(put("x", 1), 1);
	pthread_mutex_lock(&f.lock);
	first = console_io__tx_queued(&f.con);
	while (console_io__put(&f.con, 'x'))
		;
	queued = console_io__tx_queued(&f.con);
	room = console_io__tx_room(&f.con);
	pthread_mutex_unlock(&f.lock);
	/* Nothing left: the writer could not pass on even the first byte. */
	cr_assert_eq(first, 1);
	cr_assert_eq(queued, CONSOLE_IO_TX_BUF);
	cr_assert_eq(room, 0);
	t0 = now_ms();
	stop();
	took = now_ms() - t0;
	/* It tried for the whole limit, and not much longer. */
	cr_assert_geq(took, CONSOLE_IO_FLUSH_MS - 10, "took %lu ms",
		      (unsigned long)took);
	cr_assert_lt(took, CONSOLE_IO_FLUSH_MS + 1000, "took %lu ms",
		     (unsigned long)took);
	/* Given up: the buffer counts as empty and takes nothing more. */
	cr_assert_eq(console_io__tx_queued(&f.con), 0);
	cr_assert_not(console_io__put(&f.con, 'y'));
}

Test(console_io, a_console_gone_drops_output_and_keeps_running)
{
	/* A SIGPIPE would kill this test: the VMM ignores it too. */
	signal(SIGPIPE, SIG_IGN);
	close(out[0]);
	out[0] = open("/dev/null", O_RDONLY | O_CLOEXEC);
	start(-1);
	cr_assert_eq(put("lost", 4), 4);
	cr_assert(eventually(tx_queued_at_most, 0));
	cr_assert_eq(put("more", 4), 0);
	cr_assert_eq(console_io__tx_room(&f.con), CONSOLE_IO_TX_BUF);
}

Test(console_io, input_arrives_in_order_as_the_device_makes_room)
{
	f.room = 2;
	start(in[0]);
	cr_assert_eq(write(in[1], "hello", 5), 5);
	cr_assert(eventually(received_at_least, 2));
	cr_assert_eq(received_later(), 2, "input beyond the room was taken");
	make_room(1);
	cr_assert(eventually(received_at_least, 3));
	cr_assert_eq(received_later(), 3);
	make_room(100);
	cr_assert(eventually(received_at_least, 5));
	cr_assert_eq(memcmp(f.got, "hello", 5), 0);
}

Test(console_io, reads_no_more_than_one_chunk_ahead_of_the_device)
{
	start(in[0]);
	cr_assert_eq(write(in[1], "abcdefghij", 10), 10);
	/* One chunk of rx_chunk (4) bytes is taken and held; the rest stays in the pipe. */
	cr_assert(eventually(input_left, 6));
	cr_assert_eq(received_later(), 0);
	cr_assert(input_left(6));
	make_room(100);
	cr_assert(eventually(received_at_least, 10));
	cr_assert_eq(memcmp(f.got, "abcdefghij", 10), 0);
}

Test(console_io, pause_holds_input_back_until_resume)
{
	bool paused;

	f.room = 100;
	start(in[0]);
	console_io__pause(&f.con);
	pthread_mutex_lock(&f.lock);
	paused = console_io__paused(&f.con);
	pthread_mutex_unlock(&f.lock);
	cr_assert(paused);
	cr_assert_eq(write(in[1], "p", 1), 1);
	cr_assert_eq(received_later(), 0, "input reached a paused device");
	console_io__resume(&f.con);
	cr_assert(eventually(received_at_least, 1));
	cr_assert_eq(f.got[0], 'p');
}

Test(console_io, input_up_to_eof_arrives_and_teardown_still_works)
{
	f.room = 100;
	start(in[0]);
	cr_assert_eq(write(in[1], "z", 1), 1);
	close(in[1]);
	in[1] = -1;
	cr_assert(eventually(received_at_least, 1));
	cr_assert_eq(f.got[0], 'z');
	stop();
}

Test(console_io, teardown_ends_a_receive_thread_waiting_for_room)
{
	uint64_t t0;

	start(in[0]);
	cr_assert_eq(write(in[1], "w", 1), 1);
	cr_assert_eq(received_later(), 0);
	t0 = now_ms();
	stop();
	cr_assert_lt(now_ms() - t0, 500);
}

Test(console_io, tx_idle_deadline_and_kick_wake_the_writer)
{
	uint64_t due = now_ns() + 30000000ULL, woken;
	unsigned int calls;

	/* Asked first at start, again at the deadline, then only when kicked. */
	f.due = due;
	start(-1);
	cr_assert(eventually(idle_calls_at_least, 2),
		  "the deadline did not wake the writer");
	settle();
	pthread_mutex_lock(&f.lock);
	calls = f.idle;
	woken = f.idle_ns;
	console_io__kick_tx(&f.con);
	pthread_mutex_unlock(&f.lock);
	cr_assert_eq(calls, 2, "the writer woke without a reason");
	cr_assert_geq(woken, due, "woken %ld ns early", (long)(due - woken));
	cr_assert(eventually(idle_calls_at_least, 3),
		  "a kick did not wake the writer");
}

Test(console_io, input_needs_a_receive_hook)
{
	static const struct console_io_ops no_receive = { .name = "fake" };

	cr_assert_eq(
		console_io__init(&f.con, &no_receive, &f.lock, in[0], out[1]),
		-EINVAL);
	/* Safe after a failed init. */
	console_io__exit(&f.con);
	/* Without input, none is needed. */
	cr_assert_eq(console_io__init(&f.con, &no_receive, &f.lock, -1, out[1]),
		     0);
	started = true;
}
