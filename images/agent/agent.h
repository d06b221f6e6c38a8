/* SPDX-License-Identifier: Apache-2.0 */
/* The guest agent: reports readiness over vsock, then runs one function invocation. */
#ifndef SANDBOX_AGENT_H
#define SANDBOX_AGENT_H

#include <stddef.h>
#include <stdint.h>

#include "proto.h"

/*
 * What INIT asks of the system. The guest's are agent__system_hooks(); tests
 * pass fakes, since the real ones need root and would change the host's clock.
 * Each returns 0 or -errno; a failure ends the invocation with ERROR, as a
 * clone that kept its snapshot's random state or clock must not run anything.
 */
typedef int agent_entropy_fn(void *arg, const void *buf, size_t len);
typedef int agent_clock_fn(void *arg, uint64_t realtime_ns);
/* INIT with AGENT_INIT_WARM: 0 or -errno, which is logged and no more. */
typedef int agent_warm_fn(void *arg);

/*
 * The guest's warm-up is the agent's own binary (/proc/self/exe) run again
 * under this name: agent__warm_main(), which init's main() must call first.
 */
#define AGENT_WARM_ARGV0 "sandbox-warm"

/*
 * The function window: a memfd of @size bytes whose pages the host writes the
 * function into (EXEC with AGENT_EXEC_IN_WINDOW), described to it as guest
 * physical extents in file order. agent__main() makes the guest's.
 */
struct agent_fn_window {
	int fd;
	uint64_t size;
	uint32_t count;
	struct agent_extent *ext;
};

struct agent_hooks {
	agent_entropy_fn *add_entropy;
	agent_clock_fn *set_clock;
	agent_warm_fn *warm; /* NULL: INIT's WARM is ignored */
	void *arg;
	/* NULL: no window; WINDOW says size 0 and the function comes as FN_DATA. */
	const struct agent_fn_window *window;
};

/*
 * The guest's hooks: RNDADDENTROPY (crediting every bit) then RNDRESEEDCRNG
 * on /dev/urandom, so the kernel's CRNG is rekeyed at once rather than at its
 * next scheduled reseed; clock_settime(CLOCK_REALTIME); and for the warm-up,
 * vfork() and exec of AGENT_WARM_ARGV0, whose output it reads to its end
 * before it waits for it.
 */
void agent__system_hooks(struct agent_hooks *h);

/*
 * When @argv names the warm-up (argc 1, argv[0] AGENT_WARM_ARGV0): what a
 * small function does (C library start, a line to stdout, exit), returning
 * the exit status, 0. Otherwise -1, at once: not the warm-up.
 */
int agent__warm_main(int argc, char **argv);

/*
 * Runs one invocation over @fd, a connected stream socket to the host:
 * sends WINDOW (@hooks->window, or none), receives INIT (calls @hooks), EXEC
 * and the function (already in the window, or FN_DATA into a memfd), runs it
 * with fexecve() in a child in its own session (stdin, stdout and stderr are
 * pipes), sends STARTED, forwards STDIN frames to it and its output as STDOUT
 * and STDERR frames as produced, and once it has exited and both output pipes
 * are at EOF sends EXIT. When the function exits, whatever it left running is
 * killed: its process group, and every process when the agent is PID 1.
 * Finally shuts down the write side and reads until the host closes (2 s at
 * most), so the host has everything before @fd is closed; @fd stays open.
 *
 * For the call's duration SIGCHLD is blocked (read through a signalfd) and
 * SIGPIPE ignored; both are restored on return. The function starts with an
 * empty signal mask and default dispositions. When not PID 1 the caller
 * becomes a child subreaper (PR_SET_CHILD_SUBREAPER) so the function's
 * orphans come back to be reaped. fds 0-2 are opened on /dev/null if closed.
 *
 * Returns 0 when the host got EXIT, or ERROR for a function that could not
 * start (not executable, out of memory...); -EPROTO when the host broke the
 * protocol (ERROR with EPROTO sent); -ECONNRESET when the host went away
 * before EXIT, or -ENOTCONN if it went before sending a byte; a hook's error
 * (ERROR sent); or -errno.
 */
int agent__serve(int fd, const struct agent_hooks *hooks) __must_check;

/*
 * Agent mode of the guest's PID 1: sets up the function window
 * (AGENT_WINDOW_SIZE of shared memory whose frames it reads from
 * /proc/self/pagemap; none if that fails), listens on vsock port AGENT_PORT, connects
 * to the host's AGENT_READY_PORT, sends READY and closes that connection (the
 * host snapshots the VM there), then accepts one connection on AGENT_PORT and
 * serves it with agent__serve(). A connection that ends before its first byte
 * (agent__serve() returned -ENOTCONN) does not count: another is accepted, up
 * to 8 in all. A failed ready report is logged and the agent listens anyway.
 * Returns agent__serve()'s result or -errno (logged); the caller powers off.
 */
int agent__main(const struct agent_hooks *hooks) __must_check;

#endif
