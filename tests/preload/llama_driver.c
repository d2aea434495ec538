/* A small program on llama.cpp's C API (the prebuilt libllama of
 * @node-llama-cpp/linux-x64): loads a GGUF as llama.cpp does (mmap by
 * default), decodes a prompt and prints the greedy continuation's token
 * ids on one line of stdout.  Nothing of flexpage is in it: the preload
 * suite runs it with and without libflexpage-preload.so.
 *
 *   llama_driver MODEL N [--prompt TEXT] [--threads T] [--ctx N]
 *                [--load-mode auto|none|mmap|mlock|mmap+mlock|dio]
 *                [--no-repack] [--backends DIR] [--verbose] [--also MODEL2]
 *
 * --also: a second model in the same process (as a draft model is), both
 * loaded before either decodes, then decoded a token of each in turn; the
 * second model's ids go on a second line.
 * --backends: where the ggml CPU variants are (default: beside libllama,
 * from LLAMA_BACKENDS).  --verbose keeps llama.cpp's log on stderr; the
 * load and decode times go to stderr always. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ggml-backend.h>
#include <llama.h>

static void quiet(enum ggml_log_level level, const char *text, void *user)
{
	(void)level, (void)text, (void)user;
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int fail(const char *what)
{
	fprintf(stderr, "llama_driver: %s\n", what);
	return 1;
}

/* A model, its context and its greedy continuation so far. */
struct engine {
	struct llama_model *model;
	struct llama_context *ctx;
	const struct llama_vocab *vocab;
	int n_vocab, done;
	char ids[8192];
	size_t len;
};

static int engine_open(struct engine *e, const char *path, struct llama_model_params mp, int ctx_len,
                       int threads, const char *prompt)
{
	memset(e, 0, sizeof *e);
	if (!(e->model = llama_model_load_from_file(path, mp)))
		return fail("cannot load the model");
	struct llama_context_params cp = llama_context_default_params();
	cp.n_ctx = (uint32_t)ctx_len;
	cp.n_batch = (uint32_t)ctx_len;
	cp.n_threads = threads;
	cp.n_threads_batch = threads;
	cp.no_perf = true;
	if (!(e->ctx = llama_init_from_model(e->model, cp)))
		return fail("cannot make a context");
	e->vocab = llama_model_get_vocab(e->model);
	e->n_vocab = llama_vocab_n_tokens(e->vocab);
	llama_token toks[512];
	int n = llama_tokenize(e->vocab, prompt, (int)strlen(prompt), toks, 512, true, false);
	if (n <= 0)
		return fail("cannot tokenize the prompt");
	if (llama_decode(e->ctx, llama_batch_get_one(toks, n)))
		return fail("decode of the prompt failed");
	return 0;
}

/* The next greedy token, kept; then its pass, unless it is the last. */
static int engine_step(struct engine *e, int last)
{
	const float *logits = llama_get_logits_ith(e->ctx, -1);
	llama_token best = 0;
	for (llama_token t = 1; t < e->n_vocab; t++)
		if (logits[t] > logits[best])
			best = t;
	int n = snprintf(e->ids + e->len, sizeof e->ids - e->len, "%s%d", e->len ? " " : "", best);
	e->len += n > 0 && (size_t)n < sizeof e->ids - e->len ? (size_t)n : 0;
	if (llama_vocab_is_eog(e->vocab, best) || last) {
		e->done = 1;
		return 0;
	}
	return llama_decode(e->ctx, llama_batch_get_one(&best, 1)) ? fail("decode failed") : 0;
}

static void engine_close(struct engine *e)
{
	llama_free(e->ctx);
	llama_model_free(e->model);
}

/* Two models in one process, a token of each in turn. */
static int two_models(const char *a, const char *b, int n_gen, struct llama_model_params mp, int ctx_len,
                      int threads, const char *prompt)
{
	struct engine *e = calloc(2, sizeof *e);
	if (!e || engine_open(&e[0], a, mp, ctx_len, threads, prompt) ||
	    engine_open(&e[1], b, mp, ctx_len, threads, prompt))
		return 1;
	for (int i = 0; i < n_gen && !(e[0].done && e[1].done); i++)
		for (int k = 0; k < 2; k++)
			if (!e[k].done && engine_step(&e[k], i + 1 == n_gen))
				return 1;
	printf("%s\n%s\n", e[0].ids, e[1].ids);
	engine_close(&e[0]);
	engine_close(&e[1]);
	free(e);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 3)
		return fail("usage: llama_driver MODEL N [--prompt TEXT] [--threads T] [--ctx N] "
		            "[--load-mode MODE] [--no-repack] [--backends DIR] [--verbose] [--also MODEL2]");
	const char *model_path = argv[1], *prompt = "Once upon a time", *mode = NULL, *also = NULL;
	const char *backends = getenv("LLAMA_BACKENDS");
	int n_gen = atoi(argv[2]), threads = 2, ctx_len = 256, no_repack = 0, verbose = 0;
	for (int i = 3; i < argc; i++) {
		if (!strcmp(argv[i], "--prompt") && i + 1 < argc)
			prompt = argv[++i];
		else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
			threads = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--ctx") && i + 1 < argc)
			ctx_len = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--load-mode") && i + 1 < argc)
			mode = argv[++i];
		else if (!strcmp(argv[i], "--backends") && i + 1 < argc)
			backends = argv[++i];
		else if (!strcmp(argv[i], "--also") && i + 1 < argc)
			also = argv[++i];
		else if (!strcmp(argv[i], "--no-repack"))
			no_repack = 1;
		else if (!strcmp(argv[i], "--verbose"))
			verbose = 1;
		else
			return fail("unknown option (see the usage)");
	}
	if (!verbose)
		llama_log_set(quiet, NULL);
	if (backends)
		ggml_backend_load_all_from_path(backends);
	else
		ggml_backend_load_all();
	llama_backend_init();

	struct llama_model_params mp = llama_model_default_params();
	mp.n_gpu_layers = 0;
	if (mode)
		mp.load_mode = llama_load_mode_from_str(mode);
	if (no_repack)
		mp.use_extra_bufts = false;
	if (also)
		return two_models(model_path, also, n_gen, mp, ctx_len, threads, prompt);
	double t0 = now();
	struct engine *e = calloc(1, sizeof *e);
	if (!e || engine_open(e, model_path, mp, ctx_len, threads, prompt))
		return 1;
	double t1 = now();
	/* Each id as it comes (a test acts on the first ones). */
	for (int i = 0; i < n_gen && !e->done; i++) {
		size_t from = e->len;
		if (engine_step(e, i + 1 == n_gen))
			return 1;
		fwrite(e->ids + from, 1, e->len - from, stdout);
		fflush(stdout);
	}
	printf("\n");
	double t2 = now();
	fprintf(stderr, "llama_driver: load and prompt %.3f s, %d tokens in %.3f s (%.2f tok/s)\n", t1 - t0,
	        n_gen, t2 - t1, n_gen > 1 ? (n_gen - 1) / (t2 - t1) : 0.0);
	engine_close(e);
	free(e);
	return 0;
}
