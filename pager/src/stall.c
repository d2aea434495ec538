/* The stall watchdog: a payload read that has not returned within the
 * load timeout (fp_options.load_timeout_ms) is given up, so that a thread
 * waiting on its chunk never waits forever on storage that hangs.
 *
 * A blocked read cannot be cancelled, so the watchdog takes the load away
 * from it instead.  One exchange on the loader's read slot (load.c)
 * decides between the two: if the watchdog wins, the loader drops what
 * its read returns, whenever that is, and makes no move of the chunk's;
 * the watchdog now holds the claim.  It starts a loader in place of the
 * stalled one, which ends once its read returns, and then either takes
 * the claim back (REVOKE) and queues the load again, for another loader
 * to CLAIM, or, once the chunk has used its attempts (1 + retries, failed
 * and stalled reads alike), poisons it with the reason: its threads get
 * SIGBUS naming the stall.
 *
 * The watchdog looks every quarter of the timeout, so a read is given up
 * between one and one and a quarter timeouts after it started. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "error.h"
#include "internal.h"

static int attempts(const fp_region *r)
{
	return 1 + (r->opt.retries < 0 ? 2 : r->opt.retries);
}

/* The watchdog owns chunk c's load: try it again, or poison it. */
static void stalled(fp_region *r, uint32_t c, int replaced)
{
	struct pg_loads *l = &r->load;
	pg_count(r, PG_STALLS, 1);
	pg_ra_unreserve(r, c); /* what a read-ahead load had reserved */
	unsigned n = atomic_fetch_add(&l->stalls[c], 1) + 1;
	if (replaced && (int)n < attempts(r)) {
		pg_count(r, PG_RETRIES, 1);
		if (!pg_chunk_revoke(&r->state[c]))
			abort(); /* the watchdog holds the claim: the protocol is broken */
		pg_load_queue(r, c, pg_chunk_demanded(&r->state[c]), pg_now_ns());
	} else {
		char why[400];
		snprintf(why, sizeof why, "%s: chunk %u: read at file offset %llu did not return within "
		         "%u ms (%u time%s)%s", r->img->path, c,
		         (unsigned long long)r->img->chunks[c].file_offset, l->timeout_ms, n,
		         n == 1 ? "" : "s", replaced ? "" : "; no loader left to try again");
		pg_poison_chunk(r, c, why);
	}
	pg_queue_done(&l->queue); /* the entry the stalled loader had popped */
}

static void *watchdog_main(void *arg)
{
	fp_region *r = arg;
	struct pg_loads *l = &r->load;
	uint64_t period_ns = (uint64_t)l->timeout_ms * 1000000 / 4;
	if (period_ns < 1000000)
		period_ns = 1000000;
	pthread_mutex_lock(&l->wd_lock);
	while (!l->wd_stop) {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		uint64_t ns = (uint64_t)ts.tv_nsec + period_ns;
		ts.tv_sec += (time_t)(ns / 1000000000);
		ts.tv_nsec = (long)(ns % 1000000000);
		pthread_cond_timedwait(&l->wd_cond, &l->wd_lock, &ts);
		if (l->wd_stop)
			break;
		pthread_mutex_unlock(&l->wd_lock);
		/* Loaders started now are seen next time. */
		int n = pg_loaders_count(r);
		for (int i = 0; i < n; i++) {
			uint32_t c;
			int replaced;
			if (pg_loader_give_up(r, i, l->timeout_ms, &c, &replaced))
				stalled(r, c, replaced);
		}
		pthread_mutex_lock(&l->wd_lock);
	}
	pthread_mutex_unlock(&l->wd_lock);
	return NULL;
}

int pg_stall_start(fp_region *r)
{
	struct pg_loads *l = &r->load;
	if (!l->timeout_ms)
		return 0;
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_mutex_init(&l->wd_lock, NULL);
	pthread_cond_init(&l->wd_cond, &ca);
	pthread_condattr_destroy(&ca);
	l->wd_stop = 0;
	int e = pthread_create(&l->watchdog, NULL, watchdog_main, r);
	if (e) {
		pthread_cond_destroy(&l->wd_cond);
		pthread_mutex_destroy(&l->wd_lock);
		return pg_err(e, "cannot start the stall watchdog: %s", strerror(e));
	}
	l->watchdog_on = 1;
	return 0;
}

void pg_stall_stop(fp_region *r)
{
	struct pg_loads *l = &r->load;
	if (!l->watchdog_on)
		return;
	pthread_mutex_lock(&l->wd_lock);
	l->wd_stop = 1;
	pthread_cond_signal(&l->wd_cond);
	pthread_mutex_unlock(&l->wd_lock);
	pthread_join(l->watchdog, NULL);
	pthread_cond_destroy(&l->wd_cond);
	pthread_mutex_destroy(&l->wd_lock);
	l->watchdog_on = 0;
}

void pg_stall_forget(fp_region *r, uint32_t c)
{
	atomic_store(&r->load.stalls[c], 0);
}
