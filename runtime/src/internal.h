/* Internal to flexrt. */
#ifndef FLEXRT_INTERNAL_H
#define FLEXRT_INTERNAL_H

#include <flexrt/runtime.h>

#include <stdlib.h>

struct frt_model {
	struct frt_config cfg;
	struct frt_weights w;
	struct frt_layer *layers;    /* own copy of the caller's table */
	void *packed;                /* frt_model_repack's copies, or NULL */
	size_t packed_size;
	int repacked;                /* frt_model_repack* has run */
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
	unsigned char *skip;         /* [n_layers]: FRT_SKIP_ATTN | FRT_SKIP_FFN bits */
	float *states;               /* NULL, or the caller's [n_layers + 1][dim] */
	/* [n_layers][max_seq][kv_dim] */
	float *key_cache, *value_cache;
};

/* A vocabulary (tokenizer.c); encode.c reads it. */
struct frt_tokenizer {
	int n;
	char *blob;                  /* every piece, one after another */
	uint32_t *off, *len;         /* token i is blob[off[i]..off[i] + len[i]) */
	float *score;
	uint8_t *silent;             /* 1: decodes to no text (BOS, EOS, control, unused) */
	int16_t *byte;               /* the byte a "<0xNN>" piece stands for, or -1 */
	int byte_id[256];            /* the token of each byte for the fallback */
	int bos, eos, unk;           /* -1: none */
	int space_id;                /* the piece " " (the dummy prefix), or -1 */
	int32_t *slots;              /* hash of the matchable pieces: token id or -1 */
	uint32_t mask;               /* slots - 1, a power of two minus one */
};

/* The matchable token whose piece is a followed by b, or -1. */
int frt_tokenizer_lookup(const frt_tokenizer *t, const char *a, size_t alen, const char *b,
                         size_t blen);

/* Set errno and the calling thread's frt_last_error(); returns -errnum,
 * for `return frt_fail(EINVAL, ...)`. */
int frt_fail(int errnum, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Unmap frt_model_repack's copies (repack.c); nothing if there are none. */
void frt_repack_free(frt_model *m);

/* Multi-head attention of layer l at pos: reads q and the cache up to pos,
 * writes xb. */
void frt_attention(frt_model *m, int l, int pos);

#endif
