/* libflexpage-preload.so: flexpage under a program that maps its model.
 *
 *   LD_PRELOAD=libflexpage-preload.so FLEXPAGE_BUDGET=40% llama-cli -m model.gguf ...
 *
 * A read-only mmap of a whole model file is served from a flexpage region
 * instead of the page cache: the program gets a pointer to a region whose
 * bytes equal the file's (offset 0 of the file at the returned address),
 * paged within a budget, with preserved chunks and read-ahead.  The model
 * is a GGUF file (paged directly), or any file for which FLEXPAGE_IMAGE
 * names an image whose logical bytes are the file's (`flexpage pack
 * --verbatim FILE OUT.img`, or `flexpage pack model.gguf OUT.img`, with
 * checksums and an optional codec).  Every other call goes to the real
 * function untouched.  docs/preload.md says what is taken and how.
 *
 * Environment (read with secure_getenv when the first file is mapped):
 *   FLEXPAGE_BUDGET=SIZE      resident bytes each model may use: 600M, 1.5G,
 *                             or 40% of the model's size (default 100%)
 *   FLEXPAGE_IMAGE=LIST       images to serve files from, ':'-separated:
 *                             IMAGE (serves whichever file it holds) or
 *                             FILE=IMAGE (serves FILE); checked against the
 *                             file (size, first and last chunk)
 *   FLEXPAGE_PRESERVE=MODE    balanced (default), first or none: which chunks
 *                             stay resident (fp_plan_make over blk.N layers)
 *   FLEXPAGE_CHUNK=SIZE       chunk of a GGUF paged directly: a power of two
 *                             from 64K to 4M (default 2M); images keep theirs
 *   FLEXPAGE_LOADERS=N        loader threads per model (default 4)
 *   FLEXPAGE_POLICY=NAME      eviction policy (default fifo)
 *   FLEXPAGE_TRACE=FILE       event trace of the first model served; the
 *                             next ones get FILE.2, FILE.3, ...
 *   FLEXPAGE_STATS=WHEN       exit: a summary per model when it is unmapped
 *                             or at exit; an interval (1s, 500ms): that and a
 *                             line per model every interval
 *   FLEXPAGE_LOG=LEVEL        quiet, warn (default: mappings not served),
 *                             info (each mapping served), debug (each call
 *                             on a served mapping)
 *   FLEXPAGE_STRICT=1         a model mapping flexpage cannot serve fails
 *                             (ENOMEM for a budget below the minimum, ENODEV
 *                             otherwise) instead of going to the kernel
 *
 * Nothing is printed when all is well unless asked.  A mapping that cannot
 * be served (no userfaultfd, a budget below two chunks, a damaged file, an
 * image that does not hold the file) is said once on stderr and mapped by
 * the real mmap.
 *
 * The library holds the pager's own objects with every symbol hidden (a
 * version script exports the interposed functions only), so a program that
 * links libflexpage itself keeps its own copy; the pager's own calls to
 * mmap, munmap, madvise and mlock2 are linked (--wrap) straight to the real
 * functions.  Names here are pl_*. */
#ifndef FLEXPAGE_PRELOAD_H
#define FLEXPAGE_PRELOAD_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <flexpage/flexpage_experimental.h>

#define PL_PAGE 4096u

/* ---- real.c: the functions this library stands in front of ---- */
struct pl_real {
	void *(*mmap)(void *, size_t, int, int, int, off_t);
	int (*munmap)(void *, size_t);
	int (*madvise)(void *, size_t, int);
	int (*posix_madvise)(void *, size_t, int);
	int (*mlock)(const void *, size_t);
	int (*mlock2)(const void *, size_t, unsigned int);
	int (*munlock)(const void *, size_t);
	int (*mlockall)(int);
	int (*munlockall)(void);
	int (*mprotect)(void *, size_t, int);
	void *(*mremap)(void *, size_t, size_t, int, ...);
};
/* The real functions (dlsym RTLD_NEXT), resolved on first use. */
const struct pl_real *pl_real(void);

/* ---- config.c: the environment ---- */
enum pl_preserve { PL_PRESERVE_NONE, PL_PRESERVE_BALANCED, PL_PRESERVE_FIRST };
enum pl_log_level { PL_LOG_QUIET, PL_LOG_WARN, PL_LOG_INFO, PL_LOG_DEBUG };

struct pl_image_spec {
	char *file;                  /* NULL: any file the image holds */
	char *image;
};

struct pl_config {
	double budget_pct;           /* > 0: a share of each model's size */
	uint64_t budget_bytes;       /* else bytes */
	struct pl_image_spec *images;
	int n_images;
	int preserve;                /* enum pl_preserve */
	uint32_t chunk;              /* 0: the pager's default */
	int loaders;                 /* 0: the pager's default */
	double read_rate;            /* bytes/s; 0: measured when it matters */
	double decode_rate;          /* bytes/s a core; 0: measured when it matters */
	int decoders;                /* the most loaders decoding at once; 0: no limit */
	char *policy;                /* NULL: the pager's default */
	char *trace;
	int stats;                   /* summaries */
	uint64_t stats_interval_ns;  /* and lines every interval; 0: none */
	int log_level;
	int strict;
	char error[512];             /* a setting that cannot be used: nothing is served */
};
/* Read once, at the first call. */
const struct pl_config *pl_config(void);

/* ---- units.c: sizes and intervals ---- */
/* 600M, 1.5G, 64K, 4096 (bytes; K/M/G/T are binary, an optional B or iB,
 * above zero); with pct non-NULL also 40% (into *pct, 0 < pct <= 100).
 * 0, or -1 with the reason in why[0, n). */
int pl_parse_size(const char *s, uint64_t *bytes, double *pct, char *why, size_t n);
/* 1s, 500ms, 2 (seconds): above zero, at most a day.  0, or -1 and why. */
int pl_parse_interval(const char *s, uint64_t *ns, char *why, size_t n);

/* ---- log.c: messages on stderr ---- */
/* A line "flexpage: ..." whatever the level (for the configuration itself). */
void pl_say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void pl_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Say why a file is not served, once per file (by device and inode). */
void pl_refuse(dev_t dev, ino_t ino, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* ---- source.c: what serves a mapping ---- */
enum pl_source_kind { PL_NOT_MODEL, PL_GGUF, PL_IMAGE, PL_REFUSED };
struct pl_source {
	int kind;
	char path[4096];             /* what fp_open opens */
	fp_image *img;               /* opened (chunked as the region will be) */
	char why[1024];              /* PL_REFUSED: the reason */
};
/* For a whole-file mapping of fd (st: its fstat; name: its path, for
 * messages and to open it): a GGUF, the image FLEXPAGE_IMAGE names for it,
 * or not a model.  The caller closes out->img. */
void pl_find_source(int fd, const struct stat *st, const char *name, struct pl_source *out);

/* ---- plan.c: which chunks stay resident ---- */
/* A plan for preserve (enum pl_preserve, not NONE); 0, or a negative errno. */
int pl_plan(const fp_image *img, uint64_t budget, int preserve, const struct fp_options *o,
            struct fp_plan *out);

/* ---- table.c: the mappings served ---- */
struct pl_served {
	uintptr_t base;
	size_t len;                  /* the mapping, in whole pages */
	fp_region *r;
	char *name;                  /* the file, for messages */
	int fd;                      /* the file (a child of fork maps it) */
	int shared;                  /* MAP_SHARED (else private) */
	uint64_t budget, file_size;
	uint64_t *live;              /* a bit per page of the mapping: not unmapped */
	size_t n_live;               /* pages */
	struct fp_stats last;        /* at the last FLEXPAGE_STATS line */
};
/* Served mappings, for the fast paths: 0 means every call goes through. */
extern atomic_int pl_n_served;
extern pthread_mutex_t pl_table_lock;
/* Add a mapping (the caller made it); -1 if the table is full. */
int pl_table_add(struct pl_served *s);
/* Under pl_table_lock: each served mapping, NULL past the last. */
struct pl_served *pl_table_at(int i);

/* Walk [addr, addr+len) under the table lock: live(s, lo, hi) for each run
 * of a served mapping's live pages, gap(lo, hi) for each run between them.
 * Stops at a callback's non-zero return and returns it. */
struct pl_walk {
	int (*live)(struct pl_walk *w, struct pl_served *s, uintptr_t lo, uintptr_t hi);
	int (*gap)(struct pl_walk *w, uintptr_t lo, uintptr_t hi);
	void *ctx;
};
int pl_walk(uintptr_t addr, size_t len, struct pl_walk *w);
/* munmap of [addr, addr+len) (addr on a page): served pages are given back
 * to their region (a mapping left with none is closed), and with gaps_too
 * the rest goes to the real munmap. */
int pl_unmap(uintptr_t addr, size_t len, int gaps_too);

/* ---- serve.c: opening and closing regions ---- */
/* mlockall(MCL_FUTURE) is in effect: no region can be opened. */
extern atomic_int pl_mlockall_future;
/* A mapping of fd that the caller checked is read-only, of the whole file
 * (len bytes of st->st_size), at offset 0.  Returns the region's base;
 * NULL: not served, do the real mmap; MAP_FAILED: refused (strict), errno
 * set. */
void *pl_serve(size_t len, int flags, int fd, const struct stat *st);
/* Close a mapping removed from the table: summary, fp_close, free. */
void pl_close(struct pl_served *s);

/* ---- stats.c ---- */
void pl_stats_summary(struct pl_served *s, const char *when);
/* Start the interval thread if asked (once). */
void pl_stats_start(void);

/* ---- fork.c ---- */
/* Register the fork handlers (once). */
void pl_fork_init(void);
/* In a child of fork: nothing is served, every call goes through. */
extern atomic_int pl_disabled;

#endif
