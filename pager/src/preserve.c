/* Preservation: chunks chosen to stay resident (fp_options.preserve,
 * chosen by fp_plan_make) are loaded at open, never shown to the policy
 * (so never evicted), and locked with mlock2(MLOCK_ONFAULT) after their
 * install, so that neither reclaim nor swap (zram) takes them, within the
 * lock quota.  Past the quota, or where mlock is refused, they stay
 * resident all the same, and the region says so once. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include "error.h"
#include "internal.h"

/* Chunks kept for streaming by fp_open's own plan, as the tools keep them. */
#define DEFAULT_STREAM_CHUNKS 16

/* With no plan given, a budget below the image preserves what a balanced
 * plan of the pager's own chooses: the default that measured best.  A
 * budget too small for any plan preserves nothing. */
static uint8_t *default_plan(fp_region *r, uint64_t budget)
{
	if ((r->opt.flags & FP_OPEN_NO_PRESERVE) || budget >= r->data_bytes)
		return NULL;
	const struct fp_plan_options po = {
		.budget = budget,
		.stream_bytes = (uint64_t)DEFAULT_STREAM_CHUNKS * r->chunk_size,
		.read_bytes_per_s = r->rates.read,
		.decode_bytes_per_s = r->rates.decode,
		.decoders = r->opt.decoders,
		.balanced = 1,
	};
	struct fp_plan plan;
	if (fp_plan_make(r->img, &po, &plan))
		return NULL;
	uint8_t *keep = plan.n_preserved ? plan.preserve : NULL;
	if (!keep)
		fp_plan_free(&plan);
	return keep; /* the plan's own array, malloc'd: freed with the region */
}

int pg_preserve_init(fp_region *r, uint64_t budget)
{
	struct pg_preservation *k = &r->keep;
	uint32_t n = r->n_chunks;
	if (!r->opt.preserve) {
		k->preserve = default_plan(r, budget);
		if (!k->preserve)
			return 0;
	} else {
		k->preserve = malloc(n);
		if (!k->preserve)
			return pg_err(ENOMEM, "%s: out of memory", r->img->path);
		memcpy(k->preserve, r->opt.preserve, n);
	}
	uint64_t kept = 0;
	for (uint32_t c = 0; c < n; c++)
		kept += k->preserve[c] ? r->page_len[c] : 0;
	if (kept + pg_min_working_set(r) > budget && kept < r->data_bytes)
		return pg_err(EINVAL,
		              "%s: preserved chunks take %llu bytes of the %llu byte budget, leaving less "
		              "than the minimum working set of %llu bytes for the rest", r->img->path,
		              (unsigned long long)kept, (unsigned long long)budget,
		              (unsigned long long)pg_min_working_set(r));
	k->kept_bytes = kept;
	struct rlimit rl;
	k->lock_quota = r->opt.lock_quota ? r->opt.lock_quota
	                : geteuid() == 0 || getrlimit(RLIMIT_MEMLOCK, &rl) || rl.rlim_cur == RLIM_INFINITY
	                ? UINT64_MAX : rl.rlim_cur;
	return 0;
}

void pg_preserve_free(fp_region *r)
{
	free(r->keep.preserve);
}

void pg_preserve_load(fp_region *r)
{
	for (uint32_t c = 0; r->keep.preserve && c < r->n_chunks; c++)
		if (r->keep.preserve[c] && r->page_len[c] && pg_chunk_load_ahead(&r->state[c]))
			pg_load_queue(r, c, 0, pg_now_ns());
}

static int lock_run(fp_region *r, uint8_t *p, size_t len, void *ctx)
{
	return mlock2(p, len, MLOCK_ONFAULT) ? -1 : 0;
}

void pg_preserve_installed_locked(fp_region *r, uint32_t c)
{
	struct pg_preservation *k = &r->keep;
	uint64_t len = r->page_len[c];
	/* the handler reads it without the lock (pg_preserved_bytes) */
	__atomic_store_n(&k->preserved_bytes, k->preserved_bytes + len, __ATOMIC_RELAXED);
	if ((r->opt.flags & FP_OPEN_NO_LOCK) || k->locked_bytes + len > k->lock_quota)
		return;
	pg_map_hold(r);
	int rc = pg_map_each_live(r, (uint64_t)c * r->chunk_size, len, lock_run, NULL);
	pg_map_unhold(r);
	if (!rc) {
		k->locked_bytes += len;
	} else if (!k->lock_warned) {
		k->lock_warned = 1;
		fprintf(stderr, "flexpage: %s: mlock of preserved chunks failed (%s) after %llu bytes: "
		        "they stay resident but unlocked (raise RLIMIT_MEMLOCK, ulimit -l)\n",
		        r->img->path, strerror(errno), (unsigned long long)k->locked_bytes);
	}
}

/* Without the residency lock (the handler sizing read-ahead): a recent
 * value is enough, but it must be one value, read atomically. */
uint64_t pg_preserved_bytes(const fp_region *r)
{
	return __atomic_load_n(&r->keep.preserved_bytes, __ATOMIC_RELAXED);
}

void pg_preserve_stats_locked(const fp_region *r, struct fp_stats *o)
{
	o->preserved_bytes = r->keep.preserved_bytes;
	o->locked_bytes = r->keep.locked_bytes;
}
