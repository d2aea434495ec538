/* Internal to flexmodel. */
#ifndef FLEXMODEL_INTERNAL_H
#define FLEXMODEL_INTERNAL_H

#include <flexmodel/model.h>

/* Set the calling thread's model_last_error() and errno; returns -errnum,
 * for `return model_fail(EINVAL, ...)`. */
int model_fail(int errnum, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The errno a failed pager call left, or EIO if it left none: call with
 * errno cleared before the pager call. */
int model_pager_errno(void);

/* Checks shared by every format: positive dimensions within the runtime's
 * limits that divide as the architecture needs.  field_prefix goes before
 * each field name in the message ("header field", "meta key", "" for
 * none).  0 or -EINVAL. */
int model_check_config(const struct frt_config *cfg, const char *path,
                       const char *field_prefix);
/* The same, with each field's own name (names[i] for the i-th field of
 * struct frt_config: dim, hidden_dim, n_layers, ...); prefix goes before
 * the first name of a message. */
int model_check_config_named(const struct frt_config *cfg, const char *path, const char *prefix,
                             const char *const names[7]);

/* ------------------------------------------------------------------ */
/* The tensors of a Llama model (llama.c)                               */

/* What a tensor is to the forward pass. */
enum llama_role {
	ROLE_TOKEN_EMBD,
	ROLE_ATTN_NORM,
	ROLE_WQ,
	ROLE_WK,
	ROLE_WV,
	ROLE_WO,
	ROLE_FFN_NORM,
	ROLE_W1,                     /* gate */
	ROLE_W3,                     /* up */
	ROLE_W2,                     /* down */
	ROLE_OUTPUT_NORM,
	ROLE_OUTPUT,
};

struct llama_tensor {
	char name[FP_NAME_MAX];      /* GGUF's: token_embd.weight, blk.N.attn_q.weight, ... */
	int role;                    /* enum llama_role */
	int layer;                   /* for the per-layer roles; else -1 */
	uint64_t rows, cols;         /* [out][in]; norms are 1 x dim */
};

/* 1 for the norms, whose type is always f32. */
static inline int llama_is_norm(int role)
{
	return role == ROLE_ATTN_NORM || role == ROLE_FFN_NORM || role == ROLE_OUTPUT_NORM;
}

/* The i-th tensor of a model in decode order (token_embd, each layer's
 * nine, output_norm, output unless shared): 1, or 0 past the last. */
int llama_tensor_at(const struct frt_config *cfg, int shared_classifier, int i,
                    struct llama_tensor *t);

/* The matrix of w (or of layers[t->layer]) that holds tensor t, not a norm. */
const struct frt_tensor *llama_get(const struct frt_weights *w, const struct frt_layer *layers,
                                   const struct llama_tensor *t);

/* Check a file's tensor of type against what the forward pass needs of
 * t: shape [cols, rows] (a norm: [cols]; trailing dimensions of 1 allowed)
 * and the bytes they take.  0 or -EINVAL naming the tensor. */
int llama_check_shape(const char *path, const struct llama_tensor *t, int type, uint32_t ndim,
                      const uint64_t *shape, uint64_t size);

/* Point the forward pass at tensor t: data, of type (a norm's is f32),
 * goes where w (or layers[t->layer]) holds t. */
void llama_set(struct frt_weights *w, struct frt_layer *layers, const struct llama_tensor *t,
               const void *data, int type);

/* ------------------------------------------------------------------ */
/* llama2.c checkpoints (llama2c.c)                                     */

/* Where each tensor group of a checkpoint starts (bytes from the file's
 * start); each group stacks its tensor over the layers. */
struct llama2c_layout {
	struct frt_config cfg;
	int shared_classifier;       /* vocab_size was positive */
	uint64_t file_size;
	uint64_t token_embd, rms_att, wq, wk, wv, wo, rms_ffn, w1, w2, w3,
	         rms_final, wcls;
};

/* Read and check the header of the open checkpoint fd (named path in
 * messages) against its size.  0 or -EINVAL naming the file and the
 * field. */
int llama2c_read_layout(int fd, const char *path, struct llama2c_layout *lay);

/* File offset of tensor t of the checkpoint. */
uint64_t llama2c_offset(const struct llama2c_layout *lay, const struct llama_tensor *t);

/* ------------------------------------------------------------------ */
/* Writing a model (sink.c, vocab.c)                                    */

/* Where a model goes: exactly one of image and gguf. */
struct model_sink {
	fp_writer *image;
	fp_gguf_writer *gguf;
	const char *name;            /* the source, for messages and general.name */
};

/* The header: an image's meta text; a GGUF's llama.* keys, the
 * vocabulary of the llama2.c tokenizer file (NULL: a generated one) and
 * every tensor's info.  Then, per tensor in decode order, begin, its rows
 * with write, end.  Each 0 or -errno with a message naming the tensor. */
int model_sink_header(struct model_sink *s, const struct frt_config *cfg, int shared, int type,
                      const char *tokenizer);
int model_sink_begin(struct model_sink *s, const struct llama_tensor *t, int type);
int model_sink_write(struct model_sink *s, const struct llama_tensor *t, const void *data,
                     size_t n);
int model_sink_end(struct model_sink *s, const struct llama_tensor *t);

/* A vocabulary as tokenizer.ggml.* holds it. */
struct model_vocab {
	int n;
	char **pieces;               /* NUL-terminated SentencePiece pieces */
	float *scores;
	int32_t *types;              /* llama.cpp's token types */
};

/* From a llama2.c tokenizer file, which must hold n_vocab tokens. */
int model_vocab_load(struct model_vocab *v, const char *path, int n_vocab);
/* <unk>, <s>, </s>, the 256 byte pieces, then "▁t<id>" up to n_vocab. */
int model_vocab_generate(struct model_vocab *v, int n_vocab);
void model_vocab_free(struct model_vocab *v);

/* ------------------------------------------------------------------ */
/* Loading helpers (load.c), the loaders of each format                 */

/* open(path, O_RDONLY): the fd, or -errno with a message. */
int model_open_fd(const char *path);
/* m->layers for m->cfg.n_layers, and m->weights.layers. */
int model_alloc_layers(struct model *m);
/* m->map: len bytes of fd from off, read-only, with madvise(advice). */
int model_map_file(struct model *m, int fd, uint64_t off, uint64_t len, int advice);
/* m->buf: len bytes of anonymous memory for a resident copy. */
int model_alloc_resident(struct model *m, uint64_t len);
/* pread n bytes from off, all of them. */
int model_read_all(int fd, void *dst, size_t n, uint64_t off, const char *path);
/* m->region: fp_open(m->path) with o->fp. */
int model_open_region(struct model *m, const struct model_options *o);

/* Where a file's logical offsets are in memory: base + off, or, in a
 * compact copy (at non-NULL), base + at[off / chunk_size] + off % chunk_size. */
struct model_view {
	const char *base;
	const uint64_t *at;
	uint64_t chunk_size;
};

static inline const char *model_view_at(const struct model_view *v, uint64_t off)
{
	return v->base + (v->at ? v->at[off / v->chunk_size] + off % v->chunk_size : off);
}

/* Images and GGUF files (load_image.c): m->path, m->load set. */
int model_open_image(struct model *m, const struct model_options *o);

/* A llama GGUF (load_gguf.c): m->cfg and m->shared_classifier from the
 * llama.* keys and token_embd's shape; then every tensor checked and the
 * weights pointed into v. */
int model_gguf_config(struct model *m, const fp_gguf *g);
int model_gguf_wire(struct model *m, const fp_gguf *g, const struct model_view *v);

/* ------------------------------------------------------------------ */
/* Pruning (prune_*.c)                                                  */

/* splitmix64: the pruning code's one random stream, seeded by --seed. */
static inline uint64_t prune_rand(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Uniform in 0..n-1 (n > 0), and in [0, 1). */
static inline int prune_rand_below(uint64_t *s, int n)
{
	return (int)(prune_rand(s) % (uint64_t)n);
}

static inline double prune_rand_unit(uint64_t *s)
{
	return (double)(prune_rand(s) >> 11) * 0x1.0p-53;
}

/* The llama.cpp keys and vocabulary of a GGUF (sink.c), for writers that
 * declare their own tensors. */
int model_gguf_keys(fp_gguf_writer *w, const struct frt_config *c, int type, const char *name);
int model_gguf_vocab(fp_gguf_writer *w, const char *tokenizer, int n_vocab);

#endif
