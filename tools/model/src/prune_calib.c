/* The calibration sample of a pruning search: the text's tokens cut into
 * windows, and CCDS (EvoP's cluster-based calibration dataset sampling):
 * a sample drawn across clusters of the windows' embeddings covers the
 * kinds of text the calibration file holds, where the first windows of a
 * file would cover one story.  The embedding is the model's own: the mean
 * of its last hidden state over a window's first positions. */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <flexmodel/prune.h>

#include "internal.h"

int prune_windows_cut(const int *ids, const size_t *para, size_t n_para, int bos, int len,
                      int max, struct prune_windows *out)
{
	memset(out, 0, sizeof *out);
	if (len < 2)
		return model_fail(EINVAL, "a window of %d tokens: at least 2 (BOS and one to score)", len);
	const size_t run = (size_t)len - 1;
	size_t total = 0, longest = 0;
	for (size_t p = 0; p < n_para; p++) {
		const size_t n = para[p + 1] - para[p];
		total += n / run;
		longest = n > longest ? n : longest;
	}
	if (!total)
		return model_fail(EINVAL, "no paragraph holds %zu tokens for one window of %d (BOS + %zu); "
		                  "the longest has %zu: give more text or a smaller --window", run, len,
		                  run, longest);
	const size_t keep = max > 0 && (size_t)max < total ? (size_t)max : total;
	out->ids = malloc(keep * (size_t)len * sizeof *out->ids);
	if (!out->ids)
		return model_fail(ENOMEM, "out of memory for %zu windows of %d tokens", keep, len);
	out->len = len;
	/* window j of the total is kept when it is the first at or past
	 * i * total / keep for the next i: evenly spaced, in order */
	size_t j = 0, next = 0;
	for (size_t p = 0; p < n_para && (size_t)out->n < keep; p++)
		for (size_t at = para[p]; at + run <= para[p + 1] && (size_t)out->n < keep; at += run, j++) {
			if (j < next)
				continue;
			int *w = out->ids + (size_t)out->n * (size_t)len;
			w[0] = bos;
			memcpy(w + 1, ids + at, run * sizeof *w);
			out->n++;
			next = (size_t)out->n * total / keep;
		}
	return 0;
}

void prune_windows_free(struct prune_windows *w)
{
	free(w->ids);
	memset(w, 0, sizeof *w);
}

void prune_ccds_free(struct prune_ccds *c)
{
	free(c->emb);
	free(c->cluster);
	free(c->chosen);
	memset(c, 0, sizeof *c);
}

/* The mean last hidden state of window w's first n positions, unit length. */
static int embed(frt_model *rt, const int *w, int n, float *states, float *out)
{
	const struct frt_config *c = frt_model_config(rt);
	const float *last = states + (size_t)c->n_layers * (size_t)c->dim;
	double *acc = calloc((size_t)c->dim, sizeof *acc);
	if (!acc)
		return model_fail(ENOMEM, "out of memory");
	frt_model_record_states(rt, states);
	for (int pos = 0; pos < n; pos++) {
		if (!frt_forward(rt, w[pos], pos)) {
			frt_model_record_states(rt, NULL);
			free(acc);
			return model_fail(EINVAL, "embedding a window: %s", frt_last_error());
		}
		for (int i = 0; i < c->dim; i++)
			acc[i] += last[i];
	}
	frt_model_record_states(rt, NULL);
	double norm = 0;
	for (int i = 0; i < c->dim; i++)
		norm += acc[i] * acc[i];
	norm = norm > 0 ? sqrt(norm) : 1;
	for (int i = 0; i < c->dim; i++)
		out[i] = (float)(acc[i] / norm);
	free(acc);
	return 0;
}

static double dist2(const float *a, const double *b, int d)
{
	double s = 0;
	for (int i = 0; i < d; i++)
		s += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
	return s;
}

static int nearest(const float *x, const double *cent, int k, int d)
{
	int best = 0;
	double bd = DBL_MAX;
	for (int j = 0; j < k; j++) {
		const double dd = dist2(x, cent + (size_t)j * d, d);
		if (dd < bd) {
			bd = dd;
			best = j;
		}
	}
	return best;
}

/* k-means++ seeding, then Lloyd rounds until no point moves; an emptied
 * cluster takes the point farthest from its centroid. */
static int kmeans(const float *x, int n, int d, int k, uint64_t *rng, int *assign, int *rounds)
{
	double *cent = malloc((size_t)k * d * sizeof *cent), *dmin = malloc((size_t)n * sizeof *dmin);
	int *count = malloc((size_t)k * sizeof *count);
	if (!cent || !dmin || !count) {
		free(cent);
		free(dmin);
		free(count);
		return model_fail(ENOMEM, "out of memory for k-means");
	}
	int first = prune_rand_below(rng, n);
	for (int i = 0; i < d; i++)
		cent[i] = x[(size_t)first * d + i];
	for (int j = 1; j < k; j++) {
		double sum = 0;
		for (int p = 0; p < n; p++) {
			dmin[p] = DBL_MAX;
			for (int c = 0; c < j; c++) {
				const double dd = dist2(x + (size_t)p * d, cent + (size_t)c * d, d);
				dmin[p] = dd < dmin[p] ? dd : dmin[p];
			}
			sum += dmin[p];
		}
		/* the next centre at random in proportion to the squared distance
		 * (all points equal: the first one not yet a centre) */
		int pick = 0;
		if (sum > 0) {
			double r = prune_rand_unit(rng) * sum;
			for (pick = 0; pick < n - 1 && (r -= dmin[pick]) > 0; pick++)
				;
			while (dmin[pick] == 0) /* a centre already: the next point that is not */
				pick = (pick + 1) % n;
		}
		for (int i = 0; i < d; i++)
			cent[(size_t)j * d + i] = x[(size_t)pick * d + i];
	}
	for (int p = 0; p < n; p++)
		assign[p] = -1;
	for (*rounds = 0; *rounds < 1000;) {
		int moved = 0;
		for (int p = 0; p < n; p++) {
			const int c = nearest(x + (size_t)p * d, cent, k, d);
			moved += c != assign[p];
			assign[p] = c;
		}
		++*rounds;
		if (!moved)
			break;
		memset(cent, 0, (size_t)k * d * sizeof *cent);
		memset(count, 0, (size_t)k * sizeof *count);
		for (int p = 0; p < n; p++) {
			count[assign[p]]++;
			for (int i = 0; i < d; i++)
				cent[(size_t)assign[p] * d + i] += x[(size_t)p * d + i];
		}
		for (int c = 0; c < k; c++) {
			if (count[c]) {
				for (int i = 0; i < d; i++)
					cent[(size_t)c * d + i] /= count[c];
				continue;
			}
			int far = 0;
			double fd = -1;
			for (int p = 0; p < n; p++) {
				const double dd = dist2(x + (size_t)p * d, cent + (size_t)assign[p] * d, d);
				if (count[assign[p]] > 1 && dd > fd) {
					fd = dd;
					far = p;
				}
			}
			count[assign[far]]--;
			assign[far] = c;
			count[c] = 1;
			for (int i = 0; i < d; i++)
				cent[(size_t)c * d + i] = x[(size_t)far * d + i];
		}
	}
	free(cent);
	free(dmin);
	free(count);
	return 0;
}

static int cmp_int(const void *a, const void *b)
{
	return (*(const int *)a > *(const int *)b) - (*(const int *)a < *(const int *)b);
}

/* Round-robin over the clusters, each one's windows shuffled. */
static int draw(struct prune_ccds *c, int samples, uint64_t *rng)
{
	int *order = malloc((size_t)c->n * sizeof *order), *start = calloc((size_t)c->k + 1, sizeof *start);
	int *taken = calloc((size_t)c->k, sizeof *taken);
	c->chosen = malloc((size_t)samples * sizeof *c->chosen);
	if (!order || !start || !taken || !c->chosen) {
		free(order);
		free(start);
		free(taken);
		return model_fail(ENOMEM, "out of memory");
	}
	for (int p = 0; p < c->n; p++)
		start[c->cluster[p] + 1]++;
	for (int j = 0; j < c->k; j++)
		start[j + 1] += start[j];
	int *fill = calloc((size_t)c->k, sizeof *fill);
	if (!fill) {
		free(order);
		free(start);
		free(taken);
		return model_fail(ENOMEM, "out of memory");
	}
	for (int p = 0; p < c->n; p++)
		order[start[c->cluster[p]] + fill[c->cluster[p]]++] = p;
	free(fill);
	for (int j = 0; j < c->k; j++) /* Fisher-Yates within the cluster */
		for (int i = start[j + 1] - start[j] - 1; i > 0; i--) {
			const int r = prune_rand_below(rng, i + 1), t = order[start[j] + i];
			order[start[j] + i] = order[start[j] + r];
			order[start[j] + r] = t;
		}
	while (c->n_chosen < samples)
		for (int j = 0; j < c->k && c->n_chosen < samples; j++)
			if (start[j] + taken[j] < start[j + 1])
				c->chosen[c->n_chosen++] = order[start[j] + taken[j]++];
	qsort(c->chosen, (size_t)c->n_chosen, sizeof *c->chosen, cmp_int);
	free(order);
	free(start);
	free(taken);
	return 0;
}

int prune_ccds(frt_model *rt, const struct prune_windows *cand, const struct prune_ccds_options *o,
               struct prune_ccds *out)
{
	memset(out, 0, sizeof *out);
	const struct frt_config *cfg = frt_model_config(rt);
	if (cand->n < 1)
		return model_fail(EINVAL, "CCDS: no candidate windows");
	int samples = o && o->samples > 0 ? o->samples : 8;
	int k = o && o->clusters > 0 ? o->clusters : 8;
	int et = o && o->embed_tokens > 0 ? o->embed_tokens : 16;
	samples = samples < cand->n ? samples : cand->n;
	k = k < samples ? k : samples; /* every cluster gives a window */
	et = et < cand->len ? et : cand->len;
	if (et > frt_model_max_seq(rt))
		return model_fail(EINVAL, "CCDS: %d positions to embed a window, the model holds %d", et,
		                  frt_model_max_seq(rt));
	uint64_t rng = o ? o->seed : 0;
	out->n = cand->n;
	out->dim = cfg->dim;
	out->k = k;
	out->emb = malloc((size_t)cand->n * cfg->dim * sizeof *out->emb);
	out->cluster = malloc((size_t)cand->n * sizeof *out->cluster);
	float *states = malloc(((size_t)cfg->n_layers + 1) * cfg->dim * sizeof *states);
	int rc = out->emb && out->cluster && states ? 0 : model_fail(ENOMEM, "out of memory for CCDS");
	for (int i = 0; !rc && i < cand->n; i++)
		rc = embed(rt, cand->ids + (size_t)i * cand->len, et, states,
		           out->emb + (size_t)i * cfg->dim);
	free(states);
	if (!rc)
		rc = kmeans(out->emb, cand->n, cfg->dim, k, &rng, out->cluster, &out->iterations);
	if (!rc)
		rc = draw(out, samples, &rng);
	if (rc)
		prune_ccds_free(out);
	return rc;
}
