/* GGUF bytes for the tests, from ggml's docs/gguf.md (see gguf_util.h). */
#include <stdlib.h>
#include <string.h>

#include "gguf_util.h"

void gb_bytes(struct gb *b, const void *p, size_t n)
{
	if (b->len + n > b->cap) {
		b->cap = (b->len + n) * 2 + 256;
		b->p = realloc(b->p, b->cap);
		if (!b->p)
			abort();
	}
	if (p)
		memcpy(b->p + b->len, p, n);
	else
		memset(b->p + b->len, 0, n);
	b->len += n;
}

void gb_u32(struct gb *b, uint32_t v) { gb_bytes(b, &v, 4); }
void gb_u64(struct gb *b, uint64_t v) { gb_bytes(b, &v, 8); }

void gb_str(struct gb *b, const char *s)
{
	gb_u64(b, strlen(s));
	gb_bytes(b, s, strlen(s));
}

void gb_pad(struct gb *b, size_t align)
{
	gb_bytes(b, NULL, (align - b->len % align) % align);
}

void gb_free(struct gb *b)
{
	free(b->p);
	*b = (struct gb){0};
}

void patch32(struct gb *b, size_t at, uint32_t v) { memcpy(b->p + at, &v, 4); }
void patch64(struct gb *b, size_t at, uint64_t v) { memcpy(b->p + at, &v, 8); }

/* GGUF's value type numbers, as the spec lists them. */
enum { T_U8 = 0, T_I32 = 5, T_U32 = 4, T_BOOL = 7, T_STR = 8, T_ARR = 9, T_I64 = 11 };

static void nested(struct gb *b, int depth)
{
	if (depth == 1) {
		gb_u32(b, T_U8);
		gb_u64(b, 2);
		gb_bytes(b, "\x01\x02", 2);
		return;
	}
	gb_u32(b, T_ARR);
	gb_u64(b, 1);
	nested(b, depth - 1);
}

void small_gguf(struct gb *b, struct small_gguf_at *at, const char *name0, int nest)
{
	*b = (struct gb){0};
	memset(at, 0, sizeof *at);
	gb_bytes(b, "GGUF", 4);
	at->version = b->len;
	gb_u32(b, 3);
	at->n_tensors = b->len;
	gb_u64(b, 3);
	at->n_kv = b->len;
	gb_u64(b, nest ? 7 : 6);

	gb_str(b, "general.architecture");
	at->arch_type = b->len;
	gb_u32(b, T_STR);
	at->arch_len = b->len;
	gb_str(b, "llama");
	gb_str(b, "general.alignment");
	at->align_type = b->len;
	gb_u32(b, T_U32);
	at->align_value = b->len;
	gb_u32(b, 32);
	gb_str(b, "test.flag");
	gb_u32(b, T_BOOL);
	at->flag_value = b->len;
	gb_bytes(b, "\x01", 1);
	gb_str(b, "test.list");
	gb_u32(b, T_ARR);
	at->list_elem_type = b->len;
	gb_u32(b, T_U32);
	at->list_n = b->len;
	gb_u64(b, 4);
	for (uint32_t i = 1; i <= 4; i++)
		gb_u32(b, i * 100);
	gb_str(b, "test.names");
	gb_u32(b, T_ARR);
	gb_u32(b, T_STR);
	gb_u64(b, 3);
	gb_str(b, "x");
	gb_str(b, "yy");
	gb_str(b, "zzz");
	gb_str(b, "test.flaX");
	at->last_key_char = b->len - 1;
	gb_u32(b, T_I64);
	gb_u64(b, (uint64_t)-5);
	if (nest) {
		gb_str(b, "test.nested");
		gb_u32(b, T_ARR);
		nested(b, nest);
	}

	static const struct {
		const char *name;
		uint32_t type, n_dims;
		uint64_t ne0, ne1, offset;
	} t[3] = {
		{"blk.0.a", 0, 2, 8, 4, 0},     /* f32: 128 bytes */
		{"blk.0.b", 8, 1, 64, 1, 128},  /* q8_0: 2 blocks of 34 */
		{"blk.0.c", 1, 1, 16, 1, 224},  /* f16: 32 bytes */
	};
	for (int i = 0; i < 3; i++) {
		gb_str(b, i == 0 && name0 ? name0 : t[i].name);
		at->t_name_last[i] = b->len - 1;
		at->t_n_dims[i] = b->len;
		gb_u32(b, t[i].n_dims);
		at->t_ne0[i] = b->len;
		gb_u64(b, t[i].ne0);
		at->t_ne1[i] = b->len;
		if (t[i].n_dims > 1)
			gb_u64(b, t[i].ne1);
		at->t_type[i] = b->len;
		gb_u32(b, t[i].type);
		at->t_offset[i] = b->len;
		gb_u64(b, t[i].offset);
	}
	at->info_end = b->len;
	gb_pad(b, 32);
	at->data_offset = b->len;
	for (int i = 0; i < 256; i++) {
		uint8_t v = (uint8_t)(i * 7 + 3);
		gb_bytes(b, &v, 1);
	}
}

/* ------------------------------------------------------------------ */

struct cur {
	const uint8_t *p;
	size_t len, pos;
};

static uint32_t r32(struct cur *c)
{
	uint32_t v = 0;
	if (c->pos + 4 <= c->len)
		memcpy(&v, c->p + c->pos, 4);
	c->pos += 4;
	return v;
}

static uint64_t r64(struct cur *c)
{
	uint64_t v = 0;
	if (c->pos + 8 <= c->len)
		memcpy(&v, c->p + c->pos, 8);
	c->pos += 8;
	return v;
}

static void skip(struct cur *c, uint32_t type)
{
	static const int fixed[13] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
	if (type == T_STR) {
		c->pos += r64(c);
	} else if (type == T_ARR) {
		uint32_t et = r32(c);
		uint64_t n = r64(c);
		for (uint64_t i = 0; i < n && c->pos < c->len; i++)
			skip(c, et);
	} else if (type < 13) {
		c->pos += (size_t)fixed[type];
	}
}

int gw_read(const uint8_t *p, size_t len, struct gw *g)
{
	struct cur c = {p, len, 4};
	memset(g, 0, sizeof *g);
	g->version = r32(&c);
	g->n_tensors = r64(&c);
	g->n_kv = r64(&c);
	if (g->n_kv > 32 || g->n_tensors > 64)
		return -1;
	g->alignment = 32;
	for (uint64_t i = 0; i < g->n_kv; i++) {
		uint64_t n = r64(&c);
		memcpy(g->keys[i], p + c.pos, n < 63 ? n : 63);
		c.pos += n;
		g->types[i] = r32(&c);
		g->value_at[i] = c.pos;
		if (!strcmp(g->keys[i], "general.alignment"))
			memcpy(&g->alignment, p + c.pos, 4);
		skip(&c, g->types[i]);
	}
	for (uint64_t i = 0; i < g->n_tensors; i++) {
		struct gw_tensor *t = &g->tensors[i];
		uint64_t n = r64(&c);
		memcpy(t->name, p + c.pos, n < 63 ? n : 63);
		c.pos += n;
		t->n_dims = r32(&c);
		for (uint32_t d = 0; d < 4; d++)
			t->ne[d] = d < t->n_dims ? r64(&c) : 1;
		t->type = r32(&c);
		t->offset = r64(&c);
	}
	g->info_end = c.pos;
	g->data_offset = (c.pos + g->alignment - 1) / g->alignment * g->alignment;
	return c.pos <= len ? 0 : -1;
}

/* (values, bytes) per block, from the block structs of ggml-common.h:
 * e.g. q4_K = 2 halves + 12 scale bytes + 128 nibble bytes per 256. */
static const uint32_t ref_sizes[42][2] = {
	[0] = {1, 4},      [1] = {1, 2},      [2] = {32, 18},    [3] = {32, 20},
	[6] = {32, 22},    [7] = {32, 24},    [8] = {32, 34},    [9] = {32, 36},
	[10] = {256, 84},  [11] = {256, 110}, [12] = {256, 144}, [13] = {256, 176},
	[14] = {256, 210}, [15] = {256, 292}, [16] = {256, 66},  [17] = {256, 74},
	[18] = {256, 98},  [19] = {256, 50},  [20] = {32, 18},   [21] = {256, 110},
	[22] = {256, 82},  [23] = {256, 136}, [24] = {1, 1},     [25] = {1, 2},
	[26] = {1, 4},     [27] = {1, 8},     [28] = {1, 8},     [29] = {256, 56},
	[30] = {1, 2},     [34] = {256, 54},  [35] = {256, 66},  [39] = {32, 17},
	[40] = {64, 36},   [41] = {128, 18},
};

uint32_t ref_block_elems(uint32_t type)
{
	return type < 42 ? ref_sizes[type][0] : 0;
}

uint32_t ref_block_bytes(uint32_t type)
{
	return type < 42 ? ref_sizes[type][1] : 0;
}
