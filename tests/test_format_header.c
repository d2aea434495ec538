/* The image format: fp_image_open refuses every bad header field
 * docs/format.md lists, with its errno and a message naming the field. */
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

Test(format, base_image_is_valid, .init = base_raw, .fini = base_fini)
{
	check_built(g_img, &g_b, FP_CODEC_RAW, "arch=test\n");
}

Test(format, base_zstd_image_is_valid, .init = base_zstd, .fini = base_fini)
{
	check_built(g_img, &g_b, FP_CODEC_ZSTD, "arch=test\n");
}

Test(format, missing_file)
{
	char *p = tu_join(g_dir, "nonexistent.fpi");
	EXPECT_OPEN_FAILS(p, ENOENT, "a missing file", "open|no such");
	free(p);
}

Test(format, directory_is_not_an_image)
{
	EXPECT_OPEN_FAILS(g_dir, EINVAL, "a directory", "regular|directory|not a|open");
}

Test(format, empty_file)
{
	char *p = tu_join(g_dir, "empty.fpi");
	cr_assert(!tu_write_file(p, "", 0));
	EXPECT_OPEN_FAILS(p, EBADMSG, "an empty file", "short|truncat|size");
	free(p);
}

Test(format, file_shorter_than_4096, .init = base_raw, .fini = base_fini)
{
	tu_file f = load_base();
	static const size_t cuts[] = {1, 100, 127, 128, 129, 4095};
	for (size_t k = 0; k < sizeof cuts / sizeof cuts[0]; k++) {
		f.len = cuts[k];
		cr_assert(!tu_save(g_img, &f));
		EXPECT_OPEN_FAILS(g_img, EBADMSG, "a file shorter than 4096 bytes", "short|truncat|file_size");
	}
	tu_free(&f);
}

Test(format, bad_magic, .init = base_raw, .fini = base_fini)
{
	tu_file f = load_base();
	f.data[0] = 'X';
	store(&f, 1);
	EXPECT_OPEN_FAILS(g_img, EBADMSG, "bad magic", "magic");
}

Test(format, bad_version, .init = base_raw, .fini = base_fini)
{
	tu_file f = load_base();
	tu_set32(&f, TU_H_VERSION, FP_IMAGE_VERSION + 1);
	store(&f, 1);
	EXPECT_OPEN_FAILS(g_img, ENOTSUP, "a version past the newest", "version");
}

Test(format, bad_version_zero, .init = base_raw, .fini = base_fini)
{
	tu_file f = load_base();
	tu_set32(&f, TU_H_VERSION, 0);
	store(&f, 1);
	EXPECT_OPEN_FAILS(g_img, EBADMSG, "version 0", "version");
}

Test(format, bad_header_size, .init = base_raw, .fini = base_fini)
{
	tu_file f = load_base();
	tu_set32(&f, TU_H_HEADER_SIZE, 256);
	store(&f, 1);
	EXPECT_OPEN_FAILS(g_img, EBADMSG, "header_size 256", "header_size");
}

Test(format, header_checksum_mismatch, .init = base_raw, .fini = base_fini)
{
	tu_file f = load_base();
	tu_set32(&f, TU_H_HEADER_CRC, tu_get32(&f, TU_H_HEADER_CRC) ^ 0x100);
	store(&f, 0);
	EXPECT_OPEN_FAILS(g_img, EBADMSG, "a wrong header_crc", "checksum|crc", "header");
}

Test(format, header_checksum_covers_every_field, .init = base_raw, .fini = base_fini)
{
	/* A changed field with the old header_crc: the checksum catches it
	 * even where the field itself would be plausible. */
	static const struct {
		uint32_t off;
		const char *alts;
	} fields[] = {
		{TU_H_FILE_SIZE, "checksum|crc|file_size"}, {TU_H_LOGICAL_SIZE, "checksum|crc|logical_size"},
		{TU_H_META_SIZE, "checksum|crc|meta"},      {TU_H_TABLES_CRC, "checksum|crc"},
		{TU_H_RESERVED, "checksum|crc|reserved"},   {TU_H_RESERVED + 12, "checksum|crc|reserved"},
	};
	for (size_t k = 0; k < sizeof fields / sizeof fields[0]; k++) {
		tu_file f = load_base();
		f.data[fields[k].off] ^= 0x01;
		store(&f, 0);
		EXPECT_OPEN_FAILS(g_img, EBADMSG, "a header byte changed under its checksum", fields[k].alts);
	}
}

Test(format, truncated_by_one_byte, .init = base_raw, .fini = base_fini)
{
	tu_file f = load_base();
	f.len -= 1;
	store(&f, 0);
	EXPECT_OPEN_FAILS(g_img, EBADMSG, "a file one byte short", "file_size|truncat");
}

Test(format, truncated_inside_payloads, .init = base_zstd, .fini = base_fini)
{
	tu_file f = load_base();
	f.len = 4096 + 1000;
	store(&f, 0);
	EXPECT_OPEN_FAILS(g_img, EBADMSG, "a file cut inside the payloads", "file_size|truncat");
}

Test(format, extended_file, .init = base_raw, .fini = base_fini)
{
	tu_file f = load_base();
	uint8_t *p = realloc(f.data, f.len + 4096);
	cr_assert(p);
	memset(p + f.len, 0, 4096);
	f.data = p;
	f.len += 4096;
	store(&f, 0);
	EXPECT_OPEN_FAILS(g_img, EBADMSG, "a file longer than file_size", "file_size|extended");
}

static void set_chunk_size(uint32_t cs)
{
	tu_file f = load_base();
	tu_set32(&f, TU_H_CHUNK_SIZE, cs);
	/* Keep logical_size consistent so that only chunk_size is wrong. */
	tu_set64(&f, TU_H_LOGICAL_SIZE, (uint64_t)tu_get32(&f, TU_H_N_CHUNKS) * cs);
	store(&f, 1);
}

Test(format, chunk_size_not_power_of_two, .init = base_raw, .fini = base_fini)
{
	set_chunk_size(65536 + 4096);
	EXPECT_OPEN_FAILS(g_img, EBADMSG, "chunk_size 69632", "chunk_size");
}

Test(format, chunk_size_below_64k, .init = base_raw, .fini = base_fini)
{
	set_chunk_size(32768);
	EXPECT_OPEN_FAILS(g_img, EBADMSG, "chunk_size 32K", "chunk_size");
}

Test(format, chunk_size_above_4m, .init = base_raw, .fini = base_fini)
{
	set_chunk_size(8u << 20);
	EXPECT_OPEN_FAILS(g_img, EBADMSG, "chunk_size 8M", "chunk_size");
}

Test(format, chunk_size_zero, .init = base_raw, .fini = base_fini)
{
	set_chunk_size(0);
	EXPECT_OPEN_FAILS(g_img, EBADMSG, "chunk_size 0", "chunk_size");
}

Test(format, logical_size_mismatch, .init = base_raw, .fini = base_fini)
{
	tu_file f = load_base();
	tu_set64(&f, TU_H_LOGICAL_SIZE, tu_get64(&f, TU_H_LOGICAL_SIZE) + 65536);
	store(&f, 1);
	EXPECT_OPEN_FAILS(g_img, EBADMSG, "logical_size != n_chunks x chunk_size", "logical_size");
}

Test(format, logical_size_wrapped_to_32_bits, .init = base_raw, .fini = base_fini)
{
	/* n_chunks = 65541: n_chunks x 65536 = 2^32 + 5 x 65536, which a
	 * 32-bit product wraps to the base image's logical_size. */
	tu_file f = load_base();
	tu_set32(&f, TU_H_N_CHUNKS, 65536 + 5);
	store(&f, 1);
	EXPECT_OPEN_FAILS(g_img, EBADMSG, "logical_size equal to a wrapped 32-bit n_chunks x chunk_size",
	                  "logical_size|n_chunks|chunk_table");
}

Test(format, huge_n_chunks_consistent_sizes, .init = base_raw, .fini = base_fini)
{
	/* The largest counts the fields can hold, each consistent with the
	 * others: the chunk table (128 GiB) cannot be in the file. */
	tu_file f = load_base();
	uint64_t n = 0xFFFFFFFFu;
	tu_set32(&f, TU_H_CHUNK_SIZE, 4u << 20);
	tu_set32(&f, TU_H_N_CHUNKS, (uint32_t)n);
	tu_set64(&f, TU_H_LOGICAL_SIZE, n * (4u << 20));
	tu_set64(&f, TU_H_CT_SIZE, n * 32);
	store(&f, 1);
	EXPECT_OPEN_FAILS(g_img, EBADMSG, "a 2^32-1 chunk table", "chunk_table|n_chunks|large");
}

Test(format, logical_size_overflow_u64, .init = base_raw, .fini = base_fini)
{
	/* A logical_size near 2^64 (a multiple of chunk_size, as a sum that
	 * wrapped would give). */
	tu_file f = load_base();
	tu_set64(&f, TU_H_LOGICAL_SIZE, 0xFFFFFFFFFFFF0000ull);
	store(&f, 1);
	EXPECT_OPEN_FAILS(g_img, EBADMSG, "logical_size near 2^64", "logical_size");
}

Test(format, tensor_table_size_not_fitting_count, .init = base_raw, .fini = base_fini)
{
	tu_file f = load_base();
	tu_set64(&f, TU_H_TT_SIZE, tu_get64(&f, TU_H_TT_SIZE) + 128);
	store(&f, 1);
	EXPECT_OPEN_FAILS(g_img, EBADMSG, "tensor_table_size != n_tensors x 128", "tensor_table_size|n_tensors");
}

Test(format, tensor_table_size_wrapped_to_32_bits, .init = base_raw, .fini = base_fini)
{
	/* n_tensors = 2^25 + 3: n_tensors x 128 wraps to 384 in 32 bits. */
	tu_file f = load_base();
	tu_set32(&f, TU_H_N_TENSORS, (1u << 25) + 3);
	store(&f, 1);
	EXPECT_OPEN_FAILS(g_img, EBADMSG, "tensor_table_size equal to a wrapped 32-bit product",
	                  "tensor_table|n_tensors");
}

Test(format, chunk_table_size_not_fitting_count, .init = base_raw, .fini = base_fini)
{
	tu_file f = load_base();
	tu_set64(&f, TU_H_CT_SIZE, tu_get64(&f, TU_H_CT_SIZE) - 32);
	store(&f, 1);
	EXPECT_OPEN_FAILS(g_img, EBADMSG, "chunk_table_size != n_chunks x 32", "chunk_table_size|n_chunks");
}

Test(format, tensor_table_outside_file, .init = base_raw, .fini = base_fini)
{
	tu_file f = load_base();
	uint64_t fsize = f.len;
	tu_set64(&f, TU_H_TT_OFFSET, fsize - 128);
	store(&f, 1);
	EXPECT_OPEN_FAILS(g_img, EBADMSG, "tensor table past the end", "tensor_table|tensor table");
	f = load_base();
	tu_set64(&f, TU_H_TT_OFFSET, UINT64_MAX - 100); /* offset + size wraps */
	store(&f, 1);
	EXPECT_OPEN_FAILS(g_img, EBADMSG, "tensor table offset wrapping", "tensor_table|tensor table");
}

Test(format, chunk_table_outside_file, .init = base_raw, .fini = base_fini)
{
	tu_file f = load_base();
	tu_set64(&f, TU_H_CT_OFFSET, f.len - 16);
	store(&f, 1);
	EXPECT_OPEN_FAILS(g_img, EBADMSG, "chunk table past the end", "chunk_table|chunk table");
	f = load_base();
	tu_set64(&f, TU_H_CT_OFFSET, UINT64_MAX - 31);
	store(&f, 1);
	EXPECT_OPEN_FAILS(g_img, EBADMSG, "chunk table offset wrapping", "chunk_table|chunk table");
}

Test(format, meta_outside_file, .init = base_raw, .fini = base_fini)
{
	tu_file f = load_base();
	tu_set64(&f, TU_H_META_SIZE, 1ull << 40);
	store(&f, 1);
	EXPECT_OPEN_FAILS(g_img, EBADMSG, "meta past the end", "meta");
}

Test(format, tables_checksum_tensor_table, .init = base_raw, .fini = base_fini)
{
	tu_file f = load_base();
	f.data[tu_tensor_at(&f, 1) + 1] ^= 0x20; /* "blob" -> "bLob" */
	store(&f, 0);
	EXPECT_OPEN_FAILS(g_img, EBADMSG, "a changed tensor entry", "checksum|crc", "table");
}

Test(format, tables_checksum_chunk_table, .init = base_raw, .fini = base_fini)
{
	tu_file f = load_base();
	f.data[tu_chunk_at(&f, 3) + TU_C_CHECKSUM] ^= 0x01;
	store(&f, 0);
	EXPECT_OPEN_FAILS(g_img, EBADMSG, "a changed chunk entry", "checksum|crc", "table");
}

Test(format, tables_checksum_meta, .init = base_raw, .fini = base_fini)
{
	tu_file f = load_base();
	f.data[tu_get64(&f, TU_H_META_OFFSET)] ^= 0x01;
	store(&f, 0);
	EXPECT_OPEN_FAILS(g_img, EBADMSG, "changed meta", "checksum|crc");
}

Test(format, tables_crc_field_wrong, .init = base_raw, .fini = base_fini)
{
	tu_file f = load_base();
	tu_set32(&f, TU_H_TABLES_CRC, tu_get32(&f, TU_H_TABLES_CRC) + 1);
	tu_fix_header_crc(&f);
	store(&f, 0);
	EXPECT_OPEN_FAILS(g_img, EBADMSG, "a wrong tables_crc", "checksum|crc", "table");
}

Test(format, unknown_flags, .init = base_raw, .fini = base_fini)
{
	static const uint32_t bits[] = {2, 4, 0x80000000u};
	for (size_t k = 0; k < 3; k++) {
		tu_file f = load_base();
		tu_set32(&f, TU_H_FLAGS, tu_get32(&f, TU_H_FLAGS) | bits[k]);
		store(&f, 1);
		EXPECT_OPEN_FAILS(g_img, EBADMSG, "an unknown flag", "flags");
	}
}

Test(format, raw_flag_on_zstd_image, .init = base_zstd, .fini = base_fini)
{
	tu_file f = load_base();
	tu_set32(&f, TU_H_FLAGS, 1);
	tu_set64(&f, TU_H_RAW_BASE, 4096);
	store(&f, 1);
	EXPECT_OPEN_FAILS(g_img, EBADMSG, "the raw-layout flag on zstd payloads", "raw");
}

Test(format, raw_base_wrong, .init = base_raw, .fini = base_fini)
{
	tu_file f = load_base();
	tu_set64(&f, TU_H_RAW_BASE, 8192);
	store(&f, 1);
	EXPECT_OPEN_FAILS(g_img, EBADMSG, "raw_base 8192 while payloads lie at 4096", "raw");
}

Test(format, raw_layout_range_past_file, .init = base_raw, .fini = base_fini)
{
	/* Move the tables to just after the last chunk's data, so the file
	 * range [raw_base, raw_base + logical_size) that the raw-layout flag
	 * promises as the logical layout runs through the tables and past
	 * the end of the file (a mapping of it would show table bytes as
	 * padding and SIGBUS past the end).  Every payload is still in place. */
	tu_file f = load_base();
	uint64_t to = tu_get64(&f, TU_H_TT_OFFSET);
	uint64_t tlen = f.len - to; /* tensor table, chunk table, meta */
	cr_assert_eq(tu_get64(&f, TU_H_CT_OFFSET), to + tu_get64(&f, TU_H_TT_SIZE));
	uint64_t last = tu_chunk_at(&f, 4);
	uint64_t nt = align_up(tu_get64(&f, last + TU_C_FILE_OFFSET) + tu_get32(&f, last + TU_C_LOGICAL_LEN), 4096);
	cr_assert_lt(nt + tlen, 4096 + 5 * 65536, "test set-up");
	memmove(f.data + nt, f.data + to, tlen);
	f.len = nt + tlen;
	tu_set64(&f, TU_H_TT_OFFSET, nt);
	tu_set64(&f, TU_H_CT_OFFSET, tu_get64(&f, TU_H_CT_OFFSET) - to + nt);
	tu_set64(&f, TU_H_META_OFFSET, tu_get64(&f, TU_H_META_OFFSET) - to + nt);
	tu_set64(&f, TU_H_FILE_SIZE, f.len);
	store(&f, 1);
	EXPECT_OPEN_FAILS(g_img, EBADMSG, "a raw layout that runs past the file", "raw");
}

Test(format, unknown_codec, .init = base_raw, .fini = base_fini)
{
	tu_file f = load_base();
	tu_set32(&f, tu_chunk_at(&f, 4) + TU_C_CODEC, 3);
	store(&f, 1);
	EXPECT_OPEN_FAILS(g_img, EBADMSG, "codec 3", "codec", "chunk 4");
}

/* zstd-split came with version 3: a version 2 image cannot hold it */
Test(format, split_codec_needs_version_3, .init = base_raw, .fini = base_fini)
{
	tu_file f = load_base();
	cr_assert_eq(tu_get32(&f, TU_H_VERSION), 2);
	tu_set32(&f, tu_chunk_at(&f, 4) + TU_C_CODEC, FP_CODEC_ZSTD_SPLIT);
	store(&f, 1);
	EXPECT_OPEN_FAILS(g_img, EBADMSG, "zstd-split in version 2", "zstd-split", "version 2",
	                  "chunk 4");
}

Test(format, unknown_type, .init = base_raw, .fini = base_fini)
{
	static const uint32_t types[] = {3, 7, 199, 201, 0xFFFFFFFFu};
	for (size_t k = 0; k < sizeof types / sizeof types[0]; k++) {
		tu_file f = load_base();
		tu_set32(&f, tu_tensor_at(&f, 1) + TU_T_TYPE, types[k]);
		store(&f, 1);
		EXPECT_OPEN_FAILS(g_img, EBADMSG, "an unknown tensor type", "type");
	}
}
