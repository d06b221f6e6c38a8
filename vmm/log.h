/* SPDX-License-Identifier: Apache-2.0 */
/* Diagnostics to stderr, prefixed with the program name. */
#ifndef SANDBOX_LOG_H
#define SANDBOX_LOG_H

#include "util.h"

/*
 * Prints "sandbox: <message>\n" to stderr. Library code calls it once, where
 * an error is first detected, and then returns the error code; callers do not
 * log the same failure again.
 */
void pr_err(const char *fmt, ...) __printf(1, 2);

/* As pr_err(), prefixed "warning: ". */
void pr_warn(const char *fmt, ...) __printf(1, 2);

/* As pr_err(), but only when SANDBOX_DEBUG is set in the environment. */
void pr_debug(const char *fmt, ...) __printf(1, 2);

#endif
