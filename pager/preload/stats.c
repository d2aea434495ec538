/* FLEXPAGE_STATS: a summary of each model when it is unmapped (or at exit
 * if it never is), and with an interval a line per model every interval. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "preload.h"

void pl_stats_summary(struct pl_served *s, const char *when)
{
	struct fp_stats st;
	fp_get_stats(s->r, &st);
	pl_say("%s: %s: faults %llu, loads %llu demand + %llu read-ahead, evictions %llu, "
	       "read %llu bytes, peak resident %llu of budget %llu bytes, preserved %llu, "
	       "poisoned %llu", s->name, when, (unsigned long long)st.faults,
	       (unsigned long long)st.demand_loads, (unsigned long long)st.prefetch_loads,
	       (unsigned long long)st.evictions, (unsigned long long)st.bytes_read,
	       (unsigned long long)st.peak_resident_bytes, (unsigned long long)st.budget,
	       (unsigned long long)st.preserved_bytes, (unsigned long long)st.poisoned);
	if (pl_config()->log_level < PL_LOG_INFO)
		return;
	/* The pager's own report, line by line. */
	char *text = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&text, &n);
	if (!f)
		return;
	fp_print_stats(f, &st);
	fclose(f);
	for (char *save = NULL, *line = strtok_r(text, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save))
		pl_say("%s:   %s", s->name, line);
	free(text);
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void *ticker(void *arg)
{
	uint64_t every = pl_config()->stats_interval_ns, t0 = now_ns();
	struct timespec ts = {(time_t)(every / 1000000000ull), (long)(every % 1000000000ull)};
	for (;;) {
		nanosleep(&ts, NULL);
		if (atomic_load(&pl_disabled))
			return NULL;
		double secs = (double)every / 1e9, at = (double)(now_ns() - t0) / 1e9;
		pthread_mutex_lock(&pl_table_lock);
		struct pl_served *s;
		for (int i = 0; (s = pl_table_at(i)); i++) {
			struct fp_stats st, *last = &s->last;
			fp_get_stats(s->r, &st);
			pl_say("[%7.1fs] %s: faults %llu, loads %llu demand + %llu read-ahead, evictions "
			       "%llu, read %.1f MiB/s, resident %.1f MiB", at, s->name,
			       (unsigned long long)(st.faults - last->faults),
			       (unsigned long long)(st.demand_loads - last->demand_loads),
			       (unsigned long long)(st.prefetch_loads - last->prefetch_loads),
			       (unsigned long long)(st.evictions - last->evictions),
			       (double)(st.bytes_read - last->bytes_read) / (1 << 20) / secs,
			       (double)st.resident_bytes / (1 << 20));
			*last = st;
		}
		pthread_mutex_unlock(&pl_table_lock);
	}
	return NULL;
}

void pl_stats_start(void)
{
	static atomic_int started;
	if (!pl_config()->stats_interval_ns || atomic_exchange(&started, 1))
		return;
	pthread_t t;
	pthread_attr_t a;
	pthread_attr_init(&a);
	pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&t, &a, ticker, NULL))
		pl_log(PL_LOG_WARN, "cannot start the FLEXPAGE_STATS thread");
	pthread_attr_destroy(&a);
}

/* Models still mapped at exit get their summary here. */
__attribute__((destructor)) static void at_exit(void)
{
	if (!atomic_load(&pl_n_served) || atomic_load(&pl_disabled) || !pl_config()->stats)
		return;
	pthread_mutex_lock(&pl_table_lock);
	struct pl_served *s;
	for (int i = 0; (s = pl_table_at(i)); i++)
		pl_stats_summary(s, "at exit");
	pthread_mutex_unlock(&pl_table_lock);
}
