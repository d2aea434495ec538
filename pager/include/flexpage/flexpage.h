/* libflexpage: a userfaultfd pager for model weights.
 *
 * An image file (docs/format.md) holds named tensors cut into chunks, each
 * stored raw or zstd-compressed with a checksum.  fp_open() reserves a
 * virtual region the size of the image's logical layout and serves every
 * page of it on demand: a fault loads the chunk that holds it, verifies and
 * decompresses it and installs it whole, within a budget of resident bytes.
 * The loop that reads the weights sees only plain pointers.
 *
 * Errors.  A function that can fail returns a negative errno (int
 * functions) or NULL with errno set (pointer functions), and leaves a
 * message for people, naming the file and the field, in fp_last_error().
 * The codes each function returns are listed with it; a code from a
 * system call (open(2), mmap(2), userfaultfd(2)...) is passed on as it is.
 *
 * Threads.  Unless a function says otherwise it may be called from any
 * thread, and calls on different objects never interfere.  The pager's own
 * threads (one fault handler per process, loaders per region) never call
 * back into the application except through the options' hooks.
 *
 * Stable API.  This header is the interface that keeps its meaning across
 * releases.  Test hooks, the technique switches, the trace record layout
 * and the planner are in <flexpage/flexpage_experimental.h>, which may
 * change in any release. */
#ifndef FLEXPAGE_FLEXPAGE_H
#define FLEXPAGE_FLEXPAGE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <flexpage/version.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * fp_last_error() - the message of the calling thread's last failure.
 *
 * @return a NUL-terminated string owned by the library, valid until the
 *         thread's next failing call ("no error" if none failed yet).
 * Per thread: another thread's failures never change it.
 */
const char *fp_last_error(void);

/* ------------------------------------------------------------------ */
/* Image format                                                         */

#define FP_IMAGE_MAGIC "FLEXPAGE"
#define FP_IMAGE_VERSION 4u        /* the newest written (4 only when a chunk has
                                    * an alternate form, 3 when one is zstd-split,
                                    * else 2); 1 to 3 are read too */
#define FP_IMAGE_ALIGN 4096u        /* payloads and tables: O_DIRECT-aligned */
#define FP_TENSOR_ALIGN 4096u       /* a tensor's logical offset: on a page */
#define FP_CHUNK_MIN (64u << 10)
#define FP_CHUNK_MAX (4u << 20)
#define FP_NAME_MAX 64              /* tensor name, NUL included */
#define FP_MAX_DIMS 4

/* Tensor element types; the numbers are GGML's where GGML has the type. */
enum fp_type {
	FP_TYPE_F32 = 0,
	FP_TYPE_F16 = 1,
	FP_TYPE_Q4_0 = 2,   /* 32 values: fp16 scale + 16 bytes of nibbles */
	FP_TYPE_Q8_0 = 8,   /* 32 values: fp16 scale + 32 int8 */
	FP_TYPE_U8 = 200,   /* opaque bytes (a file packed as one tensor) */
};

enum fp_codec {
	FP_CODEC_RAW = 0,
	FP_CODEC_ZSTD = 1,
	FP_CODEC_ZSTD_SPLIT = 2,    /* zstd of quantized blocks with their scales stored
	                             * ahead of their quants (image version 3) */
	FP_CODEC_AUTO = 255,        /* writer only: per chunk raw or the smaller of zstd
	                             * and zstd-split, so that the image streams
	                             * fastest at read_rate (the pipeline model) */
	FP_CODEC_BOTH = 254,        /* writer only: per chunk the smaller of zstd and
	                             * zstd-split, and the raw bytes too where that
	                             * saves anything (image version 4): the pager
	                             * reads the form cheaper at its rates */
};

/**
 * fp_type_name() - the name of an element type ("f32", "q8_0", ...).
 * @return a static string, or NULL if type is not an enum fp_type.
 */
const char *fp_type_name(uint32_t type);

/**
 * fp_type_parse() - the element type a name stands for.
 * @return the enum fp_type value, or -EINVAL if the name is unknown.
 */
int fp_type_parse(const char *name);

/**
 * fp_codec_name() - the name of a codec ("raw", "zstd").
 * @return a static string, or NULL if codec is not an enum fp_codec.
 */
const char *fp_codec_name(uint32_t codec);

struct fp_tensor_desc {
	char name[FP_NAME_MAX];
	uint32_t type;
	uint32_t ndim;
	uint64_t shape[FP_MAX_DIMS]; /* shape[0] is the fastest-varying (row length) */
	uint64_t offset;             /* logical offset, a multiple of FP_TENSOR_ALIGN */
	uint64_t size;               /* bytes */
};

struct fp_chunk_desc {
	uint64_t logical_offset;     /* index * chunk_size */
	uint32_t logical_len;        /* bytes of data; the rest of the slot reads as zero */
	uint32_t stored_len;         /* bytes of payload in the file */
	uint64_t file_offset;        /* multiple of FP_IMAGE_ALIGN */
	uint32_t codec;              /* enum fp_codec */
	uint32_t checksum;           /* CRC-32C of the logical (decoded) bytes */
};

typedef struct fp_image fp_image;

struct fp_image_info {
	const char *path;
	uint64_t file_size;
	uint64_t logical_size;       /* n_chunks * chunk_size */
	uint64_t data_bytes;         /* sum of logical_len */
	uint64_t stored_bytes;       /* sum of stored_len */
	uint32_t chunk_size;
	uint32_t n_tensors;
	uint32_t n_chunks;
	const char *meta;            /* "key=value\n" lines, NUL-terminated */
	/* Raw-codec images lay their payloads out in logical order: the logical
	 * layout is the file range [raw_base, raw_base + logical_size), which
	 * can be mapped directly.  0 when the payloads are not laid out so. */
	uint64_t raw_base;
	/* enum fp_image_kind: how the logical bytes relate to a file. */
	uint32_t kind;
	/* Chunks stored in two forms (version 4, fp_image_chunk_form). */
	uint32_t n_alt_forms;
	/* The file's format version (its header's: 1 to FP_IMAGE_VERSION, the
	 * oldest that holds what it stores); 0 for a GGUF file opened
	 * directly. */
	uint32_t version;
};

enum fp_image_kind {
	/* A flexpage image of tensors packed on pages (docs/format.md). */
	FP_IMAGE_PACKED = 0,
	/* A flexpage image whose logical bytes [0, data_bytes) are a whole
	 * file's, byte for byte (packed from a GGUF, or with --verbatim):
	 * tensors lie at the file's offsets; checksums as in any image. */
	FP_IMAGE_VERBATIM = 1,
	/* A GGUF file opened as itself (docs/gguf.md): chunk i is the file's
	 * bytes [i * chunk_size, +chunk_size), raw, with no checksum. */
	FP_IMAGE_DIRECT = 2,
};

/**
 * fp_image_open() - read and validate an image's header and tables.
 * @path: the image file.
 *
 * Every field a later step trusts (offsets, lengths, codecs, types, the
 * table checksums) is checked; the payloads are not read.  A GGUF file
 * opens as a direct image (FP_IMAGE_DIRECT) of 2 MiB chunks: its tensors
 * under the file's names, with ggml's type numbers, at their file offsets
 * (the GGUF reader's errors are listed in docs/gguf.md).
 *
 * @return the image, to be closed with fp_image_close(); NULL with errno:
 *   errno of open(2) (ENOENT, EACCES, ...)  the file cannot be opened
 *   EINVAL     not a regular file
 *   EBADMSG    not an image, or a field or checksum is wrong (the message
 *              names the field)
 *   ENOTSUP    an image version this library does not read
 *   EIO        reading the tables failed
 *   ENOMEM
 * An image is immutable: any number of threads may use one at once.
 */
fp_image *fp_image_open(const char *path);

/**
 * fp_image_open_chunk() - fp_image_open(), cutting a GGUF into chunks of
 * chunk_size bytes (a power of two from FP_CHUNK_MIN to FP_CHUNK_MAX; 0:
 * 2 MiB).  An image keeps its own chunk size.
 * @return as fp_image_open(); -EINVAL for a chunk size out of range.
 * Thread-safe (each call opens its own file).
 */
fp_image *fp_image_open_chunk(const char *path, uint32_t chunk_size);

/**
 * fp_image_close() - free an image.  NULL is ignored.
 * Precondition: no region opened from it is open (a region holds its own).
 */
void fp_image_close(fp_image *img);

/**
 * fp_image_info() - the image's sizes and meta.
 * @return a pointer into img, valid until fp_image_close().
 */
const struct fp_image_info *fp_image_info(const fp_image *img);

/**
 * fp_image_tensor() - tensor i, in ascending logical offset.
 * @return a pointer into img, or NULL if i >= n_tensors (not an error).
 */
const struct fp_tensor_desc *fp_image_tensor(const fp_image *img, uint32_t i);

/**
 * fp_image_find() - the tensor of this name.
 * @return a pointer into img, or NULL if there is none (not an error:
 *         errno and fp_last_error() are left alone).
 */
const struct fp_tensor_desc *fp_image_find(const fp_image *img, const char *name);

/**
 * fp_image_chunk() - chunk i's table entry.
 * @return a pointer into img, or NULL if i >= n_chunks (not an error).
 */
const struct fp_chunk_desc *fp_image_chunk(const fp_image *img, uint32_t i);

/**
 * fp_image_chunk_form() - one stored form of chunk i: form 0 is its table
 * entry (what fp_image_chunk() returns), form 1 its alternate form when
 * the image holds both (version 4: the same logical bytes and checksum,
 * another codec and payload).  A region's own image has each chunk's
 * table entry swapped to the form it reads (fp_region_image()).
 * @return a pointer into img, or NULL if i >= n_chunks or the chunk has
 *         no such form (not an error).
 */
const struct fp_chunk_desc *fp_image_chunk_form(const fp_image *img, uint32_t i, uint32_t form);

/**
 * fp_image_tensor_at() - the tensor that holds logical offset off.
 * @return a pointer into img, or NULL if off lies in padding or past the
 *         end (not an error).  Async-signal-safe.
 */
const struct fp_tensor_desc *fp_image_tensor_at(const fp_image *img, uint64_t off);

/**
 * fp_image_meta() - the value of a meta key, copied into buf.
 * @n: buf's size; a longer value is cut to n - 1 bytes, NUL-terminated.
 * @return 0, or -ENOENT if the key is absent (not a failure: no message).
 */
int fp_image_meta(const fp_image *img, const char *key, char *buf, size_t n);

/**
 * fp_image_read_chunk() - read, verify and decode chunk i into dst.
 * @dst: chunk_size bytes; the part past the chunk's logical_len is zeroed.
 *
 * Buffered I/O with a file descriptor of its own: for tools, not the
 * pager.  Blocks on the read.
 * @return 0, or
 *   -EINVAL    no chunk i
 *   -EBADMSG   the checksum does not match, or the zstd frame is bad
 *   -EIO       the file is shorter than the chunk table says
 *   -ENOMEM, or errno of open(2)
 */
int fp_image_read_chunk(const fp_image *img, uint32_t i, void *dst);

/**
 * fp_image_read_chunk_form() - fp_image_read_chunk() of one stored form
 * of chunk i (fp_image_chunk_form(): 0 its table entry, 1 its alternate).
 * Every form decodes to the same bytes, under the same checksum.
 * @return as fp_image_read_chunk(); -EINVAL also for a form the chunk
 *         does not have.  Blocks on the read.
 */
int fp_image_read_chunk_form(const fp_image *img, uint32_t i, uint32_t form, void *dst);

/* ------------------------------------------------------------------ */
/* Writing images                                                       */

struct fp_writer_options {
	uint32_t chunk_size;         /* 0: 2 MiB */
	uint32_t codec;              /* enum fp_codec */
	int zstd_level;              /* 0: 3 */
	uint64_t expected_bytes;     /* for the progress bar; 0: none */
	int progress;                /* 1: draw a progress bar on stderr if a tty */
	int align_tensors;           /* 1: each tensor starts a chunk (the version 1
	                              * layout: a chunk holds one tensor, tails are
	                              * partial); 0: packed on pages, only the last
	                              * chunk partial */
	int verbatim;                /* 1: the logical bytes are a file's, written in order
	                              * with fp_writer_write (no begin/end_tensor); tensors
	                              * are placed with fp_writer_add_tensor_at, at any
	                              * offset, of any ggml type (FP_IMAGE_VERBATIM) */
	/* FP_CODEC_AUTO stores each chunk raw or compressed so that
	 * streaming the image takes least time: the larger of its stored
	 * bytes over read_rate and its decoding over the reader's cores (the
	 * pipeline model, docs/compression.md), not each chunk's read plus
	 * decode. */
	double read_rate;            /* FP_CODEC_AUTO: bytes/s the image will be read at
	                              * (0: 1 GB/s) */
	double decode_rate;          /* FP_CODEC_AUTO: bytes/s a core decodes zstd at;
	                              * 0: each candidate's decode is timed as it is packed */
	/* FP_CODEC_BOTH stores a chunk's raw form beside its compressed one
	 * only if the compressed one is at least this many bytes smaller
	 * (0: 4096, one page of reading). */
	uint32_t both_min_saving;
	/* FP_CODEC_AUTO: the most decoders the reader runs at once (as
	 * fp_options.decoders); the cores decoding gets are this machine's
	 * online cores less one, at least 1, and no more than this if > 0. */
	int decoders;
};

typedef struct fp_writer fp_writer;

/**
 * fp_writer_create() - start writing an image to path.
 * @opt: NULL for the defaults.
 *
 * Writes go to a temporary file beside path; only fp_writer_finish()
 * renames it over path, so a failure never harms an existing file.  The
 * tensors follow as fp_writer_begin_tensor(), fp_writer_write()...,
 * fp_writer_end_tensor(); each full chunk is compressed and written as it
 * fills, so a model never sits whole in memory.
 *
 * @return the writer; NULL with errno:
 *   EINVAL     a chunk size that is not a power of two in
 *              [FP_CHUNK_MIN, FP_CHUNK_MAX], an unknown codec, a zstd level
 *              out of range
 *   ENOMEM, or errno of creating the temporary file (EACCES, ENOENT, ...)
 * A writer is used by one thread at a time.
 */
fp_writer *fp_writer_create(const char *path, const struct fp_writer_options *opt);

/**
 * fp_writer_set_meta() - the image's meta: "key=value\n" lines.
 * @meta: copied; NULL for none.  May be called at any time before finish.
 * @return 0, or -ENOMEM.
 */
int fp_writer_set_meta(fp_writer *w, const char *meta);

/**
 * fp_writer_begin_tensor() - start the next tensor.
 * @type: enum fp_type; @shape: ndim sizes, shape[0] the row length.
 *
 * The tensor starts on the next page of the logical layout (or the next
 * chunk with align_tensors); a chunk filled by the padding is written.
 * @return 0, or
 *   -EINVAL    a tensor is still open, the name is empty or too long
 *              (FP_NAME_MAX), or the type and shape give no valid size
 *   -EEXIST    a tensor of this name was written already
 *   -ENOMEM, or the errno of a failed write (ENOSPC, EFBIG, EIO, ...)
 */
int fp_writer_begin_tensor(fp_writer *w, const char *name, uint32_t type,
                           uint32_t ndim, const uint64_t *shape);

/**
 * fp_writer_write() - the next n bytes of the open tensor.
 * Blocks while full chunks are compressed and written.
 * @return 0, or
 *   -EINVAL    no tensor is open, or n is more than it has left
 *   -EIO       zstd failed; or the errno of a failed write
 */
int fp_writer_write(fp_writer *w, const void *data, size_t n);

/**
 * fp_writer_end_tensor() - end the open tensor.
 * @return 0, or -EINVAL if none is open or it is short of its shape.
 */
int fp_writer_end_tensor(fp_writer *w);
/* Verbatim writers only: a tensor of the file at logical offset `offset`
 * (its bytes come with fp_writer_write, in file order, before or after the
 * call).  Any order; fp_writer_finish sorts them and fails on overlaps or
 * tensors past the bytes written.  type: a ggml type (fp_ggml_type_size)
 * or FP_TYPE_U8.  @return 0, or a negative errno (-EINVAL for a writer that is not
 * verbatim or a bad type or shape) with fp_last_error(). */
int fp_writer_add_tensor_at(fp_writer *w, const char *name, uint32_t type, uint32_t ndim,
                            const uint64_t *shape, uint64_t offset);

/**
 * fp_writer_finish() - write the tables, fsync, rename over the path.
 *
 * Frees w whatever happens; on failure the temporary file is removed and
 * an existing file at the path is left as it was.  Blocks on fsync.
 * @return 0, or
 *   -EINVAL    a tensor is still open, or there is none
 *   the errno of a failed write, fsync(2) or rename(2)
 */
int fp_writer_finish(fp_writer *w);

/**
 * fp_writer_abort() - give up: remove the temporary file, free w.
 * NULL is ignored.
 */
void fp_writer_abort(fp_writer *w);

/* ------------------------------------------------------------------ */
/* GGUF (docs/gguf.md)                                                  */

/* GGUF files, versions 2 and 3 (ggml's docs/gguf.md), read and written.
 * Every call that fails returns NULL or a negative errno, sets errno, and
 * leaves a message naming the file and the field in fp_last_error().
 * A parsed fp_gguf is immutable: any number of threads may read it. */

#define FP_GGUF_MAGIC "GGUF"
#define FP_GGUF_DEFAULT_ALIGNMENT 32u /* when general.alignment is absent */
#define FP_GGUF_NAME_MAX 64           /* a tensor name's bytes, NUL included (ggml's) */

/* Metadata value types, with GGUF's numbers. */
enum fp_gguf_vtype {
	FP_GGUF_UINT8 = 0, FP_GGUF_INT8, FP_GGUF_UINT16, FP_GGUF_INT16,
	FP_GGUF_UINT32, FP_GGUF_INT32, FP_GGUF_FLOAT32, FP_GGUF_BOOL,
	FP_GGUF_STRING, FP_GGUF_ARRAY, FP_GGUF_UINT64, FP_GGUF_INT64,
	FP_GGUF_FLOAT64,
	FP_GGUF_NTYPES
};

typedef struct fp_gguf fp_gguf;

/* A tensor info, as the file has it. */
struct fp_gguf_tensor {
	const char *name;            /* NUL-terminated, < FP_GGUF_NAME_MAX bytes */
	uint32_t type;               /* ggml type number (fp_ggml_type_name) */
	uint32_t n_dims;             /* 0-4 */
	uint64_t ne[4];              /* elements per dimension, ne[0] fastest; 1 past n_dims */
	uint64_t offset;             /* absolute, in the file (data_offset + the info's offset) */
	uint64_t size;               /* bytes, from type and shape */
};

/* 1 if the file at path starts with GGUF's magic, 0 if not (or unreadable).
 * A cheap test of what a path holds; it validates nothing. */
int fp_file_is_gguf(const char *path);

/* Open and validate a GGUF file's header: metadata and tensor infos, and
 * that every tensor lies inside the file, aligned, without overlap.  Reads
 * only the header, never the tensor data.
 * @return the parsed header, or NULL with errno (ENOENT/EACCES/... from
 *         open, EINVAL bad magic or field, EPROTONOSUPPORT version 1 or
 *         above 3, ENODATA truncated, EOVERFLOW sizes that overflow,
 *         ERANGE a tensor outside the file, EEXIST duplicate key or tensor
 *         name, ENOMEM) and fp_last_error().  docs/gguf.md lists them all.
 * Thread-safe. */
fp_gguf *fp_gguf_open(const char *path);

/* Parse a GGUF header from buf, the first len bytes of a file of
 * file_size bytes (len <= file_size); name is the file's name in messages.
 * The result keeps its own copy of what it needs, not buf.
 * @return as fp_gguf_open; errno ENOBUFS when the header runs past len
 *         but not past file_size (call again with more of the file). */
fp_gguf *fp_gguf_parse(const void *buf, size_t len, uint64_t file_size, const char *name);

/* Free g (NULL is fine).  No pointer from g may be used after it. */
void fp_gguf_close(fp_gguf *g);

uint32_t fp_gguf_version(const fp_gguf *g);
/* general.alignment, or FP_GGUF_DEFAULT_ALIGNMENT. */
uint64_t fp_gguf_alignment(const fp_gguf *g);
/* File offset of the tensor data section (the header padded to alignment). */
uint64_t fp_gguf_data_offset(const fp_gguf *g);
uint64_t fp_gguf_file_size(const fp_gguf *g);

/* ---- metadata: keys in file order, i in [0, fp_gguf_n_kv) ---- */
uint64_t fp_gguf_n_kv(const fp_gguf *g);
/* Key i (NUL-terminated), or NULL if i is out of range. */
const char *fp_gguf_key(const fp_gguf *g, uint64_t i);
/* Index of key, or -ENOENT (no message: absence is a normal answer). */
int64_t fp_gguf_find(const fp_gguf *g, const char *key);
/* Value type of key i (enum fp_gguf_vtype), or -ENOENT if out of range. */
int fp_gguf_type(const fp_gguf *g, uint64_t i);
/* "u8", "i8", ..., "str", "arr", "f64"; NULL if unknown. */
const char *fp_gguf_type_name(int vtype);
/* Bytes of one value of a fixed-size type (u8 1 ... f64 8, bool 1); 0 for
 * strings, arrays and unknown types. */
uint32_t fp_gguf_type_size(int vtype);

/* Scalar getters.  Each returns 0, or -ENOENT (no such key), -EINVAL (a
 * value of another type) or -ERANGE (does not fit), with a message naming
 * the file and the key.
 * get_u64 / get_i64: any integer type whose value fits.
 * get_f64: either float type or any integer type.
 * get_bool: bool only.
 * get_str: *s points at len bytes inside g, NUL-terminated after them
 *          (a GGUF string may itself hold NUL bytes: trust len). */
int fp_gguf_get_u64(const fp_gguf *g, const char *key, uint64_t *out);
int fp_gguf_get_i64(const fp_gguf *g, const char *key, int64_t *out);
int fp_gguf_get_f64(const fp_gguf *g, const char *key, double *out);
int fp_gguf_get_bool(const fp_gguf *g, const char *key, int *out);
int fp_gguf_get_str(const fp_gguf *g, const char *key, const char **s, uint64_t *len);

/* An array: its element type, its count, and *data pointing at its
 * elements as the file stores them (packed little-endian values for the
 * numeric types and bool; for strings and nested arrays their GGUF
 * serialisation: use fp_gguf_arr_str, or walk nested arrays yourself).
 * Any out pointer may be NULL.  Returns 0, -ENOENT, or -EINVAL (not an
 * array), with a message. */
int fp_gguf_get_arr(const fp_gguf *g, const char *key, int *elem_type, uint64_t *n,
                    const void **data);
/* String i of a string array: *s points at len bytes inside g (not
 * NUL-terminated).  0, -ENOENT, -EINVAL (not a string array), -ERANGE (i). */
int fp_gguf_arr_str(const fp_gguf *g, const char *key, uint64_t i, const char **s,
                    uint64_t *len);

/* ---- tensors, in file order ---- */
uint64_t fp_gguf_n_tensors(const fp_gguf *g);
/* Tensor i, or NULL if out of range. */
const struct fp_gguf_tensor *fp_gguf_tensor(const fp_gguf *g, uint64_t i);
/* The tensor named name, or NULL (errno ENOENT, no message). */
const struct fp_gguf_tensor *fp_gguf_find_tensor(const fp_gguf *g, const char *name);

/* ---- ggml tensor types ---- */
/* ggml's type numbers (ggml.h); the gaps are types ggml retired. */
enum fp_ggml_type {
	FP_GGML_F32 = 0, FP_GGML_F16 = 1, FP_GGML_Q4_0 = 2, FP_GGML_Q4_1 = 3,
	FP_GGML_Q5_0 = 6, FP_GGML_Q5_1 = 7, FP_GGML_Q8_0 = 8, FP_GGML_Q8_1 = 9,
	FP_GGML_Q2_K = 10, FP_GGML_Q3_K = 11, FP_GGML_Q4_K = 12, FP_GGML_Q5_K = 13,
	FP_GGML_Q6_K = 14, FP_GGML_Q8_K = 15, FP_GGML_IQ2_XXS = 16, FP_GGML_IQ2_XS = 17,
	FP_GGML_IQ3_XXS = 18, FP_GGML_IQ1_S = 19, FP_GGML_IQ4_NL = 20, FP_GGML_IQ3_S = 21,
	FP_GGML_IQ2_S = 22, FP_GGML_IQ4_XS = 23, FP_GGML_I8 = 24, FP_GGML_I16 = 25,
	FP_GGML_I32 = 26, FP_GGML_I64 = 27, FP_GGML_F64 = 28, FP_GGML_IQ1_M = 29,
	FP_GGML_BF16 = 30, FP_GGML_TQ1_0 = 34, FP_GGML_TQ2_0 = 35, FP_GGML_MXFP4 = 39,
	FP_GGML_NVFP4 = 40, FP_GGML_Q1_0 = 41,
	FP_GGML_NTYPES = 42
};
/* ggml's name of a type ("f32", "q4_K", "iq2_xxs", ...); NULL if unknown
 * (including the numbers ggml retired: 4, 5, 31-33, 36-38). */
const char *fp_ggml_type_name(uint32_t type);
/* Values per block and bytes per block, as ggml.c's type_traits has them
 * (f32: 1 and 4; q8_0: 32 and 34; q4_K: 256 and 144).  Either out may be
 * NULL.  0, or -EINVAL for an unknown type. */
int fp_ggml_type_size(uint32_t type, uint32_t *block_elems, uint32_t *block_bytes);
/* Bytes of a tensor of this type and shape (ne[0] fastest, n_dims 0-4).
 * 0, or -EINVAL (unknown type), -EDOM (ne[0] not a multiple of the block)
 * or -EOVERFLOW. */
int fp_ggml_nbytes(uint32_t type, uint32_t n_dims, const uint64_t *ne, uint64_t *bytes);

/* The GGUF header of an image whose logical bytes are a GGUF file: a GGUF
 * opened directly, or an image packed from one ("format=gguf" in its
 * meta; the header is read from the image's chunks at fp_image_open).
 * NULL for any other image.  Lives as long as img. */
const fp_gguf *fp_image_gguf(const fp_image *img);

/* ---- writing GGUF (version 3) ---- */
/* The file is laid out as ggml writes it: header, metadata in the order
 * set, tensor infos in the order added, padding to the alignment, then
 * each tensor's data padded to the alignment.  So all metadata and every
 * tensor must be declared before the first data byte is written.  Writes
 * go to a temporary file beside path, renamed over it by finish only.
 * A writer is used by one thread at a time.
 * Every call returns 0, or a negative errno with fp_last_error(); after a
 * failure only fp_gguf_writer_abort is useful. */
typedef struct fp_gguf_writer fp_gguf_writer;

/* A writer of path (created as a temporary file beside it).
 * @return the writer, or NULL with errno (from creating the file, ENOMEM). */
fp_gguf_writer *fp_gguf_writer_create(const char *path);
/* general.alignment (a power of two; written as u32).  Before any tensor. */
int fp_gguf_writer_set_alignment(fp_gguf_writer *w, uint32_t alignment);
/* Scalar values.  A key is set once: -EEXIST the second time; -EINVAL for
 * an empty key, one over 65535 bytes, one set after the data began, or
 * general.alignment as anything but a power of two in a u32. */
int fp_gguf_set_u8(fp_gguf_writer *w, const char *key, uint8_t v);
int fp_gguf_set_i8(fp_gguf_writer *w, const char *key, int8_t v);
int fp_gguf_set_u16(fp_gguf_writer *w, const char *key, uint16_t v);
int fp_gguf_set_i16(fp_gguf_writer *w, const char *key, int16_t v);
int fp_gguf_set_u32(fp_gguf_writer *w, const char *key, uint32_t v);
int fp_gguf_set_i32(fp_gguf_writer *w, const char *key, int32_t v);
int fp_gguf_set_u64(fp_gguf_writer *w, const char *key, uint64_t v);
int fp_gguf_set_i64(fp_gguf_writer *w, const char *key, int64_t v);
int fp_gguf_set_f32(fp_gguf_writer *w, const char *key, float v);
int fp_gguf_set_f64(fp_gguf_writer *w, const char *key, double v);
int fp_gguf_set_bool(fp_gguf_writer *w, const char *key, int v);
int fp_gguf_set_str(fp_gguf_writer *w, const char *key, const char *s);
/* A numeric (or bool) array of n elements of elem_type, data in host
 * (little-endian) order. */
int fp_gguf_set_arr(fp_gguf_writer *w, const char *key, int elem_type, const void *data,
                    uint64_t n);
int fp_gguf_set_arr_str(fp_gguf_writer *w, const char *key, const char *const *s, uint64_t n);
/* Any array as GGUF serialises its n elements (nested arrays too): the
 * bytes are checked as the reader checks them. */
int fp_gguf_set_arr_raw(fp_gguf_writer *w, const char *key, int elem_type, uint64_t n,
                        const void *bytes, size_t len);
/* Declare a tensor (n_dims 1-4, ne[0] fastest).  data: its bytes, which
 * must stay valid until finish; NULL: they are streamed with
 * fp_gguf_writer_write, tensor after tensor in the order added (tensors
 * with data are written from it when the stream reaches them).  The
 * bytes are the caller's, in ggml's layout (a q8_0 block: fp16 scale,
 * 32 int8). */
int fp_gguf_writer_add_tensor(fp_gguf_writer *w, const char *name, uint32_t type,
                              uint32_t n_dims, const uint64_t *ne, const void *data);
/* The next n bytes of the streamed tensors.  The first call writes the
 * header: no metadata or tensor may be added after it. */
int fp_gguf_writer_write(fp_gguf_writer *w, const void *data, size_t n);
/* Write what is left, check every tensor got all its bytes, fsync and
 * rename over path.  Frees w, success or not.
 * @return 0, or -EINVAL (a tensor short of bytes), -EIO (an earlier write
 *         failed) or the errno of a failed write, fsync or rename; the
 *         destination is then left as it was. */
int fp_gguf_writer_finish(fp_gguf_writer *w);
/* Remove the temporary file and free w (NULL is fine). */
void fp_gguf_writer_abort(fp_gguf_writer *w);

/* ------------------------------------------------------------------ */
/* Regions: the pager                                                   */

enum fp_open_flags {
	FP_OPEN_BUFFERED = 1u << 1,  /* read through the page cache, not O_DIRECT */
	/* Bits 0, 2, 3 and 4 are the technique switches of
	 * <flexpage/flexpage_experimental.h>. */
};

struct fp_hooks;                 /* <flexpage/flexpage_experimental.h> */

struct fp_options {
	uint64_t budget;             /* max resident bytes; 0: the whole image */
	int loaders;                 /* loader threads, 1 to 64; 0: 4 */
	const char *policy;          /* eviction policy; NULL: "fifo" */
	unsigned flags;              /* enum fp_open_flags */
	int retries;                 /* extra attempts of a failed load; <0: 2 */
	int readahead;               /* the most read-ahead, in chunks (the depth used
	                                follows the measured load time and the loop's
	                                pace); 0: none; <0: 32 MiB worth (2-64) */
	const char *trace_path;      /* record an event trace there; NULL: none */
	/* Per chunk, 1 = preserve: loaded at open, never evicted, mlocked
	 * within lock_quota.  Copied by fp_open.  NULL: when the budget holds
	 * less than the image, fp_open preserves the chunks a balanced plan of
	 * its own chooses (fp_plan_make with no layer or read-share callbacks,
	 * 16 chunks kept for streaming), the configuration that measured best
	 * (bench/README.md); FP_OPEN_NO_PRESERVE preserves none. */
	const uint8_t *preserve;
	uint64_t lock_quota;         /* 0: what RLIMIT_MEMLOCK allows (all, for root) */
	/* A GGUF file opened directly: its chunk size (a power of two from
	 * 64K to 4M); 0: 2 MiB.  Images keep their own. */
	uint32_t chunk_size;
	const struct fp_hooks *hooks; /* test hooks (experimental); NULL: none */
	/* A payload read that has not returned after this long is given up:
	 * the loader is replaced, the load is tried again on another loader
	 * (`retries` times in all, with the failed reads), then the chunk is
	 * poisoned and its threads get SIGBUS naming the stall.  A read that
	 * returns after it was given up is dropped.  0: 10000 (10 s); <0:
	 * never give up (a read that never returns then hangs its fault). */
	int load_timeout_ms;
	/* Storage read rate (bytes/s, what the loaders' reads of this image
	 * get) and one core's zstd decode rate (decoded bytes/s): the costs
	 * by which fp_open chooses which stored form of a chunk to read (an
	 * image with both forms) and makes its own preservation plan.  0:
	 * measured at open by fp_image_probe_rates() when something depends
	 * on it (an image with compressed chunks or alternate forms), in
	 * under ~0.1 s; otherwise the planner's defaults.  fp_stats says
	 * which were measured. */
	double read_rate;
	double decode_rate;
	/* The most loaders that decode compressed chunks at once (the others
	 * wait to decode, their reads go on), so that decoding leaves the
	 * compute threads their cores: e.g. cores - compute threads, at least
	 * 1.  0: no limit.  The choice of forms and the plan count decoding
	 * as spread over the online cores less one, at least 1, and no more
	 * than this limit (docs/compression.md). */
	int decoders;
};

typedef struct fp_region fp_region;

/**
 * fp_open() - serve an image as a region of memory.
 * @opt: NULL for the defaults (a zeroed struct is not: its retries and
 *       readahead would be 0).
 *
 * Reserves and registers the region, starts its loaders (and the
 * process's fault handler thread, with the first region), and queues the
 * loads of the preserved chunks; it does not wait for them (fp_quiesce
 * does).  Every page of the region reads as the image's logical bytes:
 * a thread that touches a page not yet resident blocks until its chunk is
 * installed.
 *
 * @return the region; NULL with errno:
 *   EINVAL     loaders out of range, unknown flag bits, a budget below
 *              fp_min_budget(), preserved chunks that leave less than it,
 *              or a policy that runs in the simulator only
 *   ENOENT     no policy of that name (or no such file)
 *   EPERM, ENOSYS...  userfaultfd is not available (the message says how
 *              to enable it)
 *   the errors of fp_image_open(), of open(2) for the payload reads, of
 *   mmap(2), of registering with userfaultfd, of creating the trace file,
 *   of starting a thread (EAGAIN), and ENOMEM.
 * Any thread.  Blocks only on file and memory set-up.
 */
fp_region *fp_open(const char *path, const struct fp_options *opt);

/**
 * fp_close() - stop the loaders, unregister and unmap.  NULL is ignored.
 *
 * Precondition: the caller has stopped every thread that reads the region:
 * a read during or after close is not served (the kernel would map zero
 * pages, then the address is unmapped).  Blocks for an RCU grace period
 * and for the loads in flight to end.  Not from a policy or a hook.
 */
void fp_close(fp_region *r);

/**
 * fp_quiesce() - wait until r's loads in flight have settled.
 *
 * Returns at a moment when no load of r is queued or being loaded and the
 * handler is serving none of r's faults: every load started so far has
 * installed, staged, given up or poisoned its chunk, and its counters and
 * trace records are written.  Loads that later faults start are not
 * waited for.  Blocks.  From any thread but the pager's own (not from a
 * policy or a hook).
 */
void fp_quiesce(fp_region *r);

/** fp_region_image() - the image r serves; valid until fp_close(). */
const fp_image *fp_region_image(const fp_region *r);
/** fp_region_base() - the region's first byte (2 MiB aligned). */
const void *fp_region_base(const fp_region *r);
/** fp_region_size() - the region's size: the image's logical size. */
uint64_t fp_region_size(const fp_region *r);

/**
 * fp_tensor() - a tensor's first byte in the region.
 * @desc: if not NULL, set to the tensor's description (NULL if none).
 * @return the pointer, or NULL with errno ENOENT if there is no tensor of
 *         that name.  Does not touch the region (no fault).
 */
const void *fp_tensor(const fp_region *r, const char *name,
                      const struct fp_tensor_desc **desc);

/**
 * fp_set_budget() - change the budget while the loop runs.
 *
 * The new budget is published with RCU (the handler reads it without a
 * lock); a smaller one evicts down to it before returning.  Streaming
 * (staged read-ahead) turns on when the budget holds less than the image.
 * Blocks for an RCU grace period and for the evictions.
 * @return 0, or -EINVAL (below fp_min_budget()), -ENOMEM.
 * Any thread but the pager's own; calls on one region are serialised.
 */
int fp_set_budget(fp_region *r, uint64_t budget);

/**
 * fp_set_policy() - change the eviction policy while the loop runs.
 *
 * The new policy is told of every resident chunk, then published with RCU.
 * Blocks for an RCU grace period.
 * @return 0, or -ENOENT (no such policy), -EINVAL (it runs in the
 *         simulator only), -ENOMEM (its create hook failed).
 * Any thread but the pager's own.
 */
int fp_set_policy(fp_region *r, const char *name);

/**
 * fp_min_budget() - the smallest budget r accepts: two chunks (the one a
 * thread reads and the one it faults on next), one for a one-chunk image,
 * and the chunks r preserves, which are never evicted.
 */
uint64_t fp_min_budget(const fp_region *r);

/**
 * fp_region_unmap() - give part of the region back, as munmap(2) would.
 * @offset: a multiple of 4096 inside the region.
 * @len: bytes from offset, rounded up to pages, inside the region.
 *
 * The pages are unmapped at once, so the kernel may place other mappings
 * there, and the pager never maps, evicts, locks or poisons them again;
 * the rest of the region is served as before (a chunk with pages given
 * back is installed by copying its other pages, never moved).  Pages given
 * back before are skipped.  A thread waiting on one of the pages is woken
 * and meets the hole.  Reading a page given back is the caller's bug, as
 * after munmap.  fp_close() unmaps only what is left.
 * @return 0, or -EINVAL (not a page-aligned range of the region), -ENOMEM,
 *         or the errno of munmap(2).
 * Any thread, while the loop and the pager's threads run; not from a
 * policy or a hook.
 */
int fp_region_unmap(fp_region *r, uint64_t offset, uint64_t len);

/* ------------------------------------------------------------------ */
/* Eviction policies (docs/policies.md)                                 */

/* What a policy is given when it is created. */
struct fp_policy_env {
	uint32_t n_chunks;
	uint32_t chunk_size;
	const struct fp_chunk_desc *chunks;  /* the image's chunk table */
	uint64_t budget;                     /* at creation; it may change later */
};

/* A policy sees what the pager sees: loads, faults and evictions of
 * chunks, never reads of resident pages.  The live pager and the
 * simulator make the same calls in the same order; calls are serialised
 * (under the region's residency lock, from the handler and the loaders):
 * a hook must not block nor call back into the region.  Preserved
 * (locked) chunks are never shown to the policy. */
struct fp_policy_ops {
	const char *name;
	const char *summary;
	void *(*create)(const struct fp_policy_env *env);  /* NULL: out of memory */
	void (*destroy)(void *p);
	/* Chunk c became resident; demand: a thread was waiting on it. */
	void (*loaded)(void *p, uint32_t c, int demand);
	/* An access (a fault, or in the simulator a hit) to resident chunk c. */
	void (*touched)(void *p, uint32_t c);
	/* Chunk c left memory (whatever chose it). */
	void (*evicted)(void *p, uint32_t c);
	/* A resident chunk to evict; -1 if there is none. */
	int64_t (*victim)(void *p);
	/* Offline policies only: the whole access stream, before any other
	 * call.  A policy with this hook runs in the simulator only. */
	void (*future)(void *p, const uint32_t *access, uint64_t n);
};

/**
 * fp_policy_register() - make a policy available by its name, to
 * fp_open(), fp_set_policy() and the simulator.
 * @ops: must outlive every use (a static struct).
 * @return 0, or -EINVAL (a hook but future is missing), -EEXIST (the name
 *         is taken), -ENOSPC (32 policies are registered).
 */
int fp_policy_register(const struct fp_policy_ops *ops);

/**
 * fp_policy_find() - the policy of this name.
 * @return its ops, or NULL if none is registered (not an error).
 */
const struct fp_policy_ops *fp_policy_find(const char *name);

/**
 * fp_policy_names() - the registered policies' names.
 * @names: filled with up to n names (the ops' own strings), in
 *         registration order; may be NULL when n is 0.
 * @return how many policies are registered (more than n: some left out).
 */
size_t fp_policy_names(const char **names, size_t n);

/* ------------------------------------------------------------------ */
/* Simulator                                                            */

struct fp_sim_result {
	uint64_t accesses, hits, loads, evictions;
	uint64_t bytes_read;         /* stored bytes of the loaded chunks */
	uint64_t bytes_decoded;      /* logical bytes of loaded zstd chunks */
	uint64_t peak_resident;
};

/**
 * fp_simulate() - replay an access stream (chunk indices) through a
 * policy under a budget, with the live pager's accounting (a chunk takes
 * its data rounded up to pages).
 * @env: chunks may be NULL (every chunk then takes chunk_size).
 * @return 0 with *out, or -EINVAL (a budget below two chunks, an access
 *         past n_chunks), -ENOMEM.
 */
int fp_simulate(const struct fp_policy_env *env, const struct fp_policy_ops *policy,
                const uint32_t *access, uint64_t n, struct fp_sim_result *out);

/* ------------------------------------------------------------------ */
/* Statistics                                                           */

enum fp_stage {
	FP_STAGE_FAULT,      /* fault read by the handler -> chunk installed */
	FP_STAGE_WAIT,       /* queued, waiting for a loader */
	FP_STAGE_READ,       /* payload read */
	FP_STAGE_DECOMPRESS, /* checksum + decode */
	FP_STAGE_INSTALL,    /* UFFDIO_MOVE / UFFDIO_COPY */
	FP_STAGE_OVERHEAD,   /* a demand fault's service time beyond its read and decode */
	FP_NSTAGES
};

#define FP_HIST_BUCKETS 256
struct fp_hist {
	uint64_t count, sum_ns, max_ns;
	uint64_t bucket[FP_HIST_BUCKETS]; /* log-linear: 8 buckets per power of 2 */
};

struct fp_stats {
	uint64_t faults;             /* fault messages served */
	uint64_t demand_loads, prefetch_loads;
	uint64_t evictions, retries, poisoned;
	uint64_t stalls;             /* payload reads given up after fp_options.load_timeout_ms */
	uint64_t huge_installs, small_installs;
	uint64_t staged_installs;    /* faults that installed a staged chunk (position signals) */
	uint64_t staged_dropped;     /* staged chunks dropped as mispredicted */
	uint64_t bytes_read;         /* stored bytes read from the file */
	uint64_t bytes_decompressed; /* decoded bytes out of zstd */
	uint64_t bytes_installed;
	uint64_t resident_bytes, peak_resident_bytes, budget;
	uint64_t trace_events, trace_dropped;
	uint64_t preserved_bytes, locked_bytes; /* resident preserved chunks; mlocked */
	uint32_t readahead_depth;    /* chunks the latest fault's read-ahead covered
	                                (from the measured load time and loop pace) */
	struct fp_hist lat[FP_NSTAGES];
	/* The rates fp_open chose forms and planned by (bytes/s; given in
	 * fp_options, measured at open, or the planner's defaults), which of
	 * them were measured (FP_RATE_READ | FP_RATE_DECODE bits) and the
	 * probe's time. */
	double read_rate, decode_rate;
	uint32_t rates_measured;
	uint32_t compressed_chunks;  /* chunks read in a compressed form */
	uint32_t alt_forms_chosen;   /* chunks read in the form the file's chunk table
	                                does not list first (version 4 images) */
	uint64_t probe_ns;
};

#define FP_RATE_READ 1u
#define FP_RATE_DECODE 2u

/**
 * fp_get_stats() - r's counters and latency histograms, now.
 *
 * The counters of a load are raised before its install wakes the waiting
 * threads, so a thread that read a page sees its load counted.  Takes the
 * residency lock briefly.  Any thread but the pager's own.
 */
void fp_get_stats(const fp_region *r, struct fp_stats *out);

/** fp_hist_quantile() - the q-quantile (0..1) of a histogram, in ns (0 if empty). */
uint64_t fp_hist_quantile(const struct fp_hist *h, double q);

/** fp_stage_name() - "fault", "wait", ... for an enum fp_stage; "?" otherwise. */
const char *fp_stage_name(int stage);

/** fp_print_stats() - the statistics as a few lines of text and a latency table. */
void fp_print_stats(FILE *f, const struct fp_stats *s);

/* ------------------------------------------------------------------ */
/* Event trace (docs/trace.md; the record layout and the reader are in  */
/* <flexpage/flexpage_experimental.h>)                                  */

enum fp_mark_kind {
	FP_MARK_TOKEN = 1,   /* a token's forward pass begins; value: token index */
	FP_MARK_TOKEN_END = 2,
};

/**
 * fp_trace_mark() - record a mark (for example a token boundary) in r's
 * trace; nothing if r records none.  Lock-free: a record in the calling
 * thread's own ring (a full ring drops it and counts it).  Any thread.
 */
void fp_trace_mark(fp_region *r, uint32_t kind, uint64_t value);

/* ------------------------------------------------------------------ */
/* Failure reporting                                                    */

/**
 * fp_install_fault_reporter() - report accesses to poisoned data.
 *
 * Installs a SIGBUS (and SIGSEGV, which a poisoned chunk raises on kernels
 * without UFFDIO_POISON) handler that, for an access to a chunk that
 * failed for good, writes the image, tensor, chunk and reason on stderr.
 * Then, and for every other signal, it calls the handler that was
 * installed before, or lets the default action kill the process.  The
 * handler is async-signal-safe and knows every open region.  Calling it
 * again does nothing.
 * @return 0, or the errno of sigaction(2), negated.
 */
int fp_install_fault_reporter(void);

/**
 * fp_describe_poison() - why the chunk holding addr was poisoned, as the
 * reporter writes it (a line ending in a newline, cut to n bytes).
 * @return 0, or -ENOENT if addr is in no open region or its chunk is not
 *         poisoned (not a failure: no message).  Async-signal-safe.
 */
int fp_describe_poison(const void *addr, char *buf, size_t n);

#ifdef __cplusplus
}
#endif
#endif
