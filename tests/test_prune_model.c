/* The model flexpage prune writes: its logits equal the float64
 * reference forward pass of the source checkpoint with the removed layers
 * skipped (tests/ref_forward.c, which shares no code with the runtime),
 * as an image, as a GGUF from the checkpoint and as a GGUF from a GGUF;
 * its metadata names what was removed; it has fewer tensors and bytes;
 * flexpage run and flexpage perplexity take it like any model.  The
 * runtime's sub-block mask equals the reference with those parts skipped. */
#include <criterion/criterion.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <flexmodel/model.h>
#include <flexpage/flexpage.h>
#include <flexrt/runtime.h>

#include "ref_forward.h"
#include "prune_fixture.h"
#include "rt_util.h"

#define STORIES PRUNE_STORIES
#define STORIES_GGUF PRUNE_MODELS "/stories260K.gguf"
#define TOK512 PRUNE_TOK512

static const char *dir, *calib;

static void setup(void)
{
	prune_fixture_init(40000, STORIES_GGUF);
	dir = prune_dir;
	calib = prune_calib;
}

TestSuite(prune_model, .init = setup, .fini = prune_fixture_fini, .timeout = 600);

/* The removed layers as the file's metadata says them: "1,3" into drop. */
static void parse_removed(const char *list, unsigned char *drop, int n)
{
	memset(drop, 0, (size_t)n);
	for (const char *p = list; *p;) {
		char *end;
		const long l = strtol(p, &end, 10);
		cr_assert(end != p && l >= 0 && l < n, "removed = '%s'", list);
		drop[l] = 1;
		p = *end == ',' ? end + 1 : end;
		cr_assert(*end == ',' || *end == 0, "removed = '%s'", list);
	}
}

static void removed_of(const char *path, unsigned char *drop, int n)
{
	fp_image *img = fp_image_open(path);
	cr_assert(img, "%s: %s", path, fp_last_error());
	const fp_gguf *g = fp_image_gguf(img);
	char list[256] = "";
	if (g) {
		int et;
		uint64_t k;
		const void *data;
		cr_assert_eq(fp_gguf_get_arr(g, "flexpage.prune.removed", &et, &k, &data), 0, "%s",
		             fp_last_error());
		cr_assert_eq(et, FP_GGUF_INT32);
		for (uint64_t i = 0; i < k; i++) {
			int32_t l;
			memcpy(&l, (const char *)data + 4 * i, 4);
			snprintf(list + strlen(list), sizeof list - strlen(list), "%s%d", i ? "," : "", l);
		}
		uint64_t src_layers;
		cr_assert_eq(fp_gguf_get_u64(g, "flexpage.prune.source_layers", &src_layers), 0);
		cr_expect_eq(src_layers, 5);
		const char *src;
		uint64_t len;
		cr_assert_eq(fp_gguf_get_str(g, "flexpage.prune.source", &src, &len), 0);
		cr_expect(strstr(src, "stories260K"), "source %s", src);
		double score;
		cr_expect_eq(fp_gguf_get_f64(g, "flexpage.prune.score", &score), 0);
		cr_expect(score > 0, "score %g", score);
	} else {
		cr_assert_eq(fp_image_meta(img, "prune.removed", list, sizeof list), 0);
		char v[4096];
		cr_assert_eq(fp_image_meta(img, "prune.source_layers", v, sizeof v), 0);
		cr_expect_str_eq(v, "5");
		cr_assert_eq(fp_image_meta(img, "prune.source", v, sizeof v), 0);
		cr_expect_str_eq(v, STORIES);
		cr_assert_eq(fp_image_meta(img, "prune.score", v, sizeof v), 0);
		cr_expect(strtod(v, NULL) > 0, "score %s", v);
	}
	fp_image_close(img);
	parse_removed(list, drop, n);
}

/* The pruned model's logits over a sequence against the float64 reference
 * of the source with those layers skipped; and the runtime's own mask on
 * the full model gives the file's logits bit for bit. */
/* Over a vocabulary of 512: the largest |got - ref| (the return), the
 * largest |ref| in *largest, and the largest |other - ref| raised into
 * *far. */
static double logit_gap(const float *got, const double *ref, const double *other,
                        double *largest, double *far)
{
	double mx = 0, diff = 0;
	for (int v = 0; v < 512; v++) {
		mx = fmax(mx, fabs(ref[v]));
		diff = fmax(diff, fabs(got[v] - ref[v]));
		*far = fmax(*far, fabs(other[v] - ref[v]));
	}
	*largest = mx;
	return diff;
}

static void expect_reference(const char *pruned, int k)
{
	unsigned char drop[5];
	removed_of(pruned, drop, 5);
	int removed = 0;
	for (int l = 0; l < 5; l++)
		removed += drop[l];
	cr_assert_eq(removed, k, "%s removes %d layers, asked %d", pruned, removed, k);

	struct model pm, fm;
	cr_assert_eq(model_open(&pm, pruned, NULL), 0, "%s", model_last_error());
	cr_assert_eq(pm.cfg.n_layers, 5 - k);
	cr_assert_eq(model_open(&fm, STORIES, NULL), 0, "%s", model_last_error());
	const struct frt_options o = {1, 96};
	frt_model *prt = frt_model_create(&pm.cfg, &pm.weights, &o);
	frt_model *frt = frt_model_create(&fm.cfg, &fm.weights, &o);
	cr_assert(prt && frt);
	cr_assert_eq(frt_model_skip_layers(frt, drop), 0);
	cr_expect_eq(frt_model_bytes_per_token(prt), frt_model_bytes_per_token(frt));

	struct ref_model rm;
	float *buf;
	cr_assert_eq(ref_load_llama2c(STORIES, &rm, &buf), 0);
	struct ref_state *rs = ref_create(&rm);
	ref_skip_layers(rs, drop);
	struct ref_state *full = ref_create(&rm);

	int token = 1;
	double far = 0;
	for (int pos = 0; pos < 96; pos++) {
		const float *lp = frt_forward(prt, token, pos);
		cr_assert(lp);
		const double *lr = ref_forward(rs, token, pos);
		const double *lf = ref_forward(full, token, pos);
		double mx;
		const double diff = logit_gap(lp, lr, lf, &mx, &far);
		cr_assert(diff <= 1e-4 * mx, "%s, position %d: logits %g from the reference (largest "
		          "%g)", pruned, pos, diff, mx);
		float copy[512];
		memcpy(copy, lp, sizeof copy);
		const float *lm = frt_forward(frt, token, pos);
		cr_assert_arr_eq(copy, lm, sizeof copy, "%s, position %d: the file and the mask differ",
		                 pruned, pos);
		token = frt_argmax(copy, 512); /* a greedy continuation */
	}
	/* the comparison could fail: the full model is far from the pruned one */
	cr_expect_gt(far, 1.0, "removing layers changed no logit");
	ref_destroy(rs);
	ref_destroy(full);
	free(buf);
	frt_model_destroy(prt);
	frt_model_destroy(frt);
	model_close(&pm);
	model_close(&fm);
}

Test(prune_model, image_logits_equal_the_reference_with_those_layers_skipped)
{
	const char *out = strdup(rt_path(dir, "p.img"));
	const int rc = rt_tool("prune", STORIES, "--calib", calib, "--drop", "2", "-o", out, "-q",
	                       NULL);
	cr_assert_eq(rc, 0, "exit %d: %s", rc, rt_err);
	expect_reference(out, 2);
	free((char *)out);
}

Test(prune_model, gguf_logits_equal_the_reference_with_those_layers_skipped)
{
	/* from the checkpoint (llama.cpp's keys written) and from the GGUF
	 * (its own keys copied), by two methods */
	const char *a = strdup(rt_path(dir, "a.gguf")), *b = strdup(rt_path(dir, "b.gguf"));
	int rc = rt_tool("prune", STORIES, "--calib", calib, "--drop", "1", "-o", a, "-q",
	                 "--method", "influence", NULL);
	cr_assert_eq(rc, 0, "exit %d: %s", rc, rt_err);
	rc = rt_tool("prune", STORIES_GGUF, "--calib", calib, "--drop", "3", "-o", b, "-q",
	             "--tokenizer", TOK512, NULL);
	cr_assert_eq(rc, 0, "exit %d: %s", rc, rt_err);
	expect_reference(a, 1);
	expect_reference(b, 3);

	/* the GGUF's own keys came along: its vocabulary, block_count changed */
	fp_gguf *src = fp_gguf_open(STORIES_GGUF), *g = fp_gguf_open(b);
	cr_assert(src && g, "%s", fp_last_error());
	uint64_t n_src, n, layers;
	cr_assert_eq(fp_gguf_get_arr(src, "tokenizer.ggml.tokens", NULL, &n_src, NULL), 0);
	cr_assert_eq(fp_gguf_get_arr(g, "tokenizer.ggml.tokens", NULL, &n, NULL), 0);
	cr_expect_eq(n, n_src);
	for (uint64_t i = 0; i < n; i += 37) {
		const char *s1, *s2;
		uint64_t l1, l2;
		cr_assert_eq(fp_gguf_arr_str(src, "tokenizer.ggml.tokens", i, &s1, &l1), 0);
		cr_assert_eq(fp_gguf_arr_str(g, "tokenizer.ggml.tokens", i, &s2, &l2), 0);
		cr_expect(l1 == l2 && !memcmp(s1, s2, l1), "token %llu", (unsigned long long)i);
	}
	cr_assert_eq(fp_gguf_get_u64(g, "llama.block_count", &layers), 0);
	cr_expect_eq(layers, 2);
	cr_expect_eq(fp_gguf_n_tensors(g), fp_gguf_n_tensors(src) - 3 * 9);
	fp_gguf_close(src);
	fp_gguf_close(g);
	free((char *)a);
	free((char *)b);
}

Test(prune_model, runs_in_run_and_perplexity_with_fewer_bytes)
{
	const char *out = strdup(rt_path(dir, "r.img"));
	int rc = rt_tool("prune", STORIES, "--calib", calib, "--drop", "1", "-o", out, NULL);
	cr_assert_eq(rc, 0, "exit %d: %s", rc, rt_err);
	cr_expect(strstr(rt_err, "best mask") && strstr(rt_err, "evaluations"), "no summary: %s",
	          rt_err);
	fp_image *src = NULL;
	char pack[4096];
	snprintf(pack, sizeof pack, "%s", rt_path(dir, "full.img"));
	cr_assert_eq(rt_tool("pack", STORIES, pack, NULL), 0, "%s", rt_err);
	src = fp_image_open(pack);
	fp_image *img = fp_image_open(out);
	cr_assert(src && img);
	cr_expect_eq(fp_image_info(img)->n_tensors, fp_image_info(src)->n_tensors - 9);
	uint64_t bytes[2] = {0, 0};
	for (int i = 0; i < 2; i++)
		for (uint32_t t = 0; t < fp_image_info(i ? src : img)->n_tensors; t++)
			bytes[i] += fp_image_tensor(i ? src : img, t)->size;
	/* one layer of the five: 7 matrices and 2 norms */
	const uint64_t layer = 4 * (2 * 64 * 64 + 2 * 32 * 64 + 3 * 64 * 172 + 2 * 64);
	cr_expect_eq(bytes[0], bytes[1] - layer, "tensors of %llu bytes, the source's %llu",
	             (unsigned long long)bytes[0], (unsigned long long)bytes[1]);
	fp_image_close(src);
	fp_image_close(img);

	rc = rt_tool("run", out, "--tokenizer", TOK512, "--prompt", "Once upon a time",
	             "--temperature", "0", "--steps", "40", NULL);
	cr_assert_eq(rc, 0, "run: exit %d: %s", rc, rt_err);
	cr_expect(strlen(rt_out) > 20, "run printed '%s'", rt_out);
	rc = rt_tool("perplexity", out, "--text", calib, "--tokenizer", TOK512, "--bytes", "8000",
	             "-q", NULL);
	cr_assert_eq(rc, 0, "perplexity: exit %d: %s", rc, rt_err);
	double ppl;
	const char *p = strstr(rt_out, "perplexity: ");
	cr_assert(p && sscanf(p, "perplexity: %lf", &ppl) == 1, "%s", rt_out);
	cr_expect(ppl > 4 && ppl < 512, "perplexity %g", ppl);
	free((char *)out);
}

/* The runtime's sub-block mask (frt_model_skip_parts, what bench/prune_units
 * measures removal by attention or FFN with) against the reference with
 * the same parts left out; the bytes a token reads drop by the parts'
 * matrices and norms, counted here from the shape. */
Test(prune_model, sub_block_mask_equals_the_reference_with_those_parts_skipped)
{
	const unsigned char masks[][5] = {
		{FRT_SKIP_ATTN, 0, FRT_SKIP_FFN, FRT_SKIP_ATTN | FRT_SKIP_FFN, 0},
		{FRT_SKIP_ATTN, FRT_SKIP_ATTN, FRT_SKIP_ATTN, FRT_SKIP_ATTN, FRT_SKIP_ATTN},
		{FRT_SKIP_FFN, FRT_SKIP_FFN, FRT_SKIP_FFN, FRT_SKIP_FFN, 0},
	};
	struct model fm;
	cr_assert_eq(model_open(&fm, STORIES, NULL), 0, "%s", model_last_error());
	const struct frt_options o = {1, 64};
	frt_model *rt = frt_model_create(&fm.cfg, &fm.weights, &o);
	cr_assert(rt);
	struct ref_model rm;
	float *buf;
	cr_assert_eq(ref_load_llama2c(STORIES, &rm, &buf), 0);
	const uint64_t d = (uint64_t)rm.dim, hd = (uint64_t)rm.hidden_dim;
	const uint64_t kv = d / (uint64_t)rm.n_heads * (uint64_t)rm.n_kv_heads;
	const uint64_t attn = 4 * (2 * d * d + 2 * d * kv + d), ffn = 4 * (3 * d * hd + d);
	const uint64_t full = frt_model_bytes_per_token(rt);

	for (size_t i = 0; i < sizeof masks / sizeof masks[0]; i++) {
		unsigned char ref_parts[5];
		uint64_t gone = 0;
		for (int l = 0; l < 5; l++) {
			ref_parts[l] = (unsigned char)((masks[i][l] & FRT_SKIP_ATTN ? REF_SKIP_ATTN : 0) |
			                               (masks[i][l] & FRT_SKIP_FFN ? REF_SKIP_FFN : 0));
			gone += (masks[i][l] & FRT_SKIP_ATTN ? attn : 0) +
			        (masks[i][l] & FRT_SKIP_FFN ? ffn : 0);
		}
		cr_assert_eq(frt_model_skip_parts(rt, masks[i]), 0, "%s", frt_last_error());
		cr_expect_eq(full - frt_model_bytes_per_token(rt), gone, "mask %zu: %llu bytes fewer, "
		             "expected %llu", i, (unsigned long long)(full - frt_model_bytes_per_token(rt)),
		             (unsigned long long)gone);
		struct ref_state *rs = ref_create(&rm), *whole = ref_create(&rm);
		ref_skip_parts(rs, ref_parts);
		unsigned char layers[5];
		for (int l = 0; l < 5; l++)
			layers[l] = masks[i][l] != 0;
		ref_skip_layers(whole, layers);
		int token = 1;
		double far = 0;
		for (int pos = 0; pos < 64; pos++) {
			const float *lp = frt_forward(rt, token, pos);
			cr_assert(lp);
			const double *lr = ref_forward(rs, token, pos);
			const double *lw = ref_forward(whole, token, pos);
			double mx;
			const double diff = logit_gap(lp, lr, lw, &mx, &far);
			cr_assert(diff <= 1e-4 * mx, "mask %zu, position %d: logits %g from the reference "
			          "(largest %g)", i, pos, diff, mx);
			token = frt_argmax(lp, 512);
		}
		/* a part is not its whole layer: the comparison could tell them apart */
		cr_expect_gt(far, 1.0, "mask %zu: skipping parts computed what skipping layers does", i);
		ref_destroy(rs);
		ref_destroy(whole);
	}
	const unsigned char bad[5] = {4, 0, 0, 0, 0};
	cr_expect_lt(frt_model_skip_parts(rt, bad), 0, "a value of other bits is taken");
	unsigned char all[5];
	memset(all, FRT_SKIP_ATTN | FRT_SKIP_FFN, sizeof all);
	cr_expect_lt(frt_model_skip_parts(rt, all), 0, "every part left out is taken");
	cr_expect(strstr(frt_last_error(), "at least one"), "%s", frt_last_error());
	free(buf);
	frt_model_destroy(rt);
	model_close(&fm);
}
