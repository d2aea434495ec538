/* Which K layers to remove: EvoP's evolutionary pruning-pattern search
 * (EPPS) and the baselines it is measured against.
 *
 * A mask is n_layers bytes, 1 for a removed layer, always with exactly K
 * ones.  Every distinct mask is scored once (a table of the masks seen),
 * so the evaluations counted are the fitness passes run.
 *
 * EPPS: a population of P masks (the first holds the last-K and the
 * least-influence masks, the rest random); each generation makes P
 * children, each from two different parents chosen by binary tournament:
 * with the crossover chance K of the layers either parent removes (a
 * combination not seen yet, when a few draws find one), else the first
 * parent; then, with the mutation chance, a removed layer swapped for a
 * kept one, again with the same chance, up to K swaps; a child that was
 * seen already is mutated again (a few tries) so the generation spends
 * its evaluations on new masks.  The P best of parents and children
 * survive, so the best mask is never lost (elitism).  The search stops
 * after G generations, or after `patience` generations without a better
 * best, or when no new child can be made. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <flexmodel/prune.h>

#include "internal.h"

static const char *const method_names[] = {"evop", "last", "influence", "random", "exhaustive"};

int prune_method_parse(const char *name)
{
	for (int i = 0; i < (int)(sizeof method_names / sizeof method_names[0]); i++)
		if (!strcmp(name, method_names[i]))
			return i;
	return model_fail(EINVAL, "--method: '%s' is not evop, last, influence, random or exhaustive",
	                  name);
}

const char *prune_method_name(int method)
{
	return method >= 0 && method < (int)(sizeof method_names / sizeof method_names[0])
	               ? method_names[method] : "unknown";
}

uint64_t prune_masks(int n, int k)
{
	if (k < 0 || k > n)
		return 0;
	k = k < n - k ? k : n - k;
	uint64_t c = 1;
	for (int i = 1; i <= k; i++) {
		/* c * (n - k + i) / i stays exact: c is C(n - k + i - 1, i - 1) */
		const uint64_t m = (uint64_t)(n - k + i);
		if (c > UINT64_MAX / m)
			return UINT64_MAX;
		c = c * m / (uint64_t)i;
	}
	return c;
}

/* The masks scored so far and their scores. */
struct seen {
	int n;                       /* layers */
	int count, cap;
	unsigned char *masks;        /* [cap][n] */
	double *scores;
};

static int seen_find(const struct seen *s, const unsigned char *m)
{
	for (int i = 0; i < s->count; i++)
		if (!memcmp(s->masks + (size_t)i * s->n, m, (size_t)s->n))
			return i;
	return -1;
}

struct search {
	prune_eval *e;
	const struct prune_search_options *o;
	int n, k;
	struct seen seen;
	int best;                    /* index into seen */
	uint64_t rng;
};

/* The score of mask m, scored now if it is new.  *fresh (may be NULL)
 * says whether it was. */
static int score(struct search *s, const unsigned char *m, double *out, int *fresh)
{
	const int at = seen_find(&s->seen, m);
	if (fresh)
		*fresh = at < 0;
	if (at >= 0) {
		*out = s->seen.scores[at];
		return 0;
	}
	struct seen *sn = &s->seen;
	if (sn->count == sn->cap) {
		const int cap = sn->cap ? sn->cap * 2 : 64;
		unsigned char *nm = realloc(sn->masks, (size_t)cap * sn->n);
		if (nm)
			sn->masks = nm;
		double *ns = nm ? realloc(sn->scores, (size_t)cap * sizeof *ns) : NULL;
		if (!ns)
			return model_fail(ENOMEM, "out of memory for %d masks", cap);
		sn->scores = ns;
		sn->cap = cap;
	}
	const int rc = prune_eval_score(s->e, m, out);
	if (rc)
		return rc;
	memcpy(sn->masks + (size_t)sn->count * sn->n, m, (size_t)sn->n);
	sn->scores[sn->count] = *out;
	if (s->best < 0 || *out < sn->scores[s->best])
		s->best = sn->count;
	sn->count++;
	if (s->o->on_mask)
		s->o->on_mask(s->o->ctx, m, s->n, *out);
	return 0;
}

static void progress(struct search *s, int step, int steps)
{
	if (s->o->progress)
		s->o->progress(s->o->ctx, step, steps, s->seen.count, s->seen.scores[s->best]);
}

/* ---- the baselines ---------------------------------------------------- */

static void last_mask(struct search *s, unsigned char *m)
{
	memset(m, 0, (size_t)s->n);
	memset(m + s->n - s->k, 1, (size_t)s->k);
}

/* The K layers of least block influence (ties: the later layer). */
static void influence_mask(struct search *s, unsigned char *m)
{
	double bi[FRT_MAX_LAYERS];
	memset(m, 0, (size_t)s->n);
	prune_eval_influence(s->e, bi);
	for (int j = 0; j < s->k; j++) {
		int pick = -1;
		for (int l = s->n - 1; l >= 0; l--)
			if (!m[l] && (pick < 0 || bi[l] < bi[pick]))
				pick = l;
		m[pick] = 1;
	}
}

/* A baseline of one mask: the one make() makes. */
static int search_one(struct search *s, void (*make)(struct search *, unsigned char *))
{
	unsigned char m[FRT_MAX_LAYERS];
	make(s, m);
	double f;
	const int rc = score(s, m, &f, NULL);
	if (!rc)
		progress(s, 1, 1);
	return rc;
}

static void random_mask(struct search *s, unsigned char *m)
{
	memset(m, 0, (size_t)s->n);
	for (int j = 0; j < s->k;) { /* K distinct layers */
		const int l = prune_rand_below(&s->rng, s->n);
		if (!m[l]) {
			m[l] = 1;
			j++;
		}
	}
}

static int search_random(struct search *s)
{
	const uint64_t space = prune_masks(s->n, s->k);
	int trials = s->o->trials > 0 ? s->o->trials : 32;
	if ((uint64_t)trials > space)
		trials = (int)space;
	unsigned char *m = malloc((size_t)s->n);
	if (!m)
		return model_fail(ENOMEM, "out of memory");
	int rc = 0;
	/* distinct masks: a repeat is drawn again (the space holds enough) */
	for (int t = 0; !rc && s->seen.count < trials && t < trials * 64; t++) {
		random_mask(s, m);
		double f;
		int fresh;
		rc = score(s, m, &f, &fresh);
		if (!rc && fresh)
			progress(s, s->seen.count, trials);
	}
	free(m);
	return rc;
}

static int search_exhaustive(struct search *s)
{
	const uint64_t space = prune_masks(s->n, s->k);
	const uint64_t limit = s->o->max_masks ? s->o->max_masks : 20000;
	if (space > limit)
		return model_fail(EINVAL, "exhaustive search over %llu masks (%d of %d layers) is above "
		                  "the limit of %llu: use --method evop, or --max-masks", (unsigned long long)space,
		                  s->k, s->n, (unsigned long long)limit);
	int *idx = malloc((size_t)s->k * sizeof *idx);
	unsigned char *m = malloc((size_t)s->n);
	if (!idx || !m) {
		free(idx);
		free(m);
		return model_fail(ENOMEM, "out of memory");
	}
	for (int j = 0; j < s->k; j++)
		idx[j] = j;
	int rc = 0;
	for (;;) { /* the combinations in lexicographic order */
		memset(m, 0, (size_t)s->n);
		for (int j = 0; j < s->k; j++)
			m[idx[j]] = 1;
		double f;
		if ((rc = score(s, m, &f, NULL)))
			break;
		progress(s, s->seen.count, (int)space);
		int j = s->k - 1;
		while (j >= 0 && idx[j] == s->n - s->k + j)
			j--;
		if (j < 0)
			break;
		idx[j]++;
		for (int i = j + 1; i < s->k; i++)
			idx[i] = idx[i - 1] + 1;
	}
	free(idx);
	free(m);
	return rc;
}

/* ---- EPPS ------------------------------------------------------------- */

/* Swap one removed layer of m for one kept layer. */
static void swap_one(struct search *s, unsigned char *m)
{
	int r = prune_rand_below(&s->rng, s->k), q = prune_rand_below(&s->rng, s->n - s->k);
	for (int l = 0; l < s->n; l++) {
		if (m[l] && r-- == 0) {
			r = l;
			break;
		}
	}
	for (int l = 0; l < s->n; l++) {
		if (!m[l] && q-- == 0) {
			q = l;
			break;
		}
	}
	m[r] = 0;
	m[q] = 1;
}

/* K of the layers parents a and b remove, at random: a combination not
 * seen yet when a few draws find one. */
static void crossover(struct search *s, const unsigned char *a, const unsigned char *b,
                      unsigned char *child)
{
	int pool[FRT_MAX_LAYERS], np = 0;
	for (int l = 0; l < s->n; l++)
		if (a[l] || b[l])
			pool[np++] = l;
	for (int t = 0; t < 8; t++) {
		memset(child, 0, (size_t)s->n);
		for (int j = 0; j < s->k; j++) { /* a partial Fisher-Yates draw */
			const int r = j + prune_rand_below(&s->rng, np - j);
			const int x = pool[j];
			pool[j] = pool[r];
			pool[r] = x;
			child[pool[j]] = 1;
		}
		if (seen_find(&s->seen, child) < 0)
			break;
	}
}

/* Binary tournament over pop[0..p), skipping index not (-1: none). */
static int tournament(struct search *s, const int *pop, int p, int not)
{
	int pick[2];
	for (int i = 0; i < 2; i++) {
		int j = prune_rand_below(&s->rng, p - (not >= 0));
		for (int q = 0; q < p; q++)
			if (pop[q] != not && j-- == 0) {
				pick[i] = pop[q];
				break;
			}
	}
	return s->seen.scores[pick[0]] <= s->seen.scores[pick[1]] ? pick[0] : pick[1];
}

/* Sort indices into seen by score, ties by index (insertion: a few dozen). */
static void sort_by_score(const struct search *s, int *v, int n)
{
	for (int i = 1; i < n; i++) {
		const int x = v[i];
		const double fx = s->seen.scores[x];
		int j = i;
		for (; j > 0 && (s->seen.scores[v[j - 1]] > fx ||
		                 (s->seen.scores[v[j - 1]] == fx && v[j - 1] > x)); j--)
			v[j] = v[j - 1];
		v[j] = x;
	}
}

static int in_list(const int *list, int n, int v)
{
	for (int i = 0; i < n; i++)
		if (list[i] == v)
			return 1;
	return 0;
}

static int search_evop(struct search *s, int *generations)
{
	const struct prune_search_options *o = s->o;
	const uint64_t space = prune_masks(s->n, s->k);
	int p = o->population > 0 ? o->population : 8;
	/* a population that holds a large share of the masks is an
	 * exhaustive search by another name */
	if (o->population <= 0 && (uint64_t)p > space / 5)
		p = (int)(space / 5);
	p = p < 2 ? 2 : p;
	if ((uint64_t)p > space)
		p = (int)space;
	const int gens = o->generations > 0 ? o->generations : 12;
	const int patience = o->patience > 0 ? o->patience : 2;
	const double px = o->crossover >= 0 ? o->crossover : 1.0;
	const double pm = o->mutation >= 0 ? o->mutation : 0.1;
	int *pop = malloc((size_t)p * 3 * sizeof *pop), *next = pop + p, np = 0;
	unsigned char *m = malloc((size_t)s->n);
	if (!pop || !m) {
		free(pop);
		free(m);
		return model_fail(ENOMEM, "out of memory");
	}
	int rc = 0;
	double f;
	/* the first population: the heuristics' masks, then random ones */
	for (int t = 0; !rc && np < p && t < 64 * p; t++) {
		if (t == 0 && !o->no_heuristic_seeds)
			influence_mask(s, m);
		else if (t == 1 && !o->no_heuristic_seeds)
			last_mask(s, m);
		else
			random_mask(s, m);
		int fresh;
		rc = score(s, m, &f, &fresh);
		if (!rc && fresh)
			pop[np++] = s->seen.count - 1;
	}
	progress(s, 0, gens);
	int stale = 0, g = 0;
	while (!rc && g < gens && stale < patience) {
		g++;
		const int best_before = s->best;
		int nc = 0, *kids = pop + 2 * p;
		for (int c = 0; !rc && c < p; c++) {
			/* two different parents, each the better of two at random */
			const int a = tournament(s, pop, np, -1);
			const int b = np > 1 ? tournament(s, pop, np, a) : a;
			const unsigned char *ma = s->seen.masks + (size_t)a * s->n;
			const unsigned char *mb = s->seen.masks + (size_t)b * s->n;
			if (prune_rand_unit(&s->rng) < px)
				crossover(s, ma, mb, m);
			else
				memcpy(m, ma, (size_t)s->n);
			for (int j = 0; j < s->k && prune_rand_unit(&s->rng) < pm; j++)
				swap_one(s, m);
			/* a mask seen already costs nothing and teaches nothing: try
			 * a few mutations of it for a new one */
			for (int t = 0; t < 16 && seen_find(&s->seen, m) >= 0; t++)
				swap_one(s, m);
			int fresh;
			rc = score(s, m, &f, &fresh);
			if (!rc && fresh)
				kids[nc++] = s->seen.count - 1;
		}
		if (rc)
			break;
		/* (mu + lambda): the p best of parents and children */
		int all = 0, *cand = malloc((size_t)(np + nc) * sizeof *cand);
		if (!cand) {
			rc = model_fail(ENOMEM, "out of memory");
			break;
		}
		for (int i = 0; i < np; i++)
			cand[all++] = pop[i];
		for (int i = 0; i < nc; i++)
			if (!in_list(cand, all, kids[i]))
				cand[all++] = kids[i];
		sort_by_score(s, cand, all);
		np = all < p ? all : p;
		memcpy(next, cand, (size_t)np * sizeof *next);
		memcpy(pop, next, (size_t)np * sizeof *pop);
		free(cand);
		stale = s->best == best_before ? stale + 1 : 0;
		if (!nc) /* the neighbourhood is exhausted */
			stale = patience;
		progress(s, g, gens);
	}
	*generations = g;
	free(pop);
	free(m);
	return rc;
}

int prune_search(prune_eval *e, const struct prune_search_options *o, struct prune_result *r)
{
	memset(r, 0, sizeof *r);
	const int n = prune_eval_layers(e);
	if (o->drop < 1 || o->drop >= n)
		return model_fail(EINVAL, "--drop %d: a model of %d layers can lose 1 to %d of them",
		                  o->drop, n, n - 1);
	struct search s = {e, o, n, o->drop, {n, 0, 0, NULL, NULL}, -1, o->seed};
	/* a seed of 0 is as good as any other: splitmix64 mixes it */
	int rc;
	switch (o->method) {
	case PRUNE_EVOP: rc = search_evop(&s, &r->generations); break;
	case PRUNE_LAST: rc = search_one(&s, last_mask); break;
	case PRUNE_INFLUENCE: rc = search_one(&s, influence_mask); break;
	case PRUNE_RANDOM: rc = search_random(&s); break;
	case PRUNE_EXHAUSTIVE: rc = search_exhaustive(&s); break;
	default: rc = model_fail(EINVAL, "unknown method %d", o->method);
	}
	if (!rc && s.best < 0)
		rc = model_fail(EINVAL, "no mask was scored");
	if (!rc) {
		r->drop = malloc((size_t)n);
		if (!r->drop)
			rc = model_fail(ENOMEM, "out of memory");
	}
	if (!rc) {
		memcpy(r->drop, s.seen.masks + (size_t)s.best * n, (size_t)n);
		r->score = s.seen.scores[s.best];
		r->full_score = prune_eval_full(e);
		r->evaluations = s.seen.count;
	}
	free(s.seen.masks);
	free(s.seen.scores);
	return rc;
}

void prune_result_free(struct prune_result *r)
{
	free(r->drop);
	memset(r, 0, sizeof *r);
}
