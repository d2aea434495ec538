/* The image format: what the writer writes, fp_image_open and
 * fp_image_read_chunk read back, byte for byte, for every codec and chunk
 * size, against the bytes the test generated, the file read plainly, a
 * bitwise CRC-32C and libzstd called directly. */
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

Test(format, crc32c_reference_vectors)
{
	/* The check value of CRC-32C and a chained computation. */
	cr_assert_eq(tu_crc32c(0, "123456789", 9), 0xE3069283u);
	cr_assert_eq(tu_crc32c(tu_crc32c(0, "1234", 4), "56789", 5), 0xE3069283u);
	cr_assert_eq(tu_crc32c(0, "", 0), 0u);
	uint8_t z[32] = {0};
	cr_assert_eq(tu_crc32c(0, z, 32), 0x8A9136AAu); /* RFC 3720 B.4 */
}

static void roundtrip(uint32_t codec, uint32_t cs)
{
	const uint64_t q8rows = cs / 68 + 3; /* a little over one chunk */
	const struct tensor_spec specs[] = {
		{"token_embd.weight", FP_TYPE_F32, 2, {64, 300}, 'c'},
		{"blk.0.attn_q.weight", FP_TYPE_Q8_0, 2, {64, q8rows}, 'r'},
		{"blk.0.attn_norm.weight", FP_TYPE_F32, 1, {64}, 'c'},
		{"opaque", FP_TYPE_U8, 1, {2ull * cs + 12345}, 'a'},
		{"q4", FP_TYPE_Q4_0, 3, {64, 5, 3}, 'r'},
		{"f16.4d", FP_TYPE_F16, 4, {3, 5, 7, 2}, 'c'},
	};
	const char *meta = "arch=test\nnote=round trip\n";
	struct fp_writer_options opt = {.chunk_size = cs, .codec = codec};
	char *path = tu_join(g_dir, "rt.fpi");
	struct built b;
	cr_assert_eq(build_image(path, &opt, specs, 6, meta, &b, cs + codec), 0,
	             "writer failed: %s", fp_last_error());
	check_built(path, &b, codec, meta);

	fp_image *img = fp_image_open(path);
	cr_assert(img);
	char buf[64];
	cr_assert_eq(fp_image_meta(img, "arch", buf, sizeof buf), 0);
	cr_assert_str_eq(buf, "test");
	cr_assert_eq(fp_image_meta(img, "note", buf, sizeof buf), 0);
	cr_assert_str_eq(buf, "round trip");
	cr_assert_eq(fp_image_meta(img, "ar", buf, sizeof buf), -ENOENT);
	cr_assert_eq(fp_image_meta(img, "note", buf, 5), 0);
	cr_assert_str_eq(buf, "roun", "a value cut to the buffer");
	cr_assert_eq(fp_image_meta(img, "missing", buf, sizeof buf), -ENOENT);
	fp_image_close(img);
	const char *const expected[] = {"rt.fpi", NULL};
	char *extra = tu_dir_extras(g_dir, expected);
	cr_assert_str_eq(extra, "", "files left beside the image: %s", extra);
	free(extra);
	built_free(&b);
	free(path);
}

Test(format, roundtrip_raw_64k) { roundtrip(FP_CODEC_RAW, 64u << 10); }
Test(format, roundtrip_raw_256k) { roundtrip(FP_CODEC_RAW, 256u << 10); }
Test(format, roundtrip_raw_1m) { roundtrip(FP_CODEC_RAW, 1u << 20); }
Test(format, roundtrip_raw_4m) { roundtrip(FP_CODEC_RAW, 4u << 20); }
Test(format, roundtrip_zstd_64k) { roundtrip(FP_CODEC_ZSTD, 64u << 10); }
Test(format, roundtrip_zstd_256k) { roundtrip(FP_CODEC_ZSTD, 256u << 10); }
Test(format, roundtrip_zstd_1m) { roundtrip(FP_CODEC_ZSTD, 1u << 20); }
Test(format, roundtrip_zstd_4m) { roundtrip(FP_CODEC_ZSTD, 4u << 20); }

Test(format, writer_defaults_2m_chunks_and_zstd_level)
{
	/* chunk_size 0 means 2 MiB; zstd_level 0 means the default level. */
	const struct tensor_spec specs[] = {{"w", FP_TYPE_U8, 1, {(2u << 20) + 100}, 'c'}};
	struct fp_writer_options opt = {.codec = FP_CODEC_ZSTD};
	char *path = tu_join(g_dir, "d.fpi");
	struct built b;
	cr_assert_eq(build_image(path, &opt, specs, 1, NULL, &b, 11), 0, "%s", fp_last_error());
	cr_assert_eq(b.cs, 2u << 20);
	check_built(path, &b, FP_CODEC_ZSTD, NULL);
	built_free(&b);
	free(path);
}

Test(format, zstd_random_data_falls_back_to_raw)
{
	const struct tensor_spec specs[] = {{"noise", FP_TYPE_U8, 1, {3u * 65536 + 77}, 'r'}};
	struct fp_writer_options opt = {.chunk_size = 65536, .codec = FP_CODEC_ZSTD, .zstd_level = 19};
	char *path = tu_join(g_dir, "r.fpi");
	struct built b;
	cr_assert_eq(build_image(path, &opt, specs, 1, "", &b, 3), 0, "%s", fp_last_error());
	check_built(path, &b, FP_CODEC_ZSTD, "");
	fp_image *img = fp_image_open(path);
	cr_assert(img);
	for (uint32_t i = 0; i < 4; i++) {
		cr_assert_eq(fp_image_chunk(img, i)->codec, FP_CODEC_RAW, "chunk %u", i);
		cr_assert_eq(fp_image_chunk(img, i)->stored_len, fp_image_chunk(img, i)->logical_len);
	}
	cr_assert_eq(fp_image_info(img)->stored_bytes, fp_image_info(img)->data_bytes);
	fp_image_close(img);
	built_free(&b);
	free(path);
}

Test(format, zstd_compressible_data_shrinks)
{
	const struct tensor_spec specs[] = {{"text", FP_TYPE_U8, 1, {5u * 65536 + 9}, 'c'}};
	struct fp_writer_options opt = {.chunk_size = 65536, .codec = FP_CODEC_ZSTD};
	char *path = tu_join(g_dir, "c.fpi");
	struct built b;
	cr_assert_eq(build_image(path, &opt, specs, 1, NULL, &b, 4), 0, "%s", fp_last_error());
	fp_image *img = fp_image_open(path);
	cr_assert(img, "%s", fp_last_error());
	const struct fp_image_info *info = fp_image_info(img);
	cr_assert_lt(info->stored_bytes * 2, info->data_bytes, "compressible data stored %llu of %llu",
	             (unsigned long long)info->stored_bytes, (unsigned long long)info->data_bytes);
	struct stat st;
	cr_assert(!stat(path, &st));
	cr_assert_lt((uint64_t)st.st_size, info->data_bytes, "the zstd file is not smaller than its data");
	fp_image_close(img);
	check_built(path, &b, FP_CODEC_ZSTD, NULL);
	built_free(&b);
	free(path);
}
