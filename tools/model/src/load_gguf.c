/* Llama-architecture GGUF files: the configuration from the llama.* keys
 * and every tensor, by llama.cpp's name, checked against it.  The bytes are
 * read as stored: ggml's shapes list the row length first (ne[0] = in), the
 * same [out][in] rows the runtime multiplies, and q and k are used as the
 * file has them (llama.cpp's "normal" RoPE for arch llama rotates adjacent
 * pairs, as llama2.c and the runtime do). */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <flexkern/kernels.h>

#include "internal.h"

/* An integer key: required, or dflt when absent.  Too large for an int is
 * refused here, so that the configuration check sees the real value. */
static int key_int(const fp_gguf *g, const char *path, const char *key, int required, int dflt,
                   int *out)
{
	uint64_t v;
	errno = 0;
	const int rc = fp_gguf_get_u64(g, key, &v);
	if (rc == -ENOENT && !required) {
		*out = dflt;
		return 0;
	}
	if (rc == -ENOENT)
		return model_fail(EINVAL, "%s: GGUF key %s is missing (a llama model needs it)", path, key);
	if (rc)
		return model_fail(EINVAL, "%s: GGUF key %s: %s", path, key, fp_last_error());
	if (v > INT_MAX)
		return model_fail(EINVAL, "%s: GGUF key %s = %llu is implausibly large", path, key,
		                  (unsigned long long)v);
	*out = (int)v;
	return 0;
}

static int key_float(const fp_gguf *g, const char *path, const char *key, int required,
                     double dflt, double *out)
{
	const int rc = fp_gguf_get_f64(g, key, out);
	if (rc == -ENOENT && !required) {
		*out = dflt;
		return 0;
	}
	if (rc == -ENOENT)
		return model_fail(EINVAL, "%s: GGUF key %s is missing (a llama model needs it)", path, key);
	if (rc)
		return model_fail(EINVAL, "%s: GGUF key %s: %s", path, key, fp_last_error());
	return 0;
}

static const char *const key_names[7] = {
	"llama.embedding_length", "llama.feed_forward_length", "llama.block_count",
	"llama.attention.head_count", "llama.attention.head_count_kv",
	"vocab size (rows of token_embd.weight)", "llama.context_length",
};

int model_gguf_config(struct model *m, const fp_gguf *g)
{
	const char *p = m->path, *arch;
	uint64_t len;
	if (fp_gguf_get_str(g, "general.architecture", &arch, &len))
		return model_fail(EINVAL, "%s: GGUF key general.architecture is missing or not a "
		                  "string: not a model GGUF?", p);
	if (strcmp(arch, "llama"))
		return model_fail(EINVAL, "%s: general.architecture = %s: not a llama model (the runtime "
		                  "runs the llama architecture)", p, arch);
	struct frt_config *c = &m->cfg;
	int rc, rope_dims;
	if ((rc = key_int(g, p, "llama.embedding_length", 1, 0, &c->dim)) ||
	    (rc = key_int(g, p, "llama.feed_forward_length", 1, 0, &c->hidden_dim)) ||
	    (rc = key_int(g, p, "llama.block_count", 1, 0, &c->n_layers)) ||
	    (rc = key_int(g, p, "llama.attention.head_count", 1, 0, &c->n_heads)) ||
	    (rc = key_int(g, p, "llama.attention.head_count_kv", 0, c->n_heads, &c->n_kv_heads)) ||
	    (rc = key_int(g, p, "llama.context_length", 1, 0, &c->seq_len)) ||
	    (rc = key_int(g, p, "llama.rope.dimension_count", 0, -1, &rope_dims)))
		return rc;

	/* the vocabulary is token_embd's rows; the other places that say it must agree */
	const struct fp_gguf_tensor *embd = fp_gguf_find_tensor(g, "token_embd.weight");
	if (!embd)
		return model_fail(EINVAL, "%s: tensor token_embd.weight is missing", p);
	const uint64_t vocab = embd->n_dims >= 2 ? embd->ne[1] : 0;
	c->vocab_size = vocab > INT_MAX ? INT_MAX : (int)vocab;
	int n_vocab;
	if ((rc = key_int(g, p, "llama.vocab_size", 0, c->vocab_size, &n_vocab)))
		return rc;
	if ((uint64_t)n_vocab != vocab)
		return model_fail(EINVAL, "%s: GGUF key llama.vocab_size = %d, but token_embd.weight has "
		                  "%llu rows", p, n_vocab, (unsigned long long)vocab);
	uint64_t n_tokens;
	if (!fp_gguf_get_arr(g, "tokenizer.ggml.tokens", NULL, &n_tokens, NULL) && n_tokens != vocab)
		return model_fail(EINVAL, "%s: tokenizer.ggml.tokens has %llu tokens, but "
		                  "token_embd.weight has %llu rows", p, (unsigned long long)n_tokens,
		                  (unsigned long long)vocab);
	if ((rc = model_check_config_named(c, p, "", key_names)))
		return rc;
	if (rope_dims >= 0 && rope_dims != c->dim / c->n_heads)
		return model_fail(EINVAL, "%s: GGUF key llama.rope.dimension_count = %d is not the head "
		                  "size %d (llama.embedding_length / llama.attention.head_count): the "
		                  "runtime rotates whole heads", p, rope_dims, c->dim / c->n_heads);

	double eps, theta;
	if ((rc = key_float(g, p, "llama.attention.layer_norm_rms_epsilon", 1, 0, &eps)) ||
	    (rc = key_float(g, p, "llama.rope.freq_base", 0, 10000.0, &theta)))
		return rc;
	if (!(eps >= 0 && eps < 1))
		return model_fail(EINVAL, "%s: GGUF key llama.attention.layer_norm_rms_epsilon = %g is "
		                  "not a small non-negative number", p, eps);
	if (!(theta > 0 && theta < 1e30))
		return model_fail(EINVAL, "%s: GGUF key llama.rope.freq_base = %g is not a positive "
		                  "number", p, theta);
	c->norm_eps = (float)eps;
	c->rope_theta = (float)theta;
	/* without output.weight, llama.cpp classifies with the embedding */
	m->shared_classifier = !fp_gguf_find_tensor(g, "output.weight");
	return 0;
}

/* A type the runtime multiplies (norms: f32 only). */
static int runs_type(uint32_t type, int is_norm)
{
	if (is_norm)
		return type == FK_F32;
	return type == FK_F32 || type == FK_F16 || type == FK_Q8_0 || type == FK_Q4_0;
}

int model_gguf_wire(struct model *m, const fp_gguf *g, const struct model_view *v)
{
	struct llama_tensor t;
	for (int i = 0; llama_tensor_at(&m->cfg, m->shared_classifier, i, &t); i++) {
		const struct fp_gguf_tensor *gt = fp_gguf_find_tensor(g, t.name);
		if (!gt)
			return model_fail(EINVAL, "%s: tensor %s is missing", m->path, t.name);
		const int norm = llama_is_norm(t.role);
		if (!runs_type(gt->type, norm)) {
			const char *tn = fp_ggml_type_name(gt->type);
			return model_fail(EINVAL, "%s: tensor %s is %s: the runtime runs %s", m->path,
			                  t.name, tn ? tn : "of an unknown type",
			                  norm ? "f32 norms" : "f32, f16, q8_0 and q4_0 matrices");
		}
		if (llama_check_shape(m->path, &t, (int)gt->type, gt->n_dims, gt->ne, gt->size))
			return -EINVAL;
		/* the kernels read floats and fp16 scales in place */
		const uint64_t align = gt->type == FK_F32 ? 4 : 2;
		if (gt->offset % align)
			return model_fail(EINVAL, "%s: tensor %s at offset %llu is not aligned to %llu bytes "
			                  "(general.alignment = %llu)", m->path, t.name,
			                  (unsigned long long)gt->offset, (unsigned long long)align,
			                  (unsigned long long)fp_gguf_alignment(g));
		llama_set(&m->weights, m->layers, &t, model_view_at(v, gt->offset), (int)gt->type);
	}
	if (m->shared_classifier)
		m->weights.output = m->weights.token_embd;
	return 0;
}
