/* Installing: a loaded chunk goes into the region whole, in one ioctl that
 * wakes every thread waiting on any of its pages.  A chunk that fills its
 * slot moves in as huge pages with UFFDIO_MOVE (no copy); anything else,
 * or where the kernel refuses a move, is copied with UFFDIO_COPY. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

void pg_install_setup(fp_region *r, uint64_t features, uint64_t ioctls)
{
	atomic_store(&r->install.huge_ok, !(r->opt.flags & FP_OPEN_NO_HUGE) &&
	                                      (features & UFFD_FEATURE_MOVE) &&
	                                      (ioctls & (1ull << _UFFDIO_MOVE)) &&
	                                      r->chunk_size % HUGE_2M == 0);
}

static void copy_failed(fp_region *r, uint32_t c, int rc)
{
	/* Nothing sane is left: the region can no longer be served. */
	fprintf(stderr, "flexpage: %s: chunk %u: UFFDIO_COPY failed: %s\n", r->img->path, c,
	        strerror(-rc));
	abort();
}

/* A chunk some of whose pages were given back (fp_region_unmap): only the
 * live runs are copied, each from its place in buf. */
struct live_copy {
	uint8_t *dst;
	const uint8_t *buf;
};

static int copy_live(fp_region *r, uint8_t *p, size_t len, void *ctx)
{
	const struct live_copy *lc = ctx;
	return pg_uffd_copy(r->uffd, p, lc->buf + (p - lc->dst), len);
}

/* A chunk with every page live: one move, or a copy. */
static int install_whole(fp_region *r, uint32_t c, uint8_t *dst, uint8_t *buf, size_t len)
{
	size_t moved = 0;
	if (pg_install_huge(r) && len == r->chunk_size) {
		pg_count(r, PG_HUGE_INSTALLS, 1);
		int rc = pg_uffd_move(r->uffd, dst, buf, len, &moved);
		if (!rc)
			return 1;
		pg_uncount(r, PG_HUGE_INSTALLS, 1);
		/* A busy page (pinned for a moment, under migration) is copied
		 * this once, and so is a slot some of whose pages are there
		 * already (zero pages a fault put in a tail chunk's padding); a
		 * refusal of the mapping itself means copying from now on. */
		if (rc != -EBUSY && rc != -EAGAIN && rc != -EEXIST &&
		    atomic_exchange(&r->install.huge_ok, 0))
			fprintf(stderr, "flexpage: %s: UFFDIO_MOVE failed (%s); installing by copy\n",
			        r->img->path, strerror(-rc));
	}
	pg_count(r, PG_SMALL_INSTALLS, 1);
	int rc = pg_uffd_copy(r->uffd, dst + moved, buf + moved, len - moved);
	if (rc)
		copy_failed(r, c, rc);
	return moved > 0;
}

/* Counters are raised before the ioctl: the install wakes the waiting
 * threads, and what they read next (fp_get_stats) must include it. */
int pg_install(fp_region *r, uint32_t c, int demand, uint8_t *buf)
{
	uint64_t off = (uint64_t)c * r->chunk_size;
	uint8_t *dst = r->base + off;
	size_t len = pg_res_len(r, c);
	pg_count(r, demand ? PG_DEMAND_LOADS : PG_PREFETCH_LOADS, 1);
	pg_count(r, PG_BYTES_INSTALLED, r->page_len[c]);
	pg_map_hold(r);
	int moved;
	if (pg_map_whole(r, off, len)) {
		moved = install_whole(r, c, dst, buf, len);
	} else {
		pg_count(r, PG_SMALL_INSTALLS, 1);
		struct live_copy lc = {dst, buf};
		int rc = pg_map_each_live(r, off, len, copy_live, &lc);
		if (rc)
			copy_failed(r, c, rc);
		moved = 0;
	}
	pg_map_unhold(r);
	return moved;
}

void pg_installed(fp_region *r, uint32_t c, int demand)
{
	pg_res_lock(r);
	pg_ra_release_locked(r, c);
	if (!pg_chunk_install(&r->state[c]))
		abort(); /* only the claimant installs: the protocol is broken */
	pg_stall_forget(r, c);
	if (pg_preserved(r, c))
		pg_preserve_installed_locked(r, c); /* never shown to the policy: never a victim */
	else
		pg_res_loaded_locked(r, c, demand);
	pg_res_unlock(r);
}
