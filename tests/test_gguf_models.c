/* GGUF models: stories260K as a GGUF (llama.cpp's own conversion) runs
 * exactly as the llama2.c checkpoint in every load mode, paged under a
 * budget too; a checkpoint converted to GGUF holds the bytes and the
 * vocabulary of llama.cpp's conversion; a synthetic TinyLlama-layout q8_0
 * model written as a GGUF and as an image from one seed decodes the same;
 * bad GGUF models fail with the key or tensor named. */
#include <criterion/criterion.h>
#include <criterion/logging.h>

#include <flexkern/kernels.h>
#include <flexmodel/model.h>
#include <flexpage/flexpage.h>
#include <flexrt/runtime.h>

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rt_util.h"

#define MODELS FLEXPAGE_SHARED_MODELS
#define STORIES_BIN MODELS "/stories260K.bin"
#define STORIES_GGUF MODELS "/stories260K.gguf"
#define TOK512 MODELS "/tok512.bin"
#define TOKENIZER MODELS "/tokenizer.bin"
#define STEPS 48

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

static void need_models(void)
{
	setup();
	const char *need[] = {STORIES_BIN, STORIES_GGUF, TOK512, TOKENIZER};
	for (size_t i = 0; i < sizeof need / sizeof need[0]; i++)
		if (access(need[i], R_OK))
			cr_skip_test("%s is missing: this test needs the shared models", need[i]);
}

static char out[1 << 16], err_[1 << 16];

/* Run the flexpage binary with the arguments up to a NULL. */
static int tool(const char *first, ...)
{
	const char *argv[32] = {FLEXPAGE_TOOL, first};
	va_list ap;
	va_start(ap, first);
	int n = 2;
	while (n < 31 && (argv[n] = va_arg(ap, const char *)))
		n++;
	va_end(ap);
	argv[n] = NULL;
	return rt_run(argv, NULL, out, sizeof out, err_, sizeof err_);
}

/* Greedy decoding: the ids and every step's logits. */
struct run {
	int vocab;
	int ids[STEPS];
	float *logits;
};

static void greedy(const struct model *m, struct run *r)
{
	const struct frt_options o = {2, STEPS};
	frt_model *rt = frt_model_create(&m->cfg, &m->weights, &o);
	cr_assert(rt, "%s", frt_last_error());
	r->vocab = m->cfg.vocab_size;
	r->logits = malloc(sizeof(float) * STEPS * (size_t)r->vocab);
	int token = FRT_BOS;
	for (int pos = 0; pos < STEPS; pos++) {
		const float *lg = frt_forward(rt, token, pos);
		memcpy(r->logits + (size_t)pos * r->vocab, lg, sizeof(float) * (size_t)r->vocab);
		r->ids[pos] = token = frt_argmax(lg, r->vocab);
	}
	frt_model_destroy(rt);
}

static void open_model(struct model *m, const char *path, int load, uint32_t chunk,
                       uint64_t budget)
{
	struct model_options o = {0};
	o.load = load;
	o.fp.retries = o.fp.readahead = -1;
	o.fp.chunk_size = chunk;
	o.fp.budget = budget;
	cr_assert_eq(model_open(m, path, &o), 0, "%s", model_last_error());
}

static void same_run(const struct run *want, const struct run *got, const char *what)
{
	cr_assert_eq(want->vocab, got->vocab, "%s: vocabulary", what);
	cr_assert(!memcmp(want->ids, got->ids, sizeof want->ids), "%s: other greedy ids", what);
	cr_assert(!memcmp(want->logits, got->logits, sizeof(float) * STEPS * (size_t)want->vocab),
	          "%s: other logits", what);
}

static uint64_t file_size(const char *path)
{
	size_t n;
	void *p = rt_read_file(path, &n);
	cr_assert(p, "%s", path);
	free(p);
	return n;
}

/* ------------------------------------------------------------------ */
/* stories260K: the GGUF and the checkpoint are the same model          */

Test(stories, gguf_runs_as_the_checkpoint_in_every_load, .init = need_models, .fini = teardown)
{
	struct model m;
	struct run want, got;
	open_model(&m, STORIES_BIN, MODEL_LOAD_RESIDENT, 0, 0);
	greedy(&m, &want);
	model_close(&m);

	/* an image packed from the GGUF: its logical bytes are the file's */
	const char *img = rt_path(dir, "s.img");
	int rc = tool("pack", STORIES_GGUF, img, "--chunk", "64K", "--codec", "zstd", "-q", NULL);
	cr_assert_eq(rc, 0, "pack: %s", err_);
	const uint64_t half = file_size(STORIES_GGUF) / 2;
	const struct {
		const char *path;
		int load;
		uint64_t budget;
		const char *what;
	} ways[] = {
		{STORIES_GGUF, MODEL_LOAD_RESIDENT, 0, "GGUF resident"},
		{STORIES_GGUF, MODEL_LOAD_MMAP, 0, "GGUF mmap"},
		{STORIES_GGUF, MODEL_LOAD_FLEXPAGE, 0, "GGUF paged, whole"},
		{STORIES_GGUF, MODEL_LOAD_FLEXPAGE, half, "GGUF paged at 50%"},
		{img, MODEL_LOAD_RESIDENT, 0, "image of the GGUF resident"},
		{img, MODEL_LOAD_FLEXPAGE, half, "image of the GGUF paged at 50%"},
	};
	for (size_t i = 0; i < sizeof ways / sizeof ways[0]; i++) {
		open_model(&m, ways[i].path, ways[i].load, 64u << 10, ways[i].budget);
		cr_assert_eq(m.cfg.dim, 64);
		cr_assert_eq(m.cfg.n_kv_heads, 4);
		cr_assert_eq(m.cfg.vocab_size, 512);
		cr_assert_eq(m.cfg.seq_len, 2048, "llama.context_length");
		cr_assert(!m.shared_classifier, "the GGUF has an output.weight of its own");
		greedy(&m, &got);
		same_run(&want, &got, ways[i].what);
		if (ways[i].budget) {
			struct fp_stats st;
			fp_get_stats(m.region, &st);
			cr_log_info("%s: %llu faults, %llu evictions, peak %llu of %llu bytes", ways[i].what,
			            (unsigned long long)st.faults, (unsigned long long)st.evictions,
			            (unsigned long long)st.peak_resident_bytes, (unsigned long long)half);
			cr_assert_gt(st.evictions, 0, "%s: the budget never bit", ways[i].what);
			cr_assert_leq(st.peak_resident_bytes, half);
		}
		free(got.logits);
		model_close(&m);
	}
	free(want.logits);

	/* and the command prints the same ids for either file */
	cr_assert_eq(tool("run", STORIES_BIN, "--steps", "30", "--temperature", "0", "-q", NULL), 0);
	static char ids[sizeof out];
	memcpy(ids, out, sizeof out);
	rc = tool("run", STORIES_GGUF, "--steps", "30", "--temperature", "0", NULL);
	cr_assert_eq(rc, 0, "%s", err_);
	cr_assert_str_eq(out, ids);
	cr_assert(strstr(err_, "GGUF, f32"), "%s", err_);
}

/* The checkpoint converted by flexpage holds exactly the tensors and the
 * vocabulary of llama.cpp's conversion of it (stories260K.gguf). */
Test(stories, checkpoint_to_gguf_matches_llama_cpp_conversion, .init = need_models,
     .fini = teardown)
{
	const char *gg = rt_path(dir, "s.gguf");
	int rc = tool("pack", STORIES_BIN, gg, "--tokenizer", TOK512, "-q", NULL);
	cr_assert_eq(rc, 0, "%s", err_);
	fp_gguf *a = fp_gguf_open(gg), *b = fp_gguf_open(STORIES_GGUF);
	cr_assert(a && b, "%s", fp_last_error());
	size_t na, nb;
	char *fa = rt_read_file(gg, &na), *fb = rt_read_file(STORIES_GGUF, &nb);
	/* every tensor of ours is llama.cpp's, byte for byte (llama.cpp also
	 * writes output.weight, a copy of the shared embedding) */
	cr_assert_eq(fp_gguf_n_tensors(a), 47);
	for (uint64_t i = 0; i < fp_gguf_n_tensors(a); i++) {
		const struct fp_gguf_tensor *t = fp_gguf_tensor(a, i);
		const struct fp_gguf_tensor *u = fp_gguf_find_tensor(b, t->name);
		cr_assert(u, "%s is not in llama.cpp's file", t->name);
		cr_assert(t->type == u->type && t->n_dims == u->n_dims && t->size == u->size &&
		          !memcmp(t->ne, u->ne, sizeof t->ne), "%s: another type or shape", t->name);
		cr_assert(!memcmp(fa + t->offset, fb + u->offset, t->size), "%s: other bytes", t->name);
	}
	for (uint64_t i = 0; i < 512; i++) {
		const char *s, *r;
		uint64_t ls, lr;
		cr_assert_eq(fp_gguf_arr_str(a, "tokenizer.ggml.tokens", i, &s, &ls), 0);
		cr_assert_eq(fp_gguf_arr_str(b, "tokenizer.ggml.tokens", i, &r, &lr), 0);
		cr_assert(ls == lr && !memcmp(s, r, ls), "token %llu: '%.*s', llama.cpp '%.*s'",
		          (unsigned long long)i, (int)ls, s, (int)lr, r);
	}
	const char *const arrays[] = {"tokenizer.ggml.scores", "tokenizer.ggml.token_type"};
	for (int k = 0; k < 2; k++) {
		const void *da, *db;
		uint64_t n1, n2;
		int t1, t2;
		cr_assert_eq(fp_gguf_get_arr(a, arrays[k], &t1, &n1, &da), 0);
		cr_assert_eq(fp_gguf_get_arr(b, arrays[k], &t2, &n2, &db), 0);
		cr_assert(t1 == t2 && n1 == 512 && n2 == 512 && !memcmp(da, db, 512 * 4), "%s differ",
		          arrays[k]);
	}
	const char *const keys[] = {"llama.embedding_length", "llama.feed_forward_length",
	                            "llama.block_count", "llama.attention.head_count",
	                            "llama.attention.head_count_kv", "llama.rope.dimension_count",
	                            "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id"};
	for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
		uint64_t x, y;
		cr_assert_eq(fp_gguf_get_u64(a, keys[k], &x), 0, "%s", keys[k]);
		cr_assert_eq(fp_gguf_get_u64(b, keys[k], &y), 0, "%s", keys[k]);
		cr_assert_eq(x, y, "%s: %llu, llama.cpp %llu", keys[k], (unsigned long long)x,
		             (unsigned long long)y);
	}
	free(fa);
	free(fb);
	fp_gguf_close(a);
	fp_gguf_close(b);
}

/* ------------------------------------------------------------------ */
/* A synthetic TinyLlama-layout q8_0 model                              */

/* TinyLlama-1.1B's layout (head size 64, 8 query heads per KV head, FFN
 * 2.75 x dim, its 32000-token vocabulary, own classifier) at 3 layers of
 * width 512: 43 MB instead of 1.1 GiB, so the suite stays quick.
 * bench/gguf_tinyllama.sh runs the full shape. */
static const struct frt_config tiny = {512, 1408, 3, 8, 1, 32000, 2048, 10000.0f, 1e-5f};

Test(synth, tinyllama_layout_gguf_and_image_decode_the_same, .init = need_models,
     .fini = teardown)
{
	const char *gg = rt_path(dir, "t.gguf"), *img = rt_path(dir, "t.img");
	fp_gguf_writer *gw = fp_gguf_writer_create(gg);
	cr_assert(gw, "%s", fp_last_error());
	cr_assert_eq(model_synth_write_gguf(gw, &tiny, 0, FK_Q8_0, 42, 2, TOKENIZER), 0, "%s",
	             model_last_error());
	cr_assert_eq(fp_gguf_writer_finish(gw), 0, "%s", fp_last_error());
	char err[512];
	cr_assert_eq(rt_synth(img, &tiny, 0, FK_Q8_0, 1u << 20, FP_CODEC_RAW, 42, 1, err, sizeof err),
	             0, "%s", err);

	struct model m;
	struct run want, got;
	open_model(&m, img, MODEL_LOAD_RESIDENT, 0, 0);
	greedy(&m, &want);
	model_close(&m);
	const uint64_t half = file_size(gg) / 2;
	const struct {
		int load;
		uint64_t budget;
		const char *what;
	} ways[] = {
		{MODEL_LOAD_RESIDENT, 0, "GGUF resident"},
		{MODEL_LOAD_MMAP, 0, "GGUF mmap"},
		{MODEL_LOAD_FLEXPAGE, half, "GGUF paged at 50%"},
	};
	for (size_t i = 0; i < sizeof ways / sizeof ways[0]; i++) {
		open_model(&m, gg, ways[i].load, 256u << 10, ways[i].budget);
		cr_assert(!memcmp(&m.cfg, &tiny, sizeof tiny), "%s: another configuration", ways[i].what);
		char types[64];
		cr_assert_str_eq(model_types(&m, types, sizeof types), "q8_0");
		greedy(&m, &got);
		same_run(&want, &got, ways[i].what);
		free(got.logits);
		model_close(&m);
	}
	cr_log_info("greedy ids: %d %d %d %d ...", want.ids[0], want.ids[1], want.ids[2], want.ids[3]);
	free(want.logits);

	/* the region over the GGUF holds the file's bytes */
	struct fp_options o = {0};
	o.retries = o.readahead = -1;
	o.chunk_size = 256u << 10;
	fp_region *r = fp_open(gg, &o);
	cr_assert(r, "%s", fp_last_error());
	size_t n;
	char *bytes = rt_read_file(gg, &n);
	cr_assert(!memcmp(fp_region_base(r), bytes, n), "the region's bytes are not the file's");
	fp_close(r);
	free(bytes);
}

/* ------------------------------------------------------------------ */
/* Bad GGUF models                                                      */

/* A llama GGUF of dim 256, hidden 256, 1 layer, 4 heads, vocab 16, zeros;
 * skip_key leaves a key out, bad_key sets it to bad_value, alter_tensor
 * gets alter_type (its bytes follow the type), skip_tensor is left out. */
struct bad {
	const char *skip_key, *bad_key;
	uint64_t bad_value;
	const char *skip_tensor, *alter_tensor;
	uint32_t alter_type;
	const char *arch;
};

static void write_bad(const char *path, const struct bad *b)
{
	static char zeros[256 * 256 * 4];
	fp_gguf_writer *w = fp_gguf_writer_create(path);
	cr_assert(w, "%s", fp_last_error());
	const struct {
		const char *key;
		uint64_t v;
	} keys[] = {
		{"llama.context_length", 64}, {"llama.embedding_length", 256},
		{"llama.block_count", 1},     {"llama.feed_forward_length", 256},
		{"llama.attention.head_count", 4}, {"llama.attention.head_count_kv", 4},
	};
	cr_assert_eq(fp_gguf_set_str(w, "general.architecture", b->arch ? b->arch : "llama"), 0);
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
		if (b->skip_key && !strcmp(b->skip_key, keys[i].key))
			continue;
		const int bad = b->bad_key && !strcmp(b->bad_key, keys[i].key);
		cr_assert_eq(fp_gguf_set_u32(w, keys[i].key, (uint32_t)(bad ? b->bad_value : keys[i].v)), 0);
	}
	if (!b->skip_key || strcmp(b->skip_key, "llama.attention.layer_norm_rms_epsilon"))
		cr_assert_eq(fp_gguf_set_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f), 0);
	const char *names[] = {"token_embd.weight", "blk.0.attn_norm.weight", "blk.0.attn_q.weight",
	                       "blk.0.attn_k.weight", "blk.0.attn_v.weight",
	                       "blk.0.attn_output.weight", "blk.0.ffn_norm.weight",
	                       "blk.0.ffn_gate.weight", "blk.0.ffn_up.weight", "blk.0.ffn_down.weight",
	                       "output_norm.weight"};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		if (b->skip_tensor && !strcmp(b->skip_tensor, names[i]))
			continue;
		const int norm = strstr(names[i], "norm") != NULL;
		const uint64_t ne[2] = {256, i == 0 ? 16 : 256};
		const uint32_t type = b->alter_tensor && !strcmp(b->alter_tensor, names[i])
		                    ? b->alter_type : FP_GGML_F32;
		cr_assert_eq(fp_gguf_writer_add_tensor(w, names[i], type, norm ? 1 : 2, ne, zeros), 0,
		             "%s", fp_last_error());
	}
	cr_assert_eq(fp_gguf_writer_finish(w), 0, "%s", fp_last_error());
}

static void run_fails(const struct bad *b, const char *needle)
{
	const char *p = rt_path(dir, "bad.gguf");
	write_bad(p, b);
	struct model m;
	const int loads[] = {MODEL_LOAD_RESIDENT, MODEL_LOAD_MMAP, MODEL_LOAD_FLEXPAGE};
	for (int i = 0; i < 3; i++) {
		struct model_options o = {0};
		o.load = loads[i];
		o.fp.retries = o.fp.readahead = -1;
		cr_assert_eq(model_open(&m, p, &o), -EINVAL, "%s opened (%s)", needle,
		             model_load_name(loads[i]));
		cr_assert(strstr(model_last_error(), needle), "'%s' not in: %s", needle,
		          model_last_error());
	}
	const int rc = tool("run", p, "--steps", "4", NULL);
	cr_assert_eq(rc, 1, "%s: exit %d", needle, rc);
	cr_assert(strstr(err_, p) && strstr(err_, needle), "'%s' not in: %s", needle, err_);
	cr_assert_str_eq(out, "");
}

Test(bad_gguf, keys_tensors_and_types_are_named, .init = setup, .fini = teardown)
{
	/* the good one runs */
	write_bad(rt_path(dir, "good.gguf"), &(struct bad){0});
	int rc = tool("run", rt_path(dir, "good.gguf"), "--steps", "4", "-q", NULL);
	cr_assert_eq(rc, 0, "%s", err_);

	run_fails(&(struct bad){.skip_key = "llama.block_count"},
	          "GGUF key llama.block_count is missing");
	run_fails(&(struct bad){.skip_key = "llama.embedding_length"},
	          "GGUF key llama.embedding_length is missing");
	run_fails(&(struct bad){.skip_key = "llama.attention.layer_norm_rms_epsilon"},
	          "llama.attention.layer_norm_rms_epsilon is missing");
	run_fails(&(struct bad){.bad_key = "llama.attention.head_count", .bad_value = 3},
	          "llama.embedding_length = 256 is not a multiple of llama.attention.head_count = 3");
	run_fails(&(struct bad){.bad_key = "llama.attention.head_count_kv", .bad_value = 3},
	          "llama.attention.head_count = 4 is not a multiple of llama.attention.head_count_kv = 3");
	run_fails(&(struct bad){.bad_key = "llama.block_count", .bad_value = 2},
	          "tensor blk.1.attn_norm.weight is missing");
	run_fails(&(struct bad){.bad_key = "llama.feed_forward_length", .bad_value = 512},
	          "tensor blk.0.ffn_gate.weight has shape [256, 256], expected [256, 512]");
	run_fails(&(struct bad){.bad_key = "llama.context_length", .bad_value = 0},
	          "llama.context_length = 0 must be positive");
	run_fails(&(struct bad){.alter_tensor = "blk.0.ffn_down.weight", .alter_type = FP_GGML_Q6_K},
	          "tensor blk.0.ffn_down.weight is q6_K: the runtime runs f32, f16, q8_0 and q4_0");
	run_fails(&(struct bad){.alter_tensor = "blk.0.ffn_norm.weight", .alter_type = FP_GGML_F16},
	          "tensor blk.0.ffn_norm.weight is f16: the runtime runs f32 norms");
	run_fails(&(struct bad){.skip_tensor = "token_embd.weight"}, "tensor token_embd.weight is missing");
	run_fails(&(struct bad){.arch = "qwen2"}, "general.architecture = qwen2: not a llama model");
}

/* A vocabulary that does not fit the model is refused when writing. */
Test(bad_gguf, tokenizer_of_another_size, .init = need_models, .fini = teardown)
{
	int rc = tool("pack", STORIES_BIN, rt_path(dir, "x.gguf"), "--tokenizer", TOKENIZER, NULL);
	cr_assert_eq(rc, 1, "exit %d", rc);
	cr_assert(strstr(err_, "tokenizer.bin: holds more tokens than the model's 512"), "%s", err_);
	cr_assert(access(rt_path(dir, "x.gguf"), F_OK), "a failed pack left its output");
	rc = tool("synth", "--shape", "260k", "-o", rt_path(dir, "y.gguf"), "--tokenizer", TOKENIZER,
	          NULL);
	cr_assert_eq(rc, 1, "exit %d", rc);
	cr_assert(strstr(err_, "holds more tokens than the model's 512"), "%s", err_);
}
