/* The image format: payload problems, found when a chunk is read
 * (checksums, zstd frames that decode wrong, short reads). */
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
/* Payload problems: found when a chunk is read                        */

static fp_image *open_ok(const char *path)
{
	fp_image *img = fp_image_open(path);
	cr_assert(img, "the tables are valid but fp_image_open failed: %s", fp_last_error());
	return img;
}

/* Reads every chunk: chunk bad must fail with a message naming the file,
 * "chunk <bad>" and one of alts; the others must read back the data. */
static void expect_read_fails(fp_image *img, uint32_t bad, const char *alts, const uint8_t *layout)
{
	const struct fp_image_info *info = fp_image_info(img);
	uint8_t *dst = malloc(info->chunk_size);
	cr_assert(dst);
	for (uint32_t i = 0; i < info->n_chunks; i++) {
		int rc = fp_image_read_chunk(img, i, dst);
		if (i != bad) {
			cr_assert_eq(rc, 0, "chunk %u: %s", i, fp_last_error());
			if (layout)
				assert_chunk_bytes(dst, layout + (uint64_t)i * info->chunk_size,
				                   fp_image_chunk(img, i)->logical_len, info->chunk_size, i);
			continue;
		}
		cr_assert_eq(rc, -EBADMSG, "reading corrupt chunk %u: %d, expected -EBADMSG", i, rc);
		const char *e = fp_last_error();
		char want[32];
		snprintf(want, sizeof want, "chunk %u", i);
		cr_assert(strstr(e, info->path), "the error does not name the file: \"%s\"", e);
		cr_assert(strstr(e, want), "the error does not name %s: \"%s\"", want, e);
		cr_assert(tu_contains_any(e, alts), "the error does not say %s: \"%s\"", alts, e);
	}
	free(dst);
	check_padding();
}

Test(format, payload_checksum_raw, .init = base_raw, .fini = base_fini)
{
	tu_file f = load_base();
	f.data[4096 + 2 * 65536 + 777] ^= 0x40;
	store(&f, 0);
	fp_image *img = open_ok(g_img);
	expect_read_fails(img, 2, "checksum", g_b.layout);
	fp_image_close(img);
}

Test(format, payload_checksum_zstd_frame, .init = base_zstd, .fini = base_fini)
{
	tu_file f = load_base();
	uint64_t e = tu_chunk_at(&f, 0);
	uint64_t off = tu_get64(&f, e + TU_C_FILE_OFFSET);
	uint32_t n = tu_get32(&f, e + TU_C_STORED_LEN);
	f.data[off + n / 2] ^= 0x10;
	store(&f, 0);
	fp_image *img = open_ok(g_img);
	expect_read_fails(img, 0, "checksum|zstd|decode", g_b.layout);
	fp_image_close(img);
}

Test(format, payload_checksum_raw_chunk_in_zstd_image, .init = base_zstd, .fini = base_fini)
{
	tu_file f = load_base();
	uint64_t off = tu_get64(&f, tu_chunk_at(&f, 3) + TU_C_FILE_OFFSET);
	f.data[off] ^= 0x01;
	store(&f, 0);
	fp_image *img = open_ok(g_img);
	expect_read_fails(img, 3, "checksum", g_b.layout);
	fp_image_close(img);
}

Test(format, chunk_checksum_field_wrong, .init = base_raw, .fini = base_fini)
{
	tu_file f = load_base();
	uint64_t e = tu_chunk_at(&f, 4) + TU_C_CHECKSUM;
	tu_set32(&f, e, tu_get32(&f, e) ^ 0x80000000u);
	store(&f, 1);
	fp_image *img = open_ok(g_img);
	expect_read_fails(img, 4, "checksum", g_b.layout);
	fp_image_close(img);
}

/* A one-tensor compressible image for the zstd frame tests: chunk 0 full,
 * chunk 1 of 34464 bytes, both zstd. */
static void base_zstd_single(void)
{
	const struct tensor_spec specs[] = {{"text", FP_TYPE_U8, 1, {100000}, 'c'}};
	struct fp_writer_options opt = {.chunk_size = 65536, .codec = FP_CODEC_ZSTD};
	g_img = tu_join(g_dir, "single.fpi");
	cr_assert_eq(build_image(g_img, &opt, specs, 1, NULL, &g_b, 7), 0, "%s", fp_last_error());
	fp_image *img = open_ok(g_img);
	cr_assert_eq(fp_image_chunk(img, 1)->codec, FP_CODEC_ZSTD);
	fp_image_close(img);
}

Test(format, zstd_frame_decodes_to_fewer_bytes, .init = base_zstd_single, .fini = base_fini)
{
	/* The entry claims one byte more than the frame holds; the claimed
	 * checksum is right for the claimed bytes (data + one zero). */
	tu_file f = load_base();
	uint64_t e = tu_chunk_at(&f, 1);
	uint32_t len = tu_get32(&f, e + TU_C_LOGICAL_LEN);
	uint8_t *claimed = calloc(1, len + 1);
	memcpy(claimed, g_b.layout + 65536, len);
	tu_set32(&f, e + TU_C_LOGICAL_LEN, len + 1);
	tu_set32(&f, e + TU_C_CHECKSUM, tu_crc32c(0, claimed, len + 1));
	free(claimed);
	store(&f, 1);
	fp_image *img = open_ok(g_img);
	expect_read_fails(img, 1, "size|bytes|decode|zstd|length", g_b.layout);
	fp_image_close(img);
}

Test(format, zstd_frame_decodes_to_more_bytes, .init = base_zstd_single, .fini = base_fini)
{
	/* The tensor and the entry claim one byte less than the frame holds;
	 * checksum right for the claimed bytes. */
	tu_file f = load_base();
	uint64_t e = tu_chunk_at(&f, 1);
	uint32_t len = tu_get32(&f, e + TU_C_LOGICAL_LEN);
	tu_set32(&f, e + TU_C_LOGICAL_LEN, len - 1);
	tu_set32(&f, e + TU_C_CHECKSUM, tu_crc32c(0, g_b.layout + 65536, len - 1));
	uint64_t t = tu_tensor_at(&f, 0);
	tu_set64(&f, t + TU_T_SHAPE, 99999);
	tu_set64(&f, t + TU_T_SIZE, 99999);
	store(&f, 1);
	fp_image *img = open_ok(g_img);
	expect_read_fails(img, 1, "size|bytes|decode|zstd|length", NULL);
	fp_image_close(img);
}

Test(format, zstd_frame_garbage, .init = base_zstd_single, .fini = base_fini)
{
	tu_file f = load_base();
	uint64_t e = tu_chunk_at(&f, 0);
	tu_fill_random(99, f.data + tu_get64(&f, e + TU_C_FILE_OFFSET), tu_get32(&f, e + TU_C_STORED_LEN));
	store(&f, 0);
	fp_image *img = open_ok(g_img);
	expect_read_fails(img, 0, "zstd|decode|frame|checksum", g_b.layout);
	fp_image_close(img);
}

Test(format, zstd_frame_cut_short, .init = base_zstd_single, .fini = base_fini)
{
	tu_file f = load_base();
	uint64_t e = tu_chunk_at(&f, 0);
	tu_set32(&f, e + TU_C_STORED_LEN, tu_get32(&f, e + TU_C_STORED_LEN) - 8);
	store(&f, 1);
	fp_image *img = open_ok(g_img);
	expect_read_fails(img, 0, "zstd|decode|frame|size|checksum", g_b.layout);
	fp_image_close(img);
}

Test(format, short_read_after_truncation, .init = base_raw, .fini = base_fini)
{
	fp_image *img = open_ok(g_img);
	cr_assert(!truncate(g_img, 4096 + 2 * 65536 + 100));
	uint8_t *dst = malloc(65536);
	cr_assert_eq(fp_image_read_chunk(img, 0, dst), 0, "%s", fp_last_error());
	cr_assert_arr_eq(dst, g_b.layout, 65536);
	cr_assert_eq(fp_image_read_chunk(img, 3, dst), -EIO,
	             "reading past the end of a truncated file: not -EIO");
	const char *e = fp_last_error();
	cr_assert(strstr(e, g_img) && strstr(e, "chunk 3"), "%s", e);
	cr_assert(tu_contains_any(e, "short|read|truncat|end of file"), "%s", e);
	free(dst);
	fp_image_close(img);
}
