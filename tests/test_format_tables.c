/* The image format: fp_image_open refuses bad chunk and tensor tables
 * (order, offsets, overlaps, types, shapes, names) and bad meta. */
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

static void swap_entries(tu_file *f, uint64_t a, uint64_t b, size_t n)
{
	uint8_t tmp[128];
	memcpy(tmp, f->data + a, n);
	memcpy(f->data + a, f->data + b, n);
	memcpy(f->data + b, tmp, n);
}

Test(format, chunk_entries_out_of_order, .init = base_zstd, .fini = base_fini)
{
	tu_file f = load_base();
	swap_entries(&f, tu_chunk_at(&f, 1), tu_chunk_at(&f, 2), TU_C_BYTES);
	store(&f, 1);
	EXPECT_OPEN_FAILS(g_img, EBADMSG, "chunk entries 1 and 2 swapped", "order|logical_offset");
}

Test(format, chunk_logical_offset_wrong, .init = base_zstd, .fini = base_fini)
{
	tu_file f = load_base();
	uint64_t e = tu_chunk_at(&f, 3);
	tu_set64(&f, e, tu_get64(&f, e) + 4096);
	store(&f, 1);
	EXPECT_OPEN_FAILS(g_img, EBADMSG, "chunk 3 at logical offset 3 x 64K + 4K", "order|logical_offset|align");
}

Test(format, chunk_logical_len_past_chunk_size, .init = base_zstd, .fini = base_fini)
{
	tu_file f = load_base();
	tu_set32(&f, tu_chunk_at(&f, 4) + TU_C_LOGICAL_LEN, 65537);
	store(&f, 1);
	EXPECT_OPEN_FAILS(g_img, EBADMSG, "logical_len 65537 > chunk_size", "logical_len", "chunk 4");
}

Test(format, raw_chunk_stored_len_mismatch, .init = base_raw, .fini = base_fini)
{
	tu_file f = load_base();
	uint64_t e = tu_chunk_at(&f, 4);
	tu_set32(&f, e + TU_C_STORED_LEN, tu_get32(&f, e + TU_C_LOGICAL_LEN) + 1);
	store(&f, 1);
	EXPECT_OPEN_FAILS(g_img, EBADMSG, "a raw chunk with stored_len != logical_len", "stored_len", "chunk 4");
}

Test(format, payload_unaligned, .init = base_zstd, .fini = base_fini)
{
	tu_file f = load_base();
	uint64_t e = tu_chunk_at(&f, 1), n = tu_chunk_at(&f, 2);
	uint64_t off = tu_get64(&f, e + TU_C_FILE_OFFSET) + 512;
	cr_assert_leq(off + tu_get32(&f, e + TU_C_STORED_LEN), tu_get64(&f, n + TU_C_FILE_OFFSET),
	              "test set-up: the shifted payload would overlap the next");
	tu_set64(&f, e + TU_C_FILE_OFFSET, off);
	store(&f, 1);
	EXPECT_OPEN_FAILS(g_img, EBADMSG, "an unaligned payload", "file_offset|align", "chunk 1");
}

Test(format, payload_in_header, .init = base_zstd, .fini = base_fini)
{
	tu_file f = load_base();
	tu_set64(&f, tu_chunk_at(&f, 0) + TU_C_FILE_OFFSET, 0);
	store(&f, 1);
	EXPECT_OPEN_FAILS(g_img, EBADMSG, "a payload at file offset 0", "payload|file_offset", "chunk 0");
}

Test(format, payload_over_tables, .init = base_zstd, .fini = base_fini)
{
	tu_file f = load_base();
	uint64_t tables = tu_get64(&f, TU_H_TT_OFFSET);
	cr_assert_eq(tables % 4096, 0, "test set-up: tables not 4 KiB aligned");
	tu_set64(&f, tu_chunk_at(&f, 2) + TU_C_FILE_OFFSET, tables);
	store(&f, 1);
	EXPECT_OPEN_FAILS(g_img, EBADMSG, "a payload over the tables", "payload|file_offset|outside", "chunk 2");
}

Test(format, payload_past_file, .init = base_zstd, .fini = base_fini)
{
	tu_file f = load_base();
	tu_set64(&f, tu_chunk_at(&f, 2) + TU_C_FILE_OFFSET, align_up(f.len, 4096) + 4096);
	store(&f, 1);
	EXPECT_OPEN_FAILS(g_img, EBADMSG, "a payload past the end", "payload|file_offset|outside", "chunk 2");
	f = load_base();
	tu_set64(&f, tu_chunk_at(&f, 2) + TU_C_FILE_OFFSET, UINT64_MAX & ~4095ull);
	store(&f, 1);
	EXPECT_OPEN_FAILS(g_img, EBADMSG, "a payload whose end wraps", "payload|file_offset|outside", "chunk 2");
}

Test(format, payloads_overlap, .init = base_zstd, .fini = base_fini)
{
	tu_file f = load_base();
	tu_set64(&f, tu_chunk_at(&f, 1) + TU_C_FILE_OFFSET,
	         tu_get64(&f, tu_chunk_at(&f, 0) + TU_C_FILE_OFFSET));
	store(&f, 1);
	EXPECT_OPEN_FAILS(g_img, EBADMSG, "two payloads at one offset", "overlap");
}

Test(format, payloads_overlap_partially, .init = base_raw, .fini = base_fini)
{
	/* Without the raw-layout flag, chunk 3 starting inside chunk 2. */
	tu_file f = load_base();
	tu_set32(&f, TU_H_FLAGS, 0);
	tu_set64(&f, TU_H_RAW_BASE, 0);
	tu_set64(&f, tu_chunk_at(&f, 3) + TU_C_FILE_OFFSET,
	         tu_get64(&f, tu_chunk_at(&f, 2) + TU_C_FILE_OFFSET) + 65536 - 4096);
	store(&f, 1);
	EXPECT_OPEN_FAILS(g_img, EBADMSG, "a payload starting inside the previous one", "overlap");
}

Test(format, tensor_offset_unaligned, .init = base_raw, .fini = base_fini)
{
	tu_file f = load_base();
	uint64_t e = tu_tensor_at(&f, 1) + TU_T_OFFSET;
	tu_set64(&f, e, tu_get64(&f, e) + 100);
	store(&f, 1);
	EXPECT_OPEN_FAILS(g_img, EBADMSG, "a tensor off a page boundary", "offset|align", "blob");
}

Test(format, tensors_overlap, .init = base_raw, .fini = base_fini)
{
	tu_file f = load_base();
	tu_set64(&f, tu_tensor_at(&f, 1) + TU_T_OFFSET, 65536); /* inside tok_embd */
	store(&f, 1);
	EXPECT_OPEN_FAILS(g_img, EBADMSG, "overlapping tensors", "overlap|order", "blob");
}

Test(format, tensors_out_of_order, .init = base_raw, .fini = base_fini)
{
	tu_file f = load_base();
	swap_entries(&f, tu_tensor_at(&f, 0), tu_tensor_at(&f, 1), TU_T_BYTES);
	store(&f, 1);
	EXPECT_OPEN_FAILS(g_img, EBADMSG, "tensor entries out of order", "order|overlap|ascending");
}

Test(format, tensor_past_logical_size, .init = base_raw, .fini = base_fini)
{
	tu_file f = load_base();
	tu_set64(&f, tu_tensor_at(&f, 2) + TU_T_OFFSET, 5 * 65536);
	store(&f, 1);
	EXPECT_OPEN_FAILS(g_img, EBADMSG, "a tensor at the logical size", "logical", "norm");
	/* Starting inside the layout but ending past it. */
	f = load_base();
	uint64_t e = tu_tensor_at(&f, 2);
	tu_set64(&f, e + TU_T_SHAPE + 8, 2000);
	tu_set64(&f, e + TU_T_SIZE, 34 * 2000);
	store(&f, 1);
	EXPECT_OPEN_FAILS(g_img, EBADMSG, "a tensor running past the logical size", "logical|past|chunk", "norm");
}

Test(format, tensor_offset_overflow, .init = base_raw, .fini = base_fini)
{
	tu_file f = load_base();
	tu_set64(&f, tu_tensor_at(&f, 2) + TU_T_OFFSET, UINT64_MAX & ~65535ull);
	store(&f, 1);
	EXPECT_OPEN_FAILS(g_img, EBADMSG, "a tensor offset near 2^64", "logical|past|offset", "norm");
}

Test(format, tensor_size_mismatch, .init = base_raw, .fini = base_fini)
{
	tu_file f = load_base();
	uint64_t e = tu_tensor_at(&f, 0) + TU_T_SIZE;
	tu_set64(&f, e, tu_get64(&f, e) + 4);
	store(&f, 1);
	EXPECT_OPEN_FAILS(g_img, EBADMSG, "size != type x shape", "size", "tok_embd");
}

Test(format, tensor_shape_mismatch, .init = base_raw, .fini = base_fini)
{
	tu_file f = load_base();
	tu_set64(&f, tu_tensor_at(&f, 0) + TU_T_SHAPE + 8, 301); /* 64 x 301 f32 != 76800 */
	store(&f, 1);
	EXPECT_OPEN_FAILS(g_img, EBADMSG, "shape not matching size", "size|shape", "tok_embd");
}

Test(format, quantized_row_not_multiple_of_32, .init = base_raw, .fini = base_fini)
{
	tu_file f = load_base();
	uint64_t e = tu_tensor_at(&f, 2);
	tu_set64(&f, e + TU_T_SHAPE, 16);  /* q8_0 16 x 20: not whole blocks */
	tu_set64(&f, e + TU_T_SHAPE + 8, 20);
	store(&f, 1);
	EXPECT_OPEN_FAILS(g_img, EBADMSG, "a q8_0 row of 16 values", "size|shape|block", "norm");
}

Test(format, tensor_shape_product_overflows, .init = base_raw, .fini = base_fini)
{
	tu_file f = load_base();
	uint64_t e = tu_tensor_at(&f, 1);
	/* 100000 x (2^59 + 1) does not fit in 64 bits. */
	tu_set32(&f, e + TU_T_NDIM, 2);
	tu_set64(&f, e + TU_T_SHAPE, 100000);
	tu_set64(&f, e + TU_T_SHAPE + 8, (1ull << 59) + 1);
	store(&f, 1);
	EXPECT_OPEN_FAILS(g_img, EBADMSG, "a shape whose product overflows", "size|shape|overflow", "blob");
}

Test(format, tensor_ndim_out_of_range, .init = base_raw, .fini = base_fini)
{
	static const uint32_t ndims[] = {0, 5, 0xFFFFFFFFu};
	for (size_t k = 0; k < 3; k++) {
		tu_file f = load_base();
		tu_set32(&f, tu_tensor_at(&f, 1) + TU_T_NDIM, ndims[k]);
		store(&f, 1);
		EXPECT_OPEN_FAILS(g_img, EBADMSG, "ndim out of 1-4", "ndim", "blob");
	}
}

Test(format, tensor_duplicate_name, .init = base_raw, .fini = base_fini)
{
	tu_file f = load_base();
	uint64_t e = tu_tensor_at(&f, 2);
	memset(f.data + e, 0, 64);
	strcpy((char *)f.data + e, "tok_embd");
	store(&f, 1);
	EXPECT_OPEN_FAILS(g_img, EBADMSG, "a duplicated tensor name", "twice|duplicate", "tok_embd");
}

Test(format, tensor_empty_name, .init = base_raw, .fini = base_fini)
{
	tu_file f = load_base();
	memset(f.data + tu_tensor_at(&f, 1), 0, 64);
	store(&f, 1);
	EXPECT_OPEN_FAILS(g_img, EBADMSG, "an empty tensor name", "name");
}

Test(format, tensor_name_not_terminated, .init = base_raw, .fini = base_fini)
{
	tu_file f = load_base();
	memset(f.data + tu_tensor_at(&f, 1), 'a', 64);
	store(&f, 1);
	EXPECT_OPEN_FAILS(g_img, EBADMSG, "a 64-byte tensor name without NUL", "name");
}

Test(format, no_tensors, .init = base_raw, .fini = base_fini)
{
	tu_file f = load_base();
	tu_set32(&f, TU_H_N_TENSORS, 0);
	tu_set64(&f, TU_H_TT_SIZE, 0);
	store(&f, 1);
	EXPECT_OPEN_FAILS(g_img, EBADMSG, "n_tensors 0", "tensor");
}

Test(format, no_chunks, .init = base_raw, .fini = base_fini)
{
	tu_file f = load_base();
	tu_set32(&f, TU_H_N_CHUNKS, 0);
	tu_set64(&f, TU_H_CT_SIZE, 0);
	tu_set64(&f, TU_H_LOGICAL_SIZE, 0);
	store(&f, 1);
	EXPECT_OPEN_FAILS(g_img, EBADMSG, "n_chunks 0", "n_chunks|chunk");
}

Test(format, chunk_too_short_for_tensor, .init = base_raw, .fini = base_fini)
{
	tu_file f = load_base();
	uint64_t e = tu_chunk_at(&f, 3); /* blob's last chunk: 34464 bytes */
	uint32_t len = tu_get32(&f, e + TU_C_LOGICAL_LEN) - 1;
	tu_set32(&f, e + TU_C_LOGICAL_LEN, len);
	tu_set32(&f, e + TU_C_STORED_LEN, len);
	tu_set32(&f, e + TU_C_CHECKSUM, tu_crc32c(0, g_b.layout + 3 * 65536, len));
	store(&f, 1);
	EXPECT_OPEN_FAILS(g_img, EBADMSG, "a chunk holding less than its tensor needs", "blob",
	                  "chunk 3|logical_len");
}

Test(format, full_chunk_too_short_for_tensor, .init = base_zstd, .fini = base_fini)
{
	tu_file f = load_base();
	uint64_t e = tu_chunk_at(&f, 2); /* blob's first chunk: a full 64K, raw */
	tu_set32(&f, e + TU_C_LOGICAL_LEN, 65535);
	tu_set32(&f, e + TU_C_STORED_LEN, 65535);
	tu_set32(&f, e + TU_C_CHECKSUM, tu_crc32c(0, g_b.layout + 2 * 65536, 65535));
	store(&f, 1);
	EXPECT_OPEN_FAILS(g_img, EBADMSG, "a middle chunk one byte short", "blob", "chunk 2|logical_len");
}

Test(format, empty_chunk_under_tensor, .init = base_raw, .fini = base_fini)
{
	tu_file f = load_base();
	uint64_t e = tu_chunk_at(&f, 4);
	tu_set32(&f, e + TU_C_LOGICAL_LEN, 0);
	tu_set32(&f, e + TU_C_STORED_LEN, 0);
	tu_set32(&f, e + TU_C_CHECKSUM, 0);
	store(&f, 1);
	EXPECT_OPEN_FAILS(g_img, EBADMSG, "an empty chunk under a tensor", "norm", "chunk 4|logical_len");
}

Test(format, meta_with_nul, .init = base_raw, .fini = base_fini)
{
	tu_file f = load_base();
	f.data[tu_get64(&f, TU_H_META_OFFSET) + 2] = 0;
	store(&f, 1);
	EXPECT_OPEN_FAILS(g_img, EBADMSG, "a NUL inside meta", "meta");
}
