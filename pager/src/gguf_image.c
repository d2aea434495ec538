/* A GGUF file seen as an image, so that a region serves the file itself:
 * its logical bytes are the file's bytes, cut into chunks stored at the
 * same offsets, raw, without checksums (FP_IMAGE_DIRECT); its tensors are
 * the GGUF's tensor infos.  And the GGUF header of an image packed from a
 * GGUF (FP_IMAGE_VERBATIM, meta format=gguf), parsed from its chunks, so
 * that both forms show the same metadata. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "gguf.h"
#include "image.h"

#define DEFAULT_CHUNK (2u << 20)

static int by_offset(const void *a, const void *b)
{
	const struct fp_tensor_desc *x = a, *y = b;
	return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* The image's tensor table: GGUF's infos in ascending offset. */
static int fill_tensors(struct fp_image *img, const fp_gguf *g)
{
	for (uint64_t i = 0; i < g->n_tensors; i++) {
		const struct fp_gguf_tensor *s = &g->tensors[i];
		struct fp_tensor_desc *t = &img->tensors[i];
		snprintf(t->name, sizeof t->name, "%s", s->name);
		t->type = s->type;
		/* A GGUF scalar (no dimensions) is a tensor of one value. */
		t->ndim = s->n_dims ? s->n_dims : 1;
		for (uint32_t d = 0; d < t->ndim; d++)
			t->shape[d] = s->ne[d];
		t->offset = s->offset;
		t->size = s->size;
	}
	qsort(img->tensors, g->n_tensors, sizeof *img->tensors, by_offset);
	return 0;
}

struct fp_image *pg_gguf_image_open(const char *path, uint32_t chunk_size)
{
	uint32_t cs = chunk_size ? chunk_size : DEFAULT_CHUNK;
	if (cs < FP_CHUNK_MIN || cs > FP_CHUNK_MAX || (cs & (cs - 1))) {
		pg_gguf_fail(EINVAL, "%s: chunk size %u is not a power of two from 64K to 4M", path, cs);
		return NULL;
	}
	fp_gguf *g = fp_gguf_open(path);
	if (!g)
		return NULL;
	uint64_t fsize = g->file_size, n_chunks = (fsize + cs - 1) / cs;
	if (n_chunks > UINT32_MAX || g->n_tensors > UINT32_MAX) {
		pg_gguf_fail(EFBIG, "%s: %llu bytes in chunks of %u, %llu tensors: too many for an image",
		          path, (unsigned long long)fsize, cs, (unsigned long long)g->n_tensors);
		fp_gguf_close(g);
		return NULL;
	}
	struct fp_image *img = calloc(1, sizeof *img);
	char meta[64];
	snprintf(meta, sizeof meta, "format=gguf\ngguf.version=%u\n", g->version);
	if (img) {
		img->gguf = g;
		img->path = strdup(path);
		img->meta = strdup(meta);
		img->tensors = calloc(g->n_tensors ? g->n_tensors : 1, sizeof *img->tensors);
		img->chunks = calloc(n_chunks, sizeof *img->chunks);
	}
	if (!img || !img->path || !img->meta || !img->tensors || !img->chunks) {
		pg_gguf_fail(ENOMEM, "%s: out of memory", path);
		if (!img)
			fp_gguf_close(g);
		fp_image_close(img);
		return NULL;
	}
	img->info = (struct fp_image_info){
		.path = img->path, .file_size = fsize, .logical_size = n_chunks * cs,
		.data_bytes = fsize, .stored_bytes = fsize, .chunk_size = cs,
		.n_tensors = (uint32_t)g->n_tensors, .n_chunks = (uint32_t)n_chunks,
		.meta = img->meta, .kind = FP_IMAGE_DIRECT,
	};
	/* Chunk i is the file's bytes at the same offset, the last one short.
	 * The checksum is unused: a direct image's chunks are not checked. */
	for (uint64_t i = 0; i < n_chunks; i++) {
		uint64_t off = i * cs, len = fsize - off < cs ? fsize - off : cs;
		img->chunks[i] = (struct fp_chunk_desc){
			.logical_offset = off, .logical_len = (uint32_t)len, .stored_len = (uint32_t)len,
			.file_offset = off, .codec = FP_CODEC_RAW,
		};
	}
	fill_tensors(img, g);
	return img;
}

/* The packed image's tensor table is the GGUF's, tensor for tensor. */
static int same_tensors(const struct fp_image *img, const fp_gguf *g)
{
	if (g->n_tensors != img->info.n_tensors)
		return pg_gguf_fail(EINVAL, "%s: the GGUF in the image has %llu tensors, its tensor table "
		                 "%u", img->path, (unsigned long long)g->n_tensors, img->info.n_tensors);
	for (uint64_t i = 0; i < g->n_tensors; i++) {
		const struct fp_gguf_tensor *s = &g->tensors[i];
		const struct fp_tensor_desc *t = fp_image_find(img, s->name);
		if (!t || t->type != s->type || t->offset != s->offset || t->size != s->size)
			return pg_gguf_fail(EINVAL, "%s: tensor '%s': the image's tensor table does not match "
			                 "the GGUF in its bytes", img->path, s->name);
	}
	return 0;
}

int pg_gguf_image_attach(struct fp_image *img)
{
	char format[16];
	if (fp_image_meta(img, "format", format, sizeof format) || strcmp(format, "gguf"))
		return 0;
	const uint32_t cs = img->info.chunk_size;
	const uint64_t fsize = img->info.data_bytes;
	uint8_t *buf = NULL;
	uint64_t have = 0, want = cs;
	uint32_t read = 0;
	fp_gguf *g = NULL;
	/* Read chunks from the start, twice as many each time the header goes
	 * on past them. */
	while (!g) {
		uint32_t upto = (uint32_t)((want + cs - 1) / cs);
		if (upto > img->info.n_chunks)
			upto = img->info.n_chunks;
		uint8_t *p = realloc(buf, (size_t)upto * cs);
		if (!p) {
			pg_gguf_fail(ENOMEM, "%s: out of memory for the GGUF header", img->path);
			break;
		}
		buf = p;
		for (; read < upto; read++)
			if (fp_image_read_chunk(img, read, buf + (size_t)read * cs)) {
				errno = EIO;
				break;
			}
		if (read < upto)
			break;
		have = (uint64_t)read * cs < fsize ? (uint64_t)read * cs : fsize;
		g = fp_gguf_parse(buf, have, fsize, img->path);
		if (!g && (errno != ENOBUFS || read == img->info.n_chunks))
			break;
		want *= 2;
	}
	free(buf);
	if (!g || same_tensors(img, g)) {
		fp_gguf_close(g);
		return -1;
	}
	img->gguf = g;
	return 0;
}

const fp_gguf *fp_image_gguf(const fp_image *img)
{
	return img->gguf;
}
