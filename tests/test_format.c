/* The image format, at library level: the writer, fp_image_open's
 * validation of every field docs/format.md lists, payload checks in
 * fp_image_read_chunk, writer misuse, and random corruption.
 *
 * References are independent of the library: the bytes the test generated,
 * the file read plainly, the header parsed by offsets from docs/format.md,
 * a bitwise CRC-32C (testutil.c) and libzstd called directly. */
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

#include "testutil.h"

static char *g_dir;

static void setup(void)
{
	g_dir = tu_tmpdir();
	cr_assert(g_dir, "cannot create a temporary directory under /var/tmp or /tmp");
}

static void teardown(void)
{
	tu_rmtree(g_dir);
	free(g_dir);
	g_dir = NULL;
}

TestSuite(format, .init = setup, .fini = teardown, .timeout = 60);

/* ------------------------------------------------------------------ */
/* Independent references                                               */

/* Bytes a tensor takes, from the table in docs/format.md. */
static uint64_t ref_bytes(uint32_t type, uint32_t ndim, const uint64_t *shape)
{
	uint64_t per, block;
	switch (type) {
	case 0: per = 4, block = 1; break;    /* f32 */
	case 1: per = 2, block = 1; break;    /* f16 */
	case 2: per = 18, block = 32; break;  /* q4_0 */
	case 8: per = 34, block = 32; break;  /* q8_0 */
	case 200: per = 1, block = 1; break;  /* u8 */
	default: return 0;
	}
	if (ndim < 1 || ndim > 4 || !shape[0] || shape[0] % block)
		return 0;
	unsigned __int128 n = (unsigned __int128)(shape[0] / block) * per;
	for (uint32_t d = 1; d < ndim; d++) {
		if (!shape[d])
			return 0;
		n *= shape[d];
		if (n >> 64)
			return 0;
	}
	return (uint64_t)n;
}

static uint64_t align_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) / a * a;
}

/* The first non-zero byte found past logical_len in a chunk read back;
 * reported by check_padding() at the end of a test, so that the rest of
 * the test still runs. */
static char g_padding_issue[256];

/* dst (a chunk read back) must hold want's len bytes, then zeros up to cs. */
static void assert_chunk_bytes(const uint8_t *dst, const uint8_t *want, uint32_t len, uint32_t cs,
                               uint32_t chunk)
{
	for (uint32_t k = 0; k < len; k++)
		if (dst[k] != want[k])
			cr_assert_fail("chunk %u read back: data byte %u is 0x%02x, expected 0x%02x", chunk, k,
			               dst[k], want[k]);
	for (uint32_t k = len; k < cs && !g_padding_issue[0]; k++)
		if (dst[k])
			snprintf(g_padding_issue, sizeof g_padding_issue,
			         "chunk %u read back: byte %u, past logical_len %u, is 0x%02x, not zero "
			         "(fp_image_read_chunk: \"the part past logical_len is zeroed\")",
			         chunk, k, len, dst[k]);
}

static void check_padding(void)
{
	cr_assert_str_empty(g_padding_issue, "%s", g_padding_issue);
}

Test(format, crc32c_reference_vectors)
{
	/* The check value of CRC-32C and a chained computation. */
	cr_assert_eq(tu_crc32c(0, "123456789", 9), 0xE3069283u);
	cr_assert_eq(tu_crc32c(tu_crc32c(0, "1234", 4), "56789", 5), 0xE3069283u);
	cr_assert_eq(tu_crc32c(0, "", 0), 0u);
	uint8_t z[32] = {0};
	cr_assert_eq(tu_crc32c(0, z, 32), 0x8A9136AAu); /* RFC 3720 B.4 */
}

/* ------------------------------------------------------------------ */
/* Writing images                                                       */

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

static void built_free(struct built *b)
{
	for (uint32_t i = 0; i < b->n; i++)
		free(b->data[i]);
	free(b->layout);
	free(b->compressible);
	memset(b, 0, sizeof *b);
}

/* Fills b from specs and writes the image with the writer, feeding the
 * bytes in pieces of pseudo-random sizes.  Returns 0 or -1 (error in
 * fp_last_error()). */
static int build_image(const char *path, const struct fp_writer_options *opt,
                       const struct tensor_spec *specs, uint32_t n, const char *meta,
                       struct built *b, uint64_t seed)
{
	memset(b, 0, sizeof *b);
	b->cs = opt->chunk_size ? opt->chunk_size : (2u << 20);
	b->aligned = opt->align_tensors;
	b->n = n;
	uint64_t off = 0;
	for (uint32_t i = 0; i < n; i++) {
		b->spec[i] = specs[i];
		b->size[i] = ref_bytes(specs[i].type, specs[i].ndim, specs[i].shape);
		cr_assert(b->size[i], "bad spec %s", specs[i].name);
		/* Packed: each tensor on the next page after the one before;
		 * aligned: on the next chunk. */
		b->offset[i] = align_up(off, opt->align_tensors ? b->cs : 4096);
		off = b->offset[i] + b->size[i];
		b->data[i] = malloc(b->size[i]);
		cr_assert(b->data[i]);
		for (uint64_t c = 0; c * b->cs < b->size[i]; c++) {
			uint64_t len = b->size[i] - c * b->cs < b->cs ? b->size[i] - c * b->cs : b->cs;
			int comp = specs[i].content == 'c' || (specs[i].content == 'a' && c % 2 == 0);
			if (comp)
				tu_fill_compressible(seed + i * 1000 + c, b->data[i] + c * b->cs, len);
			else
				tu_fill_random(seed + i * 1000 + c, b->data[i] + c * b->cs, len);
		}
	}
	b->data_end = off;
	b->logical_size = align_up(off, b->cs);
	b->n_chunks = (uint32_t)(b->logical_size / b->cs);
	b->layout = calloc(1, b->logical_size);
	/* per byte: 'c' compressible filler, 'r' random, 0 zeros between tensors */
	char *kind = calloc(1, b->logical_size);
	b->compressible = calloc(b->n_chunks, 1);
	cr_assert(b->layout && b->compressible && kind);
	for (uint32_t i = 0; i < n; i++) {
		memcpy(b->layout + b->offset[i], b->data[i], b->size[i]);
		for (uint64_t c = 0; c * b->cs < b->size[i]; c++) {
			uint64_t len = b->size[i] - c * b->cs < b->cs ? b->size[i] - c * b->cs : b->cs;
			int comp = specs[i].content == 'c' || (specs[i].content == 'a' && c % 2 == 0);
			memset(kind + b->offset[i] + c * b->cs, comp ? 'c' : 'r', len);
		}
	}
	/* A chunk is compressible (1) if it holds filler and zeros only,
	 * random (0) if random bytes only, and mixed (2) otherwise. */
	for (uint32_t k = 0; k < b->n_chunks; k++) {
		uint64_t lo = (uint64_t)k * b->cs, hi = lo + b->cs < off ? lo + b->cs : off;
		int has_r = 0, has_other = 0;
		for (uint64_t x = lo; x < hi; x++) {
			has_r |= kind[x] == 'r';
			has_other |= kind[x] != 'r';
		}
		b->compressible[k] = !has_r ? 1 : has_other ? 2 : 0;
	}
	free(kind);

	fp_writer *w = fp_writer_create(path, opt);
	if (!w)
		return -1;
	if (meta && fp_writer_set_meta(w, meta))
		goto fail;
	uint64_t rng = seed ^ 0x5eed;
	for (uint32_t i = 0; i < n; i++) {
		if (fp_writer_begin_tensor(w, specs[i].name, specs[i].type, specs[i].ndim,
		                           specs[i].shape))
			goto fail;
		uint64_t done = 0;
		while (done < b->size[i]) {
			uint64_t piece = 1 + tu_rand(&rng) % (b->cs + b->cs / 2);
			if (tu_rand(&rng) % 4 == 0)
				piece = 1 + tu_rand(&rng) % 100;
			if (piece > b->size[i] - done)
				piece = b->size[i] - done;
			if (fp_writer_write(w, b->data[i] + done, piece))
				goto fail;
			done += piece;
		}
		if (fp_writer_end_tensor(w))
			goto fail;
	}
	return fp_writer_finish(w);
fail:
	fp_writer_abort(w);
	return -1;
}

/* Checks an image written by build_image against the spec, through the
 * API and by reading the file's bytes plainly. */
static void check_built(const char *path, const struct built *b, uint32_t codec, const char *meta)
{
	fp_image *img = fp_image_open(path);
	cr_assert(img, "fp_image_open rejected a fresh image: %s", fp_last_error());
	const struct fp_image_info *info = fp_image_info(img);
	tu_file f;
	cr_assert(!tu_load(path, &f));

	/* Info. */
	cr_assert_str_eq(info->path, path);
	cr_assert_eq(info->file_size, f.len);
	cr_assert_eq(info->chunk_size, b->cs);
	cr_assert_eq(info->n_tensors, b->n);
	cr_assert_eq(info->n_chunks, b->n_chunks);
	cr_assert_eq(info->logical_size, b->logical_size);
	/* The chunks' data: the tensors, and in a packed image the zeros
	 * between them. */
	uint64_t data_bytes = 0;
	for (uint32_t i = 0; i < b->n; i++)
		data_bytes += b->size[i];
	cr_assert_eq(info->data_bytes, b->aligned ? data_bytes : b->data_end);
	cr_assert_str_eq(info->meta, meta ? meta : "");

	/* Header, parsed from the file by the offsets in docs/format.md. */
	cr_assert_arr_eq(f.data, "FLEXPAGE", 8);
	cr_assert_eq(tu_get32(&f, TU_H_VERSION), 2u);
	cr_assert_eq(tu_get32(&f, TU_H_HEADER_SIZE), 128u);
	cr_assert_eq(tu_get64(&f, TU_H_FILE_SIZE), f.len);
	cr_assert_eq(tu_get64(&f, TU_H_LOGICAL_SIZE), b->logical_size);
	cr_assert_eq(tu_get32(&f, TU_H_CHUNK_SIZE), b->cs);
	cr_assert_eq(tu_get32(&f, TU_H_N_TENSORS), b->n);
	cr_assert_eq(tu_get32(&f, TU_H_N_CHUNKS), b->n_chunks);
	cr_assert_eq(tu_get64(&f, TU_H_TT_SIZE), (uint64_t)b->n * 128);
	cr_assert_eq(tu_get64(&f, TU_H_CT_SIZE), (uint64_t)b->n_chunks * 32);
	cr_assert_eq(tu_get64(&f, TU_H_META_SIZE), meta ? strlen(meta) : 0);
	for (int k = 0; k < 4; k++)
		cr_assert_eq(tu_get32(&f, TU_H_RESERVED + 4 * k), 0u, "header reserved word %d", k);
	cr_assert_eq(tu_get32(&f, TU_H_HEADER_CRC), tu_crc32c(0, f.data, 124), "header_crc");
	uint32_t tcrc = tu_get32(&f, TU_H_TABLES_CRC);
	tu_fix_tables_crc(&f);
	cr_assert_eq(tu_get32(&f, TU_H_TABLES_CRC), tcrc, "tables_crc");
	for (size_t k = 128; k < 4096; k++)
		cr_assert_eq(f.data[k], 0, "header padding byte %zu is not zero", k);
	uint64_t tables = tu_get64(&f, TU_H_TT_OFFSET);
	if (tu_get64(&f, TU_H_CT_OFFSET) < tables)
		tables = tu_get64(&f, TU_H_CT_OFFSET);
	if (tu_get64(&f, TU_H_META_OFFSET) < tables)
		tables = tu_get64(&f, TU_H_META_OFFSET);
	if (meta)
		cr_assert_arr_eq(f.data + tu_get64(&f, TU_H_META_OFFSET), meta, strlen(meta));
	uint32_t flags = tu_get32(&f, TU_H_FLAGS);

	/* Tensors: API and file agree with the spec. */
	for (uint32_t i = 0; i < b->n; i++) {
		const struct fp_tensor_desc *t = fp_image_tensor(img, i);
		const struct tensor_spec *s = &b->spec[i];
		cr_assert(t);
		cr_assert_str_eq(t->name, s->name);
		cr_assert_eq(t->type, s->type, "%s type", s->name);
		cr_assert_eq(t->ndim, s->ndim, "%s ndim", s->name);
		for (int d = 0; d < 4; d++)
			cr_assert_eq(t->shape[d], d < (int)s->ndim ? s->shape[d] : 0, "%s shape[%d]",
			             s->name, d);
		cr_assert_eq(t->offset, b->offset[i], "%s offset", s->name);
		cr_assert_eq(t->offset % 4096, 0);
		cr_assert_eq(t->size, b->size[i], "%s size", s->name);
		cr_assert_eq(fp_image_find(img, s->name), t);
		cr_assert_eq(fp_image_tensor_at(img, t->offset), t);
		cr_assert_eq(fp_image_tensor_at(img, t->offset + t->size - 1), t);
		if (t->size % 4096)
			cr_assert_null(fp_image_tensor_at(img, t->offset + t->size), "padding after %s",
			               s->name);
		uint64_t e = tu_tensor_at(&f, i);
		cr_assert_str_eq((const char *)f.data + e, s->name);
		cr_assert_eq(tu_get32(&f, e + TU_T_TYPE), s->type);
		cr_assert_eq(tu_get32(&f, e + TU_T_NDIM), s->ndim);
		for (int d = 0; d < 4; d++)
			cr_assert_eq(tu_get64(&f, e + TU_T_SHAPE + 8 * d), t->shape[d]);
		cr_assert_eq(tu_get64(&f, e + TU_T_OFFSET), b->offset[i]);
		cr_assert_eq(tu_get64(&f, e + TU_T_SIZE), b->size[i]);
		cr_assert_eq(tu_get64(&f, e + TU_T_RESERVED), 0u);
	}
	cr_assert_null(fp_image_tensor(img, b->n));
	cr_assert_null(fp_image_find(img, "no.such.tensor"));
	cr_assert_null(fp_image_tensor_at(img, b->logical_size));

	/* Chunks. */
	uint8_t *dst = aligned_alloc(4096, b->cs);
	uint8_t *zdst = malloc(b->cs);
	cr_assert(dst && zdst);
	uint64_t stored = 0;
	int n_zstd = 0;
	for (uint32_t i = 0; i < b->n_chunks; i++) {
		const struct fp_chunk_desc *c = fp_image_chunk(img, i);
		cr_assert(c);
		const uint8_t *want = b->layout + (uint64_t)i * b->cs;
		/* logical_len.  Packed: every chunk is full but the last, which
		 * ends with the last tensor.  Aligned: the tensor's bytes in it. */
		uint32_t len = 0;
		if (!b->aligned) {
			uint64_t left = b->data_end - (uint64_t)i * b->cs;
			len = left < b->cs ? (uint32_t)left : b->cs;
		}
		for (uint32_t t = 0; b->aligned && t < b->n; t++)
			if (b->offset[t] <= (uint64_t)i * b->cs &&
			    (uint64_t)i * b->cs < b->offset[t] + b->size[t]) {
				uint64_t left = b->offset[t] + b->size[t] - (uint64_t)i * b->cs;
				len = left < b->cs ? (uint32_t)left : b->cs;
			}
		cr_assert_eq(c->logical_offset, (uint64_t)i * b->cs, "chunk %u logical_offset", i);
		cr_assert_eq(c->logical_len, len, "chunk %u logical_len", i);
		cr_assert_eq(c->checksum, tu_crc32c(0, want, len), "chunk %u checksum", i);
		cr_assert_eq(c->file_offset % 4096, 0, "chunk %u file_offset unaligned", i);
		cr_assert_geq(c->file_offset, 4096u);
		cr_assert_leq(c->file_offset + c->stored_len, tables, "chunk %u payload after the tables", i);
		for (uint32_t j = 0; j < i; j++) {
			const struct fp_chunk_desc *o = fp_image_chunk(img, j);
			cr_assert(!c->stored_len || !o->stored_len ||
			          c->file_offset >= o->file_offset + o->stored_len ||
			          o->file_offset >= c->file_offset + c->stored_len,
			          "payloads of chunks %u and %u overlap", j, i);
		}
		stored += c->stored_len;
		/* The file's chunk entry is what the API reports. */
		uint64_t e = tu_chunk_at(&f, i);
		cr_assert_eq(tu_get64(&f, e + TU_C_LOGICAL_OFFSET), c->logical_offset);
		cr_assert_eq(tu_get32(&f, e + TU_C_LOGICAL_LEN), c->logical_len);
		cr_assert_eq(tu_get32(&f, e + TU_C_STORED_LEN), c->stored_len);
		cr_assert_eq(tu_get64(&f, e + TU_C_FILE_OFFSET), c->file_offset);
		cr_assert_eq(tu_get32(&f, e + TU_C_CODEC), c->codec);
		cr_assert_eq(tu_get32(&f, e + TU_C_CHECKSUM), c->checksum);

		if (codec == FP_CODEC_RAW) {
			cr_assert_eq(c->codec, FP_CODEC_RAW, "chunk %u", i);
			cr_assert_eq(c->file_offset, 4096 + (uint64_t)i * b->cs, "chunk %u not at raw_base", i);
		}
		if (c->codec == FP_CODEC_RAW) {
			cr_assert_eq(c->stored_len, c->logical_len, "raw chunk %u stored_len", i);
			cr_assert_arr_eq(f.data + c->file_offset, want, len, "raw payload of chunk %u", i);
		} else {
			cr_assert_eq(c->codec, FP_CODEC_ZSTD, "chunk %u codec %u", i, c->codec);
			n_zstd++;
			cr_assert_lt(c->stored_len, c->logical_len, "zstd chunk %u did not shrink", i);
			/* One frame, decoding to exactly logical_len bytes. */
			const uint8_t *src = f.data + c->file_offset;
			cr_assert_eq(ZSTD_findFrameCompressedSize(src, c->stored_len), c->stored_len,
			             "chunk %u payload is not exactly one zstd frame", i);
			size_t n = ZSTD_decompress(zdst, b->cs, src, c->stored_len);
			cr_assert(!ZSTD_isError(n), "chunk %u: %s", i, ZSTD_getErrorName(n));
			cr_assert_eq(n, len);
			cr_assert_arr_eq(zdst, want, len, "zstd payload of chunk %u", i);
		}
		if (codec == FP_CODEC_ZSTD && len >= 4096) {
			if (b->compressible[i] == 1)
				cr_assert_eq(c->codec, FP_CODEC_ZSTD, "compressible chunk %u stored raw", i);
			else if (b->compressible[i] == 0)
				cr_assert_eq(c->codec, FP_CODEC_RAW, "random chunk %u not stored raw", i);
		}
		if (codec == FP_CODEC_ZSTD && b->compressible[i] == 0)
			cr_assert_eq(c->codec, FP_CODEC_RAW, "random chunk %u not stored raw", i);

		memset(dst, 0xA5, b->cs);
		cr_assert_eq(fp_image_read_chunk(img, i, dst), 0, "read chunk %u: %s", i, fp_last_error());
		assert_chunk_bytes(dst, want, len, b->cs, i);
	}
	cr_assert_null(fp_image_chunk(img, b->n_chunks));
	cr_assert_neq(fp_image_read_chunk(img, b->n_chunks, dst), 0, "reading chunk n_chunks succeeded");
	cr_assert_eq(info->stored_bytes, stored);

	if (codec == FP_CODEC_RAW) {
		cr_assert_eq(info->raw_base, 4096u);
		cr_assert_eq(flags, 1u, "raw image without the raw-layout flag");
		cr_assert_eq(tu_get64(&f, TU_H_RAW_BASE), 4096u);
		cr_assert_leq(4096 + b->logical_size, tables,
		              "the raw logical layout runs into the tables or past the file");
		cr_assert_arr_eq(f.data + 4096, b->layout, b->logical_size,
		                 "file range [raw_base, raw_base + logical_size) is not the logical layout");
	} else {
		cr_assert_eq(flags & ~1u, 0u);
		int any_compressible = 0;
		for (uint32_t i = 0; i < b->n_chunks; i++)
			any_compressible |= b->compressible[i] == 1 && fp_image_chunk(img, i)->logical_len >= 4096;
		if (any_compressible) {
			cr_assert_gt(n_zstd, 0);
			cr_assert_eq(info->raw_base, 0u, "mixed zstd image claims the raw layout");
			cr_assert_lt(info->stored_bytes, info->data_bytes);
		}
	}
	free(dst);
	free(zdst);
	tu_free(&f);
	fp_image_close(img);
	check_padding();
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
	cr_assert_eq(fp_image_meta(img, "ar", buf, sizeof buf), -1);
	cr_assert_eq(fp_image_meta(img, "note", buf, 5), 0);
	cr_assert_str_eq(buf, "roun", "a value cut to the buffer");
	cr_assert_eq(fp_image_meta(img, "missing", buf, sizeof buf), -1);
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

/* ------------------------------------------------------------------ */
/* Bad input                                                            */

/* The base image: 64 KiB chunks, five of them.
 *   tensor 0 "tok_embd" f32 64x300 (76800 B, compressible): chunks 0, 1
 *   tensor 1 "blob"     u8 100000 (random):                 chunks 2, 3
 *   tensor 2 "norm"     q8_0 32x10 (340 B, compressible):   chunk 4 */
static char *g_img;
static struct built g_b;

static void make_base(uint32_t codec)
{
	const struct tensor_spec specs[] = {
		{"tok_embd", FP_TYPE_F32, 2, {64, 300}, 'c'},
		{"blob", FP_TYPE_U8, 1, {100000}, 'r'},
		{"norm", FP_TYPE_Q8_0, 2, {32, 10}, 'c'},
	};
	struct fp_writer_options opt = {.chunk_size = 65536, .codec = codec, .align_tensors = 1};
	g_img = tu_join(g_dir, "base.fpi");
	cr_assert_eq(build_image(g_img, &opt, specs, 3, "arch=test\n", &g_b, 42), 0, "%s",
	             fp_last_error());
	cr_assert_eq(g_b.n_chunks, 5u);
	fp_image *img = fp_image_open(g_img);
	cr_assert(img, "base image rejected: %s", fp_last_error());
	if (codec == FP_CODEC_ZSTD) {
		cr_assert_eq(fp_image_chunk(img, 0)->codec, FP_CODEC_ZSTD);
		cr_assert_eq(fp_image_chunk(img, 1)->codec, FP_CODEC_ZSTD);
		cr_assert_eq(fp_image_chunk(img, 2)->codec, FP_CODEC_RAW);
	}
	fp_image_close(img);
}

/* Test-level fixtures run after the suite's setup (which made g_dir) and
 * before its teardown. */
static void base_raw(void)
{
	make_base(FP_CODEC_RAW);
}

static void base_zstd(void)
{
	make_base(FP_CODEC_ZSTD);
}

static void base_fini(void)
{
	built_free(&g_b);
	free(g_img);
	g_img = NULL;
}

static tu_file load_base(void)
{
	tu_file f;
	cr_assert(!tu_load(g_img, &f), "cannot read %s", g_img);
	return f;
}

/* Writes f back over the base image; fix: recompute both checksums. */
static void store(tu_file *f, int fix)
{
	if (fix)
		tu_fix_crcs(f);
	cr_assert(!tu_save(g_img, f));
	tu_free(f);
}

/* fp_image_open(path) must fail with a message naming path and matching
 * each of the '|'-alternative groups that follow (NULL-terminated). */
static void expect_open_fails_(const char *path, const char *what, ...)
{
	fp_image *img = fp_image_open(path);
	if (img) {
		fp_image_close(img);
		cr_assert_fail("fp_image_open accepted an image with %s", what);
	}
	const char *e = fp_last_error();
	cr_assert(e && strstr(e, path), "[%s] the error does not name the file: \"%s\"", what, e);
	va_list ap;
	va_start(ap, what);
	const char *alt;
	while ((alt = va_arg(ap, const char *)))
		cr_assert(tu_contains_any(e, alt), "[%s] the error does not say '%s': \"%s\"", what, alt, e);
	va_end(ap);
}
#define EXPECT_OPEN_FAILS(path, what, ...) expect_open_fails_(path, what, __VA_ARGS__, (const char *)NULL)

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
	EXPECT_OPEN_FAILS(p, "a missing file", "open|no such");
	free(p);
}

Test(format, directory_is_not_an_image)
{
	EXPECT_OPEN_FAILS(g_dir, "a directory", "regular|directory|not a|open");
}

Test(format, empty_file)
{
	char *p = tu_join(g_dir, "empty.fpi");
	cr_assert(!tu_write_file(p, "", 0));
	EXPECT_OPEN_FAILS(p, "an empty file", "short|truncat|size");
	free(p);
}

Test(format, file_shorter_than_4096, .init = base_raw, .fini = base_fini)
{
	tu_file f = load_base();
	static const size_t cuts[] = {1, 100, 127, 128, 129, 4095};
	for (size_t k = 0; k < sizeof cuts / sizeof cuts[0]; k++) {
		f.len = cuts[k];
		cr_assert(!tu_save(g_img, &f));
		EXPECT_OPEN_FAILS(g_img, "a file shorter than 4096 bytes", "short|truncat|file_size");
	}
	tu_free(&f);
}

Test(format, bad_magic, .init = base_raw, .fini = base_fini)
{
	tu_file f = load_base();
	f.data[0] = 'X';
	store(&f, 1);
	EXPECT_OPEN_FAILS(g_img, "bad magic", "magic");
}

Test(format, bad_version, .init = base_raw, .fini = base_fini)
{
	tu_file f = load_base();
	tu_set32(&f, TU_H_VERSION, 3);
	store(&f, 1);
	EXPECT_OPEN_FAILS(g_img, "version 3", "version");
}

Test(format, bad_version_zero, .init = base_raw, .fini = base_fini)
{
	tu_file f = load_base();
	tu_set32(&f, TU_H_VERSION, 0);
	store(&f, 1);
	EXPECT_OPEN_FAILS(g_img, "version 0", "version");
}

Test(format, bad_header_size, .init = base_raw, .fini = base_fini)
{
	tu_file f = load_base();
	tu_set32(&f, TU_H_HEADER_SIZE, 256);
	store(&f, 1);
	EXPECT_OPEN_FAILS(g_img, "header_size 256", "header_size");
}

Test(format, header_checksum_mismatch, .init = base_raw, .fini = base_fini)
{
	tu_file f = load_base();
	tu_set32(&f, TU_H_HEADER_CRC, tu_get32(&f, TU_H_HEADER_CRC) ^ 0x100);
	store(&f, 0);
	EXPECT_OPEN_FAILS(g_img, "a wrong header_crc", "checksum|crc", "header");
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
		EXPECT_OPEN_FAILS(g_img, "a header byte changed under its checksum", fields[k].alts);
	}
}

Test(format, truncated_by_one_byte, .init = base_raw, .fini = base_fini)
{
	tu_file f = load_base();
	f.len -= 1;
	store(&f, 0);
	EXPECT_OPEN_FAILS(g_img, "a file one byte short", "file_size|truncat");
}

Test(format, truncated_inside_payloads, .init = base_zstd, .fini = base_fini)
{
	tu_file f = load_base();
	f.len = 4096 + 1000;
	store(&f, 0);
	EXPECT_OPEN_FAILS(g_img, "a file cut inside the payloads", "file_size|truncat");
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
	EXPECT_OPEN_FAILS(g_img, "a file longer than file_size", "file_size|extended");
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
	EXPECT_OPEN_FAILS(g_img, "chunk_size 69632", "chunk_size");
}

Test(format, chunk_size_below_64k, .init = base_raw, .fini = base_fini)
{
	set_chunk_size(32768);
	EXPECT_OPEN_FAILS(g_img, "chunk_size 32K", "chunk_size");
}

Test(format, chunk_size_above_4m, .init = base_raw, .fini = base_fini)
{
	set_chunk_size(8u << 20);
	EXPECT_OPEN_FAILS(g_img, "chunk_size 8M", "chunk_size");
}

Test(format, chunk_size_zero, .init = base_raw, .fini = base_fini)
{
	set_chunk_size(0);
	EXPECT_OPEN_FAILS(g_img, "chunk_size 0", "chunk_size");
}

Test(format, logical_size_mismatch, .init = base_raw, .fini = base_fini)
{
	tu_file f = load_base();
	tu_set64(&f, TU_H_LOGICAL_SIZE, tu_get64(&f, TU_H_LOGICAL_SIZE) + 65536);
	store(&f, 1);
	EXPECT_OPEN_FAILS(g_img, "logical_size != n_chunks x chunk_size", "logical_size");
}

Test(format, logical_size_wrapped_to_32_bits, .init = base_raw, .fini = base_fini)
{
	/* n_chunks = 65541: n_chunks x 65536 = 2^32 + 5 x 65536, which a
	 * 32-bit product wraps to the base image's logical_size. */
	tu_file f = load_base();
	tu_set32(&f, TU_H_N_CHUNKS, 65536 + 5);
	store(&f, 1);
	EXPECT_OPEN_FAILS(g_img, "logical_size equal to a wrapped 32-bit n_chunks x chunk_size",
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
	EXPECT_OPEN_FAILS(g_img, "a 2^32-1 chunk table", "chunk_table|n_chunks|large");
}

Test(format, logical_size_overflow_u64, .init = base_raw, .fini = base_fini)
{
	/* A logical_size near 2^64 (a multiple of chunk_size, as a sum that
	 * wrapped would give). */
	tu_file f = load_base();
	tu_set64(&f, TU_H_LOGICAL_SIZE, 0xFFFFFFFFFFFF0000ull);
	store(&f, 1);
	EXPECT_OPEN_FAILS(g_img, "logical_size near 2^64", "logical_size");
}

Test(format, tensor_table_size_not_fitting_count, .init = base_raw, .fini = base_fini)
{
	tu_file f = load_base();
	tu_set64(&f, TU_H_TT_SIZE, tu_get64(&f, TU_H_TT_SIZE) + 128);
	store(&f, 1);
	EXPECT_OPEN_FAILS(g_img, "tensor_table_size != n_tensors x 128", "tensor_table_size|n_tensors");
}

Test(format, tensor_table_size_wrapped_to_32_bits, .init = base_raw, .fini = base_fini)
{
	/* n_tensors = 2^25 + 3: n_tensors x 128 wraps to 384 in 32 bits. */
	tu_file f = load_base();
	tu_set32(&f, TU_H_N_TENSORS, (1u << 25) + 3);
	store(&f, 1);
	EXPECT_OPEN_FAILS(g_img, "tensor_table_size equal to a wrapped 32-bit product",
	                  "tensor_table|n_tensors");
}

Test(format, chunk_table_size_not_fitting_count, .init = base_raw, .fini = base_fini)
{
	tu_file f = load_base();
	tu_set64(&f, TU_H_CT_SIZE, tu_get64(&f, TU_H_CT_SIZE) - 32);
	store(&f, 1);
	EXPECT_OPEN_FAILS(g_img, "chunk_table_size != n_chunks x 32", "chunk_table_size|n_chunks");
}

Test(format, tensor_table_outside_file, .init = base_raw, .fini = base_fini)
{
	tu_file f = load_base();
	uint64_t fsize = f.len;
	tu_set64(&f, TU_H_TT_OFFSET, fsize - 128);
	store(&f, 1);
	EXPECT_OPEN_FAILS(g_img, "tensor table past the end", "tensor_table|tensor table");
	f = load_base();
	tu_set64(&f, TU_H_TT_OFFSET, UINT64_MAX - 100); /* offset + size wraps */
	store(&f, 1);
	EXPECT_OPEN_FAILS(g_img, "tensor table offset wrapping", "tensor_table|tensor table");
}

Test(format, chunk_table_outside_file, .init = base_raw, .fini = base_fini)
{
	tu_file f = load_base();
	tu_set64(&f, TU_H_CT_OFFSET, f.len - 16);
	store(&f, 1);
	EXPECT_OPEN_FAILS(g_img, "chunk table past the end", "chunk_table|chunk table");
	f = load_base();
	tu_set64(&f, TU_H_CT_OFFSET, UINT64_MAX - 31);
	store(&f, 1);
	EXPECT_OPEN_FAILS(g_img, "chunk table offset wrapping", "chunk_table|chunk table");
}

Test(format, meta_outside_file, .init = base_raw, .fini = base_fini)
{
	tu_file f = load_base();
	tu_set64(&f, TU_H_META_SIZE, 1ull << 40);
	store(&f, 1);
	EXPECT_OPEN_FAILS(g_img, "meta past the end", "meta");
}

Test(format, tables_checksum_tensor_table, .init = base_raw, .fini = base_fini)
{
	tu_file f = load_base();
	f.data[tu_tensor_at(&f, 1) + 1] ^= 0x20; /* "blob" -> "bLob" */
	store(&f, 0);
	EXPECT_OPEN_FAILS(g_img, "a changed tensor entry", "checksum|crc", "table");
}

Test(format, tables_checksum_chunk_table, .init = base_raw, .fini = base_fini)
{
	tu_file f = load_base();
	f.data[tu_chunk_at(&f, 3) + TU_C_CHECKSUM] ^= 0x01;
	store(&f, 0);
	EXPECT_OPEN_FAILS(g_img, "a changed chunk entry", "checksum|crc", "table");
}

Test(format, tables_checksum_meta, .init = base_raw, .fini = base_fini)
{
	tu_file f = load_base();
	f.data[tu_get64(&f, TU_H_META_OFFSET)] ^= 0x01;
	store(&f, 0);
	EXPECT_OPEN_FAILS(g_img, "changed meta", "checksum|crc");
}

Test(format, tables_crc_field_wrong, .init = base_raw, .fini = base_fini)
{
	tu_file f = load_base();
	tu_set32(&f, TU_H_TABLES_CRC, tu_get32(&f, TU_H_TABLES_CRC) + 1);
	tu_fix_header_crc(&f);
	store(&f, 0);
	EXPECT_OPEN_FAILS(g_img, "a wrong tables_crc", "checksum|crc", "table");
}

Test(format, unknown_flags, .init = base_raw, .fini = base_fini)
{
	static const uint32_t bits[] = {2, 4, 0x80000000u};
	for (size_t k = 0; k < 3; k++) {
		tu_file f = load_base();
		tu_set32(&f, TU_H_FLAGS, tu_get32(&f, TU_H_FLAGS) | bits[k]);
		store(&f, 1);
		EXPECT_OPEN_FAILS(g_img, "an unknown flag", "flags");
	}
}

Test(format, raw_flag_on_zstd_image, .init = base_zstd, .fini = base_fini)
{
	tu_file f = load_base();
	tu_set32(&f, TU_H_FLAGS, 1);
	tu_set64(&f, TU_H_RAW_BASE, 4096);
	store(&f, 1);
	EXPECT_OPEN_FAILS(g_img, "the raw-layout flag on zstd payloads", "raw");
}

Test(format, raw_base_wrong, .init = base_raw, .fini = base_fini)
{
	tu_file f = load_base();
	tu_set64(&f, TU_H_RAW_BASE, 8192);
	store(&f, 1);
	EXPECT_OPEN_FAILS(g_img, "raw_base 8192 while payloads lie at 4096", "raw");
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
	EXPECT_OPEN_FAILS(g_img, "a raw layout that runs past the file", "raw");
}

Test(format, unknown_codec, .init = base_raw, .fini = base_fini)
{
	tu_file f = load_base();
	tu_set32(&f, tu_chunk_at(&f, 4) + TU_C_CODEC, 2);
	store(&f, 1);
	EXPECT_OPEN_FAILS(g_img, "codec 2", "codec", "chunk 4");
}

Test(format, unknown_type, .init = base_raw, .fini = base_fini)
{
	static const uint32_t types[] = {3, 7, 199, 201, 0xFFFFFFFFu};
	for (size_t k = 0; k < sizeof types / sizeof types[0]; k++) {
		tu_file f = load_base();
		tu_set32(&f, tu_tensor_at(&f, 1) + TU_T_TYPE, types[k]);
		store(&f, 1);
		EXPECT_OPEN_FAILS(g_img, "an unknown tensor type", "type");
	}
}

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
	EXPECT_OPEN_FAILS(g_img, "chunk entries 1 and 2 swapped", "order|logical_offset");
}

Test(format, chunk_logical_offset_wrong, .init = base_zstd, .fini = base_fini)
{
	tu_file f = load_base();
	uint64_t e = tu_chunk_at(&f, 3);
	tu_set64(&f, e, tu_get64(&f, e) + 4096);
	store(&f, 1);
	EXPECT_OPEN_FAILS(g_img, "chunk 3 at logical offset 3 x 64K + 4K", "order|logical_offset|align");
}

Test(format, chunk_logical_len_past_chunk_size, .init = base_zstd, .fini = base_fini)
{
	tu_file f = load_base();
	tu_set32(&f, tu_chunk_at(&f, 4) + TU_C_LOGICAL_LEN, 65537);
	store(&f, 1);
	EXPECT_OPEN_FAILS(g_img, "logical_len 65537 > chunk_size", "logical_len", "chunk 4");
}

Test(format, raw_chunk_stored_len_mismatch, .init = base_raw, .fini = base_fini)
{
	tu_file f = load_base();
	uint64_t e = tu_chunk_at(&f, 4);
	tu_set32(&f, e + TU_C_STORED_LEN, tu_get32(&f, e + TU_C_LOGICAL_LEN) + 1);
	store(&f, 1);
	EXPECT_OPEN_FAILS(g_img, "a raw chunk with stored_len != logical_len", "stored_len", "chunk 4");
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
	EXPECT_OPEN_FAILS(g_img, "an unaligned payload", "file_offset|align", "chunk 1");
}

Test(format, payload_in_header, .init = base_zstd, .fini = base_fini)
{
	tu_file f = load_base();
	tu_set64(&f, tu_chunk_at(&f, 0) + TU_C_FILE_OFFSET, 0);
	store(&f, 1);
	EXPECT_OPEN_FAILS(g_img, "a payload at file offset 0", "payload|file_offset", "chunk 0");
}

Test(format, payload_over_tables, .init = base_zstd, .fini = base_fini)
{
	tu_file f = load_base();
	uint64_t tables = tu_get64(&f, TU_H_TT_OFFSET);
	cr_assert_eq(tables % 4096, 0, "test set-up: tables not 4 KiB aligned");
	tu_set64(&f, tu_chunk_at(&f, 2) + TU_C_FILE_OFFSET, tables);
	store(&f, 1);
	EXPECT_OPEN_FAILS(g_img, "a payload over the tables", "payload|file_offset|outside", "chunk 2");
}

Test(format, payload_past_file, .init = base_zstd, .fini = base_fini)
{
	tu_file f = load_base();
	tu_set64(&f, tu_chunk_at(&f, 2) + TU_C_FILE_OFFSET, align_up(f.len, 4096) + 4096);
	store(&f, 1);
	EXPECT_OPEN_FAILS(g_img, "a payload past the end", "payload|file_offset|outside", "chunk 2");
	f = load_base();
	tu_set64(&f, tu_chunk_at(&f, 2) + TU_C_FILE_OFFSET, UINT64_MAX & ~4095ull);
	store(&f, 1);
	EXPECT_OPEN_FAILS(g_img, "a payload whose end wraps", "payload|file_offset|outside", "chunk 2");
}

Test(format, payloads_overlap, .init = base_zstd, .fini = base_fini)
{
	tu_file f = load_base();
	tu_set64(&f, tu_chunk_at(&f, 1) + TU_C_FILE_OFFSET,
	         tu_get64(&f, tu_chunk_at(&f, 0) + TU_C_FILE_OFFSET));
	store(&f, 1);
	EXPECT_OPEN_FAILS(g_img, "two payloads at one offset", "overlap");
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
	EXPECT_OPEN_FAILS(g_img, "a payload starting inside the previous one", "overlap");
}

Test(format, tensor_offset_unaligned, .init = base_raw, .fini = base_fini)
{
	tu_file f = load_base();
	uint64_t e = tu_tensor_at(&f, 1) + TU_T_OFFSET;
	tu_set64(&f, e, tu_get64(&f, e) + 100);
	store(&f, 1);
	EXPECT_OPEN_FAILS(g_img, "a tensor off a page boundary", "offset|align", "blob");
}

Test(format, tensors_overlap, .init = base_raw, .fini = base_fini)
{
	tu_file f = load_base();
	tu_set64(&f, tu_tensor_at(&f, 1) + TU_T_OFFSET, 65536); /* inside tok_embd */
	store(&f, 1);
	EXPECT_OPEN_FAILS(g_img, "overlapping tensors", "overlap|order", "blob");
}

Test(format, tensors_out_of_order, .init = base_raw, .fini = base_fini)
{
	tu_file f = load_base();
	swap_entries(&f, tu_tensor_at(&f, 0), tu_tensor_at(&f, 1), TU_T_BYTES);
	store(&f, 1);
	EXPECT_OPEN_FAILS(g_img, "tensor entries out of order", "order|overlap|ascending");
}

Test(format, tensor_past_logical_size, .init = base_raw, .fini = base_fini)
{
	tu_file f = load_base();
	tu_set64(&f, tu_tensor_at(&f, 2) + TU_T_OFFSET, 5 * 65536);
	store(&f, 1);
	EXPECT_OPEN_FAILS(g_img, "a tensor at the logical size", "logical", "norm");
	/* Starting inside the layout but ending past it. */
	f = load_base();
	uint64_t e = tu_tensor_at(&f, 2);
	tu_set64(&f, e + TU_T_SHAPE + 8, 2000);
	tu_set64(&f, e + TU_T_SIZE, 34 * 2000);
	store(&f, 1);
	EXPECT_OPEN_FAILS(g_img, "a tensor running past the logical size", "logical|past|chunk", "norm");
}

Test(format, tensor_offset_overflow, .init = base_raw, .fini = base_fini)
{
	tu_file f = load_base();
	tu_set64(&f, tu_tensor_at(&f, 2) + TU_T_OFFSET, UINT64_MAX & ~65535ull);
	store(&f, 1);
	EXPECT_OPEN_FAILS(g_img, "a tensor offset near 2^64", "logical|past|offset", "norm");
}

Test(format, tensor_size_mismatch, .init = base_raw, .fini = base_fini)
{
	tu_file f = load_base();
	uint64_t e = tu_tensor_at(&f, 0) + TU_T_SIZE;
	tu_set64(&f, e, tu_get64(&f, e) + 4);
	store(&f, 1);
	EXPECT_OPEN_FAILS(g_img, "size != type x shape", "size", "tok_embd");
}

Test(format, tensor_shape_mismatch, .init = base_raw, .fini = base_fini)
{
	tu_file f = load_base();
	tu_set64(&f, tu_tensor_at(&f, 0) + TU_T_SHAPE + 8, 301); /* 64 x 301 f32 != 76800 */
	store(&f, 1);
	EXPECT_OPEN_FAILS(g_img, "shape not matching size", "size|shape", "tok_embd");
}

Test(format, quantized_row_not_multiple_of_32, .init = base_raw, .fini = base_fini)
{
	tu_file f = load_base();
	uint64_t e = tu_tensor_at(&f, 2);
	tu_set64(&f, e + TU_T_SHAPE, 16);  /* q8_0 16 x 20: not whole blocks */
	tu_set64(&f, e + TU_T_SHAPE + 8, 20);
	store(&f, 1);
	EXPECT_OPEN_FAILS(g_img, "a q8_0 row of 16 values", "size|shape|block", "norm");
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
	EXPECT_OPEN_FAILS(g_img, "a shape whose product overflows", "size|shape|overflow", "blob");
}

Test(format, tensor_ndim_out_of_range, .init = base_raw, .fini = base_fini)
{
	static const uint32_t ndims[] = {0, 5, 0xFFFFFFFFu};
	for (size_t k = 0; k < 3; k++) {
		tu_file f = load_base();
		tu_set32(&f, tu_tensor_at(&f, 1) + TU_T_NDIM, ndims[k]);
		store(&f, 1);
		EXPECT_OPEN_FAILS(g_img, "ndim out of 1-4", "ndim", "blob");
	}
}

Test(format, tensor_duplicate_name, .init = base_raw, .fini = base_fini)
{
	tu_file f = load_base();
	uint64_t e = tu_tensor_at(&f, 2);
	memset(f.data + e, 0, 64);
	strcpy((char *)f.data + e, "tok_embd");
	store(&f, 1);
	EXPECT_OPEN_FAILS(g_img, "a duplicated tensor name", "twice|duplicate", "tok_embd");
}

Test(format, tensor_empty_name, .init = base_raw, .fini = base_fini)
{
	tu_file f = load_base();
	memset(f.data + tu_tensor_at(&f, 1), 0, 64);
	store(&f, 1);
	EXPECT_OPEN_FAILS(g_img, "an empty tensor name", "name");
}

Test(format, tensor_name_not_terminated, .init = base_raw, .fini = base_fini)
{
	tu_file f = load_base();
	memset(f.data + tu_tensor_at(&f, 1), 'a', 64);
	store(&f, 1);
	EXPECT_OPEN_FAILS(g_img, "a 64-byte tensor name without NUL", "name");
}

Test(format, no_tensors, .init = base_raw, .fini = base_fini)
{
	tu_file f = load_base();
	tu_set32(&f, TU_H_N_TENSORS, 0);
	tu_set64(&f, TU_H_TT_SIZE, 0);
	store(&f, 1);
	EXPECT_OPEN_FAILS(g_img, "n_tensors 0", "tensor");
}

Test(format, no_chunks, .init = base_raw, .fini = base_fini)
{
	tu_file f = load_base();
	tu_set32(&f, TU_H_N_CHUNKS, 0);
	tu_set64(&f, TU_H_CT_SIZE, 0);
	tu_set64(&f, TU_H_LOGICAL_SIZE, 0);
	store(&f, 1);
	EXPECT_OPEN_FAILS(g_img, "n_chunks 0", "n_chunks|chunk");
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
	EXPECT_OPEN_FAILS(g_img, "a chunk holding less than its tensor needs", "blob",
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
	EXPECT_OPEN_FAILS(g_img, "a middle chunk one byte short", "blob", "chunk 2|logical_len");
}

Test(format, empty_chunk_under_tensor, .init = base_raw, .fini = base_fini)
{
	tu_file f = load_base();
	uint64_t e = tu_chunk_at(&f, 4);
	tu_set32(&f, e + TU_C_LOGICAL_LEN, 0);
	tu_set32(&f, e + TU_C_STORED_LEN, 0);
	tu_set32(&f, e + TU_C_CHECKSUM, 0);
	store(&f, 1);
	EXPECT_OPEN_FAILS(g_img, "an empty chunk under a tensor", "norm", "chunk 4|logical_len");
}

Test(format, meta_with_nul, .init = base_raw, .fini = base_fini)
{
	tu_file f = load_base();
	f.data[tu_get64(&f, TU_H_META_OFFSET) + 2] = 0;
	store(&f, 1);
	EXPECT_OPEN_FAILS(g_img, "a NUL inside meta", "meta");
}

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
		cr_assert_eq(rc, -1, "reading corrupt chunk %u succeeded", i);
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
	cr_assert_eq(fp_image_read_chunk(img, 3, dst), -1, "reading past the end of a truncated file succeeded");
	const char *e = fp_last_error();
	cr_assert(strstr(e, g_img) && strstr(e, "chunk 3"), "%s", e);
	cr_assert(tu_contains_any(e, "short|read|truncat|end of file"), "%s", e);
	free(dst);
	fp_image_close(img);
}

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

static void expect_err(int rc, const char *what, const char *alts)
{
	cr_assert_eq(rc, -1, "%s succeeded", what);
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
	expect_err(fp_writer_write(w, "abc", 3), "write before begin_tensor", "tensor");
	cr_assert_eq(fp_writer_begin_tensor(w, "t", FP_TYPE_U8, 1, shape10), 0, "%s", fp_last_error());
	cr_assert_eq(fp_writer_write(w, "0123456789", 10), 0, "%s", fp_last_error());
	cr_assert_eq(fp_writer_end_tensor(w), 0, "%s", fp_last_error());
	expect_err(fp_writer_write(w, "abc", 3), "write after end_tensor", "tensor");
	expect_err(fp_writer_end_tensor(w), "end_tensor twice", "tensor|begun");
	fp_writer_abort(w);
	expect_no_leftovers(NULL);
}

Test(format, writer_more_bytes_than_shape)
{
	fp_writer *w = new_writer("w.fpi", FP_CODEC_RAW);
	cr_assert_eq(fp_writer_begin_tensor(w, "small", FP_TYPE_U8, 1, shape10), 0);
	expect_err(fp_writer_write(w, "0123456789A", 11), "11 bytes into a 10-byte tensor", "small");
	fp_writer_abort(w);
	w = new_writer("w.fpi", FP_CODEC_RAW);
	cr_assert_eq(fp_writer_begin_tensor(w, "small", FP_TYPE_U8, 1, shape10), 0);
	cr_assert_eq(fp_writer_write(w, "012345", 6), 0);
	expect_err(fp_writer_write(w, "6789A", 5), "a second write past the shape", "small");
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
	expect_err(fp_writer_end_tensor(w), "end_tensor one byte short", "w.q8");
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
	expect_err(fp_writer_finish(w), "finish with a tensor open", "open.tensor");
	cr_assert(!tu_file_exists(dst), "a failed finish created the destination");
	expect_no_leftovers(NULL);
	free(dst);
}

Test(format, writer_finish_without_tensors)
{
	fp_writer *w = new_writer("w.fpi", FP_CODEC_RAW);
	expect_err(fp_writer_finish(w), "finish with no tensor", "tensor");
	expect_no_leftovers(NULL);
}

Test(format, writer_duplicate_name)
{
	fp_writer *w = new_writer("w.fpi", FP_CODEC_RAW);
	cr_assert_eq(fp_writer_begin_tensor(w, "dup", FP_TYPE_U8, 1, shape10), 0);
	cr_assert_eq(fp_writer_write(w, "0123456789", 10), 0);
	cr_assert_eq(fp_writer_end_tensor(w), 0);
	expect_err(fp_writer_begin_tensor(w, "dup", FP_TYPE_U8, 1, shape10), "a duplicated name", "dup");
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
	expect_err(fp_writer_begin_tensor(w, "", FP_TYPE_U8, 1, shape10), "an empty name", "name");
	char longname[80];
	memset(longname, 'n', 64);
	longname[64] = 0;
	expect_err(fp_writer_begin_tensor(w, longname, FP_TYPE_U8, 1, shape10), "a 64-byte name", "name|long");
	expect_err(fp_writer_begin_tensor(w, "t", 3, 1, shape10), "type 3", "type");
	expect_err(fp_writer_begin_tensor(w, "t", FP_TYPE_Q8_0, 2, q8bad), "q8_0 row of 33", "shape|type");
	expect_err(fp_writer_begin_tensor(w, "t", FP_TYPE_U8, 0, shape10), "ndim 0", "shape|ndim");
	expect_err(fp_writer_begin_tensor(w, "t", FP_TYPE_U8, 5, five), "ndim 5", "shape|ndim");
	expect_err(fp_writer_begin_tensor(w, "t", FP_TYPE_U8, 2, zero), "shape[0] 0", "shape");
	expect_err(fp_writer_begin_tensor(w, "t", FP_TYPE_U8, 2, zero2), "shape[1] 0", "shape");
	expect_err(fp_writer_begin_tensor(w, "t", FP_TYPE_F32, 2, huge), "an overflowing shape", "shape|overflow|size");
	/* begin while another tensor is open */
	cr_assert_eq(fp_writer_begin_tensor(w, "a", FP_TYPE_U8, 1, shape10), 0, "%s", fp_last_error());
	expect_err(fp_writer_begin_tensor(w, "b", FP_TYPE_U8, 1, shape10), "begin inside a tensor", "tensor|end");
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
		cr_assert(tu_contains_any(fp_last_error(), "level"), "%s", fp_last_error());
	}
	struct fp_writer_options o = {.chunk_size = 65536, .codec = 7};
	fp_writer *w = fp_writer_create(p, &o);
	if (w)
		fp_writer_abort(w);
	cr_assert_null(w, "codec 7 accepted");
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
	expect_err(fp_writer_finish(w), "finish with a short open tensor", "t");
	expect_same_bytes(dst, orig, sizeof orig);
	expect_no_leftovers(exp);

	w = new_writer("keep.fpi", FP_CODEC_ZSTD);
	expect_err(fp_writer_finish(w), "finish with no tensors", "tensor");
	expect_same_bytes(dst, orig, sizeof orig);
	expect_no_leftovers(exp);

	/* A misuse error in the middle, then finish: must not publish half an
	 * image (the tensor is 10 bytes; only 4 were taken). */
	w = new_writer("keep.fpi", FP_CODEC_RAW);
	cr_assert_eq(fp_writer_begin_tensor(w, "t", FP_TYPE_U8, 1, shape10), 0);
	cr_assert_eq(fp_writer_write(w, "0123", 4), 0);
	expect_err(fp_writer_end_tensor(w), "end_tensor short", "t");
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
	cr_assert_eq(rc, -1, "writing past RLIMIT_FSIZE succeeded");
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
	expect_err(fp_writer_finish(w), "finish when the tables cannot be written", "write|large|finish");
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

/* ------------------------------------------------------------------ */
/* Random corruption                                                    */

/* The documented invariants of an accepted image; NULL or what is wrong. */
static const char *check_invariants(const fp_image *img, const tu_file *f, char *why, size_t n)
{
	const struct fp_image_info *in = fp_image_info(img);
	uint32_t cs = in->chunk_size;
	if (cs < 65536 || cs > (4u << 20) || (cs & (cs - 1)))
		return snprintf(why, n, "chunk_size %u", cs), why;
	if (in->n_tensors < 1 || in->n_chunks < 1)
		return snprintf(why, n, "empty tables"), why;
	if (in->logical_size != (uint64_t)in->n_chunks * cs)
		return snprintf(why, n, "logical_size"), why;
	if (in->file_size != f->len)
		return snprintf(why, n, "file_size"), why;
	uint64_t tables = tu_get64(f, TU_H_TT_OFFSET);
	if (tu_get64(f, TU_H_CT_OFFSET) < tables)
		tables = tu_get64(f, TU_H_CT_OFFSET);
	if (tu_get64(f, TU_H_META_OFFSET) < tables)
		tables = tu_get64(f, TU_H_META_OFFSET);
	uint64_t (*span)[2] = calloc(in->n_chunks, sizeof *span);
	uint32_t ns = 0;
	for (uint32_t i = 0; i < in->n_chunks; i++) {
		const struct fp_chunk_desc *c = fp_image_chunk(img, i);
		if (c->logical_offset != (uint64_t)i * cs || c->logical_len > cs ||
		    (c->codec != FP_CODEC_RAW && c->codec != FP_CODEC_ZSTD) ||
		    (c->codec == FP_CODEC_RAW && c->stored_len != c->logical_len)) {
			free(span);
			return snprintf(why, n, "chunk %u entry", i), why;
		}
		if (!c->stored_len)
			continue;
		if (c->file_offset % 4096 || c->file_offset < 4096 ||
		    c->file_offset + c->stored_len > tables || c->file_offset + c->stored_len < c->file_offset) {
			free(span);
			return snprintf(why, n, "chunk %u payload placement", i), why;
		}
		span[ns][0] = c->file_offset;
		span[ns++][1] = c->file_offset + c->stored_len;
		if (in->raw_base && (c->codec != FP_CODEC_RAW || c->file_offset != in->raw_base + c->logical_offset)) {
			free(span);
			return snprintf(why, n, "raw layout claim, chunk %u", i), why;
		}
	}
	for (uint32_t i = 0; i < ns; i++)
		for (uint32_t j = i + 1; j < ns; j++)
			if (span[i][0] < span[j][1] && span[j][0] < span[i][1]) {
				free(span);
				return snprintf(why, n, "payloads overlap"), why;
			}
	free(span);
	uint64_t prev_end = 0;
	for (uint32_t i = 0; i < in->n_tensors; i++) {
		const struct fp_tensor_desc *t = fp_image_tensor(img, i);
		if (!memchr(t->name, 0, 64) || !t->name[0])
			return snprintf(why, n, "tensor %u name", i), why;
		for (uint32_t j = 0; j < i; j++)
			if (!strcmp(fp_image_tensor(img, j)->name, t->name))
				return snprintf(why, n, "tensor %u duplicate name", i), why;
		if (ref_bytes(t->type, t->ndim, t->shape) != t->size || !t->size)
			return snprintf(why, n, "tensor %u size/type/shape", i), why;
		if (t->offset % 4096 || t->offset < prev_end || t->offset > in->logical_size ||
		    t->size > in->logical_size - t->offset)
			return snprintf(why, n, "tensor %u placement", i), why;
		prev_end = t->offset + t->size;
		for (uint64_t k = t->offset / cs; k * cs < prev_end; k++) {
			uint64_t need = prev_end - k * cs < cs ? prev_end - k * cs : cs;
			if (fp_image_chunk(img, (uint32_t)k)->logical_len < need)
				return snprintf(why, n, "tensor %u not covered by chunk data", i), why;
		}
	}
	/* Reading a chunk either fails or gives bytes that match its checksum
	 * and zeros after them. */
	uint8_t *dst = malloc(cs);
	for (uint32_t i = 0; i < in->n_chunks; i++) {
		const struct fp_chunk_desc *c = fp_image_chunk(img, i);
		memset(dst, 0xA5, cs);
		if (fp_image_read_chunk(img, i, dst))
			continue;
		if (tu_crc32c(0, dst, c->logical_len) != c->checksum) {
			free(dst);
			return snprintf(why, n, "chunk %u read back bytes that fail the checksum", i), why;
		}
		for (uint32_t k = c->logical_len; k < cs; k++)
			if (dst[k]) {
				free(dst);
				return snprintf(why, n, "padding: chunk %u byte %u past logical_len %u is not zero",
				                i, k, c->logical_len), why;
			}
	}
	free(dst);
	(void)fp_image_tensor_at(img, 0);
	(void)fp_image_tensor_at(img, in->logical_size - 1);
	char buf[32];
	(void)fp_image_meta(img, "arch", buf, sizeof buf);
	return NULL;
}

static void fuzz(uint64_t seed, int iterations)
{
	tu_file orig = load_base();
	uint64_t tables = tu_get64(&orig, TU_H_TT_OFFSET);
	cr_assert_lt(tables, orig.len);
	tu_file f = {malloc(orig.len), orig.len};
	cr_assert(f.data);
	int fd = open(g_img, O_WRONLY | O_CLOEXEC);
	cr_assert(fd >= 0);
	uint64_t rng = seed;
	int accepted = 0;
	char padding[160] = "";
	for (int it = 0; it < iterations; it++) {
		memcpy(f.data, orig.data, orig.len);
		int flips = 1 + (int)(tu_rand(&rng) % 4);
		for (int k = 0; k < flips; k++) {
			uint64_t r = tu_rand(&rng);
			uint64_t pos = (r & 1) ? (r >> 8) % 124 : tables + (r >> 8) % (orig.len - tables);
			uint8_t x = (uint8_t)(r >> 1);
			f.data[pos] ^= x ? x : 0x01;
		}
		int fixed = tu_rand(&rng) % 2;
		if (fixed)
			tu_fix_crcs(&f);
		cr_assert_eq(pwrite(fd, f.data, 4096, 0), 4096);
		cr_assert_eq(pwrite(fd, f.data + tables, orig.len - tables, (off_t)tables),
		             (ssize_t)(orig.len - tables));
		fp_image *img = fp_image_open(g_img);
		if (!img) {
			const char *e = fp_last_error();
			cr_assert(strstr(e, g_img), "iteration %d (seed %llu): error without the file name: %s",
			          it, (unsigned long long)seed, e);
			continue;
		}
		accepted++;
		char why[128];
		const char *bad = check_invariants(img, &f, why, sizeof why);
		fp_image_close(img);
		if (bad && !strncmp(bad, "padding:", 8)) {
			/* Report it at the end; keep looking for worse. */
			if (!padding[0])
				snprintf(padding, sizeof padding, "iteration %d: %s", it, bad);
			continue;
		}
		cr_assert_null(bad, "iteration %d (seed %llu, checksums %s): accepted an image that breaks "
		               "the format's invariants: %s", it, (unsigned long long)seed,
		               fixed ? "recomputed" : "kept", bad);
	}
	close(fd);
	cr_expect_str_empty(padding, "fp_image_read_chunk returned a chunk whose bytes past logical_len "
	                    "are not zero (%s)", padding);
	cr_log_info("fuzz seed %llu: %d of %d corrupted images accepted (and consistent)",
	            (unsigned long long)seed, accepted, iterations);
	/* The untouched image still opens. */
	cr_assert(!tu_save(g_img, &orig));
	fp_image *img = fp_image_open(g_img);
	cr_assert(img, "%s", fp_last_error());
	fp_image_close(img);
	tu_free(&f);
	tu_free(&orig);
}

Test(format, fuzz_zstd_image, .init = base_zstd, .fini = base_fini, .timeout = 120)
{
	fuzz(20240601, 2000);
}

Test(format, fuzz_raw_image, .init = base_raw, .fini = base_fini, .timeout = 120)
{
	fuzz(77, 2000);
}
