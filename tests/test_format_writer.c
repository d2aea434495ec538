/* The image format: writer misuse and I/O errors, each refused with its
 * errno, never harming an existing file. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include <flexpage/flexpage.h>

#include "format_util.h"
#include "testutil.h"

/* ------------------------------------------------------------------ */
/* Writer misuse                                                        */

static fp_writer *new_writer(const char *name, uint32_t codec)
{
	char *p = tu_join(g_dir, name);
	struct fp_writer_options opt = {.chunk_size = 65536, .codec = codec};
	fp_writer *w = fp_writer_create(p, &opt);
	cr_assert(w, "fp_writer_create: %s", fp_last_error());
	free(p);
	return w;
}

static void expect_err(int rc, int code, const char *what, const char *alts)
{
	cr_assert_eq(rc, -code, "%s: %d, expected -%d (%s)", what, rc, code, strerror(code));
	const char *e = fp_last_error();
	cr_assert(tu_contains_any(e, alts), "[%s] the error does not say %s: \"%s\"", what, alts, e);
}

static void expect_no_leftovers(const char *const *expected)
{
	char *extra = tu_dir_extras(g_dir, expected);
	cr_assert_str_eq(extra, "", "files left in the directory: %s", extra);
	free(extra);
}

static const uint64_t shape10[1] = {10};

Test(format, writer_data_outside_tensor)
{
	fp_writer *w = new_writer("w.fpi", FP_CODEC_RAW);
	expect_err(fp_writer_write(w, "abc", 3), EINVAL, "write before begin_tensor", "tensor");
	cr_assert_eq(fp_writer_begin_tensor(w, "t", FP_TYPE_U8, 1, shape10), 0, "%s", fp_last_error());
	cr_assert_eq(fp_writer_write(w, "0123456789", 10), 0, "%s", fp_last_error());
	cr_assert_eq(fp_writer_end_tensor(w), 0, "%s", fp_last_error());
	expect_err(fp_writer_write(w, "abc", 3), EINVAL, "write after end_tensor", "tensor");
	expect_err(fp_writer_end_tensor(w), EINVAL, "end_tensor twice", "tensor|begun");
	fp_writer_abort(w);
	expect_no_leftovers(NULL);
}

Test(format, writer_more_bytes_than_shape)
{
	fp_writer *w = new_writer("w.fpi", FP_CODEC_RAW);
	cr_assert_eq(fp_writer_begin_tensor(w, "small", FP_TYPE_U8, 1, shape10), 0);
	expect_err(fp_writer_write(w, "0123456789A", 11), EINVAL, "11 bytes into a 10-byte tensor", "small");
	fp_writer_abort(w);
	w = new_writer("w.fpi", FP_CODEC_RAW);
	cr_assert_eq(fp_writer_begin_tensor(w, "small", FP_TYPE_U8, 1, shape10), 0);
	cr_assert_eq(fp_writer_write(w, "012345", 6), 0);
	expect_err(fp_writer_write(w, "6789A", 5), EINVAL, "a second write past the shape", "small");
	fp_writer_abort(w);
	expect_no_leftovers(NULL);
}

Test(format, writer_end_tensor_short)
{
	fp_writer *w = new_writer("w.fpi", FP_CODEC_ZSTD);
	const uint64_t shape[2] = {64, 4};
	cr_assert_eq(fp_writer_begin_tensor(w, "w.q8", FP_TYPE_Q8_0, 2, shape), 0, "%s", fp_last_error());
	uint8_t buf[34 * 8] = {0};
	cr_assert_eq(fp_writer_write(w, buf, sizeof buf - 1), 0);
	expect_err(fp_writer_end_tensor(w), EINVAL, "end_tensor one byte short", "w.q8");
	cr_assert(tu_contains_any(fp_last_error(), "short|1 byte"), "%s", fp_last_error());
	fp_writer_abort(w);
	expect_no_leftovers(NULL);
}

Test(format, writer_finish_with_tensor_open)
{
	char *dst = tu_join(g_dir, "w.fpi");
	fp_writer *w = new_writer("w.fpi", FP_CODEC_RAW);
	cr_assert_eq(fp_writer_begin_tensor(w, "open.tensor", FP_TYPE_U8, 1, shape10), 0);
	cr_assert_eq(fp_writer_write(w, "0123456789", 10), 0);
	expect_err(fp_writer_finish(w), EINVAL, "finish with a tensor open", "open.tensor");
	cr_assert(!tu_file_exists(dst), "a failed finish created the destination");
	expect_no_leftovers(NULL);
	free(dst);
}

Test(format, writer_finish_without_tensors)
{
	fp_writer *w = new_writer("w.fpi", FP_CODEC_RAW);
	expect_err(fp_writer_finish(w), EINVAL, "finish with no tensor", "tensor");
	expect_no_leftovers(NULL);
}

Test(format, writer_duplicate_name)
{
	fp_writer *w = new_writer("w.fpi", FP_CODEC_RAW);
	cr_assert_eq(fp_writer_begin_tensor(w, "dup", FP_TYPE_U8, 1, shape10), 0);
	cr_assert_eq(fp_writer_write(w, "0123456789", 10), 0);
	cr_assert_eq(fp_writer_end_tensor(w), 0);
	expect_err(fp_writer_begin_tensor(w, "dup", FP_TYPE_U8, 1, shape10), EEXIST, "a duplicated name", "dup");
	cr_assert(tu_contains_any(fp_last_error(), "twice|duplicate|already"), "%s", fp_last_error());
	fp_writer_abort(w);
	expect_no_leftovers(NULL);
}

Test(format, writer_bad_tensor_descriptions)
{
	fp_writer *w = new_writer("w.fpi", FP_CODEC_RAW);
	const uint64_t q8bad[2] = {33, 2}, zero[2] = {0, 4}, zero2[2] = {4, 0};
	const uint64_t five[5] = {10, 1, 1, 1, 1};
	const uint64_t huge[2] = {1ull << 40, 1ull << 40};
	expect_err(fp_writer_begin_tensor(w, "", FP_TYPE_U8, 1, shape10), EINVAL, "an empty name", "name");
	char longname[80];
	memset(longname, 'n', 64);
	longname[64] = 0;
	expect_err(fp_writer_begin_tensor(w, longname, FP_TYPE_U8, 1, shape10), EINVAL, "a 64-byte name", "name|long");
	expect_err(fp_writer_begin_tensor(w, "t", 3, 1, shape10), EINVAL, "type 3", "type");
	expect_err(fp_writer_begin_tensor(w, "t", FP_TYPE_Q8_0, 2, q8bad), EINVAL, "q8_0 row of 33", "shape|type");
	expect_err(fp_writer_begin_tensor(w, "t", FP_TYPE_U8, 0, shape10), EINVAL, "ndim 0", "shape|ndim");
	expect_err(fp_writer_begin_tensor(w, "t", FP_TYPE_U8, 5, five), EINVAL, "ndim 5", "shape|ndim");
	expect_err(fp_writer_begin_tensor(w, "t", FP_TYPE_U8, 2, zero), EINVAL, "shape[0] 0", "shape");
	expect_err(fp_writer_begin_tensor(w, "t", FP_TYPE_U8, 2, zero2), EINVAL, "shape[1] 0", "shape");
	expect_err(fp_writer_begin_tensor(w, "t", FP_TYPE_F32, 2, huge), EINVAL, "an overflowing shape", "shape|overflow|size");
	/* begin while another tensor is open */
	cr_assert_eq(fp_writer_begin_tensor(w, "a", FP_TYPE_U8, 1, shape10), 0, "%s", fp_last_error());
	expect_err(fp_writer_begin_tensor(w, "b", FP_TYPE_U8, 1, shape10), EINVAL, "begin inside a tensor", "tensor|end");
	fp_writer_abort(w);
	expect_no_leftovers(NULL);
}

Test(format, writer_bad_options)
{
	char *p = tu_join(g_dir, "w.fpi");
	static const uint32_t sizes[] = {1000, 32768, 65535, 65537, 65536 + 4096, 8u << 20, 0xFFFFFFFFu};
	for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
		struct fp_writer_options o = {.chunk_size = sizes[k]};
		fp_writer *w = fp_writer_create(p, &o);
		if (w)
			fp_writer_abort(w);
		cr_assert_null(w, "chunk size %u accepted", sizes[k]);
		cr_assert_eq(errno, EINVAL);
		cr_assert(strstr(fp_last_error(), p) && tu_contains_any(fp_last_error(), "chunk"), "%s",
		          fp_last_error());
	}
	static const int levels[] = {23, 100, -1000000};
	for (size_t k = 0; k < sizeof levels / sizeof levels[0]; k++) {
		struct fp_writer_options o = {.chunk_size = 65536, .codec = FP_CODEC_ZSTD, .zstd_level = levels[k]};
		fp_writer *w = fp_writer_create(p, &o);
		if (w)
			fp_writer_abort(w);
		cr_assert_null(w, "zstd level %d accepted", levels[k]);
		cr_assert_eq(errno, EINVAL);
		cr_assert(tu_contains_any(fp_last_error(), "level"), "%s", fp_last_error());
	}
	struct fp_writer_options o = {.chunk_size = 65536, .codec = 7};
	fp_writer *w = fp_writer_create(p, &o);
	if (w)
		fp_writer_abort(w);
	cr_assert_null(w, "codec 7 accepted");
	cr_assert_eq(errno, EINVAL);
	cr_assert(tu_contains_any(fp_last_error(), "codec"), "%s", fp_last_error());
	expect_no_leftovers(NULL);
	free(p);
	/* A directory that does not exist. */
	char *q = tu_join(g_dir, "no/such/dir/w.fpi");
	struct fp_writer_options ok = {.chunk_size = 65536};
	w = fp_writer_create(q, &ok);
	if (w)
		fp_writer_abort(w);
	cr_assert_null(w);
	cr_assert_eq(errno, ENOENT);
	cr_assert(strstr(fp_last_error(), q), "%s", fp_last_error());
	free(q);
}

static void write_precious(const char *path, uint8_t *copy, size_t n)
{
	tu_fill_random(1234, copy, n);
	cr_assert(!tu_write_file(path, copy, n));
}

static void expect_same_bytes(const char *path, const uint8_t *want, size_t n)
{
	size_t len;
	uint8_t *got = tu_read_file(path, &len);
	cr_assert(got, "%s is gone", path);
	cr_assert_eq(len, n, "%s changed size", path);
	cr_assert_arr_eq(got, want, n, "%s changed", path);
	free(got);
}

Test(format, writer_abort_keeps_existing_destination)
{
	char *dst = tu_join(g_dir, "keep.fpi");
	uint8_t orig[5000];
	write_precious(dst, orig, sizeof orig);
	for (int stage = 0; stage < 4; stage++) {
		fp_writer *w = new_writer("keep.fpi", stage % 2 ? FP_CODEC_ZSTD : FP_CODEC_RAW);
		if (stage >= 1) {
			const uint64_t shape[1] = {200000};
			uint8_t *buf = calloc(1, 200000);
			cr_assert_eq(fp_writer_begin_tensor(w, "t", FP_TYPE_U8, 1, shape), 0);
			cr_assert_eq(fp_writer_write(w, buf, stage >= 2 ? 200000 : 150000), 0);
			if (stage >= 3)
				cr_assert_eq(fp_writer_end_tensor(w), 0);
			free(buf);
		}
		fp_writer_abort(w);
		expect_same_bytes(dst, orig, sizeof orig);
		const char *const exp[] = {"keep.fpi", NULL};
		expect_no_leftovers(exp);
	}
	free(dst);
}

Test(format, writer_failed_finish_keeps_existing_destination)
{
	char *dst = tu_join(g_dir, "keep.fpi");
	uint8_t orig[5000];
	write_precious(dst, orig, sizeof orig);
	const char *const exp[] = {"keep.fpi", NULL};

	fp_writer *w = new_writer("keep.fpi", FP_CODEC_RAW);
	cr_assert_eq(fp_writer_begin_tensor(w, "t", FP_TYPE_U8, 1, shape10), 0);
	cr_assert_eq(fp_writer_write(w, "0123", 4), 0);
	expect_err(fp_writer_finish(w), EINVAL, "finish with a short open tensor", "t");
	expect_same_bytes(dst, orig, sizeof orig);
	expect_no_leftovers(exp);

	w = new_writer("keep.fpi", FP_CODEC_ZSTD);
	expect_err(fp_writer_finish(w), EINVAL, "finish with no tensors", "tensor");
	expect_same_bytes(dst, orig, sizeof orig);
	expect_no_leftovers(exp);

	/* A misuse error in the middle, then finish: must not publish half an
	 * image (the tensor is 10 bytes; only 4 were taken). */
	w = new_writer("keep.fpi", FP_CODEC_RAW);
	cr_assert_eq(fp_writer_begin_tensor(w, "t", FP_TYPE_U8, 1, shape10), 0);
	cr_assert_eq(fp_writer_write(w, "0123", 4), 0);
	expect_err(fp_writer_end_tensor(w), EINVAL, "end_tensor short", "t");
	int rc = fp_writer_finish(w);
	if (rc)
		expect_same_bytes(dst, orig, sizeof orig);
	if (rc == 0) {
		fp_image *img = fp_image_open(dst);
		cr_assert(img, "finish after a failed end_tensor published an invalid image: %s",
		          fp_last_error());
		fp_image_close(img);
	}
	expect_no_leftovers(exp);

	/* A successful finish replaces the destination and leaves no temp. */
	write_precious(dst, orig, sizeof orig);
	w = new_writer("keep.fpi", FP_CODEC_RAW);
	cr_assert_eq(fp_writer_begin_tensor(w, "t", FP_TYPE_U8, 1, shape10), 0);
	cr_assert_eq(fp_writer_write(w, "0123456789", 10), 0);
	cr_assert_eq(fp_writer_end_tensor(w), 0);
	cr_assert_eq(fp_writer_finish(w), 0, "%s", fp_last_error());
	fp_image *img = fp_image_open(dst);
	cr_assert(img, "%s", fp_last_error());
	uint8_t chunk[65536];
	cr_assert_eq(fp_image_read_chunk(img, 0, chunk), 0);
	cr_assert_arr_eq(chunk, "0123456789", 10);
	fp_image_close(img);
	expect_no_leftovers(exp);
	free(dst);
}

/* Limit the size of files this (forked) test process may write, with
 * SIGXFSZ ignored so that writes past it fail with EFBIG: an I/O error. */
static void limit_file_size(rlim_t bytes)
{
	signal(SIGXFSZ, SIG_IGN);
	struct rlimit rl = {bytes, bytes};
	cr_assert(!setrlimit(RLIMIT_FSIZE, &rl), "setrlimit: %s", strerror(errno));
}

Test(format, writer_io_error_midway_keeps_destination)
{
	char *dst = tu_join(g_dir, "keep.fpi");
	uint8_t orig[5000];
	write_precious(dst, orig, sizeof orig);
	const char *const exp[] = {"keep.fpi", NULL};
	limit_file_size(150000);
	fp_writer *w = new_writer("keep.fpi", FP_CODEC_RAW);
	const uint64_t shape[1] = {400000};
	uint8_t *buf = calloc(1, 400000);
	cr_assert_eq(fp_writer_begin_tensor(w, "t", FP_TYPE_U8, 1, shape), 0);
	int rc = fp_writer_write(w, buf, 400000);
	cr_assert_eq(rc, -EFBIG, "writing past RLIMIT_FSIZE: %d, expected -EFBIG", rc);
	cr_assert(tu_contains_any(fp_last_error(), "write|large"), "%s", fp_last_error());
	fp_writer_abort(w);
	free(buf);
	expect_same_bytes(dst, orig, sizeof orig);
	expect_no_leftovers(exp);
	free(dst);
}

Test(format, writer_finish_io_error_keeps_destination)
{
	/* One raw 64K chunk: its payload ends at 69632, where the tables go;
	 * a file size limit of 69632 lets the payload through and fails the
	 * tables in fp_writer_finish. */
	char *dst = tu_join(g_dir, "keep.fpi");
	uint8_t orig[5000];
	write_precious(dst, orig, sizeof orig);
	const char *const exp[] = {"keep.fpi", NULL};
	limit_file_size(4096 + 65536);
	fp_writer *w = new_writer("keep.fpi", FP_CODEC_RAW);
	const uint64_t shape[1] = {65536};
	uint8_t *buf = calloc(1, 65536);
	cr_assert_eq(fp_writer_begin_tensor(w, "t", FP_TYPE_U8, 1, shape), 0);
	cr_assert_eq(fp_writer_write(w, buf, 65536), 0, "%s", fp_last_error());
	cr_assert_eq(fp_writer_end_tensor(w), 0, "%s", fp_last_error());
	free(buf);
	expect_err(fp_writer_finish(w), EFBIG, "finish when the tables cannot be written", "write|large|finish");
	expect_same_bytes(dst, orig, sizeof orig);
	expect_no_leftovers(exp);
	free(dst);
}

Test(format, writer_zero_length_writes_and_exact_chunks)
{
	/* A tensor of exactly one chunk and a zero-byte write change nothing. */
	char *p = tu_join(g_dir, "z.fpi");
	struct fp_writer_options o = {.chunk_size = 65536};
	fp_writer *w = fp_writer_create(p, &o);
	cr_assert(w);
	const uint64_t shape[1] = {65536}, shape2[1] = {1};
	uint8_t *buf = malloc(65536);
	tu_fill_random(5, buf, 65536);
	cr_assert_eq(fp_writer_begin_tensor(w, "a", FP_TYPE_U8, 1, shape), 0);
	cr_assert_eq(fp_writer_write(w, buf, 0), 0);
	cr_assert_eq(fp_writer_write(w, buf, 65536), 0);
	cr_assert_eq(fp_writer_write(w, buf, 0), 0);
	cr_assert_eq(fp_writer_end_tensor(w), 0);
	cr_assert_eq(fp_writer_begin_tensor(w, "b", FP_TYPE_U8, 1, shape2), 0);
	cr_assert_eq(fp_writer_write(w, "x", 1), 0);
	cr_assert_eq(fp_writer_end_tensor(w), 0);
	cr_assert_eq(fp_writer_finish(w), 0, "%s", fp_last_error());
	fp_image *img = fp_image_open(p);
	cr_assert(img, "%s", fp_last_error());
	cr_assert_eq(fp_image_info(img)->n_chunks, 2u);
	cr_assert_eq(fp_image_tensor(img, 1)->offset, 65536u);
	cr_assert_eq(fp_image_chunk(img, 1)->logical_len, 1u);
	fp_image_close(img);
	free(buf);
	free(p);
}
