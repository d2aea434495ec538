/* The GGUF reader and writer at library level, against references written
 * from the spec (gguf_util.c): the real stories260K.gguf read independently
 * and compared byte for byte with the llama2.c checkpoint of the same
 * weights; the writer's files read back; every kind of broken header, each
 * with its errno and a message naming the file and the field; and a
 * mutation fuzz of the reader. */
#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <flexpage/flexpage.h>

#include "gguf_util.h"
#include "testutil.h"

#define MODELS FLEXPAGE_SHARED_MODELS

static char *g_dir;

static void setup(void)
{
	g_dir = tu_tmpdir();
	cr_assert(g_dir, "cannot create a temporary directory");
}

static void teardown(void)
{
	tu_rmtree(g_dir);
	free(g_dir);
}

TestSuite(gguf, .init = setup, .fini = teardown, .timeout = 300);

static char *path(const char *name)
{
	char *p = tu_join(g_dir, name);
	cr_assert(p);
	return p;
}

static uint8_t *read_model(const char *name, size_t *n)
{
	char p[4096];
	snprintf(p, sizeof p, "%s/%s", MODELS, name);
	uint8_t *b = tu_read_file(p, n);
	if (!b)
		cr_skip_test("%s is not there (../shared/models beside the project)", p);
	return b;
}

/* Bytes of a tensor by the reference block table. */
static uint64_t ref_bytes(uint32_t type, uint32_t n_dims, const uint64_t *ne)
{
	uint64_t n = ne[0] / ref_block_elems(type) * ref_block_bytes(type);
	for (uint32_t d = 1; d < n_dims; d++)
		n *= ne[d];
	return n;
}

/* ------------------------------------------------------------------ */
/* stories260K.gguf                                                     */

/* Where each tensor of the GGUF lies in the llama2.c checkpoint (see
 * ../shared/models/README.md): groups stacked over the layers. */
static uint64_t checkpoint_offset(const char *name, const int32_t *h)
{
	const uint64_t d = (uint64_t)h[0], hd = (uint64_t)h[1], L = (uint64_t)h[2], V = (uint64_t)h[5];
	const uint64_t kv = d * (uint64_t)h[4] / (uint64_t)h[3];
	const struct {
		const char *suffix;
		uint64_t per_layer;
	} groups[] = {
		{"attn_norm", d}, {"attn_q", d * d}, {"attn_k", kv * d}, {"attn_v", kv * d},
		{"attn_output", d * d}, {"ffn_norm", d}, {"ffn_gate", hd * d}, {"ffn_down", d * hd},
		{"ffn_up", hd * d},
	};
	if (!strcmp(name, "token_embd.weight") || !strcmp(name, "output.weight"))
		return 28;
	uint64_t at = 28 + 4 * V * d;
	int l;
	char suffix[64];
	if (sscanf(name, "blk.%d.%63[a-z_].weight", &l, suffix) == 2) {
		/* the checkpoint's order: rms_att wq wk wv wo rms_ffn w1 w2 w3 */
		for (size_t g = 0; g < 9; g++) {
			if (!strcmp(groups[g].suffix, suffix))
				return at + 4 * (uint64_t)l * groups[g].per_layer;
			at += 4 * L * groups[g].per_layer;
		}
	}
	cr_assert_str_eq(name, "output_norm.weight", "unexpected tensor %s", name);
	for (size_t g = 0; g < 9; g++)
		at += 4 * L * groups[g].per_layer;
	return at;
}

Test(gguf, stories260K_header_matches_an_independent_reading)
{
	size_t n, bn;
	uint8_t *file = read_model("stories260K.gguf", &n);
	uint8_t *bin = read_model("stories260K.bin", &bn);
	struct gw ref;
	cr_assert(!gw_read(file, n, &ref));
	fp_gguf *g = fp_gguf_open(MODELS "/stories260K.gguf");
	cr_assert(g, "%s", fp_last_error());
	cr_assert_eq(fp_gguf_version(g), 3);
	cr_assert_eq(fp_gguf_n_kv(g), 19);
	cr_assert_eq(fp_gguf_n_tensors(g), 48);
	cr_assert_eq(fp_gguf_alignment(g), ref.alignment);
	cr_assert_eq(fp_gguf_data_offset(g), ref.data_offset);
	cr_assert_eq(fp_gguf_file_size(g), n);
	for (uint64_t i = 0; i < 19; i++) {
		cr_assert_str_eq(fp_gguf_key(g, i), ref.keys[i]);
		cr_assert_eq(fp_gguf_type(g, i), (int)ref.types[i], "key %s", ref.keys[i]);
		cr_assert_eq(fp_gguf_find(g, ref.keys[i]), (int64_t)i);
	}
	const struct {
		const char *key;
		uint64_t v;
	} ints[] = {
		{"llama.context_length", 2048}, {"llama.embedding_length", 64},
		{"llama.feed_forward_length", 172}, {"llama.attention.head_count", 8},
		{"llama.attention.head_count_kv", 4}, {"llama.block_count", 5},
		{"llama.rope.dimension_count", 8}, {"tokenizer.ggml.bos_token_id", 1},
		{"tokenizer.ggml.eos_token_id", 2}, {"tokenizer.ggml.unknown_token_id", 0},
	};
	for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
		uint64_t v = 99;
		cr_assert(!fp_gguf_get_u64(g, ints[i].key, &v), "%s", fp_last_error());
		cr_assert_eq(v, ints[i].v, "%s = %llu", ints[i].key, (unsigned long long)v);
	}
	double eps;
	float eps_file;
	int64_t k = fp_gguf_find(g, "llama.attention.layer_norm_rms_epsilon");
	cr_assert(k >= 0 && !fp_gguf_get_f64(g, "llama.attention.layer_norm_rms_epsilon", &eps));
	memcpy(&eps_file, file + ref.value_at[k], 4);
	cr_assert_eq(eps, (double)eps_file);
	cr_assert(fabs(eps - 1e-5) < 1e-9);
	const char *s;
	uint64_t len;
	cr_assert(!fp_gguf_get_str(g, "general.architecture", &s, &len));
	cr_assert(len == 5 && !strcmp(s, "llama"));
	int et;
	const void *data;
	cr_assert(!fp_gguf_get_arr(g, "tokenizer.ggml.tokens", &et, &len, &data));
	cr_assert(et == FP_GGUF_STRING && len == 512);
	const char *first[] = {"<unk>", "<s>", "</s>", "<0x00>"};
	for (int i = 0; i < 4; i++) {
		cr_assert(!fp_gguf_arr_str(g, "tokenizer.ggml.tokens", (uint64_t)i, &s, &len));
		cr_assert(len == strlen(first[i]) && !memcmp(s, first[i], len), "token %d", i);
	}
	k = fp_gguf_find(g, "tokenizer.ggml.scores");
	cr_assert(!fp_gguf_get_arr(g, "tokenizer.ggml.scores", &et, &len, &data));
	cr_assert(et == FP_GGUF_FLOAT32 && len == 512);
	cr_assert(!memcmp(data, file + ref.value_at[k] + 12, 512 * 4), "scores are the file's bytes");

	int32_t h[7];
	memcpy(h, bin, sizeof h);
	for (uint64_t i = 0; i < 48; i++) {
		const struct fp_gguf_tensor *t = fp_gguf_tensor(g, i);
		const struct gw_tensor *r = &ref.tensors[i];
		cr_assert_str_eq(t->name, r->name);
		cr_assert(t->type == r->type && t->type == FP_GGML_F32 && t->n_dims == r->n_dims);
		cr_assert(!memcmp(t->ne, r->ne, sizeof t->ne), "%s: shape", t->name);
		cr_assert_eq(t->offset, ref.data_offset + r->offset, "%s: offset", t->name);
		cr_assert_eq(t->size, ref_bytes(r->type, r->n_dims, r->ne), "%s: size", t->name);
		cr_assert_eq(fp_gguf_find_tensor(g, t->name), t);
		uint64_t at = checkpoint_offset(t->name, h);
		cr_assert(at + t->size <= bn);
		cr_assert(!memcmp(file + t->offset, bin + at, t->size),
		          "%s: its bytes differ from the checkpoint's at %llu", t->name,
		          (unsigned long long)at);
	}
	cr_assert_null(fp_gguf_tensor(g, 48));
	cr_assert_null(fp_gguf_find_tensor(g, "no.such.tensor"));
	cr_assert_eq(errno, ENOENT);
	fp_gguf_close(g);
	free(file);
	free(bin);
}

Test(gguf, ggml_type_sizes_are_ggml_s)
{
	for (uint32_t t = 0; t < 48; t++) {
		uint32_t be = 0, bb = 0;
		int rc = fp_ggml_type_size(t, &be, &bb);
		if (!ref_block_elems(t)) {
			cr_assert_eq(rc, -EINVAL, "type %u is no ggml type", t);
			cr_assert_null(fp_ggml_type_name(t));
			continue;
		}
		cr_assert(!rc && be == ref_block_elems(t) && bb == ref_block_bytes(t),
		          "type %u (%s): %u values in %u bytes, ggml has %u in %u", t,
		          fp_ggml_type_name(t), be, bb, ref_block_elems(t), ref_block_bytes(t));
	}
	cr_assert_str_eq(fp_ggml_type_name(FP_GGML_Q4_K), "q4_K");
	cr_assert_str_eq(fp_ggml_type_name(FP_GGML_IQ2_XXS), "iq2_xxs");
	uint64_t b, ne[3] = {512, 3, 2};
	cr_assert(!fp_ggml_nbytes(FP_GGML_Q4_K, 3, ne, &b) && b == 2 * 144 * 3 * 2);
	ne[0] = 100;
	cr_assert_eq(fp_ggml_nbytes(FP_GGML_Q4_K, 1, ne, &b), -EDOM);
	uint64_t big[2] = {1ull << 40, 1ull << 40};
	cr_assert_eq(fp_ggml_nbytes(FP_GGML_F32, 2, big, &b), -EOVERFLOW);
	cr_assert_eq(fp_ggml_nbytes(4, 1, ne, &b), -EINVAL);
}

/* ------------------------------------------------------------------ */
/* Getters, on the small crafted file                                   */

Test(gguf, getters_convert_what_fits_and_refuse_the_rest)
{
	struct gb b;
	struct small_gguf_at at;
	small_gguf(&b, &at, NULL, 3);
	fp_gguf *g = fp_gguf_parse(b.p, b.len, b.len, "small.gguf");
	cr_assert(g, "%s", fp_last_error());
	uint64_t u;
	int64_t i;
	double d;
	int flag;
	cr_assert(!fp_gguf_get_i64(g, "test.flaX", &i) && i == -5);
	cr_assert_eq(fp_gguf_get_u64(g, "test.flaX", &u), -ERANGE);
	cr_assert(strstr(fp_last_error(), "small.gguf") && strstr(fp_last_error(), "test.flaX"));
	cr_assert(!fp_gguf_get_f64(g, "test.flaX", &d) && d == -5.0);
	cr_assert(!fp_gguf_get_u64(g, "general.alignment", &u) && u == 32);
	cr_assert(!fp_gguf_get_bool(g, "test.flag", &flag) && flag == 1);
	cr_assert_eq(fp_gguf_get_bool(g, "general.alignment", &flag), -EINVAL);
	cr_assert_eq(fp_gguf_get_u64(g, "test.list", &u), -EINVAL);
	cr_assert_eq(fp_gguf_get_u64(g, "no.such.key", &u), -ENOENT);
	cr_assert(strstr(fp_last_error(), "no.such.key"));
	cr_assert_eq(fp_gguf_find(g, "no.such.key"), -ENOENT);
	const char *s;
	uint64_t n;
	cr_assert_eq(fp_gguf_get_str(g, "test.flag", &s, &n), -EINVAL);
	int et;
	const void *data;
	cr_assert(!fp_gguf_get_arr(g, "test.list", &et, &n, &data) && et == FP_GGUF_UINT32 && n == 4);
	for (uint32_t k = 0; k < 4; k++) {
		uint32_t v;
		memcpy(&v, (const char *)data + 4 * k, 4);
		cr_assert_eq(v, 100 * (k + 1));
	}
	cr_assert(!fp_gguf_arr_str(g, "test.names", 2, &s, &n) && n == 3 && !memcmp(s, "zzz", 3));
	cr_assert_eq(fp_gguf_arr_str(g, "test.names", 3, &s, &n), -ERANGE);
	cr_assert_eq(fp_gguf_arr_str(g, "test.list", 0, &s, &n), -EINVAL);
	cr_assert(!fp_gguf_get_arr(g, "test.nested", &et, &n, NULL) && et == FP_GGUF_ARRAY && n == 1);
	cr_assert_eq(fp_gguf_type(g, 99), -ENOENT);
	cr_assert_null(fp_gguf_key(g, 99));
	cr_assert_eq(fp_gguf_tensor(g, 1)->offset, at.data_offset + 128);
	fp_gguf_close(g);
	gb_free(&b);
}

/* ------------------------------------------------------------------ */
/* The writer                                                           */

Test(gguf, writer_output_reads_back_value_for_value_and_byte_for_byte)
{
	char *out = path("w.gguf");
	fp_gguf_writer *w = fp_gguf_writer_create(out);
	cr_assert(w, "%s", fp_last_error());
	const int16_t i16s[3] = {-3, 0, 32767};
	const float f32s[2] = {1.5f, -2.25f};
	const uint64_t u64s[2] = {1, UINT64_MAX};
	const uint8_t bools[3] = {1, 0, 1};
	const char *strs[3] = {"a", "", "\xe2\x96\x81the"};
	struct gb nest = {0}; /* two arrays of two u8: [[1, 2], [3, 4]] */
	for (int k = 0; k < 2; k++) {
		gb_u32(&nest, FP_GGUF_UINT8);
		gb_u64(&nest, 2);
		gb_bytes(&nest, k ? "\x03\x04" : "\x01\x02", 2);
	}
	cr_assert(!fp_gguf_writer_set_alignment(w, 64));
	cr_assert(!fp_gguf_set_u8(w, "v.u8", 200) && !fp_gguf_set_i8(w, "v.i8", -100));
	cr_assert(!fp_gguf_set_u16(w, "v.u16", 60000) && !fp_gguf_set_i16(w, "v.i16", -30000));
	cr_assert(!fp_gguf_set_u32(w, "v.u32", 4000000000u) && !fp_gguf_set_i32(w, "v.i32", -7));
	cr_assert(!fp_gguf_set_u64(w, "v.u64", UINT64_MAX) && !fp_gguf_set_i64(w, "v.i64", INT64_MIN));
	cr_assert(!fp_gguf_set_f32(w, "v.f32", 0.25f) && !fp_gguf_set_f64(w, "v.f64", 1e300));
	cr_assert(!fp_gguf_set_bool(w, "v.bool", 1) && !fp_gguf_set_str(w, "v.str", "hello"));
	cr_assert(!fp_gguf_set_arr(w, "a.i16", FP_GGUF_INT16, i16s, 3));
	cr_assert(!fp_gguf_set_arr(w, "a.f32", FP_GGUF_FLOAT32, f32s, 2));
	cr_assert(!fp_gguf_set_arr(w, "a.u64", FP_GGUF_UINT64, u64s, 2));
	cr_assert(!fp_gguf_set_arr(w, "a.bool", FP_GGUF_BOOL, bools, 3));
	cr_assert(!fp_gguf_set_arr_str(w, "a.str", strs, 3));
	cr_assert(!fp_gguf_set_arr_raw(w, "a.nested", FP_GGUF_ARRAY, 2, nest.p, nest.len),
	          "%s", fp_last_error());
	/* tensors: given, streamed, given, streamed */
	uint8_t f32d[60], q8d[2 * 2 * 34], q4kd[144], f16d[14];
	tu_fill_random(1, f32d, sizeof f32d);
	tu_fill_random(2, q8d, sizeof q8d);
	tu_fill_random(3, q4kd, sizeof q4kd);
	tu_fill_random(4, f16d, sizeof f16d);
	uint64_t ne_f32[2] = {5, 3}, ne_q8[2] = {64, 2}, ne_q4k[1] = {256}, ne_f16[1] = {7};
	cr_assert(!fp_gguf_writer_add_tensor(w, "t.f32", FP_GGML_F32, 2, ne_f32, f32d));
	cr_assert(!fp_gguf_writer_add_tensor(w, "t.q8", FP_GGML_Q8_0, 2, ne_q8, NULL));
	cr_assert(!fp_gguf_writer_add_tensor(w, "t.f16", FP_GGML_F16, 1, ne_f16, f16d));
	cr_assert(!fp_gguf_writer_add_tensor(w, "t.q4k", FP_GGML_Q4_K, 1, ne_q4k, NULL));
	cr_assert(!fp_gguf_writer_write(w, q8d, 10) && !fp_gguf_writer_write(w, q8d + 10, 100));
	/* the rest of t.q8 and all of t.q4k in one call across the boundary */
	uint8_t rest[sizeof q8d - 110 + sizeof q4kd];
	memcpy(rest, q8d + 110, sizeof q8d - 110);
	memcpy(rest + sizeof q8d - 110, q4kd, sizeof q4kd);
	cr_assert(!fp_gguf_writer_write(w, rest, sizeof rest), "%s", fp_last_error());
	cr_assert(!fp_gguf_writer_finish(w), "%s", fp_last_error());
	const char *expect[] = {"w.gguf", NULL};
	char *extra = tu_dir_extras(g_dir, expect);
	cr_assert_str_empty(extra, "left behind: %s", extra);
	free(extra);

	size_t n;
	uint8_t *file = tu_read_file(out, &n);
	struct gw ref;
	cr_assert(file && !gw_read(file, n, &ref));
	cr_assert(ref.version == 3 && ref.n_kv == 19 && ref.n_tensors == 4 && ref.alignment == 64);
	const void *want[4] = {f32d, q8d, f16d, q4kd};
	const size_t want_n[4] = {sizeof f32d, sizeof q8d, sizeof f16d, sizeof q4kd};
	uint64_t end = 0;
	for (int t = 0; t < 4; t++) {
		cr_assert_eq(ref.tensors[t].offset % 64, 0);
		cr_assert(!memcmp(file + ref.data_offset + ref.tensors[t].offset, want[t], want_n[t]),
		          "tensor %s: its bytes in the file", ref.tensors[t].name);
		end = ref.tensors[t].offset + want_n[t];
	}
	cr_assert_eq(n, ref.data_offset + (end + 63) / 64 * 64, "the last tensor is padded too");

	fp_gguf *g = fp_gguf_open(out);
	cr_assert(g, "%s", fp_last_error());
	uint64_t u;
	int64_t i;
	double d;
	int b;
	const char *s;
	cr_assert(!fp_gguf_get_u64(g, "v.u8", &u) && u == 200);
	cr_assert(!fp_gguf_get_i64(g, "v.i8", &i) && i == -100);
	cr_assert(!fp_gguf_get_u64(g, "v.u16", &u) && u == 60000);
	cr_assert(!fp_gguf_get_i64(g, "v.i16", &i) && i == -30000);
	cr_assert(!fp_gguf_get_u64(g, "v.u32", &u) && u == 4000000000u);
	cr_assert(!fp_gguf_get_i64(g, "v.i32", &i) && i == -7);
	cr_assert(!fp_gguf_get_u64(g, "v.u64", &u) && u == UINT64_MAX);
	cr_assert_eq(fp_gguf_get_i64(g, "v.u64", &i), -ERANGE);
	cr_assert(!fp_gguf_get_i64(g, "v.i64", &i) && i == INT64_MIN);
	cr_assert(!fp_gguf_get_f64(g, "v.f32", &d) && d == 0.25);
	cr_assert(!fp_gguf_get_f64(g, "v.f64", &d) && d == 1e300);
	cr_assert(!fp_gguf_get_bool(g, "v.bool", &b) && b == 1);
	cr_assert(!fp_gguf_get_str(g, "v.str", &s, &u) && u == 5 && !strcmp(s, "hello"));
	int et;
	const void *data;
	cr_assert(!fp_gguf_get_arr(g, "a.i16", &et, &u, &data) && et == FP_GGUF_INT16 && u == 3);
	cr_assert(!memcmp(data, i16s, sizeof i16s));
	cr_assert(!fp_gguf_get_arr(g, "a.f32", &et, &u, &data) && et == FP_GGUF_FLOAT32);
	cr_assert(!memcmp(data, f32s, sizeof f32s));
	cr_assert(!fp_gguf_get_arr(g, "a.u64", &et, &u, &data) && !memcmp(data, u64s, sizeof u64s));
	cr_assert(!fp_gguf_get_arr(g, "a.bool", &et, &u, &data) && !memcmp(data, bools, 3));
	for (uint64_t k = 0; k < 3; k++) {
		cr_assert(!fp_gguf_arr_str(g, "a.str", k, &s, &u));
		cr_assert(u == strlen(strs[k]) && !memcmp(s, strs[k], u));
	}
	cr_assert(!fp_gguf_get_arr(g, "a.nested", &et, &u, &data) && et == FP_GGUF_ARRAY && u == 2);
	cr_assert(!memcmp(data, nest.p, nest.len));
	for (int t = 0; t < 4; t++) {
		const struct fp_gguf_tensor *x = fp_gguf_find_tensor(g, ref.tensors[t].name);
		cr_assert(x && x->offset == ref.data_offset + ref.tensors[t].offset && x->size == want_n[t]);
	}
	fp_gguf_close(g);
	gb_free(&nest);
	free(file);
	free(out);
}

Test(gguf, writer_refuses_misuse_and_leaves_no_file)
{
	char *out = path("bad.gguf");
	fp_gguf_writer *w = fp_gguf_writer_create(out);
	cr_assert(w);
	uint64_t ne[1] = {32}, odd[1] = {33};
	cr_assert_eq(fp_gguf_writer_set_alignment(w, 48), -EINVAL);
	cr_assert_eq(fp_gguf_set_u64(w, "general.alignment", 64), -EINVAL);
	cr_assert(!fp_gguf_set_u32(w, "k", 1));
	cr_assert_eq(fp_gguf_set_str(w, "k", "again"), -EEXIST);
	cr_assert_eq(fp_gguf_set_arr(w, "s", FP_GGUF_STRING, "x", 1), -EINVAL);
	const uint8_t two = 2;
	cr_assert_eq(fp_gguf_set_arr(w, "b", FP_GGUF_BOOL, &two, 1), -EINVAL);
	cr_assert_eq(fp_gguf_set_arr_raw(w, "r", FP_GGUF_UINT32, 2, "abcd", 4), -ENODATA);
	cr_assert_eq(fp_gguf_writer_add_tensor(w, "q", FP_GGML_Q8_0, 1, odd, NULL), -EDOM);
	cr_assert_eq(fp_gguf_writer_add_tensor(w, "q", 4, 1, ne, NULL), -EINVAL);
	cr_assert(!fp_gguf_writer_add_tensor(w, "q", FP_GGML_Q8_0, 1, ne, NULL));
	cr_assert_eq(fp_gguf_writer_add_tensor(w, "q", FP_GGML_F32, 1, ne, NULL), -EEXIST);
	cr_assert_eq(fp_gguf_writer_set_alignment(w, 64), -EINVAL, "alignment after a tensor");
	cr_assert(!fp_gguf_writer_write(w, "0123456789", 10));
	cr_assert_eq(fp_gguf_set_u32(w, "late", 1), -EINVAL, "a key after the data began");
	uint8_t big[64] = {0};
	cr_assert_eq(fp_gguf_writer_write(w, big, sizeof big), -EINVAL, "past the last tensor");
	cr_assert_eq(fp_gguf_writer_finish(w), -EIO, "finish after a failed write");
	cr_assert(!tu_file_exists(out), "a failed writer left %s", out);
	w = fp_gguf_writer_create(out);
	cr_assert(!fp_gguf_writer_add_tensor(w, "q", FP_GGML_Q8_0, 1, ne, NULL));
	cr_assert(!fp_gguf_writer_write(w, big, 20));
	cr_assert_eq(fp_gguf_writer_finish(w), -EINVAL, "14 bytes of q are missing");
	cr_assert(strstr(fp_last_error(), "'q'"), "%s", fp_last_error());
	cr_assert(!tu_file_exists(out), "a failed writer left %s", out);
	char *extra = tu_dir_extras(g_dir, (const char *const[]){NULL});
	cr_assert_str_empty(extra, "left behind: %s", extra);
	free(extra);
	free(out);
}

/* ------------------------------------------------------------------ */
/* Broken headers                                                       */

struct bad_case {
	const char *what, *word;
	int errnum;
	void (*make)(struct gb *b, const struct small_gguf_at *at);
};

#define CASE(fn, body) static void fn(struct gb *b, const struct small_gguf_at *at) { body; }
CASE(bad_magic, b->p[3] = 'X')
CASE(version_1, patch32(b, at->version, 1))
CASE(version_4, patch32(b, at->version, 4))
CASE(tensor_count_overflows, patch64(b, at->n_tensors, 1ull << 62))
CASE(kv_count_overflows, patch64(b, at->n_kv, UINT64_MAX))
CASE(string_past_the_end, patch64(b, at->arch_len, 1ull << 40))
CASE(array_past_the_end, patch64(b, at->list_n, 1ull << 40))
CASE(array_bytes_overflow, patch64(b, at->list_n, 1ull << 62))
CASE(unknown_value_type, patch32(b, at->arch_type, 13))
CASE(unknown_element_type, patch32(b, at->list_elem_type, 99))
CASE(bool_is_two, b->p[at->flag_value] = 2)
CASE(alignment_48, patch32(b, at->align_value, 48))
CASE(alignment_i32, patch32(b, at->align_type, FP_GGUF_INT32))
CASE(misaligned_by_alignment_64, patch32(b, at->align_value, 64))
CASE(misaligned_offset, patch64(b, at->t_offset[1], 100))
CASE(overlapping, patch64(b, at->t_offset[0], 96))
CASE(offset_outside, patch64(b, at->t_offset[2], 1ull << 40))
CASE(offset_wraps, patch64(b, at->t_offset[2], UINT64_MAX - 31))
CASE(tensor_past_the_end, patch64(b, at->t_ne0[2], 18))
CASE(shape_bytes_overflow, patch64(b, at->t_ne1[0], 1ull << 62))
CASE(dimension_beyond_int64, patch64(b, at->t_ne0[0], 1ull << 63))
CASE(row_not_whole_blocks, patch64(b, at->t_ne0[1], 33))
CASE(retired_type, patch32(b, at->t_type[1], 4))
CASE(unknown_type, patch32(b, at->t_type[1], 99))
CASE(five_dims, patch32(b, at->t_n_dims[0], 5))
CASE(duplicate_key, b->p[at->last_key_char] = 'g')
CASE(duplicate_tensor, b->p[at->t_name_last[1]] = 'a')

static const struct bad_case bad_cases[] = {
	{"bad magic", "magic", EINVAL, bad_magic},
	{"version 1", "version 1", EPROTONOSUPPORT, version_1},
	{"version 4", "version", EPROTONOSUPPORT, version_4},
	{"tensor count", "tensor_count", EOVERFLOW, tensor_count_overflows},
	{"key count", "kv_count", EOVERFLOW, kv_count_overflows},
	{"string length", "general.architecture", ENODATA, string_past_the_end},
	{"array length", "test.list", ENODATA, array_past_the_end},
	{"array bytes", "test.list", EOVERFLOW, array_bytes_overflow},
	{"value type", "value type", EINVAL, unknown_value_type},
	{"element type", "element type", EINVAL, unknown_element_type},
	{"bool", "bool", EINVAL, bool_is_two},
	{"alignment 48", "power of two", EINVAL, alignment_48},
	{"alignment type", "general.alignment", EINVAL, alignment_i32},
	{"alignment 64", "general.alignment", EINVAL, misaligned_by_alignment_64},
	{"misaligned", "blk.0.b", EINVAL, misaligned_offset},
	{"overlap", "overlap", EINVAL, overlapping},
	{"outside", "outside the file", ERANGE, offset_outside},
	{"wraps", "outside the file", ERANGE, offset_wraps},
	{"past the end", "blk.0.c", ERANGE, tensor_past_the_end},
	{"shape overflow", "overflows", EOVERFLOW, shape_bytes_overflow},
	{"int64 dim", "dimension", EOVERFLOW, dimension_beyond_int64},
	{"block", "block", EINVAL, row_not_whole_blocks},
	{"retired type", "type 4", EINVAL, retired_type},
	{"unknown type", "type 99", EINVAL, unknown_type},
	{"n_dims", "n_dims", EINVAL, five_dims},
	{"duplicate key", "test.flag", EEXIST, duplicate_key},
	{"duplicate tensor", "blk.0.a", EEXIST, duplicate_tensor},
};

/* Refused by the GGUF reader, the image reader and the pager alike (the
 * latter two take a file without GGUF's magic for no GGUF at all). */
static void expect_refused(const char *file, const struct bad_case *c)
{
	size_t n;
	char *bytes = tu_read_file(file, &n);
	int gguf = bytes && n >= 4 && !memcmp(bytes, "GGUF", 4);
	free(bytes);
	errno = 0;
	fp_gguf *g = fp_gguf_open(file);
	cr_assert_null(g, "%s: accepted", c->what);
	const char *e = fp_last_error();
	cr_assert_eq(errno, c->errnum, "%s: errno %d (%s), expected %d; message: %s", c->what, errno,
	             strerror(errno), c->errnum, e);
	cr_assert(strstr(e, file) && tu_contains_any(e, c->word),
	          "%s: the message names neither the file nor '%s': %s", c->what, c->word, e);
	errno = 0;
	cr_assert_null(fp_image_open(file), "%s: fp_image_open accepted it", c->what);
	if (gguf)
		cr_assert_eq(errno, c->errnum, "%s: fp_image_open: errno %d", c->what, errno);
	cr_assert(strstr(fp_last_error(), file) && (!gguf || tu_contains_any(fp_last_error(), c->word)),
	          "%s: fp_image_open: %s", c->what, fp_last_error());
	struct fp_options o = {.retries = -1, .readahead = -1};
	cr_assert_null(fp_open(file, &o), "%s: fp_open accepted it", c->what);
	cr_assert(strstr(fp_last_error(), file) && (!gguf || tu_contains_any(fp_last_error(), c->word)),
	          "%s: fp_open: %s", c->what, fp_last_error());
}

Test(gguf, broken_headers_fail_with_errno_naming_the_file_and_field)
{
	char *file = path("bad.gguf");
	struct gb b;
	struct small_gguf_at at;
	small_gguf(&b, &at, NULL, 0);
	cr_assert(!tu_write_file(file, b.p, b.len));
	fp_gguf *g = fp_gguf_open(file);
	cr_assert(g, "the unbroken file: %s", fp_last_error());
	fp_gguf_close(g);
	gb_free(&b);
	for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
		small_gguf(&b, &at, NULL, 0);
		bad_cases[i].make(&b, &at);
		cr_assert(!tu_write_file(file, b.p, b.len));
		expect_refused(file, &bad_cases[i]);
		gb_free(&b);
	}
	/* what a patch cannot make: a 64-byte name, arrays nested too deep */
	const struct bad_case name = {"long name", "name", EINVAL, NULL};
	char long_name[65];
	memset(long_name, 'n', 64); /* ggml holds 63 bytes and a NUL */
	long_name[64] = 0;
	small_gguf(&b, &at, long_name, 0);
	cr_assert(!tu_write_file(file, b.p, b.len));
	expect_refused(file, &name);
	gb_free(&b);
	const struct bad_case deep = {"nesting", "nested", EINVAL, NULL};
	small_gguf(&b, &at, NULL, 9);
	cr_assert(!tu_write_file(file, b.p, b.len));
	expect_refused(file, &deep);
	gb_free(&b);
	small_gguf(&b, &at, NULL, 8);
	g = fp_gguf_parse(b.p, b.len, b.len, "deep.gguf");
	cr_assert(g, "arrays nested 8 deep: %s", fp_last_error());
	fp_gguf_close(g);
	gb_free(&b);
	free(file);
}

Test(gguf, truncated_at_every_byte_fails_cleanly)
{
	struct gb b;
	struct small_gguf_at at;
	small_gguf(&b, &at, NULL, 0);
	for (size_t len = 0; len < b.len; len++) {
		errno = 0;
		fp_gguf *g = fp_gguf_parse(b.p, len, len, "cut.gguf");
		cr_assert_null(g, "cut at %zu of %zu: accepted", len, b.len);
		int want = len < at.data_offset ? ENODATA : ERANGE;
		cr_assert_eq(errno, want, "cut at %zu: errno %d, expected %d: %s", len, errno, want,
		             fp_last_error());
		cr_assert(strstr(fp_last_error(), "cut.gguf") &&
		          tu_contains_any(fp_last_error(), "truncated|outside the file"),
		          "cut at %zu: %s", len, fp_last_error());
	}
	/* the header read in parts: more is needed until the infos end */
	cr_assert_null(fp_gguf_parse(b.p, at.info_end - 1, b.len, "part.gguf"));
	cr_assert_eq(errno, ENOBUFS);
	fp_gguf *g = fp_gguf_parse(b.p, at.info_end, b.len, "part.gguf");
	cr_assert(g, "%s", fp_last_error());
	fp_gguf_close(g);
	/* and through files, at a cut in each section */
	char *file = path("cut.gguf");
	const size_t cuts[] = {2, at.version + 2, at.n_kv + 3, at.arch_len + 10, at.list_n + 12,
	                       at.t_ne0[1] + 1, at.info_end, at.data_offset + 200};
	for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
		const struct bad_case c = {"cut", "truncated|outside the file",
		                           cuts[i] < at.data_offset ? ENODATA : ERANGE, NULL};
		cr_assert(!tu_write_file(file, b.p, cuts[i]));
		expect_refused(file, &c);
	}
	free(file);
	gb_free(&b);
}

/* ------------------------------------------------------------------ */
/* Fuzz                                                                 */

/* What an accepted header promises, checked without trusting it. */
static const char *check_accepted(const fp_gguf *g, uint64_t fsize, char *why, size_t n)
{
	uint64_t a = fp_gguf_alignment(g), nt = fp_gguf_n_tensors(g);
	if (!a || (a & (a - 1)) || fp_gguf_data_offset(g) > fsize)
		return snprintf(why, n, "alignment or data offset"), why;
	for (uint64_t i = 0; i < nt; i++) {
		const struct fp_gguf_tensor *t = fp_gguf_tensor(g, i);
		if (!ref_block_elems(t->type) || t->n_dims > 4 || strlen(t->name) >= 64 || !t->name[0])
			return snprintf(why, n, "tensor %llu: type, dims or name", (unsigned long long)i), why;
		if (t->ne[0] % ref_block_elems(t->type) || t->size != ref_bytes(t->type, 4, t->ne))
			return snprintf(why, n, "tensor %s: size", t->name), why;
		if (t->offset % a || t->offset < fp_gguf_data_offset(g) || t->size > fsize ||
		    t->offset > fsize - t->size)
			return snprintf(why, n, "tensor %s: placement", t->name), why;
		if (fp_gguf_find_tensor(g, t->name) != t)
			return snprintf(why, n, "tensor %s: not found by name", t->name), why;
		for (uint64_t j = 0; j < i; j++) {
			const struct fp_gguf_tensor *u = fp_gguf_tensor(g, j);
			if (t->offset < u->offset + u->size && u->offset < t->offset + t->size)
				return snprintf(why, n, "tensors %s and %s overlap", u->name, t->name), why;
		}
	}
	for (uint64_t i = 0; i < fp_gguf_n_kv(g); i++) {
		const char *key = fp_gguf_key(g, i);
		if (fp_gguf_find(g, key) != (int64_t)i)
			return snprintf(why, n, "key %llu: not found by name", (unsigned long long)i), why;
		/* touch every byte a getter hands out (ASan watches) */
		int et;
		uint64_t cnt, len, sum = 0;
		const void *data;
		const char *s;
		if (!fp_gguf_get_str(g, key, &s, &len))
			for (uint64_t k = 0; k < len; k++)
				sum += (uint8_t)s[k];
		if (!fp_gguf_get_arr(g, key, &et, &cnt, &data)) {
			for (uint64_t k = 0; k < cnt * fp_gguf_type_size(et); k++)
				sum += ((const uint8_t *)data)[k];
			for (uint64_t k = 0; et == FP_GGUF_STRING && k < cnt; k++)
				if (!fp_gguf_arr_str(g, key, k, &s, &len) && len)
					sum += (uint8_t)s[0] + (uint8_t)s[len - 1];
		}
		(void)sum;
	}
	return NULL;
}

static void fuzz(uint8_t *buf, size_t len, size_t header, uint64_t seed, int iterations)
{
	uint8_t *orig = malloc(header);
	memcpy(orig, buf, header);
	uint64_t rng = seed;
	int accepted = 0;
	static const uint64_t interesting[] = {0, 1, 2, 3, 4, 8, 31, 32, 63, 64, 4096, 1ull << 31,
	                                       1ull << 32, 1ull << 40, 1ull << 62, 1ull << 63,
	                                       UINT64_MAX, UINT64_MAX - 31};
	for (int it = 0; it < iterations; it++) {
		memcpy(buf, orig, header);
		int ops = 1 + (int)(tu_rand(&rng) % 4);
		for (int k = 0; k < ops; k++) {
			uint64_t r = tu_rand(&rng);
			size_t pos = (size_t)((r >> 8) % (header - 8));
			if (r & 1)
				buf[pos] ^= (uint8_t)(r >> 1) ? (uint8_t)(r >> 1) : 1;
			else
				memcpy(buf + pos, &interesting[(r >> 1) % (sizeof interesting / 8)],
				       (r >> 6) & 1 ? 8 : 4);
		}
		size_t l = len;
		if (tu_rand(&rng) % 8 == 0)
			l = (size_t)(tu_rand(&rng) % len);
		fp_gguf *g = fp_gguf_parse(buf, l, l, "fuzz.gguf");
		if (!g) {
			cr_assert(strstr(fp_last_error(), "fuzz.gguf") && errno,
			          "iteration %d: an error without errno or the file name: %s", it,
			          fp_last_error());
			continue;
		}
		accepted++;
		char why[160];
		const char *bad = check_accepted(g, l, why, sizeof why);
		fp_gguf_close(g);
		cr_assert_null(bad, "iteration %d (seed %llu): accepted a header that breaks its "
		               "promises: %s", it, (unsigned long long)seed, bad);
	}
	cr_log_info("fuzz seed %llu: %d of %d mutated headers accepted", (unsigned long long)seed,
	            accepted, iterations);
	memcpy(buf, orig, header);
	free(orig);
}

Test(gguf, fuzz_stories260K_header, .timeout = 600)
{
	size_t n;
	uint8_t *file = read_model("stories260K.gguf", &n);
	struct gw ref;
	cr_assert(!gw_read(file, n, &ref));
	fuzz(file, n, ref.data_offset, 20240611, 20000);
	free(file);
}

Test(gguf, fuzz_small_gguf_of_every_kind, .timeout = 600)
{
	struct gb b;
	struct small_gguf_at at;
	small_gguf(&b, &at, NULL, 3);
	fuzz(b.p, b.len, at.data_offset, 99, 20000);
	gb_free(&b);
}
