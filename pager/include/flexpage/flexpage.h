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
};

/**
 * fp_image_open() - read and validate an image's header and tables.
 * @path: the image file.
 *
 * Every field a later step trusts (offsets, lengths, codecs, types, the
 * table checksums) is checked; the payloads are not read.
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
	 * within lock_quota.  NULL: none.  Copied by fp_open. */
	const uint8_t *preserve;
	uint64_t lock_quota;         /* 0: what RLIMIT_MEMLOCK allows (all, for root) */
	const struct fp_hooks *hooks; /* test hooks (experimental); NULL: none */
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
 * thread reads and the one it faults on next), one for a one-chunk image.
 */
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
