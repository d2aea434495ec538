/* Helpers for the pager suites: data, images, residency, cgroups. */
#ifndef FLEXPAGE_REGION_UTIL_H
#define FLEXPAGE_REGION_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include <flexpage/flexpage_experimental.h>

/* len bytes, deterministic in seed: runs of random bytes, of repeated
 * short patterns and of zeros, so zstd finds some chunks worth shrinking. */
uint8_t *ru_data(size_t len, uint64_t seed);
/* A directory on a real disk (O_DIRECT works there), made once per process. */
const char *ru_tmpdir(void);
/* An image holding data as one u8 tensor named "data". */
void ru_write_image(const char *path, const uint8_t *data, size_t len, uint32_t chunk,
                    uint32_t codec);
struct fp_options ru_options(uint64_t budget);
/* Pages of [base, base+len) that are resident, by mincore(2). */
uint64_t ru_resident_pages(const void *base, uint64_t len);
void ru_flip_byte(const char *path, uint64_t offset);
int ru_count_dir(const char *path);
int ru_kernel_has_move(void);
void ru_drop_caches(void);
/* The planner's tensor_layer for GGUF-style names: "blk.N.*" is layer N,
 * attention if ".attn_" follows; anything else is outside the layers. */
int ru_blk_layer(const struct fp_tensor_desc *t, int *attention, void *ctx);

/* Read region r's tensor "data" with `threads` threads at once (thread 0
 * scans it in order, the others read `reads` random pages) and return how
 * many reads differed from ref. */
int ru_read_concurrently(fp_region *r, const uint8_t *ref, size_t len, int threads, int reads);

/* What a child does before it opens the region under test: install a
 * SIGBUS handler of its own (which the reporter must chain to: it writes a
 * line and exits 42), and open other regions first (which the reporter
 * must not run out of room for). */
struct ru_child_setup {
	int app_handler;
	int extra_regions;
	const char *extra_path;
};

/* Open path with o in a child, with the fault reporter installed (cs:
 * what it does first, NULL nothing), and compare its tensor "data" with
 * ref[0, len): exit 0 equal, 21 different, 20 open failed, 22 no
 * reporter, 23 an extra region failed.  Returns the child's wait status;
 * its stderr goes to err.  -1 if no child could be made. */
int ru_read_in_child(const char *path, const struct fp_options *o, const uint8_t *ref,
                     size_t len, const struct ru_child_setup *cs, char *err, size_t errlen);

/* A child that runs the pager as a fresh process: fork, then exec of this
 * test program, which runs the child function `name` (defined with
 * RU_CHILD) on args before main and exits with what it returns.  Not a
 * fork that goes on running: a suite's process has threads (Criterion's),
 * and ThreadSanitizer cannot follow a child of a threaded process that
 * starts threads of its own (its registry still holds the parent's:
 * "dup thread with used id"); a fresh program starts it clean.  The child
 * inherits the environment, descriptors and credentials.  Returns the
 * wait status, -1 if no child could be made. */
int ru_run_child(const char *name, const char *const *args);

typedef int (*ru_child_main)(int argc, char **argv);
void ru_child_register(const char *name, ru_child_main fn);
/* RU_CHILD(fn) { ... } defines child function fn(argc, argv), argv the
 * args given to ru_run_child (argv[argc] is NULL). */
#define RU_CHILD(fn)                                                                   \
	static int fn(int argc, char **argv);                                          \
	__attribute__((constructor(101))) static void fn##_register(void)              \
	{                                                                              \
		ru_child_register(#fn, fn);                                            \
	}                                                                              \
	static int fn(int argc, char **argv)

/* A child memory cgroup (v1) under the one this process is in. */
int ru_cgroup_available(char *why, size_t n);
int ru_cgroup_create(char *path, size_t n, uint64_t limit);
int ru_cgroup_join(const char *path);
uint64_t ru_cgroup_max_usage(const char *path);
void ru_cgroup_remove(const char *path);

#endif
