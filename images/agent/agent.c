// SPDX-License-Identifier: Apache-2.0
// Guest agent: the ready report over vsock, then one invocation's exec and I/O forwarding.
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/random.h>
/* linux/vm_sockets.h needs struct sockaddr first. */
#include <sys/socket.h>
#include <linux/vm_sockets.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/sendfile.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"

/* Linux 6.3+ may refuse executable memfds unless asked for (vm.memfd_noexec); older kernels
 * reject the flag, so it is tried first and dropped on EINVAL. */
#ifndef MFD_EXEC
#define MFD_EXEC 0x0010U
#endif

/* The host listens before the VM starts; retries only cover a slow vsock device. */
#define READY_TRIES 20
#define READY_RETRY_MS 50
/* Connections that may end before their first byte (see agent__main()). */
#define ACCEPT_TRIES 8
/* The warm-up's limit: it takes tens of ms in the nested test host. */
#define WARM_MAX_MS 2000

struct serve {
	int fd; /* the host connection */
	const struct agent_hooks *hooks;
	int sfd; /* signalfd for SIGCHLD */
	sigset_t old_mask;
	struct sigaction old_pipe;
	bool done; /* EXIT or ERROR queued: nothing more to send */
	bool heard; /* the host sent at least one byte */

	/* One frame from the host at a time: header, then payload. */
	uint8_t *rx;
	size_t rx_len;
	bool have_hdr;
	struct agent_frame f;

	/* One frame to the host at a time. */
	uint8_t *tx;
	size_t tx_len;
	size_t tx_off;

	/* The function. */
	int memfd;
	uint64_t fn_size;
	uint32_t fn_flags;
	char *strings;
	char **argv;
	char **envp;
	pid_t pid;
	bool exited;
	int status;
	int in_w; /* -1 once closed: after STDIN EOF, or the function closed its end */
	int out_r; /* -1 at EOF */
	int err_r;
	bool in_pending; /* the STDIN frame in rx is being written to in_w */
	size_t in_off;
	bool stdin_eof;
	bool err_turn; /* stdout and stderr take turns for the one tx frame */
};

static void log_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void log_err(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int n;

	/* One write per line: the console is shared with the function's children. */
	n = snprintf(buf, sizeof(buf), "agent: ");
	va_start(ap, fmt);
	n += vsnprintf(buf + n, sizeof(buf) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(buf) - 2)
		n = (int)sizeof(buf) - 2;
	buf[n++] = '\n';
	if (write(STDERR_FILENO, buf, (size_t)n) < 0)
		return;
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* ---- the guest's INIT hooks ---- */

static int sys_add_entropy(void *arg, const void *buf, size_t len)
{
	/* struct rand_pool_info ends in a flexible array of __u32. */
	uint32_t words[2 + AGENT_ENTROPY_SIZE / 4];
	struct rand_pool_info *info = (struct rand_pool_info *)words;
	int fd, err = 0;

	(void)arg;
	if (len > AGENT_ENTROPY_SIZE)
		return -EINVAL;
	info->entropy_count = (int)(len * 8);
	info->buf_size = (int)len;
	memcpy(info->buf, buf, len);
	fd = open("/dev/urandom", O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		err = -errno;
	else if (ioctl(fd, RNDADDENTROPY, info) < 0)
		err = -errno;
	/*
	 * Once the CRNG is ready, new input only reaches it at the next scheduled reseed
	 * (up to a minute away): every clone would draw the snapshot's keystream until then.
	 */
	else if (ioctl(fd, RNDRESEEDCRNG) < 0)
		err = -errno;
	if (fd >= 0)
		close(fd);
	explicit_bzero(words, sizeof(words));
	return err;
}

static int sys_set_clock(void *arg, uint64_t realtime_ns)
{
	struct timespec ts = {
		.tv_sec = (time_t)(realtime_ns / 1000000000ULL),
		.tv_nsec = (long)(realtime_ns % 1000000000ULL),
	};

	(void)arg;
	if (clock_settime(CLOCK_REALTIME, &ts) < 0)
		return -errno;
	return 0;
}

/* vfork() and exec of the warm-up with its stdout on @out: its pid, or -1. */
static pid_t warm_spawn(int out)
{
	char *const argv[] = { AGENT_WARM_ARGV0, NULL }, *const envp[] = {
		NULL
	};
	pid_t pid = vfork();

	if (pid == 0) {
		/* dup2() clears close-on-exec on the copy. */
		if (dup2(out, STDOUT_FILENO) >= 0)
			execve("/proc/self/exe", argv, envp);
		_exit(127);
	}
	return pid;
}

/* Reads @fd to its end, for at most @ms: 0, or -ETIMEDOUT. */
static int drain_pipe(int fd, int ms)
{
	struct timespec t0, t;
	struct pollfd p = { .fd = fd, .events = POLLIN };
	char buf[64];
	ssize_t n;
	int left;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		clock_gettime(CLOCK_MONOTONIC, &t);
		left = ms - (int)((t.tv_sec - t0.tv_sec) * 1000 +
				  (t.tv_nsec - t0.tv_nsec) / 1000000);
		if (left <= 0)
			return -ETIMEDOUT;
		if (poll(&p, 1, left) <= 0)
			continue;
		n = read(fd, buf, sizeof(buf));
		if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN))
			return 0;
	}
}

/* Runs the warm-up: what every function's run needs is then mapped, in the guest and by the host. */
static int sys_warm(void *arg)
{
	int p[2], status, err = 0;
	pid_t pid;

	(void)arg;
	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	pid = warm_spawn(p[1]);
	if (pid < 0)
		err = -errno;
	close(p[1]);
	/* It takes tens of ms; one that hangs must not keep the run waiting. */
	if (pid > 0 && drain_pipe(p[0], WARM_MAX_MS)) {
		kill(pid, SIGKILL);
		err = -ETIMEDOUT;
	}
	close(p[0]);
	if (pid > 0) {
		while (waitpid(pid, &status, 0) < 0)
			if (errno != EINTR)
				return -errno;
		if (!err && (!WIFEXITED(status) || WEXITSTATUS(status)))
			err = -ECHILD;
	}
	return err;
}

int agent__warm_main(int argc, char **argv)
{
	if (argc != 1 || strcmp(argv[0], AGENT_WARM_ARGV0))
		return -1;
	/* stdio's buffer is malloc()ed: the line goes out at exit, as a function's would. */
	printf("warm\n");
	return 0;
}

void agent__system_hooks(struct agent_hooks *h)
{
	h->add_entropy = sys_add_entropy;
	h->set_clock = sys_set_clock;
	h->warm = sys_warm;
	h->arg = NULL;
}

/* ---- frames to the host ---- */

/* The connection ended or was reset. Before its first byte it does not count (agent__main()). */
static int host_gone(struct serve *s)
{
	if (!s->heard) {
		log_err("the host's connection ended before it sent anything");
		return -ENOTCONN;
	}
	log_err("the host closed the connection");
	return -ECONNRESET;
}

/* Sends what it can of the tx frame without blocking; 0 (maybe with some left) or -errno. */
static int tx_send(struct serve *s)
{
	ssize_t n;

	while (s->tx_off < s->tx_len) {
		n = send(s->fd, s->tx + s->tx_off, s->tx_len - s->tx_off,
			 MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return 0;
			if (errno == EPIPE || errno == ECONNRESET ||
			    errno == ENOTCONN)
				return host_gone(s);
			log_err("send: %s", strerror(errno));
			return -errno;
		}
		s->tx_off += (size_t)n;
	}
	s->tx_len = s->tx_off = 0;
	return 0;
}

static int tx_flush(struct serve *s)
{
	struct pollfd p = { .fd = s->fd, .events = POLLOUT };
	int err;

	for (;;) {
		err = tx_send(s);
		if (err || !s->tx_len)
			return err;
		if (poll(&p, 1, -1) < 0 && errno != EINTR)
			return -errno;
	}
}

/*
 * Reports a failure to the host as ERROR (after any frame in flight) and logs it on the
 * console. Ends the invocation: nothing is sent after it.
 */
static int send_error(struct serve *s, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int send_error(struct serve *s, int code, const char *fmt, ...)
{
	char msg[AGENT_MSG_MAX + 1];
	va_list ap;
	int err;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_err("%s", msg);
	err = tx_flush(s);
	if (err)
		return err;
	s->done = true;
	if (agent__encode_error(s->tx, AGENT_HDR_SIZE + AGENT_CHUNK,
				(uint32_t)code, msg, &s->tx_len) < 0)
		return -EINVAL; /* cannot happen: tx holds any ERROR frame */
	s->tx_off = 0;
	return tx_flush(s);
}

/* A host that breaks the protocol is told why, then the invocation ends. */
static int proto_error(struct serve *s, const char *why)
{
	int err = send_error(s, EPROTO, "protocol error: %s", why);

	return err ? err : -EPROTO;
}

/* ---- frames from the host ---- */

static void frame_done(struct serve *s)
{
	s->rx_len = 0;
	s->have_hdr = false;
}

/*
 * Reads what is available towards one whole frame in rx. 1 when it is complete, 0 when more
 * must come, -EPROTO (ERROR sent) for a bad header, -ECONNRESET at EOF or reset (-ENOTCONN
 * before any byte came), or -errno.
 */
static int rx_fill(struct serve *s)
{
	size_t want = s->have_hdr ? AGENT_HDR_SIZE + s->f.len : AGENT_HDR_SIZE;
	const char *why;
	ssize_t n;

	while (s->rx_len < want) {
		n = recv(s->fd, s->rx + s->rx_len, want - s->rx_len,
			 MSG_DONTWAIT);
		if (n == 0)
			return host_gone(s);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return 0;
			/* ENOTCONN: vsock's word for a connection reset under us. */
			if (errno == ECONNRESET || errno == ENOTCONN ||
			    errno == EPIPE)
				return host_gone(s);
			log_err("recv: %s", strerror(errno));
			return -errno;
		}
		s->heard = true;
		s->rx_len += (size_t)n;
		if (!s->have_hdr && s->rx_len == AGENT_HDR_SIZE) {
			if (agent__decode_hdr(s->rx, false, &s->f, &why) < 0)
				return proto_error(s, why);
			s->have_hdr = true;
			want = AGENT_HDR_SIZE + s->f.len;
		}
	}
	return 1;
}

/* Waits for one whole frame; 0 or rx_fill()'s errors. */
static int recv_frame(struct serve *s)
{
	struct pollfd p = { .fd = s->fd, .events = POLLIN };
	int r;

	for (;;) {
		r = rx_fill(s);
		if (r)
			return r < 0 ? r : 0;
		if (poll(&p, 1, -1) < 0 && errno != EINTR)
			return -errno;
	}
}

static const void *payload(const struct serve *s)
{
	return s->rx + AGENT_HDR_SIZE;
}

static int expect(struct serve *s, uint16_t type)
{
	char why[64];
	int err;

	if (s->f.type == type)
		return 0;
	snprintf(why, sizeof(why), "%s frame where %s was expected",
		 agent__type_name(s->f.type), agent__type_name(type));
	err = send_error(s, EPROTO, "protocol error: %s", why);
	return err ? err : -EPROTO;
}

/* ---- WINDOW, INIT, EXEC and the function's bytes ---- */

/* The connection's first frame: where the host may write the function. */
static int send_window(struct serve *s)
{
	const struct agent_fn_window *w = s->hooks->window;
	size_t cap = AGENT_HDR_SIZE + AGENT_CHUNK;
	int err = -ENOENT;

	if (w && w->fd >= 0)
		err = agent__encode_window(s->tx, cap, w->size, w->ext,
					   w->count, &s->tx_len);
	/* Too scattered to describe in a frame: the function comes as FN_DATA. */
	if (err && agent__encode_window(s->tx, cap, 0, NULL, 0, &s->tx_len))
		return -EINVAL; /* cannot happen: an empty window fits */
	s->tx_off = 0;
	return tx_flush(s);
}

static int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	ssize_t n;

	while (len) {
		n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int do_init(struct serve *s)
{
	struct agent_init init;
	const char *why;
	int err;

	err = recv_frame(s);
	if (!err)
		err = expect(s, AGENT_INIT);
	if (err)
		return err;
	if (agent__decode_init(payload(s), s->f.len, &init, &why) < 0)
		return proto_error(s, why);
	frame_done(s);
	err = s->hooks->add_entropy(s->hooks->arg, init.entropy,
				    sizeof(init.entropy));
	explicit_bzero(&init.entropy, sizeof(init.entropy));
	if (err) {
		/* A clone that shares its snapshot's random state must not run anything. */
		send_error(s, -err, "adding the host's entropy: %s",
			   strerror(-err));
		return err;
	}
	err = s->hooks->set_clock(s->hooks->arg, init.realtime_ns);
	if (err) {
		send_error(s, -err, "setting the clock: %s", strerror(-err));
		return err;
	}
	/*
	 * An optimisation: the run goes on without it, and a run that came
	 * already (EXEC waiting) is not kept waiting for it.
	 */
	if ((init.flags & AGENT_INIT_WARM) && s->hooks->warm &&
	    !poll(&(struct pollfd){ .fd = s->fd, .events = POLLIN }, 1, 0)) {
		err = s->hooks->warm(s->hooks->arg);
		if (err)
			log_err("warming up: %s", strerror(-err));
	}
	return 0;
}

static int do_exec(struct serve *s)
{
	struct agent_exec e;
	const char *why;
	int err;

	err = recv_frame(s);
	if (!err)
		err = expect(s, AGENT_EXEC);
	if (err)
		return err;
	if (agent__decode_exec(payload(s), s->f.len, &e, &why) < 0)
		return proto_error(s, why);
	/* The strings must outlive rx, which the function's bytes come through next. */
	s->strings = malloc(e.strings_len);
	s->argv = calloc((size_t)e.argc + 1, sizeof(char *));
	s->envp = calloc((size_t)e.envc + 1, sizeof(char *));
	if (!s->strings || !s->argv || !s->envp)
		return send_error(s, ENOMEM, "no memory for the arguments");
	memcpy(s->strings, e.strings, e.strings_len);
	e.strings = s->strings;
	agent__exec_split(&e, s->argv, s->envp);
	s->fn_size = e.fn_size;
	s->fn_flags = e.flags;
	frame_done(s);
	return 0;
}

static int create_memfd(void)
{
	int fd;

	fd = memfd_create("function", MFD_CLOEXEC | MFD_EXEC);
	if (fd < 0 && errno == EINVAL)
		fd = memfd_create("function", MFD_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

static bool is_script(int fd)
{
	char magic[2];

	return pread(fd, magic, 2, 0) == 2 && magic[0] == '#' &&
	       magic[1] == '!';
}

/* @len bytes from the start of @from into a new memfd: its fd, or -errno. */
static int copy_to_memfd(int from, uint64_t len)
{
	off_t off = 0;
	ssize_t n;
	int fd;

	fd = create_memfd();
	while (fd >= 0 && (uint64_t)off < len) {
		n = sendfile(fd, from, &off, (size_t)(len - (uint64_t)off));
		if (n <= 0) {
			n = n < 0 ? -errno : -EIO;
			close(fd);
			return (int)n;
		}
	}
	return fd;
}

/*
 * Where the ELF image in @fd ends by its own headers (program and section
 * header tables, segments' file bytes); 0 when it is not a 64-bit ELF.
 */
static uint64_t elf_end(int fd)
{
	Elf64_Ehdr eh;
	Elf64_Phdr ph;
	uint64_t end;

	if (pread(fd, &eh, sizeof(eh), 0) != (ssize_t)sizeof(eh) ||
	    memcmp(eh.e_ident, ELFMAG, SELFMAG) ||
	    eh.e_ident[EI_CLASS] != ELFCLASS64)
		return 0;
	end = sizeof(eh);
	if (eh.e_phoff + (uint64_t)eh.e_phnum * eh.e_phentsize > end)
		end = eh.e_phoff + (uint64_t)eh.e_phnum * eh.e_phentsize;
	if (eh.e_shoff + (uint64_t)eh.e_shnum * eh.e_shentsize > end)
		end = eh.e_shoff + (uint64_t)eh.e_shnum * eh.e_shentsize;
	/* Linux execs no ELF whose program headers take more than 64 KiB. */
	if ((uint64_t)eh.e_phnum * eh.e_phentsize > 65536)
		return end;
	for (unsigned int i = 0; i < eh.e_phnum && eh.e_phentsize >= sizeof(ph);
	     i++) {
		if (pread(fd, &ph, sizeof(ph),
			  (off_t)(eh.e_phoff + (uint64_t)i * eh.e_phentsize)) !=
		    (ssize_t)sizeof(ph))
			break;
		if (ph.p_offset + ph.p_filesz > end)
			end = ph.p_offset + ph.p_filesz;
	}
	return end;
}

/*
 * The host wrote the function into the window. An ELF image runs from the
 * window as it is when its headers account for all of its bytes: cutting the
 * window to the function's size would free thousands of pages on the
 * invocation's path (25-40 ms in the nested test host), and exec reads only
 * what the headers name. The cost: /proc/self/exe is the window's size, zeros
 * after the function. An ELF with bytes past its image (a payload appended
 * for the program to find at the end of its own file: self-extractors,
 * bundlers) is cut to its exact size first. A script is read to its end by
 * its interpreter, so it gets a copy of exactly its bytes.
 */
static int take_window(struct serve *s)
{
	const struct agent_fn_window *w = s->hooks->window;
	int err;

	if (!w || w->fd < 0 || s->fn_size > w->size)
		return proto_error(s,
				   "EXEC of a function the window cannot hold");
	if (is_script(w->fd))
		s->memfd = copy_to_memfd(w->fd, s->fn_size);
	else if ((s->memfd = fcntl(w->fd, F_DUPFD_CLOEXEC, 3)) < 0)
		s->memfd = -errno;
	else if (elf_end(s->memfd) < s->fn_size &&
		 ftruncate(s->memfd, (off_t)s->fn_size) < 0) {
		err = errno;
		close_fd(&s->memfd);
		s->memfd = -err;
	}
	if (s->memfd >= 0)
		return 0;
	err = -s->memfd;
	s->memfd = -1;
	return send_error(s, err, "taking the function from the window: %s",
			  strerror(err));
}

static int do_fn_data(struct serve *s)
{
	const struct agent_fn_window *w = s->hooks->window;
	uint64_t got = 0;
	int err;

	if (s->fn_flags & AGENT_EXEC_IN_WINDOW)
		return take_window(s);
	/* Unused: its memory is better spent on the function's copy. */
	if (w && w->fd >= 0 && ftruncate(w->fd, 0) < 0)
		log_err("freeing the window: %s", strerror(errno));
	s->memfd = create_memfd();
	if (s->memfd < 0)
		return send_error(s, -s->memfd, "memfd_create: %s",
				  strerror(-s->memfd));
	while (got < s->fn_size) {
		err = recv_frame(s);
		if (!err)
			err = expect(s, AGENT_FN_DATA);
		if (err)
			return err;
		if (s->f.len > s->fn_size - got)
			return proto_error(s,
					   "FN_DATA past the function's size");
		err = write_all(s->memfd, payload(s), s->f.len);
		if (err)
			return send_error(s, -err, "storing the function: %s",
					  strerror(-err));
		got += s->f.len;
		frame_done(s);
	}
	return 0;
}

/* ---- the function's process ---- */

/* Puts @fd on @to for the exec; dup2() clears close-on-exec, unless fd == to. */
static int move_fd(int fd, int to)
{
	if (fd == to)
		return fcntl(fd, F_SETFD, 0) < 0 ? -errno : 0;
	return dup2(fd, to) < 0 ? -errno : 0;
}

static void child(struct serve *s, int in, int out, int err, int status,
		  bool script) __attribute__((noreturn));

static void child(struct serve *s, int in, int out, int err, int status,
		  bool script)
{
	sigset_t none;
	int e;

	/* Its own session and process group: whatever it forks can be killed as one. */
	setsid();
	/* The pipes are above 2: agent__serve() made sure fds 0-2 are open. */
	if (move_fd(in, STDIN_FILENO) < 0 || move_fd(out, STDOUT_FILENO) < 0 ||
	    move_fd(err, STDERR_FILENO) < 0)
		goto fail;
	/* Nothing of the agent's may reach the function, the host connection least of all. */
	if (s->fd > STDERR_FILENO)
		close(s->fd);
	close(s->sfd);
	close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
	for (int sig = 1; sig < NSIG; sig++)
		signal(sig, SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	/*
	 * The kernel runs a script by handing its interpreter /dev/fd/N, which must then still
	 * be open; an ELF image is mapped before close-on-exec applies and needs nothing.
	 */
	if (script && fcntl(s->memfd, F_SETFD, 0) < 0)
		goto fail;
	fexecve(s->memfd, s->argv, s->envp);
fail:
	e = errno;
	if (write(status, &e, sizeof(e)) < 0)
		_exit(127);
	_exit(127);
}

static int make_pipes(int p[4][2])
{
	for (int i = 0; i < 4; i++)
		if (pipe2(p[i], O_CLOEXEC) < 0)
			return -errno;
	return 0;
}

static int do_start(struct serve *s)
{
	int p[4][2] = { { -1, -1 }, { -1, -1 }, { -1, -1 }, { -1, -1 } };
	int err, e = 0;
	bool script;
	ssize_t n;
	pid_t pid;

	script = is_script(s->memfd);
	err = make_pipes(p);
	if (err) {
		err = send_error(s, -err, "pipe: %s", strerror(-err));
		goto out;
	}
	/*
	 * vfork: the child borrows our memory until its exec, so no page
	 * tables are copied and no page of ours is copied on write after.
	 * child() only calls syscalls and never returns.
	 */
	pid = vfork();
	if (pid < 0) {
		err = send_error(s, errno, "fork: %s", strerror(errno));
		goto out;
	}
	if (pid == 0)
		child(s, p[0][0], p[1][1], p[2][1], p[3][1], script);
	close_fd(&p[0][0]);
	close_fd(&p[1][1]);
	close_fd(&p[2][1]);
	close_fd(&p[3][1]);
	/* EOF: the exec closed the status pipe. An int: the exec failed with that errno. */
	do {
		n = read(p[3][0], &e, sizeof(e));
	} while (n < 0 && errno == EINTR);
	if (n == sizeof(e)) {
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
		err = send_error(s, e, "exec %s: %s", s->argv[0], strerror(e));
		goto out;
	}
	s->pid = pid;
	s->in_w = p[0][1];
	s->out_r = p[1][0];
	s->err_r = p[2][0];
	p[0][1] = p[1][0] = p[2][0] = -1;
	/* The poll loop must never block on the function's pipes. */
	fcntl(s->in_w, F_SETFL, O_NONBLOCK);
	fcntl(s->out_r, F_SETFL, O_NONBLOCK);
	fcntl(s->err_r, F_SETFL, O_NONBLOCK);
	err = agent__encode_started(s->tx, AGENT_HDR_SIZE + AGENT_CHUNK,
				    &s->tx_len);
	s->tx_off = 0;
out:
	for (int i = 0; i < 4; i++) {
		close_fd(&p[i][0]);
		close_fd(&p[i][1]);
	}
	close_fd(&s->memfd);
	return err;
}

/* Kills what the function left behind, once it has exited or the invocation is over. */
static void kill_rest(struct serve *s)
{
	if (s->pid > 0)
		kill(-s->pid, SIGKILL);
	/* As PID 1 the agent can reach processes that left the group with setsid(). */
	if (getpid() == 1)
		kill(-1, SIGKILL);
}

static void reap(struct serve *s)
{
	struct signalfd_siginfo si;
	int status;
	pid_t w;

	while (read(s->sfd, &si, sizeof(si)) > 0)
		;
	/* SIGCHLDs merge: reap everything there is, orphans included. */
	while ((w = waitpid(-1, &status, WNOHANG)) > 0) {
		if (w == s->pid && !s->exited) {
			s->exited = true;
			s->status = status;
			kill_rest(s);
		}
	}
}

/* ---- the function's I/O ---- */

static void stdin_write(struct serve *s)
{
	const uint8_t *p = payload(s);
	ssize_t n;

	while (s->in_off < s->f.len) {
		n = write(s->in_w, p + s->in_off, s->f.len - s->in_off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return;
			/* EPIPE: the function closed its stdin or is gone; the rest goes nowhere. */
			close_fd(&s->in_w);
			break;
		}
		s->in_off += (size_t)n;
	}
	s->in_pending = false;
	frame_done(s);
}

static int host_frame(struct serve *s)
{
	char why[64];

	if (s->f.type != AGENT_STDIN) {
		snprintf(why, sizeof(why), "%s frame while the function runs",
			 agent__type_name(s->f.type));
		return proto_error(s, why);
	}
	if (s->stdin_eof)
		return proto_error(s, "STDIN after its EOF");
	if (s->f.len == 0) {
		s->stdin_eof = true;
		close_fd(&s->in_w);
		frame_done(s);
		return 0;
	}
	if (s->in_w < 0) {
		frame_done(s);
		return 0;
	}
	s->in_pending = true;
	s->in_off = 0;
	stdin_write(s);
	return 0;
}

/* Reads the function's output into the (empty) tx frame and starts sending it. */
static int output(struct serve *s, int *fd, uint16_t type)
{
	ssize_t n;

	n = read(*fd, s->tx + AGENT_HDR_SIZE, AGENT_CHUNK);
	if (n < 0) {
		if (errno == EINTR || errno == EAGAIN)
			return 0;
		log_err("reading the function's output: %s", strerror(errno));
		n = 0;
	}
	if (n == 0) {
		close_fd(fd);
		return 0;
	}
	agent__encode_hdr(s->tx, type, (uint32_t)n);
	s->tx_len = AGENT_HDR_SIZE + (size_t)n;
	s->tx_off = 0;
	return tx_send(s);
}

static int send_exit(struct serve *s)
{
	struct agent_exit x;

	if (WIFEXITED(s->status)) {
		x.kind = AGENT_EXITED;
		x.code = (uint32_t)WEXITSTATUS(s->status);
	} else {
		x.kind = AGENT_SIGNALED;
		x.code = (uint32_t)WTERMSIG(s->status);
	}
	s->done = true;
	if (agent__encode_exit(s->tx, AGENT_HDR_SIZE + AGENT_CHUNK, &x,
			       &s->tx_len) < 0)
		return -EINVAL;
	s->tx_off = 0;
	return tx_flush(s);
}

enum { P_HOST, P_SIG, P_IN, P_OUT, P_ERR, P_NR };

static int run(struct serve *s)
{
	struct pollfd p[P_NR];
	bool tx_empty;
	int err, r;

	for (;;) {
		tx_empty = !s->tx_len;
		if (s->exited && s->out_r < 0 && s->err_r < 0 && tx_empty)
			return send_exit(s);
		p[P_HOST].fd = s->fd;
		p[P_HOST].events =
			(s->in_pending ? 0 : POLLIN) | (tx_empty ? 0 : POLLOUT);
		/* poll() reports a hangup even when not asked: leave out an fd with nothing to do. */
		if (!p[P_HOST].events)
			p[P_HOST].fd = -1;
		p[P_SIG].fd = s->sfd;
		p[P_SIG].events = POLLIN;
		p[P_IN].fd = s->in_pending ? s->in_w : -1;
		p[P_IN].events = POLLOUT;
		/* Output is read only into an empty tx frame: the host's pace limits the function. */
		p[P_OUT].fd = tx_empty ? s->out_r : -1;
		p[P_OUT].events = POLLIN;
		p[P_ERR].fd = tx_empty ? s->err_r : -1;
		p[P_ERR].events = POLLIN;
		if (poll(p, P_NR, -1) < 0) {
			if (errno == EINTR)
				continue;
			log_err("poll: %s", strerror(errno));
			return -errno;
		}
		if (p[P_SIG].revents)
			reap(s);
		if (p[P_HOST].revents & (POLLOUT | POLLERR | POLLHUP) &&
		    s->tx_len) {
			err = tx_send(s);
			if (err)
				return err;
		}
		if (p[P_HOST].revents & (POLLIN | POLLHUP | POLLERR) &&
		    !s->in_pending) {
			r = rx_fill(s);
			if (r < 0)
				return r;
			if (r == 1) {
				err = host_frame(s);
				if (err)
					return err;
			}
		}
		if (p[P_IN].revents && s->in_pending)
			stdin_write(s);
		if (s->tx_len)
			continue;
		s->err_turn = !s->err_turn;
		if (s->err_turn && p[P_ERR].revents)
			err = output(s, &s->err_r, AGENT_STDERR);
		else if (p[P_OUT].revents)
			err = output(s, &s->out_r, AGENT_STDOUT);
		else if (p[P_ERR].revents)
			err = output(s, &s->err_r, AGENT_STDERR);
		else
			err = 0;
		if (err)
			return err;
	}
}

/* ---- setup and teardown ---- */

static void open_std_fds(void)
{
	for (int i = STDIN_FILENO; i <= STDERR_FILENO; i++)
		if (fcntl(i, F_GETFD) < 0 && open("/dev/null", O_RDWR) < 0)
			return;
}

static int prepare(struct serve *s)
{
	struct sigaction ign = { .sa_handler = SIG_IGN };
	sigset_t chld;

	s->rx = malloc(AGENT_HDR_SIZE + AGENT_FRAME_MAX);
	s->tx = malloc(AGENT_HDR_SIZE + AGENT_CHUNK);
	if (!s->rx || !s->tx) {
		log_err("no memory for the frame buffers");
		return -ENOMEM;
	}
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	if (sigprocmask(SIG_BLOCK, &chld, &s->old_mask) < 0)
		return -errno;
	sigaction(SIGPIPE, &ign, &s->old_pipe);
	s->sfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
	if (s->sfd < 0) {
		log_err("signalfd: %s", strerror(errno));
		return -errno;
	}
	/* PID 1 inherits orphans anyway; anyone else must ask for them. */
	if (getpid() != 1)
		prctl(PR_SET_CHILD_SUBREAPER, 1);
	return 0;
}

/*
 * Lets the host read everything before the caller's close() can reset the
 * connection: waits, without a limit, for the host to close its end. The
 * host bounds the VM's life (--timeout); a slow reader of the function's
 * output must not lose its tail.
 */
static void drain(struct serve *s)
{
	struct pollfd p = { .fd = s->fd, .events = POLLIN };
	ssize_t n;
	int r;

	shutdown(s->fd, SHUT_WR);
	for (;;) {
		r = poll(&p, 1, -1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return;
		n = recv(s->fd, s->rx, AGENT_HDR_SIZE + AGENT_FRAME_MAX,
			 MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN))
			return;
	}
}

static void teardown(struct serve *s)
{
	if (s->pid > 0 && !s->exited) {
		kill_rest(s);
		kill(s->pid, SIGKILL);
		while (waitpid(s->pid, NULL, 0) < 0 && errno == EINTR)
			;
	}
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
	if (s->rx)
		drain(s);
	close_fd(&s->in_w);
	close_fd(&s->out_r);
	close_fd(&s->err_r);
	close_fd(&s->memfd);
	close_fd(&s->sfd);
	sigaction(SIGPIPE, &s->old_pipe, NULL);
	sigprocmask(SIG_SETMASK, &s->old_mask, NULL);
	free(s->strings);
	free(s->argv);
	free(s->envp);
	free(s->rx);
	free(s->tx);
}

int agent__serve(int fd, const struct agent_hooks *hooks)
{
	struct serve s = {
		.fd = fd,
		.hooks = hooks,
		.sfd = -1,
		.memfd = -1,
		.in_w = -1,
		.out_r = -1,
		.err_r = -1,
	};
	int err;

	open_std_fds();
	sigprocmask(SIG_SETMASK, NULL, &s.old_mask);
	sigaction(SIGPIPE, NULL, &s.old_pipe);
	err = prepare(&s);
	if (!err)
		err = send_window(&s);
	if (!err)
		err = do_init(&s);
	if (!err && !s.done)
		err = do_exec(&s);
	if (!err && !s.done)
		err = do_fn_data(&s);
	if (!err && !s.done)
		err = do_start(&s);
	if (!err && !s.done)
		err = run(&s);
	teardown(&s);
	return err;
}

/* ---- vsock: the ready report and the one connection ---- */

static int report_ready(void)
{
	struct sockaddr_vm host = {
		.svm_family = AF_VSOCK,
		.svm_cid = AGENT_HOST_CID,
		.svm_port = AGENT_READY_PORT,
	};
	struct timespec pause = { .tv_nsec = READY_RETRY_MS * 1000000L };
	uint8_t frame[AGENT_READY_FRAME];
	size_t len, off = 0;
	int fd = -1, err = 0;
	ssize_t n;

	for (int i = 0; i < READY_TRIES; i++) {
		fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return -errno;
		if (connect(fd, (struct sockaddr *)&host, sizeof(host)) == 0)
			break;
		err = -errno;
		close_fd(&fd);
		/* A host not listening yet resets the connection; anything else is final. */
		if (err != -ECONNRESET && err != -ECONNREFUSED &&
		    err != -ETIMEDOUT && err != -EINTR)
			break;
		nanosleep(&pause, NULL);
	}
	if (fd < 0)
		return err;
	err = agent__encode_ready(frame, sizeof(frame), &len);
	while (!err && off < len) {
		n = send(fd, frame + off, len - off, MSG_NOSIGNAL);
		if (n < 0 && errno != EINTR)
			err = -errno;
		else if (n > 0)
			off += (size_t)n;
	}
	close(fd);
	return err;
}

/* The guest physical address of each page of @map (@size bytes), merged into extents. */
static int window_extents(struct agent_fn_window *w, const uint8_t *map)
{
	uint64_t pages = w->size / AGENT_WINDOW_PAGE, e;
	int fd, err = 0;

	w->ext = calloc((size_t)pages, sizeof(*w->ext));
	if (!w->ext)
		return -ENOMEM;
	fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	for (uint64_t i = 0; i < pages && !err; i++) {
		uint64_t va =
			(uint64_t)(uintptr_t)(map + i * AGENT_WINDOW_PAGE);
		uint64_t gpa;

		if (pread(fd, &e, sizeof(e),
			  (off_t)(va / AGENT_WINDOW_PAGE * sizeof(e))) !=
		    sizeof(e)) {
			err = -errno;
			break;
		}
		/* Bit 63: present; bits 0-54: the frame (0 without CAP_SYS_ADMIN). */
		gpa = (e & ((1ULL << 55) - 1)) * AGENT_WINDOW_PAGE;
		if (!(e >> 63) || !gpa) {
			err = -EPERM;
			break;
		}
		if (w->count &&
		    w->ext[w->count - 1].gpa + w->ext[w->count - 1].len == gpa)
			w->ext[w->count - 1].len += AGENT_WINDOW_PAGE;
		else
			w->ext[w->count++] =
				(struct agent_extent){ gpa, AGENT_WINDOW_PAGE };
	}
	close(fd);
	return err;
}

/*
 * The window's pages stay where pagemap saw them: the guest kernel has no
 * swap, compaction or page migration, and shared memory is never reclaimed
 * without swap. They are allocated before the snapshot, so every clone
 * shares them (zero pages) until the host writes a function there.
 */
static void window_create(struct agent_fn_window *w)
{
	uint8_t *map = MAP_FAILED;
	int err;

	*w = (struct agent_fn_window){ .fd = -1 };
	if (sysconf(_SC_PAGESIZE) != AGENT_WINDOW_PAGE)
		return;
	w->size = AGENT_WINDOW_SIZE;
	w->fd = create_memfd();
	err = w->fd;
	if (w->fd >= 0 && ftruncate(w->fd, (off_t)w->size) < 0)
		err = -errno;
	if (err >= 0) {
		map = mmap(NULL, w->size, PROT_READ | PROT_WRITE, MAP_SHARED,
			   w->fd, 0);
		err = map == MAP_FAILED ? -errno : 0;
	}
	/* A write allocates each page: a read could map the shared zero page. */
	for (uint64_t off = 0; !err && off < w->size; off += AGENT_WINDOW_PAGE)
		map[off] = 0;
	if (!err)
		err = window_extents(w, map);
	if (map != MAP_FAILED)
		munmap(map, w->size);
	if (!err)
		return;
	log_err("no function window (%s): functions come over vsock",
		strerror(-err));
	close_fd(&w->fd);
	free(w->ext);
	*w = (struct agent_fn_window){ .fd = -1 };
}

int agent__main(const struct agent_hooks *hooks)
{
	struct sockaddr_vm any = {
		.svm_family = AF_VSOCK,
		.svm_cid = VMADDR_CID_ANY,
		.svm_port = AGENT_PORT,
	};
	struct agent_fn_window window;
	struct agent_hooks h = *hooks;
	int lfd, fd, err;

	lfd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0) {
		err = -errno;
		log_err("vsock socket: %s", strerror(-err));
		return err;
	}
	/* Listening before READY: a clone restored from the snapshot may be called at once. */
	if (bind(lfd, (struct sockaddr *)&any, sizeof(any)) < 0 ||
	    listen(lfd, 1) < 0) {
		err = -errno;
		log_err("listening on vsock port %d: %s", AGENT_PORT,
			strerror(-err));
		close(lfd);
		return err;
	}
	window_create(&window);
	h.window = &window;
	err = report_ready();
	if (err)
		log_err("reporting ready to the host's vsock port %d: %s",
			AGENT_READY_PORT, strerror(-err));
	/*
	 * The ready point: every clone of the snapshot resumes in accept(). One invocation per
	 * VM, but a connection that ends before its first byte carried none: a restored vsock
	 * device resets the connections it finds, which may catch one the host just made.
	 */
	for (int i = 0;; i++) {
		do {
			fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		} while (fd < 0 && errno == EINTR);
		if (fd < 0) {
			err = -errno;
			log_err("accept: %s", strerror(-err));
			break;
		}
		err = agent__serve(fd, &h);
		close(fd);
		if (err != -ENOTCONN || i + 1 == ACCEPT_TRIES)
			break;
	}
	close(lfd);
	close_fd(&window.fd);
	free(window.ext);
	return err;
}
