/* The on-disk layout of an image (docs/format.md).  Little-endian; the
 * structs are packed exactly as they are stored. */
#ifndef FLEXPAGE_FORMAT_H
#define FLEXPAGE_FORMAT_H

#include <assert.h>
#include <stdint.h>

#include <flexpage/flexpage_experimental.h>

#define PG_HEADER_BYTES 128u     /* used part of the first 4 KiB */
#define PG_FLAG_RAW_LAYOUT 1u    /* payloads lie at raw_base + logical offset */
#define PG_FLAG_VERBATIM 8u      /* logical bytes [0, data) are a whole file's (FP_IMAGE_VERBATIM) */

struct pg_disk_header {
	char magic[8];
	uint32_t version;
	uint32_t header_size;
	uint64_t file_size;
	uint64_t logical_size;
	uint32_t chunk_size;
	uint32_t n_tensors;
	uint32_t n_chunks;
	uint32_t flags;
	uint64_t tensor_table_offset;
	uint64_t tensor_table_size;
	uint64_t chunk_table_offset;
	uint64_t chunk_table_size;
	uint64_t meta_offset;
	uint64_t meta_size;
	uint64_t raw_base;
	uint32_t tables_crc;     /* CRC-32C of tensor table, chunk table, alternates, meta */
	uint32_t n_alts;         /* version 4: entries of the alternate-form table, which
	                          * follows the chunk table (0 before version 4) */
	uint32_t reserved[3];
	uint32_t header_crc;     /* CRC-32C of the 124 bytes before it */
};
static_assert(sizeof(struct pg_disk_header) == PG_HEADER_BYTES, "header layout");

struct pg_disk_tensor {
	char name[FP_NAME_MAX];
	uint32_t type;
	uint32_t ndim;
	uint64_t shape[FP_MAX_DIMS];
	uint64_t offset;
	uint64_t size;
	uint64_t reserved;
};
static_assert(sizeof(struct pg_disk_tensor) == 128, "tensor entry layout");

/* A chunk entry, and an alternate-form entry, is stored exactly as struct
 * fp_chunk_desc. */
#define PG_VERSION_ALTS 4u       /* the first version with alternate forms */
static_assert(sizeof(struct fp_chunk_desc) == 32, "chunk entry layout");

/* CRC-32C by the fastest path this CPU has (crc32c.c); the paths one by
 * one, for the tests. */
uint32_t pg_crc32c(uint32_t crc, const void *buf, size_t len);
enum pg_crc_path { PG_CRC_TABLE, PG_CRC_SSE42, PG_CRC_FOLD };
int pg_crc32c_has(enum pg_crc_path path);
uint32_t pg_crc32c_path(enum pg_crc_path path, uint32_t crc, const void *buf, size_t len);
/* Bytes a tensor of this type and shape takes; 0 if invalid (bad type, a
 * quantized row not a multiple of the block, overflow). */
uint64_t pg_tensor_bytes(uint32_t type, uint32_t ndim, const uint64_t *shape);
/* The same for a verbatim image's tensor: any ggml type, or FP_TYPE_U8;
 * 0, or a negative errno as fp_ggml_nbytes gives it. */
int pg_verbatim_tensor_bytes(uint32_t type, uint32_t ndim, const uint64_t *shape, uint64_t *bytes);

#endif
