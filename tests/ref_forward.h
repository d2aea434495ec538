/* An independent float64 Llama forward pass for the tests: written from
 * llama2.c's description (shared/models/README.md), sharing no code with
 * the runtime or the kernels. */
#ifndef FLEXPAGE_TEST_REF_FORWARD_H
#define FLEXPAGE_TEST_REF_FORWARD_H

#include <stddef.h>

/* llama2.c's layout: every tensor stacked over the layers. */
struct ref_model {
	int dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len;
	const float *token_embedding; /* [vocab][dim] */
	const float *rms_att;         /* [layers][dim] */
	const float *wq;              /* [layers][dim][dim] */
	const float *wk, *wv;         /* [layers][kv_dim][dim] */
	const float *wo;              /* [layers][dim][dim] */
	const float *rms_ffn;         /* [layers][dim] */
	const float *w1, *w3;         /* [layers][hidden][dim] */
	const float *w2;              /* [layers][dim][hidden] */
	const float *rms_final;       /* [dim] */
	const float *wcls;            /* [vocab][dim] */
};

struct ref_state;

/* Reads a llama2.c checkpoint into memory (*buf, to free) and points m at
 * it; -1 if the file cannot be read. */
int ref_load_llama2c(const char *path, struct ref_model *m, float **buf);

struct ref_state *ref_create(const struct ref_model *m);
void ref_destroy(struct ref_state *s);
/* Logits of token at pos (positions from 0, in order), valid until the
 * next call. */
const double *ref_forward(struct ref_state *s, int token, int pos);
/* Leave layers out of later passes: skip[l] non-zero removes layer l (its
 * input goes on to the next layer as it is), as a model without it would
 * compute; skip is copied; NULL runs every layer. */
void ref_skip_layers(struct ref_state *s, const unsigned char *skip);
/* Leave parts of layers out: parts[l] a set of REF_SKIP_ATTN (the
 * attention sub-block: its norm, q, k, v, attention and output
 * projection) and REF_SKIP_FFN (the feed-forward sub-block); a skipped
 * part adds nothing to the residual stream.  NULL runs every part. */
enum { REF_SKIP_ATTN = 1, REF_SKIP_FFN = 2 };
void ref_skip_parts(struct ref_state *s, const unsigned char *parts);
/* The last pass's residual stream after the last layer, before the final
 * norm [dim]. */
const double *ref_hidden(const struct ref_state *s);

#endif
