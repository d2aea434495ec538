/* bench/prune_units: is removing a layer's attention or FFN alone better
 * than removing whole decoder blocks, at equal bytes removed?
 *
 *   prune_units MODEL TOKENIZER CALIB HELDOUT [MAX_K [SEED]]
 *
 * The calibration sample is flexpage prune's at its defaults (windows of
 * 64 tokens, 64 candidates, CCDS with 8 clusters and 8 windows drawn,
 * seed SEED, 1) and the fitness its default (KL from the full model).  Every
 * mask of sub-blocks is scored (4^layers of them: each layer keeps both
 * parts, loses its attention, its FFN or both).  For K = 1..MAX_K (3) the
 * bytes of K whole blocks are the target; a mask is of equal bytes when
 * it removes from 99 % to 110 % of them (no fewer than K blocks, give or
 * take 1 %: sub-blocks come in other sizes, so an exact match is rare).  For each unit (block:
 * whole layers; attn: attention sub-blocks only; ffn: FFN only; sub: any
 * mix) the equal-bytes mask of the lowest calibration KL is the unit's
 * choice, and its perplexity on HELDOUT is measured as flexpage
 * perplexity measures it (paragraphs, windows of BOS + up to seq_len - 1
 * tokens).  CSV on stdout:
 *   k,unit,masks,removed,removed_bytes,target_bytes,calib_kl,heldout_ppl,heldout_se
 * with removed as layers ("2"), attention ("1a") and FFN ("3f") parts. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <flexmodel/model.h>
#include <flexmodel/prune.h>
#include <flexrt/runtime.h>

#include "../tools/flexpage/text_input.h"

enum { WINDOW = 64, CANDIDATES = 64, ALL = FRT_SKIP_ATTN | FRT_SKIP_FFN };

static void die(const char *what, const char *msg)
{
	fprintf(stderr, "prune_units: %s: %s\n", what, msg);
	exit(1);
}

static void encode_file(const char *path, const frt_tokenizer *tok, struct encoded *e)
{
	char err[512];
	size_t n = 0;
	char *text = read_text("text", path, 0, &n, err, sizeof err);
	if (!text)
		die(path, err);
	if (encode_text(tok, text, n, e, err, sizeof err))
		die(path, err);
	free(text);
}

/* Perplexity over e with rt's current mask, as flexpage perplexity
 * computes it (the same score_windows; the K = 0 row equals flexpage
 * perplexity's, prune_quality.md). */
static void heldout(frt_model *rt, const struct encoded *e, int bos, double *ppl, double *se)
{
	struct nll_tally t = {0};
	char err[512];
	if (score_windows(rt, e, bos, frt_model_max_seq(rt), NULL, NULL, NULL, &t, err, sizeof err))
		die("held-out text", err);
	*ppl = tally_perplexity(&t, se);
}

static void print_parts(const unsigned char *parts, int n)
{
	int first = 1;
	for (int l = 0; l < n; l++) {
		if (!parts[l])
			continue;
		printf(first ? "" : ";");
		first = 0;
		printf(parts[l] == ALL ? "%d" : parts[l] == FRT_SKIP_ATTN ? "%da" : "%df", l);
	}
}

/* Which units a mask is made of: block, attn, ffn, or only sub (mixed). */
static int of_unit(const unsigned char *parts, int n, int unit)
{
	static const int allowed[] = {ALL, FRT_SKIP_ATTN, FRT_SKIP_FFN, -1};
	for (int l = 0; unit < 3 && l < n; l++)
		if (parts[l] && parts[l] != allowed[unit])
			return 0;
	return 1;
}

int main(int argc, char **argv)
{
	if (argc < 5 || argc > 7) {
		fprintf(stderr, "usage: prune_units MODEL TOKENIZER CALIB HELDOUT [MAX_K [SEED]]\n");
		return 2;
	}
	const int max_k = argc >= 6 ? atoi(argv[5]) : 3;
	const uint64_t seed = argc == 7 ? strtoull(argv[6], NULL, 10) : 1;
	struct model m;
	const struct model_options mo = {.load = MODEL_LOAD_RESIDENT};
	if (model_open(&m, argv[1], &mo))
		die(argv[1], model_last_error());
	const int n = m.cfg.n_layers;
	if (n > 8 || max_k < 1 || max_k >= n)
		die(argv[1], "4^layers masks: at most 8 layers, and MAX_K below the layers");
	frt_tokenizer *tok = frt_tokenizer_load(argv[2], m.cfg.vocab_size);
	if (!tok)
		die(argv[2], frt_last_error());
	const int bos = frt_tokenizer_bos(tok);
	struct encoded calib = {0}, held = {0};
	encode_file(argv[3], tok, &calib);
	encode_file(argv[4], tok, &held);

	const struct frt_options fo = {2, 0};
	frt_model *rt = frt_model_create(&m.cfg, &m.weights, &fo);
	if (!rt)
		die(argv[1], frt_last_error());
	struct prune_windows win = {0};
	struct prune_ccds cc = {0};
	const struct prune_ccds_options co = {.seed = seed};
	if (prune_windows_cut(calib.ids, calib.para, calib.n_para, bos, WINDOW, CANDIDATES, &win) ||
	    prune_ccds(rt, &win, &co, &cc))
		die(argv[3], model_last_error());
	prune_eval *ev = prune_eval_create(rt, &win, cc.chosen, cc.n_chosen, PRUNE_FITNESS_KL);
	if (!ev)
		die(argv[3], model_last_error());

	/* every mask: its KL and the bytes it removes */
	const uint64_t full = frt_model_bytes_per_token(rt);
	size_t n_masks = 1;
	for (int l = 0; l < n; l++)
		n_masks *= 4;
	double *kl = malloc(n_masks * sizeof *kl);
	uint64_t *removed = malloc(n_masks * sizeof *removed);
	if (!kl || !removed)
		die("masks", "out of memory");
	unsigned char parts[8];
	for (size_t i = 0; i < n_masks; i++) {
		for (int l = 0; l < n; l++)
			parts[l] = (unsigned char)(i >> (2 * l) & 3);
		kl[i] = INFINITY;
		if (frt_model_skip_parts(rt, parts))
			continue;                /* everything removed */
		removed[i] = full - frt_model_bytes_per_token(rt);
		frt_model_skip_parts(rt, NULL);
		if (prune_eval_score_parts(ev, parts, &kl[i]))
			die("scoring", model_last_error());
	}
	memset(parts, 0, sizeof parts);
	parts[0] = ALL;
	frt_model_skip_parts(rt, parts);
	const uint64_t block = full - frt_model_bytes_per_token(rt);
	frt_model_skip_parts(rt, NULL);

	double ppl, se;
	heldout(rt, &held, bos, &ppl, &se);
	printf("k,unit,masks,removed,removed_bytes,target_bytes,calib_kl,heldout_ppl,heldout_se\n");
	printf("0,none,1,,0,0,0,%.4f,%.4f\n", ppl, se);
	static const char *units[] = {"block", "attn", "ffn", "sub"};
	for (int k = 1; k <= max_k; k++) {
		const uint64_t target = block * (uint64_t)k;
		for (int u = 0; u < 4; u++) {
			size_t best = 0, count = 0;
			for (size_t i = 1; i < n_masks; i++) {
				for (int l = 0; l < n; l++)
					parts[l] = (unsigned char)(i >> (2 * l) & 3);
				if (isinf(kl[i]) || !of_unit(parts, n, u) ||
				    removed[i] < target - target / 100 || removed[i] > target + target / 10)
					continue;
				count++;
				if (!best || kl[i] < kl[best])
					best = i;
			}
			printf("%d,%s,%zu,", k, units[u], count);
			if (!best) {
				printf(",,%llu,,,\n", (unsigned long long)target);
				continue;
			}
			for (int l = 0; l < n; l++)
				parts[l] = (unsigned char)(best >> (2 * l) & 3);
			print_parts(parts, n);
			frt_model_skip_parts(rt, parts);
			heldout(rt, &held, bos, &ppl, &se);
			frt_model_skip_parts(rt, NULL);
			printf(",%llu,%llu,%.6g,%.4f,%.4f\n", (unsigned long long)removed[best],
			       (unsigned long long)target, kl[best], ppl, se);
			fflush(stdout);
		}
	}
	free(kl);
	free(removed);
	prune_eval_destroy(ev);
	prune_ccds_free(&cc);
	prune_windows_free(&win);
	frt_model_destroy(rt);
	free(calib.ids);
	free(calib.para);
	free(held.ids);
	free(held.para);
	frt_tokenizer_destroy(tok);
	model_close(&m);
	return 0;
}
