#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "progress.h"

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void draw(struct pg_progress *p, uint64_t now)
{
	double frac = p->total ? (double)p->done / (double)p->total : 0;
	if (frac > 1)
		frac = 1;
	int width = 30, fill = (int)(frac * width);
	double secs = (double)(now - p->start_ns) / 1e9;
	double mib = (double)p->done / (1 << 20);
	fprintf(stderr, "\r%s [", p->label);
	for (int i = 0; i < width; i++)
		fputc(i < fill ? '#' : '.', stderr);
	fprintf(stderr, "] %3d%%  %.0f MiB  %.0f MiB/s ", (int)(frac * 100), mib,
	        secs > 0 ? mib / secs : 0.0);
	fflush(stderr);
}

void pg_progress_start(struct pg_progress *p, const char *label, uint64_t total, int enable)
{
	*p = (struct pg_progress){.label = label, .total = total};
	p->active = enable && total && isatty(STDERR_FILENO);
	p->start_ns = p->last_ns = mono_ns();
}

void pg_progress_update(struct pg_progress *p, uint64_t done)
{
	p->done = done;
	if (!p->active)
		return;
	uint64_t now = mono_ns();
	if (now - p->last_ns < 100000000ull)
		return;
	p->last_ns = now;
	draw(p, now);
}

void pg_progress_end(struct pg_progress *p)
{
	if (!p->active)
		return;
	draw(p, mono_ns());
	fputc('\n', stderr);
	p->active = 0;
}
