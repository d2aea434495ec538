/* flexpage synth: write a synthetic Llama-shaped model as an image or a
 * GGUF. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <flexkern/kernels.h>

#include <flexmodel/model.h>

#include "cmds.h"
#include "util.h"

static void synth_usage(FILE *f)
{
	fprintf(f,
	        "usage: flexpage synth --shape NAME -o OUT [options]\n"
	        "  Writes a model of a Llama shape, with weights drawn to look like trained\n"
	        "  ones (heavy-tailed, per-row scales), as a flexpage image or a GGUF that\n"
	        "  llama.cpp loads.  The same shape, quant and seed always give the same\n"
	        "  tensors, in either format.\n\n"
	        "  --shape NAME        260k, 110m, tinyllama-1.1b, llama2-7b, or\n"
	        "                      DIM,HIDDEN,LAYERS,HEADS,KV_HEADS,VOCAB,SEQ[,SHARED]\n"
	        "  --quant TYPE        f32, q8_0 or q4_0 (default f32)\n"
	        "  --format image|gguf  what to write (default: gguf if OUT ends in .gguf,\n"
	        "                      else image)\n"
	        "  --tokenizer FILE    for gguf: the vocabulary, a llama2.c tokenizer file of\n"
	        "                      the shape's vocabulary size (e.g. tokenizer.bin for 32000);\n"
	        "                      default: a generated one\n"
	        "  --codec raw|zstd[:LEVEL]|auto  for image: payload codec (default raw; see pack)\n"
	        "  --chunk SIZE        for image: chunk size, a power of two from 64K to 4M\n"
	        "                      (default 2M)\n"
	        "  --seed S            random seed (default 1)\n"
	        "  --threads N         generator threads (default 2)\n"
	        "  -o, --output OUT    the image to write\n"
	        "  -f, --force         replace OUT if it exists\n"
	        "  -q, --quiet         no progress bar or summary\n");
}

static int synth_image(const char *out, const struct fp_writer_options *wo,
                       const struct model_shape *s, int type, uint64_t seed, int threads)
{
	fp_writer *w = fp_writer_create(out, wo);
	if (!w) {
		fprintf(stderr, "flexpage synth: %s\n", fp_last_error());
		return -1;
	}
	if (model_synth_write(w, &s->cfg, s->shared_classifier, type, seed, threads)) {
		fp_writer_abort(w);
		fprintf(stderr, "flexpage synth: %s\n", model_last_error());
		return -1;
	}
	if (fp_writer_finish(w)) {
		fprintf(stderr, "flexpage synth: %s\n", fp_last_error());
		return -1;
	}
	return 0;
}

static int synth_gguf(const char *out, const struct model_shape *s, int type, uint64_t seed,
                      int threads, const char *tokenizer)
{
	fp_gguf_writer *w = fp_gguf_writer_create(out);
	if (!w) {
		fprintf(stderr, "flexpage synth: %s\n", fp_last_error());
		return -1;
	}
	if (model_synth_write_gguf(w, &s->cfg, s->shared_classifier, type, seed, threads, tokenizer)) {
		fp_gguf_writer_abort(w);
		fprintf(stderr, "flexpage synth: %s\n", model_last_error());
		return -1;
	}
	if (fp_gguf_writer_finish(w)) {
		fprintf(stderr, "flexpage synth: %s\n", fp_last_error());
		return -1;
	}
	return 0;
}

int cmd_synth(int argc, char **argv)
{
	static const struct option opts[] = {
		{"shape", required_argument, 0, 's'}, {"quant", required_argument, 0, 'Q'},
		{"codec", required_argument, 0, 'z'}, {"chunk", required_argument, 0, 'c'},
		{"seed", required_argument, 0, 'S'},  {"threads", required_argument, 0, 't'},
		{"output", required_argument, 0, 'o'}, {"force", no_argument, 0, 'f'},
		{"quiet", no_argument, 0, 'q'},       {"help", no_argument, 0, 'h'},
		{"format", required_argument, 0, 'F'}, {"tokenizer", required_argument, 0, 'k'},
		{0, 0, 0, 0},
	};
	struct fp_writer_options wo = {.chunk_size = 2u << 20, .progress = 1};
	struct model_shape shape;
	const char *shape_name = NULL, *out = NULL, *format = NULL, *tokenizer = NULL;
	int type = FK_F32, threads = 2, force = 0, quiet = 0, o, image_opts = 0;
	unsigned long long seed = 1;
	char err[512] = "", *end;
	optind = 1;
	while ((o = getopt_long(argc, argv, "o:fqh", opts, NULL)) != -1) {
		switch (o) {
		case 's': shape_name = optarg; break;
		case 'Q':
			type = fk_type_parse(optarg);
			if (type < 0) {
				snprintf(err, sizeof err, "--quant: '%s' is not f32, q8_0 or q4_0", optarg);
				goto usage_err;
			}
			break;
		case 'F':
			if (strcmp(optarg, "image") && strcmp(optarg, "gguf")) {
				snprintf(err, sizeof err, "--format: '%s' is not image or gguf", optarg);
				goto usage_err;
			}
			format = optarg;
			break;
		case 'k': tokenizer = optarg; break;
		case 'z':
			image_opts = 1;
			if (parse_codec(optarg, &wo.codec, &wo.zstd_level)) {
				snprintf(err, sizeof err, CODEC_ERROR, optarg);
				goto usage_err;
			}
			break;
		case 'c':
			image_opts = 1;
			if (parse_chunk_size(optarg, &wo.chunk_size, err, sizeof err))
				goto usage_err;
			break;
		case 'S':
			seed = strtoull(optarg, &end, 0);
			if (end == optarg || *end) {
				snprintf(err, sizeof err, "--seed: '%s' is not a number", optarg);
				goto usage_err;
			}
			break;
		case 't':
			threads = (int)strtol(optarg, &end, 10);
			if (end == optarg || *end || threads < 1 || threads > 256) {
				snprintf(err, sizeof err, "--threads: '%s' is not a count from 1 to 256", optarg);
				goto usage_err;
			}
			break;
		case 'o': out = optarg; break;
		case 'f': force = 1; break;
		case 'q': quiet = 1; wo.progress = 0; break;
		case 'h': synth_usage(stdout); return 0;
		default: synth_usage(stderr); return 2;
		}
	}
	if (optind < argc) {
		snprintf(err, sizeof err, "unexpected argument '%s'", argv[optind]);
		goto usage_err;
	}
	if (!shape_name || !out) {
		snprintf(err, sizeof err, "%s is required", !shape_name ? "--shape" : "-o OUT");
		goto usage_err;
	}
	const size_t out_len = strlen(out);
	const int gguf = format ? !strcmp(format, "gguf")
	                        : out_len > 5 && !strcmp(out + out_len - 5, ".gguf");
	if (gguf && image_opts) {
		snprintf(err, sizeof err, "--codec and --chunk apply to images, not GGUF files");
		goto usage_err;
	}
	if (!gguf && tokenizer) {
		snprintf(err, sizeof err, "--tokenizer applies to --format gguf");
		goto usage_err;
	}
	if (model_parse_shape(shape_name, &shape)) {
		snprintf(err, sizeof err, "%s", model_last_error());
		goto usage_err;
	}
	if (type != FK_F32 && (shape.cfg.dim % FK_QK || shape.cfg.hidden_dim % FK_QK)) {
		fprintf(stderr, "flexpage synth: shape %s cannot be %s: dim %d and hidden_dim %d must be "
		        "multiples of %d\n", shape.name, fk_type_name(type), shape.cfg.dim,
		        shape.cfg.hidden_dim, FK_QK);
		return 1;
	}
	struct stat st;
	if (!force && !stat(out, &st)) {
		fprintf(stderr, "flexpage synth: %s exists; pass --force to replace it\n", out);
		return 1;
	}

	const uint64_t bytes = model_synth_bytes(&shape.cfg, shape.shared_classifier, type);
	wo.expected_bytes = bytes;
	const uint64_t t0 = now_ns();
	if (gguf ? synth_gguf(out, &shape, type, seed, threads, tokenizer)
	         : synth_image(out, &wo, &shape, type, seed, threads))
		return 1;
	if (!quiet) {
		char b[32];
		const double s = (double)(now_ns() - t0) / 1e9;
		fprintf(stderr, "wrote %s: %s, shape %s, %s, %s of tensors in %.1f s (%.0f MB/s)\n", out,
		        gguf ? "GGUF" : "image", shape.name, fk_type_name(type), fmt_bytes(bytes, b, sizeof b), s,
		        (double)bytes / s / 1e6);
	}
	return 0;
usage_err:
	fprintf(stderr, "flexpage synth: %s\n", err);
	synth_usage(stderr);
	return 2;
}
