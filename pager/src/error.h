/* The error convention: a function that fails returns a negative errno (or
 * NULL with errno set) and leaves a message for people, naming the file
 * and the field, in the calling thread's fp_last_error(). */
#ifndef FLEXPAGE_ERROR_H
#define FLEXPAGE_ERROR_H

#include <errno.h>

/* Set errno and the calling thread's fp_last_error(); returns -errnum, for
 * `return pg_err(EINVAL, ...)`. */
int pg_err(int errnum, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The same for functions that return a pointer: sets errno, returns NULL. */
void *pg_err_null(int errnum, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* errno, never 0: for a system call that failed without saying why. */
static inline int pg_errno(void)
{
	return errno ? errno : EIO;
}

/* For a NULL-returning function's failure path: errno = -rc, NULL. */
void *pg_fail_null(int rc);

#endif
