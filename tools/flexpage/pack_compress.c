/* flexpage pack --compressible: compression-aware quantization of a model
 * (flexmodel's model_compress_write) into an image stored with zstd, and
 * its summary: what the quantized matrices cost in stored bits per
 * weight, what the calibration measured, which matrices stayed f32. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <flexmodel/model.h>

#include "cmds.h"
#include "run_options.h"
#include "util.h"

/* The model's vocabulary size, cheaply: a map where the format allows. */
static int vocab_of(const char *in, char *err, size_t errlen)
{
	struct model m = {0};
	struct model_options mo = {.load = MODEL_LOAD_MMAP};
	if (model_open(&m, in, &mo)) {
		mo.load = MODEL_LOAD_DEFAULT;
		if (model_open(&m, in, &mo)) {
			snprintf(err, errlen, "%s", model_last_error());
			return -1;
		}
	}
	const int v = m.cfg.vocab_size;
	model_close(&m);
	return v;
}

int pack_compress(const char *in, const char *out, struct model_compress_options *co,
                  const char *tokenizer, const struct fp_writer_options *wo, int quiet)
{
	char err[1024] = "", note[1024] = "";
	frt_tokenizer *tok = NULL;
	if (co->calib || co->level) {
		const int vocab = vocab_of(in, err, sizeof err);
		if (vocab < 0) {
			fprintf(stderr, "flexpage pack: %s\n", err);
			return 1;
		}
		if (tokenizer_find(in, tokenizer, vocab, &tok, note, sizeof note, err, sizeof err) ||
		    !tok) {
			fprintf(stderr, "flexpage pack: --calib needs a tokenizer: %s\n", err[0] ? err : note);
			return 1;
		}
	}
	co->tok = tok;
	co->zstd_level = wo->codec == FP_CODEC_RAW ? 3 : wo->zstd_level;
	fp_writer *w = fp_writer_create(out, wo);
	if (!w) {
		fprintf(stderr, "flexpage pack: %s\n", fp_last_error());
		frt_tokenizer_destroy(tok);
		return 1;
	}
	struct model_compress_report r;
	const int rc = model_compress_write(in, w, co, &r);
	frt_tokenizer_destroy(tok);
	if (rc) {
		fp_writer_abort(w);
		fprintf(stderr, "flexpage pack: %s\n", model_last_error());
		return 1;
	}
	if (fp_writer_finish(w)) {
		fprintf(stderr, "flexpage pack: %s\n", fp_last_error());
		return 1;
	}
	if (quiet)
		return 0;
	if (pack_report(out))
		return 1;
	const char *type = co->type == FK_Q8_0 ? "q8_0" : co->type == FK_Q4_0 ? "q4_0" : "f32";
	char grid[64];
	if (r.step > 0)
		snprintf(grid, sizeof grid, "one step of %g x the matrix RMS", r.step);
	else
		snprintf(grid, sizeof grid, "|q| <= %d a block", r.qmax);
	fprintf(stderr, "compressible %d (%s; re-scaling alpha %g, q8_0 grid %s, dead zone %g "
	        "steps)\n", co->level, type, r.alpha, grid, r.deadzone);
	if (r.q_weights) {
		const double n = (double)r.q_weights;
		fprintf(stderr, "  quantized matrices: %llu weights, %.3f bits/weight as blocks, "
		        "stored %.3f with zstd (%.3f with the scales apart); values' entropy %.3f "
		        "bits/weight\n", (unsigned long long)r.q_weights, 8.0 * (double)r.q_bytes / n,
		        8.0 * (double)r.q_zstd_bytes / n, 8.0 * (double)r.q_split_bytes / n, r.entropy);
	}
	if (r.calib_tokens)
		fprintf(stderr, "  calibration: %d tokens of %s; mean relative output error of the "
		        "matrices %.3g%%; logit error %.3g%% (RMS, %d tokens, against the float "
		        "model)\n", r.calib_tokens, co->calib, 100 * r.weighted_err, 100 * r.logit_err,
		        r.err_tokens);
	if (r.n_kept_f32)
		fprintf(stderr, "  kept f32 (rows not whole blocks of 32): %d matrices: %s\n",
		        r.n_kept_f32, r.kept_f32);
	return 0;
}
