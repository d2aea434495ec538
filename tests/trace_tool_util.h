/* Shared by the flexpage trace suites (test_trace_tool_*.c). */
#ifndef FLEXPAGE_TRACE_TOOL_UTIL_H
#define FLEXPAGE_TRACE_TOOL_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include <flexpage/flexpage_experimental.h>

/* name in this process's scratch directory; the same name always gives
 * the same (stable) string. */
const char *tmp(const char *name);
/* A file's bytes, NUL-terminated (the caller frees them); NULL if none. */
char *slurp(const char *path, size_t *len);

/* A run of the tool: its exit and its output. */
struct run {
	int code;            /* exit status, or 128 + signal, or -1 timed out */
	char *out, *err;
};

void run_free(struct run *r);
/* Runs FLEXPAGE_TOOL trace ARGS... (NULL-terminated); path_env: PATH to
 * give it, NULL to keep ours. */
struct run run_tool_env(const char *path_env, const char *const *args);
#define RUN(...) run_tool_env(NULL, (const char *const[]){__VA_ARGS__, NULL})
#define CHUNK (128u << 10)
#define NCHUNKS 24u
#define LEN ((size_t)NCHUNKS * CHUNK - 5000) /* a short last chunk */
#define TOKENS 4

/* A trace recorded through the library: TOKENS tokens over an image of
 * NCHUNKS chunks, with a budget change midway; s: the region's stats
 * once its loads settled. */
struct recorded {
	char image[512], trace[512];
	struct fp_stats s;
};
uint8_t *make_data(size_t len);
void record(struct recorded *rec);

/* The header of a hand-made trace: n_chunks of chunk bytes, policy fifo. */
struct fp_trace_header synthetic_header(uint32_t chunk, uint32_t n_chunks, uint64_t budget,
                                        uint32_t loaders, uint32_t readahead);

/* The JSON in a file, parsed (json_util.h); not JSON fails the test. */
struct jval *load_json(const char *path);
/* gnuplot is on PATH. */
int have_gnuplot(void);

#endif
