/* flexrt: a Llama-architecture decoder over weights it is handed.
 *
 * The runtime owns the per-sequence state (KV cache, activations), the
 * forward pass, the sampler and the generate loop.  It never writes,
 * frees or maps the weights: it reads them through const pointers, so
 * they may be a resident buffer, a file mapping or a region that a pager
 * fills on demand.  The forward pass follows llama2.c's semantics:
 * RMSNorm, RoPE on adjacent pairs, grouped-query attention, a SwiGLU
 * feed-forward network and a classifier that may share the embedding.
 *
 * Errors: functions that can fail return NULL or -1 and write a message
 * into the caller's err buffer.
 */
#ifndef FLEXRT_RUNTIME_H
#define FLEXRT_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

#include <flexkern/kernels.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The message of the calling thread's latest failure, for people: every
 * function that fails returns a negative errno (or NULL with errno set)
 * and leaves its message here.  Never NULL; valid until the thread's next
 * call into flexrt.  Any thread. */
const char *frt_last_error(void);

#define FRT_BOS 1 /* llama2.c's beginning-of-sequence token */

/* The largest configuration frt_model_create() accepts: far above any
 * real model, low enough that no size computed from it overflows.  Model
 * readers check a file's header against them before trusting it. */
#define FRT_MAX_DIM (1 << 16)
#define FRT_MAX_HIDDEN (1 << 20)
#define FRT_MAX_LAYERS 4096
#define FRT_MAX_VOCAB (1 << 24)
#define FRT_MAX_SEQ (1 << 20)

struct frt_config {
	int dim;                 /* model width */
	int hidden_dim;          /* feed-forward width */
	int n_layers;
	int n_heads;             /* query heads */
	int n_kv_heads;          /* key/value heads; divides n_heads */
	int vocab_size;
	int seq_len;             /* longest sequence */
	float rope_theta;        /* 0: 10000 */
	float norm_eps;          /* 0: 1e-5 */
};

/* A weight matrix, row-major [out][in], of its own type: a model may mix
 * them (a GGUF often has q8_0 matrices and an f16 classifier).  Quantized
 * types need rows of whole blocks (in a multiple of FK_QK). */
struct frt_tensor {
	const void *data;
	int type;                /* enum fk_type: FK_F32, FK_F16, FK_Q8_0 or FK_Q4_0 */
};

/* One layer's weights; norms are float. */
struct frt_layer {
	const float *attn_norm;  /* [dim] */
	struct frt_tensor wq;    /* [dim][dim] */
	struct frt_tensor wk;    /* [kv_dim][dim], kv_dim = dim * n_kv_heads / n_heads */
	struct frt_tensor wv;    /* [kv_dim][dim] */
	struct frt_tensor wo;    /* [dim][dim] */
	const float *ffn_norm;   /* [dim] */
	struct frt_tensor w1;    /* gate [hidden][dim] */
	struct frt_tensor w2;    /* down [dim][hidden] */
	struct frt_tensor w3;    /* up [hidden][dim] */
};

struct frt_weights {
	struct frt_tensor token_embd;   /* [vocab][dim]; a row is dequantized per token */
	const struct frt_layer *layers; /* n_layers; copied by frt_model_create */
	const float *output_norm;       /* [dim] */
	struct frt_tensor output;       /* [vocab][dim]; may be token_embd (shared) */
};

struct frt_options {
	int n_threads;           /* compute threads, caller included; 0: 1 */
	int max_seq;             /* KV cache positions; 0 or > seq_len: seq_len */
};

typedef struct frt_model frt_model;

/* Check the configuration and the weights' presence and make the state.
 * NULL with a message naming the field on failure. */
frt_model *frt_model_create(const struct frt_config *cfg, const struct frt_weights *w,
                            const struct frt_options *opt, char *err, size_t errlen);
void frt_model_destroy(frt_model *m);
const struct frt_config *frt_model_config(const frt_model *m);
/* Positions the KV cache holds. */
int frt_model_max_seq(const frt_model *m);
/* Bytes of weights one forward pass reads (every matrix, one embedding
 * row, the norms). */
uint64_t frt_model_bytes_per_token(const frt_model *m);

/* Run token at position pos (0 <= pos < max_seq, positions in order from
 * 0) and return the logits [vocab], valid until the next call.  NULL if
 * token or pos is out of range. */
float *frt_forward(frt_model *m, int token, int pos);

/* ------------------------------------------------------------------ */
/* Sampling                                                             */

typedef struct frt_sampler frt_sampler;

/* temperature 0: greedy (argmax, the lowest id on ties).  Otherwise
 * softmax(logits / temperature), then top-p (nucleus) when 0 < topp < 1.
 * The random stream is xorshift64* from seed: the same seed gives the same
 * tokens. */
frt_sampler *frt_sampler_create(int vocab_size, float temperature, float topp, uint64_t seed);
void frt_sampler_destroy(frt_sampler *s);
/* Uses logits as scratch. */
int frt_sample(frt_sampler *s, float *logits);
int frt_argmax(const float *v, int n);

/* ------------------------------------------------------------------ */
/* Generation                                                           */

/* Called after each generated token; non-zero stops the loop. */
typedef int (*frt_token_fn)(void *ctx, int pos, int token);

struct frt_gen_stats {
	int tokens;              /* forward passes run */
	uint64_t first_ns;       /* time of the first forward pass */
	uint64_t rest_ns;        /* time of all the others */
};

/* llama2.c's loop: feed prompt (BOS if n_prompt is 0), then sample up to
 * steps positions in all; stop early when stop_token (e.g. FRT_BOS; -1 for
 * none) is sampled or the callback says so.  -1 with a message on failure. */
int frt_generate(frt_model *m, frt_sampler *s, const int *prompt, int n_prompt,
                 int steps, int stop_token, frt_token_fn fn, void *ctx,
                 struct frt_gen_stats *stats, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
