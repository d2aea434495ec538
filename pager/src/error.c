#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

#include "error.h"
#include <flexpage/flexpage_experimental.h>

static _Thread_local char last_error[512];

static void say(const char *fmt, va_list ap)
{
	vsnprintf(last_error, sizeof last_error, fmt, ap);
}

int pg_err(int errnum, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	say(fmt, ap);
	va_end(ap);
	errno = errnum;
	return -errnum;
}

void *pg_err_null(int errnum, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	say(fmt, ap);
	va_end(ap);
	errno = errnum;
	return NULL;
}

void *pg_fail_null(int rc)
{
	errno = rc < 0 ? -rc : EIO;
	return NULL;
}

const char *fp_last_error(void)
{
	return last_error[0] ? last_error : "no error";
}
