/* Resident weights in the kernels' repacked layout (frt_model_repack).
 *
 * A q4_0 or q8_0 product over rows in file order loads x and builds the
 * scales once per row; over flexkern's 8-row interleaved layout, once per
 * 8 rows, from one stream of memory.  The layout is the kernels' and the
 * bits of every product are the same; the cost is a copy of the matrices
 * in memory the model owns, so it is for weights that are resident
 * anyway: paged weights stay in the file's layout, where the pager's
 * chunks are.  frt_model_repack_in_place spares the copy where a group of
 * 8 repacked rows takes exactly the bytes of the 8 rows it came from. */
#include "internal.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#define HUGE_PAGE (2u << 20)

struct job {
	struct frt_tensor *t;        /* replaced by its repacked copy */
	int n_in, n_out;
	int in_place;                /* repacked in the caller's memory */
	size_t at;                   /* offset in the model's buffer */
};

struct work {
	struct job *jobs;
	int n;
	unsigned char *buf;
	unsigned char *scratch;      /* per thread: 8 rows of the widest matrix */
	size_t scratch_size;
	_Atomic int next;
};

/* The q4_0 matrices of m: every layer's seven and the classifier; NULL
 * jobs counts them.  q8_0 has a repacked layout too, but a decode over it
 * measured 0.80-1.05x of the file layout (bench/results/decode): q8_0
 * reads at the memory's rate already, and the gain from L2 (1.3x) does not
 * reach the token. */
static int collect(frt_model *m, struct job *jobs)
{
	const struct frt_config *c = &m->cfg;
	const int d = c->dim, hd = c->hidden_dim, kv = m->kv_dim;
	int n = 0;
#define ADD(T, IN, OUT)                                                          \
	do {                                                                     \
		if ((T)->type == FK_Q4_0) {                                      \
			if (jobs)                                                \
				jobs[n] = (struct job){ (T), (IN), (OUT), 0, 0 }; \
			n++;                                                     \
		}                                                                \
	} while (0)
	for (int l = 0; l < c->n_layers; l++) {
		struct frt_layer *L = &m->layers[l];
		ADD(&L->wq, d, d);
		ADD(&L->wk, d, kv);
		ADD(&L->wv, d, kv);
		ADD(&L->wo, d, d);
		ADD(&L->w1, d, hd);
		ADD(&L->w3, d, hd);
		ADD(&L->w2, hd, d);
	}
	ADD(&m->w.output, d, c->vocab_size);
#undef ADD
	return n;
}

/* A group of 8 rows repacked takes the bytes of its 8 rows in the file's
 * layout exactly when no padding is needed: whole units of 4 blocks and
 * whole groups. */
static int fits_in_place(const struct job *j)
{
	return (j->n_in / FK_QK) % 4 == 0 && j->n_out % 8 == 0;
}

/* Group by group through a scratch copy of its 8 rows: the group then
 * overwrites exactly those rows, and later groups are still intact. */
static void repack_in_place(const struct job *j, unsigned char *scratch)
{
	unsigned char *data = (unsigned char *)(uintptr_t)j->t->data;
	const size_t group = 8 * fk_row_bytes(j->t->type, (size_t)j->n_in);
	for (int g = 0; g < j->n_out / 8; g++) {
		memcpy(scratch, data + (size_t)g * group, group);
		fk_repack(j->t->type, scratch, data + (size_t)g * group, j->n_in, 8);
	}
}

/* Each thread takes the next matrix until none is left. */
static void repack_some(void *ctx, int ith, int nth)
{
	(void)nth;
	struct work *w = ctx;
	int i;
	while ((i = atomic_fetch_add_explicit(&w->next, 1, memory_order_relaxed)) < w->n) {
		const struct job *j = &w->jobs[i];
		/* cannot fail: collect() took only types and sizes it accepts */
		if (j->in_place)
			repack_in_place(j, w->scratch + (size_t)ith * w->scratch_size);
		else
			fk_repack(j->t->type, j->t->data, w->buf + j->at, j->n_in, j->n_out);
	}
}

static int repack(frt_model *m, int in_place)
{
	if (m->repacked)
		return 0;
	const int n = collect(m, NULL);
	if (!n) {
		m->repacked = 1;
		return 0;
	}
	struct job *jobs = calloc((size_t)n, sizeof *jobs);
	if (!jobs)
		return frt_fail(ENOMEM, "out of memory");
	collect(m, jobs);
	size_t total = 0, scratch = 0;
	for (int i = 0; i < n; i++) {
		/* the embedding is read in the file's layout: a classifier
		 * shared with it is copied */
		jobs[i].in_place = in_place && fits_in_place(&jobs[i]) &&
		                   jobs[i].t->data != m->w.token_embd.data;
		if (jobs[i].in_place) {
			const size_t g = 8 * fk_row_bytes(jobs[i].t->type, (size_t)jobs[i].n_in);
			scratch = g > scratch ? g : scratch;
			continue;
		}
		jobs[i].at = total;
		total += fk_repack_bytes(jobs[i].t->type, jobs[i].n_in, jobs[i].n_out);
	}
	const size_t size = (total + HUGE_PAGE - 1) / HUGE_PAGE * HUGE_PAGE;
	void *buf = NULL;
	if (size) {
		buf = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (buf == MAP_FAILED) {
			free(jobs);
			return frt_fail(ENOMEM, "out of memory for the repacked weights (%zu MiB)",
			                size >> 20);
		}
		/* a token reads every byte once: huge pages spare a TLB miss
		 * per 4 KiB (advice only; without it the layout still works) */
		madvise(buf, size, MADV_HUGEPAGE);
	}
	struct work w = { jobs, n, buf, NULL, scratch, 0 };
	if (scratch && !(w.scratch = malloc(scratch * (size_t)fk_pool_size(m->pool)))) {
		if (buf)
			munmap(buf, size);
		free(jobs);
		return frt_fail(ENOMEM, "out of memory");
	}
	fk_pool_run(m->pool, repack_some, &w);
	for (int i = 0; i < n; i++) {
		if (!jobs[i].in_place)
			jobs[i].t->data = w.buf + jobs[i].at;
		jobs[i].t->type = fk_repack_type(jobs[i].t->type);
	}
	free(w.scratch);
	free(jobs);
	m->packed = buf;
	m->packed_size = size;
	m->repacked = 1;
	return 0;
}

int frt_model_repack(frt_model *m)
{
	return repack(m, 0);
}

int frt_model_repack_in_place(frt_model *m)
{
	return repack(m, 1);
}

void frt_repack_free(frt_model *m)
{
	if (m->packed)
		munmap(m->packed, m->packed_size);
	m->packed = NULL;
}
