/* What the image format suites share: the suite and its temporary
 * directory, independent references, an image builder that remembers
 * what it wrote, and the base image the bad-input suites corrupt.
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

#include "format_util.h"
#include "testutil.h"

char *g_dir;

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
uint64_t ref_bytes(uint32_t type, uint32_t ndim, const uint64_t *shape)
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

/* The first non-zero byte found past logical_len in a chunk read back;
 * reported by check_padding() at the end of a test, so that the rest of
 * the test still runs. */
static char g_padding_issue[256];

/* dst (a chunk read back) must hold want's len bytes, then zeros up to cs. */
void assert_chunk_bytes(const uint8_t *dst, const uint8_t *want, uint32_t len, uint32_t cs,
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

void check_padding(void)
{
	cr_assert_str_empty(g_padding_issue, "%s", g_padding_issue);
}

/* ------------------------------------------------------------------ */
/* Writing images                                                       */


void built_free(struct built *b)
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
int build_image(const char *path, const struct fp_writer_options *opt,
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
void check_built(const char *path, const struct built *b, uint32_t codec, const char *meta)
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

/* ------------------------------------------------------------------ */
/* Bad input                                                            */

/* The base image: 64 KiB chunks, five of them.
 *   tensor 0 "tok_embd" f32 64x300 (76800 B, compressible): chunks 0, 1
 *   tensor 1 "blob"     u8 100000 (random):                 chunks 2, 3
 *   tensor 2 "norm"     q8_0 32x10 (340 B, compressible):   chunk 4 */
char *g_img;
struct built g_b;

void make_base(uint32_t codec)
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
void base_raw(void)
{
	make_base(FP_CODEC_RAW);
}

void base_zstd(void)
{
	make_base(FP_CODEC_ZSTD);
}

void base_fini(void)
{
	built_free(&g_b);
	free(g_img);
	g_img = NULL;
}

tu_file load_base(void)
{
	tu_file f;
	cr_assert(!tu_load(g_img, &f), "cannot read %s", g_img);
	return f;
}

/* Writes f back over the base image; fix: recompute both checksums. */
void store(tu_file *f, int fix)
{
	if (fix)
		tu_fix_crcs(f);
	cr_assert(!tu_save(g_img, f));
	tu_free(f);
}

/* fp_image_open(path) must fail with errno code and a message naming path
 * and matching each of the '|'-alternative groups that follow
 * (NULL-terminated). */
void expect_open_fails_(const char *path, int code, const char *what, ...)
{
	errno = 0;
	fp_image *img = fp_image_open(path);
	if (img) {
		fp_image_close(img);
		cr_assert_fail("fp_image_open accepted an image with %s", what);
	}
	cr_assert_eq(errno, code, "[%s] errno %d (%s), expected %d (%s)", what, errno,
	             strerror(errno), code, strerror(code));
	const char *e = fp_last_error();
	cr_assert(e && strstr(e, path), "[%s] the error does not name the file: \"%s\"", what, e);
	va_list ap;
	va_start(ap, what);
	const char *alt;
	while ((alt = va_arg(ap, const char *)))
		cr_assert(tu_contains_any(e, alt), "[%s] the error does not say '%s': \"%s\"", what, alt, e);
	va_end(ap);
}
