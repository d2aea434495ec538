/* The flexpage command, run as a program, on the shared llama2.c
 * checkpoint: packed opaque and as a model, and read back. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <flexpage/flexpage.h>

#include "testutil.h"
#include "cli_util.h"

/* ------------------------------------------------------------------ */
/* The shared llama2.c checkpoint                                       */

static char *shared_model(void)
{
	char *m = tu_join(FLEXPAGE_SHARED_MODELS, "stories260K.bin");
	if (access(m, R_OK)) {
		free(m);
		cr_skip_test("%s/stories260K.bin is missing: the checkpoint tests need it",
		             FLEXPAGE_SHARED_MODELS);
	}
	return m;
}

Test(cli, cat_opaque_checkpoint_equals_file)
{
	require_uffd();
	char *model = shared_model();
	size_t n;
	uint8_t *want = tu_read_file(model, &n);
	cr_assert(want && n > 28);
	char *out = path("stories.fpi");
	static const char *const variants[][5] = {
		{"--chunk", "64K", "--codec", "raw", "25%"},
		{"--chunk", "64K", "--codec", "zstd", "200K"},
		{"--chunk", "256K", "--codec", "zstd:19", "100%"},
	};
	for (size_t k = 0; k < 3; k++) {
		struct tu_proc p = RUN("pack", model, out, "--opaque", "--force", "-q", variants[k][0],
		                       variants[k][1], variants[k][2], variants[k][3]);
		expect_exit(&p, 0, "pack --opaque");
		tu_proc_free(&p);
		p = RUN("cat", out);
		expect_exit(&p, 0, "cat");
		expect_output(&p, want, n, "cat of the opaque checkpoint");
		tu_proc_free(&p);
		p = RUN("cat", out, "--budget", variants[k][4]);
		expect_exit(&p, 0, "cat --budget");
		expect_output(&p, want, n, "cat --budget of the opaque checkpoint");
		tu_proc_free(&p);
		p = RUN("inspect", out);
		expect_exit(&p, 0, "inspect");
		cr_assert(strstr(p.out, "arch=opaque") && strstr(p.out, "verdict: valid"), "%s", p.out);
		tu_proc_free(&p);
	}
	free(out);
	free(want);
	free(model);
}

Test(cli, pack_checkpoint_as_model)
{
	char *model = shared_model();
	char *out = path("stories.fpi");
	struct tu_proc p = RUN("pack", model, out, "-q", "--chunk", "64K");
	expect_exit(&p, 0, "pack of the checkpoint");
	tu_proc_free(&p);
	p = RUN("inspect", out);
	expect_exit(&p, 0, "inspect of the packed checkpoint");
	cr_assert(strstr(p.out, "verdict: valid"), "%s", p.out);
	cr_assert(strstr(p.out, "token_embd") && strstr(p.out, "blk.0.") && strstr(p.out, "blk.4."),
	          "the tensor table lacks GGUF-named tensors:\n%s", p.out);
	cr_assert(!strstr(p.out, "blk.5."), "more layers than the checkpoint's 5:\n%s", p.out);
	cr_assert(strstr(p.out, "f32"), "%s", p.out);
	tu_proc_free(&p);
	/* hidden_dim 172 is not a multiple of 32: q8_0 must either work or
	 * refuse clearly, leaving OUT as it was. */
	size_t n0;
	uint8_t *before = tu_read_file(out, &n0);
	p = RUN("pack", model, out, "-q", "--force", "--quant", "q8_0", "--codec", "zstd");
	cr_assert(p.exited, "pack --quant q8_0 killed by signal %d", p.sig);
	if (p.code) {
		expect_says(&p, "multiple of 32|32", "pack --quant q8_0 of a 172-wide checkpoint");
		expect_file(out, before, n0, "a refused pack --quant q8_0");
	} else {
		struct tu_proc q = RUN("inspect", out);
		expect_exit(&q, 0, "inspect of the q8_0 checkpoint");
		cr_assert(strstr(q.out, "q8_0") && strstr(q.out, "verdict: valid"), "%s", q.out);
		tu_proc_free(&q);
	}
	tu_proc_free(&p);
	const char *const names[] = {"stories.fpi", NULL};
	expect_no_extras(names, "pack of the checkpoint");
	free(before);
	free(out);
	free(model);
}

/* llama2.c checkpoint geometry, from its 7-int header. */
struct ckpt {
	int dim, hidden, layers, heads, kv_heads, vocab, seq;
	uint64_t kv_dim;
	const float *w; /* the floats after the header */
	size_t nfloats;
};

/* The checkpoint slice that a GGUF-named tensor must hold; NULL if the
 * name is not one the checkpoint defines. */
static const float *ckpt_slice(const struct ckpt *c, const char *name, uint64_t *count)
{
	uint64_t d = (uint64_t)c->dim, h = (uint64_t)c->hidden, L = (uint64_t)c->layers;
	uint64_t V = (uint64_t)(c->vocab < 0 ? -c->vocab : c->vocab), kv = c->kv_dim;
	uint64_t hs = d / (uint64_t)c->heads;
	struct { const char *suffix; uint64_t per_layer; } order[] = {
		{"attn_norm", d}, {"attn_q", d * d}, {"attn_k", kv * d}, {"attn_v", kv * d},
		{"attn_output", d * d}, {"ffn_norm", d}, {"ffn_gate", h * d}, {"ffn_down", d * h},
		{"ffn_up", h * d},
	};
	uint64_t at = V * d; /* after token_embd */
	if (!strcmp(name, "token_embd.weight")) {
		*count = V * d;
		return c->w;
	}
	int l;
	char suffix[64];
	if (sscanf(name, "blk.%d.%63[a-z_].weight", &l, suffix) == 2 && l >= 0 && (uint64_t)l < L) {
		for (size_t k = 0; k < sizeof order / sizeof order[0]; k++) {
			if (!strcmp(order[k].suffix, suffix)) {
				*count = order[k].per_layer;
				return c->w + at + (uint64_t)l * order[k].per_layer;
			}
			at += L * order[k].per_layer;
		}
		return NULL;
	}
	for (size_t k = 0; k < sizeof order / sizeof order[0]; k++)
		at += L * order[k].per_layer;
	if (!strcmp(name, "output_norm.weight")) {
		*count = d;
		return c->w + at;
	}
	at += d + 2 * (uint64_t)c->seq * (hs / 2);
	if (!strcmp(name, "output.weight") && c->vocab < 0) {
		*count = V * d;
		return c->w + at;
	}
	return NULL;
}

Test(cli, cat_checkpoint_tensors_match_checkpoint)
{
	/* Packed as a model (f32), every tensor read through the pager holds
	 * exactly the checkpoint's floats for it. */
	require_uffd();
	char *model = shared_model();
	size_t n;
	uint8_t *raw = tu_read_file(model, &n);
	cr_assert(raw && n > 28);
	int32_t hdr[7];
	memcpy(hdr, raw, sizeof hdr);
	struct ckpt c = {hdr[0], hdr[1], hdr[2], hdr[3], hdr[4], hdr[5], hdr[6], 0,
	                 (const float *)(raw + 28), (n - 28) / 4};
	c.kv_dim = (uint64_t)c.dim * (uint64_t)c.kv_heads / (uint64_t)c.heads;
	char *out = path("stories.fpi");
	struct tu_proc p = RUN("pack", model, out, "-q", "--chunk", "64K", "--codec", "zstd");
	expect_exit(&p, 0, "pack of the checkpoint");
	tu_proc_free(&p);
	fp_image *img = fp_image_open(out);
	cr_assert(img, "%s", fp_last_error());
	p = RUN("cat", out, "--budget", "30%");
	expect_exit(&p, 0, "cat of the model image");
	const struct fp_image_info *info = fp_image_info(img);
	uint64_t pos = 0, matched = 0;
	const char *required[] = {"token_embd.weight", "blk.0.attn_q.weight", "blk.4.ffn_down.weight",
	                          "output_norm.weight", NULL};
	for (const char **r = required; *r; r++)
		cr_assert(fp_image_find(img, *r), "no tensor %s", *r);
	for (uint32_t i = 0; i < info->n_tensors; i++) {
		const struct fp_tensor_desc *t = fp_image_tensor(img, i);
		cr_assert_leq(pos + t->size, p.out_len, "cat's output ends inside %s", t->name);
		uint64_t count;
		const float *want = ckpt_slice(&c, t->name, &count);
		if (want) {
			cr_assert_eq(t->type, 0u, "%s is not f32", t->name);
			cr_assert_eq(t->size, count * 4, "%s: %llu bytes, the checkpoint has %llu floats",
			             t->name, (unsigned long long)t->size, (unsigned long long)count);
			cr_assert_leq((const uint8_t *)(want + count), raw + n, "test: slice past the file");
			cr_assert_arr_eq(p.out + pos, want, t->size, "%s differs from the checkpoint", t->name);
			matched++;
		}
		pos += t->size;
	}
	cr_assert_eq(pos, p.out_len, "cat wrote %zu bytes, the tensors hold %llu", p.out_len,
	             (unsigned long long)pos);
	cr_assert_geq(matched, 2 + 9 * (uint64_t)c.layers, "only %llu tensors matched checkpoint names",
	              (unsigned long long)matched);
	tu_proc_free(&p);
	fp_image_close(img);
	free(out);
	free(raw);
	free(model);
}

Test(cli, pack_synthetic_checkpoint_q8_0)
{
	/* A small checkpoint whose rows are multiples of 32: --quant q8_0
	 * makes the matrices q8_0 and keeps the norms f32. */
	const int32_t hdr[7] = {64, 128, 2, 4, 4, 96, 16};
	uint64_t d = 64, h = 128, L = 2, V = 96, S = 16, hs = 16;
	uint64_t floats = V * d + L * (d + 4 * d * d + d + 3 * h * d) + d + 2 * S * (hs / 2);
	size_t n = 28 + floats * 4;
	uint8_t *b = malloc(n);
	memcpy(b, hdr, 28);
	float *f = (float *)(b + 28);
	uint64_t rng = 5;
	for (uint64_t k = 0; k < floats; k++)
		f[k] = (float)((int64_t)(tu_rand(&rng) % 2001) - 1000) / 1000.0f;
	char *in = path("tiny.bin"), *out = path("tiny.fpi");
	cr_assert(!tu_write_file(in, b, n));
	struct tu_proc p = RUN("pack", in, out, "-q", "--quant", "q8_0", "--chunk", "64K");
	expect_exit(&p, 0, "pack --quant q8_0");
	tu_proc_free(&p);
	fp_image *img = fp_image_open(out);
	cr_assert(img, "%s", fp_last_error());
	const struct fp_tensor_desc *q = fp_image_find(img, "blk.1.attn_q.weight");
	const struct fp_tensor_desc *nrm = fp_image_find(img, "blk.1.attn_norm.weight");
	cr_assert(q && nrm, "tensors missing");
	cr_assert_eq(q->type, 8u, "attn_q is not q8_0");
	cr_assert_eq(q->size, d * d / 32 * 34);
	cr_assert_eq(nrm->type, 0u, "attn_norm is not f32");
	fp_image_close(img);
	p = RUN("inspect", out);
	expect_exit(&p, 0, "inspect");
	cr_assert(strstr(p.out, "verdict: valid"), "%s", p.out);
	tu_proc_free(&p);
	free(b);
	free(in);
	free(out);
}
