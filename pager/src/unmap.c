/* Pages given back: fp_region_unmap() unmaps part of a region, so that the
 * kernel may place other mappings there, and the pager never maps, drops,
 * locks or poisons those addresses again.
 *
 * A bit per page says which pages are gone.  Every step that acts on
 * region pages (install.c, evict.c, the padding zero pages of fault.c,
 * poison.c, the locking of preserve.c) holds the region's map lock for
 * reading while it picks the live pages and issues its calls;
 * fp_region_unmap holds it for writing while it marks the pages and
 * unmaps them.  So no call can reach an address after it was given back,
 * where it might hit whatever was mapped there next.  The bits only go
 * from live to gone, and the bitmap, once made, stays: the handler and the
 * SIGBUS reporter read it without the lock. */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "error.h"
#include "internal.h"

#define PAGE 4096u

static int page_gone(_Atomic uint64_t *gone, uint64_t page)
{
	return (int)((atomic_load_explicit(&gone[page / 64], memory_order_acquire) >> (page % 64)) & 1);
}

int pg_map_gone_at(const fp_region *r, uint64_t addr)
{
	_Atomic uint64_t *gone = atomic_load_explicit(&r->unmapped.gone, memory_order_acquire);
	return gone && page_gone(gone, (addr - (uintptr_t)r->base) / PAGE);
}

void pg_map_hold(fp_region *r)
{
	pthread_rwlock_rdlock(&r->unmapped.lock);
}

void pg_map_unhold(fp_region *r)
{
	pthread_rwlock_unlock(&r->unmapped.lock);
}

int pg_map_whole(const fp_region *r, uint64_t off, uint64_t len)
{
	_Atomic uint64_t *gone = atomic_load_explicit(&r->unmapped.gone, memory_order_acquire);
	if (!gone)
		return 1;
	for (uint64_t p = off / PAGE; p < (off + len + PAGE - 1) / PAGE; p++)
		if (page_gone(gone, p))
			return 0;
	return 1;
}

int pg_map_each_live(fp_region *r, uint64_t off, uint64_t len, pg_live_fn fn, void *ctx)
{
	_Atomic uint64_t *gone = atomic_load_explicit(&r->unmapped.gone, memory_order_acquire);
	if (off + len > r->size)
		len = off < r->size ? r->size - off : 0;
	if (!len)
		return 0;
	if (!gone)
		return fn(r, r->base + off, len, ctx);
	uint64_t end = off + len, p = off;
	while (p < end) {
		uint64_t page = p / PAGE;
		if (page_gone(gone, page)) {
			p = (page + 1) * PAGE;
			continue;
		}
		uint64_t q = (page + 1) * PAGE;
		while (q < end && !page_gone(gone, q / PAGE))
			q += PAGE;
		if (q > end)
			q = end;
		int rc = fn(r, r->base + p, (size_t)(q - p), ctx);
		if (rc)
			return rc;
		p = q;
	}
	return 0;
}

static int unmap_run(fp_region *r, uint8_t *p, size_t len, void *ctx)
{
	_Atomic uint64_t *gone = ctx;
	uint64_t first = (uint64_t)(p - r->base) / PAGE, end = first + len / PAGE;
	for (uint64_t page = first; page < end; page++)
		atomic_fetch_or_explicit(&gone[page / 64], 1ull << (page % 64), memory_order_release);
	if (munmap(p, len))
		return -pg_errno();
	/* A thread that faulted on these pages before they went waits for a
	 * wake that no install will send: wake it, and it meets the hole (or
	 * whatever the program mapped there), as after any munmap. */
	pg_uffd_wake(r->uffd, p, len);
	return 0;
}

int fp_region_unmap(fp_region *r, uint64_t offset, uint64_t len)
{
	if (offset % PAGE || !len || offset >= r->size || len > r->size - offset)
		return pg_err(EINVAL, "%s: fp_region_unmap: [%llu, +%llu) is not a page-aligned range "
		              "of the region (%llu bytes)", r->img->path, (unsigned long long)offset,
		              (unsigned long long)len, (unsigned long long)r->size);
	len = (len + PAGE - 1) / PAGE * PAGE;
	pthread_rwlock_wrlock(&r->unmapped.lock);
	_Atomic uint64_t *gone = atomic_load_explicit(&r->unmapped.gone, memory_order_relaxed);
	if (!gone) {
		uint64_t pages = (r->size + PAGE - 1) / PAGE;
		gone = calloc((pages + 63) / 64, sizeof *gone);
		if (!gone) {
			pthread_rwlock_unlock(&r->unmapped.lock);
			return pg_err(ENOMEM, "%s: out of memory", r->img->path);
		}
		atomic_store_explicit(&r->unmapped.gone, gone, memory_order_release);
	}
	/* Only the pages still live are unmapped: a page given back before
	 * may hold someone else's mapping by now. */
	int rc = pg_map_each_live(r, offset, len, unmap_run, gone);
	pthread_rwlock_unlock(&r->unmapped.lock);
	if (rc)
		return pg_err(-rc, "%s: munmap of [%llu, +%llu) failed: %s", r->img->path,
		              (unsigned long long)offset, (unsigned long long)len, strerror(-rc));
	return 0;
}

/* fp_close: the live pages are unregistered and unmapped, run by run. */
static int close_run(fp_region *r, uint8_t *p, size_t len, void *ctx)
{
	pg_uffd_unregister(r->uffd, p, len);
	munmap(p, len);
	return 0;
}

void pg_map_close(fp_region *r)
{
	pg_map_each_live(r, 0, r->size, close_run, NULL);
}

void pg_map_init(fp_region *r)
{
	pthread_rwlock_init(&r->unmapped.lock, NULL); /* cannot fail with default attributes */
}

void pg_map_free(fp_region *r)
{
	pthread_rwlock_destroy(&r->unmapped.lock);
	free((void *)atomic_load(&r->unmapped.gone));
}
