/* libflexpage, the experimental part: test hooks, the technique switches,
 * the event trace's record layout and reader, and the preservation
 * planner.  Unlike <flexpage/flexpage.h>, nothing here keeps its meaning
 * or layout from one release to the next: it serves the tests, the
 * benchmarks and the flexpage tool, and whoever experiments with the
 * pager.  Include it instead of (or after) <flexpage/flexpage.h>. */
#ifndef FLEXPAGE_FLEXPAGE_EXPERIMENTAL_H
#define FLEXPAGE_FLEXPAGE_EXPERIMENTAL_H

#include <flexpage/flexpage.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ */
/* Technique switches (fp_options.flags), for ablations                 */

enum fp_open_technique_flags {
	FP_OPEN_NO_HUGE = 1u << 0,   /* install with UFFDIO_COPY of 4 KiB pages only */
	FP_OPEN_NO_LOCK = 1u << 2,   /* keep preserved chunks resident without mlock */
	FP_OPEN_NO_STAGE = 1u << 3,  /* read-ahead installs at once (no position signal) */
	FP_OPEN_NO_PREDICT = 1u << 4,/* read-ahead in file order, not the learned order */
	FP_OPEN_NO_PRESERVE = 1u << 5,/* no preservation plan of fp_open's own when
	                                fp_options.preserve is NULL */
};

/* ------------------------------------------------------------------ */
/* Test hooks (fp_options.hooks)                                        */

/* Fault injection: called by a loader after every payload read, with the
 * bytes read and the result (a byte count or a negative errno), either of
 * which it may change (-EIO, a short count, a flipped byte).  It may also
 * block, for as long as it likes: to the pager that is a read that has
 * not returned, given up after fp_options.load_timeout_ms (what it then
 * returns is dropped).  Called from the region's loader threads, several
 * at once. */
typedef void (*fp_read_hook)(void *ctx, uint32_t chunk, void *buf, size_t len,
                             long *result);

struct fp_hooks {
	fp_read_hook read;
	void *read_ctx;
};

/* ------------------------------------------------------------------ */
/* The event trace file (docs/trace.md)                                 */

#define FP_TRACE_MAGIC "FPTRACE1"
#define FP_TRACE_VERSION 1u

enum fp_event_type {
	FP_EV_FAULT = 1,     /* flags: enum fp_fault_seen, or FP_FAULT_PADDING; a: faulting
	                        tid; b: logical offset */
	FP_EV_LOAD = 2,      /* at install; flags: FP_LOAD_*; a: read_ns | decompress_ns << 32;
	                        b: install_ns | wait_ns << 32 */
	FP_EV_EVICT = 3,
	FP_EV_POISON = 4,
	FP_EV_MARK = 5,      /* fp_trace_mark(): flags: kind; a: value; b: the caller's tid */
	FP_EV_SETTINGS = 6,  /* a: new budget */
	FP_EV_STAGE = 7,     /* read-ahead staged a chunk (loaded, not installed);
	                        a: read_ns | decompress_ns << 32; b: wait_ns << 32 */
	FP_EV_DROP = 8,      /* a staged chunk dropped: the loop went elsewhere */
	FP_EV_TYPES
};

/* A fault record's flags: the state the fault found its chunk in. */
enum fp_fault_seen {
	FP_FAULT_EMPTY = 0,      /* not in memory: the fault starts a demand load */
	FP_FAULT_LOADING = 1,    /* queued or being loaded: the fault waits for it */
	FP_FAULT_RESIDENT = 2,   /* installed already (the message raced the install) */
	FP_FAULT_EVICTING = 3,   /* its pages were going: loaded again */
	FP_FAULT_POISONED = 4,   /* failed for good: SIGBUS */
	FP_FAULT_STAGED = 5,     /* read ahead and staged: installed at once */
	FP_FAULT_SEEN_MAX = FP_FAULT_STAGED
};
/* A fault in a chunk's padding, answered with zero pages. */
#define FP_FAULT_PADDING 8u

/* A load record's flags. */
#define FP_LOAD_DEMAND 1u        /* a thread was waiting on it */
#define FP_LOAD_FROM_STAGE 4u    /* a fault installed a chunk read-ahead had staged */

/* A record's thread: 0 the handler, 1.. the loaders, this for the others. */
#define FP_TRACE_OTHER_THREAD 0xffffu

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
	uint16_t thread;             /* 0 handler, 1.. loaders, FP_TRACE_OTHER_THREAD */
	uint32_t chunk;
	uint64_t a, b;
};

typedef struct fp_trace fp_trace;

/**
 * fp_trace_open() - read a trace file whole.
 *
 * Validates the header and every record's framing, type and chunk, and
 * sorts the records by time (stably: one thread's records keep their
 * order).
 * @return the trace, to be closed with fp_trace_close(); NULL with errno:
 *   errno of fopen(2)  the file cannot be opened
 *   EBADMSG    not a trace, a corrupt header or record, a truncated file
 *   ENOTSUP    another trace version or record size
 *   EIO, ENOMEM
 */
fp_trace *fp_trace_open(const char *path);
/** fp_trace_header() - the trace's header; valid until fp_trace_close(). */
const struct fp_trace_header *fp_trace_header(const fp_trace *t);
/** fp_trace_count() - the number of records. */
uint64_t fp_trace_count(const fp_trace *t);
/** fp_trace_events() - all records, sorted by time. */
const struct fp_trace_event *fp_trace_events(const fp_trace *t);
/** fp_trace_close() - free a trace.  NULL is ignored. */
void fp_trace_close(fp_trace *t);

/**
 * fp_trace_accesses() - the chunk access stream of a trace, for
 * fp_simulate(): its faults in time order, padding faults and immediate
 * repeats dropped.
 * @img: may be NULL; if given it tells padding, and must match the trace.
 * @access: set to a malloc'ed array the caller frees; @n: its length.
 * @return 0, or -EINVAL (the image does not match), -ENOMEM.
 */
int fp_trace_accesses(const fp_trace *t, const fp_image *img, uint32_t **access, uint64_t *n);

/* ------------------------------------------------------------------ */
/* Rates: what reading and decoding cost on this machine                */

struct fp_rates {
	double read_bytes_per_s;     /* stored bytes/s of the image's payload reads */
	double decode_bytes_per_s;   /* decoded bytes/s of one core (thread CPU time) */
	uint32_t measured;           /* FP_RATE_READ | FP_RATE_DECODE: which were measured */
	uint32_t reads, decodes;     /* payloads read and decoded to measure them */
	uint64_t read_bytes;         /* stored bytes read */
	uint64_t probe_ns;           /* the probe's wall time */
};

/**
 * fp_image_probe_rates() - measure the storage read rate and one core's
 * decode rate of an image, in a fraction of a second.
 * @flags: FP_RATE_READ and/or FP_RATE_DECODE: what to measure;
 *         FP_OPEN_BUFFERED << 8 reads through the page cache, as a region
 *         opened so does.
 *
 * Reads whole payloads as the loaders do (one O_DIRECT pread of each,
 * unless buffered or the file system has no O_DIRECT) of chunks spread
 * over the image, largest form first, for about 50 ms of reading (at
 * least one payload, at most 16); the read rate is the median of the
 * reads' stored bytes over wall time, so that one read held up does not
 * set it.  It decodes the compressed payloads among them
 * (or, if none is, reads the first compressed one) for at most about 30
 * ms of the thread's CPU time; the decode rate is decoded bytes per CPU second, what one core
 * gives whatever else runs.  A rate that cannot be measured (no
 * compressed chunk to decode) is left 0 and its bit clear.
 * @return 0 with *out, or a negative errno: of open(2), -EIO (a read
 *         failed), -EBADMSG (a payload does not decode), -ENOMEM.
 * Any thread; blocks on the reads.
 */
int fp_image_probe_rates(const fp_image *img, unsigned flags, struct fp_rates *out);

/* ------------------------------------------------------------------ */
/* Preservation planning (FlexInfer's tensor preservation)              */

enum fp_plan_order {
	FP_PLAN_BY_BENEFIT = 0,      /* most I/O and decode time saved per resident byte */
	FP_PLAN_ATTENTION_FIRST = 1, /* attention tensors before the others of the layer */
};

struct fp_plan_options {
	uint64_t budget;             /* resident bytes in all */
	uint64_t stream_bytes;       /* of it, kept for streaming the rest (at least two chunks) */
	/* A chunk's benefit is the streaming time a token its stored form
	 * takes: the larger of its read at read_bytes_per_s and its decode at
	 * decode_bytes_per_s a core over the cores decoding gets (the
	 * pipeline model of docs/compression.md), in the form fp_open reads
	 * at the same rates and decoders. */
	double read_bytes_per_s;     /* measured storage rate; 0: 2e9 */
	double decode_bytes_per_s;   /* measured zstd rate; 0: 1.2e9 */
	int balanced;                /* same share of every layer (balanced locking);
	                                0: the first layers first */
	int order;                   /* enum fp_plan_order, within a layer */
	/* The layer a tensor belongs to (0, 1, ...), or -1 for the tensors
	 * outside the layers (embeddings, final norm, classifier), which form
	 * one more group; *attention: set to 1 for an attention tensor (for
	 * FP_PLAN_ATTENTION_FIRST), left 0 otherwise.  The pager knows no
	 * model's names: the caller does.  NULL: every tensor in one group. */
	int (*tensor_layer)(const struct fp_tensor_desc *t, int *attention, void *ctx);
	void *tensor_layer_ctx;
	/* The share of a tensor the loop reads every token (default 1): an
	 * embedding table looked up one row a token reads one chunk of it;
	 * 0 means never worth preserving.  It weighs both the benefit of a
	 * chunk and, when balanced, its group's share of the capacity.
	 * NULL: every tensor is read whole. */
	double (*read_share)(const struct fp_tensor_desc *t, void *ctx);
	void *read_share_ctx;
	/* As fp_options.decoders: the cores decoding gets are the online
	 * cores less one, at least 1, and no more than decoders if > 0. */
	int decoders;
};

struct fp_plan {
	uint32_t n_chunks, n_preserved;
	uint8_t *preserve;           /* per chunk: 1 = keep resident (fp_options.preserve) */
	uint64_t preserved_bytes;    /* resident bytes the preserved chunks take */
	uint64_t stream_bytes;       /* of the budget, left for streaming (0: it
	                                holds every chunk, all kept) */
	uint64_t streamed_stored;    /* stored bytes read a token for the others */
	double saved_ns;             /* streaming time a token the plan saves */
	double streamed_ns;          /* streaming time a token left to stream */
	uint64_t streamed_decoded;   /* of the bytes streamed a token, those decoded
	                                (read in a compressed form) */
};

/**
 * fp_plan_make() - choose the chunks to preserve within budget -
 * stream_bytes, or within the whole budget when it holds every chunk
 * (nothing then streams).  Within each group a 0/1 knapsack, exact by
 * dynamic programming when small, greedy by benefit per byte otherwise.
 * @return 0 with *out (free it with fp_plan_free()), or -ENOMEM.
 * Pure: reads only the image's tables.
 */
int fp_plan_make(const fp_image *img, const struct fp_plan_options *o, struct fp_plan *out);
/** fp_plan_free() - free a plan's mask and zero it. */
void fp_plan_free(struct fp_plan *p);

/**
 * fp_plan_llama_layer() - fp_plan_options.tensor_layer for llama.cpp's
 * tensor names (GGUF's, and flexpage's images of llama models):
 * "blk.N.*" is layer N, an attention tensor when "attn_" follows "blk.N.".
 * @ctx: unused.
 * @return N, or -1 for a tensor of no layer (embeddings, final norm,
 * classifier).  Pure; any thread.
 */
int fp_plan_llama_layer(const struct fp_tensor_desc *t, int *attention, void *ctx);
/**
 * fp_plan_llama_read_share() - fp_plan_options.read_share for llama.cpp's
 * tensor names, with read_share_ctx the fp_image: "token_embd.weight" of a
 * model with a classifier of its own ("output.weight", and no meta
 * shared_classifier=1) is looked up one row a token, one chunk of it.
 * @return one chunk's share of that tensor (at most 1), else 1 (read
 * whole).  Reads only the image's tables; any thread.
 */
double fp_plan_llama_read_share(const struct fp_tensor_desc *t, void *img);

#ifdef __cplusplus
}
#endif
#endif
