/* flexpage prune's search and its calibration sample on stories260K (5
 * layers): the evolutionary search finds the mask exhaustive search
 * finds, from every seed tried, and for K = 2 with fewer evaluations than
 * the C(5, 2) = 10 masks exhaustive search scores; CCDS gives the same
 * windows for a seed, draws from every cluster, leaves every window in its
 * nearest cluster, and embeds each window as the float64 reference's mean
 * last hidden state. */
#include <criterion/criterion.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <flexmodel/model.h>
#include <flexmodel/prune.h>
#include <flexrt/runtime.h>

#include "ref_forward.h"
#include "prune_fixture.h"
#include "rt_util.h"

#define STORIES PRUNE_STORIES
#define TOK512 PRUNE_TOK512
#define CALIB_BYTES 60000

static const char *dir, *calib;

static void setup(void)
{
	prune_fixture_init(CALIB_BYTES, NULL);
	dir = prune_dir;
	calib = prune_calib;
}

/* The stdout line of a search: the removed layers and the evaluations. */
struct found {
	char removed[64];
	int evaluations;
};

static struct found search(const char *method, int k, int seed)
{
	char ks[16], seeds[16];
	snprintf(ks, sizeof ks, "%d", k);
	snprintf(seeds, sizeof seeds, "%d", seed);
	const int rc = rt_tool("prune", STORIES, "--calib", calib, "--drop", ks, "--method", method,
	                       "--seed", seeds, "--dry-run", "--quiet", NULL);
	cr_assert_eq(rc, 0, "prune --method %s --drop %d --seed %d: exit %d: %s", method, k, seed,
	             rc, rt_err);
	struct found f = {"", -1};
	const char *r = strstr(rt_out, "removed="), *e = strstr(rt_out, "evaluations=");
	cr_assert(r && e, "no result line: %s", rt_out);
	cr_assert_eq(sscanf(r, "removed=%63[0-9,]", f.removed), 1, "%s", rt_out);
	cr_assert_eq(sscanf(e, "evaluations=%d", &f.evaluations), 1, "%s", rt_out);
	return f;
}

TestSuite(prune_search, .init = setup, .fini = prune_fixture_fini, .timeout = 900);

Test(prune_search, evop_finds_the_exhaustive_mask_from_every_seed)
{
	for (int k = 1; k <= 2; k++)
		for (int seed = 1; seed <= 8; seed++) {
			/* the sample depends on the seed, so the yardstick does too */
			const struct found ex = search("exhaustive", k, seed);
			cr_assert_eq(ex.evaluations, k == 1 ? 5 : 10, "exhaustive, K %d: %d masks", k,
			             ex.evaluations);
			const struct found ev = search("evop", k, seed);
			cr_expect_str_eq(ev.removed, ex.removed, "K %d, seed %d: evop removed %s, "
			                 "exhaustive %s", k, seed, ev.removed, ex.removed);
			cr_expect_leq(ev.evaluations, ex.evaluations, "K %d, seed %d", k, seed);
			if (k == 2)
				cr_expect_lt(ev.evaluations, 10, "K 2, seed %d: %d evaluations, exhaustive "
				             "search needs 10", seed, ev.evaluations);
		}
}

Test(prune_search, every_method_removes_k_layers)
{
	const char *methods[] = {"last", "influence", "random", "evop"};
	for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
		const struct found f = search(methods[i], 3, 7);
		int n = 0, prev = -1;
		for (const char *p = f.removed; *p;) {
			const int l = (int)strtol(p, (char **)&p, 10);
			cr_expect(l > prev && l < 5, "%s: %s", methods[i], f.removed);
			prev = l;
			n++;
			if (*p == ',')
				p++;
		}
		cr_expect_eq(n, 3, "%s removed %s", methods[i], f.removed);
	}
	cr_expect_str_eq(search("last", 2, 1).removed, "3,4");
}

/* ------------------------------------------------------------------ */
/* CCDS                                                                 */

/* The calibration text's tokens, paragraph by paragraph at blank lines,
 * as the test's own loop over the text. */
static size_t encode_paragraphs(const frt_tokenizer *tok, const char *text, size_t n, int *ids,
                                size_t *para, size_t *n_para)
{
	size_t at = 0, n_ids = 0;
	*n_para = 0;
	para[0] = 0;
	while (at < n) {
		const char *end = strstr(text + at, "\n\n");
		const size_t len = end ? (size_t)(end - (text + at)) : n - at;
		if (len) {
			const int k = frt_tokenizer_encode(tok, text + at, len, 0, 0, ids + n_ids,
			                                   (int)(len + 3));
			cr_assert_geq(k, 0);
			n_ids += (size_t)k;
			para[++*n_para] = n_ids;
		}
		at += len + 2;
	}
	return n_ids;
}

struct calib_fixture {
	struct model m;
	frt_model *rt;
	struct prune_windows win;
};

static void calib_open(struct calib_fixture *f)
{
	cr_assert_eq(model_open(&f->m, STORIES, NULL), 0, "%s", model_last_error());
	const struct frt_options o = {1, 64};
	f->rt = frt_model_create(&f->m.cfg, &f->m.weights, &o);
	cr_assert(f->rt);
	frt_tokenizer *tok = frt_tokenizer_load(TOK512, 512);
	cr_assert(tok);
	size_t n;
	char *text = rt_read_file(calib, &n);
	int *ids = malloc((n + 3) * sizeof *ids);
	size_t *para = malloc((n + 2) * sizeof *para), n_para;
	cr_assert(text && ids && para);
	encode_paragraphs(tok, text, n, ids, para, &n_para);
	cr_assert_eq(prune_windows_cut(ids, para, n_para, 1, 64, 48, &f->win), 0, "%s",
	             model_last_error());
	cr_assert_eq(f->win.n, 48);
	free(text);
	free(ids);
	free(para);
	frt_tokenizer_destroy(tok);
}

static void calib_close(struct calib_fixture *f)
{
	prune_windows_free(&f->win);
	frt_model_destroy(f->rt);
	model_close(&f->m);
}

Test(prune_search, ccds_is_deterministic_and_draws_from_every_cluster)
{
	struct calib_fixture f;
	calib_open(&f);
	const struct prune_ccds_options o = {.clusters = 6, .samples = 9, .embed_tokens = 16,
	                                     .seed = 42};
	struct prune_ccds a, b;
	cr_assert_eq(prune_ccds(f.rt, &f.win, &o, &a), 0, "%s", model_last_error());
	cr_assert_eq(prune_ccds(f.rt, &f.win, &o, &b), 0);
	cr_assert_eq(a.k, 6);
	cr_assert_eq(a.n_chosen, 9);
	cr_assert_eq(b.n_chosen, a.n_chosen);
	cr_expect_arr_eq(a.chosen, b.chosen, sizeof(int) * (size_t)a.n_chosen);
	cr_expect_arr_eq(a.cluster, b.cluster, sizeof(int) * (size_t)a.n);

	/* every cluster gives a window, and none gives two before all give one */
	int per[6] = {0};
	for (int i = 0; i < a.n_chosen; i++) {
		cr_assert(a.chosen[i] >= 0 && a.chosen[i] < a.n);
		if (i)
			cr_expect_gt(a.chosen[i], a.chosen[i - 1], "ascending, distinct");
		per[a.cluster[a.chosen[i]]]++;
	}
	int members[6] = {0};
	for (int p = 0; p < a.n; p++)
		members[a.cluster[p]]++;
	for (int j = 0; j < 6; j++) {
		cr_expect_geq(per[j], 1, "cluster %d gave no window", j);
		cr_expect(per[j] <= 2 || per[j] == members[j], "cluster %d gave %d of 9", j, per[j]);
	}

	/* k-means ended at a fixed point: each window is nearest the mean of
	 * its own cluster (recomputed here from the assignment) */
	const int d = a.dim;
	double *cent = calloc((size_t)6 * d, sizeof *cent);
	for (int p = 0; p < a.n; p++)
		for (int i = 0; i < d; i++)
			cent[(size_t)a.cluster[p] * d + i] += a.emb[(size_t)p * d + i] / members[a.cluster[p]];
	for (int p = 0; p < a.n; p++) {
		double own = 0, best = INFINITY;
		for (int j = 0; j < 6; j++) {
			double s = 0;
			for (int i = 0; i < d; i++) {
				const double x = a.emb[(size_t)p * d + i] - cent[(size_t)j * d + i];
				s += x * x;
			}
			if (j == a.cluster[p])
				own = s;
			best = s < best ? s : best;
		}
		cr_expect_leq(own, best + 1e-9, "window %d is nearer another cluster", p);
	}
	free(cent);

	/* another seed: still a valid draw (and, for this text, another one) */
	struct prune_ccds o2 = {0};
	const struct prune_ccds_options other = {.clusters = 6, .samples = 9, .seed = 43};
	cr_assert_eq(prune_ccds(f.rt, &f.win, &other, &o2), 0);
	cr_expect_eq(o2.n_chosen, 9);
	cr_expect(memcmp(a.chosen, o2.chosen, sizeof(int) * 9), "seeds 42 and 43 drew the same");
	prune_ccds_free(&a);
	prune_ccds_free(&b);
	prune_ccds_free(&o2);
	calib_close(&f);
}

Test(prune_search, ccds_embeddings_are_the_reference_hidden_states)
{
	struct calib_fixture f;
	calib_open(&f);
	const struct prune_ccds_options o = {.clusters = 4, .samples = 4, .embed_tokens = 16,
	                                     .seed = 1};
	struct prune_ccds a;
	cr_assert_eq(prune_ccds(f.rt, &f.win, &o, &a), 0, "%s", model_last_error());
	struct ref_model rm;
	float *buf;
	cr_assert_eq(ref_load_llama2c(STORIES, &rm, &buf), 0);
	struct ref_state *rs = ref_create(&rm);
	for (int w = 0; w < f.win.n; w += 7) {
		double mean[64] = {0}, norm = 0;
		for (int pos = 0; pos < 16; pos++) {
			ref_forward(rs, f.win.ids[(size_t)w * f.win.len + pos], pos);
			for (int i = 0; i < 64; i++)
				mean[i] += ref_hidden(rs)[i];
		}
		for (int i = 0; i < 64; i++)
			norm += mean[i] * mean[i];
		for (int i = 0; i < 64; i++)
			cr_expect(fabs(mean[i] / sqrt(norm) - a.emb[(size_t)w * 64 + i]) < 1e-4,
			          "window %d, value %d: %g, reference %g", w, i, a.emb[(size_t)w * 64 + i],
			          mean[i] / sqrt(norm));
	}
	ref_destroy(rs);
	free(buf);
	prune_ccds_free(&a);
	calib_close(&f);
}
