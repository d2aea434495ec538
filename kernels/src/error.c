/* The kernels' error convention, the runtime's and the pager's: a function
 * that fails returns a negative errno (or NULL with errno set) and leaves
 * a message for people in the calling thread's fk_last_error(). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

#include "internal.h"

static _Thread_local char last_error[256];

int fk_fail(int errnum, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(last_error, sizeof last_error, fmt, ap);
	va_end(ap);
	errno = errnum;
	return -errnum;
}

const char *fk_last_error(void)
{
	return last_error[0] ? last_error : "no error";
}
