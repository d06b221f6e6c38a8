// SPDX-License-Identifier: Apache-2.0
// The pool's wire messages: one datagram each, with descriptors, checked on the way in.
#include <endian.h>
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proto.h"

static void to_wire(struct pool_msg *w, const struct pool_msg *m, uint16_t type,
		    size_t len)
{
	w->magic = htole32(POOL_MAGIC);
	w->version = htole16(POOL_VERSION);
	w->type = htole16(type);
	w->len = htole32((uint32_t)len);
	w->flags = htole32(m ? m->flags : 0);
	w->arg0 = htole32(m ? m->arg0 : 0);
	w->arg1 = htole32(m ? m->arg1 : 0);
	w->arg2 = htole32(m ? m->arg2 : 0);
	w->arg3 = htole32(m ? m->arg3 : 0);
}

int pool__send(int fd, uint16_t type, const struct pool_msg *m,
	       const void *payload, size_t len, const int *fds,
	       unsigned int nfds)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * POOL_MAX_FDS)];
		struct cmsghdr align;
	} ctl;
	struct pool_msg w;
	struct iovec iov[2] = { { &w, sizeof(w) }, { (void *)payload, len } };
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = len ? 2 : 1 };
	struct cmsghdr *c;
	ssize_t n;

	if (len > POOL_PAYLOAD_MAX || nfds > POOL_MAX_FDS)
		return -EMSGSIZE;
	to_wire(&w, m, type, len);
	if (nfds) {
		memset(&ctl, 0, sizeof(ctl));
		mh.msg_control = ctl.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
	}
	do {
		n = sendmsg(fd, &mh, MSG_NOSIGNAL);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	return (size_t)n == sizeof(w) + len ? 0 : -EIO;
}

int pool__recv(int fd, struct pool_msg *m, char *payload, size_t max, int *fds,
	       unsigned int *nfds, int flags)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * POOL_MAX_FDS)];
		struct cmsghdr align;
	} ctl;
	struct pool_msg w;
	struct iovec iov[2] = { { &w, sizeof(w) }, { payload, max } };
	struct msghdr mh = { .msg_iov = iov,
			     .msg_iovlen = 2,
			     .msg_control = ctl.buf,
			     .msg_controllen = sizeof(ctl.buf) };
	unsigned int room = *nfds, got = 0;
	struct cmsghdr *c;
	ssize_t n;
	int err = 0;

	*nfds = 0;
	do {
		n = recvmsg(fd, &mh, flags | MSG_CMSG_CLOEXEC);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	if (n == 0)
		return -ECONNRESET;
	for (c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		size_t k;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < k; i++) {
			int f;

			memcpy(&f, CMSG_DATA(c) + i * sizeof(int), sizeof(f));
			if (got < room && got < POOL_MAX_FDS)
				fds[got++] = f;
			else {
				close(f);
				err = -EPROTO;
			}
		}
	}
	if (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC))
		err = -EPROTO;
	if ((size_t)n < sizeof(w) || le32toh(w.magic) != POOL_MAGIC ||
	    le16toh(w.version) != POOL_VERSION ||
	    le32toh(w.len) != (size_t)n - sizeof(w))
		err = -EPROTO;
	if (err) {
		while (got)
			close(fds[--got]);
		return err;
	}
	m->magic = POOL_MAGIC;
	m->version = POOL_VERSION;
	m->type = le16toh(w.type);
	m->len = le32toh(w.len);
	m->flags = le32toh(w.flags);
	m->arg0 = le32toh(w.arg0);
	m->arg1 = le32toh(w.arg1);
	m->arg2 = le32toh(w.arg2);
	m->arg3 = le32toh(w.arg3);
	payload[m->len] = '\0';
	*nfds = got;
	return 0;
}

int pool__parse_argv(char *payload, size_t len, unsigned int argc,
		     const char **argv)
{
	size_t off = 0;
	unsigned int i;

	if (!argc)
		return -EPROTO;
	for (i = 0; i < argc; i++) {
		char *nul;

		if (off >= len)
			return -EPROTO;
		nul = memchr(payload + off, '\0', len - off);
		if (!nul)
			return -EPROTO;
		argv[i] = payload + off;
		off = (size_t)(nul - payload) + 1;
	}
	argv[argc] = NULL;
	return off == len ? 0 : -EPROTO;
}
