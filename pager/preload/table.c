/* The mappings served, and the walk over an address range that every
 * interposed call on memory makes: the pages of a served mapping that are
 * still live (not unmapped) are this library's business, every other page
 * the real function's.  A bit per page of each mapping says which pages
 * are live, so that a page once unmapped (where the kernel may have placed
 * something else since) goes to the real functions again. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "preload.h"

#define MAX_SERVED 64

atomic_int pl_n_served;
pthread_mutex_t pl_table_lock = PTHREAD_MUTEX_INITIALIZER;
static struct pl_served *table[MAX_SERVED];

int pl_table_add(struct pl_served *s)
{
	pthread_mutex_lock(&pl_table_lock);
	int n = atomic_load(&pl_n_served), ok = n < MAX_SERVED;
	if (ok) {
		table[n] = s;
		atomic_store(&pl_n_served, n + 1);
	}
	pthread_mutex_unlock(&pl_table_lock);
	return ok ? 0 : -1;
}

struct pl_served *pl_table_at(int i)
{
	return i < atomic_load(&pl_n_served) ? table[i] : NULL;
}

static void table_remove(int i)
{
	int n = atomic_load(&pl_n_served) - 1;
	table[i] = table[n];
	table[n] = NULL;
	atomic_store(&pl_n_served, n);
}

static int live(const struct pl_served *s, uintptr_t p)
{
	size_t page = (p - s->base) / PL_PAGE;
	return (int)((s->live[page / 64] >> (page % 64)) & 1);
}

static int by_base(const void *a, const void *b)
{
	uintptr_t x = (*(struct pl_served *const *)a)->base, y = (*(struct pl_served *const *)b)->base;
	return x < y ? -1 : x > y;
}

int pl_walk(uintptr_t addr, size_t len, struct pl_walk *w)
{
	struct pl_served *hit[MAX_SERVED];
	int n = 0;
	uintptr_t end = addr + len, cur = addr;
	for (int i = 0; i < atomic_load(&pl_n_served); i++)
		if (table[i]->base < end && table[i]->base + table[i]->len > addr)
			hit[n++] = table[i];
	qsort(hit, (size_t)n, sizeof *hit, by_base);
	int rc = 0;
	for (int i = 0; i < n && !rc; i++) {
		struct pl_served *s = hit[i];
		uintptr_t p = addr > s->base ? addr : s->base;
		uintptr_t hi = end < s->base + s->len ? end : s->base + s->len;
		while (p < hi && !rc) {
			if (!live(s, p)) {
				p += PL_PAGE;
				continue;
			}
			uintptr_t q = p + PL_PAGE;
			while (q < hi && live(s, q))
				q += PL_PAGE;
			if (cur < p && w->gap)
				rc = w->gap(w, cur, p);
			if (!rc)
				rc = w->live(w, s, p, q);
			cur = p = q;
		}
	}
	if (!rc && cur < end && w->gap)
		rc = w->gap(w, cur, end);
	return rc;
}

/* ---- munmap ---- */

static int give_back(struct pl_walk *w, struct pl_served *s, uintptr_t lo, uintptr_t hi)
{
	pl_log(PL_LOG_DEBUG, "%s: unmapped [%llu, %llu) of the region", s->name,
	       (unsigned long long)(lo - s->base), (unsigned long long)(hi - s->base));
	if (fp_region_unmap(s->r, lo - s->base, hi - lo))
		return -1;
	for (uintptr_t p = lo; p < hi; p += PL_PAGE) {
		size_t page = (p - s->base) / PL_PAGE;
		s->live[page / 64] &= ~(1ull << (page % 64));
	}
	s->n_live -= (hi - lo) / PL_PAGE;
	return 0;
}

static int unmap_gap(struct pl_walk *w, uintptr_t lo, uintptr_t hi)
{
	return pl_real()->munmap((void *)lo, hi - lo);
}

int pl_unmap(uintptr_t addr, size_t len, int gaps_too)
{
	len = (len + PL_PAGE - 1) / PL_PAGE * PL_PAGE;
	struct pl_walk w = {.live = give_back, .gap = gaps_too ? unmap_gap : NULL};
	struct pl_served *closing[MAX_SERVED];
	int n_closing = 0;
	pthread_mutex_lock(&pl_table_lock);
	int rc = pl_walk(addr, len, &w), err = errno;
	/* A mapping with nothing left is closed: its region goes. */
	for (int i = atomic_load(&pl_n_served); i-- > 0;)
		if (!table[i]->n_live) {
			closing[n_closing++] = table[i];
			table_remove(i);
		}
	pthread_mutex_unlock(&pl_table_lock);
	for (int i = 0; i < n_closing; i++)
		pl_close(closing[i]);
	errno = err;
	return rc ? -1 : 0;
}
