// SPDX-License-Identifier: Apache-2.0
// invoke__run() against agent__serve() over a socketpair, running real host binaries as functions.
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../../images/agent/agent.h"
#include "../../launcher/invoke.h"

#define MIB (1U << 20)

/*
 * The agent runs in a forked child. Its INIT hooks are fakes: the real ones would feed this
 * machine's entropy pool and set its clock. They report what they got through hook_pipe.
 */
static int hook_pipe[2] = { -1, -1 };
static int warm_pipe[2] = { -1, -1 };
static int entropy_err;
static int clock_err;

struct hook_report {
	uint8_t entropy[AGENT_ENTROPY_SIZE];
	size_t len;
	uint64_t realtime_ns;
};

static struct hook_report report;

static int fake_entropy(void *arg, const void *buf, size_t len)
{
	(void)arg;
	if (len <= sizeof(report.entropy))
		memcpy(report.entropy, buf, len);
	report.len = len;
	return entropy_err;
}

static int fake_clock(void *arg, uint64_t realtime_ns)
{
	(void)arg;
	report.realtime_ns = realtime_ns;
	if (hook_pipe[1] >= 0 &&
	    write(hook_pipe[1], &report, sizeof(report)) != sizeof(report))
		return -EIO;
	return clock_err;
}

/* The warm-up: a byte on warm_pipe per call, in the agent's process. */
static int warm_err;

static int fake_warm(void *arg)
{
	(void)arg;
	if (write(warm_pipe[1], "W", 1) != 1)
		return -EIO;
	return warm_err;
}

static const struct agent_hooks fake_hooks = {
	.add_entropy = fake_entropy,
	.set_clock = fake_clock,
	.warm = fake_warm,
};

static void setup(void)
{
	entropy_err = 0;
	clock_err = 0;
	warm_err = 0;
	cr_assert_eq(pipe2(hook_pipe, O_CLOEXEC), 0);
	cr_assert_eq(pipe2(warm_pipe, O_CLOEXEC | O_NONBLOCK), 0);
}

static void teardown(void)
{
	close(hook_pipe[0]);
	close(hook_pipe[1]);
	close(warm_pipe[0]);
	close(warm_pipe[1]);
}

TestSuite(invoke, .init = setup, .fini = teardown, .timeout = 60);

/* ---- helpers ---- */

struct agent_proc {
	pid_t pid;
	int fd; /* the host end */
};

/* Forks an agent serving one invocation on a socketpair; its exit status is -agent__serve(). */
static struct agent_proc spawn_agent_with(const struct agent_hooks *hooks)
{
	struct agent_proc a;
	int sv[2];

	/* The agent's end is inheritable, as an accepted socket could be: it must not leak. */
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	cr_assert_eq(fcntl(sv[0], F_SETFD, FD_CLOEXEC), 0);
	a.pid = fork();
	cr_assert_geq(a.pid, 0);
	if (a.pid == 0) {
		int r;

		close(sv[0]);
		r = agent__serve(sv[1], hooks);
		_exit(r < 0 ? -r : 0);
	}
	close(sv[1]);
	a.fd = sv[0];
	return a;
}

static struct agent_proc spawn_agent(void)
{
	return spawn_agent_with(&fake_hooks);
}

/* Closes the host end and returns the agent's exit status. */
static int agent_done(struct agent_proc *a)
{
	int status;

	close(a->fd);
	cr_assert_eq(waitpid(a->pid, &status, 0), a->pid);
	cr_assert(WIFEXITED(status), "agent died: status %#x", status);
	return WEXITSTATUS(status);
}

static void *load(const char *path, size_t *size)
{
	struct stat st;
	void *p;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	cr_assert_geq(fd, 0, "%s", path);
	cr_assert_eq(fstat(fd, &st), 0);
	p = malloc((size_t)st.st_size);
	cr_assert_not_null(p);
	cr_assert_eq(read(fd, p, (size_t)st.st_size), st.st_size);
	close(fd);
	*size = (size_t)st.st_size;
	return p;
}

/* A memory file: out_fd/err_fd that never block, or an in_fd holding @len bytes of @data. */
static int mem_file(const void *data, size_t len)
{
	int fd = memfd_create("test", MFD_CLOEXEC);

	cr_assert_geq(fd, 0);
	if (len)
		cr_assert_eq(write(fd, data, len), (ssize_t)len);
	cr_assert_eq(lseek(fd, 0, SEEK_SET), 0);
	return fd;
}

/* What a memory file holds, NUL-terminated; *len its size. */
static char *contents(int fd, size_t *len)
{
	off_t size = lseek(fd, 0, SEEK_END);
	char *p = malloc((size_t)size + 1);

	cr_assert_not_null(p);
	cr_assert_eq(pread(fd, p, (size_t)size, 0), size);
	p[size] = '\0';
	if (len)
		*len = (size_t)size;
	return p;
}

struct call {
	const char *binary; /* the function: a host file */
	const void *fn; /* or these bytes */
	size_t fn_size;
	const char *const *argv;
	const char *const *envp;
	int in_fd;
	unsigned int timeout_ms;
	int cancel_fd; /* 0: none */
	/* The agent's function window and the host's writer into it; NULL: none. */
	const struct agent_fn_window *window;
	invoke_write_fn *write_guest;
	void *write_arg;
	bool prepared; /* invoke__prepare() with warm first, as a pool does */
	/* results */
	int ret;
	int agent_status;
	struct invoke_result res;
	char *out;
	size_t out_len;
	char *err;
	size_t err_len;
};

/* One invocation against a fresh agent; output collected in memory files. */
static void call(struct call *c)
{
	struct invoke_session session;
	struct invoke_request req = { 0 };
	struct agent_hooks hooks;
	struct agent_proc a;
	void *fn = NULL;
	int out, err;

	if (c->binary) {
		fn = load(c->binary, &req.fn_size);
		req.fn = fn;
	} else {
		req.fn = c->fn;
		req.fn_size = c->fn_size;
	}
	req.argv = c->argv;
	req.envp = c->envp;
	req.in_fd = c->in_fd;
	req.out_fd = out = mem_file(NULL, 0);
	req.err_fd = err = mem_file(NULL, 0);
	req.timeout_ms = c->timeout_ms ? c->timeout_ms : 20000;
	req.cancel_fd = c->cancel_fd ? c->cancel_fd : -1;
	req.write_guest = c->write_guest;
	req.write_arg = c->write_arg;
	hooks = fake_hooks;
	hooks.window = c->window;
	a = spawn_agent_with(&hooks);
	if (c->prepared) {
		struct pollfd p = { .fd = warm_pipe[0], .events = POLLIN };

		cr_assert_eq(invoke__prepare(a.fd, 20000, -1, true, &session),
			     0);
		req.session = &session;
		/* A pool's VM waits for its run: the agent warms up meanwhile. */
		cr_assert_eq(poll(&p, 1, 10000), 1, "no warm-up");
	}
	c->ret = invoke__run(a.fd, &req, &c->res);
	if (c->prepared)
		invoke__session_free(&session);
	c->agent_status = agent_done(&a);
	c->out = contents(out, &c->out_len);
	c->err = contents(err, &c->err_len);
	close(out);
	close(err);
	free(fn);
}

static void call_free(struct call *c)
{
	free(c->out);
	free(c->err);
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- functions that run ---- */

Test(invoke, echo_prints_its_arguments)
{
	const char *argv[] = { "echo", "hello", "world", NULL };
	struct call c = { .binary = "/bin/echo", .argv = argv, .in_fd = -1 };

	call(&c);
	cr_assert_eq(c.ret, 0);
	cr_assert_eq(c.res.kind, INVOKE_EXITED);
	cr_assert_eq(c.res.code, 0);
	cr_assert_str_eq(c.out, "hello world\n");
	cr_assert_str_eq(c.err, "");
	cr_assert_eq(c.res.stdout_bytes, 12);
	cr_assert_eq(c.res.stderr_bytes, 0);
	cr_assert_gt(c.res.sent_ns, 0);
	cr_assert_gt(c.res.started_ns, 0);
	cr_assert_geq(c.res.ended_ns, c.res.started_ns);
	cr_assert_eq(c.agent_status, 0);
	call_free(&c);
}

/*
 * A window as the guest's agent makes one, at made-up guest addresses: a memfd
 * the agent runs the function from, which "guest memory" writes reach.
 */
struct fake_window {
	struct agent_fn_window w;
	struct agent_extent ext[2];
	unsigned int writes;
	int fail; /* the writer's answer when not 0 */
};

static int write_fake(void *arg, uint64_t gpa, const void *src, size_t len)
{
	struct fake_window *f = arg;
	uint64_t off = 0;

	if (f->fail)
		return f->fail;
	for (uint32_t i = 0; i < f->w.count; i++) {
		const struct agent_extent *e = &f->ext[i];

		if (gpa >= e->gpa && gpa + len <= e->gpa + e->len) {
			cr_assert_eq(pwrite(f->w.fd, src, len,
					    (off_t)(off + gpa - e->gpa)),
				     (ssize_t)len);
			f->writes++;
			return 0;
		}
		off += e->len;
	}
	return -EFAULT;
}

static void fake_window(struct fake_window *f, uint64_t first, uint64_t second)
{
	memset(f, 0, sizeof(*f));
	f->ext[0] = (struct agent_extent){ 0x40000000, first };
	f->ext[1] = (struct agent_extent){ 0x48000000, second };
	f->w.size = first + second;
	f->w.count = 2;
	f->w.ext = f->ext;
	f->w.fd = memfd_create("window", MFD_CLOEXEC);
	cr_assert_geq(f->w.fd, 0);
	cr_assert_eq(ftruncate(f->w.fd, (off_t)f->w.size), 0);
}

/* Runs *@c with @f as the agent's window and "guest memory"; it must exit 0. */
static void window_run(struct fake_window *f, struct call *c)
{
	c->in_fd = -1;
	c->window = &f->w;
	c->write_guest = write_fake;
	c->write_arg = f;
	call(c);
	cr_assert_eq(c->ret, 0);
	cr_assert_eq(c->res.kind, INVOKE_EXITED);
	cr_assert_eq(c->res.code, 0, "%.*s", (int)c->err_len, c->err);
}

static void window_call(struct fake_window *f, struct call *c)
{
	static const char *argv[] = { "echo", "in", "window", NULL };

	*c = (struct call){ .binary = "/bin/echo", .argv = argv };
	window_run(f, c);
	cr_assert_str_eq(c->out, "in window\n");
}

/* @fn (@size bytes) through a fresh fake window; it must exit 0. */
static void window_bytes(struct fake_window *f, struct call *c, const void *fn,
			 size_t size, const char *const *argv)
{
	fake_window(f, 4096, 4 * MIB);
	*c = (struct call){ .fn = fn, .fn_size = size, .argv = argv };
	window_run(f, c);
}

Test(invoke, a_function_that_fits_the_window_is_written_there_not_sent)
{
	struct fake_window f;
	struct stat st;
	struct call c;
	size_t size;

	free(load("/bin/echo", &size));
	/* The function spans both extents. */
	fake_window(&f, 4096, 4 * MIB);
	window_call(&f, &c);
	cr_assert_eq(f.writes, 2);
	/* The agent ran it from the window in place: nothing freed on the way. */
	cr_assert_eq(fstat(f.w.fd, &st), 0);
	cr_assert_eq((uint64_t)st.st_size, f.w.size);
	cr_assert_gt(f.w.size, size);
	call_free(&c);
	close(f.w.fd);
}

Test(invoke, an_elf_with_a_payload_after_its_image_sees_its_exact_file)
{
	static const char tail[] = "PAYLOAD!";
	const char *argv[] = { "tail", "-c", "8", "/proc/self/exe", NULL };
	struct fake_window f;
	struct stat st;
	struct call c;
	size_t size;
	char *fn;

	/* tail reads its own file's last bytes: the payload, not the window's zeros. */
	fn = load("/usr/bin/tail", &size);
	fn = realloc(fn, size + sizeof(tail) - 1);
	cr_assert_not_null(fn);
	memcpy(fn + size, tail, sizeof(tail) - 1);
	window_bytes(&f, &c, fn, size + sizeof(tail) - 1, argv);
	cr_assert_eq(f.writes, 2);
	cr_assert_eq(c.out_len, sizeof(tail) - 1);
	cr_assert_str_eq(c.out, tail);
	cr_assert_eq(fstat(f.w.fd, &st), 0);
	cr_assert_eq((size_t)st.st_size, c.fn_size, "cut to its exact size");
	call_free(&c);
	free(fn);
	close(f.w.fd);
}

Test(invoke, a_script_in_the_window_is_read_to_its_end_not_the_windows)
{
	/* cat as the interpreter prints the whole file it is given. */
	static const char script[] = "#!/bin/cat\nonly this\n";
	const char *argv[] = { "fn", NULL };
	struct fake_window f;
	struct call c;

	window_bytes(&f, &c, script, sizeof(script) - 1, argv);
	cr_assert_eq(f.writes, 1);
	cr_assert_eq(c.out_len, sizeof(script) - 1);
	cr_assert_str_eq(c.out, script);
	call_free(&c);
	close(f.w.fd);
}

Test(invoke, a_function_too_big_for_the_window_is_sent)
{
	struct fake_window f;
	struct stat st;
	struct call c;

	fake_window(&f, 4096, 4096);
	window_call(&f, &c);
	cr_assert_eq(f.writes, 0);
	/* The unused window is given back to the guest. */
	cr_assert_eq(fstat(f.w.fd, &st), 0);
	cr_assert_eq(st.st_size, 0);
	call_free(&c);
	close(f.w.fd);
}

Test(invoke, a_window_outside_guest_memory_falls_back_to_sending)
{
	struct fake_window f;
	struct call c;

	fake_window(&f, 4096, 4 * MIB);
	f.fail = -EFAULT;
	window_call(&f, &c);
	cr_assert_eq(f.writes, 0);
	call_free(&c);
	close(f.w.fd);
}

Test(invoke, a_mebibyte_goes_through_stdin_and_back_unchanged)
{
	const char *argv[] = { "cat", NULL };
	uint8_t *data = malloc(MIB);
	struct call c = { .binary = "/bin/cat", .argv = argv };

	cr_assert_not_null(data);
	cr_assert_eq(getrandom(data, MIB, 0), MIB);
	c.in_fd = mem_file(data, MIB);
	call(&c);
	cr_assert_eq(c.ret, 0);
	cr_assert_eq(c.res.kind, INVOKE_EXITED);
	cr_assert_eq(c.res.code, 0);
	cr_assert_eq(c.res.stdin_bytes, MIB);
	cr_assert_eq(c.out_len, MIB);
	cr_assert_eq(c.res.stdout_bytes, MIB);
	cr_assert(memcmp(c.out, data, MIB) == 0, "stdout differs from stdin");
	close(c.in_fd);
	free(data);
	call_free(&c);
}

Test(invoke, exit_status_is_reported)
{
	const char *argv[] = { "sh", "-c", "exit 3", NULL };
	struct call c = { .binary = "/bin/sh", .argv = argv, .in_fd = -1 };

	call(&c);
	cr_assert_eq(c.ret, 0);
	cr_assert_eq(c.res.kind, INVOKE_EXITED);
	cr_assert_eq(c.res.code, 3);
	call_free(&c);
}

Test(invoke, death_by_signal_is_reported_as_the_signal)
{
	const char *argv[] = { "sh", "-c", "kill -9 $$", NULL };
	struct call c = { .binary = "/bin/sh", .argv = argv, .in_fd = -1 };

	call(&c);
	cr_assert_eq(c.ret, 0);
	cr_assert_eq(c.res.kind, INVOKE_SIGNALED);
	cr_assert_eq(c.res.code, SIGKILL);
	call_free(&c);
}

Test(invoke, stderr_and_stdout_are_kept_apart)
{
	const char *argv[] = { "sh", "-c", "echo oops >&2; echo fine; exit 1",
			       NULL };
	struct call c = { .binary = "/bin/sh", .argv = argv, .in_fd = -1 };

	call(&c);
	cr_assert_eq(c.ret, 0);
	cr_assert_eq(c.res.code, 1);
	cr_assert_str_eq(c.out, "fine\n");
	cr_assert_str_eq(c.err, "oops\n");
	cr_assert_eq(c.res.stderr_bytes, 5);
	call_free(&c);
}

Test(invoke, the_function_gets_exactly_the_given_environment)
{
	const char *argv[] = { "sh", "-c", "echo \"$FOO|$HOME|$#|$0\"", NULL };
	const char *envp[] = { "FOO=bar baz", NULL };
	struct call c = {
		.binary = "/bin/sh", .argv = argv, .envp = envp, .in_fd = -1
	};

	setenv("HOME", "/leaked", 1);
	call(&c);
	cr_assert_eq(c.ret, 0);
	cr_assert_str_eq(c.out, "bar baz||0|sh\n");
	call_free(&c);
}

Test(invoke, a_script_runs_through_its_interpreter)
{
	static const char script[] = "#!/bin/sh\necho script \"$1\"\nexit 7\n";
	const char *argv[] = { "myscript", "arg one", NULL };
	struct call c = { .fn = script,
			  .fn_size = sizeof(script) - 1,
			  .argv = argv,
			  .in_fd = -1 };

	call(&c);
	cr_assert_eq(c.ret, 0);
	cr_assert_eq(c.res.kind, INVOKE_EXITED);
	cr_assert_eq(c.res.code, 7);
	cr_assert_str_eq(c.out, "script arg one\n");
	call_free(&c);
}

Test(invoke, stdin_closed_or_dev_null_is_empty)
{
	const char *argv[] = { "sh", "-c", "wc -c", NULL };
	const char *envp[] = { "PATH=/usr/bin:/bin", NULL };
	struct call c = {
		.binary = "/bin/sh", .argv = argv, .envp = envp, .in_fd = -1
	};
	struct call d = c;

	call(&c);
	cr_assert_eq(c.ret, 0);
	cr_assert_eq(atoi(c.out), 0);
	cr_assert_eq(c.res.stdin_bytes, 0);
	d.in_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	cr_assert_geq(d.in_fd, 0);
	call(&d);
	cr_assert_eq(d.ret, 0);
	cr_assert_eq(atoi(d.out), 0);
	close(d.in_fd);
	call_free(&c);
	call_free(&d);
}

Test(invoke, stdin_the_function_never_reads_does_not_block_it)
{
	const char *argv[] = { "sh", "-c", "echo done", NULL };
	uint8_t *data = calloc(1, 4 * MIB);
	struct call c = { .binary = "/bin/sh", .argv = argv };

	c.in_fd = mem_file(data, 4 * MIB);
	call(&c);
	cr_assert_eq(c.ret, 0);
	cr_assert_eq(c.res.kind, INVOKE_EXITED);
	cr_assert_eq(c.res.code, 0);
	cr_assert_str_eq(c.out, "done\n");
	close(c.in_fd);
	free(data);
	call_free(&c);
}

/* Whether a live process has @marker as its last argument. */
static bool process_with_arg(const char *marker)
{
	char path[300], buf[256];
	struct dirent *de;
	bool found = false;
	ssize_t n;
	DIR *d;
	int fd;

	d = opendir("/proc");
	cr_assert_not_null(d);
	while (!found && (de = readdir(d))) {
		if (de->d_name[0] < '1' || de->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/cmdline", de->d_name);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		/* Zombies have an empty cmdline; they hold no pipes. */
		if (n <= 0)
			continue;
		buf[n] = '\0';
		if (n > (ssize_t)strlen(marker) &&
		    !strcmp(buf + n - strlen(marker) - 1, marker))
			found = true;
	}
	closedir(d);
	return found;
}

Test(invoke, what_the_function_leaves_running_is_killed)
{
	/* Background jobs hold stdout open: without the kill, EXIT would wait 97 s. */
	const char *argv[] = {
		"sh", "-c",
		"for i in 1 2 3 4 5; do /bin/sleep 97.125 & done; echo bg; exit 4",
		NULL
	};
	struct call c = { .binary = "/bin/sh", .argv = argv, .in_fd = -1 };
	int64_t t = now_ms();
	int i;

	call(&c);
	cr_assert_eq(c.ret, 0);
	cr_assert_eq(c.res.kind, INVOKE_EXITED);
	cr_assert_eq(c.res.code, 4);
	cr_assert_str_eq(c.out, "bg\n");
	cr_assert_lt(now_ms() - t, 10000);
	for (i = 0; i < 100 && process_with_arg("97.125"); i++)
		usleep(10000);
	cr_assert(!process_with_arg("97.125"), "a background sleep survived");
	call_free(&c);
}

Test(invoke, the_host_connection_does_not_reach_the_function)
{
	const char *argv[] = {
		"sh", "-c",
		"for f in /proc/$$/fd/*; do readlink $f; done; exit 0", NULL
	};
	const char *envp[] = { "PATH=/usr/bin:/bin", NULL };
	struct call c = {
		.binary = "/bin/sh", .argv = argv, .envp = envp, .in_fd = -1
	};

	call(&c);
	cr_assert_eq(c.ret, 0);
	cr_assert_eq(c.res.code, 0, "%s%s", c.out, c.err);
	cr_assert_not_null(strstr(c.out, "pipe:"), "%s", c.out);
	cr_assert_null(strstr(c.out, "socket:"), "leaked: %s", c.out);
	cr_assert_null(strstr(c.out, "memfd:"), "leaked: %s", c.out);
	call_free(&c);
}

/* ---- functions that cannot start ---- */

Test(invoke, a_file_that_is_not_executable_is_an_agent_error)
{
	static const char text[] = "just some text\n";
	const char *argv[] = { "notes.txt", NULL };
	struct call c = { .fn = text,
			  .fn_size = sizeof(text) - 1,
			  .argv = argv,
			  .in_fd = -1 };

	call(&c);
	cr_assert_eq(c.ret, 0);
	cr_assert_eq(c.res.kind, INVOKE_AGENT_ERROR);
	cr_assert_eq(c.res.code, ENOEXEC);
	cr_assert_not_null(strstr(c.res.message, "exec notes.txt"), "%s",
			   c.res.message);
	cr_assert_eq(c.res.started_ns, 0);
	cr_assert_gt(c.res.ended_ns, 0);
	cr_assert_eq(c.agent_status, 0);
	call_free(&c);
}

Test(invoke, an_empty_function_is_an_agent_error)
{
	const char *argv[] = { "empty", NULL };
	struct call c = { .fn = "", .fn_size = 0, .argv = argv, .in_fd = -1 };

	call(&c);
	cr_assert_eq(c.ret, 0);
	cr_assert_eq(c.res.kind, INVOKE_AGENT_ERROR);
	cr_assert_eq(c.res.code, ENOEXEC);
	call_free(&c);
}

Test(invoke, a_script_whose_interpreter_is_missing_is_an_agent_error)
{
	static const char script[] = "#!/nonexistent/interpreter\n";
	const char *argv[] = { "s", NULL };
	struct call c = { .fn = script,
			  .fn_size = sizeof(script) - 1,
			  .argv = argv,
			  .in_fd = -1 };

	call(&c);
	cr_assert_eq(c.ret, 0);
	cr_assert_eq(c.res.kind, INVOKE_AGENT_ERROR);
	cr_assert_eq(c.res.code, ENOENT);
	call_free(&c);
}

Test(invoke, hooks_get_fresh_entropy_and_the_time)
{
	const char *argv[] = { "true", NULL };
	struct call c = { .binary = "/bin/true", .argv = argv, .in_fd = -1 };
	struct hook_report r[2];
	struct timespec ts;
	uint64_t now;
	static const uint8_t zero[AGENT_ENTROPY_SIZE];

	for (int i = 0; i < 2; i++) {
		call(&c);
		cr_assert_eq(c.ret, 0);
		cr_assert_eq(read(hook_pipe[0], &r[i], sizeof(r[i])),
			     sizeof(r[i]));
		call_free(&c);
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	now = (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
	for (int i = 0; i < 2; i++) {
		cr_assert_eq(r[i].len, AGENT_ENTROPY_SIZE);
		cr_assert(memcmp(r[i].entropy, zero, sizeof(zero)) != 0);
		cr_assert_leq(r[i].realtime_ns, now);
		cr_assert_gt(r[i].realtime_ns, now - 30000000000ULL);
	}
	cr_assert(memcmp(r[0].entropy, r[1].entropy, sizeof(zero)) != 0,
		  "two invocations got the same entropy");
}

Test(invoke, a_failed_entropy_hook_stops_the_function)
{
	const char *argv[] = { "echo", "must not run", NULL };
	struct call c = { .binary = "/bin/echo", .argv = argv, .in_fd = -1 };

	entropy_err = -EPERM;
	call(&c);
	cr_assert_eq(c.ret, 0);
	cr_assert_eq(c.res.kind, INVOKE_AGENT_ERROR);
	cr_assert_eq(c.res.code, EPERM);
	cr_assert_not_null(strstr(c.res.message, "entropy"));
	cr_assert_str_eq(c.out, "");
	cr_assert_eq(c.agent_status, EPERM);
	call_free(&c);
}

Test(invoke, a_failed_clock_hook_stops_the_function)
{
	const char *argv[] = { "echo", "must not run", NULL };
	struct call c = { .binary = "/bin/echo", .argv = argv, .in_fd = -1 };

	clock_err = -EINVAL;
	call(&c);
	cr_assert_eq(c.ret, 0);
	cr_assert_eq(c.res.kind, INVOKE_AGENT_ERROR);
	cr_assert_eq(c.res.code, EINVAL);
	cr_assert_not_null(strstr(c.res.message, "clock"));
	cr_assert_str_eq(c.out, "");
	call_free(&c);
}

/* Bytes the fake warm-up hook wrote: one per call. */
static int warm_ups(void)
{
	char b[8];
	ssize_t n = read(warm_pipe[0], b, sizeof(b));

	return n < 0 ? 0 : (int)n;
}

Test(invoke, a_prepared_vm_warms_up_and_an_inline_run_does_not)
{
	const char *argv[] = { "echo", "warm", NULL };
	struct call c = { .binary = "/bin/echo", .argv = argv, .in_fd = -1 };

	call(&c);
	cr_assert_eq(c.ret, 0);
	cr_assert_str_eq(c.out, "warm\n");
	cr_assert_eq(warm_ups(), 0, "an inline run has no time to warm up");
	call_free(&c);
	c.prepared = true;
	call(&c);
	cr_assert_eq(c.ret, 0);
	cr_assert_eq(c.res.kind, INVOKE_EXITED);
	cr_assert_str_eq(c.out, "warm\n");
	cr_assert_eq(warm_ups(), 1);
	call_free(&c);
}

Test(invoke, a_failed_warm_up_does_not_stop_the_function)
{
	const char *argv[] = { "echo", "ran", NULL };
	struct call c = { .binary = "/bin/echo",
			  .argv = argv,
			  .in_fd = -1,
			  .prepared = true };

	warm_err = -ENOEXEC;
	call(&c);
	cr_assert_eq(c.ret, 0);
	cr_assert_eq(c.res.kind, INVOKE_EXITED);
	cr_assert_eq(c.res.code, 0);
	cr_assert_str_eq(c.out, "ran\n");
	cr_assert_eq(warm_ups(), 1);
	call_free(&c);
}

Test(invoke, the_warm_up_binary_acts_only_under_its_name)
{
	char name[] = AGENT_WARM_ARGV0, other[] = "/init", arg[] = "x";
	char *warm[] = { name, NULL }, *init[] = { other, NULL };
	char *two[] = { name, arg, NULL };
	int out = dup(STDOUT_FILENO), mem = mem_file(NULL, 0);
	char *got;

	cr_assert_eq(agent__warm_main(1, init), -1);
	cr_assert_eq(agent__warm_main(2, two), -1);
	fflush(stdout);
	cr_assert_eq(dup2(mem, STDOUT_FILENO), STDOUT_FILENO);
	cr_assert_eq(agent__warm_main(1, warm), 0);
	fflush(stdout);
	cr_assert_eq(dup2(out, STDOUT_FILENO), STDOUT_FILENO);
	got = contents(mem, NULL);
	cr_assert_str_eq(got, "warm\n", "what a small function does: a line");
	free(got);
	close(out);
	close(mem);
}

/* ---- the host's limits ---- */

Test(invoke, timeout_ends_the_invocation_and_the_agent_kills_the_function)
{
	const char *argv[] = { "sleep", "93.375", NULL };
	struct call c = { .binary = "/bin/sleep",
			  .argv = argv,
			  .in_fd = -1,
			  .timeout_ms = 300 };
	int64_t t = now_ms();
	int i;

	call(&c);
	cr_assert_eq(c.ret, -ETIMEDOUT);
	cr_assert_gt(c.res.started_ns, 0);
	cr_assert_eq(c.res.ended_ns, 0);
	/* Once the host closed the connection the agent gave up. */
	cr_assert_eq(c.agent_status, ECONNRESET);
	cr_assert_lt(now_ms() - t, 5000);
	for (i = 0; i < 100 && process_with_arg("93.375"); i++)
		usleep(10000);
	cr_assert(!process_with_arg("93.375"), "the function survived");
	call_free(&c);
}

Test(invoke, requests_the_protocol_cannot_carry_are_refused)
{
	static const char *many[AGENT_ARGV_MAX + 2];
	const char *argv[] = { "fn", NULL };
	const char *none[] = { NULL };
	struct invoke_request req = {
		.fn = "x", .fn_size = 1, .in_fd = -1, .out_fd = -1, .err_fd = -1
	};
	struct invoke_result res;
	int sv[2];

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	req.argv = none;
	cr_assert_eq(invoke__run(sv[0], &req, &res), -EINVAL);
	for (int i = 0; i <= AGENT_ARGV_MAX; i++)
		many[i] = "a";
	req.argv = many;
	cr_assert_eq(invoke__run(sv[0], &req, &res), -E2BIG);
	req.argv = argv;
	req.fn_size = AGENT_FN_MAX + 1;
	cr_assert_eq(invoke__run(sv[0], &req, &res), -EFBIG);
	/* Nothing was sent. */
	cr_assert_eq(recv(sv[1], &res, 1, MSG_DONTWAIT), -1);
	cr_assert_eq(errno, EAGAIN);
	close(sv[0]);
	close(sv[1]);
}

/* ---- output to slow, blocking, non-blocking and closed readers ---- */

struct slow_reader {
	int fd;
	size_t got;
	uint8_t *buf;
};

static void *slow_read(void *arg)
{
	struct slow_reader *s = arg;
	ssize_t n;

	for (;;) {
		n = read(s->fd, s->buf + s->got, 3000);
		if (n <= 0)
			break;
		s->got += (size_t)n;
		if (s->got % 7 == 0)
			usleep(1000);
	}
	return NULL;
}

static void output_through_pipe(bool nonblocking)
{
	const char *argv[] = { "cat", NULL };
	uint8_t *data = malloc(MIB);
	struct slow_reader s = { .buf = malloc(MIB + 1) };
	struct invoke_request req = { .argv = argv, .err_fd = -1 };
	struct invoke_result res;
	struct agent_proc a;
	pthread_t t;
	int p[2];
	void *fn;

	cr_assert_eq(getrandom(data, MIB, 0), MIB);
	cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
	if (nonblocking)
		cr_assert_eq(fcntl(p[1], F_SETFL, O_NONBLOCK), 0);
	s.fd = p[0];
	cr_assert_eq(pthread_create(&t, NULL, slow_read, &s), 0);
	fn = load("/bin/cat", &req.fn_size);
	req.fn = fn;
	req.in_fd = mem_file(data, MIB);
	req.out_fd = p[1];
	req.timeout_ms = 30000;
	a = spawn_agent();
	cr_assert_eq(invoke__run(a.fd, &req, &res), 0);
	cr_assert_eq(agent_done(&a), 0);
	close(p[1]);
	pthread_join(t, NULL);
	cr_assert_eq(res.kind, INVOKE_EXITED);
	cr_assert_eq(res.code, 0);
	cr_assert_eq(s.got, MIB);
	cr_assert(memcmp(s.buf, data, MIB) == 0);
	close(p[0]);
	close(req.in_fd);
	free(fn);
	free(s.buf);
	free(data);
}

Test(invoke, output_to_a_slow_blocking_pipe_arrives_whole)
{
	output_through_pipe(false);
}

Test(invoke, output_to_a_slow_nonblocking_pipe_arrives_whole)
{
	output_through_pipe(true);
}

Test(invoke, output_nobody_reads_is_dropped_without_sigpipe)
{
	const char *argv[] = { "sh", "-c", "echo one; echo two >&2; exit 5",
			       NULL };
	struct invoke_request req = { .argv = argv, .in_fd = -1 };
	struct invoke_result res;
	struct agent_proc a;
	int p[2], q[2];
	void *fn;

	cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
	cr_assert_eq(pipe2(q, O_CLOEXEC), 0);
	close(p[0]);
	close(q[0]);
	fn = load("/bin/sh", &req.fn_size);
	req.fn = fn;
	req.out_fd = p[1];
	req.err_fd = q[1];
	req.timeout_ms = 20000;
	a = spawn_agent();
	/* A SIGPIPE would kill this test. */
	cr_assert_eq(invoke__run(a.fd, &req, &res), 0);
	cr_assert_eq(res.kind, INVOKE_EXITED);
	cr_assert_eq(res.code, 5);
	cr_assert_eq(res.stdout_bytes, 4);
	cr_assert_eq(agent_done(&a), 0);
	close(p[1]);
	close(q[1]);
	free(fn);
}

/* ---- a fake agent: scripted bytes against invoke__run() ---- */

/* Forks a peer that sends @len bytes of @b (one at a time with @trickle), then reads until EOF. */
static struct agent_proc fake_agent(const void *b, size_t len, bool trickle,
				    bool close_after)
{
	struct agent_proc a;
	char sink[4096];
	int sv[2];

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	a.pid = fork();
	cr_assert_geq(a.pid, 0);
	if (a.pid == 0) {
		const uint8_t *p = b;
		size_t off = 0, n;

		close(sv[0]);
		while (off < len) {
			n = trickle ? 1 : len - off;
			/* The host may have hung up already: it saw enough. */
			if (send(sv[1], p + off, n, MSG_NOSIGNAL) != (ssize_t)n)
				break;
			off += n;
			if (trickle)
				usleep(200);
		}
		if (close_after)
			_exit(0);
		while (read(sv[1], sink, sizeof(sink)) > 0)
			;
		_exit(0);
	}
	close(sv[1]);
	a.fd = sv[0];
	return a;
}

/* Appends a frame to @b at *@off. */
static void put(uint8_t *b, size_t *off, uint16_t version, uint16_t type,
		const void *payload, uint32_t len)
{
	struct agent_hdr_wire h = { .version = htole16(version),
				    .type = htole16(type),
				    .length = htole32(len) };

	memcpy(b + *off, &h, sizeof(h));
	if (len)
		memcpy(b + *off + sizeof(h), payload, len);
	*off += sizeof(h) + len;
}

static int run_against(const void *b, size_t len, bool trickle,
		       bool close_after, struct invoke_result *res, int out)
{
	const char *argv[] = { "fn", NULL };
	struct invoke_request req = { .argv = argv,
				      .fn = "\x7f"
					    "ELF",
				      .fn_size = 4,
				      .in_fd = -1,
				      .out_fd = out,
				      .err_fd = -1,
				      .timeout_ms = 10000 };
	/* Every connection starts with the agent's WINDOW: here, none. */
	static uint8_t w[sizeof(struct agent_window_wire) + AGENT_HDR_SIZE];
	uint8_t *all = malloc(sizeof(w) + len);
	struct agent_proc a;
	size_t wlen;
	int r;

	cr_assert_not_null(all);
	cr_assert_eq(agent__encode_window(w, sizeof(w), 0, NULL, 0, &wlen), 0);
	memcpy(all, w, wlen);
	memcpy(all + wlen, b, len);
	a = fake_agent(all, wlen + len, trickle, close_after);
	free(all);
	r = invoke__run(a.fd, &req, res);
	cr_assert_eq(agent_done(&a), 0);
	return r;
}

static const uint8_t exit0[8] = { 0 };
static const uint8_t exit_sig9[8] = { 1, 0, 0, 0, 9, 0, 0, 0 };

Test(invoke, frames_split_into_single_bytes_are_reassembled)
{
	uint8_t b[128];
	struct invoke_result res;
	size_t off = 0;
	int out = mem_file(NULL, 0);
	char *s;

	put(b, &off, AGENT_VERSION, AGENT_STARTED, NULL, 0);
	put(b, &off, AGENT_VERSION, AGENT_STDOUT, "hi ", 3);
	put(b, &off, AGENT_VERSION, AGENT_STDERR, "ignored", 7);
	put(b, &off, AGENT_VERSION, AGENT_STDOUT, "there", 5);
	put(b, &off, AGENT_VERSION, AGENT_EXIT, exit_sig9, 8);
	cr_assert_eq(run_against(b, off, true, false, &res, out), 0);
	cr_assert_eq(res.kind, INVOKE_SIGNALED);
	cr_assert_eq(res.code, 9);
	s = contents(out, NULL);
	cr_assert_str_eq(s, "hi there");
	cr_assert_eq(res.stderr_bytes, 7);
	free(s);
	close(out);
}

Test(invoke, a_frame_of_the_largest_size_is_accepted)
{
	static uint8_t b[3 * AGENT_FRAME_MAX];
	uint8_t *data = malloc(AGENT_FRAME_MAX);
	struct invoke_result res;
	size_t off = 0, len;
	int out = mem_file(NULL, 0);
	char *s;

	cr_assert_eq(getrandom(data, AGENT_FRAME_MAX, 0), AGENT_FRAME_MAX);
	put(b, &off, AGENT_VERSION, AGENT_STARTED, NULL, 0);
	put(b, &off, AGENT_VERSION, AGENT_STDOUT, data, 100);
	put(b, &off, AGENT_VERSION, AGENT_STDOUT, data + 100,
	    AGENT_FRAME_MAX - 100);
	put(b, &off, AGENT_VERSION, AGENT_EXIT, exit0, 8);
	cr_assert_eq(run_against(b, off, false, false, &res, out), 0);
	cr_assert_eq(res.kind, INVOKE_EXITED);
	s = contents(out, &len);
	cr_assert_eq(len, AGENT_FRAME_MAX);
	cr_assert(memcmp(s, data, len) == 0);
	free(s);
	free(data);
	close(out);
}

Test(invoke, an_agent_that_breaks_the_protocol_is_refused)
{
	static const uint8_t bad_exit[8] = { 0, 0, 0, 0, 0, 1, 0, 0 };
	static const uint8_t ready[4] = { 1, 0, 0, 0 };
	static const uint8_t bad_error[6] = { 5, 0, 0, 0, 'a', '\n' };
	static const char http[] = "HTTP/1.1 400 Bad Request\r\n\r\n";
	struct invoke_result res;
	uint8_t b[256];
	size_t off;

	/* Not frames at all. */
	cr_assert_eq(
		run_against(http, sizeof(http) - 1, false, false, &res, -1),
		-EPROTO);
	/* Output, or EXIT, before STARTED. */
	off = 0;
	put(b, &off, AGENT_VERSION, AGENT_STDOUT, "x", 1);
	cr_assert_eq(run_against(b, off, false, false, &res, -1), -EPROTO);
	off = 0;
	put(b, &off, AGENT_VERSION, AGENT_EXIT, exit0, 8);
	cr_assert_eq(run_against(b, off, false, false, &res, -1), -EPROTO);
	/* STARTED twice, READY during an invocation. */
	off = 0;
	put(b, &off, AGENT_VERSION, AGENT_STARTED, NULL, 0);
	put(b, &off, AGENT_VERSION, AGENT_STARTED, NULL, 0);
	cr_assert_eq(run_against(b, off, false, false, &res, -1), -EPROTO);
	off = 0;
	put(b, &off, AGENT_VERSION, AGENT_READY, ready, 4);
	cr_assert_eq(run_against(b, off, false, false, &res, -1), -EPROTO);
	/* A bad EXIT or ERROR payload. */
	off = 0;
	put(b, &off, AGENT_VERSION, AGENT_STARTED, NULL, 0);
	put(b, &off, AGENT_VERSION, AGENT_EXIT, bad_exit, 8);
	cr_assert_eq(run_against(b, off, false, false, &res, -1), -EPROTO);
	off = 0;
	put(b, &off, AGENT_VERSION, AGENT_ERROR, bad_error, 6);
	cr_assert_eq(run_against(b, off, false, false, &res, -1), -EPROTO);
	/* Another version; a host frame type; an oversize frame. */
	off = 0;
	put(b, &off, 9, AGENT_STARTED, NULL, 0);
	cr_assert_eq(run_against(b, off, false, false, &res, -1), -EPROTO);
	off = 0;
	put(b, &off, AGENT_VERSION, AGENT_STDIN, "x", 1);
	cr_assert_eq(run_against(b, off, false, false, &res, -1), -EPROTO);
	off = 0;
	put(b, &off, AGENT_VERSION, AGENT_STARTED, NULL, 0);
	put(b, &off, AGENT_VERSION, AGENT_STDOUT, NULL, 0);
	memcpy(b + off - 4, "\x01\x00\x10\x00", 4);
	cr_assert_eq(run_against(b, off, false, false, &res, -1), -EPROTO);
}

Test(invoke, an_agent_that_goes_away_early_is_a_reset)
{
	struct invoke_result res;
	uint8_t b[64] = { 0 };
	size_t off = 0;

	cr_assert_eq(run_against(b, 0, false, true, &res, -1), -ECONNRESET);
	put(b, &off, AGENT_VERSION, AGENT_STARTED, NULL, 0);
	put(b, &off, AGENT_VERSION, AGENT_STDOUT, "abc", 3);
	/* In the middle of a frame, and between frames. */
	cr_assert_eq(run_against(b, off - 1, false, true, &res, -1),
		     -ECONNRESET);
	/*
	 * Whether STARTED was read before the host's write met the closed
	 * socket is a race, so res.started_ns is not checked here.
	 */
	cr_assert_eq(run_against(b, off, false, true, &res, -1), -ECONNRESET);
}

Test(invoke, an_agent_error_after_started_ends_the_invocation)
{
	static const uint8_t err[4 + 5] = {
		71, 0, 0, 0, 'p', 'r', 'o', 't', 'o'
	};
	struct invoke_result res;
	uint8_t b[64];
	size_t off = 0;

	put(b, &off, AGENT_VERSION, AGENT_STARTED, NULL, 0);
	put(b, &off, AGENT_VERSION, AGENT_ERROR, err, sizeof(err));
	cr_assert_eq(run_against(b, off, false, false, &res, -1), 0);
	cr_assert_eq(res.kind, INVOKE_AGENT_ERROR);
	cr_assert_eq(res.code, EPROTO);
	cr_assert_str_eq(res.message, "proto");
}

/* ---- a fake host: scripted frames against agent__serve() ---- */

/* Reads one frame from the agent (5 s at most) into @b; its type, or -1. */
static int read_frame(int fd, uint8_t *b, size_t cap, struct agent_frame *f)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	size_t got = 0, want = AGENT_HDR_SIZE;
	ssize_t n;

	while (got < want) {
		if (poll(&p, 1, 5000) <= 0)
			return -1;
		n = recv(fd, b + got, want - got, 0);
		if (n <= 0)
			return -1;
		got += (size_t)n;
		if (got == AGENT_HDR_SIZE) {
			cr_assert_eq(agent__decode_hdr(b, true, f, NULL), 0);
			want += f->len;
			cr_assert_leq(want, cap);
		}
	}
	return f->type;
}

static void send_all(int fd, const void *b, size_t len)
{
	cr_assert_eq(send(fd, b, len, MSG_NOSIGNAL), (ssize_t)len);
}

/* The agent answers with ERROR(EPROTO) and gives up. */
static void expect_proto_error(struct agent_proc *a)
{
	uint8_t b[AGENT_HDR_SIZE + AGENT_MSG_MAX + 64];
	struct agent_frame f;
	struct agent_error e;
	int t;

	while ((t = read_frame(a->fd, b, sizeof(b), &f)) == AGENT_WINDOW ||
	       t == AGENT_STARTED || t == AGENT_STDOUT)
		;
	cr_assert_eq(t, AGENT_ERROR);
	cr_assert_eq(agent__decode_error(b + 8, f.len, &e, NULL), 0);
	cr_assert_eq(e.code, EPROTO);
	cr_assert_not_null(strstr(e.message, "protocol error"));
	cr_assert_eq(agent_done(a), EPROTO);
}

static size_t init_frame(uint8_t *b)
{
	struct agent_init in = { .realtime_ns = 1 };
	size_t len;

	cr_assert_eq(agent__encode_init(b, AGENT_INIT_FRAME, &in, &len), 0);
	return len;
}

static size_t exec_frame(uint8_t *b, size_t cap, const char *const *argv,
			 uint64_t fn_size)
{
	size_t len;

	cr_assert_eq(agent__encode_exec(b, cap, argv, NULL, fn_size, 0, &len),
		     0);
	return len;
}

Test(invoke, a_host_that_breaks_the_protocol_gets_an_error)
{
	static const uint8_t zeros[20];
	const char *argv[] = { "fn", NULL };
	uint8_t b[512];
	struct agent_proc a;
	size_t off;

	/* EXEC before INIT. */
	a = spawn_agent();
	off = exec_frame(b, sizeof(b), argv, 1);
	send_all(a.fd, b, off);
	expect_proto_error(&a);
	/* A guest frame type from the host. */
	a = spawn_agent();
	off = 0;
	put(b, &off, AGENT_VERSION, AGENT_READY, "\1\0\0\0", 4);
	send_all(a.fd, b, off);
	expect_proto_error(&a);
	/* Another version. */
	a = spawn_agent();
	off = 0;
	put(b, &off, 9, AGENT_INIT, b + 100, 72);
	send_all(a.fd, b, off);
	expect_proto_error(&a);
	/* FN_DATA past the size EXEC announced. */
	a = spawn_agent();
	off = init_frame(b);
	off += exec_frame(b + off, sizeof(b) - off, argv, 3);
	put(b, &off, AGENT_VERSION, AGENT_FN_DATA, "abcd", 4);
	send_all(a.fd, b, off);
	expect_proto_error(&a);
	/* A malformed EXEC: no argv[0]. */
	a = spawn_agent();
	off = init_frame(b);
	put(b, &off, AGENT_VERSION, AGENT_EXEC, zeros, 20);
	send_all(a.fd, b, off);
	expect_proto_error(&a);
}

Test(invoke, a_connection_that_ends_before_its_first_byte_does_not_count)
{
	uint8_t b[AGENT_INIT_FRAME], w[64];
	struct agent_frame f;
	struct agent_proc a;
	size_t len;

	/* agent__main() accepts another connection after this one. */
	a = spawn_agent();
	cr_assert_eq(agent_done(&a), ENOTCONN);
	/* Part of an INIT came (after the agent's WINDOW): that was the invocation. */
	a = spawn_agent();
	cr_assert_eq(read_frame(a.fd, w, sizeof(w), &f), AGENT_WINDOW);
	len = init_frame(b);
	send_all(a.fd, b, len - 1);
	cr_assert_eq(agent_done(&a), ECONNRESET);
}

Test(invoke, stdin_after_its_eof_is_a_protocol_error)
{
	/* A function that outlives its stdin, so the agent is still reading frames. */
	const char *argv[] = { "sleep", "10", NULL };
	static uint8_t b[8 * MIB];
	struct agent_proc a;
	size_t off, fn_size;
	void *fn;

	fn = load("/bin/sleep", &fn_size);
	a = spawn_agent();
	off = init_frame(b);
	off += exec_frame(b + off, sizeof(b) - off, argv, fn_size);
	for (size_t o = 0; o < fn_size; o += AGENT_CHUNK) {
		uint32_t n =
			fn_size - o < AGENT_CHUNK ? fn_size - o : AGENT_CHUNK;

		put(b, &off, AGENT_VERSION, AGENT_FN_DATA, (uint8_t *)fn + o,
		    n);
	}
	put(b, &off, AGENT_VERSION, AGENT_STDIN, NULL, 0);
	put(b, &off, AGENT_VERSION, AGENT_STDIN, "late", 4);
	/* More than the socket buffer: the agent reads as we write. */
	for (size_t o = 0; o < off;) {
		ssize_t n = send(a.fd, b + o, off - o, MSG_NOSIGNAL);

		cr_assert_gt(n, 0);
		o += (size_t)n;
	}
	expect_proto_error(&a);
	free(fn);
}

/* ---- the ready report ---- */

static int ready_against(const void *b, size_t len, bool close_after,
			 unsigned int timeout_ms)
{
	struct agent_proc a = fake_agent(b, len, true, close_after);
	int r;

	r = invoke__wait_ready(a.fd, timeout_ms);
	cr_assert_eq(agent_done(&a), 0);
	return r;
}

Test(invoke, wait_ready_accepts_ready_and_nothing_else)
{
	uint8_t b[64];
	size_t off, len;

	cr_assert_eq(agent__encode_ready(b, sizeof(b), &len), 0);
	cr_assert_eq(ready_against(b, len, true, 5000), 0);
	cr_assert_eq(ready_against(b, len, false, 0), 0);
	off = 0;
	put(b, &off, AGENT_VERSION, AGENT_READY, "\1\0\0\0", 4);
	cr_assert_eq(ready_against(b, off, false, 5000), -EPROTO);
	off = 0;
	put(b, &off, 9, AGENT_READY, "\2\0\0\0", 4);
	cr_assert_eq(ready_against(b, off, false, 5000), -EPROTO);
	off = 0;
	put(b, &off, AGENT_VERSION, AGENT_STDOUT, "abcdefgh", 8);
	cr_assert_eq(ready_against(b, off, false, 5000), -EPROTO);
	off = 0;
	put(b, &off, AGENT_VERSION, AGENT_STARTED, NULL, 0);
	cr_assert_eq(ready_against(b, off, false, 5000), -EPROTO);
	cr_assert_eq(ready_against(b, 5, true, 5000), -ECONNRESET);
	cr_assert_eq(ready_against(b, 0, false, 200), -ETIMEDOUT);
}

Test(invoke, cancel_ends_the_call_even_while_output_is_stuck)
{
	/* Output nobody reads: the call waits on the pipe, then is cancelled. */
	const char *argv[] = { "sh", "-c", "head -c 4000000 /dev/zero", NULL };
	struct itimerspec later = { .it_value = { 0, 500000000 } };
	struct invoke_request req = { 0 };
	struct invoke_result res;
	struct agent_proc a;
	int out[2], cancel;
	int64_t t0;
	void *fn;

	cr_assert_eq(pipe2(out, O_CLOEXEC), 0);
	/* A timer as the cancel fd: readable half a second in, while output is stuck. */
	cancel = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
	cr_assert_geq(cancel, 0);
	fn = load("/bin/sh", &req.fn_size);
	req.fn = fn;
	req.argv = argv;
	req.in_fd = -1;
	req.out_fd = out[1];
	req.err_fd = -1;
	req.cancel_fd = cancel;
	a = spawn_agent();
	cr_assert_eq(timerfd_settime(cancel, 0, &later, NULL), 0);
	t0 = now_ms();
	cr_assert_eq(invoke__run(a.fd, &req, &res), -ECANCELED);
	cr_assert_lt(now_ms() - t0, 5000);
	close(a.fd);
	kill(a.pid, SIGKILL);
	waitpid(a.pid, NULL, 0);
	close(out[0]);
	close(out[1]);
	close(cancel);
	free(fn);
}
