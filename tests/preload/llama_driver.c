/* A small program on llama.cpp's C API (the prebuilt libllama of
 * @node-llama-cpp/linux-x64): loads a GGUF as llama.cpp does (mmap by
 * default), decodes a prompt and prints the greedy continuation's token
 * ids on one line of stdout.  Nothing of flexpage is in it: the preload
 * suite runs it with and without libflexpage-preload.so.
 *
 *   llama_driver MODEL N [--prompt TEXT] [--threads T] [--ctx N]
 *                [--load-mode auto|none|mmap|mlock|mmap+mlock|dio]
 *                [--no-repack] [--backends DIR] [--verbose]
 *
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

int main(int argc, char **argv)
{
	if (argc < 3)
		return fail("usage: llama_driver MODEL N [--prompt TEXT] [--threads T] [--ctx N] "
		            "[--load-mode MODE] [--no-repack] [--backends DIR] [--verbose]");
	const char *model_path = argv[1], *prompt = "Once upon a time", *mode = NULL;
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
	double t0 = now();
	struct llama_model *model = llama_model_load_from_file(model_path, mp);
	if (!model)
		return fail("cannot load the model");
	struct llama_context_params cp = llama_context_default_params();
	cp.n_ctx = (uint32_t)ctx_len;
	cp.n_batch = (uint32_t)ctx_len;
	cp.n_threads = threads;
	cp.n_threads_batch = threads;
	cp.no_perf = true;
	struct llama_context *ctx = llama_init_from_model(model, cp);
	if (!ctx)
		return fail("cannot make a context");
	double t1 = now();
	const struct llama_vocab *vocab = llama_model_get_vocab(model);
	int n_vocab = llama_vocab_n_tokens(vocab);
	llama_token toks[512];
	int n = llama_tokenize(vocab, prompt, (int)strlen(prompt), toks, 512, true, false);
	if (n <= 0)
		return fail("cannot tokenize the prompt");
	if (llama_decode(ctx, llama_batch_get_one(toks, n)))
		return fail("decode of the prompt failed");
	double t2 = now();
	for (int i = 0; i < n_gen; i++) {
		const float *logits = llama_get_logits_ith(ctx, -1);
		llama_token best = 0;
		for (llama_token t = 1; t < n_vocab; t++)
			if (logits[t] > logits[best])
				best = t;
		printf("%s%d", i ? " " : "", best);
		fflush(stdout);
		if (llama_vocab_is_eog(vocab, best) || i + 1 == n_gen)
			break;
		if (llama_decode(ctx, llama_batch_get_one(&best, 1)))
			return fail("decode failed");
	}
	printf("\n");
	double t3 = now();
	fprintf(stderr, "llama_driver: load %.3f s, prompt %.3f s, %d tokens in %.3f s (%.2f tok/s)\n",
	        t1 - t0, t2 - t1, n_gen, t3 - t2, n_gen > 1 ? (n_gen - 1) / (t3 - t2) : 0.0);
	llama_free(ctx);
	llama_model_free(model);
	return 0;
}
