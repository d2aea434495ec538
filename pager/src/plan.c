/* The preservation planner.  Preserving a chunk saves, every token, its
 * streaming time (the larger of reading its stored bytes and decoding them
 * on the cores decoding gets: pipeline.h), and costs its bytes of
 * memory for good.  Within a capacity the best set is a 0/1 knapsack:
 * solved exactly by dynamic programming over pages when it is small, and
 * greedily by benefit per byte otherwise (the chunks of a model are many
 * and alike, so the greedy answer is within one chunk of the optimum).
 *
 * Balanced (FlexInfer's balanced memory locking): every layer keeps the
 * same share of its bytes, so every layer streams about as much and the
 * pipeline runs evenly.  Unbalanced: the first layers are preserved whole,
 * then the next, as a naive pager would end up.  Which layer a tensor is
 * in, and whether it is an attention tensor, the caller says
 * (tensor_layer): the pager knows no model's tensor names. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "image.h"
#include "pipeline.h"

struct item {
	uint32_t chunk;
	int group;               /* layer, or n_layers for everything else */
	int attention;           /* in an attention tensor */
	uint64_t cost;           /* page-rounded bytes */
	double weight;           /* of them, read a token (cost x read share) */
	double benefit;          /* ns saved a token */
	double stored;           /* stored bytes read a token */
	double decoded;          /* bytes decoded a token (0: read raw) */
};

/* The tensor holding most of chunk d's bytes: a chunk may hold the end of
 * one tensor and the start of the next. */
static const struct fp_tensor_desc *main_tensor(const fp_image *img, const struct fp_chunk_desc *d)
{
	uint32_t n = fp_image_info(img)->n_tensors, lo = 0, hi = n;
	uint64_t start = d->logical_offset, end = start + d->logical_len, most = 0;
	while (lo < hi) { /* the first tensor that ends after start */
		uint32_t mid = lo + (hi - lo) / 2;
		const struct fp_tensor_desc *t = fp_image_tensor(img, mid);
		if (t->offset + t->size <= start)
			lo = mid + 1;
		else
			hi = mid;
	}
	const struct fp_tensor_desc *best = NULL;
	for (uint32_t i = lo; i < n; i++) {
		const struct fp_tensor_desc *t = fp_image_tensor(img, i);
		if (t->offset >= end)
			break;
		uint64_t a = t->offset > start ? t->offset : start;
		uint64_t b = t->offset + t->size < end ? t->offset + t->size : end;
		if (b - a > most) {
			most = b - a;
			best = t;
		}
	}
	return best;
}

/* Preferred first: attention (if asked), then more benefit per byte. */
static int by_preference(const void *pa, const void *pb, void *attention_first)
{
	const struct item *a = pa, *b = pb;
	if (*(const int *)attention_first && a->attention != b->attention)
		return b->attention - a->attention;
	double ra = a->benefit / (double)a->cost, rb = b->benefit / (double)b->cost;
	if (ra != rb)
		return ra > rb ? -1 : 1;
	return a->chunk < b->chunk ? -1 : a->chunk > b->chunk;
}

/* Choose among items[0..n) within cap; sets keep[i]. */
static void knapsack(struct item *it, size_t n, uint64_t cap, uint8_t *keep, int exact_ok)
{
	uint64_t pages = cap / 4096;
	if (exact_ok && n && pages && (double)n * (double)(pages + 1) <= 4e6) {
		/* best[p]: most benefit within p pages; take[i][p]: item i used. */
		double *best = calloc(pages + 1, sizeof *best);
		uint8_t *take = calloc(n * (pages + 1), 1);
		if (best && take) {
			for (size_t i = 0; i < n; i++) {
				uint64_t w = it[i].cost / 4096;
				for (uint64_t p = pages; p >= w; p--) {
					if (best[p - w] + it[i].benefit > best[p]) {
						best[p] = best[p - w] + it[i].benefit;
						take[i * (pages + 1) + p] = 1;
					}
				}
			}
			uint64_t p = pages;
			for (size_t i = n; i-- > 0;)
				if (take[i * (pages + 1) + p]) {
					keep[i] = 1;
					p -= it[i].cost / 4096;
				}
			free(best);
			free(take);
			return;
		}
		free(best);
		free(take);
	}
	uint64_t used = 0;
	for (size_t i = 0; i < n; i++)
		if (used + it[i].cost <= cap) {
			keep[i] = 1;
			used += it[i].cost;
		}
}

int fp_plan_make(const fp_image *img, const struct fp_plan_options *o, struct fp_plan *out)
{
	memset(out, 0, sizeof *out);
	const struct fp_image_info *info = fp_image_info(img);
	double read = o->read_bytes_per_s > 0 ? o->read_bytes_per_s : PG_DEFAULT_READ_RATE;
	double decode = o->decode_bytes_per_s > 0 ? o->decode_bytes_per_s : PG_DEFAULT_DECODE_RATE;
	double cpus = pg_pipe_cpus(o->decoders);
	uint64_t all = 0; /* every chunk's resident bytes */
	size_t n = 0;
	int n_layers = 0;
	struct item *it = calloc(info->n_chunks, sizeof *it);
	uint8_t *keep = calloc(info->n_chunks, 1);
	uint8_t *alt = calloc(info->n_chunks ? info->n_chunks : 1, 1);
	out->preserve = calloc(info->n_chunks, 1);
	if (!it || !keep || !alt || !out->preserve ||
	    pg_image_pick_forms(img, read, decode, cpus, alt) < 0) {
		free(it);
		free(keep);
		free(alt);
		fp_plan_free(out);
		return pg_err(ENOMEM, "plan: out of memory");
	}
	out->n_chunks = info->n_chunks;
	for (uint32_t c = 0; c < info->n_chunks; c++) {
		const struct fp_chunk_desc *d = fp_image_chunk(img, c);
		const struct fp_tensor_desc *t = main_tensor(img, d);
		uint64_t cost = (d->logical_len + 4095ull) & ~4095ull; /* page-rounded */
		all += cost;
		if (!d->logical_len || !t)
			continue;
		struct item *x = &it[n++];
		x->chunk = c;
		int attention = 0;
		x->group = o->tensor_layer ? o->tensor_layer(t, &attention, o->tensor_layer_ctx)
		                           : -1;
		if (x->group < 0 || x->group >= 1000000)
			x->group = -1; /* outside the layers */
		x->attention = attention != 0;
		x->cost = cost;
		double share = o->read_share ? o->read_share(t, o->read_share_ctx) : 1.0;
		/* Streamed, the chunk is read in the form fp_open picks at the
		 * same rates; keeping it saves that form's own streaming time
		 * (the larger of its read and its decode over the cores). */
		const struct fp_chunk_desc *f = fp_image_chunk_form(img, c, alt[c]);
		x->benefit = share * pg_form_ns(f, read, decode, cpus);
		if (!(x->benefit > 0)) {
			n--; /* read too little to be worth memory */
			continue;
		}
		if (x->group + 1 > n_layers)
			n_layers = x->group + 1;
		x->stored = share * f->stored_len;
		x->weight = share * (double)x->cost;
		out->streamed_ns += x->benefit;
		out->streamed_stored += (uint64_t)x->stored;
		x->decoded = f->codec != FP_CODEC_RAW ? share * f->logical_len : 0;
		out->streamed_decoded += (uint64_t)x->decoded;
	}
	for (size_t i = 0; i < n; i++)
		if (it[i].group < 0)
			it[i].group = n_layers; /* embeddings, final norm, classifier */
	/* Whatever is asked, streaming keeps the minimum working set: two
	 * chunks, the one in use and the one the loop moves to.  A budget that
	 * holds every chunk streams nothing: all of it is kept. */
	uint64_t stream = o->budget >= all ? 0
	                  : o->stream_bytes > 2ull * info->chunk_size ? o->stream_bytes
	                                                              : 2ull * info->chunk_size;
	uint64_t cap = o->budget > stream ? o->budget - stream : 0;
	out->stream_bytes = stream;
	int attention_first = o->order == FP_PLAN_ATTENTION_FIRST;
	double total = 0;
	for (size_t i = 0; i < n; i++)
		total += it[i].weight;
	if (!stream) {
		/* Every chunk, those of no tensor too (a file's bytes past its
		 * last tensor, packed verbatim): fp_open keeps all or streams. */
		for (uint32_t c = 0; c < info->n_chunks; c++)
			out->preserve[c] = fp_image_chunk(img, c)->logical_len > 0;
	} else if (!o->balanced) {
		/* First layers first: by group, then by preference inside it. */
		uint64_t used = 0;
		for (int g = 0; g <= n_layers; g++) {
			size_t k = 0;
			struct item *grp = malloc(sizeof *grp * (n ? n : 1));
			for (size_t i = 0; i < n; i++)
				if (it[i].group == g)
					grp[k++] = it[i];
			qsort_r(grp, k, sizeof *grp, by_preference, &attention_first);
			for (size_t i = 0; i < k; i++)
				if (used + grp[i].cost <= cap) {
					out->preserve[grp[i].chunk] = 1;
					used += grp[i].cost;
				}
			free(grp);
		}
	} else {
		/* Each group gets the capacity in proportion to the bytes it has
		 * read a token (a looked-up embedding counts for the rows read,
		 * not its size); what a group cannot use (chunk granularity)
		 * goes to the next round. */
		uint64_t left = cap;
		for (int round = 0; round < 2 && left; round++) {
			for (int g = 0; g <= n_layers; g++) {
				size_t k = 0;
				double gsize = 0;
				struct item *grp = malloc(sizeof *grp * (n ? n : 1));
				for (size_t i = 0; i < n; i++)
					if (it[i].group == g && !out->preserve[it[i].chunk]) {
						grp[k++] = it[i];
						gsize += it[i].weight;
					}
				qsort_r(grp, k, sizeof *grp, by_preference, &attention_first);
				uint64_t share = round ? left : total > 0 ? (uint64_t)((double)cap * gsize / total) : 0;
				if (share > left)
					share = left;
				memset(keep, 0, k);
				knapsack(grp, k, share, keep, !attention_first);
				for (size_t i = 0; i < k; i++)
					if (keep[i]) {
						out->preserve[grp[i].chunk] = 1;
						left -= grp[i].cost;
					}
				free(grp);
			}
		}
	}
	for (uint32_t c = 0; c < info->n_chunks; c++)
		if (out->preserve[c]) {
			out->n_preserved++;
			out->preserved_bytes += (fp_image_chunk(img, c)->logical_len + 4095ull) & ~4095ull;
		}
	for (size_t i = 0; i < n; i++)
		if (out->preserve[it[i].chunk]) {
			out->saved_ns += it[i].benefit;
			out->streamed_ns -= it[i].benefit;
			out->streamed_stored -= (uint64_t)it[i].stored;
			out->streamed_decoded -= (uint64_t)it[i].decoded;
		}
	free(it);
	free(keep);
	free(alt);
	return 0;
}

void fp_plan_free(struct fp_plan *p)
{
	free(p->preserve);
	memset(p, 0, sizeof *p);
}
