/* flexpage trace: what a recorded event trace says, as a model built once
 * (cmd_trace.c) and read by the summary (trace_summary.c), the Chrome
 * trace-event writer (trace_chrome.c) and the plots (trace_plot.c).
 * docs/trace-tool.md defines every derived quantity. */
#ifndef FLEXPAGE_TOOL_TRACE_TOOL_H
#define FLEXPAGE_TOOL_TRACE_TOOL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <flexpage/flexpage_experimental.h>

/* The trace's thread field: 0 the handler, 1.. loaders, this for others. */
#define TT_OTHER_THREAD FP_TRACE_OTHER_THREAD

/* A load record's stage times. */
static inline uint64_t tt_read_ns(const struct fp_trace_event *e) { return e->a & 0xffffffffu; }
static inline uint64_t tt_decomp_ns(const struct fp_trace_event *e) { return e->a >> 32; }
static inline uint64_t tt_install_ns(const struct fp_trace_event *e) { return e->b & 0xffffffffu; }
static inline uint64_t tt_wait_ns(const struct fp_trace_event *e) { return e->b >> 32; }
/* A record that read a chunk: a load that did its own read, or a staging
 * (read-ahead read and decoded it; the load that installs it later carries
 * zero read, decode and wait times). */
static inline int tt_did_read(const struct fp_trace_event *e)
{
	return e->type == FP_EV_STAGE || (e->type == FP_EV_LOAD && !(e->flags & FP_LOAD_FROM_STAGE));
}
/* When the loader started on it: t - install - decompress - read. */
static inline uint64_t tt_load_start(const struct fp_trace_event *e)
{
	uint64_t busy = tt_read_ns(e) + tt_decomp_ns(e) + tt_install_ns(e);
	return busy > e->t_ns ? 0 : e->t_ns - busy;
}

/* One demand fault that waited for its chunk: from the fault record to the
 * load (or poison) record that ended the wait. */
struct tt_stall {
	uint64_t start;              /* the fault record's time */
	uint64_t end;                /* clipped: see docs/trace-tool.md */
	uint64_t service;            /* load record - fault record, unclipped */
	uint64_t fault;              /* index of the fault record */
	uint64_t tid;                /* the faulting thread */
	uint32_t chunk;
	uint64_t load;               /* index of the record that ended the wait */
	uint8_t state;               /* chunk state the fault saw */
	uint8_t poisoned;            /* ended by a poison, not a load */
};

struct tt_token {
	uint64_t value;              /* the mark's token index */
	uint64_t tid;                /* the thread that marked it */
	uint64_t start, end;
	uint64_t stall;              /* merged fault-stall wall time inside [start, end) */
	uint64_t read, decomp, install, wait; /* sums over loads completed in it */
	uint64_t faults, demand, readahead, evictions;
};

/* Resident bytes (and budget) from time t on. */
struct tt_point {
	uint64_t t;
	int64_t resident;
	uint64_t budget;
};

/* Why the loop waited (trace_why.c; docs/trace-tool.md). */
enum { TT_WHY_IN_FLIGHT, TT_WHY_QUEUED, TT_WHY_EVICTING, TT_WHY_REREAD, TT_WHY_COLD, TT_NWHY };
enum { TT_PART_BEFORE, TT_PART_READ, TT_PART_DECODE, TT_PART_INSTALL, TT_NPART };
#define TT_DEPTH_MAX 8           /* the last depth row holds this many and more */

struct tt_why {
	uint64_t faults[TT_NWHY];    /* demand faults by reason */
	uint64_t stall[TT_NWHY];     /* their (clipped) stalls, summed */
	uint64_t part[TT_NPART];     /* the stalls split by what the load was doing */
	uint64_t stall_sum;
	uint64_t reads;              /* reads seen (loads and stages) */
	uint64_t read_bytes;         /* their stored bytes (0: no image) */
	uint64_t depth_time[TT_DEPTH_MAX + 1];  /* time with d reads in flight */
	uint64_t depth_stall[TT_DEPTH_MAX + 1]; /* of that, within the fault stall */
	double depth_area;           /* integral of the depth over time (ns) */
	int max_depth;
};

/* The reads-in-flight curve: depth from t on. */
struct tt_depth {
	uint64_t t;
	uint32_t depth;
};

struct tt_model {
	const char *path;
	const struct fp_trace_header *h;
	const struct fp_trace_event *ev;
	uint64_t n;
	uint64_t t_first, t_last;    /* first and last record */

	/* The chunks the per-chunk tables cover: the image's when it is there
	 * and matches, else one past the highest chunk a record names (the
	 * header's count alone is a claim: a small damaged trace may name
	 * four billion chunks). */
	uint32_t nc;
	char error[160];             /* why tt_build failed, if not for memory */
	/* Per chunk: resident bytes (logical_len rounded up to 4 KiB when the
	 * image could be opened, else chunk_size) and stored bytes (0 unknown). */
	uint32_t *chunk_bytes;
	uint32_t *stored_bytes;
	uint32_t *data_bytes;        /* logical_len, for padding faults; NULL unknown */
	int have_image;
	char image_note[256];        /* why the image is not used, or "" */

	uint64_t count[FP_EV_TYPES];
	uint64_t faults_waited;      /* served by a later load (the stalls) */
	uint64_t faults_resident;    /* found the chunk installed: answered at once */
	uint64_t faults_padding;     /* on a chunk's zero padding: no load */
	uint64_t faults_poisoned;    /* on a poisoned chunk, or ended by a poison */
	uint64_t faults_unserved;    /* still waiting when the trace ends */
	uint64_t demand_loads, readahead_loads;
	uint64_t bytes_installed, bytes_stored;
	uint64_t busy_read, busy_decomp, busy_install, busy_wait;
	uint64_t reads;              /* records that read (tt_did_read): what busy_read, _decomp, _wait sum over */
	uint32_t max_loader;         /* highest loader id seen or in the header */
	int other_thread;            /* records with thread 0xffff exist */
	uint64_t budget_changes;

	struct tt_stall *stalls;
	size_t n_stalls;
	uint64_t stall_union;        /* merged wall time of all stalls */
	uint64_t *merged;            /* the merged stalls: start, end pairs, sorted */
	size_t n_merged;             /* entries (twice the intervals) */

	struct tt_token *tokens;
	size_t n_tokens;

	struct tt_point *res;
	size_t n_res;
	int64_t peak_resident;
	uint64_t end_budget;

	uint64_t *app_tids;          /* faulting and marking threads, sorted */
	size_t n_app;

	struct tt_why why;
	struct tt_depth *inflight;
	size_t n_inflight;
};

/* Analyse an open trace (which must outlive the model).  image: the image
 * to take chunk sizes from; NULL: the header's.  -1 on out of memory. */
/* The most chunks the tables cover when the traced image is not at hand. */
#define TT_MAX_UNSEEN_CHUNKS (1u << 24)

int tt_build(struct tt_model *m, const fp_trace *t, const char *path, const char *image);
void tt_free(struct tt_model *m);

/* trace_summary.c */
void tt_print_summary(FILE *f, const struct tt_model *m, int token_rows);
void tt_print_hist(FILE *f, const struct tt_model *m);
/* "812 ns", "12.3 us", "4.56 ms", "1.23 s". */
const char *tt_fmt_ns(uint64_t ns, char *buf, size_t n);
/* Sorted copies of a latency series; *n gets the count.  NULL when empty
 * or out of memory.  which: 0 fault service, 1 read, 2 decompress,
 * 3 install, 4 wait. */
enum { TT_LAT_SERVICE, TT_LAT_READ, TT_LAT_DECOMP, TT_LAT_INSTALL, TT_LAT_WAIT, TT_NLAT };
uint64_t *tt_latencies(const struct tt_model *m, int which, size_t *n);
const char *tt_lat_name(int which);
/* The q-quantile (0..1) of a sorted series, nearest rank. */
uint64_t tt_quantile(const uint64_t *v, size_t n, double q);

/* trace_why.c: fills m->why and m->inflight (after the stalls are
 * matched, clipped and sorted); -1 on out of memory. */
int tt_why_build(struct tt_model *m);
void tt_print_why(FILE *f, const struct tt_model *m);
const char *tt_why_name(int why);
const char *tt_part_name(int part);

/* trace_chrome.c: 0, or -1 after printing why on stderr. */
int tt_write_chrome(const struct tt_model *m, const char *out);

/* trace_plot.c: 0, or -1 after printing why on stderr. */
int tt_plot(const struct tt_model *m, const char *prefix);

#endif
