/* Internal to flexrt. */
#ifndef FLEXRT_INTERNAL_H
#define FLEXRT_INTERNAL_H

#include <flexrt/runtime.h>

struct frt_model {
	struct frt_config cfg;
	struct frt_weights w;
	struct frt_layer *layers;    /* own copy of the caller's table */
	fk_pool *pool;
	int max_seq;
	int kv_dim, head_size;
	size_t embd_row_bytes;       /* one row of token_embd / output */

	/* activations */
	float *x;                    /* residual stream [dim] */
	float *xb, *xb2;             /* [dim] */
	float *hb, *hb2;             /* [hidden] */
	float *q;                    /* [dim] */
	float *att;                  /* [n_heads][max_seq] */
	float *logits;               /* [vocab] */
	/* [n_layers][max_seq][kv_dim] */
	float *key_cache, *value_cache;
};

/* Set errno and the calling thread's frt_last_error(); returns -errnum,
 * for `return frt_fail(EINVAL, ...)`. */
int frt_fail(int errnum, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Multi-head attention of layer l at pos: reads q and the cache up to pos,
 * writes xb. */
void frt_attention(frt_model *m, int l, int pos);

#endif
