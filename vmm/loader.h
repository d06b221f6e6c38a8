/* SPDX-License-Identifier: Apache-2.0 */
/* Reading boot files (kernel, initrd) from the host into guest memory. */
#ifndef SANDBOX_LOADER_H
#define SANDBOX_LOADER_H

#include <stdint.h>

#include "util.h"

/*
 * Opens @path read-only for the boot file described by @what ("kernel",
 * "initrd") and returns its fd in *@fd and size in *@size. Returns 0;
 * -errno from open(); -EINVAL when it is not a regular file or is empty.
 * Logs "<what> <path>: <reason>" on failure. The caller closes *@fd.
 */
int loader__open(const char *path, const char *what, int *fd,
		 uint64_t *size) __must_check;

/*
 * Reads exactly @len bytes from offset 0 of @fd into @dst. Returns 0, -EIO
 * when the file is shorter than @len, or -errno. Logs with @path on failure.
 */
int loader__read(int fd, const char *path, void *dst,
		 uint64_t len) __must_check;

#endif
