/* Matrix-vector products: quantize each distinct x once, then split the
 * rows of all the jobs over the pool's threads.  The split only decides
 * which thread computes a row, never how, so results do not depend on the
 * thread count. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

/* Multiply-adds below which a product runs on the calling thread alone. */
#define SMALL_PRODUCT (64 * 1024)

#define ALIGN64(n) (((n) + 63) & ~(size_t)63)

struct batch {
	const struct fk_matvec *jobs;
	int n_jobs;
	const struct fk_xq *xq;      /* per job (NULL entries for f32) */
	const struct fk_impl *impl;
	long long total;             /* sum over jobs of rows * n_in */
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

static void run_rows(const struct batch *bt, const struct fk_matvec *j,
                     const struct fk_xq *xq, int r0, int r1)
{
	switch (j->type) {
	case FK_F32:
		bt->impl->rows_f32(j->w, j->x, j->y, j->n_in, r0, r1);
		break;
	case FK_Q8_0:
		bt->impl->rows_q8_0(j->w, xq, j->y, j->n_in, r0, r1);
		break;
	case FK_Q4_0:
		bt->impl->rows_q4_0(j->w, xq, j->y, j->n_in, r0, r1);
		break;
	}
}

/* Thread ith takes the rows whose first value falls in its equal share of
 * all the jobs' values, so threads read about the same number of bytes. */
static void work(void *ctx, int ith, int nth)
{
	const struct batch *bt = ctx;
	const long long lo = bt->total * ith / nth, hi = bt->total * (ith + 1) / nth;
	long long c0 = 0;
	for (int i = 0; i < bt->n_jobs; i++) {
		const struct fk_matvec *j = &bt->jobs[i];
		const long long n = j->n_in, c1 = c0 + n * j->n_out;
		if (c1 > lo && c0 < hi) {
			long long r0 = lo > c0 ? (lo - c0 + n - 1) / n : 0;
			long long r1 = (hi - c0 + n - 1) / n;
			if (r1 > j->n_out)
				r1 = j->n_out;
			if (r0 < r1)
				run_rows(bt, j, &bt->xq[i], (int)r0, (int)r1);
		}
		c0 = c1;
	}
}

void fk_matvec_batch(fk_pool *p, const struct fk_matvec *jobs, int n_jobs)
{
	struct fk_xq xq_small[8];
	struct fk_xq *xq = n_jobs <= 8 ? xq_small : calloc((size_t)n_jobs, sizeof *xq);
	if (!xq)
		abort(); /* a few dozen bytes: out of memory is not recoverable here */
	struct batch bt = { jobs, n_jobs, xq, fk_impl_current(), 0 };

	/* scratch for each distinct quantized x */
	size_t need = 0;
	for (int i = 0; i < n_jobs; i++) {
		bt.total += (long long)jobs[i].n_in * jobs[i].n_out;
		if (jobs[i].type != FK_F32)
			need += xq_bytes(jobs[i].n_in);
	}
	char *mem = NULL, *own = NULL;
	if (need) {
		mem = p ? fk_pool_scratch(p, need) : (own = aligned_alloc(64, need));
		if (!mem)
			abort();
	}
	for (int i = 0; i < n_jobs; i++) {
		memset(&xq[i], 0, sizeof xq[i]);
		if (jobs[i].type == FK_F32)
			continue;
		int same = -1;
		for (int k = 0; k < i && same < 0; k++)
			if (jobs[k].type != FK_F32 && jobs[k].x == jobs[i].x && jobs[k].n_in == jobs[i].n_in)
				same = k;
		if (same >= 0) {
			xq[i] = xq[same];
			continue;
		}
		xq[i] = xq_at(mem, jobs[i].n_in);
		mem += xq_bytes(jobs[i].n_in);
		bt.impl->quantize_x(jobs[i].x, &xq[i], jobs[i].n_in);
	}

	/* waking a thread costs microseconds; a product this small takes less */
	if (bt.total < SMALL_PRODUCT)
		work(&bt, 0, 1);
	else
		fk_pool_run(p, work, &bt);

	free(own);
	if (xq != xq_small)
		free(xq);
}

void fk_matvec(fk_pool *p, float *y, const void *w, int type,
               const float *x, int n_in, int n_out)
{
	const struct fk_matvec j = { type, w, x, y, n_in, n_out };
	fk_matvec_batch(p, &j, 1);
}
