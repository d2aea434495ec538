/* The fitness of a mask of removed layers on the calibration sample.
 *
 * The runtime skips the removed layers (frt_model_skip_parts: whole
 * layers, or a layer's attention or FFN alone), so no model is written
 * per mask.  Layers before a mask's first removed one
 * compute what the full model computes, so the full model's residual
 * stream is kept at every layer boundary and position, and a mask starts
 * each position at its first removed layer (frt_forward_from): a mask
 * that removes layers 14 and 20 of 22 runs 6 of them.  The full pass also
 * gives the reference distributions for KL and each block's influence. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <flexmodel/prune.h>

#include "internal.h"

struct prune_eval {
	frt_model *rt;
	int fitness;
	int n_layers, dim, vocab;
	int n_win, len;              /* windows, and tokens in each (BOS first) */
	int *ids;                    /* [n_win][len] */
	float *states;               /* [n_win][len - 1][n_layers + 1][dim] */
	float *logp;                 /* KL: [n_win][len - 1][vocab], the full model's */
	double *bi;                  /* [n_layers] */
	double full;                 /* the full model's score */
	int count;
	unsigned char *skip;
};

/* ln sum exp of logits, in double. */
static double lse(const float *logits, int n)
{
	float mx = logits[0];
	for (int i = 1; i < n; i++)
		mx = logits[i] > mx ? logits[i] : mx;
	double s = 0;
	for (int i = 0; i < n; i++)
		s += exp((double)logits[i] - mx);
	return log(s) + mx;
}

static float *states_at(const prune_eval *e, int w, int pos)
{
	return e->states + (((size_t)w * (e->len - 1) + pos) * (e->n_layers + 1)) * e->dim;
}

static double cosine(const float *a, const float *b, int n)
{
	double ab = 0, aa = 0, bb = 0;
	for (int i = 0; i < n; i++) {
		ab += (double)a[i] * b[i];
		aa += (double)a[i] * a[i];
		bb += (double)b[i] * b[i];
	}
	return aa > 0 && bb > 0 ? ab / sqrt(aa * bb) : 1.0;
}

/* The full model over every window: states, reference distributions, the
 * full model's perplexity and each block's influence. */
static int full_pass(prune_eval *e)
{
	double nll = 0;
	frt_model_skip_layers(e->rt, NULL);
	for (int w = 0; w < e->n_win; w++)
		for (int pos = 0; pos + 1 < e->len; pos++) {
			const int *ids = e->ids + (size_t)w * e->len;
			float *st = states_at(e, w, pos);
			frt_model_record_states(e->rt, st);
			const float *logits = frt_forward(e->rt, ids[pos], pos);
			frt_model_record_states(e->rt, NULL);
			if (!logits)
				return model_fail(EINVAL, "the full model: %s", frt_last_error());
			const double z = lse(logits, e->vocab);
			nll += z - logits[ids[pos + 1]];
			if (e->logp) {
				float *lp = e->logp + ((size_t)w * (e->len - 1) + pos) * e->vocab;
				for (int v = 0; v < e->vocab; v++)
					lp[v] = (float)(logits[v] - z);
			}
			for (int l = 0; l < e->n_layers; l++)
				e->bi[l] += 1.0 - cosine(st + (size_t)l * e->dim, st + (size_t)(l + 1) * e->dim,
				                         e->dim);
		}
	const double n = (double)e->n_win * (e->len - 1);
	for (int l = 0; l < e->n_layers; l++)
		e->bi[l] /= n;
	e->full = e->fitness == PRUNE_FITNESS_KL ? 0.0 : exp(nll / n);
	return 0;
}

prune_eval *prune_eval_create(frt_model *rt, const struct prune_windows *w, const int *chosen,
                              int n_chosen, int fitness)
{
	const struct frt_config *c = frt_model_config(rt);
	if (n_chosen < 1 || w->len < 2 || w->len > frt_model_max_seq(rt)) {
		model_fail(EINVAL, "fitness: %d windows of %d tokens (the model holds %d positions)",
		           n_chosen, w->len, frt_model_max_seq(rt));
		return NULL;
	}
	prune_eval *e = calloc(1, sizeof *e);
	if (!e) {
		model_fail(ENOMEM, "out of memory");
		return NULL;
	}
	e->rt = rt;
	e->fitness = fitness;
	e->n_layers = c->n_layers;
	e->dim = c->dim;
	e->vocab = c->vocab_size;
	e->n_win = n_chosen;
	e->len = w->len;
	const size_t positions = (size_t)n_chosen * (w->len - 1);
	const size_t state_floats = positions * (c->n_layers + 1) * (size_t)c->dim;
	e->ids = malloc((size_t)n_chosen * w->len * sizeof *e->ids);
	e->states = malloc(state_floats * sizeof *e->states);
	e->bi = calloc((size_t)c->n_layers, sizeof *e->bi);
	e->skip = calloc((size_t)c->n_layers, 1);
	if (fitness == PRUNE_FITNESS_KL)
		e->logp = malloc(positions * (size_t)c->vocab_size * sizeof *e->logp);
	if (!e->ids || !e->states || !e->bi || !e->skip || (fitness == PRUNE_FITNESS_KL && !e->logp)) {
		model_fail(ENOMEM, "out of memory for the fitness of %zu positions (%zu MiB of hidden "
		           "states%s)", positions, state_floats * sizeof(float) >> 20,
		           fitness == PRUNE_FITNESS_KL ? " and the full model's distributions" : "");
		prune_eval_destroy(e);
		return NULL;
	}
	for (int i = 0; i < n_chosen; i++) {
		if (chosen[i] < 0 || chosen[i] >= w->n) {
			model_fail(EINVAL, "fitness: window %d of %d", chosen[i], w->n);
			prune_eval_destroy(e);
			return NULL;
		}
		memcpy(e->ids + (size_t)i * w->len, w->ids + (size_t)chosen[i] * w->len,
		       (size_t)w->len * sizeof *e->ids);
	}
	if (full_pass(e)) {
		prune_eval_destroy(e);
		return NULL;
	}
	return e;
}

void prune_eval_destroy(prune_eval *e)
{
	if (!e)
		return;
	if (e->rt)
		frt_model_skip_layers(e->rt, NULL);
	free(e->ids);
	free(e->states);
	free(e->logp);
	free(e->bi);
	free(e->skip);
	free(e);
}

int prune_eval_score(prune_eval *e, const unsigned char *drop, double *score)
{
	for (int l = 0; drop && l < e->n_layers; l++)
		e->skip[l] = drop[l] ? FRT_SKIP_ATTN | FRT_SKIP_FFN : 0;
	return prune_eval_score_parts(e, drop ? e->skip : NULL, score);
}

int prune_eval_score_parts(prune_eval *e, const unsigned char *parts, double *score)
{
	int first = e->n_layers;
	for (int l = e->n_layers - 1; parts && l >= 0; l--)
		if (parts[l])
			first = l;
	if (first == e->n_layers) {
		*score = e->full;
		return 0;
	}
	if (frt_model_skip_parts(e->rt, parts))
		return model_fail(EINVAL, "%s", frt_last_error());
	double sum = 0;
	int rc = 0;
	for (int w = 0; !rc && w < e->n_win; w++)
		for (int pos = 0; pos + 1 < e->len; pos++) {
			const int *ids = e->ids + (size_t)w * e->len;
			const float *logits = frt_forward_from(e->rt, states_at(e, w, pos) +
			                                       (size_t)first * e->dim, first, pos);
			if (!logits) {
				rc = model_fail(EINVAL, "scoring a mask: %s", frt_last_error());
				break;
			}
			const double z = lse(logits, e->vocab);
			if (e->fitness == PRUNE_FITNESS_KL) {
				const float *lp = e->logp + ((size_t)w * (e->len - 1) + pos) * e->vocab;
				double kl = 0;
				for (int v = 0; v < e->vocab; v++)
					kl += exp((double)lp[v]) * ((double)lp[v] - (logits[v] - z));
				sum += kl;
			} else {
				sum += z - logits[ids[pos + 1]];
			}
		}
	frt_model_skip_layers(e->rt, NULL);
	if (rc)
		return rc;
	const double mean = sum / ((double)e->n_win * (e->len - 1));
	*score = e->fitness == PRUNE_FITNESS_KL ? mean : exp(mean);
	e->count++;
	return 0;
}

int prune_eval_count(const prune_eval *e)
{
	return e->count;
}

void prune_eval_influence(const prune_eval *e, double *bi)
{
	memcpy(bi, e->bi, (size_t)e->n_layers * sizeof *bi);
}

double prune_eval_full(const prune_eval *e)
{
	return e->full;
}

int prune_eval_layers(const prune_eval *e)
{
	return e->n_layers;
}
