/* Compression-aware quantization and the codecs that store it: re-scaling
 * leaves the function unchanged (against the float64 reference), every
 * stored form decodes to the bytes its checksum states and pages as it
 * reads resident, pack --codec auto picks what a brute force picks, and
 * bad input fails with a message. */
#include <criterion/criterion.h>
#include <criterion/logging.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zstd.h>

#include <flexkern/kernels.h>
#include <flexmodel/model.h>
#include <flexpage/flexpage.h>

#include "ref_forward.h"
#include "rt_util.h"
#include "testutil.h"

#define STORIES FLEXPAGE_SHARED_MODELS "/stories260K.bin"
#define TOK FLEXPAGE_SHARED_MODELS "/tok512.bin"
#define TEXT FLEXPAGE_SHARED_MODELS "/../data/tinystories_val.txt"

static char *dir;

static void setup(void)
{
	dir = rt_tmpdir();
	cr_assert(dir, "no temporary directory");
	if (access(STORIES, R_OK) || access(TEXT, R_OK) || access(TOK, R_OK))
		cr_skip_test("%s, %s or %s is missing: these tests need the real model", STORIES, TEXT,
		             TOK);
}

static void teardown(void)
{
	rt_rmtree(dir);
	free(dir);
}

TestSuite(compress, .init = setup, .fini = teardown, .timeout = 600);

/* pack stories260K with the calibration held out of the first 400K */
static void pack(const char *out, const char *level, const char *quant, const char *codec,
                 const char *chunk, const char *extra1, const char *extra2)
{
	int rc = rt_tool("pack", STORIES, out, "--compressible", level, "--quant", quant, "--calib",
	                 TEXT, "--calib-skip", "400K", "--calib-tokens", "600", "--codec", codec,
	                 "--chunk", chunk, "-f", extra1, extra2, NULL);
	cr_assert_eq(rc, 0, "pack %s: %s", out, rt_err);
}

/* The floats of every tensor of an f32 model image, stacked over the
 * layers as llama2.c stacks them, for the reference. */
static float *stack_of(const struct model *m, struct ref_model *r)
{
	const struct frt_config *c = &m->cfg;
	const size_t d = (size_t)c->dim, hd = (size_t)c->hidden_dim, L = (size_t)c->n_layers;
	const size_t kv = d * (size_t)c->n_kv_heads / (size_t)c->n_heads, V = (size_t)c->vocab_size;
	float *buf = malloc(sizeof(float) * (V * d + 2 * L * d + 2 * L * d * d + 2 * L * kv * d +
	                                     3 * L * hd * d + d));
	float *p = buf;
	*r = (struct ref_model){.dim = c->dim, .hidden_dim = c->hidden_dim, .n_layers = c->n_layers,
	                        .n_heads = c->n_heads, .n_kv_heads = c->n_kv_heads,
	                        .vocab_size = c->vocab_size, .seq_len = c->seq_len};
#define PUT(field, n, src)                                                        \
	do {                                                                           \
		r->field = p;                                                              \
		for (size_t l = 0; l < L; l++, p += (n))                                   \
			memcpy(p, (src), (n) * sizeof(float));                                 \
	} while (0)
	cr_assert_eq(m->weights.token_embd.type, FK_F32);
	memcpy(p, m->weights.token_embd.data, V * d * sizeof(float));
	r->token_embedding = r->wcls = p;
	p += V * d;
	PUT(rms_att, d, m->layers[l].attn_norm);
	PUT(wq, d * d, m->layers[l].wq.data);
	PUT(wk, kv * d, m->layers[l].wk.data);
	PUT(wv, kv * d, m->layers[l].wv.data);
	PUT(wo, d * d, m->layers[l].wo.data);
	PUT(rms_ffn, d, m->layers[l].ffn_norm);
	PUT(w1, hd * d, m->layers[l].w1.data);
	PUT(w2, d * hd, m->layers[l].w2.data);
	PUT(w3, hd * d, m->layers[l].w3.data);
#undef PUT
	memcpy(p, m->weights.output_norm, d * sizeof(float));
	r->rms_final = p;
	return buf;
}

Test(compress, rescaling_alone_keeps_the_function)
{
	const char *img = rt_path(dir, "rescaled.img");
	pack(img, "6", "f32", "raw", "64K", NULL, NULL);
	struct model m = {0};
	const struct model_options mo = {.load = MODEL_LOAD_RESIDENT};
	cr_assert_eq(model_open(&m, img, &mo), 0, "%s", model_last_error());
	struct ref_model orig, scaled;
	float *obuf, *sbuf = stack_of(&m, &scaled);
	cr_assert_eq(ref_load_llama2c(STORIES, &orig, &obuf), 0);
	/* re-scaling changed the weights (else this test proves nothing) */
	double moved = 0;
	for (int j = 0; j < orig.dim; j++)
		moved = fmax(moved, fabs(orig.rms_att[j] - scaled.rms_att[j]) / fabs(orig.rms_att[j]));
	cr_assert_gt(moved, 0.05, "the attention norm moved by at most %g", moved);
	struct ref_state *a = ref_create(&orig), *b = ref_create(&scaled);
	const int ids[] = {1, 403, 261, 407, 258, 378, 66, 400, 301, 267, 72, 350, 259, 280, 46};
	double worst = 0, peak = 0;
	for (int pos = 0; pos < (int)(sizeof ids / sizeof ids[0]); pos++) {
		const double *x = ref_forward(a, ids[pos], pos);
		double *xa = malloc(sizeof(double) * (size_t)orig.vocab_size);
		memcpy(xa, x, sizeof(double) * (size_t)orig.vocab_size);
		const double *y = ref_forward(b, ids[pos], pos);
		for (int v = 0; v < orig.vocab_size; v++) {
			worst = fmax(worst, fabs(xa[v] - y[v]));
			peak = fmax(peak, fabs(xa[v]));
		}
		free(xa);
	}
	cr_assert_lt(worst, 1e-4 * peak, "logits moved by %g (largest %g)", worst, peak);
	ref_destroy(a);
	ref_destroy(b);
	free(obuf);
	free(sbuf);
	model_close(&m);
}

/* The zstd size of len bytes at level 3, and of the same with the 2-byte
 * heads of count blocks of stride bytes from begin moved ahead, as
 * docs/format.md states zstd-split. */
static size_t zsize(const void *p, size_t len)
{
	const size_t cap = ZSTD_compressBound(len);
	void *z = malloc(cap);
	const size_t n = ZSTD_compress(z, cap, p, len, 3);
	free(z);
	cr_assert(!ZSTD_isError(n));
	return n;
}

static size_t split_zsize(const uint8_t *p, size_t len, uint32_t stride, uint32_t begin,
                          uint32_t count)
{
	uint8_t *t = malloc(len);
	memcpy(t, p, len);
	size_t at = begin;
	for (uint32_t k = 0; k < count; k++, at += 2)
		memcpy(t + at, p + begin + (size_t)k * stride, 2);
	for (uint32_t k = 0; k < count; k++, at += stride - 2)
		memcpy(t + at, p + begin + (size_t)k * stride + 2, stride - 2);
	const size_t n = zsize(t, len);
	free(t);
	return n + 16;
}

static void read_header(const char *path, const struct fp_chunk_desc *c, uint32_t h[4])
{
	FILE *f = fopen(path, "rb");
	cr_assert(f);
	cr_assert_eq(fseek(f, (long)c->file_offset, SEEK_SET), 0);
	cr_assert_eq(fread(h, 4, 4, f), 4);
	fclose(f);
}

Test(compress, every_form_decodes_to_its_checksum_and_pages_as_resident)
{
	const char *raw = rt_path(dir, "raw.img"), *zst = rt_path(dir, "zstd.img");
	const char *aut = rt_path(dir, "auto.img");
	pack(raw, "2", "q8_0", "raw", "64K", NULL, NULL);
	pack(zst, "2", "q8_0", "zstd", "64K", NULL, NULL);
	pack(aut, "2", "q8_0", "auto", "64K", "--read-rate", "2G");
	size_t rlen;
	uint8_t *rbytes = rt_read_file(raw, &rlen);
	cr_assert(rbytes);
	const char *forms[] = {raw, zst, aut};
	int seen[3] = {0};
	for (int f = 0; f < 3; f++) {
		fp_image *img = fp_image_open(forms[f]);
		cr_assert(img, "%s", fp_last_error());
		const struct fp_image_info *info = fp_image_info(img);
		const uint32_t cs = info->chunk_size;
		uint8_t *buf = aligned_alloc(4096, cs);
		for (uint32_t i = 0; i < info->n_chunks; i++) {
			const struct fp_chunk_desc *c = fp_image_chunk(img, i);
			cr_assert_eq(fp_image_read_chunk(img, i, buf), 0, "%s", fp_last_error());
			cr_assert_eq(tu_crc32c(0, buf, c->logical_len), c->checksum, "%s chunk %u", forms[f], i);
			/* the quantization is deterministic: the raw image's plain bytes */
			cr_assert_eq(memcmp(buf, rbytes + 4096 + (size_t)i * cs, c->logical_len), 0,
			             "%s chunk %u differs from the raw image's bytes", forms[f], i);
			seen[c->codec == FP_CODEC_ZSTD_SPLIT ? 2 : c->codec]++;
		}
		free(buf);
		fp_image_close(img);
	}
	cr_assert_gt(seen[2], 0, "no chunk was stored zstd-split");

	/* paged bytes equal resident bytes, for every form and budget */
	for (int f = 0; f < 3; f++) {
		struct model res = {0};
		const struct model_options ro = {.load = MODEL_LOAD_RESIDENT};
		cr_assert_eq(model_open(&res, forms[f], &ro), 0, "%s", model_last_error());
		const uint64_t budgets[] = {0, res.size / 2, res.size / 4};
		for (int b = 0; b < 3; b++) {
			struct model pg = {0};
			struct model_options po = {.load = MODEL_LOAD_FLEXPAGE};
			po.fp.budget = budgets[b];
			cr_assert_eq(model_open(&pg, forms[f], &po), 0, "%s", model_last_error());
			for (int l = 0; l < res.cfg.n_layers; l++) {
				const struct frt_tensor *x[] = {&res.layers[l].wq, &res.layers[l].w1,
				                                &res.layers[l].w2, &res.layers[l].wo};
				const struct frt_tensor *y[] = {&pg.layers[l].wq, &pg.layers[l].w1,
				                                &pg.layers[l].w2, &pg.layers[l].wo};
				const size_t n[] = {fk_row_bytes(x[0]->type, 64) * 64,
				                    fk_row_bytes(x[1]->type, 64) * 172,
				                    fk_row_bytes(x[2]->type, 172) * 64,
				                    fk_row_bytes(x[3]->type, 64) * 64};
				for (int k = 0; k < 4; k++) {
					cr_assert_eq(x[k]->type, y[k]->type);
					cr_assert_eq(memcmp(x[k]->data, y[k]->data, n[k]), 0,
					             "%s, budget %llu: layer %d matrix %d differs", forms[f],
					             (unsigned long long)budgets[b], l, k);
				}
			}
			model_close(&pg);
		}
		model_close(&res);
	}
	free(rbytes);
}

/* pack --codec auto: the forms stored stream the image (every chunk read
 * once, each waited for until it is read and decoded on one decoding
 * core, whichever ends later) as fast as the best of every assignment of
 * raw, zstd and zstd-split to its chunks, with the sizes of each form
 * measured here. */
Test(compress, auto_picks_what_a_brute_force_picks)
{
	const double read[] = {100e6, 1.2e9, 2.5e9, 30e9}, decode = 1.5e9;
	const char *rates[] = {"100000000", "1200000000", "2500000000", "30000000000"};
	int all_raw = 0, all_compressed = 0;
	for (int r = 0; r < 4; r++) {
		const char *img = rt_path(dir, "auto.img");
		/* the decode rate given, the choice depends on sizes alone */
		cr_assert_eq(rt_tool("pack", STORIES, img, "--compressible", "2", "--calib", TEXT,
		                     "--calib-skip", "400K", "--calib-tokens", "600", "--codec", "auto",
		                     "--chunk", "64K", "--read-rate", rates[r], "--decode-rate",
		                     "1500000000", "--decoders", "1", "-f", NULL), 0, "%s", rt_err);
		const char *raw = rt_path(dir, "raw.img");
		pack(raw, "2", "q8_0", "raw", "64K", NULL, NULL);
		size_t rlen;
		uint8_t *rb = rt_read_file(raw, &rlen);
		fp_image *a = fp_image_open(img);
		cr_assert(a, "%s", fp_last_error());
		const struct fp_image_info *info = fp_image_info(a);
		const uint32_t n = info->n_chunks, cs = info->chunk_size;
		cr_assert_leq(n, 12, "a brute force over 3^%u forms is too many", n);
		cr_assert_eq(info->n_alt_forms, 0u, "auto keeps one form of each chunk");
		/* each chunk's three forms: read seconds (sizes measured here,
		 * split where the writer said its blocks are, or, for chunks
		 * it did not split, not at all) and decode seconds */
		double rd[12][3], dec[12][3];
		int can_split[12];
		for (uint32_t i = 0; i < n; i++) {
			const struct fp_chunk_desc *c = fp_image_chunk(a, i);
			const uint8_t *p = rb + 4096 + (size_t)i * cs;
			const double L = c->logical_len;
			rd[i][0] = L / read[r];
			dec[i][0] = 0;
			rd[i][1] = (double)zsize(p, c->logical_len) / read[r];
			dec[i][1] = dec[i][2] = L / decode;
			can_split[i] = c->codec == FP_CODEC_ZSTD_SPLIT;
			if (can_split[i]) {
				uint32_t h[4];
				read_header(img, c, h);
				rd[i][2] = (double)split_zsize(p, c->logical_len, h[0] & 0xffff, h[1], h[2]) /
				           read[r];
			}
		}
		/* brute force: every assignment of forms, the least token time */
		double best = INFINITY;
		uint32_t combos = 1;
		for (uint32_t i = 0; i < n; i++)
			combos *= 3;
		for (uint32_t code = 0; code < combos; code++) {
			double t = 0;
			uint32_t x = code;
			int ok = 1;
			for (uint32_t i = 0; i < n && ok; i++, x /= 3) {
				ok = x % 3 != 2 || can_split[i];
				t += ok ? fmax(rd[i][x % 3], dec[i][x % 3]) : 0;
			}
			if (ok)
				best = fmin(best, t);
		}
		double t = 0;
		int raw_n = 0;
		for (uint32_t i = 0; i < n; i++) {
			const uint32_t got = fp_image_chunk(a, i)->codec;
			const int f = got == FP_CODEC_ZSTD_SPLIT ? 2 : (int)got;
			cr_assert(f < 2 || can_split[i]);
			t += fmax(rd[i][f], dec[i][f]);
			raw_n += f == 0;
		}
		cr_assert_leq(t, best * (1 + 1e-9),
		              "read rate %s: the forms stored stream in %.6g s, the best in %.6g s",
		              rates[r], t, best);
		all_raw |= raw_n == (int)n;
		all_compressed |= raw_n == 0;
		fp_image_close(a);
		free(rb);
	}
	/* below the decode rate every chunk pays compressed, above it none */
	cr_assert(all_raw && all_compressed, "the read rate never changed the forms stored");
}

Test(compress, bad_input_fails_clearly)
{
	const char *out = rt_path(dir, "bad.img"), *empty = rt_path(dir, "empty.txt");
	const char *tiny = rt_path(dir, "tiny.txt"), *gguf = rt_path(dir, "q8.gguf");
	cr_assert_eq(rt_write_file(empty, "", 0), 0);
	cr_assert_eq(rt_write_file(tiny, "Once upon a time.", 17), 0);
	struct {
		const char *args[8], *says;
		int code;
	} cases[] = {
		{{"--compressible", "2", NULL}, "--calib", 1},
		{{"--compressible", "2", "--calib", "/nonexistent/text.txt", NULL}, "/nonexistent/text.txt", 1},
		{{"--compressible", "2", "--calib", empty, NULL}, "is empty", 1},
		{{"--compressible", "2", "--calib", tiny, NULL}, "shorter than one window", 1},
		{{"--compressible", "7", "--calib", TEXT, NULL}, "not a level from 0 to 6", 2},
		{{"--compressible", "-1", "--calib", TEXT, NULL}, "not a level from 0 to 6", 2},
		{{"--compressible", "2", "--calib", TEXT, "--cq-params", "3,31,0.5", NULL}, "alpha is 0..2", 1},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const char **a = cases[i].args;
		int rc = rt_tool("pack", STORIES, out, "-f", a[0], a[1], a[2], a[3], a[4], a[5], NULL);
		cr_assert_eq(rc, cases[i].code, "case %zu: exit %d: %s", i, rc, rt_err);
		cr_assert(strstr(rt_err, cases[i].says), "case %zu says: %s", i, rt_err);
		cr_assert(!strstr(rt_err, "Sanitizer"), "%s", rt_err);
		cr_assert(access(out, F_OK), "case %zu left %s behind", i, out);
	}
	/* a GGUF of quantized matrices is not quantized again */
	cr_assert_eq(rt_tool("synth", "--shape", "64,128,2,4,2,512,64", "--quant", "q8_0", "-o",
	                     gguf, NULL), 0, "%s", rt_err);
	int rc = rt_tool("pack", gguf, out, "--compressible", "2", "--calib", TEXT, "--tokenizer",
	                 TOK, NULL);
	cr_assert_eq(rc, 1, "%s", rt_err);
	cr_assert(strstr(rt_err, "q8_0") && strstr(rt_err, "re-quantized") && strstr(rt_err, gguf),
	          "%s", rt_err);
}
