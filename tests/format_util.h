/* Shared by the image format suites (test_format_*.c, format_util.c). */
#ifndef FLEXPAGE_FORMAT_UTIL_H
#define FLEXPAGE_FORMAT_UTIL_H

#include <stdint.h>

#include <flexpage/flexpage.h>

#include "testutil.h"

/* The suite's temporary directory (made by its .init). */
extern char *g_dir;

/* Bytes a tensor takes, from the table in docs/format.md (0: invalid). */
uint64_t ref_bytes(uint32_t type, uint32_t ndim, const uint64_t *shape);

static inline uint64_t align_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) / a * a;
}

/* dst (a chunk read back) must hold want's len bytes, then zeros up to
 * cs; a non-zero padding byte is reported by check_padding() at the end
 * of the test, so that the rest of the test still runs. */
void assert_chunk_bytes(const uint8_t *dst, const uint8_t *want, uint32_t len, uint32_t cs,
                        uint32_t chunk);
void check_padding(void);

struct tensor_spec {
	const char *name;
	uint32_t type, ndim;
	uint64_t shape[4];
	/* content per chunk of the tensor: 'c' compressible, 'r' random,
	 * 'a' alternate (even chunks compressible, odd random) */
	char content;
};

struct built {
	uint32_t cs, n;
	struct tensor_spec spec[8];
	uint8_t *data[8];
	uint64_t size[8], offset[8];
	uint32_t n_chunks;
	uint64_t logical_size, data_end; /* data_end: the last tensor's end */
	int aligned;          /* tensors on chunk boundaries, not packed */
	uint8_t *layout;      /* the expected logical layout */
	char *compressible;   /* per chunk: 1 if its bytes are all compressible */
};

void built_free(struct built *b);
/* Fills b from specs and writes the image with the writer, feeding the
 * bytes in pieces of pseudo-random sizes.  Returns 0 or -1 (error in
 * fp_last_error()). */
int build_image(const char *path, const struct fp_writer_options *opt,
                const struct tensor_spec *specs, uint32_t n, const char *meta,
                struct built *b, uint64_t seed);
/* Checks an image written by build_image against the spec, through the
 * API and by reading the file's bytes plainly. */
void check_built(const char *path, const struct built *b, uint32_t codec, const char *meta);

/* The base image the bad-input suites corrupt (format_util.c says what it
 * holds), made by the test-level fixtures base_raw / base_zstd. */
extern char *g_img;
extern struct built g_b;
void make_base(uint32_t codec);
void base_raw(void);
void base_zstd(void);
void base_fini(void);
tu_file load_base(void);
/* Writes f back over the base image; fix: recompute both checksums. */
void store(tu_file *f, int fix);

/* fp_image_open(path) must fail with errno code and a message naming path
 * and matching each of the '|'-alternative groups that follow. */
void expect_open_fails_(const char *path, int code, const char *what, ...);
#define EXPECT_OPEN_FAILS(path, code, what, ...) \
	expect_open_fails_(path, code, what, __VA_ARGS__, (const char *)NULL)

#endif
