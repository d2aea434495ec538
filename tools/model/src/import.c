/* Import of a llama2.c checkpoint into an image or a GGUF.
 *
 * A checkpoint stacks each tensor over the layers, while a decode reads
 * layer by layer.  The import writes the tensors in decode order under
 * GGUF's names, one batch of rows at a time read with pread() and
 * quantized as it goes (GGML's reference quantizers: the blocks are
 * GGML's), so no more than a few MiB of the model are ever in memory. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <flexkern/kernels.h>

#include "internal.h"

struct importer {
	int fd;
	const char *path;
	struct model_sink *sink;
	int type;
	float *rows;                 /* a batch of rows as read */
	void *out;                   /* the same rows converted */
	size_t batch_values;
};

static int writer_error(const char *path, const char *what)
{
	const int e = model_pager_errno();
	return model_fail(e, "%s: writing %s: %s", path, what, fp_last_error());
}

/* One tensor; matrices take the import type, norms stay f32. */
static int put_tensor(struct importer *im, const struct llama_tensor *t, uint64_t off)
{
	const int type = llama_is_norm(t->role) ? FK_F32 : im->type;
	const uint64_t rows = t->rows, cols = t->cols;
	int rc = model_sink_begin(im->sink, t, type);
	const size_t row_bytes = fk_row_bytes(type, (size_t)cols);
	size_t per = im->batch_values / cols;
	if (per < 1)
		per = 1;
	for (uint64_t r = 0; !rc && r < rows; r += per) {
		const size_t n = (size_t)(rows - r < per ? rows - r : per);
		rc = model_read_all(im->fd, im->rows, n * cols * sizeof(float),
		                    off + r * cols * sizeof(float), im->path);
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
		if (!rc)
			rc = model_sink_write(im->sink, t, src, n * row_bytes);
	}
	return rc ? rc : model_sink_end(im->sink, t);
}

static int import(const char *path, struct model_sink *sink, const char *quant,
                  const char *tokenizer)
{
	const int type = quant ? fk_type_parse(quant) : FK_F32;
	if (type != FK_F32 && type != FK_Q8_0 && type != FK_Q4_0)
		return model_fail(EINVAL, "%s: unknown quantization '%s' (f32, q8_0 or q4_0)", path,
		                  quant);
	int fd = model_open_fd(path);
	if (fd < 0)
		return fd;
	struct llama2c_layout lay;
	int rc = llama2c_read_layout(fd, path, &lay);
	const struct frt_config *c = &lay.cfg;
	if (!rc && type != FK_F32 && (c->dim % FK_QK || c->hidden_dim % FK_QK))
		rc = model_fail(EINVAL,
		                "%s: cannot quantize to %s: %s rows are %d values, not a multiple of %d "
		                "(pack --compressible 0 keeps such matrices f32)",
		                path, quant, c->dim % FK_QK ? "token_embd.weight" : "blk.0.ffn_down.weight",
		                c->dim % FK_QK ? c->dim : c->hidden_dim, FK_QK);
	if (!rc)
		rc = model_sink_header(sink, c, lay.shared_classifier, type, tokenizer);

	/* batches of about 1M values: big reads, small memory */
	struct importer im = {fd, path, sink, type, NULL, NULL, 1u << 20};
	if (!rc) {
		const size_t longest = (size_t)(c->hidden_dim > c->dim ? c->hidden_dim : c->dim);
		if (im.batch_values < longest)
			im.batch_values = longest;
		im.rows = malloc(im.batch_values * sizeof(float));
		im.out = malloc(im.batch_values * sizeof(float));
		if (!im.rows || !im.out)
			rc = model_fail(ENOMEM, "%s: out of memory", path);
	}
	struct llama_tensor t;
	for (int i = 0; !rc && llama_tensor_at(c, lay.shared_classifier, i, &t); i++)
		rc = put_tensor(&im, &t, llama2c_offset(&lay, &t));
	free(im.rows);
	free(im.out);
	close(fd);
	return rc;
}

int model_import_llama2c(const char *path, fp_writer *w, const char *quant)
{
	struct model_sink s = {w, NULL, path};
	return import(path, &s, quant, NULL);
}

int model_import_llama2c_gguf(const char *path, fp_gguf_writer *w, const char *quant,
                              const char *tokenizer)
{
	struct model_sink s = {NULL, w, path};
	return import(path, &s, quant, tokenizer);
}

int model_llama2c_tensor_table(const char *path, fp_writer *w)
{
	int fd = model_open_fd(path);
	if (fd < 0)
		return fd;
	struct llama2c_layout lay;
	int rc = llama2c_read_layout(fd, path, &lay);
	close(fd);
	struct llama_tensor t;
	for (int i = 0; !rc && llama_tensor_at(&lay.cfg, lay.shared_classifier, i, &t); i++) {
		const uint64_t shape[2] = {t.cols, t.rows};
		errno = 0;
		if (fp_writer_add_tensor_at(w, t.name, FP_TYPE_F32, llama_is_norm(t.role) ? 1 : 2, shape,
		                            llama2c_offset(&lay, &t)))
			rc = writer_error(path, t.name);
	}
	char meta[512];
	if (!rc && model_format_meta(&lay.cfg, lay.shared_classifier, FK_F32, meta, sizeof meta - 32))
		rc = model_fail(EINVAL, "%s: the meta text does not fit in %zu bytes", path, sizeof meta);
	if (!rc) {
		strcat(meta, "format=llama2c\n");
		errno = 0;
		if (fp_writer_set_meta(w, meta))
			rc = writer_error(path, "meta");
	}
	return rc;
}
