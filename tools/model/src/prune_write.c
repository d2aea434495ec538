/* A pruned model as a file: the source's tensors without the removed
 * layers, the kept ones renumbered 0.. in order, and metadata that says
 * what was removed from what (GGUF keys flexpage.prune.*, image meta keys
 * prune.*; docs/prune.md).  A GGUF source keeps every key of its own but
 * llama.block_count; another source gets llama.cpp's keys. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <flexkern/kernels.h>
#include <flexmodel/prune.h>

#include "internal.h"

/* The source's tensor behind tensor t of the pruned model (whose layer j
 * is the source's layer keep[j]): its data, type and bytes. */
struct src_tensor {
	const void *data;
	int type;
	uint64_t bytes;
};

static struct src_tensor source_of(const struct model *m, const int *keep,
                                   const struct llama_tensor *t)
{
	struct src_tensor s = {NULL, FK_F32, t->cols * sizeof(float)};
	const struct frt_layer *L = t->layer >= 0 ? &m->layers[keep[t->layer]] : NULL;
	if (t->role == ROLE_ATTN_NORM)
		s.data = L->attn_norm;
	else if (t->role == ROLE_FFN_NORM)
		s.data = L->ffn_norm;
	else if (t->role == ROLE_OUTPUT_NORM)
		s.data = m->weights.output_norm;
	else {
		/* llama_get reads layer t->layer of the table it is given */
		struct llama_tensor at = *t;
		at.layer = t->layer >= 0 ? 0 : -1;
		const struct frt_tensor *ft = llama_get(&m->weights, L ? L : m->layers, &at);
		s.data = ft->data;
		s.type = ft->type;
		s.bytes = fk_row_bytes(ft->type, (size_t)t->cols) * t->rows;
	}
	return s;
}

/* The one type of every matrix, or -1 when they mix. */
static int matrix_type(const struct model *m, const struct frt_config *c, const int *keep)
{
	int type = -1;
	struct llama_tensor t;
	for (int i = 0; llama_tensor_at(c, m->shared_classifier, i, &t); i++) {
		if (llama_is_norm(t.role))
			continue;
		const int tt = source_of(m, keep, &t).type;
		if (type >= 0 && tt != type)
			return -1;
		type = tt;
	}
	return type;
}

static void safe_text(char *dst, size_t n, const char *s)
{
	snprintf(dst, n, "%s", s ? s : "");
	for (char *p = dst; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = '?';
}

static int write_image(const struct model *m, const struct frt_config *c, const int *keep,
                       const char *removed, const char *out, const struct prune_provenance *p)
{
	const int type = matrix_type(m, c, keep);
	if (type != FK_F32 && type != FK_Q8_0 && type != FK_Q4_0)
		return model_fail(EINVAL, "%s: an image holds matrices of one type (f32, q8_0 or q4_0); "
		                  "this model's are %s: write a GGUF (OUT ending in .gguf)", out,
		                  type < 0 ? "of several types" : fk_type_name(type));
	char meta[8192], src[4096];
	if (model_format_meta(c, m->shared_classifier, type, meta, sizeof meta))
		return model_fail(EINVAL, "%s: the meta text does not fit", out);
	safe_text(src, sizeof src, p->source);
	const size_t used = strlen(meta);
	const int n = snprintf(meta + used, sizeof meta - used,
	                       "prune.source=%s\nprune.source_layers=%d\nprune.removed=%s\n"
	                       "prune.method=%s\nprune.fitness=%s\nprune.score=%.9g\n"
	                       "prune.full_score=%.9g\nprune.seed=%llu\n",
	                       src, m->cfg.n_layers, removed, p->method, p->fitness, p->score,
	                       p->full_score, (unsigned long long)p->seed);
	if (n < 0 || (size_t)n >= sizeof meta - used)
		return model_fail(EINVAL, "%s: the meta text does not fit in %zu bytes", out, sizeof meta);
	errno = 0;
	fp_writer *w = fp_writer_create(out, NULL);
	if (!w)
		return model_fail(model_pager_errno(), "%s: %s", out, fp_last_error());
	int rc = fp_writer_set_meta(w, meta);
	struct llama_tensor t;
	for (int i = 0; !rc && llama_tensor_at(c, m->shared_classifier, i, &t); i++) {
		const struct src_tensor s = source_of(m, keep, &t);
		const uint64_t shape[2] = {t.cols, t.rows};
		errno = 0;
		if ((rc = fp_writer_begin_tensor(w, t.name, (uint32_t)s.type,
		                                 llama_is_norm(t.role) ? 1 : 2, shape)) ||
		    (rc = fp_writer_write(w, s.data, (size_t)s.bytes)) || (rc = fp_writer_end_tensor(w)))
			rc = model_fail(model_pager_errno(), "%s: writing %s: %s", out, t.name,
			                fp_last_error());
	}
	if (rc) {
		fp_writer_abort(w);
		return rc;
	}
	errno = 0;
	if (fp_writer_finish(w))
		return model_fail(model_pager_errno(), "%s: %s", out, fp_last_error());
	return 0;
}

/* Bytes of a GGUF string array's elements as the file holds them. */
static size_t str_array_bytes(const void *data, uint64_t n)
{
	const unsigned char *p = data;
	size_t len = 0;
	for (uint64_t i = 0; i < n; i++) {
		uint64_t l;
		memcpy(&l, p + len, 8);
		len += 8 + l;
	}
	return len;
}

/* Key i of g into w; llama.block_count gets the pruned count.  0 or the
 * pager's negative errno (fp_last_error says why). */
static int copy_value(fp_gguf_writer *w, const fp_gguf *g, const char *key, int vt, int n_layers)
{
	uint64_t u = 0;
	int64_t s = 0;
	double f = 0;
	int b = 0, rc;
	if (!strcmp(key, "llama.block_count"))
		return fp_gguf_set_u32(w, key, (uint32_t)n_layers);
	switch (vt) {
	case FP_GGUF_UINT8: case FP_GGUF_UINT16: case FP_GGUF_UINT32: case FP_GGUF_UINT64:
		if ((rc = fp_gguf_get_u64(g, key, &u)))
			return rc;
		return vt == FP_GGUF_UINT8 ? fp_gguf_set_u8(w, key, (uint8_t)u)
		       : vt == FP_GGUF_UINT16 ? fp_gguf_set_u16(w, key, (uint16_t)u)
		       : vt == FP_GGUF_UINT32 ? fp_gguf_set_u32(w, key, (uint32_t)u)
		                              : fp_gguf_set_u64(w, key, u);
	case FP_GGUF_INT8: case FP_GGUF_INT16: case FP_GGUF_INT32: case FP_GGUF_INT64:
		if ((rc = fp_gguf_get_i64(g, key, &s)))
			return rc;
		return vt == FP_GGUF_INT8 ? fp_gguf_set_i8(w, key, (int8_t)s)
		       : vt == FP_GGUF_INT16 ? fp_gguf_set_i16(w, key, (int16_t)s)
		       : vt == FP_GGUF_INT32 ? fp_gguf_set_i32(w, key, (int32_t)s)
		                             : fp_gguf_set_i64(w, key, s);
	case FP_GGUF_FLOAT32: case FP_GGUF_FLOAT64:
		if ((rc = fp_gguf_get_f64(g, key, &f)))
			return rc;
		return vt == FP_GGUF_FLOAT32 ? fp_gguf_set_f32(w, key, (float)f)
		                             : fp_gguf_set_f64(w, key, f);
	case FP_GGUF_BOOL:
		return (rc = fp_gguf_get_bool(g, key, &b)) ? rc : fp_gguf_set_bool(w, key, b);
	case FP_GGUF_STRING: {
		const char *str;
		uint64_t len;
		return (rc = fp_gguf_get_str(g, key, &str, &len)) ? rc : fp_gguf_set_str(w, key, str);
	}
	default: { /* an array */
		int et;
		uint64_t n;
		const void *data;
		if ((rc = fp_gguf_get_arr(g, key, &et, &n, &data)))
			return rc;
		if (et == FP_GGUF_STRING)
			return fp_gguf_set_arr_raw(w, key, et, n, data, str_array_bytes(data, n));
		/* a numeric array; an array of arrays the writer checks as raw */
		return fp_gguf_set_arr(w, key, et, data, n);
	}
	}
}

static int write_gguf(const struct model *m, const struct frt_config *c, const int *keep,
                      const int *removed, int n_removed, const char *out, const char *tokenizer,
                      const struct prune_provenance *p)
{
	fp_image *img = NULL;
	const fp_gguf *g = NULL;
	if (m->format != MODEL_FORMAT_LLAMA2C) {
		errno = 0;
		img = fp_image_open(m->path);
		if (!img)
			return model_fail(model_pager_errno(), "%s", fp_last_error());
		g = fp_image_gguf(img);
	}
	errno = 0;
	fp_gguf_writer *w = fp_gguf_writer_create(out);
	if (!w) {
		fp_image_close(img);
		return model_fail(errno ? errno : EIO, "%s: cannot create: %s", out, fp_last_error());
	}
	int rc = 0;
	if (g) {
		if (fp_gguf_find(g, "general.alignment") >= 0)
			rc = fp_gguf_writer_set_alignment(w, (uint32_t)fp_gguf_alignment(g));
		for (uint64_t i = 0; !rc && i < fp_gguf_n_kv(g); i++) {
			const char *key = fp_gguf_key(g, i);
			/* a pruned model pruned again says only what its own step did */
			if (!strcmp(key, "general.alignment") || !strncmp(key, "flexpage.prune.", 15))
				continue;
			if ((rc = copy_value(w, g, key, fp_gguf_type(g, i), c->n_layers)))
				rc = model_fail(-rc, "%s: copying GGUF key %s: %s", out, key, fp_last_error());
		}
	} else {
		const char *base = strrchr(m->path, '/');
		const int type = matrix_type(m, c, keep);
		if ((rc = model_gguf_keys(w, c, type < 0 ? FK_F32 : type, base ? base + 1 : m->path)))
			rc = model_fail(-rc, "%s: writing the GGUF keys: %s", out, fp_last_error());
		if (!rc)
			rc = model_gguf_vocab(w, tokenizer, c->vocab_size);
	}
	if (!rc && ((rc = fp_gguf_set_str(w, "flexpage.prune.source", p->source)) ||
	       (rc = fp_gguf_set_u32(w, "flexpage.prune.source_layers", (uint32_t)m->cfg.n_layers)) ||
	       (rc = fp_gguf_set_arr(w, "flexpage.prune.removed", FP_GGUF_INT32, removed,
	                             (uint64_t)n_removed)) ||
	       (rc = fp_gguf_set_str(w, "flexpage.prune.method", p->method)) ||
	       (rc = fp_gguf_set_str(w, "flexpage.prune.fitness", p->fitness)) ||
	       (rc = fp_gguf_set_f64(w, "flexpage.prune.score", p->score)) ||
	       (rc = fp_gguf_set_f64(w, "flexpage.prune.full_score", p->full_score)) ||
	            (rc = fp_gguf_set_u64(w, "flexpage.prune.seed", p->seed))))
		rc = model_fail(-rc, "%s: writing flexpage.prune.*: %s", out, fp_last_error());
	struct llama_tensor t;
	for (int i = 0; !rc && llama_tensor_at(c, m->shared_classifier, i, &t); i++) {
		const struct src_tensor s = source_of(m, keep, &t);
		const uint64_t ne[2] = {t.cols, t.rows};
		if ((rc = fp_gguf_writer_add_tensor(w, t.name, (uint32_t)s.type,
		                                    llama_is_norm(t.role) ? 1 : 2, ne, s.data)))
			rc = model_fail(-rc, "%s: writing %s: %s", out, t.name, fp_last_error());
	}
	if (rc) {
		fp_gguf_writer_abort(w);
		fp_image_close(img);
		return rc;
	}
	errno = 0;
	rc = fp_gguf_writer_finish(w);
	fp_image_close(img);
	return rc ? model_fail(-rc, "%s: %s", out, fp_last_error()) : 0;
}

int prune_write(const struct model *m, const unsigned char *drop, const char *out, int gguf,
                const char *tokenizer, const struct prune_provenance *p)
{
	const int n = m->cfg.n_layers;
	int *keep = malloc((size_t)n * sizeof *keep), *removed = malloc((size_t)n * sizeof *removed);
	char *list = malloc((size_t)n * 12 + 1);
	if (!keep || !removed || !list) {
		free(keep);
		free(removed);
		free(list);
		return model_fail(ENOMEM, "out of memory");
	}
	int nk = 0, nr = 0;
	size_t at = 0;
	list[0] = 0;
	for (int l = 0; l < n; l++) {
		if (drop[l]) {
			removed[nr++] = l;
			at += (size_t)sprintf(list + at, "%s%d", at ? "," : "", l);
		} else {
			keep[nk++] = l;
		}
	}
	int rc;
	if (!nr || !nk) {
		rc = model_fail(EINVAL, "%s: %s of the %d layers removed", out, nr ? "all" : "none", n);
	} else {
		struct frt_config c = m->cfg;
		c.n_layers = nk;
		rc = gguf ? write_gguf(m, &c, keep, removed, nr, out, tokenizer, p)
		          : write_image(m, &c, keep, list, out, p);
	}
	free(keep);
	free(removed);
	free(list);
	return rc;
}
