/* Messages on stderr, each one write(2) so that lines from several threads
 * never mix.  A file that cannot be served is said once: an engine may map
 * its model more than once. */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "preload.h"

static void out(const char *fmt, va_list ap)
{
	char line[2048];
	int n = snprintf(line, sizeof line, "flexpage: ");
	int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
	size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
	if (len > sizeof line - 2)
		len = sizeof line - 2;
	line[len++] = '\n';
	ssize_t w = write(2, line, len);
	(void)w;
}

void pl_say(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	out(fmt, ap);
	va_end(ap);
}

void pl_log(int level, const char *fmt, ...)
{
	/* The level is read before the rest of the configuration is. */
	if (level > pl_config()->log_level)
		return;
	va_list ap;
	va_start(ap, fmt);
	out(fmt, ap);
	va_end(ap);
}

#define SAID_MAX 256

void pl_refuse(dev_t dev, ino_t ino, const char *fmt, ...)
{
	static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	static struct {
		dev_t dev;
		ino_t ino;
	} said[SAID_MAX];
	static int n_said;
	pthread_mutex_lock(&lock);
	int before = 0;
	for (int i = 0; i < n_said && !before; i++)
		before = said[i].dev == dev && said[i].ino == ino;
	if (!before && n_said < SAID_MAX) {
		said[n_said].dev = dev;
		said[n_said++].ino = ino;
	}
	pthread_mutex_unlock(&lock);
	if (before || pl_config()->log_level < PL_LOG_WARN)
		return;
	va_list ap;
	va_start(ap, fmt);
	out(fmt, ap);
	va_end(ap);
}
