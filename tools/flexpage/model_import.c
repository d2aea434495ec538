/* llama2.c checkpoints: header checks, layout, and import into an image.
 *
 * A checkpoint stacks each tensor over the layers (all wq, then all wk...),
 * while a decode reads layer by layer.  The import writes the tensors in
 * decode order under GGUF's names, one row batch at a time with pread(),
 * so no more than a few MiB of the model are ever in memory. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <flexkern/kernels.h>

#include "cmds.h"
#include "model.h"

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -1;
}

int model_check_config(const struct frt_config *c, const char *path,
                       const char *field_prefix, char *err, size_t errlen)
{
	if (frt_config_check(c))
		return fail(err, errlen, "%s: %s%s%s", path, field_prefix, *field_prefix ? " " : "",
		            frt_last_error());
	return 0;
}

int model_format_meta(const struct frt_config *c, int shared, int type, char *buf, size_t len)
{
	int n = snprintf(buf, len,
	                 "arch=llama\ndim=%d\nhidden_dim=%d\nn_layers=%d\nn_heads=%d\n"
	                 "n_kv_heads=%d\nvocab_size=%d\nseq_len=%d\nshared_classifier=%d\n"
	                 "rope_theta=10000\nnorm_eps=1e-5\ntype=%s\n",
	                 c->dim, c->hidden_dim, c->n_layers, c->n_heads, c->n_kv_heads,
	                 c->vocab_size, c->seq_len, shared ? 1 : 0, fk_type_name(type));
	return n < 0 || (size_t)n >= len ? -1 : 0;
}

static int read_header(int fd, int32_t h[7])
{
	ssize_t n = pread(fd, h, 7 * sizeof(int32_t), 0);
	return n == 7 * (ssize_t)sizeof(int32_t) ? 0 : -1;
}

int llama2c_read_layout(int fd, const char *path, struct llama2c_layout *lay,
                        char *err, size_t errlen)
{
	struct stat st;
	int32_t h[7];
	if (fstat(fd, &st))
		return fail(err, errlen, "%s: cannot stat: %s", path, strerror(errno));
	if (st.st_size < 28 || read_header(fd, h))
		return fail(err, errlen, "%s: truncated: %lld bytes, a llama2.c header needs 28",
		            path, (long long)st.st_size);
	memset(lay, 0, sizeof *lay);
	struct frt_config *c = &lay->cfg;
	*c = (struct frt_config){h[0], h[1], h[2], h[3], h[4], h[5], h[6], 10000.0f, 1e-5f};
	/* a negative vocab_size means the classifier follows as its own tensor */
	lay->shared_classifier = h[5] > 0;
	if (h[5] < 0 && h[5] != INT32_MIN)
		c->vocab_size = -h[5];
	if (h[5] == 0)
		return fail(err, errlen, "%s: header field vocab_size = 0 must not be zero", path);
	if (model_check_config(c, path, "header field", err, errlen))
		return -1;

	const uint64_t d = (uint64_t)c->dim, hd = (uint64_t)c->hidden_dim, L = (uint64_t)c->n_layers;
	const uint64_t kv = d * (uint64_t)c->n_kv_heads / (uint64_t)c->n_heads;
	const uint64_t hs = d / (uint64_t)c->n_heads, V = (uint64_t)c->vocab_size;
	uint64_t at = 28;
	lay->token_embd = at; at += 4 * V * d;
	lay->rms_att = at;    at += 4 * L * d;
	lay->wq = at;         at += 4 * L * d * d;
	lay->wk = at;         at += 4 * L * kv * d;
	lay->wv = at;         at += 4 * L * kv * d;
	lay->wo = at;         at += 4 * L * d * d;
	lay->rms_ffn = at;    at += 4 * L * d;
	lay->w1 = at;         at += 4 * L * hd * d;
	lay->w2 = at;         at += 4 * L * d * hd;
	lay->w3 = at;         at += 4 * L * hd * d;
	lay->rms_final = at;  at += 4 * d;
	at += 4 * (uint64_t)c->seq_len * hs; /* freq_cis_real and _imag: unused */
	lay->wcls = lay->shared_classifier ? lay->token_embd : at;
	if (!lay->shared_classifier)
		at += 4 * V * d;
	lay->file_size = (uint64_t)st.st_size;

	if (lay->file_size != at) {
		const int shorter = lay->file_size < at;
		return fail(err, errlen,
		            "%s: %s: the header (dim=%d hidden_dim=%d n_layers=%d n_heads=%d "
		            "n_kv_heads=%d vocab_size=%d seq_len=%d) needs %llu bytes, the file has %llu "
		            "(%llu %s)",
		            path, shorter ? "truncated" : "size mismatch", h[0], h[1], h[2], h[3],
		            h[4], h[5], h[6], (unsigned long long)at,
		            (unsigned long long)lay->file_size,
		            (unsigned long long)(shorter ? at - lay->file_size : lay->file_size - at),
		            shorter ? "bytes missing" : "bytes too many");
	}
	return 0;
}

int model_is_llama2c(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	int32_t h[7];
	char magic[8];
	int ok = !read_header(fd, h) && pread(fd, magic, 8, 0) == 8 &&
	         memcmp(magic, FP_IMAGE_MAGIC, 8) != 0;
	close(fd);
	if (!ok)
		return 0;
	/* plausible dims that divide as the architecture needs: a random
	 * file passes this about never, while a checkpoint with a wrong size
	 * still counts, so that importing it says what is wrong */
	struct frt_config c = {h[0], h[1], h[2], h[3], h[4], h[5] < 0 && h[5] != INT32_MIN ? -h[5] : h[5],
	                       h[6], 0, 0};
	char err[8];
	return model_check_config(&c, path, "", err, sizeof err) == 0;
}

/* ------------------------------------------------------------------ */
/* Import                                                               */

struct importer {
	int fd;
	const char *path;
	fp_writer *w;
	int type;
	float *rows;                 /* a batch of rows as read */
	void *out;                   /* the same rows converted */
	size_t batch_values;
	char *err;
	size_t errlen;
};

static int read_at(struct importer *im, void *dst, size_t n, uint64_t off)
{
	char *p = dst;
	while (n) {
		ssize_t r = pread(im->fd, p, n, (off_t)off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return fail(im->err, im->errlen, "%s: read failed at offset %llu: %s", im->path,
			            (unsigned long long)off, r ? strerror(errno) : "the file shrank");
		p += r;
		n -= (size_t)r;
		off += (uint64_t)r;
	}
	return 0;
}

static int writer_fail(struct importer *im, const char *name)
{
	return fail(im->err, im->errlen, "%s: writing %s: %s", im->path, name, fp_last_error());
}

/* One tensor of rows x cols floats at file offset off; matrices take the
 * import type, norms (is_norm) stay f32. */
static int put_tensor(struct importer *im, const char *name, uint64_t off,
                      uint64_t rows, uint64_t cols, int is_norm)
{
	const int type = is_norm ? FK_F32 : im->type;
	const uint64_t shape[2] = {cols, rows};
	if (fp_writer_begin_tensor(im->w, name, (uint32_t)type, is_norm ? 1 : 2, shape))
		return writer_fail(im, name);
	const size_t row_bytes = fk_row_bytes(type, (size_t)cols);
	size_t per = im->batch_values / cols;
	if (per < 1)
		per = 1;
	for (uint64_t r = 0; r < rows; r += per) {
		const size_t n = (size_t)(rows - r < per ? rows - r : per);
		if (read_at(im, im->rows, n * cols * sizeof(float), off + r * cols * sizeof(float)))
			return -1;
		const void *src = im->rows;
		if (type != FK_F32) {
			for (size_t i = 0; i < n; i++) {
				char *dst = (char *)im->out + i * row_bytes;
				if (type == FK_Q8_0)
					fk_quantize_row_q8_0(im->rows + i * cols, (fk_block_q8_0 *)dst, cols);
				else
					fk_quantize_row_q4_0(im->rows + i * cols, (fk_block_q4_0 *)dst, cols);
			}
			src = im->out;
		}
		if (fp_writer_write(im->w, src, n * row_bytes))
			return writer_fail(im, name);
	}
	if (fp_writer_end_tensor(im->w))
		return writer_fail(im, name);
	return 0;
}

static int import_tensors(struct importer *im, const struct llama2c_layout *lay)
{
	const struct frt_config *c = &lay->cfg;
	const uint64_t d = (uint64_t)c->dim, hd = (uint64_t)c->hidden_dim, V = (uint64_t)c->vocab_size;
	const uint64_t kv = d * (uint64_t)c->n_kv_heads / (uint64_t)c->n_heads;
	char name[FP_NAME_MAX];

	if (put_tensor(im, "token_embd.weight", lay->token_embd, V, d, 0))
		return -1;
	for (int l = 0; l < c->n_layers; l++) {
		const struct {
			const char *suffix;
			uint64_t base, rows, cols;
			int norm;
		} t[] = {
			{"attn_norm", lay->rms_att, 1, d, 1}, {"attn_q", lay->wq, d, d, 0},
			{"attn_k", lay->wk, kv, d, 0},        {"attn_v", lay->wv, kv, d, 0},
			{"attn_output", lay->wo, d, d, 0},    {"ffn_norm", lay->rms_ffn, 1, d, 1},
			{"ffn_gate", lay->w1, hd, d, 0},      {"ffn_up", lay->w3, hd, d, 0},
			{"ffn_down", lay->w2, d, hd, 0},
		};
		for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
			snprintf(name, sizeof name, "blk.%d.%s.weight", l, t[i].suffix);
			const uint64_t off = t[i].base + (uint64_t)l * t[i].rows * t[i].cols * 4;
			if (put_tensor(im, name, off, t[i].rows, t[i].cols, t[i].norm))
				return -1;
		}
	}
	if (put_tensor(im, "output_norm.weight", lay->rms_final, 1, d, 1))
		return -1;
	if (!lay->shared_classifier && put_tensor(im, "output.weight", lay->wcls, V, d, 0))
		return -1;
	return 0;
}

int model_import_llama2c(const char *path, fp_writer *w, const char *quant,
                         char *err, size_t errlen)
{
	const int type = quant ? fk_type_parse(quant) : FK_F32;
	if (type < 0)
		return fail(err, errlen, "%s: unknown quantization '%s' (f32, q8_0 or q4_0)", path, quant);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return fail(err, errlen, "%s: cannot open: %s", path, strerror(errno));
	struct llama2c_layout lay;
	if (llama2c_read_layout(fd, path, &lay, err, errlen)) {
		close(fd);
		return -1;
	}
	const struct frt_config *c = &lay.cfg;
	if (type != FK_F32 && (c->dim % FK_QK || c->hidden_dim % FK_QK)) {
		close(fd);
		return fail(err, errlen,
		            "%s: cannot quantize to %s: %s rows are %d values, not a multiple of %d",
		            path, quant, c->dim % FK_QK ? "token_embd.weight" : "blk.0.ffn_down.weight",
		            c->dim % FK_QK ? c->dim : c->hidden_dim, FK_QK);
	}
	char meta[512];
	model_format_meta(c, lay.shared_classifier, type, meta, sizeof meta);
	if (fp_writer_set_meta(w, meta)) {
		close(fd);
		return fail(err, errlen, "%s: writing meta: %s", path, fp_last_error());
	}

	/* batches of about 1M values: big reads, small memory */
	struct importer im = {fd, path, w, type, NULL, NULL, 1u << 20, err, errlen};
	const size_t longest = (size_t)(c->hidden_dim > c->dim ? c->hidden_dim : c->dim);
	if (im.batch_values < longest)
		im.batch_values = longest;
	im.rows = malloc(im.batch_values * sizeof(float));
	im.out = malloc(im.batch_values * sizeof(float));
	int rc = -1;
	if (!im.rows || !im.out)
		fail(err, errlen, "%s: out of memory", path);
	else
		rc = import_tensors(&im, &lay);
	free(im.rows);
	free(im.out);
	close(fd);
	return rc;
}
