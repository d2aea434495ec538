/* Where the import and the generator write a model, tensor after tensor in
 * decode order: an image writer, or a GGUF writer.
 *
 * A GGUF's header comes first and holds every tensor's info, so the GGUF
 * sink declares the whole model up front: llama.cpp's llama.* keys, the
 * vocabulary as tokenizer.ggml.*, and each tensor (ne[0] = in, as ggml
 * lists shapes); the data then streams in the same order. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <flexkern/kernels.h>

#include "internal.h"

static int sink_error(const struct model_sink *s, const char *what)
{
	const int e = model_pager_errno();
	return model_fail(e, "%s: writing %s: %s", s->name, what, fp_last_error());
}

/* llama.cpp's llama_ftype of a model whose matrices are of type. */
static uint32_t file_type(int type)
{
	switch (type) {
	case FK_F16: return 1;
	case FK_Q4_0: return 2;
	case FK_Q8_0: return 7;
	default: return 0;
	}
}

int model_gguf_keys(fp_gguf_writer *w, const struct frt_config *c, int type, const char *name)
{
	int rc;
	(void)((rc = fp_gguf_set_str(w, "general.architecture", "llama")) ||
	       (rc = fp_gguf_set_str(w, "general.name", name)) ||
	       (rc = fp_gguf_set_u32(w, "general.file_type", file_type(type))) ||
	       (rc = fp_gguf_set_u32(w, "llama.context_length", (uint32_t)c->seq_len)) ||
	       (rc = fp_gguf_set_u32(w, "llama.embedding_length", (uint32_t)c->dim)) ||
	       (rc = fp_gguf_set_u32(w, "llama.block_count", (uint32_t)c->n_layers)) ||
	       (rc = fp_gguf_set_u32(w, "llama.feed_forward_length", (uint32_t)c->hidden_dim)) ||
	       (rc = fp_gguf_set_u32(w, "llama.rope.dimension_count",
	                             (uint32_t)(c->dim / c->n_heads))) ||
	       (rc = fp_gguf_set_u32(w, "llama.attention.head_count", (uint32_t)c->n_heads)) ||
	       (rc = fp_gguf_set_u32(w, "llama.attention.head_count_kv", (uint32_t)c->n_kv_heads)) ||
	       (rc = fp_gguf_set_f32(w, "llama.attention.layer_norm_rms_epsilon",
	                             c->norm_eps ? c->norm_eps : 1e-5f)) ||
	       (rc = fp_gguf_set_f32(w, "llama.rope.freq_base",
	                             c->rope_theta ? c->rope_theta : 10000.0f)) ||
	       (rc = fp_gguf_set_u32(w, "llama.vocab_size", (uint32_t)c->vocab_size)));
	return rc;
}

static int gguf_tokenizer(fp_gguf_writer *w, const struct model_vocab *v)
{
	int rc;
	(void)((rc = fp_gguf_set_str(w, "tokenizer.ggml.model", "llama")) ||
	       (rc = fp_gguf_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)v->pieces,
	                                 (uint64_t)v->n)) ||
	       (rc = fp_gguf_set_arr(w, "tokenizer.ggml.scores", FP_GGUF_FLOAT32, v->scores,
	                             (uint64_t)v->n)) ||
	       (rc = fp_gguf_set_arr(w, "tokenizer.ggml.token_type", FP_GGUF_INT32, v->types,
	                             (uint64_t)v->n)) ||
	       (rc = fp_gguf_set_u32(w, "tokenizer.ggml.bos_token_id", FRT_BOS)) ||
	       (rc = fp_gguf_set_u32(w, "tokenizer.ggml.eos_token_id", 2)) ||
	       (rc = fp_gguf_set_u32(w, "tokenizer.ggml.unknown_token_id", 0)) ||
	       (rc = fp_gguf_set_bool(w, "tokenizer.ggml.add_bos_token", 1)) ||
	       (rc = fp_gguf_set_bool(w, "tokenizer.ggml.add_eos_token", 0)));
	return rc;
}

int model_gguf_vocab(fp_gguf_writer *w, const char *tokenizer, int n_vocab)
{
	struct model_vocab v;
	int rc = tokenizer ? model_vocab_load(&v, tokenizer, n_vocab)
	                   : model_vocab_generate(&v, n_vocab);
	if (rc)
		return rc;
	errno = 0;
	rc = gguf_tokenizer(w, &v);
	model_vocab_free(&v);
	return rc ? model_fail(model_pager_errno(), "writing the vocabulary: %s", fp_last_error()) : 0;
}

int model_sink_header(struct model_sink *s, const struct frt_config *c, int shared, int type,
                      const char *tokenizer)
{
	if (s->image) {
		char meta[512];
		if (model_format_meta(c, shared, type, meta, sizeof meta))
			return model_fail(EINVAL, "%s: the meta text does not fit in %zu bytes", s->name,
			                  sizeof meta);
		errno = 0;
		return fp_writer_set_meta(s->image, meta) ? sink_error(s, "meta") : 0;
	}
	const char *base = strrchr(s->name, '/');
	errno = 0;
	int rc = 0;
	if (model_gguf_keys(s->gguf, c, type, base ? base + 1 : s->name))
		rc = sink_error(s, "the GGUF metadata");
	if (!rc)
		rc = model_gguf_vocab(s->gguf, tokenizer, c->vocab_size);
	struct llama_tensor t;
	for (int i = 0; !rc && llama_tensor_at(c, shared, i, &t); i++) {
		const uint64_t ne[2] = {t.cols, t.rows};
		const int norm = llama_is_norm(t.role);
		errno = 0;
		if (fp_gguf_writer_add_tensor(s->gguf, t.name, (uint32_t)(norm ? FK_F32 : type),
		                              norm ? 1 : 2, ne, NULL))
			rc = sink_error(s, t.name);
	}
	return rc;
}

int model_sink_begin(struct model_sink *s, const struct llama_tensor *t, int type)
{
	if (!s->image)
		return 0; /* declared by the header */
	const uint64_t shape[2] = {t->cols, t->rows};
	errno = 0;
	if (fp_writer_begin_tensor(s->image, t->name, (uint32_t)type, llama_is_norm(t->role) ? 1 : 2,
	                           shape))
		return sink_error(s, t->name);
	return 0;
}

int model_sink_write(struct model_sink *s, const struct llama_tensor *t, const void *data,
                     size_t n)
{
	errno = 0;
	if (s->image ? fp_writer_write(s->image, data, n) : fp_gguf_writer_write(s->gguf, data, n))
		return sink_error(s, t->name);
	return 0;
}

int model_sink_end(struct model_sink *s, const struct llama_tensor *t)
{
	errno = 0;
	if (s->image && fp_writer_end_tensor(s->image))
		return sink_error(s, t->name);
	return 0;
}
