/* Helpers of the runtime-side suites (test_models, test_paged_runtime):
 * temporary directories, files, running the flexpage binary, and writing
 * model images through the writer API. */
#ifndef FLEXPAGE_TEST_RT_UTIL_H
#define FLEXPAGE_TEST_RT_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include <flexrt/runtime.h>

/* A fresh directory on a disk file system (the pager reads with O_DIRECT,
 * which tmpfs refuses), malloc'd; NULL if none can be made. */
char *rt_tmpdir(void);
void rt_rmtree(const char *dir);
/* dir/name in a static ring of 16 buffers: valid for the next 15 calls. */
const char *rt_path(const char *dir, const char *name);

int rt_write_file(const char *path, const void *buf, size_t n);
void *rt_read_file(const char *path, size_t *n);
/* The first n bytes of src, then extra bytes of value 0x5a. */
int rt_copy_resized(const char *src, const char *dst, size_t n);

/* Run argv (argv[0] a path) with env_extra ("NAME=value" or NULL) added
 * to the environment; capture stdout and stderr (NUL-terminated,
 * truncated to their sizes).  The exit status, or 128 + signal. */
int rt_run(const char *const argv[], const char *env_extra, char *out, size_t outlen,
           char *err, size_t errlen);

/* The flexpage binary (FLEXPAGE_TOOL) with the arguments up to a NULL,
 * stdout and stderr captured into rt_out and rt_err.  Its exit status. */
extern char rt_out[1 << 16], rt_err[1 << 16];
int rt_tool(const char *first, ...);

/* Images through the writer API; 0 or -1 (message in err). */
int rt_pack_llama2c(const char *src, const char *dst, const char *quant, uint32_t chunk,
                    uint32_t codec, char *err, size_t errlen);
int rt_synth(const char *dst, const struct frt_config *cfg, int shared, int type, uint32_t chunk,
             uint32_t codec, uint64_t seed, int threads, char *err, size_t errlen);

#endif
