/* flexpage prune: a model without K of its decoder blocks, chosen by
 * EvoP's evolutionary search on a calibration sample drawn across
 * clusters of the text (docs/prune.md), or by a baseline.  The search
 * skips layers in the runtime; only the chosen model is written. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <flexkern/kernels.h>
#include <flexmodel/prune.h>
#include <flexrt/runtime.h>

#include "cmds.h"
#include "run_options.h"
#include "text_input.h"
#include "util.h"

static void prune_usage(FILE *f)
{
	fprintf(f,
	        "usage: flexpage prune MODEL -o OUT --calib TEXT (--drop K | --target SIZE) [options]\n"
	        "  Remove K decoder blocks of MODEL (an image, a GGUF or a llama2.c checkpoint)\n"
	        "  and write the rest to OUT.  The calibration text is cut into windows, each\n"
	        "  embedded by the model's last hidden state; k-means clusters them and the\n"
	        "  sample is drawn across the clusters (CCDS).  The mask of removed layers is\n"
	        "  searched by an evolutionary algorithm (EPPS) whose fitness is the KL\n"
	        "  divergence from the full model's next-token distribution (or perplexity)\n"
	        "  on the sample.  OUT is a GGUF when it ends in .gguf or the input is one,\n"
	        "  else an image; its metadata names the removed layers, the source and the\n"
	        "  score.  On stdout, one line: the mask, its score and the search's cost.\n\n"
	        "  -o, --output OUT    the pruned model (a temporary file, renamed)\n"
	        "  --calib TEXT        calibration text (UTF-8; paragraphs at blank lines)\n"
	        "  --calib-bytes N     only the first N bytes of TEXT (default all)\n"
	        "  --drop K            layers to remove, 1 .. layers - 1\n"
	        "  --target SIZE       instead of --drop: the fewest layers that bring the\n"
	        "                      model's weights to SIZE or below (900M, 75%%), or its\n"
	        "                      speed to N tok/s (40tok/s: the full model's rate\n"
	        "                      measured here, scaled by the bytes a token reads)\n"
	        "  --method M          evop (default), last (the last K), influence (the K of\n"
	        "                      least block influence, ShortGPT), random (the best of\n"
	        "                      --trials random masks), exhaustive (every mask)\n"
	        "  --fitness F         kl (default) or ppl\n"
	        "  --seed N            seed of the sampling and the search (1)\n"
	        "calibration sample (CCDS):\n"
	        "  --window N          tokens in a window, BOS included (64)\n"
	        "  --candidates N      windows embedded, evenly spaced through TEXT (64)\n"
	        "  --clusters N        k of k-means (8; at most --samples)\n"
	        "  --samples N         windows the fitness runs on (8)\n"
	        "  --embed-tokens N    positions run to embed a window (16)\n"
	        "search (evop):\n"
	        "  --population N      masks per generation (8; at most a fifth of all masks)\n"
	        "  --generations N     at most N generations (12)\n"
	        "  --patience N        stop after N generations without a better mask (2)\n"
	        "  --crossover P       chance a child mixes two parents (1)\n"
	        "  --mutation P        chance of each swap of a removed and a kept layer (0.1)\n"
	        "  --random-start      a first population of random masks only (default: it\n"
	        "                      holds the last-K and the least-influence masks too)\n"
	        "  --trials N          random: masks tried (32)\n"
	        "  --max-masks N       exhaustive: refuse more masks than N (20000)\n"
	        "other:\n"
	        "  --format F          image or gguf (default: as OUT's name or the input)\n"
	        "  --tokenizer FILE    a llama2.c tokenizer file for the model's vocabulary\n"
	        "  -t, --threads N     compute threads (the CPUs online)\n"
	        "  -n, --dry-run       search and report, write nothing (no -o needed)\n"
	        "  -f, --force         replace OUT if it exists\n"
	        "  -q, --quiet         no progress bar or summary, only the stdout line\n"
	        "  -v, --verbose       every mask scored, with its score, on stderr\n");
}

static int ends_with(const char *s, const char *suffix)
{
	const size_t n = strlen(s), k = strlen(suffix);
	return n >= k && !strcmp(s + n - k, suffix);
}

struct bar_ctx {
	struct progress bar;
	int verbose;
};

static void print_mask(FILE *f, const unsigned char *drop, int n);

static void on_mask(void *ctx, const unsigned char *drop, int n, double score)
{
	const struct bar_ctx *b = ctx;
	if (!b->verbose)
		return;
	fprintf(stderr, "mask ");
	print_mask(stderr, drop, n);
	fprintf(stderr, ": %.6g\n", score);
}

static void on_step(void *ctx, int step, int steps, int evals, double best)
{
	(void)steps;
	(void)evals;
	(void)best;
	struct bar_ctx *b = ctx;
	progress_update(&b->bar, (uint64_t)step);
}

/* The tokenizer file a GGUF written from a checkpoint takes its
 * vocabulary from: the one given, else tok<VOCAB>.bin beside the model. */
static const char *vocab_file(const char *model, const char *explicit_path, int vocab,
                              char *buf, size_t len)
{
	if (explicit_path)
		return explicit_path;
	const char *slash = strrchr(model, '/');
	snprintf(buf, len, "%.*stok%d.bin", slash ? (int)(slash - model) + 1 : 0, model, vocab);
	return access(buf, R_OK) ? NULL : buf;
}

struct prune_args {
	const char *model, *out, *calib, *tokenizer, *format, *target;
	uint64_t calib_bytes;
	int drop, method, fitness, window, candidates, threads, dry_run, force, quiet, verbose;
	struct prune_ccds_options ccds;
	struct prune_search_options search;
};

static int parse_args(int argc, char **argv, struct prune_args *a, char *err, size_t errlen)
{
	enum { O_CALIB = 0x200, O_CALIB_BYTES, O_DROP, O_TARGET, O_METHOD, O_FITNESS, O_SEED,
	       O_WINDOW, O_CANDIDATES, O_CLUSTERS, O_SAMPLES, O_EMBED, O_POP, O_GENS, O_PATIENCE,
	       O_CROSS, O_MUT, O_RANDOM_START, O_TRIALS, O_MAX_MASKS, O_FORMAT, O_TOKENIZER };
	static const struct option opts[] = {
		{"output", required_argument, 0, 'o'}, {"calib", required_argument, 0, O_CALIB},
		{"calib-bytes", required_argument, 0, O_CALIB_BYTES},
		{"drop", required_argument, 0, O_DROP}, {"target", required_argument, 0, O_TARGET},
		{"method", required_argument, 0, O_METHOD}, {"fitness", required_argument, 0, O_FITNESS},
		{"seed", required_argument, 0, O_SEED}, {"window", required_argument, 0, O_WINDOW},
		{"candidates", required_argument, 0, O_CANDIDATES},
		{"clusters", required_argument, 0, O_CLUSTERS},
		{"samples", required_argument, 0, O_SAMPLES},
		{"embed-tokens", required_argument, 0, O_EMBED},
		{"population", required_argument, 0, O_POP},
		{"generations", required_argument, 0, O_GENS},
		{"patience", required_argument, 0, O_PATIENCE},
		{"crossover", required_argument, 0, O_CROSS}, {"mutation", required_argument, 0, O_MUT},
		{"random-start", no_argument, 0, O_RANDOM_START},
		{"trials", required_argument, 0, O_TRIALS},
		{"max-masks", required_argument, 0, O_MAX_MASKS},
		{"format", required_argument, 0, O_FORMAT},
		{"tokenizer", required_argument, 0, O_TOKENIZER},
		{"threads", required_argument, 0, 't'}, {"dry-run", no_argument, 0, 'n'},
		{"force", no_argument, 0, 'f'}, {"quiet", no_argument, 0, 'q'},
		{"verbose", no_argument, 0, 'v'},
		{"help", no_argument, 0, 'h'}, {0, 0, 0, 0},
	};
	const long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	a->threads = cpus > 0 ? (int)cpus : 1;
	a->window = 64;
	a->candidates = 64;
	a->fitness = PRUNE_FITNESS_KL;
	a->method = PRUNE_EVOP;
	a->search.crossover = a->search.mutation = -1;
	a->search.seed = a->ccds.seed = 1;
	int o;
	float p;
	optind = 1;
	while ((o = getopt_long(argc, argv, "o:t:nfqvh", opts, NULL)) != -1) {
		int *count = NULL, lo = 1, hi = 1 << 20;
		const char *name = NULL;
		switch (o) {
		case 'o': a->out = optarg; break;
		case O_CALIB: a->calib = optarg; break;
		case O_CALIB_BYTES:
			if (parse_size(optarg, 0, &a->calib_bytes, "--calib-bytes", err, errlen))
				return -1;
			break;
		case O_DROP: count = &a->drop; name = "--drop"; break;
		case O_TARGET: a->target = optarg; break;
		case O_METHOD:
			if ((a->method = prune_method_parse(optarg)) < 0) {
				snprintf(err, errlen, "%s", model_last_error());
				return -1;
			}
			break;
		case O_FITNESS:
			if (strcmp(optarg, "kl") && strcmp(optarg, "ppl")) {
				snprintf(err, errlen, "--fitness: '%s' is not kl or ppl", optarg);
				return -1;
			}
			a->fitness = strcmp(optarg, "kl") ? PRUNE_FITNESS_PPL : PRUNE_FITNESS_KL;
			break;
		case O_SEED: {
			char *end;
			errno = 0;
			const unsigned long long v = strtoull(optarg, &end, 0);
			if (end == optarg || *end || errno || *optarg == '-') {
				snprintf(err, errlen, "--seed: '%s' is not a number", optarg);
				return -1;
			}
			a->search.seed = a->ccds.seed = v;
			break;
		}
		case O_WINDOW: count = &a->window; name = "--window"; lo = 2; break;
		case O_CANDIDATES: count = &a->candidates; name = "--candidates"; break;
		case O_CLUSTERS: count = &a->ccds.clusters; name = "--clusters"; break;
		case O_SAMPLES: count = &a->ccds.samples; name = "--samples"; break;
		case O_EMBED: count = &a->ccds.embed_tokens; name = "--embed-tokens"; break;
		case O_POP: count = &a->search.population; name = "--population"; lo = 2; break;
		case O_GENS: count = &a->search.generations; name = "--generations"; break;
		case O_PATIENCE: count = &a->search.patience; name = "--patience"; break;
		case O_TRIALS: count = &a->search.trials; name = "--trials"; break;
		case O_CROSS: case O_MUT:
			if (parse_float(optarg, 0, 1, &p)) {
				snprintf(err, errlen, "%s: '%s' is not a chance from 0 to 1",
				         o == O_CROSS ? "--crossover" : "--mutation", optarg);
				return -1;
			}
			*(o == O_CROSS ? &a->search.crossover : &a->search.mutation) = p;
			break;
		case O_RANDOM_START: a->search.no_heuristic_seeds = 1; break;
		case O_MAX_MASKS:
			if (parse_size(optarg, 0, &a->search.max_masks, "--max-masks", err, errlen))
				return -1;
			break;
		case O_FORMAT:
			if (strcmp(optarg, "image") && strcmp(optarg, "gguf")) {
				snprintf(err, errlen, "--format: '%s' is not image or gguf", optarg);
				return -1;
			}
			a->format = optarg;
			break;
		case O_TOKENIZER: a->tokenizer = optarg; break;
		case 't': count = &a->threads; name = "--threads"; hi = 256; break;
		case 'n': a->dry_run = 1; break;
		case 'f': a->force = 1; break;
		case 'q': a->quiet = 1; break;
		case 'v': a->verbose = 1; break;
		case 'h': return 1;
		default: snprintf(err, errlen, "unknown option"); return -1;
		}
		if (count && parse_int(optarg, lo, hi, count)) {
			snprintf(err, errlen, "%s: '%s' is not a count from %d to %d", name, optarg, lo, hi);
			return -1;
		}
	}
	if (argc - optind != 1) {
		snprintf(err, errlen, argc - optind ? "expected one MODEL, got %d arguments"
		                                    : "expected a MODEL", argc - optind);
		return -1;
	}
	a->model = argv[optind];
	if (!a->calib) {
		snprintf(err, errlen, "--calib TEXT is required");
		return -1;
	}
	if (!a->out && !a->dry_run) {
		snprintf(err, errlen, "-o OUT is required (or --dry-run)");
		return -1;
	}
	if (!!a->drop == !!a->target) {
		snprintf(err, errlen, a->target ? "--drop and --target exclude each other"
		                                : "--drop K or --target SIZE is required");
		return -1;
	}
	return 0;
}

/* The full model's forward passes a second over the windows of w (at
 * least 0.25 s of them, 8 passes): the rate a tokens/s target scales. */
static double measured_rate(frt_model *rt, const struct prune_windows *w)
{
	const uint64_t t0 = now_ns();
	uint64_t t = t0;
	int passes = 0;
	for (int i = 0; passes < 8 || t - t0 < 250000000u; i = (i + 1) % (w->n * w->len)) {
		frt_forward(rt, w->ids[i], i % w->len);
		passes++;
		t = now_ns();
	}
	return passes / ((double)(t - t0) / 1e9);
}

/* K from a --target of N tok/s: the fewest layers whose removal brings
 * the full model's measured rate, scaled by the bytes a token reads (the
 * passes stream the weights: their time follows the bytes), to N. */
static int drop_for_rate(const struct prune_args *a, const struct model *m, frt_model *rt,
                         const struct prune_windows *w, uint64_t full, uint64_t layer, int *k)
{
	char *end;
	const double want = strtod(a->target, &end);
	if (end == a->target || !(want > 0) || !isfinite(want)) {
		fprintf(stderr, "flexpage prune: --target %s: not a rate (like 40tok/s)\n", a->target);
		return -2;
	}
	const double rate = measured_rate(rt, w);
	*k = 0;
	while (*k < m->cfg.n_layers && rate * (double)full / (double)(full - *k * layer) < want)
		++*k;
	if (*k < 1 || *k >= m->cfg.n_layers) {
		fprintf(stderr, "flexpage prune: --target %s: the model runs at %.1f tok/s here (%d "
		        "layers): %s\n", a->target, rate, m->cfg.n_layers,
		        *k < 1 ? "it is as fast already, nothing to remove"
		               : "more than all layers but one would have to go");
		return -1;
	}
	if (!a->quiet)
		fprintf(stderr, "target: %.1f tok/s measured, %.1f tok/s expected without %d layers\n",
		        rate, rate * (double)full / (double)(full - *k * layer), *k);
	return 0;
}

/* K from --target: the fewest layers whose removal leaves at most target
 * bytes of the model's weights, or (N tok/s) brings the speed to N. */
static int drop_for_target(const struct prune_args *a, const struct model *m, frt_model *rt,
                           const struct prune_windows *w, int *k)
{
	char err[256], b1[32], b2[32];
	uint64_t target;
	const uint64_t full = frt_model_bytes_per_token(rt);
	unsigned char *one = calloc((size_t)m->cfg.n_layers, 1);
	if (!one)
		return -1;
	one[0] = 1;
	frt_model_skip_layers(rt, one);
	const uint64_t layer = full - frt_model_bytes_per_token(rt);
	frt_model_skip_layers(rt, NULL);
	free(one);
	if (ends_with(a->target, "tok/s"))
		return drop_for_rate(a, m, rt, w, full, layer, k);
	/* the weights' bytes: what a token reads, and the rest of the
	 * embedding when it is not the classifier too */
	const uint64_t row = fk_row_bytes(m->weights.token_embd.type, (size_t)m->cfg.dim);
	const uint64_t size = full + (m->shared_classifier ? 0 : row * (uint64_t)(m->cfg.vocab_size - 1));
	if (parse_size(a->target, size, &target, "--target", err, sizeof err)) {
		fprintf(stderr, "flexpage prune: %s\n", err);
		return -1;
	}
	*k = size <= target ? 0 : (int)((size - target + layer - 1) / layer);
	if (*k < 1 || *k >= m->cfg.n_layers) {
		fprintf(stderr, "flexpage prune: --target %s: the model is %s, a layer %s: %s\n",
		        a->target, fmt_bytes(size, b1, sizeof b1), fmt_bytes(layer, b2, sizeof b2),
		        *k < 1 ? "it fits already, nothing to remove"
		               : "more than all layers but one would have to go");
		return -1;
	}
	return 0;
}

static void print_mask(FILE *f, const unsigned char *drop, int n)
{
	int first = 1;
	for (int l = 0; l < n; l++)
		if (drop[l]) {
			fprintf(f, "%s%d", first ? "" : ",", l);
			first = 0;
		}
}

/* The pruned model into a.out, as its name, --format or the input says. */
static int write_out(const struct prune_args *a, const struct model *m,
                     const struct prune_result *r)
{
	const int src_gguf = m->format == MODEL_FORMAT_GGUF;
	const int gguf = a->format ? !strcmp(a->format, "gguf") : ends_with(a->out, ".gguf") || src_gguf;
	/* an image packed from a GGUF stays one: the pruned GGUF, packed */
	int image_of_gguf = 0;
	if (!gguf && m->format == MODEL_FORMAT_IMAGE) {
		fp_image *img = fp_image_open(m->path);
		image_of_gguf = img && fp_image_gguf(img);
		fp_image_close(img);
	}
	char vbuf[4200], tmp[4200];
	const struct prune_provenance p = {
		a->model, prune_method_name(a->method),
		a->fitness == PRUNE_FITNESS_KL ? "kl" : "ppl", r->score, r->full_score, a->search.seed,
	};
	const char *vocab = vocab_file(a->model, a->tokenizer, m->cfg.vocab_size, vbuf, sizeof vbuf);
	if (!image_of_gguf) {
		if (prune_write(m, r->drop, a->out, gguf, vocab, &p)) {
			fprintf(stderr, "flexpage prune: %s\n", model_last_error());
			return -1;
		}
		return 0;
	}
	snprintf(tmp, sizeof tmp, "%s.gguf-XXXXXX", a->out);
	const int fd = mkstemp(tmp);
	if (fd < 0) {
		fprintf(stderr, "flexpage prune: %s: cannot create a temporary file: %s\n", tmp,
		        strerror(errno));
		return -1;
	}
	close(fd);
	char err[1024];
	int rc = prune_write(m, r->drop, tmp, 1, vocab, &p);
	if (rc)
		snprintf(err, sizeof err, "%s", model_last_error());
	const struct fp_writer_options wo = {.verbatim = 1};
	fp_writer *w = rc ? NULL : fp_writer_create(a->out, &wo);
	if (!rc && !w) {
		snprintf(err, sizeof err, "%s", fp_last_error());
		rc = -1;
	}
	if (!rc && pack_verbatim(tmp, w, err, sizeof err)) {
		fp_writer_abort(w);
		rc = -1;
	} else if (!rc && fp_writer_finish(w)) {
		snprintf(err, sizeof err, "%s", fp_last_error());
		rc = -1;
	}
	unlink(tmp);
	if (rc)
		fprintf(stderr, "flexpage prune: %s\n", err);
	return rc;
}

int cmd_prune(int argc, char **argv)
{
	struct prune_args a = {0};
	char err[1024] = "", note[2048] = "";
	int rc = parse_args(argc, argv, &a, err, sizeof err);
	if (rc == 1) {
		prune_usage(stdout);
		return 0;
	}
	if (rc) {
		fprintf(stderr, "flexpage prune: %s\n", err);
		prune_usage(stderr);
		return 2;
	}
	rc = 1;
	struct stat st;
	if (a.out && !a.dry_run && !a.force && !stat(a.out, &st)) {
		fprintf(stderr, "flexpage prune: %s exists; pass --force to replace it\n", a.out);
		return 1;
	}
	size_t text_len = 0;
	char *text = read_text("--calib", a.calib, a.calib_bytes, &text_len, err, sizeof err);
	if (!text) {
		fprintf(stderr, "flexpage prune: %s\n", err);
		return 1;
	}
	struct model m;
	const struct model_options mo = {.load = MODEL_LOAD_RESIDENT};
	frt_tokenizer *tok = NULL;
	frt_model *rt = NULL;
	prune_eval *ev = NULL;
	struct encoded e = {0};
	struct prune_windows win = {0};
	struct prune_ccds cc = {0};
	struct prune_result res = {0};
	if (model_open(&m, a.model, &mo)) {
		fprintf(stderr, "flexpage prune: %s\n", model_last_error());
		free(text);
		return 1;
	}
	const int n = m.cfg.n_layers;
	if (n < 2) {
		fprintf(stderr, "flexpage prune: %s has %d layer: no layer to prune (a model keeps at "
		        "least one)\n", a.model, n);
		goto out;
	}
	if (a.drop && a.drop >= n) {
		fprintf(stderr, "flexpage prune: --drop %d: %s has %d layers; at most %d can go\n",
		        a.drop, a.model, n, n - 1);
		rc = 2;
		goto out;
	}
	if (a.window > m.cfg.seq_len) {
		fprintf(stderr, "flexpage prune: --window %d is above the model's seq_len %d\n", a.window,
		        m.cfg.seq_len);
		rc = 2;
		goto out;
	}
	if (tokenizer_find(a.model, a.tokenizer, m.cfg.vocab_size, &tok, note, sizeof note, err,
	                   sizeof err)) {
		fprintf(stderr, "flexpage prune: %s\n", err);
		goto out;
	}
	if (!tok || frt_tokenizer_bos(tok) < 0) {
		fprintf(stderr, "flexpage prune: %s; give --tokenizer FILE\n",
		        tok ? "the tokenizer has no BOS token" : note);
		goto out;
	}
	if (encode_text(tok, text, text_len, &e, err, sizeof err)) {
		fprintf(stderr, "flexpage prune: %s: %s\n", a.calib, err);
		goto out;
	}
	if (prune_windows_cut(e.ids, e.para, e.n_para, frt_tokenizer_bos(tok), a.window,
	                      a.candidates, &win)) {
		fprintf(stderr, "flexpage prune: --calib %s (%zu bytes, %zu tokens): %s\n", a.calib,
		        text_len, e.n_ids, model_last_error());
		goto out;
	}
	const struct frt_options fo = {a.threads, a.window};
	rt = frt_model_create(&m.cfg, &m.weights, &fo);
	if (!rt) {
		fprintf(stderr, "flexpage prune: %s: %s\n", a.model, frt_last_error());
		goto out;
	}
	if (a.target) {
		const int t = drop_for_target(&a, &m, rt, &win, &a.drop);
		if (t == -2)
			rc = 2;
		if (t)
			goto out;
	}
	a.search.method = a.method;
	a.search.drop = a.drop;

	const uint64_t t0 = now_ns();
	if (prune_ccds(rt, &win, &a.ccds, &cc)) {
		fprintf(stderr, "flexpage prune: %s\n", model_last_error());
		goto out;
	}
	const uint64_t t1 = now_ns();
	ev = prune_eval_create(rt, &win, cc.chosen, cc.n_chosen, a.fitness);
	if (!ev) {
		fprintf(stderr, "flexpage prune: %s\n", model_last_error());
		goto out;
	}
	const uint64_t t2 = now_ns();
	const int steps = a.method == PRUNE_EVOP ? (a.search.generations ? a.search.generations : 12)
	                  : a.method == PRUNE_RANDOM ? (a.search.trials ? a.search.trials : 32)
	                  : a.method == PRUNE_EXHAUSTIVE ? (int)prune_masks(n, a.drop) : 1;
	struct bar_ctx bar;
	progress_start(&bar.bar, a.method == PRUNE_EVOP ? "search" : prune_method_name(a.method),
	               a.method == PRUNE_EVOP ? "generations" : "masks", (uint64_t)steps, !a.quiet);
	bar.verbose = a.verbose;
	a.search.progress = on_step;
	a.search.on_mask = on_mask;
	a.search.ctx = &bar;
	const int failed = prune_search(ev, &a.search, &res);
	const uint64_t t3 = now_ns();
	progress_end(&bar.bar, failed ? 0 : a.method == PRUNE_EVOP ? (uint64_t)res.generations
	                                                             : (uint64_t)res.evaluations);
	if (failed) {
		fprintf(stderr, "flexpage prune: %s\n", model_last_error());
		rc = a.method == PRUNE_EXHAUSTIVE ? 2 : 1;
		goto out;
	}
	const double search_s = (double)(t3 - t2) / 1e9;
	const char *fit = a.fitness == PRUNE_FITNESS_KL ? "kl" : "ppl";
	printf("prune: method=%s drop=%d removed=", prune_method_name(a.method), a.drop);
	print_mask(stdout, res.drop, n);
	printf(" %s=%.6g full=%.6g evaluations=%d generations=%d search_s=%.3f per_eval_s=%.4f "
	       "calib_s=%.3f\n", fit, res.score, res.full_score, res.evaluations, res.generations,
	       search_s, res.evaluations ? search_s / res.evaluations : 0.0,
	       (double)(t2 - t0) / 1e9);
	fflush(stdout);
	if (!a.quiet) {
		fprintf(stderr, "calibration: %s, %zu tokens, %d candidate windows of %d tokens; "
		        "%d clusters (k-means, %d rounds), %d windows drawn across them (%.1f s)\n",
		        a.calib, e.n_ids, win.n, win.len, cc.k, cc.iterations, cc.n_chosen,
		        (double)(t1 - t0) / 1e9);
		fprintf(stderr, "full model: %d layers, %s %.5g on the sample (%.1f s)\n", n, fit,
		        res.full_score, (double)(t2 - t1) / 1e9);
		fprintf(stderr, "best mask (%s): remove layers ", prune_method_name(a.method));
		print_mask(stderr, res.drop, n);
		fprintf(stderr, " of %d: %s %.5g; %d evaluations", n, fit, res.score, res.evaluations);
		if (a.method == PRUNE_EVOP)
			fprintf(stderr, " in %d generations", res.generations);
		fprintf(stderr, ", %.1f s (%.3f s each)\n", search_s,
		        res.evaluations ? search_s / res.evaluations : 0.0);
	}
	if (!a.dry_run) {
		if (write_out(&a, &m, &res))
			goto out;
		if (!a.quiet) {
			/* what a token reads: the weights that page */
			char b1[32], b2[32];
			const uint64_t full = frt_model_bytes_per_token(rt);
			frt_model_skip_layers(rt, res.drop);
			const uint64_t kept = frt_model_bytes_per_token(rt);
			frt_model_skip_layers(rt, NULL);
			fprintf(stderr, "wrote %s: %d of %d layers, %s of weights a token reads (the "
			        "source: %s, %.1f%% less)\n", a.out, n - a.drop, n,
			        fmt_bytes(kept, b1, sizeof b1), fmt_bytes(full, b2, sizeof b2),
			        100.0 * (double)(full - kept) / (double)full);
		}
	}
	rc = 0;
out:
	prune_result_free(&res);
	prune_eval_destroy(ev);
	prune_ccds_free(&cc);
	prune_windows_free(&win);
	frt_model_destroy(rt);
	frt_tokenizer_destroy(tok);
	free(e.ids);
	free(e.para);
	free(text);
	model_close(&m);
	return rc;
}
