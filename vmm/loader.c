// SPDX-License-Identifier: Apache-2.0
// Boot files: open with clear errors, read straight into guest memory.
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "loader.h"
#include "log.h"

int loader__open(const char *path, const char *what, int *fd, uint64_t *size)
{
	struct stat st;
	int err;

	*fd = open(path, O_RDONLY | O_CLOEXEC);
	if (*fd < 0) {
		err = -errno;
		pr_err("%s %s: %s", what, path, strerror(-err));
		return err;
	}
	if (fstat(*fd, &st) < 0) {
		err = -errno;
		pr_err("%s %s: %s", what, path, strerror(-err));
		goto fail;
	}
	if (!S_ISREG(st.st_mode) || st.st_size == 0) {
		pr_err("%s %s: not a regular, non-empty file", what, path);
		err = -EINVAL;
		goto fail;
	}
	*size = (uint64_t)st.st_size;
	return 0;
fail:
	close(*fd);
	*fd = -1;
	return err;
}

int loader__read(int fd, const char *path, void *dst, uint64_t len)
{
	uint64_t done = 0;

	while (done < len) {
		ssize_t n =
			pread(fd, (char *)dst + done, len - done, (off_t)done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int err = -errno;

			pr_err("%s: read: %s", path, strerror(-err));
			return err;
		}
		if (n == 0) {
			pr_err("%s: file shrank while being read", path);
			return -EIO;
		}
		done += (uint64_t)n;
	}
	return 0;
}
