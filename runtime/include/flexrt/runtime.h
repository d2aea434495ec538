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
 * Errors: a function that fails returns a negative errno (or NULL with
 * errno set) and leaves a message for people, naming the field, in
 * frt_last_error().  Callers act on the code; the text may change.
 *
 * Threads: a model and a sampler belong to one thread at a time (the
 * caller serialises its calls on them); different models and samplers may
 * be used from different threads at once.  A model's forward pass runs on
 * the calling thread and the model's own compute threads, and blocks in
 * every page fault the weights take.
 */
#ifndef FLEXRT_RUNTIME_H
#define FLEXRT_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

#include <flexkern/kernels.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The message of the calling thread's latest flexrt failure, for people.
 * @return never NULL ("no error" before any failure); valid until the
 *         thread's next failing call into flexrt.  Any thread. */
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

/* Check a configuration as frt_model_create does: every size positive and
 * within the limits above, dim a multiple of n_heads, n_heads a multiple
 * of n_kv_heads, an even head size, rope_theta and norm_eps neither
 * negative nor NaN.  For readers of model files, before they size
 * anything from a header.
 * @return 0; -EINVAL with a message naming the field and its value
 *         ("n_layers = 0 must be positive").
 * Any thread; cfg is only read. */
int frt_config_check(const struct frt_config *cfg);

typedef struct frt_model frt_model;

/* Check the configuration (frt_config_check) and the weights (a known
 * type, dim and hidden_dim multiples of FK_QK for a quantized one, every
 * pointer present), then allocate the state (the KV cache for max_seq
 * positions, the activations) and start the compute threads.  The weights
 * are not read here; the model keeps the pointers of w and its own copy
 * of the layer table.  opt may be NULL (one thread, seq_len positions).
 * @return the model; NULL with errno set on failure:
 *         EINVAL  a bad configuration field or a missing or ill-typed
 *                 weight, named in frt_last_error();
 *         ENOMEM  the state does not fit (the message gives the KV cache
 *                 size);
 *         EAGAIN (or another pthread_create error)  a compute thread
 *                 cannot start.
 * Preconditions: cfg and w are non-NULL; the weights stay readable, at
 * the type's layout, until frt_model_destroy.  Any thread. */
frt_model *frt_model_create(const struct frt_config *cfg, const struct frt_weights *w,
                            const struct frt_options *opt);
/* Join the compute threads and free the state (never the weights); NULL
 * does nothing.  Precondition: no call on m is in progress. */
void frt_model_destroy(frt_model *m);
/* Copy m's q4_0 matrices (every layer's and the classifier; not the
 * embedding, read a row at a time) into flexkern's 8-row interleaved
 * layout (fk_repack) in memory m owns, and compute with those copies from
 * now on: the logits are bit for bit the same.  (q8_0 stays as it is: its
 * repacked layout measured no faster in a decode.)  For weights that are resident anyway (read into memory, or a
 * file mapping that stays in the page cache): the copies take as much
 * memory again as those matrices, and making them reads every weight
 * once.  Paged weights (a flexpage region) are best left as they are.
 * Calling it again does nothing.
 * @return 0 (also when no matrix is q4_0); -ENOMEM with the size
 *         in frt_last_error() if the copies do not fit (m is unchanged).
 * Threads: as frt_forward (one call on m at a time); the copy runs on m's
 * compute threads.  The caller's weights must stay readable as before
 * (the embedding and the matrices of other types are still read there). */
int frt_model_repack(frt_model *m);
/* frt_model_repack, writing over the caller's weights where the layout
 * fits: a q4_0 matrix whose rows are whole units of 4 blocks (n_in a
 * multiple of 128) and whose rows come in whole groups of 8 is repacked
 * where it is, group by group, at no memory cost; the others, and a
 * classifier shared with the embedding, are copied as frt_model_repack
 * copies them.  For weights m alone reads (a resident read the caller
 * owns): from then on the caller's matrices hold flexkern's layout, not
 * the file's, and no other model may be made on them.  Calling it again,
 * or after frt_model_repack, does nothing.
 * @return as frt_model_repack (m and the weights are unchanged on
 *         failure).
 * Threads: as frt_model_repack; the memory must be writable. */
int frt_model_repack_in_place(frt_model *m);
/* @return the model's configuration, defaults filled in (rope_theta,
 *         norm_eps); valid while m lives. */
const struct frt_config *frt_model_config(const frt_model *m);
/* @return the positions the KV cache holds (frt_options.max_seq, at most
 *         seq_len). */
int frt_model_max_seq(const frt_model *m);
/* @return the bytes of weights one forward pass reads: every matrix (as
 *         repacked, after frt_model_repack), one embedding row and the
 *         norms (of the layers and parts that run: see
 *         frt_model_skip_layers, frt_model_skip_parts). */
uint64_t frt_model_bytes_per_token(const frt_model *m);

/* Run token at position pos and return the logits over the vocabulary.
 * Writes position pos of the KV cache and attends to positions 0..pos, so
 * a sequence runs its positions in order from 0; starting again at 0
 * begins a new sequence.
 * @return logits [vocab_size], valid until the next call on m; NULL with
 *         errno EINVAL and a message if token is not in 0..vocab_size-1 or
 *         pos not in 0..max_seq-1.
 * Threads: the caller and m's compute threads; one call on m at a time.
 * Blocks until the pass is done, including every page fault on the
 * weights. */
float *frt_forward(frt_model *m, int token, int pos);

/* Leave layers out of every later forward pass: skip[l] non-zero skips
 * layer l, whose input then passes unchanged to layer l + 1 (exactly what
 * a model without that layer computes; its KV cache is left as it was).
 * NULL runs every layer again.  For searches over pruned models without
 * writing one per candidate.
 * @return 0; -EINVAL with a message if every layer would be skipped (the
 *         mask is then unchanged).
 * Preconditions: skip holds n_layers bytes.  Threads: as frt_forward (one
 * call on m at a time); the mask is copied. */
int frt_model_skip_layers(frt_model *m, const unsigned char *skip);

/* The parts of a layer frt_model_skip_parts leaves out, as bits. */
enum { FRT_SKIP_ATTN = 1, FRT_SKIP_FFN = 2 };

/* Leave parts of layers out of every later forward pass: parts[l] is a
 * set of FRT_SKIP_ATTN (layer l's attention: its norm, q, k, v and output
 * projections) and FRT_SKIP_FFN (its feed-forward: norm, gate, up and
 * down); a skipped part adds nothing to the residual stream, which is
 * what a model without it computes.  Both bits: frt_model_skip_layers'
 * skip.  NULL runs every part again.  For measures of removing
 * sub-blocks rather than whole blocks.
 * @return 0; -EINVAL with a message if a value holds other bits or every
 *         part of every layer would be skipped (the mask is then
 *         unchanged).
 * Preconditions: parts holds n_layers bytes.  Threads: as frt_forward;
 * the mask is copied. */
int frt_model_skip_parts(frt_model *m, const unsigned char *parts);

/* Record the residual stream of every later forward pass into states
 * [n_layers + 1][dim]: row l the input to layer l (skipped or not), row
 * n_layers the last layer's output, before the output norm.  NULL stops
 * recording.  For measures over the hidden states (a block's influence,
 * an embedding of a text) and for frt_forward_from.
 * Preconditions: states stays writable while recorded.  Threads: as
 * frt_forward; frt_forward writes states. */
void frt_model_record_states(frt_model *m, float *states);

/* Continue a forward pass at layer from the residual stream x [dim] (row
 * layer of states recorded at the same position of the same sequence):
 * run layers layer..n_layers-1 (the mask applies) and the classifier.
 * Layers before layer are not run and their KV cache positions not
 * written, so every later call in the sequence must start at layer or
 * above.  layer = n_layers runs the classifier alone.
 * @return logits [vocab_size], as frt_forward; NULL with errno EINVAL
 *         and a message if layer is not in 0..n_layers, pos not in
 *         0..max_seq-1 or x is NULL.
 * Threads: as frt_forward. */
float *frt_forward_from(frt_model *m, const float *x, int layer, int pos);

/* ------------------------------------------------------------------ */
/* Sampling                                                             */

typedef struct frt_sampler frt_sampler;

/* A sampler over vocab_size logits.  temperature 0: greedy (argmax, the
 * lowest id on ties).  Otherwise softmax(logits / temperature), then top-p
 * (nucleus) when 0 < topp < 1.  The random stream is xorshift64* from
 * seed: the same seed gives the same tokens.
 * @return the sampler; NULL with errno EINVAL if vocab_size < 1, ENOMEM if
 *         its buffer does not fit.  Any thread. */
frt_sampler *frt_sampler_create(int vocab_size, float temperature, float topp, uint64_t seed);
/* Free s; NULL does nothing. */
void frt_sampler_destroy(frt_sampler *s);
/* Draw a token from logits [vocab_size], which it uses as scratch
 * (overwritten unless greedy).  Advances s's random stream.
 * @return a token in 0..vocab_size-1.  Cannot fail.
 * Threads: one call on s at a time. */
int frt_sample(frt_sampler *s, float *logits);
/* @return the index of the largest of v[0..n-1], the lowest on ties; 0 if
 *         n < 1.  Any thread. */
int frt_argmax(const float *v, int n);

/* ------------------------------------------------------------------ */
/* Generation                                                           */

/* Called after each forward pass with the token for the next position pos
 * (a prompt token, or the sampled one); non-zero stops the loop. */
typedef int (*frt_token_fn)(void *ctx, int pos, int token);

struct frt_gen_stats {
	int tokens;              /* forward passes run */
	uint64_t first_ns;       /* time of the first forward pass */
	uint64_t rest_ns;        /* time of all the others */
};

/* llama2.c's loop, from position 0 (a new sequence): feed prompt (BOS if
 * n_prompt is 0), then sample up to steps positions in all (steps <= 0 or
 * past max_seq: max_seq); stop early when stop_token (e.g. FRT_BOS; -1 for
 * none) is sampled or fn says so.  fn may be NULL; stats (may be NULL)
 * gets the passes run and their times.
 * @return 0; -EINVAL with a message if a prompt token is not in the
 *         vocabulary or the prompt is longer than steps (nothing runs).
 * Threads: as frt_forward, on m and s.  Blocks for the whole generation;
 * fn runs on the calling thread. */
int frt_generate(frt_model *m, frt_sampler *s, const int *prompt, int n_prompt,
                 int steps, int stop_token, frt_token_fn fn, void *ctx,
                 struct frt_gen_stats *stats);

/* ------------------------------------------------------------------ */
/* Tokenizer                                                            */

/* A SentencePiece-style vocabulary (pieces with scores, byte fallback)
 * that turns text into token ids and back as llama2.c's run.c does.  Once
 * made it is never written: any number of threads may encode and decode
 * with one tokenizer at once. */
typedef struct frt_tokenizer frt_tokenizer;

/* Read a llama2.c tokenizer file: int32 max_token_length, then for each
 * token a float32 score, an int32 byte length and the bytes.  vocab_size
 * is the model's vocabulary (the file does not record it); 0 takes every
 * token the file holds.  Token 1 is BOS and 2 is EOS, as in llama2.c.
 * @return the tokenizer, or NULL with errno set and a message naming the
 *         file and the field: ENOENT, EACCES... (cannot open), EINVAL
 *         (truncated, a negative length, a length past the end or above
 *         max_token_length, a score that is not a number, more or fewer
 *         tokens than vocab_size), ENOMEM.
 * Any thread. */
frt_tokenizer *frt_tokenizer_load(const char *path, int vocab_size);

/* Make a tokenizer from a vocabulary held in arrays, as a GGUF file's
 * tokenizer.ggml.tokens, .scores and .token_type hold it: token i is the
 * lens[i] bytes at pieces[i] (U+2581 in a piece stands for a space),
 * scores[i] its merge score, types[i] its SentencePiece type (1 normal,
 * 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte; types may be
 * NULL: every token normal).  Unknown, control, unused and byte tokens
 * are never matched against text.  bos and eos are token ids, or -1 for
 * none.  The arrays are copied.
 * @return the tokenizer, or NULL with errno EINVAL (n not in 1..2^24, a
 *         NULL array or piece, a NaN score, bos or eos out of range) or
 *         ENOMEM, and a message naming the token and the field.
 * Any thread. */
frt_tokenizer *frt_tokenizer_create(int n, const char *const *pieces, const uint32_t *lens,
                                    const float *scores, const int32_t *types, int bos, int eos);
void frt_tokenizer_destroy(frt_tokenizer *t);

int frt_tokenizer_vocab_size(const frt_tokenizer *t);
int frt_tokenizer_bos(const frt_tokenizer *t); /* -1: none */
int frt_tokenizer_eos(const frt_tokenizer *t); /* -1: none */

/* Encode the len bytes at text into ids[0..max) as run.c's encode() does:
 * BOS first when bos is non-zero; a space is put before non-empty text
 * (SentencePiece's dummy prefix); each UTF-8 character (a byte and up to
 * three continuation bytes) becomes its piece, or when it has none one
 * token per byte (the piece "<0xNN>"; the unknown token when the
 * vocabulary has no such piece); then the adjacent pair whose
 * concatenation is the piece of highest score (above -1e10) is merged,
 * the leftmost of equal scores first, until no pair merges; EOS last when
 * eos is non-zero.  NUL bytes are text like any other.  O(len log len).
 * @return the number of ids (at most len + 3), or -EINVAL (text NULL with
 *         len > 0, bos or eos asked of a vocabulary without one, len
 *         above INT_MAX - 3), -ENOSPC (more than max ids), -ENOMEM.
 * Any thread. */
int frt_tokenizer_encode(const frt_tokenizer *t, const char *text, size_t len, int bos, int eos,
                         int *ids, int max);

/* The bytes of token as llama2.c's decode() gives them after prev_token:
 * the piece, without its leading space after BOS; a byte piece "<0xNN>"
 * is the raw byte.  BOS, EOS, control and unused tokens are no text (an
 * empty piece).  *len receives the length: a piece may hold a NUL byte.
 * @return the bytes (not NUL-terminated), valid while the tokenizer
 *         lives; NULL with errno EINVAL if token is out of range.
 * Any thread. */
const char *frt_tokenizer_decode(const frt_tokenizer *t, int prev_token, int token, size_t *len);

/* The text of ids[0..n): each piece decoded after the one before it, the
 * first as though it followed BOS (so the dummy-prefix space of encoded
 * text is dropped whether or not ids start with BOS).  So
 * frt_tokenizer_text(encode(s)) gives s back whenever every byte of s has
 * a piece or a byte piece.  Like snprintf, writes at most cap - 1 bytes
 * and a NUL into out (nothing when cap is 0) and returns the full length.
 * @return the text's length in bytes, or -EINVAL for an id out of range.
 * Any thread. */
ptrdiff_t frt_tokenizer_text(const frt_tokenizer *t, const int *ids, int n, char *out, size_t cap);

/* ------------------------------------------------------------------ */
/* Scoring                                                              */

/* Score one window of text: run ids[0..n) at positions 0..n-2 and write
 * into nll[i - 1], for i = 1..n-1, the negative log-likelihood
 * -ln softmax(logits at i-1)[ids[i]] in nats, the softmax computed in
 * double.  ids[0] (BOS, in the usual windowing) is context only.  fn, if
 * not NULL, is called after each forward pass with the position and its
 * token, as frt_generate calls it; non-zero stops the window.  Perplexity
 * is exp of the mean of the NLLs over every window.
 * @return n - 1 (tokens scored; 0 for n = 1), or -EINVAL (n < 1, n above
 *         the model's max_seq, an id outside the vocabulary), -ECANCELED
 *         (fn stopped it).
 * Not thread-safe on one model (it runs the model's state); any thread. */
int frt_score(frt_model *m, const int *ids, int n, double *nll, frt_token_fn fn, void *ctx);

#ifdef __cplusplus
}
#endif
#endif
