/* The page pool: huge pages recycled between loads and evictions.
 *
 * A fresh huge page costs a 2 MiB zeroing on first touch (and far more when
 * the hypervisor has taken the free memory back), so a loader reads into a
 * slot that already holds a page, and UFFDIO_MOVE hands that page to the
 * region; an eviction moves a region page back into an empty slot instead
 * of freeing it.  The pool is an anonymous range registered with the same
 * userfaultfd (UFFDIO_MOVE needs a registered destination); an empty slot
 * is never touched.  Pages circulate: a load empties a slot, an eviction
 * fills one.  Only when fewer than `warm_low` pages are left does a warmer
 * thread make new ones off the load path: it faults a huge page into a
 * scratch range of its own (paying the zeroing there) and moves it into a
 * slot.  No more than `warm_max` pages wait unused outside the budget; the
 * other slots hold staged chunks, which the budget counts. */
#ifndef FLEXPAGE_POOL_H
#define FLEXPAGE_POOL_H

#include <pthread.h>
#include <stdint.h>

struct pg_pool {
	uint8_t *base;           /* NULL: no pool (small chunks, no UFFDIO_MOVE) */
	size_t len;
	uint32_t chunk_size, n_slots;
	uint32_t warm_low, warm_max; /* unused pages the warmer keeps, at most kept */
	int uffd;
	pthread_mutex_t lock;
	pthread_cond_t wake;     /* the warmer: an empty slot, or stop */
	uint32_t *full, n_full;  /* stacks of slot indices */
	uint32_t *empty, n_empty;
	int stop;
	pthread_t warmer;
	uint8_t *scratch;        /* the warmer's unregistered chunk */
	void *scratch_map;
	uint64_t warmed;         /* pages the warmer has made */
};

/* Map and register n_slots slots, warm_max of them holding pages.  Returns
 * -1 (and no pool) if any step fails: the caller then goes without. */
int pg_pool_init(struct pg_pool *p, int uffd, uint32_t chunk_size, uint32_t n_slots,
                 uint32_t warm_low, uint32_t warm_max);
void pg_pool_destroy(struct pg_pool *p, int uffd);
/* A slot holding a page, or NULL. */
uint8_t *pg_pool_take_full(struct pg_pool *p);
/* Give back a slot: `full` says whether it still holds its page (a page
 * beyond warm_max is freed). */
void pg_pool_put(struct pg_pool *p, uint8_t *slot, int full);
/* An empty slot to move an evicted page into, or NULL when the pool has
 * enough pages already. */
uint8_t *pg_pool_take_empty(struct pg_pool *p);
int pg_pool_contains(const struct pg_pool *p, uint64_t addr);
/* The pool exists (pg_pool_init succeeded). */
static inline int pg_pool_ready(const struct pg_pool *p)
{
	return p->base != NULL;
}

#endif
