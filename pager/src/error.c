#include <stdarg.h>
#include <stdio.h>

#include "error.h"
#include <flexpage/flexpage.h>

static _Thread_local char last_error[512];

int pg_err(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(last_error, sizeof last_error, fmt, ap);
	va_end(ap);
	return -1;
}

const char *fp_last_error(void)
{
	return last_error[0] ? last_error : "no error";
}
