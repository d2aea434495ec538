/* Helpers for the GGUF suites, written from ggml's docs/gguf.md and not
 * from libflexpage: a byte builder to craft GGUF files (good and broken),
 * a plain reader of well-formed GGUF headers, and ggml's type sizes. */
#ifndef FLEXPAGE_GGUF_UTIL_H
#define FLEXPAGE_GGUF_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* ---- building bytes ---- */
struct gb {
	uint8_t *p;
	size_t len, cap;
};
void gb_bytes(struct gb *b, const void *p, size_t n);
void gb_u32(struct gb *b, uint32_t v);
void gb_u64(struct gb *b, uint64_t v);
void gb_str(struct gb *b, const char *s);
void gb_pad(struct gb *b, size_t align);
void gb_free(struct gb *b);

/* A small GGUF v3 with one key of most value types and three tensors, and
 * where its fields lie, so a test can break exactly one of them. */
struct small_gguf_at {
	size_t version, n_tensors, n_kv;
	size_t arch_type, arch_len;          /* general.architecture: value type, string length */
	size_t align_type, align_value;      /* general.alignment (u32 32) */
	size_t flag_value;                   /* test.flag (bool) */
	size_t list_elem_type, list_n;       /* test.list (u32 x 4) */
	size_t last_key_char;                /* test.flaX: 'X' -> 'g' duplicates test.flag */
	size_t t_name_last[3], t_n_dims[3], t_ne0[3], t_ne1[3], t_type[3], t_offset[3];
	size_t info_end, data_offset;
};
/* tensor0 "blk.0.a" f32 [8, 4] at 0, tensor1 "blk.0.b" q8_0 [64] at 128,
 * tensor2 "blk.0.c" f16 [16] at 224; the data section is 256 bytes.
 * name0: tensor 0's name instead (NULL: "blk.0.a"); nest: add a key
 * "test.nested" of arrays nested that deep (0: none). */
void small_gguf(struct gb *b, struct small_gguf_at *at, const char *name0, int nest);
void patch32(struct gb *b, size_t at, uint32_t v);
void patch64(struct gb *b, size_t at, uint64_t v);

/* ---- reading a well-formed header, trusting it ---- */
struct gw_tensor {
	char name[64];
	uint32_t n_dims, type;
	uint64_t ne[4];
	uint64_t offset;                     /* from the data section */
};
struct gw {
	uint32_t version;
	uint64_t n_tensors, n_kv;
	char keys[32][64];
	uint32_t types[32];
	uint64_t value_at[32];               /* file offset of each value */
	uint32_t alignment;
	struct gw_tensor tensors[64];
	uint64_t info_end, data_offset;
};
/* 0, or -1 if the file is not what this reader can take (too many keys or
 * tensors for its arrays). */
int gw_read(const uint8_t *p, size_t len, struct gw *out);

/* ggml's block values and bytes per type (ggml-common.h's block structs);
 * 0 for numbers ggml does not use. */
uint32_t ref_block_elems(uint32_t type);
uint32_t ref_block_bytes(uint32_t type);

#endif
