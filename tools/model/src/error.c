/* flexmodel's error convention: a function that fails returns a negative
 * errno and leaves a message for people in the calling thread's
 * model_last_error(). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

#include "internal.h"

static _Thread_local char last_error[1024];

int model_fail(int errnum, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(last_error, sizeof last_error, fmt, ap);
	va_end(ap);
	errno = errnum;
	return -errnum;
}

int model_pager_errno(void)
{
	return errno > 0 ? errno : EIO;
}

const char *model_last_error(void)
{
	return last_error[0] ? last_error : "no error";
}
