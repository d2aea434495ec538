#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "pool.h"
#include "uffd.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

#define HUGE (2u << 20)

static void *warmer_main(void *arg)
{
	struct pg_pool *p = arg;
	pthread_mutex_lock(&p->lock);
	for (;;) {
		while (!p->stop && !(p->n_empty && p->n_full < p->warm_low))
			pthread_cond_wait(&p->wake, &p->lock);
		if (p->stop)
			break;
		uint32_t i = p->empty[--p->n_empty];
		pthread_mutex_unlock(&p->lock);
		uint8_t *slot = p->base + (size_t)i * p->chunk_size;
		size_t moved = 0;
		if (madvise(p->scratch, p->chunk_size, MADV_POPULATE_WRITE))
			memset(p->scratch, 0, p->chunk_size);
		pg_uffd_move(p->uffd, slot, p->scratch, p->chunk_size, &moved);
		/* A partial move leaves holes: the scratch keeps the rest and
		 * the slot still counts as full (the handler answers a touch of
		 * a hole with a zero page, so nothing can hang on it). */
		pthread_mutex_lock(&p->lock);
		if (moved) {
			p->full[p->n_full++] = i;
			p->warmed++;
		} else {
			p->empty[p->n_empty++] = i;
			pthread_cond_wait(&p->wake, &p->lock); /* don't spin on a failing move */
		}
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

int pg_pool_init(struct pg_pool *p, int uffd, uint32_t chunk_size, uint32_t n_slots,
                 uint32_t warm_low, uint32_t warm_max)
{
	memset(p, 0, sizeof *p);
	size_t len = (size_t)chunk_size * n_slots;
	uint8_t *map = mmap(NULL, len + HUGE, PROT_READ | PROT_WRITE,
	                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (map == MAP_FAILED)
		return -1;
	uint8_t *base = (uint8_t *)(((uintptr_t)map + HUGE - 1) & ~(uintptr_t)(HUGE - 1));
	if (base > map)
		munmap(map, (size_t)(base - map));
	if (map + len + HUGE > base + len)
		munmap(base + len, (size_t)(map + len + HUGE - (base + len)));
	madvise(base, len, MADV_HUGEPAGE);
	madvise(base, len, MADV_DONTFORK);
	/* Pages first, registration after: a registered empty slot must never
	 * be touched. */
	if (warm_max > n_slots)
		warm_max = n_slots;
	size_t warm = (size_t)chunk_size * warm_max;
	if (madvise(base, warm, MADV_POPULATE_WRITE))
		memset(base, 0, warm);
	uint64_t ioctls;
	p->full = malloc(sizeof *p->full * n_slots);
	p->empty = malloc(sizeof *p->empty * n_slots);
	if (!p->full || !p->empty || pg_uffd_register(uffd, base, len, &ioctls)) {
		free(p->full);
		free(p->empty);
		munmap(base, len);
		memset(p, 0, sizeof *p);
		return -1;
	}
	p->base = base;
	p->len = len;
	p->chunk_size = chunk_size;
	p->n_slots = n_slots;
	p->warm_low = warm_low < warm_max ? warm_low : warm_max;
	p->warm_max = warm_max;
	p->uffd = uffd;
	for (uint32_t i = n_slots; i-- > 0;)
		if (i < warm_max)
			p->full[p->n_full++] = i;
		else
			p->empty[p->n_empty++] = i;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->wake, NULL);
	p->scratch_map = mmap(NULL, (size_t)chunk_size + HUGE, PROT_READ | PROT_WRITE,
	                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p->scratch_map != MAP_FAILED) {
		p->scratch = (uint8_t *)(((uintptr_t)p->scratch_map + HUGE - 1) & ~(uintptr_t)(HUGE - 1));
		madvise(p->scratch, chunk_size, MADV_HUGEPAGE);
		madvise(p->scratch_map, (size_t)chunk_size + HUGE, MADV_DONTFORK);
		if (pthread_create(&p->warmer, NULL, warmer_main, p)) {
			munmap(p->scratch_map, (size_t)chunk_size + HUGE);
			p->scratch_map = NULL;
		}
	} else {
		p->scratch_map = NULL;
	}
	return 0;
}

void pg_pool_destroy(struct pg_pool *p, int uffd)
{
	if (!p->base)
		return;
	if (p->scratch_map) {
		pthread_mutex_lock(&p->lock);
		p->stop = 1;
		pthread_cond_broadcast(&p->wake);
		pthread_mutex_unlock(&p->lock);
		pthread_join(p->warmer, NULL);
		munmap(p->scratch_map, (size_t)p->chunk_size + HUGE);
	}
	pg_uffd_unregister(uffd, p->base, p->len);
	munmap(p->base, p->len);
	free(p->full);
	free(p->empty);
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->wake);
	memset(p, 0, sizeof *p);
}

uint8_t *pg_pool_take_full(struct pg_pool *p)
{
	if (!p->base)
		return NULL;
	uint8_t *slot = NULL;
	pthread_mutex_lock(&p->lock);
	if (p->n_full)
		slot = p->base + (size_t)p->full[--p->n_full] * p->chunk_size;
	if (p->n_full < p->warm_low)
		pthread_cond_signal(&p->wake);
	pthread_mutex_unlock(&p->lock);
	return slot;
}

uint8_t *pg_pool_take_empty(struct pg_pool *p)
{
	if (!p->base)
		return NULL;
	uint8_t *slot = NULL;
	pthread_mutex_lock(&p->lock);
	if (p->n_empty && p->n_full < p->warm_max)
		slot = p->base + (size_t)p->empty[--p->n_empty] * p->chunk_size;
	pthread_mutex_unlock(&p->lock);
	return slot;
}

void pg_pool_put(struct pg_pool *p, uint8_t *slot, int full)
{
	if (!p->base)
		return; /* destroyed: its slots went with it */
	uint32_t i = (uint32_t)((size_t)(slot - p->base) / p->chunk_size);
	pthread_mutex_lock(&p->lock);
	if (full && p->n_full >= p->warm_max) {
		/* Enough pages wait outside the budget already. */
		madvise(slot, p->chunk_size, MADV_DONTNEED);
		full = 0;
	}
	if (full)
		p->full[p->n_full++] = i;
	else
		p->empty[p->n_empty++] = i;
	if (p->n_full < p->warm_low)
		pthread_cond_signal(&p->wake);
	pthread_mutex_unlock(&p->lock);
}

int pg_pool_contains(const struct pg_pool *p, uint64_t addr)
{
	return p->base && addr >= (uintptr_t)p->base && addr < (uintptr_t)p->base + p->len;
}
