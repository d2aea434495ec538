/* flexmodel: model files for the flexrt runtime.
 *
 * Which bytes of a file are which weights, for flexpage images (a meta
 * text and tensors under GGUF's names), llama2.c checkpoints and GGUF
 * files of the llama architecture (and images packed from them); the three
 * ways to put them in memory (a resident read, a plain mmap, a flexpage
 * region); importing a checkpoint into an image or a GGUF; and the
 * synthetic-model generator, writing either.  Used by the flexpage command,
 * the benchmarks and the tests.
 *
 * Errors: a function that can fail returns a negative errno (-EINVAL for a
 * bad file or argument, -ENOMEM, -EIO, or the errno of the failed system
 * call) and leaves a message for people, naming the file and the field,
 * in the calling thread's model_last_error().  Callers test the code; the
 * text is for printing.
 *
 * Threads: every function may be called from any thread; they share no
 * state but the objects they are handed, which one thread uses at a time.
 */
#ifndef FLEXMODEL_MODEL_H
#define FLEXMODEL_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include <flexpage/flexpage.h>
#include <flexrt/runtime.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * The message of the calling thread's latest failure in flexmodel.
 *
 * @return a NUL-terminated message, never NULL ("no error" before any
 *         failure); valid until the thread's next flexmodel call.
 */
const char *model_last_error(void);

/* ------------------------------------------------------------------ */
/* Formats                                                              */

enum model_format {
	MODEL_FORMAT_IMAGE = 1,      /* a flexpage image: a Llama meta, or packed from a GGUF */
	MODEL_FORMAT_LLAMA2C,        /* a llama2.c checkpoint */
	MODEL_FORMAT_GGUF,           /* a GGUF file of the llama architecture */
};

/**
 * Tell what kind of model file path is, from its first bytes.
 *
 * @return an enum model_format; -errno of open() if the file cannot be
 *         opened; -EINVAL if it is none (the message says what is wrong
 *         with it as a checkpoint).
 */
int model_detect(const char *path);

/**
 * Whether path starts with a plausible llama2.c header: dimensions that
 * are positive, bounded and divide as the architecture needs.  A random
 * file passes about never; a checkpoint of the wrong size still does, so
 * that opening it can say what is wrong.
 *
 * @return 1 if so, 0 if not or if the file cannot be read.
 */
int model_is_llama2c(const char *path);

/**
 * Write the image meta text of a Llama model ("arch=llama\ndim=...\n
 * ...type=q8_0\n") into buf.
 *
 * @param type  enum fk_type of every matrix (norms are f32)
 * @return 0, or -ENOSPC if len is too small (buf is then truncated).
 */
int model_format_meta(const struct frt_config *cfg, int shared_classifier, int type,
                      char *buf, size_t len);

/* ------------------------------------------------------------------ */
/* Loading                                                              */

enum model_load {
	MODEL_LOAD_DEFAULT = 0,      /* model_default_load() of the format */
	MODEL_LOAD_RESIDENT,         /* read every byte into anonymous memory */
	MODEL_LOAD_MMAP,             /* map the file (raw images, checkpoints) */
	MODEL_LOAD_FLEXPAGE,         /* fp_open: pages served on demand */
};

/**
 * The load MODEL_LOAD_DEFAULT means for a format: flexpage for images and
 * GGUF files (a GGUF is paged directly), resident for checkpoints.
 */
int model_default_load(int format);

struct model_options {
	int load;                    /* enum model_load */
	int advice;                  /* madvise() advice for mmap; 0: MADV_NORMAL */
	struct fp_options fp;        /* for MODEL_LOAD_FLEXPAGE */
};

/* An open model.  The fields are for reading; model_close() frees them. */
struct model {
	char path[4096];
	int format;                  /* enum model_format */
	int load;                    /* enum model_load, resolved */
	struct frt_config cfg;
	int shared_classifier;       /* output is token_embd */
	struct frt_weights weights;  /* pointers into the memory below */
	struct frt_layer *layers;    /* weights.layers, n_layers of them */
	uint64_t size;               /* bytes that hold the weights (image: logical size) */
	fp_region *region;           /* MODEL_LOAD_FLEXPAGE */
	void *map;                   /* MODEL_LOAD_MMAP */
	size_t map_len;
	void *buf;                   /* MODEL_LOAD_RESIDENT */
	size_t buf_len;
};

/**
 * "resident", "mmap" or "flexpage" as an enum model_load.
 *
 * @return the load, or -EINVAL if name is none of them.
 */
int model_load_parse(const char *name);

/** The name of an enum model_load; "default" for MODEL_LOAD_DEFAULT. */
const char *model_load_name(int load);

/**
 * Open path and point m->weights at its tensors.  Every tensor's presence,
 * type, shape and size is checked against the configuration before any
 * pointer is handed out, and, for a flexpage load, before the region (and
 * its threads) exists.
 *
 * A GGUF (or an image packed from one) is read as llama.cpp reads it: the
 * configuration from its llama.* keys, tensors by llama.cpp's names, each
 * matrix of its own type (f32, f16, q8_0 or q4_0; another type is an error
 * naming the tensor), the classifier shared with token_embd when
 * output.weight is absent.
 *
 * A flexpage load opens a region with o->fp; the pointers stay valid until
 * model_close(), and a thread that reads them may block in a page fault
 * until the pager has loaded the page.
 *
 * @param o  NULL for the defaults
 * @return 0; -EINVAL for a bad file or a load the format cannot do (e.g.
 *         mmap of a compressed image), naming the file and the field;
 *         -ENOMEM; the errno of a failed open/read/mmap.  On failure *m
 *         holds nothing to close.
 */
int model_open(struct model *m, const char *path, const struct model_options *o);

/**
 * Unmap, free or close (fp_close) whatever model_open() made.  Any thread
 * that reads the weights must have stopped.  Safe on a zeroed model and
 * after a failed model_open().
 */
void model_close(struct model *m);

/**
 * The types of the model's matrices for people: "q8_0" when they are all
 * of one type, else each type once in decode order ("q8_0+f16").
 *
 * @return buf, truncated to len bytes.
 */
const char *model_types(const struct model *m, char *buf, size_t len);

/* ------------------------------------------------------------------ */
/* Import                                                               */

/**
 * Write a llama2.c checkpoint's tensors, in decode order under GGUF's
 * names, and its meta into the image writer w.  Reads with pread() in
 * batches of about a million values: a few MiB of memory whatever the
 * model's size.
 *
 * @param quant  NULL or "f32", "q8_0", "q4_0": the type of every matrix
 *               (norms stay f32); quantization is GGML's reference one.
 * @return 0; -EINVAL for a bad checkpoint, an unknown quant or rows that
 *         are not whole blocks; -ENOMEM; -EIO (or the errno) for a failed
 *         read or write.  On failure the caller aborts w.
 */
int model_import_llama2c(const char *path, fp_writer *w, const char *quant);

/**
 * The same into a GGUF that llama.cpp loads: general.architecture llama,
 * llama.cpp's llama.* keys, tensors under its names (ne[0] = in) in decode
 * order, q8_0 and q4_0 blocks exactly as GGML writes them, and a
 * vocabulary (tokenizer.ggml.model llama, tokens, scores, token types,
 * BOS 1, EOS 2, unknown 0).
 *
 * @param tokenizer  a llama2.c tokenizer file holding the model's
 *                   vocabulary (its pieces turned back into
 *                   SentencePiece's, with U+2581 for a space, as
 *                   llama.cpp's llama2.c converter does); NULL: a
 *                   generated one (<unk>, <s>, </s>, the 256 byte pieces,
 *                   then "▁t<id>")
 * @return as model_import_llama2c; -EINVAL also for a tokenizer file that
 *         is not one or holds another number of tokens.  On failure the
 *         caller aborts w.
 */
int model_import_llama2c_gguf(const char *path, fp_gguf_writer *w, const char *quant,
                              const char *tokenizer);

/**
 * Describe a llama2.c checkpoint to a verbatim image writer
 * (fp_writer_options.verbatim, whose bytes are the file's): each tensor at
 * its offset in the file under GGUF's names, and the Llama meta with
 * "format=llama2c".  The caller writes the file's bytes.
 *
 * @return 0; -EINVAL for a bad checkpoint; the errno of a failed open;
 *         -EIO (or the errno) when the writer refuses a tensor or the meta.
 */
int model_llama2c_tensor_table(const char *path, fp_writer *w);

/* ------------------------------------------------------------------ */
/* Synthetic models                                                     */

struct model_shape {
	const char *name;
	struct frt_config cfg;
	int shared_classifier;
};

/** The named shapes (260k, 110m, tinyllama-1.1b, llama2-7b), ending with a NULL name. */
extern const struct model_shape model_shapes[];

/**
 * A named shape, or "DIM,HIDDEN,LAYERS,HEADS,KV_HEADS,VOCAB,SEQ[,SHARED]".
 *
 * @return 0 with *out set, or -EINVAL.
 */
int model_parse_shape(const char *s, struct model_shape *out);

/**
 * Bytes of all the tensors of a model of this shape with matrices of type
 * (not the image's padding between them).
 */
uint64_t model_synth_bytes(const struct frt_config *cfg, int shared_classifier, int type);

/**
 * Write the meta and every tensor of a synthetic model of this shape into
 * w, matrices quantized to type.  The weights look trained to a pager and
 * a codec (docs/runtime.md); the bytes depend only on shape, type and
 * seed, not on threads.
 *
 * @param threads  generator threads, the caller included (a pool of them
 *                 lives for the call)
 * @return 0; -EINVAL for a bad shape or type; -ENOMEM; -EIO for a failed
 *         write.  On failure the caller aborts w.
 */
int model_synth_write(fp_writer *w, const struct frt_config *cfg, int shared_classifier,
                      int type, uint64_t seed, int threads);

/**
 * The same model (the same tensor bytes) as a GGUF that llama.cpp loads,
 * with the keys and vocabulary of model_import_llama2c_gguf().
 *
 * @param tokenizer  a llama2.c tokenizer file of cfg->vocab_size tokens, or
 *                   NULL for a generated vocabulary
 * @return as model_synth_write; -EINVAL also for a bad tokenizer file.
 */
int model_synth_write_gguf(fp_gguf_writer *w, const struct frt_config *cfg,
                           int shared_classifier, int type, uint64_t seed, int threads,
                           const char *tokenizer);


/* ------------------------------------------------------------------ */
/* Compression-aware quantization (docs/compression.md)                 */

#define MODEL_COMPRESS_MAX_LEVEL 6

struct model_compress_options {
	int type;                    /* FK_Q8_0, FK_Q4_0, or FK_F32 (re-scaling alone) */
	int level;                   /* 0 (plain quantization) .. MODEL_COMPRESS_MAX_LEVEL */
	const char *calib;           /* calibration text; may be NULL at level 0 */
	uint64_t calib_skip;         /* bytes of it to skip (the held-out part) */
	int calib_tokens;            /* tokens to run (0: 4096) */
	int ctx;                     /* positions a window (0: the model's seq_len, at most 256) */
	const frt_tokenizer *tok;    /* encodes the calibration text */
	int threads;                 /* compute threads, caller included (0: 1) */
	int zstd_level;              /* for the matrices' stored sizes (0: 3) */
	const double *params;        /* NULL, or {alpha, qmax, deadzone, step, scale bits}
	                              * overriding the level's (docs/compression.md) */
};

struct model_compress_report {
	double alpha, deadzone, step; /* the parameters used */
	int qmax, scale_bits;
	int calib_tokens;            /* tokens the calibration ran */
	int err_tokens;              /* tokens the logit error was measured on */
	double logit_err;            /* RMS of (quantized - float) logits / RMS of float logits */
	double weighted_err;         /* mean over matrices of the relative output error */
	double entropy;              /* order-0 entropy of the quantized values, bits per weight */
	uint64_t q_weights;          /* weights of the quantized matrices */
	uint64_t q_bytes;            /* their blocks' bytes */
	uint64_t q_zstd_bytes;       /* the blocks of each matrix as one zstd frame */
	uint64_t q_split_bytes;      /* the same with each matrix's scales stored apart */
	int n_kept_f32;              /* matrices kept f32 (rows not whole blocks) */
	char kept_f32[256];          /* their names, shortened, for people */
};

/**
 * Write the model at path (a llama2.c checkpoint, a GGUF or an image of
 * f32/f16 matrices) into the image writer w, quantized with compression
 * in mind: calibrated on o->calib, input channels re-scaled (the inverse
 * folded into the operation before) and pruned as o->level says, then
 * quantized to o->type blocks; matrices whose rows are not whole blocks
 * stay f32.  Fills *r (may be NULL).
 *
 * @return 0; -EINVAL for a bad model, a quantized input tensor, a level
 *         out of range, or calibration text missing, empty or shorter
 *         than one window (each message names the file or option);
 *         -ENOMEM; -EIO for a failed write.  On failure the caller aborts w.
 */
int model_compress_write(const char *path, fp_writer *w, const struct model_compress_options *o,
                         struct model_compress_report *r);

#ifdef __cplusplus
}
#endif
#endif
