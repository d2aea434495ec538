/* Model files: importing llama2.c checkpoints (tensor bytes, names, meta,
 * quantization), loading images and checkpoints, the synthetic-model
 * generator, and bad models of every kind, through the library functions
 * and through the flexpage binary (exit status and message). */
#include <criterion/criterion.h>
#include <criterion/logging.h>

#include <flexkern/kernels.h>
#include <flexpage/flexpage.h>
#include <flexrt/runtime.h>

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <flexmodel/model.h>

#include "ref_forward.h"
#include "rt_util.h"

#define STORIES FLEXPAGE_SHARED_MODELS "/stories260K.bin"
#define STORIES_SIZE 1056540

static char *dir;

static void setup(void)
{
	dir = rt_tmpdir();
	cr_assert(dir, "no temporary directory on a disk file system");
}

static void teardown(void)
{
	if (dir)
		rt_rmtree(dir);
	free(dir);
}

static void need_stories(void)
{
	setup();
	if (access(STORIES, R_OK))
		cr_skip_test("%s is missing: this test needs the real checkpoint", STORIES);
}

/* ------------------------------------------------------------------ */
/* A small llama2.c checkpoint written by the test                     */

/* dim 64, hidden 128, 2 layers, 4 heads over 2 KV heads, vocab 40, seq
 * 16: every matrix quantizable.  vocab_sign -1 adds its own classifier. */
static void write_checkpoint(const char *path, int vocab_sign, uint64_t seed)
{
	const int32_t h[7] = {64, 128, 2, 4, 2, 40 * vocab_sign, 16};
	const size_t d = 64, hd = 128, L = 2, kv = 32, V = 40, hs = 16;
	size_t n = V * d + L * d + L * d * d + 2 * L * kv * d + L * d * d + L * d + 3 * L * hd * d + d +
	           16 * hs + (vocab_sign < 0 ? V * d : 0);
	char *buf = malloc(28 + n * 4);
	memcpy(buf, h, 28);
	float *f = (float *)(buf + 28);
	uint64_t s = seed;
	for (size_t i = 0; i < n; i++) {
		s = s * 6364136223846793005ull + 1442695040888963407ull;
		f[i] = (float)((double)(s >> 11) * 0x1p-53 - 0.5);
	}
	cr_assert_eq(rt_write_file(path, buf, 28 + n * 4), 0);
	free(buf);
}

/* A copy of a checkpoint with header field i set to v. */
static void patch_header(const char *src, const char *dst, int field, int32_t v)
{
	size_t n;
	char *buf = rt_read_file(src, &n);
	cr_assert(buf);
	memcpy(buf + 4 * field, &v, 4);
	cr_assert_eq(rt_write_file(dst, buf, n), 0);
	free(buf);
}

static int import_to(const char *src, const char *dst, const char *quant, char *err, size_t len)
{
	return rt_pack_llama2c(src, dst, quant, 64u << 10, FP_CODEC_RAW, err, len);
}

/* ------------------------------------------------------------------ */
/* Import                                                               */

/* Every tensor of the image holds exactly the checkpoint's floats, under
 * its GGUF name, in decode order, and the meta says what it should. */
Test(import, stories260k_tensors_names_and_meta, .init = need_stories, .fini = teardown)
{
	char err[512];
	const char *img_path = rt_path(dir, "s.img");
	cr_assert_eq(import_to(STORIES, img_path, NULL, err, sizeof err), 0, "%s", err);
	struct ref_model rm;
	float *buf;
	cr_assert_eq(ref_load_llama2c(STORIES, &rm, &buf), 0);
	fp_image *img = fp_image_open(img_path);
	cr_assert(img, "%s", fp_last_error());
	const struct fp_image_info *info = fp_image_info(img);
	cr_assert_eq(info->n_tensors, 1 + 5 * 9 + 1, "shared classifier: no output.weight");
	cr_assert_str_eq(info->meta, "arch=llama\ndim=64\nhidden_dim=172\nn_layers=5\nn_heads=8\n"
	                             "n_kv_heads=4\nvocab_size=512\nseq_len=512\nshared_classifier=1\n"
	                             "rope_theta=10000\nnorm_eps=1e-5\ntype=f32\n");
	static const char *const order[] = {"attn_norm", "attn_q", "attn_k", "attn_v", "attn_output",
	                                    "ffn_norm", "ffn_gate", "ffn_up", "ffn_down"};
	cr_assert_str_eq(fp_image_tensor(img, 0)->name, "token_embd.weight");
	for (int l = 0; l < 5; l++)
		for (int k = 0; k < 9; k++) {
			char name[64];
			snprintf(name, sizeof name, "blk.%d.%s.weight", l, order[k]);
			cr_assert_str_eq(fp_image_tensor(img, (uint32_t)(1 + 9 * l + k))->name, name);
		}
	cr_assert_str_eq(fp_image_tensor(img, 46)->name, "output_norm.weight");

	/* bytes, through a resident read of every chunk */
	char *logical = calloc(1, info->logical_size);
	for (uint32_t i = 0; i < info->n_chunks; i++)
		cr_assert_eq(fp_image_read_chunk(img, i, logical + (uint64_t)i * info->chunk_size), 0);
	const struct {
		const char *name;
		const float *src;
		size_t n;
		uint64_t rows, cols;
	} t[] = {
		{"token_embd.weight", rm.token_embedding, 512 * 64, 512, 64},
		{"blk.2.attn_q.weight", rm.wq + 2 * 64 * 64, 64 * 64, 64, 64},
		{"blk.4.attn_k.weight", rm.wk + 4 * 32 * 64, 32 * 64, 32, 64},
		{"blk.1.attn_v.weight", rm.wv + 1 * 32 * 64, 32 * 64, 32, 64},
		{"blk.3.attn_output.weight", rm.wo + 3 * 64 * 64, 64 * 64, 64, 64},
		{"blk.0.ffn_gate.weight", rm.w1, 172 * 64, 172, 64},
		{"blk.4.ffn_up.weight", rm.w3 + 4 * 172 * 64, 172 * 64, 172, 64},
		{"blk.2.ffn_down.weight", rm.w2 + 2 * 64 * 172, 64 * 172, 64, 172},
		{"blk.3.attn_norm.weight", rm.rms_att + 3 * 64, 64, 1, 64},
		{"blk.1.ffn_norm.weight", rm.rms_ffn + 64, 64, 1, 64},
		{"output_norm.weight", rm.rms_final, 64, 1, 64},
	};
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		const struct fp_tensor_desc *d = fp_image_find(img, t[i].name);
		cr_assert(d, "%s is missing", t[i].name);
		cr_assert_eq(d->type, FP_TYPE_F32);
		cr_assert_eq(d->shape[0], t[i].cols, "%s: shape[0] is the row length", t[i].name);
		if (t[i].rows > 1)
			cr_assert_eq(d->shape[1], t[i].rows, "%s: shape[1] is the row count", t[i].name);
		cr_assert_eq(d->size, t[i].n * 4);
		cr_assert(!memcmp(logical + d->offset, t[i].src, t[i].n * 4), "%s: bytes differ", t[i].name);
	}
	free(logical);
	free(buf);
	fp_image_close(img);
}

/* q8_0 and q4_0: matrices (the embedding and the classifier included) are
 * GGML's blocks of the source rows; norms stay f32. */
Test(import, quantized_blocks_and_own_classifier, .init = setup, .fini = teardown)
{
	const char *ck = rt_path(dir, "small.bin");
	write_checkpoint(ck, -1, 11);
	struct ref_model rm;
	float *buf;
	cr_assert_eq(ref_load_llama2c(ck, &rm, &buf), 0);
	const char *quants[] = {"q8_0", "q4_0"};
	for (int q = 0; q < 2; q++) {
		char err[512];
		const char *img_path = rt_path(dir, "small.img");
		cr_assert_eq(import_to(ck, img_path, quants[q], err, sizeof err), 0, "%s", err);
		fp_image *img = fp_image_open(img_path);
		cr_assert(img, "%s", fp_last_error());
		const struct fp_image_info *info = fp_image_info(img);
		char meta[32];
		cr_assert_eq(fp_image_meta(img, "type", meta, sizeof meta), 0);
		cr_assert_str_eq(meta, quants[q]);
		cr_assert_eq(fp_image_meta(img, "shared_classifier", meta, sizeof meta), 0);
		cr_assert_str_eq(meta, "0");
		char *logical = calloc(1, info->logical_size);
		for (uint32_t i = 0; i < info->n_chunks; i++)
			cr_assert_eq(fp_image_read_chunk(img, i, logical + (uint64_t)i * info->chunk_size), 0);
		const int type = fk_type_parse(quants[q]);
		const struct {
			const char *name;
			const float *src;
			size_t rows, cols;
		} t[] = {
			{"token_embd.weight", rm.token_embedding, 40, 64},
			{"output.weight", rm.wcls, 40, 64},
			{"blk.1.attn_k.weight", rm.wk + 32 * 64, 32, 64},
			{"blk.1.ffn_down.weight", rm.w2 + 64 * 128, 64, 128},
		};
		for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
			const struct fp_tensor_desc *d = fp_image_find(img, t[i].name);
			cr_assert(d, "%s is missing", t[i].name);
			cr_assert_eq((int)d->type, type);
			const size_t rb = fk_row_bytes(type, t[i].cols);
			cr_assert_eq(d->size, rb * t[i].rows);
			char *want = malloc(rb * t[i].rows);
			for (size_t r = 0; r < t[i].rows; r++) {
				if (type == FK_Q8_0)
					fk_quantize_row_q8_0(t[i].src + r * t[i].cols, (fk_block_q8_0 *)(want + r * rb), t[i].cols);
				else
					fk_quantize_row_q4_0(t[i].src + r * t[i].cols, (fk_block_q4_0 *)(want + r * rb), t[i].cols);
			}
			cr_assert(!memcmp(logical + d->offset, want, d->size), "%s %s: blocks differ",
			          quants[q], t[i].name);
			free(want);
		}
		const struct fp_tensor_desc *norm = fp_image_find(img, "blk.0.ffn_norm.weight");
		cr_assert_eq(norm->type, FP_TYPE_F32);
		cr_assert(!memcmp(logical + norm->offset, rm.rms_ffn, 64 * 4));
		free(logical);
		fp_image_close(img);
	}
	free(buf);
}

/* ------------------------------------------------------------------ */
/* Loading: every way gives the same model                              */

static void greedy(const struct model *m, int steps, int *ids, float *last_logits)
{
	const struct frt_options o = {1, steps};
	frt_model *rt = frt_model_create(&m->cfg, &m->weights, &o);
	cr_assert(rt, "%s", frt_last_error());
	int token = FRT_BOS;
	for (int pos = 0; pos < steps; pos++) {
		const float *lg = frt_forward(rt, token, pos);
		ids[pos] = token = frt_argmax(lg, m->cfg.vocab_size);
		if (last_logits && pos == steps - 1)
			memcpy(last_logits, lg, sizeof(float) * (size_t)m->cfg.vocab_size);
	}
	frt_model_destroy(rt);
}

Test(load, checkpoint_and_image_every_way_agree, .init = need_stories, .fini = teardown)
{
	char err[512];
	const char *raw = rt_path(dir, "s.img"), *zst = rt_path(dir, "s.zst.img");
	cr_assert_eq(import_to(STORIES, raw, NULL, err, sizeof err), 0, "%s", err);
	cr_assert_eq(rt_pack_llama2c(STORIES, zst, NULL, 64u << 10, FP_CODEC_ZSTD, err, sizeof err), 0);
	const struct {
		const char *path;
		int load;
	} ways[] = {
		{STORIES, MODEL_LOAD_RESIDENT}, {STORIES, MODEL_LOAD_MMAP}, {raw, MODEL_LOAD_RESIDENT},
		{raw, MODEL_LOAD_MMAP},         {raw, MODEL_LOAD_FLEXPAGE}, {zst, MODEL_LOAD_RESIDENT},
		{zst, MODEL_LOAD_FLEXPAGE},
	};
	int want[32], got[32];
	static float lw[512], lg[512];
	for (size_t i = 0; i < sizeof ways / sizeof ways[0]; i++) {
		struct model m;
		struct model_options o = {0};
		o.load = ways[i].load;
		o.fp.retries = o.fp.readahead = -1;
		cr_assert_eq(model_open(&m, ways[i].path, &o), 0, "%s", model_last_error());
		cr_assert_eq(m.cfg.dim, 64);
		cr_assert_eq(m.cfg.n_kv_heads, 4);
		cr_assert_eq(m.weights.output.data, m.weights.token_embd.data, "shared classifier");
		greedy(&m, 32, i ? got : want, i ? lg : lw);
		if (i) {
			cr_assert(!memcmp(want, got, sizeof want), "%s via %s: other tokens", ways[i].path,
			          model_load_name(ways[i].load));
			cr_assert(!memcmp(lw, lg, sizeof lw), "%s via %s: other logits", ways[i].path,
			          model_load_name(ways[i].load));
		}
		model_close(&m);
	}
}

/* ------------------------------------------------------------------ */
/* Bad checkpoints                                                      */

static void import_fails(const char *path, const char *quant, const char *const *needles)
{
	char err[1024] = "", img[4096];
	snprintf(img, sizeof img, "%s/bad.img", dir);
	cr_assert_neq(import_to(path, img, quant, err, sizeof err), 0, "%s: import succeeded", path);
	cr_assert(strstr(err, path), "the message names the file: %s", err);
	for (int i = 0; needles[i]; i++)
		cr_assert(strstr(err, needles[i]), "'%s' not in: %s", needles[i], err);
	cr_assert(access(img, F_OK), "a failed import left %s", img);
	/* model_open says the same */
	struct model m;
	if (!quant) {
		cr_assert_lt(model_open(&m, path, NULL), 0);
		cr_assert(strstr(model_last_error(), needles[0]), "model_open: '%s' not in: %s",
		          needles[0], model_last_error());
	}
}

#define NEEDLES(...) ((const char *const[]){__VA_ARGS__, NULL})

Test(bad_checkpoint, sizes_that_do_not_add_up, .init = need_stories, .fini = teardown)
{
	const char *cut = rt_path(dir, "cut.bin"), *longer = rt_path(dir, "long.bin");
	const char *tiny = rt_path(dir, "tiny.bin");
	cr_assert_eq(rt_copy_resized(STORIES, cut, 600000), 0);
	cr_assert_eq(rt_copy_resized(STORIES, longer, STORIES_SIZE + 12), 0);
	cr_assert_eq(rt_copy_resized(STORIES, tiny, 20), 0);
	import_fails(cut, NULL, NEEDLES("truncated", "needs 1056540 bytes", "has 600000"));
	import_fails(longer, NULL, NEEDLES("size mismatch", "12 bytes too many"));
	char err[512];
	cr_assert_neq(import_to(tiny, rt_path(dir, "x.img"), NULL, err, sizeof err), 0);
	cr_assert(strstr(err, "truncated") && strstr(err, "28"), "%s", err);
	cr_assert_eq(model_is_llama2c(tiny), 0);
	cr_assert_eq(model_is_llama2c(cut), 1, "a cut checkpoint is still recognised, to say so");
}

Test(bad_checkpoint, header_fields, .init = need_stories, .fini = teardown)
{
	char p[4096];
	snprintf(p, sizeof p, "%s/h.bin", dir);
	patch_header(STORIES, p, 0, -64);
	import_fails(p, NULL, NEEDLES("header field dim = -64 must be positive"));
	patch_header(STORIES, p, 3, 7);
	import_fails(p, NULL, NEEDLES("dim = 64 is not a multiple of n_heads = 7"));
	patch_header(STORIES, p, 4, 3);
	import_fails(p, NULL, NEEDLES("n_heads = 8 is not a multiple of n_kv_heads = 3"));
	patch_header(STORIES, p, 4, 16);
	import_fails(p, NULL, NEEDLES("n_kv_heads = 16"));
	patch_header(STORIES, p, 2, 0);
	import_fails(p, NULL, NEEDLES("n_layers = 0 must be positive"));
	patch_header(STORIES, p, 5, 0);
	import_fails(p, NULL, NEEDLES("vocab_size = 0"));
	patch_header(STORIES, p, 1, 1 << 30);
	import_fails(p, NULL, NEEDLES("hidden_dim = 1073741824 is implausibly large"));
	patch_header(STORIES, p, 6, 513);
	import_fails(p, NULL, NEEDLES("truncated", "32 bytes missing"));
	patch_header(STORIES, p, 6, 511);
	import_fails(p, NULL, NEEDLES("size mismatch", "32 bytes too many"));
	/* a negative vocab_size promises a classifier that is not there */
	patch_header(STORIES, p, 5, -512);
	import_fails(p, NULL, NEEDLES("truncated"));
}

Test(bad_checkpoint, quantizing_rows_that_are_not_whole_blocks, .init = need_stories, .fini = teardown)
{
	import_fails(STORIES, "q8_0", NEEDLES("cannot quantize to q8_0", "blk.0.ffn_down.weight",
	                                      "172 values, not a multiple of 32"));
	import_fails(STORIES, "q5_1", NEEDLES("unknown quantization 'q5_1'"));
}

Test(bad_checkpoint, not_a_model_at_all, .init = setup, .fini = teardown)
{
	const char *txt = rt_path(dir, "notes.txt");
	const char *text = "These are not the weights you are looking for.\n";
	cr_assert_eq(rt_write_file(txt, text, strlen(text)), 0);
	cr_assert_eq(model_is_llama2c(txt), 0);
	struct model m;
	cr_assert_eq(model_open(&m, txt, NULL), -EINVAL);
	const char *err = model_last_error();
	cr_assert(strstr(err, txt) && strstr(err, "neither a flexpage image nor a llama2.c checkpoint"),
	          "%s", err);
	cr_assert_eq(model_open(&m, rt_path(dir, "missing.bin"), NULL), -ENOENT);
	cr_assert(strstr(err, "missing.bin") && strstr(err, "cannot open"), "%s", err);
}

/* ------------------------------------------------------------------ */
/* Bad images                                                           */

/* An image of the small shape whose tensors are zeros, with one changed:
 * skip omits it, or it gets type / cols instead of its own. */
static void write_image(const char *path, const char *meta, const char *skip, const char *alter,
                        int alter_type, uint64_t alter_cols, uint32_t codec)
{
	const struct frt_config cfg = {64, 128, 2, 4, 2, 40, 16, 0, 0};
	char m[512];
	if (!meta) {
		model_format_meta(&cfg, 1, FK_Q8_0, m, sizeof m);
		meta = m;
	}
	struct fp_writer_options o = {.chunk_size = 64u << 10, .codec = codec};
	fp_writer *w = fp_writer_create(path, &o);
	cr_assert(w, "%s", fp_last_error());
	cr_assert_eq(fp_writer_set_meta(w, meta), 0);
	char names[32][64];
	int n = 0;
	snprintf(names[n++], 64, "token_embd.weight");
	for (int l = 0; l < 2; l++) {
		const char *s[] = {"attn_norm", "attn_q", "attn_k", "attn_v", "attn_output",
		                   "ffn_norm", "ffn_gate", "ffn_up", "ffn_down"};
		for (int k = 0; k < 9; k++)
			snprintf(names[n++], 64, "blk.%d.%s.weight", l, s[k]);
	}
	snprintf(names[n++], 64, "output_norm.weight");
	static char zeros[1 << 16];
	for (int i = 0; i < n; i++) {
		if (skip && !strcmp(names[i], skip))
			continue;
		const int norm = strstr(names[i], "norm") != NULL;
		uint64_t cols = strstr(names[i], "ffn_down") ? 128 : 64;
		uint64_t rows = norm ? 1 : strstr(names[i], "attn_k") || strstr(names[i], "attn_v") ? 32
		              : strstr(names[i], "ffn_gate") || strstr(names[i], "ffn_up") ? 128
		              : strstr(names[i], "token_embd") ? 40 : 64;
		int type = norm ? FK_F32 : FK_Q8_0;
		if (alter && !strcmp(names[i], alter)) {
			type = alter_type;
			cols = alter_cols;
		}
		const uint64_t shape[2] = {cols, rows};
		cr_assert_eq(fp_writer_begin_tensor(w, names[i], (uint32_t)type, norm ? 1 : 2, shape), 0,
		             "%s", fp_last_error());
		cr_assert_eq(fp_writer_write(w, zeros, fk_row_bytes(type, cols) * rows), 0);
		cr_assert_eq(fp_writer_end_tensor(w), 0);
	}
	cr_assert_eq(fp_writer_finish(w), 0, "%s", fp_last_error());
}

static void open_fails(const char *path, int load, const char *needle)
{
	struct model m;
	struct model_options o = {0};
	o.load = load;
	o.fp.retries = o.fp.readahead = -1;
	cr_assert_eq(model_open(&m, path, &o), -EINVAL, "%s opened", path);
	const char *err = model_last_error();
	cr_assert(strstr(err, path), "the message names the file: %s", err);
	cr_assert(strstr(err, needle), "'%s' not in: %s", needle, err);
}

Test(bad_image, tensors_and_meta, .init = setup, .fini = teardown)
{
	const char *p = rt_path(dir, "bad.img");
	write_image(p, NULL, NULL, NULL, 0, 0, FP_CODEC_RAW);
	struct model m;
	cr_assert_eq(model_open(&m, p, NULL), 0, "the unaltered image: %s", model_last_error());
	model_close(&m);

	write_image(p, NULL, "blk.1.ffn_up.weight", NULL, 0, 0, FP_CODEC_RAW);
	open_fails(p, MODEL_LOAD_FLEXPAGE, "tensor blk.1.ffn_up.weight is missing");
	write_image(p, NULL, NULL, "blk.0.attn_q.weight", FK_Q4_0, 64, FP_CODEC_RAW);
	open_fails(p, MODEL_LOAD_RESIDENT, "tensor blk.0.attn_q.weight is q4_0, expected q8_0");
	write_image(p, NULL, NULL, "blk.1.attn_output.weight", FK_Q8_0, 96, FP_CODEC_RAW);
	open_fails(p, MODEL_LOAD_MMAP, "blk.1.attn_output.weight has shape [96, 64], expected [64, 64]");
	write_image(p, NULL, NULL, "output_norm.weight", FK_Q8_0, 64, FP_CODEC_RAW);
	open_fails(p, MODEL_LOAD_FLEXPAGE, "tensor output_norm.weight is q8_0, expected f32");

	write_image(p, "arch=llama\ndim=64\nhidden_dim=128\nn_layers=2\nn_heads=4\nn_kv_heads=2\n"
	               "seq_len=16\nshared_classifier=1\ntype=q8_0\n", NULL, NULL, 0, 0, FP_CODEC_RAW);
	open_fails(p, MODEL_LOAD_FLEXPAGE, "meta key 'vocab_size' is missing");
	write_image(p, "arch=llama\ndim=64\nhidden_dim=128\nn_layers=2\nn_heads=5\nn_kv_heads=2\n"
	               "vocab_size=40\nseq_len=16\nshared_classifier=1\ntype=q8_0\n", NULL, NULL, 0, 0,
	            FP_CODEC_RAW);
	open_fails(p, MODEL_LOAD_RESIDENT, "meta key dim = 64 is not a multiple of n_heads = 5");
	write_image(p, "arch=llama\ndim=6x4\n", NULL, NULL, 0, 0, FP_CODEC_RAW);
	open_fails(p, MODEL_LOAD_RESIDENT, "meta key dim = '6x4' is not an integer");
	write_image(p, "arch=opaque\n", NULL, NULL, 0, 0, FP_CODEC_RAW);
	open_fails(p, MODEL_LOAD_RESIDENT, "not a Llama model (packed as opaque bytes)");

	write_image(p, NULL, NULL, NULL, 0, 0, FP_CODEC_ZSTD);
	open_fails(p, MODEL_LOAD_MMAP, "--load mmap needs a raw image");
}

Test(bad_image, checkpoint_cannot_be_paged, .init = setup, .fini = teardown)
{
	const char *ck = rt_path(dir, "small.bin");
	write_checkpoint(ck, 1, 3);
	open_fails(ck, MODEL_LOAD_FLEXPAGE, "--load flexpage needs an image");
}

/* ------------------------------------------------------------------ */
/* The synthetic generator                                              */

Test(synth, same_bytes_for_any_thread_count, .init = setup, .fini = teardown)
{
	const struct frt_config cfg = {128, 352, 2, 4, 2, 300, 64, 0, 0};
	char err[512];
	size_t n1, n2, n3, n4;
	cr_assert_eq(rt_synth(rt_path(dir, "a"), &cfg, 0, FK_Q8_0, 64u << 10, 0, 5, 1, err, sizeof err), 0, "%s", err);
	cr_assert_eq(rt_synth(rt_path(dir, "b"), &cfg, 0, FK_Q8_0, 64u << 10, 0, 5, 2, err, sizeof err), 0, "%s", err);
	cr_assert_eq(rt_synth(rt_path(dir, "c"), &cfg, 0, FK_Q8_0, 64u << 10, 0, 5, 3, err, sizeof err), 0, "%s", err);
	cr_assert_eq(rt_synth(rt_path(dir, "d"), &cfg, 0, FK_Q8_0, 64u << 10, 0, 6, 2, err, sizeof err), 0, "%s", err);
	char *a = rt_read_file(rt_path(dir, "a"), &n1), *b = rt_read_file(rt_path(dir, "b"), &n2);
	char *c = rt_read_file(rt_path(dir, "c"), &n3), *d = rt_read_file(rt_path(dir, "d"), &n4);
	cr_assert(n1 == n2 && n2 == n3 && !memcmp(a, b, n1) && !memcmp(a, c, n1),
	          "threads changed the bytes");
	cr_assert(n1 != n4 || memcmp(a, d, n1), "another seed gave the same bytes");
	free(a);
	free(b);
	free(c);
	free(d);
}

/* Trained-model statistics: zero mean, 1/sqrt(in) scale, tails heavier
 * than a Gaussian's, row scales that vary, norms near 1. */
Test(synth, weights_look_trained, .init = setup, .fini = teardown)
{
	const struct frt_config cfg = {256, 704, 1, 4, 4, 64, 32, 0, 0};
	char err[512];
	const char *p = rt_path(dir, "f.img");
	cr_assert_eq(rt_synth(p, &cfg, 1, FK_F32, 64u << 10, 0, 9, 2, err, sizeof err), 0, "%s", err);
	struct model m;
	struct model_options o = {0};
	o.load = MODEL_LOAD_RESIDENT;
	cr_assert_eq(model_open(&m, p, &o), 0, "%s", model_last_error());
	const float *w = m.layers[0].w1.data; /* 704 rows of 256 */
	double s1 = 0, s2 = 0, s4 = 0, rs1 = 0, rs2 = 0;
	const int rows = 704, cols = 256;
	for (int r = 0; r < rows; r++) {
		double q = 0;
		for (int i = 0; i < cols; i++) {
			const double v = w[r * cols + i];
			s1 += v;
			s2 += v * v;
			s4 += v * v * v * v;
			q += v * v;
		}
		const double sd = sqrt(q / cols);
		rs1 += sd;
		rs2 += sd * sd;
	}
	const double n = (double)rows * cols, mean = s1 / n, var = s2 / n - mean * mean;
	const double kurt = s4 / n / (var * var);
	const double rmean = rs1 / rows, rcv = sqrt(rs2 / rows - rmean * rmean) / rmean;
	cr_log_info("w1: mean %.2e, std %.4f (1/sqrt(in) %.4f), kurtosis %.2f, row-scale CV %.2f",
	            mean, sqrt(var), 1 / sqrt(256.0), kurt, rcv);
	cr_assert(fabs(mean) < 0.01 * sqrt(var), "mean %g", mean);
	cr_assert(sqrt(var) > 0.5 / 16 && sqrt(var) < 2.0 / 16, "std %g", sqrt(var));
	cr_assert(kurt > 4.5 && kurt < 20, "kurtosis %g: tails not heavy (Gaussian: 3)", kurt);
	cr_assert(rcv > 0.15 && rcv < 0.6, "row scales vary by %g", rcv);
	for (int i = 0; i < cfg.dim; i++)
		cr_assert(m.layers[0].attn_norm[i] > 0.7f && m.layers[0].attn_norm[i] < 1.3f, "norm %g",
		          m.layers[0].attn_norm[i]);
	model_close(&m);
}

Test(synth, shapes_and_sizes)
{
	struct model_shape s;
	cr_assert_eq(model_parse_shape("tinyllama-1.1b", &s), 0);
	cr_assert_eq(s.cfg.dim, 2048);
	cr_assert_eq(s.cfg.n_kv_heads, 4);
	cr_assert_eq(s.shared_classifier, 0);
	/* 1,100,048,384 parameters in blocks of 34 bytes per 32, and 2 norms of
	 * 2048 floats per layer plus the final one */
	const uint64_t matrices = 32000ull * 2048 * 2 +
	                          22ull * (2048ull * 2048 * 2 + 256ull * 2048 * 2 + 3ull * 5632 * 2048);
	cr_assert_eq(model_synth_bytes(&s.cfg, 0, FK_Q8_0), matrices / 32 * 34 + 45ull * 2048 * 4);
	cr_assert_eq(model_parse_shape("260k", &s), 0);
	cr_assert_eq(s.cfg.hidden_dim, 172);
	cr_assert_eq(s.shared_classifier, 1);
	cr_assert_eq(model_parse_shape("128,256,2,4,2,100,64,0", &s), 0);
	cr_assert_eq(s.cfg.vocab_size, 100);
	cr_assert_eq(s.shared_classifier, 0);
	cr_assert_neq(model_parse_shape("gpt-5", &s), 0);
	cr_assert_neq(model_parse_shape("64,128,2,3,1,10,10", &s), 0);
	cr_assert(strstr(model_last_error(), "n_heads = 3"), "%s", model_last_error());
}

/* ------------------------------------------------------------------ */
/* The flexpage binary                                                  */

static char out[1 << 16], err_[1 << 16];

/* Run the flexpage binary with the arguments up to a NULL. */
static int tool(const char *env, ...)
{
	const char *argv[32] = {FLEXPAGE_TOOL};
	va_list ap;
	va_start(ap, env);
	int n = 1;
	while (n < 31 && (argv[n] = va_arg(ap, const char *)))
		n++;
	va_end(ap);
	argv[n] = NULL;
	return rt_run(argv, env, out, sizeof out, err_, sizeof err_);
}

Test(cli, run_prints_the_runtime_greedy_ids, .init = need_stories, .fini = teardown)
{
	struct model m;
	char err[512];
	cr_assert_eq(model_open(&m, STORIES, NULL), 0, "%s", model_last_error());
	int ids[30];
	char want[512] = "";
	greedy(&m, 30, ids, NULL);
	model_close(&m);
	for (int i = 0; i < 30 && ids[i] != FRT_BOS; i++)
		snprintf(want + strlen(want), sizeof want - strlen(want), i ? " %d" : "%d", ids[i]);
	strcat(want, "\n");

	int rc = tool(NULL, "run", STORIES, "--steps", "30", "--temperature", "0", "--ids", NULL);
	cr_assert_eq(rc, 0, "exit %d: %s", rc, err_);
	cr_assert_str_eq(out, want);
	cr_assert(strstr(err_, "tokens/s") && strstr(err_, "first token"), "%s", err_);

	rc = tool("FLEXPAGE_KERNELS=scalar", "run", STORIES, "--steps", "30", "--temperature", "0",
	          "--threads", "1", "--ids", NULL);
	cr_assert_eq(rc, 0, "%s", err_);
	cr_assert_str_eq(out, want, "scalar kernels print other ids");
	cr_assert(strstr(err_, "kernels scalar"), "%s", err_);

	const char *img = rt_path(dir, "s.img");
	cr_assert_eq(import_to(STORIES, img, NULL, err, sizeof err), 0, "%s", err);
	rc = tool(NULL, "run", img, "--steps", "30", "--temperature", "0", "--budget", "30%", "-q", NULL);
	cr_assert_eq(rc, 0, "%s", err_);
	cr_assert_str_eq(out, want, "paged at 30%% prints other ids");
	rc = tool(NULL, "run", img, "--steps", "30", "--temperature", "0", "--budget", "50%", NULL);
	cr_assert_eq(rc, 0, "%s", err_);
	cr_assert(strstr(err_, "faults"), "the pager's statistics are missing: %s", err_);
	rc = tool(NULL, "run", img, "--steps", "30", "--temperature", "0", "--load", "mmap",
	          "--madvise", "random", NULL);
	cr_assert_eq(rc, 0, "%s", err_);
	cr_assert_str_eq(out, want);

	/* sampling: the same seed prints the same ids, another seed others */
	char a[4096], b[4096];
	cr_assert_eq(tool(NULL, "run", STORIES, "--steps", "60", "--seed", "5", "--no-stop", "-q", NULL), 0);
	strcpy(a, out);
	cr_assert_eq(tool(NULL, "run", STORIES, "--steps", "60", "--seed", "5", "--no-stop", "-q", NULL), 0);
	cr_assert_str_eq(a, out);
	cr_assert_eq(tool(NULL, "run", STORIES, "--steps", "60", "--seed", "6", "--no-stop", "-q", NULL), 0);
	strcpy(b, out);
	cr_assert_str_neq(a, b);
}

Test(cli, bad_models_and_options_fail_cleanly, .init = need_stories, .fini = teardown)
{
	const char *cut = rt_path(dir, "cut.bin");
	cr_assert_eq(rt_copy_resized(STORIES, cut, 100000), 0);
	int rc = tool(NULL, "run", cut, NULL);
	cr_assert_eq(rc, 1, "exit %d", rc);
	cr_assert(strstr(err_, cut) && strstr(err_, "truncated"), "%s", err_);
	cr_assert_str_eq(out, "");

	const char *hdr = rt_path(dir, "h.bin");
	patch_header(STORIES, hdr, 3, 7);
	rc = tool(NULL, "run", hdr, NULL);
	cr_assert_eq(rc, 1);
	cr_assert(strstr(err_, "n_heads = 7"), "%s", err_);

	rc = tool(NULL, "pack", cut, rt_path(dir, "o.img"), NULL);
	cr_assert_eq(rc, 1, "pack exit %d", rc);
	cr_assert(strstr(err_, "truncated"), "%s", err_);

	rc = tool(NULL, "run", rt_path(dir, "nothing.bin"), NULL);
	cr_assert_eq(rc, 1);
	cr_assert(strstr(err_, "nothing.bin") && strstr(err_, "cannot open"), "%s", err_);

	const struct {
		const char *opt, *val, *needle;
	} bad[] = {
		{"--steps", "ten", "--steps"},
		{"--temperature", "-1", "--temperature"},
		{"--topp", "1.5", "--topp"},
		{"--threads", "0", "--threads"},
		{"--load", "swap", "--load"},
		{"--budget", "40%", "--budget applies to --load flexpage"},
		{"--prompt-ids", "1,x", "--prompt-ids"},
		{"--kernels", "neon", "--kernels"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		rc = tool(NULL, "run", STORIES, bad[i].opt, bad[i].val, NULL);
		cr_assert_eq(rc, 2, "%s %s: exit %d", bad[i].opt, bad[i].val, rc);
		cr_assert(strstr(err_, bad[i].needle), "%s %s: %s", bad[i].opt, bad[i].val, err_);
	}
	rc = tool(NULL, "run", STORIES, "--prompt-ids", "1,9999", NULL);
	cr_assert_eq(rc, 1);
	cr_assert(strstr(err_, "not in the vocabulary"), "%s", err_);

	const char *img = rt_path(dir, "s.img");
	char err[512];
	cr_assert_eq(import_to(STORIES, img, NULL, err, sizeof err), 0, "%s", err);
	rc = tool(NULL, "run", img, "--budget", "1K", NULL);
	cr_assert_eq(rc, 1, "a budget below the working set: exit %d", rc);
	cr_assert(strstr(err_, "budget"), "%s", err_);
	rc = tool(NULL, "run", img, "--budget", "150%", NULL);
	cr_assert_eq(rc, 2);
	/* A streaming reserve under one chunk is a size without its unit. */
	rc = tool(NULL, "run", img, "--preserve", "balanced", "--stream", "32", NULL);
	cr_assert_eq(rc, 1, "--stream 32: exit %d", rc);
	cr_assert(strstr(err_, "--stream: '32' is 32 B, less than one chunk"), "%s", err_);
	cr_assert_str_eq(out, "");
	rc = tool(NULL, "plan", img, "--budget", "50%", "--stream", "1K", NULL);
	cr_assert_eq(rc, 2, "plan --stream 1K: exit %d", rc);
	cr_assert(strstr(err_, "--stream: '1K' is 1.00 KiB, less than one chunk"), "%s", err_);
}

/* A resident q4_0 model runs on the repacked layout unless --no-repack,
 * and prints the ids the file's layout (a mapping, never repacked) does.
 * The shape has a kv matrix of 2 blocks (half a unit) and a classifier of
 * 100 rows (a partial group of 8), so the repacked matrices are larger
 * (padding) and the weights read per token say which layout ran. */
static void per_token(const char *err, char *buf, size_t n)
{
	const char *e = strstr(err, " of weights per token");
	const char *b = e;
	while (b && b > err && b[-1] != '(')
		b--;
	cr_assert(e && b > err, "no weights per token: %s", err);
	snprintf(buf, n, "%.*s", (int)(e - b), b);
}

Test(cli, run_repacks_resident_q4_0_to_the_same_ids, .init = setup, .fini = teardown)
{
	const char *img = rt_path(dir, "q4.img");
	int rc = tool(NULL, "synth", "--shape", "128,256,2,4,2,100,64,0", "--quant", "q4_0", "-o", img,
	              "-q", NULL);
	cr_assert_eq(rc, 0, "%s", err_);
	char want[4096];
	rc = tool(NULL, "run", img, "--load", "mmap", "--steps", "40", "--temperature", "0",
	          "--no-stop", "--ids", NULL);
	cr_assert_eq(rc, 0, "%s", err_);
	cr_assert(!strstr(err_, "repacked"), "a mapping is repacked: %s", err_);
	strcpy(want, out);
	char file_bytes[64], bytes[64];
	per_token(err_, file_bytes, sizeof file_bytes);
	const char *threads[] = {"1", "2", "3"};
	for (int i = 0; i < 3; i++) {
		rc = tool(NULL, "run", img, "--load", "resident", "--threads", threads[i], "--steps", "40",
		          "--temperature", "0", "--no-stop", "--ids", NULL);
		cr_assert_eq(rc, 0, "%s", err_);
		cr_assert(strstr(err_, "load resident (q4_0 repacked)"), "%s", err_);
		cr_assert_str_eq(out, want, "repacked on %s threads prints other ids", threads[i]);
		per_token(err_, bytes, sizeof bytes);
		cr_assert_str_neq(bytes, file_bytes, "not repacked: %s", err_);
	}
	rc = tool(NULL, "run", img, "--load", "resident", "--no-repack", "--steps", "40",
	          "--temperature", "0", "--no-stop", "--ids", NULL);
	cr_assert_eq(rc, 0, "%s", err_);
	cr_assert(strstr(err_, "load resident,") && !strstr(err_, "repacked"), "%s", err_);
	cr_assert_str_eq(out, want);
	per_token(err_, bytes, sizeof bytes);
	cr_assert_str_eq(bytes, file_bytes);
}

Test(cli, synth_writes_a_runnable_model, .init = setup, .fini = teardown)
{
	const char *img = rt_path(dir, "syn.img");
	int rc = tool(NULL, "synth", "--shape", "260k", "-o", img, "-q", NULL);
	cr_assert_eq(rc, 0, "%s", err_);
	rc = tool(NULL, "run", img, "--steps", "20", "--temperature", "0", "--no-stop", "-q", NULL);
	cr_assert_eq(rc, 0, "%s", err_);
	int n = 0;
	for (const char *p = out; *p; p++)
		n += *p == ' ';
	cr_assert_eq(n, 19, "20 ids: %s", out);

	rc = tool(NULL, "synth", "--shape", "260k", "--quant", "q8_0", "-o", rt_path(dir, "q.img"), NULL);
	cr_assert_eq(rc, 1);
	cr_assert(strstr(err_, "cannot be q8_0") && strstr(err_, "172"), "%s", err_);
	rc = tool(NULL, "synth", "--shape", "13b", "-o", rt_path(dir, "q.img"), NULL);
	cr_assert_eq(rc, 2);
	cr_assert(strstr(err_, "--shape"), "%s", err_);
	rc = tool(NULL, "synth", "--shape", "260k", "-o", img, NULL);
	cr_assert_eq(rc, 1, "OUT exists: exit %d", rc);
	cr_assert(strstr(err_, "--force"), "%s", err_);
}
