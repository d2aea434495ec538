/* libflexpage: a userfaultfd pager for model weights.
 *
 * An image file (see docs/format.md) holds named tensors cut into chunks,
 * each stored raw or zstd-compressed with a checksum.  fp_open() reserves a
 * virtual region the size of the image's logical layout and serves every
 * page of it on demand: a fault loads the chunk that holds it, verifies and
 * decompresses it and installs it whole, within a budget of resident bytes.
 * The loop that reads the weights sees only plain pointers.
 *
 * Errors: a function that fails returns NULL or -1 and leaves a message that
 * names the file and the field in fp_last_error() (per thread).
 */
#ifndef FLEXPAGE_FLEXPAGE_H
#define FLEXPAGE_FLEXPAGE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The message of the calling thread's last failure. */
const char *fp_last_error(void);

/* ------------------------------------------------------------------ */
/* Image format                                                         */

#define FP_IMAGE_MAGIC "FLEXPAGE"
#define FP_IMAGE_VERSION 2u        /* 1 (tensors on chunk boundaries) is read too */
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
};

const char *fp_type_name(uint32_t type);      /* "f32", ... or NULL */
int fp_type_parse(const char *name);          /* -1 if unknown */
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
typedef struct fp_trace fp_trace;

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

/* Read and validate an image's header and tables (not the payloads).  A
 * GGUF file opens as a direct image (FP_IMAGE_DIRECT) of 2 MiB chunks:
 * its tensors under the file's names, with ggml's type numbers, at their
 * file offsets.  NULL on failure, with errno and fp_last_error(). */
fp_image *fp_image_open(const char *path);
/* fp_image_open, cutting a GGUF into chunks of chunk_size bytes (a power of
 * two from FP_CHUNK_MIN to FP_CHUNK_MAX; 0: 2 MiB).  An image keeps its own
 * chunk size.  Thread-safe (each call opens its own file). */
fp_image *fp_image_open_chunk(const char *path, uint32_t chunk_size);
void fp_image_close(fp_image *img);
const struct fp_image_info *fp_image_info(const fp_image *img);
const struct fp_tensor_desc *fp_image_tensor(const fp_image *img, uint32_t i);
const struct fp_tensor_desc *fp_image_find(const fp_image *img, const char *name);
const struct fp_chunk_desc *fp_image_chunk(const fp_image *img, uint32_t i);
/* The tensor that holds logical offset off, or NULL (padding). */
const struct fp_tensor_desc *fp_image_tensor_at(const fp_image *img, uint64_t off);
/* Value of a meta key, copied into buf; -1 if absent. */
int fp_image_meta(const fp_image *img, const char *key, char *buf, size_t n);
/* Read, verify and decode chunk i into dst (chunk_size bytes; the part past
 * logical_len is zeroed).  Buffered I/O; for tools, not the pager. */
int fp_image_read_chunk(const fp_image *img, uint32_t i, void *dst);

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
};

typedef struct fp_writer fp_writer;

/* Writes go to a temporary file beside path; only fp_writer_finish()
 * renames it over path, so a failure never harms an existing file. */
fp_writer *fp_writer_create(const char *path, const struct fp_writer_options *opt);
int fp_writer_set_meta(fp_writer *w, const char *meta);
int fp_writer_begin_tensor(fp_writer *w, const char *name, uint32_t type,
                           uint32_t ndim, const uint64_t *shape);
int fp_writer_write(fp_writer *w, const void *data, size_t n);
int fp_writer_end_tensor(fp_writer *w);
/* Verbatim writers only: a tensor of the file at logical offset `offset`
 * (its bytes come with fp_writer_write, in file order, before or after the
 * call).  Any order; fp_writer_finish sorts them and fails on overlaps or
 * tensors past the bytes written.  type: a ggml type (fp_ggml_type_size)
 * or FP_TYPE_U8.  Returns 0, or -1 with fp_last_error(). */
int fp_writer_add_tensor_at(fp_writer *w, const char *name, uint32_t type, uint32_t ndim,
                            const uint64_t *shape, uint64_t offset);
int fp_writer_finish(fp_writer *w);   /* frees w */
void fp_writer_abort(fp_writer *w);   /* removes the temporary file, frees w */

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
	FP_OPEN_NO_HUGE = 1u << 0,   /* install with UFFDIO_COPY of 4 KiB pages only */
	FP_OPEN_BUFFERED = 1u << 1,  /* read through the page cache, not O_DIRECT */
	FP_OPEN_NO_LOCK = 1u << 2,   /* keep preserved chunks resident without mlock */
	FP_OPEN_NO_STAGE = 1u << 3,  /* read-ahead installs at once (no position signal) */
	FP_OPEN_NO_PREDICT = 1u << 4,/* read-ahead in file order, not the learned order */
};

/* Fault injection seam: called after every payload read with the bytes
 * read; it may change them, or the result (e.g. -EIO, a short count). */
typedef void (*fp_read_hook)(void *ctx, uint32_t chunk, void *buf,
                             size_t len, long *result);

struct fp_options {
	uint64_t budget;             /* max resident bytes; 0: the whole image */
	int loaders;                 /* loader threads; 0: 4 */
	const char *policy;          /* eviction policy; NULL: "fifo" */
	unsigned flags;              /* enum fp_open_flags */
	int retries;                 /* extra attempts of a failed load; <0: 2 */
	int readahead;               /* the most read-ahead, in chunks (the depth used
	                                follows the measured load time and the loop's
	                                pace); 0: none; <0: 32 MiB worth (2-64) */
	fp_read_hook read_hook;
	void *read_hook_ctx;
	const char *trace_path;      /* record an event trace there; NULL: none */
	/* Per chunk, 1 = preserve: loaded at open, never evicted, mlocked
	 * within lock_quota (fp_plan_make chooses them).  NULL: none. */
	const uint8_t *preserve;
	uint64_t lock_quota;         /* 0: what RLIMIT_MEMLOCK allows (all, for root) */
	/* A GGUF file opened directly: its chunk size (a power of two from
	 * 64K to 4M); 0: 2 MiB.  Images keep their own. */
	uint32_t chunk_size;
};

typedef struct fp_region fp_region;

fp_region *fp_open(const char *path, const struct fp_options *opt);
/* Stop the loaders, unregister and unmap.  The caller must have stopped
 * every thread that reads the region: a read after close is a crash. */
void fp_close(fp_region *r);

const fp_image *fp_region_image(const fp_region *r);
const void *fp_region_base(const fp_region *r);
uint64_t fp_region_size(const fp_region *r);
/* Pointer to a tensor's first byte in the region; NULL if no such name. */
const void *fp_tensor(const fp_region *r, const char *name,
                      const struct fp_tensor_desc **desc);

/* Change settings while the loop runs.  A smaller budget evicts down to it. */
int fp_set_budget(fp_region *r, uint64_t budget);
int fp_set_policy(fp_region *r, const char *name);
/* The smallest budget fp_open accepts for this image and options. */
uint64_t fp_min_budget(const fp_region *r);

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
 * simulator make the same calls in the same order; calls are serialised.
 * Preserved (locked) chunks are never shown to the policy. */
struct fp_policy_ops {
	const char *name;
	const char *summary;
	void *(*create)(const struct fp_policy_env *env);
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

/* Make a policy available by its name, to fp_open, fp_set_policy and the
 * simulator.  The ops must outlive every use; -1 if the name is taken. */
int fp_policy_register(const struct fp_policy_ops *ops);
const struct fp_policy_ops *fp_policy_find(const char *name);
/* Registered policy names, NULL-terminated. */
const char *const *fp_policy_names(void);

/* ------------------------------------------------------------------ */
/* Simulator                                                            */

struct fp_sim_result {
	uint64_t accesses, hits, loads, evictions;
	uint64_t bytes_read;         /* stored bytes of the loaded chunks */
	uint64_t bytes_decoded;      /* logical bytes of loaded zstd chunks */
	uint64_t peak_resident;
};

/* Replay an access stream (chunk indices) through a policy under a budget,
 * with the live pager's accounting (a chunk takes its data rounded up to
 * pages).  Returns -1 with fp_last_error() on bad arguments. */
int fp_simulate(const struct fp_policy_env *env, const struct fp_policy_ops *policy,
                const uint32_t *access, uint64_t n, struct fp_sim_result *out);
/* The chunk access stream of a trace: its faults in time order, padding
 * faults and immediate repeats dropped.  img (may be NULL) tells padding;
 * the caller frees *access. */
int fp_trace_accesses(const fp_trace *t, const fp_image *img, uint32_t **access, uint64_t *n);

/* ------------------------------------------------------------------ */
/* Preservation planning (FlexInfer's tensor preservation)              */

enum fp_plan_order {
	FP_PLAN_BY_BENEFIT = 0,      /* most I/O and decode time saved per resident byte */
	FP_PLAN_ATTENTION_FIRST = 1, /* attention tensors before the feed-forward ones */
};

struct fp_plan_options {
	uint64_t budget;             /* resident bytes in all */
	uint64_t stream_bytes;       /* of it, kept for streaming the rest (at least two chunks) */
	double read_bytes_per_s;     /* measured storage rate; 0: 2e9 */
	double decode_bytes_per_s;   /* measured zstd rate; 0: 1.2e9 */
	int balanced;                /* same share of every layer (balanced locking);
	                                0: the first layers first */
	int order;                   /* enum fp_plan_order, within a layer */
	/* The share of a tensor the loop reads every token (default 1): an
	 * embedding table looked up one row a token reads one chunk of it;
	 * 0 means never worth preserving.  It weighs both the benefit of a
	 * chunk and, when balanced, its group's share of the capacity.
	 * NULL: every tensor is read whole. */
	double (*read_share)(const struct fp_tensor_desc *t, void *ctx);
	void *read_share_ctx;
};

struct fp_plan {
	uint32_t n_chunks, n_preserved;
	uint8_t *preserve;           /* per chunk: 1 = keep resident */
	uint64_t preserved_bytes;    /* resident bytes the preserved chunks take */
	uint64_t stream_bytes;       /* of the budget, left for streaming (0: it
	                                holds every chunk, all kept) */
	uint64_t streamed_stored;    /* stored bytes read a token for the others */
	double saved_ns;             /* read + decode time a token the plan saves */
	double streamed_ns;          /* read + decode time a token left to stream */
};

/* Choose the chunks to preserve within budget - stream_bytes, or within
 * the whole budget when it holds every chunk (nothing then streams).
 * Layers are the tensors named "blk.N.*"; other tensors form one more
 * group. */
int fp_plan_make(const fp_image *img, const struct fp_plan_options *o, struct fp_plan *out);
void fp_plan_free(struct fp_plan *p);

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
};

void fp_get_stats(const fp_region *r, struct fp_stats *out);
uint64_t fp_hist_quantile(const struct fp_hist *h, double q); /* ns */
const char *fp_stage_name(int stage);
void fp_print_stats(FILE *f, const struct fp_stats *s);

/* ------------------------------------------------------------------ */
/* Event trace (docs/trace.md)                                          */

#define FP_TRACE_MAGIC "FPTRACE1"
#define FP_TRACE_VERSION 1u

enum fp_event_type {
	FP_EV_FAULT = 1,     /* flags: chunk state seen, or FP_FAULT_PADDING; a: faulting tid;
	                        b: logical offset */
	FP_EV_LOAD = 2,      /* at install; flags bit 0: demand, FP_LOAD_FROM_STAGE: a fault
	                        installed a chunk read-ahead had staged; a: read_ns |
	                        decompress_ns << 32; b: install_ns | wait_ns << 32 */
	FP_EV_EVICT = 3,
	FP_EV_POISON = 4,
	FP_EV_MARK = 5,      /* fp_trace_mark(): flags: kind; a: value; thread: the caller's tid */
	FP_EV_SETTINGS = 6,  /* a: new budget */
	FP_EV_STAGE = 7,     /* read-ahead staged a chunk (loaded, not installed);
	                        a: read_ns | decompress_ns << 32; b: wait_ns << 32 */
	FP_EV_DROP = 8,      /* a staged chunk dropped: the loop went elsewhere */
	FP_EV_TYPES
};

#define FP_LOAD_FROM_STAGE 4u

/* A fault in a chunk's padding, answered with zero pages. */
#define FP_FAULT_PADDING 8u

enum fp_mark_kind {
	FP_MARK_TOKEN = 1,   /* a token's forward pass begins; value: token index */
	FP_MARK_TOKEN_END = 2,
};

struct fp_trace_header {
	char magic[8];
	uint32_t version;
	uint32_t record_size;        /* 32 */
	uint64_t start_ns;           /* CLOCK_MONOTONIC of t = 0 */
	uint64_t budget;
	uint64_t logical_size;
	uint32_t chunk_size;
	uint32_t n_chunks;
	uint32_t loaders;
	uint32_t readahead;
	char policy[32];
	char image[192];
};

struct fp_trace_event {
	uint64_t t_ns;               /* since start_ns */
	uint8_t type;                /* enum fp_event_type */
	uint8_t flags;
	uint16_t thread;             /* 0 handler, 1.. loaders, 0xffff other */
	uint32_t chunk;
	uint64_t a, b;
};

/* Record a mark (for example a token boundary) in r's trace, if any. */
void fp_trace_mark(fp_region *r, uint32_t kind, uint64_t value);

/* Read a trace: validates the header and the records' framing and types. */
fp_trace *fp_trace_open(const char *path);
const struct fp_trace_header *fp_trace_header(const fp_trace *t);
uint64_t fp_trace_count(const fp_trace *t);
/* All events, sorted by time. */
const struct fp_trace_event *fp_trace_events(const fp_trace *t);
void fp_trace_close(fp_trace *t);

/* ------------------------------------------------------------------ */
/* Failure reporting                                                    */

/* Install a SIGBUS handler that, for an access to a poisoned chunk, prints
 * the image, tensor, chunk and reason on stderr, then lets the signal kill
 * the process.  Other SIGBUS and SIGSEGV are left to the default action. */
void fp_install_fault_reporter(void);
/* Describe why the chunk holding addr was poisoned; -1 if it was not. */
int fp_describe_poison(const void *addr, char *buf, size_t n);

#ifdef __cplusplus
}
#endif
#endif
