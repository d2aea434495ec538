/* Matrix-vector products: quantize each distinct x once, then share the
 * rows of all the jobs out to the pool's threads.
 *
 * The rows are cut into grains of about GRAIN multiply-adds.  Each thread
 * owns an equal, contiguous run of grains and takes them from the front,
 * so it reads one long stream; a thread that finishes early takes grains
 * from the back of the others' runs.  On a shared machine two vCPUs seldom
 * run at the same speed, and without stealing the faster one would idle at
 * every product's barrier (measured: ~12% of a 2-thread decode).  Where a
 * row is computed never changes how, so results do not depend on the
 * thread count or on who stole what. */
#include "internal.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* Multiply-adds below which a product runs on the calling thread alone. */
#define SMALL_PRODUCT (64 * 1024)
/* Multiply-adds per grain: ~70 KB of q8_0 rows, a few microseconds. */
#define GRAIN (64 * 1024)
#define MAX_STACK_THREADS 16

#define ALIGN64(n) (((n) + 63) & ~(size_t)63)

/* A thread's run of grains: front (next to take) in the high half, back
 * (one past the last) in the low half, so one CAS claims from either end. */
struct run {
	_Alignas(64) _Atomic uint64_t fb; /* a line each: the threads CAS them */
};

struct batch {
	const struct fk_matvec *jobs;
	int n_jobs;
	const struct fk_xq *xq;      /* per job (NULL entries for f32, f16) */
	const struct fk_impl *impl;
	const int *grain_rows;       /* per job: rows in one grain */
	const long *first_grain;     /* per job, and the total at [n_jobs] */
	struct run *runs;            /* per thread */
};

static size_t xq_bytes(int n)
{
	const size_t nb = (size_t)n / FK_QK;
	return ALIGN64(nb * FK_QK) + ALIGN64(nb * 8 * sizeof(int32_t)) + ALIGN64(nb * sizeof(float));
}

static struct fk_xq xq_at(char *mem, int n)
{
	const size_t nb = (size_t)n / FK_QK;
	struct fk_xq q;
	q.qs = (int8_t *)mem;
	q.bias = (int32_t *)(mem + ALIGN64(nb * FK_QK));
	q.d = (float *)(mem + ALIGN64(nb * FK_QK) + ALIGN64(nb * 8 * sizeof(int32_t)));
	return q;
}

static void run_rows(const struct batch *bt, int i, int r0, int r1)
{
	const struct fk_matvec *j = &bt->jobs[i];
	switch (j->type) {
	case FK_F32:
		bt->impl->rows_f32(j->w, j->x, j->y, j->n_in, r0, r1);
		break;
	case FK_F16:
		bt->impl->rows_f16(j->w, j->x, j->y, j->n_in, r0, r1);
		break;
	case FK_Q8_0:
		bt->impl->rows_q8_0(j->w, &bt->xq[i], j->y, j->n_in, r0, r1);
		break;
	case FK_Q4_0:
		bt->impl->rows_q4_0(j->w, &bt->xq[i], j->y, j->n_in, r0, r1);
		break;
	case FK_Q8_0_X8:
		bt->impl->rows_q8_0x8(j->w, &bt->xq[i], j->y, j->n_in, r0, r1);
		break;
	case FK_Q4_0_X8:
		bt->impl->rows_q4_0x8(j->w, &bt->xq[i], j->y, j->n_in, r0, r1);
		break;
	}
}

static void run_grain(const struct batch *bt, long g)
{
	int i = 0;
	while (g >= bt->first_grain[i + 1])
		i++;
	const long r0 = (g - bt->first_grain[i]) * bt->grain_rows[i];
	long r1 = r0 + bt->grain_rows[i];
	if (r1 > bt->jobs[i].n_out)
		r1 = bt->jobs[i].n_out;
	run_rows(bt, i, (int)r0, (int)r1);
}

/* Claim one grain of run r, from the front or the back; -1 if it is empty. */
static long claim(struct run *r, int from_back)
{
	uint64_t fb = atomic_load_explicit(&r->fb, memory_order_relaxed);
	for (;;) {
		const uint32_t f = (uint32_t)(fb >> 32), b = (uint32_t)fb;
		if (f >= b)
			return -1;
		const uint64_t next = from_back ? fb - 1 : fb + (1ull << 32);
		if (atomic_compare_exchange_weak_explicit(&r->fb, &fb, next, memory_order_relaxed,
		                                          memory_order_relaxed))
			return from_back ? (long)b - 1 : (long)f;
	}
}

static void work(void *ctx, int ith, int nth)
{
	const struct batch *bt = ctx;
	long g;
	while ((g = claim(&bt->runs[ith], 0)) >= 0)
		run_grain(bt, g);
	for (int k = 1; k < nth; k++)
		while ((g = claim(&bt->runs[(ith + k) % nth], 1)) >= 0)
			run_grain(bt, g);
}

void fk_matvec_batch(fk_pool *p, const struct fk_matvec *jobs, int n_jobs)
{
	enum { SMALL = 8 };
	struct fk_xq xq_s[SMALL];
	int rows_s[SMALL];
	long first_s[SMALL + 1];
	struct run runs_s[MAX_STACK_THREADS];
	const int big = n_jobs > SMALL;
	struct fk_xq *xq = big ? calloc((size_t)n_jobs, sizeof *xq) : xq_s;
	int *grain_rows = big ? calloc((size_t)n_jobs, sizeof *grain_rows) : rows_s;
	long *first = big ? calloc((size_t)n_jobs + 1, sizeof *first) : first_s;
	if (!xq || !grain_rows || !first)
		abort(); /* a few hundred bytes: nothing sensible to do without them */

	/* grains, and scratch for each distinct quantized x */
	long long total = 0;
	size_t need = 0;
	first[0] = 0;
	for (int i = 0; i < n_jobs; i++) {
		const int n = jobs[i].n_in > 0 ? jobs[i].n_in : 1;
		total += (long long)jobs[i].n_in * jobs[i].n_out;
		grain_rows[i] = GRAIN / n > 0 ? GRAIN / n : 1;
		if (jobs[i].type == FK_Q8_0_X8 || jobs[i].type == FK_Q4_0_X8) /* whole groups */
			grain_rows[i] = (grain_rows[i] + X8_ROWS - 1) / X8_ROWS * X8_ROWS;
		first[i + 1] = first[i] + (jobs[i].n_out + grain_rows[i] - 1) / grain_rows[i];
		if (fk_quantizes_x(jobs[i].type))
			need += xq_bytes(jobs[i].n_in);
	}
	const struct fk_impl *impl = fk_impl_current();
	char *mem = NULL, *own = NULL;
	if (need) {
		mem = p ? fk_pool_scratch(p, need) : (own = aligned_alloc(64, need));
		if (!mem)
			abort();
	}
	for (int i = 0; i < n_jobs; i++) {
		memset(&xq[i], 0, sizeof xq[i]);
		if (!fk_quantizes_x(jobs[i].type))
			continue;
		int same = -1;
		for (int k = 0; k < i && same < 0; k++)
			if (fk_quantizes_x(jobs[k].type) && jobs[k].x == jobs[i].x && jobs[k].n_in == jobs[i].n_in)
				same = k;
		if (same >= 0) {
			xq[i] = xq[same];
			continue;
		}
		xq[i] = xq_at(mem, jobs[i].n_in);
		mem += xq_bytes(jobs[i].n_in);
		impl->quantize_x(jobs[i].x, &xq[i], jobs[i].n_in);
	}

	/* waking a thread costs microseconds; a product this small takes less */
	const int nth = total < SMALL_PRODUCT ? 1 : fk_pool_size(p);
	struct run *runs = nth <= MAX_STACK_THREADS ? runs_s : aligned_alloc(64, sizeof *runs * (size_t)nth);
	if (!runs)
		abort();
	const long grains = first[n_jobs];
	for (int t = 0; t < nth; t++) {
		const uint64_t f = (uint64_t)(grains * t / nth), b = (uint64_t)(grains * (t + 1) / nth);
		atomic_init(&runs[t].fb, f << 32 | b);
	}
	struct batch bt = { jobs, n_jobs, xq, impl, grain_rows, first, runs };
	if (nth == 1)
		work(&bt, 0, 1);
	else
		fk_pool_run(p, work, &bt);

	if (runs != runs_s)
		free(runs);
	free(own);
	if (big) {
		free(xq);
		free(grain_rows);
		free(first);
	}
}

void fk_matvec(fk_pool *p, float *y, const void *w, int type,
               const float *x, int n_in, int n_out)
{
	const struct fk_matvec j = { type, w, x, y, n_in, n_out };
	fk_matvec_batch(p, &j, 1);
}
