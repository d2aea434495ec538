/* flexpage pack IN OUT: a file (as one opaque tensor), a llama2.c
 * checkpoint (as named tensors) or a GGUF (byte for byte) into an image;
 * a llama2.c checkpoint into a GGUF when OUT ends in .gguf. */
#include <errno.h>
#include <fcntl.h>
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

static void pack_usage(FILE *f)
{
	fprintf(f,
	        "usage: flexpage pack IN OUT [options]\n"
	        "  Writes IN as a flexpage image OUT.  A llama2.c checkpoint becomes named\n"
	        "  tensors; any other file becomes one opaque tensor named 'data'.  A GGUF\n"
	        "  is packed verbatim: the image's bytes are the file's (flexpage cat OUT\n"
	        "  gives IN back), its tensors the GGUF's, at the same offsets.  With OUT\n"
	        "  ending in .gguf, a llama2.c checkpoint becomes a GGUF that llama.cpp loads.\n\n"
	        "  --chunk SIZE        chunk size, a power of two from 64K to 4M (default 2M)\n"
	        "  --codec raw|zstd[:LEVEL]|auto|both[:LEVEL]  payload codec (default raw; zstd\n"
	        "                      level default 3): zstd stores each chunk as the smaller of\n"
	        "                      zstd and zstd-split (quantized blocks' scales apart,\n"
	        "                      docs/format.md) or raw; auto raw or compressed, chunk by\n"
	        "                      chunk, so that the image streams fastest at --read-rate\n"
	        "                      (reads overlapped with decodes); both as zstd does, and the raw bytes too\n"
	        "                      where compressing saved a page or more: the pager reads\n"
	        "                      whichever form is cheaper at the rates it measures\n"
	        "  --read-rate RATE    for auto: bytes/s the image will be read at (600M; default 1G)\n"
	        "  --decode-rate RATE  for auto: bytes/s a core decodes zstd at (default: each\n"
	        "                      candidate's decode is timed)\n"
	        "  --decoders N        for auto: the most loaders the reader decodes with at once\n"
	        "                      (its run --decoders); decoding is counted as spread over\n"
	        "                      this machine's cores less one, at most N (default 0: no limit)\n"
	        "  --quant f32|q8_0|q4_0     quantize a checkpoint's matrices (default f32)\n"
	        "  --opaque            pack a checkpoint (or a GGUF) as one opaque tensor\n"
	        "  --compressible LEVEL  compression-aware quantization of a model (a llama2.c\n"
	        "                      checkpoint, a GGUF or an image of f32/f16 matrices), 0\n"
	        "                      (plain) to 6 (smallest): input channels re-scaled by the\n"
	        "                      activations of --calib text, a coarser q8_0 grid, small\n"
	        "                      weights pruned; --quant q8_0 (default), q4_0, or f32\n"
	        "                      (re-scaling alone); codec zstd unless --codec says\n"
	        "  --calib FILE        calibration text (needed above level 0)\n"
	        "  --calib-skip SIZE   bytes of FILE to skip first (keep held-out text out)\n"
	        "  --calib-tokens N    tokens to calibrate on (default 4096)\n"
	        "  --cq-params A,Q,Z[,S[,B]]  expert, in place of the level's: re-scaling\n"
	        "                      exponent, q8_0 grid, dead zone in steps, one step of S x\n"
	        "                      the matrix's RMS, B mantissa bits of the block scales\n"
	        "                      (docs/compression.md)\n"
	        "  --threads N         compute threads of the calibration (default 1)\n"
	        "  --verbatim          keep IN byte for byte, whatever it is: the image's bytes\n"
	        "                      are IN's; tensors are a GGUF's or a checkpoint's, at\n"
	        "                      their offsets in IN, or one opaque tensor\n"
	        "  --tokenizer FILE    for a .gguf OUT: the vocabulary, a llama2.c tokenizer\n"
	        "                      file (e.g. tok512.bin); default: a generated one; with\n"
	        "                      --calib: the text's tokenizer (default: one beside IN)\n"
	        "  -f, --force         replace OUT if it exists\n"
	        "  -q, --quiet         no progress bar or summary\n");
}

static int pack_opaque(const char *in, fp_writer *w, char *err, size_t errlen)
{
	uint64_t size;
	int fd = pack_open_input(in, &size, err, errlen);
	if (fd < 0)
		return -1;
	uint64_t shape[1] = {size};
	char meta[64];
	snprintf(meta, sizeof meta, "arch=opaque\n");
	int rc = fp_writer_set_meta(w, meta) ||
	         fp_writer_begin_tensor(w, "data", FP_TYPE_U8, 1, shape);
	if (!rc)
		rc = pack_file_bytes(fd, in, shape[0], w, err, errlen);
	if (!rc)
		rc = fp_writer_end_tensor(w);
	if (rc && !err[0])
		snprintf(err, errlen, "%s", fp_last_error());
	close(fd);
	return rc ? -1 : 0;
}

/* A llama2.c checkpoint into a GGUF (flexmodel writes it). */
static int pack_gguf(const char *in, const char *out, const char *quant, const char *tokenizer,
                     int quiet)
{
	if (!model_is_llama2c(in)) {
		fprintf(stderr, "flexpage pack: %s: a .gguf OUT needs a llama2.c checkpoint\n", in);
		return 1;
	}
	fp_gguf_writer *w = fp_gguf_writer_create(out);
	if (!w) {
		fprintf(stderr, "flexpage pack: %s\n", fp_last_error());
		return 1;
	}
	if (model_import_llama2c_gguf(in, w, quant, tokenizer)) {
		fp_gguf_writer_abort(w);
		fprintf(stderr, "flexpage pack: %s\n", model_last_error());
		return 1;
	}
	if (fp_gguf_writer_finish(w)) {
		fprintf(stderr, "flexpage pack: %s\n", fp_last_error());
		return 1;
	}
	if (!quiet)
		fprintf(stderr, "wrote %s: a GGUF of %s (%s, vocabulary %s)\n", out, in,
		        quant ? quant : "f32", tokenizer ? tokenizer : "generated");
	return 0;
}

int pack_report(const char *out)
{
	fp_image *img = fp_image_open(out);
	if (!img) {
		fprintf(stderr, "flexpage pack: wrote %s but cannot read it back: %s\n", out,
		        fp_last_error());
		return 1;
	}
	const struct fp_image_info *info = fp_image_info(img);
	char a[32], b[32];
	fprintf(stderr, "wrote %s: %u tensors, %u chunks of %u KiB, %s of data stored in %s (ratio %.3f)%s\n",
	        out, info->n_tensors, info->n_chunks, info->chunk_size >> 10,
	        fmt_bytes(info->data_bytes, a, sizeof a), fmt_bytes(info->stored_bytes, b, sizeof b),
	        info->stored_bytes ? (double)info->data_bytes / (double)info->stored_bytes : 0.0,
	        info->kind == FP_IMAGE_VERBATIM ? "; its bytes are the input's" : "");
	fp_image_close(img);
	return 0;
}

static int ends_with(const char *s, const char *tail)
{
	const size_t n = strlen(s), k = strlen(tail);
	return n > k && !strcmp(s + n - k, tail);
}

int cmd_pack(int argc, char **argv)
{
	static const struct option opts[] = {
		{"chunk", required_argument, 0, 'c'}, {"codec", required_argument, 0, 'z'},
		{"quant", required_argument, 0, 'Q'}, {"opaque", no_argument, 0, 'o'},
		{"verbatim", no_argument, 0, 'V'},   {"tokenizer", required_argument, 0, 'k'},
		{"force", no_argument, 0, 'f'}, {"quiet", no_argument, 0, 'q'},
		{"compressible", required_argument, 0, 'C'}, {"calib", required_argument, 0, 'T'},
		{"calib-skip", required_argument, 0, 'S'}, {"calib-tokens", required_argument, 0, 'N'},
		{"cq-params", required_argument, 0, 'P'}, {"threads", required_argument, 0, 't'},
		{"read-rate", required_argument, 0, 'R'}, {"decode-rate", required_argument, 0, 'D'},
		{"decoders", required_argument, 0, 'd'},
		{"help", no_argument, 0, 'h'}, {0, 0, 0, 0},
	};
	struct model_compress_options co = {.type = FK_Q8_0, .level = -1};
	double cq[5] = {0};
	int codec_given = 0;
	struct fp_writer_options wo = {.chunk_size = 2u << 20, .progress = 1};
	const char *quant = NULL, *tokenizer = NULL;
	int opaque = 0, verbatim = 0, force = 0, quiet = 0, o;
	char err[512] = "";
	optind = 1;
	while ((o = getopt_long(argc, argv, "fqh", opts, NULL)) != -1) {
		switch (o) {
		case 'c':
			if (parse_chunk_size(optarg, &wo.chunk_size, err, sizeof err))
				goto usage_err;
			break;
		case 'z':
			if (parse_codec(optarg, &wo.codec, &wo.zstd_level)) {
				snprintf(err, sizeof err, CODEC_ERROR, optarg);
				goto usage_err;
			}
			codec_given = 1;
			break;
		case 'C':
			if (parse_int(optarg, 0, MODEL_COMPRESS_MAX_LEVEL, &co.level)) {
				snprintf(err, sizeof err, "--compressible: '%s' is not a level from 0 to %d",
				         optarg, MODEL_COMPRESS_MAX_LEVEL);
				goto usage_err;
			}
			break;
		case 'T': co.calib = optarg; break;
		case 'R':
		case 'D': {
			uint64_t rate;
			if (parse_size(optarg, 0, &rate, o == 'R' ? "--read-rate" : "--decode-rate", err,
			               sizeof err))
				goto usage_err;
			if (!rate) {
				snprintf(err, sizeof err, "%s: a rate must be positive",
				         o == 'R' ? "--read-rate" : "--decode-rate");
				goto usage_err;
			}
			*(o == 'R' ? &wo.read_rate : &wo.decode_rate) = (double)rate;
			break;
		}
		case 'd':
			if (parse_int(optarg, 0, 64, &wo.decoders)) {
				snprintf(err, sizeof err, "--decoders: '%s' is not a count from 0 to 64",
				         optarg);
				goto usage_err;
			}
			break;
		case 'S':
			if (parse_size(optarg, 0, &co.calib_skip, "--calib-skip", err, sizeof err))
				goto usage_err;
			break;
		case 'N':
			if (parse_int(optarg, 1, 1 << 24, &co.calib_tokens)) {
				snprintf(err, sizeof err, "--calib-tokens: '%s' is not a count from 1", optarg);
				goto usage_err;
			}
			break;
		case 'P':
			if (sscanf(optarg, "%lf,%lf,%lf,%lf,%lf", &cq[0], &cq[1], &cq[2], &cq[3], &cq[4]) < 3) {
				snprintf(err, sizeof err, "--cq-params: '%s' is not ALPHA,QMAX,DEADZONE[,STEP[,SBITS]]",
				         optarg);
				goto usage_err;
			}
			co.params = cq;
			break;
		case 't':
			if (parse_int(optarg, 1, 1024, &co.threads)) {
				snprintf(err, sizeof err, "--threads: '%s' is not a count from 1", optarg);
				goto usage_err;
			}
			break;
		case 'Q':
			if (strcmp(optarg, "f32") && strcmp(optarg, "q8_0") && strcmp(optarg, "q4_0")) {
				snprintf(err, sizeof err, "--quant: '%s' is not f32, q8_0 or q4_0", optarg);
				goto usage_err;
			}
			quant = optarg;
			break;
		case 'o': opaque = 1; break;
		case 'V': verbatim = 1; break;
		case 'k': tokenizer = optarg; break;
		case 'f': force = 1; break;
		case 'q': quiet = 1; wo.progress = 0; break;
		case 'h': pack_usage(stdout); return 0;
		default: pack_usage(stderr); return 2;
		}
	}
	if (argc - optind != 2) {
		snprintf(err, sizeof err, "expected IN and OUT");
		goto usage_err;
	}
	if ((wo.read_rate > 0 || wo.decode_rate > 0 || wo.decoders) && wo.codec != FP_CODEC_AUTO) {
		snprintf(err, sizeof err, "--read-rate, --decode-rate and --decoders go with --codec auto");
		goto usage_err;
	}
	const char *in = argv[optind], *out = argv[optind + 1];
	struct stat si, so;
	if (stat(in, &si)) {
		fprintf(stderr, "flexpage pack: %s: %s\n", in, strerror(errno));
		return 1;
	}
	if (!stat(out, &so)) {
		if (so.st_dev == si.st_dev && so.st_ino == si.st_ino) {
			fprintf(stderr, "flexpage pack: %s: OUT is the input file\n", out);
			return 1;
		}
		if (!force) {
			fprintf(stderr, "flexpage pack: %s exists; pass --force to replace it\n", out);
			return 1;
		}
	}
	if (co.level >= 0 || co.calib || co.params) {
		if (opaque || verbatim || ends_with(out, ".gguf")) {
			fprintf(stderr, "flexpage pack: --compressible makes an image of quantized "
			        "matrices: not with --opaque, --verbatim or a .gguf OUT\n");
			return 2;
		}
		if (co.level < 0)
			co.level = 0;
		if (quant)
			co.type = fk_type_parse(quant);
		if (!codec_given) {
			wo.codec = FP_CODEC_ZSTD;
			wo.zstd_level = 3;
		}
		wo.progress = 0;
		return pack_compress(in, out, &co, tokenizer, &wo, quiet);
	}
	if (ends_with(out, ".gguf") && !opaque && !verbatim)
		return pack_gguf(in, out, quant, tokenizer, quiet);
	if (tokenizer) {
		snprintf(err, sizeof err, "--tokenizer applies to a .gguf OUT");
		goto usage_err;
	}
	if (opaque && verbatim) {
		fprintf(stderr, "flexpage pack: --opaque and --verbatim exclude each other\n");
		return 2;
	}
	wo.verbatim = verbatim || (!opaque && fp_file_is_gguf(in));
	int model = !opaque && !wo.verbatim && model_is_llama2c(in);
	if (quant && wo.verbatim) {
		fprintf(stderr, "flexpage pack: %s: --quant cannot keep the file's bytes (%s)\n", in,
		        verbatim ? "--verbatim" : "a GGUF is packed verbatim");
		return 1;
	}
	if (quant && !model) {
		fprintf(stderr, "flexpage pack: %s: --quant needs a llama2.c checkpoint\n", in);
		return 1;
	}
	/* The bar counts bytes written: quantized matrices shrink to 34 (q8_0)
	 * or 18 (q4_0) bytes per 32 floats of the checkpoint. */
	wo.expected_bytes = (uint64_t)si.st_size;
	if (quant && !strcmp(quant, "q8_0"))
		wo.expected_bytes = wo.expected_bytes * 34 / 128;
	else if (quant && !strcmp(quant, "q4_0"))
		wo.expected_bytes = wo.expected_bytes * 18 / 128;
	fp_writer *w = fp_writer_create(out, &wo);
	if (!w) {
		fprintf(stderr, "flexpage pack: %s\n", fp_last_error());
		return 1;
	}
	int rc = wo.verbatim ? pack_verbatim(in, w, err, sizeof err)
	         : model   ? model_import_llama2c(in, w, quant)
	                   : pack_opaque(in, w, err, sizeof err);
	if (rc) {
		fp_writer_abort(w);
		fprintf(stderr, "flexpage pack: %s\n",
		        !wo.verbatim && model ? model_last_error() : err[0] ? err : fp_last_error());
		return 1;
	}
	if (fp_writer_finish(w)) {
		fprintf(stderr, "flexpage pack: %s\n", fp_last_error());
		return 1;
	}
	if (!quiet)
		return pack_report(out);
	return 0;
usage_err:
	fprintf(stderr, "flexpage pack: %s\n", err);
	pack_usage(stderr);
	return 2;
}
