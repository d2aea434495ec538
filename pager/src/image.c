/* Reading an image: header, tables and their validation.  Every field that
 * a later step trusts (offsets, lengths, codecs, types) is checked here, so
 * the pager can do plain arithmetic on them. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include "error.h"
#include "codec_split.h"
#include "format.h"
#include "image.h"
#include "pipeline.h"

int pg_read_full(int fd, void *buf, size_t len, uint64_t off)
{
	size_t done = 0;
	while (done < len) {
		ssize_t n = pread(fd, (char *)buf + done, len - done, (off_t)(off + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		done += (size_t)n;
	}
	return 0;
}

static int range_ok(uint64_t off, uint64_t len, uint64_t limit)
{
	uint64_t end;
	return !__builtin_add_overflow(off, len, &end) && end <= limit;
}

static int check_header(const char *path, const struct pg_disk_header *h, uint64_t fsize)
{
	if (memcmp(h->magic, FP_IMAGE_MAGIC, 8))
		return pg_err(EBADMSG, "%s: neither a flexpage image nor a GGUF file (bad magic)", path);
	if (h->version < 1 || h->version > FP_IMAGE_VERSION)
		return pg_err(h->version ? ENOTSUP : EBADMSG, "%s: header.version is %u; this flexpage reads versions 1 to %u",
		              path, h->version, FP_IMAGE_VERSION);
	if (h->header_size != PG_HEADER_BYTES)
		return pg_err(EBADMSG, "%s: header.header_size is %u, expected %u", path,
		              h->header_size, PG_HEADER_BYTES);
	if (pg_crc32c(0, h, offsetof(struct pg_disk_header, header_crc)) != h->header_crc)
		return pg_err(EBADMSG, "%s: header checksum mismatch (corrupt header)", path);
	if (h->file_size != fsize)
		return pg_err(EBADMSG,
		              "%s: file is %llu bytes but header.file_size says %llu (truncated or extended)",
		              path, (unsigned long long)fsize, (unsigned long long)h->file_size);
	uint32_t cs = h->chunk_size;
	if (cs < FP_CHUNK_MIN || cs > FP_CHUNK_MAX || (cs & (cs - 1)))
		return pg_err(EBADMSG,
		              "%s: header.chunk_size %u is not a power of two in [64 KiB, 4 MiB]", path, cs);
	uint64_t lsize;
	if (__builtin_mul_overflow((uint64_t)h->n_chunks, (uint64_t)cs, &lsize) ||
	    lsize != h->logical_size)
		return pg_err(EBADMSG,
		              "%s: header.logical_size %llu is not n_chunks (%u) x chunk_size (%u)",
		              path, (unsigned long long)h->logical_size, h->n_chunks, cs);
	if (h->tensor_table_size != (uint64_t)h->n_tensors * sizeof(struct pg_disk_tensor))
		return pg_err(EBADMSG,
		              "%s: header.tensor_table_size %llu does not fit n_tensors %u", path,
		              (unsigned long long)h->tensor_table_size, h->n_tensors);
	if (h->chunk_table_size != (uint64_t)h->n_chunks * sizeof(struct fp_chunk_desc))
		return pg_err(EBADMSG,
		              "%s: header.chunk_table_size %llu does not fit n_chunks %u", path,
		              (unsigned long long)h->chunk_table_size, h->n_chunks);
	if (!range_ok(h->tensor_table_offset, h->tensor_table_size, fsize))
		return pg_err(EBADMSG,
		              "%s: header.tensor_table_offset points outside the file", path);
	if (!range_ok(h->chunk_table_offset, h->chunk_table_size, fsize))
		return pg_err(EBADMSG,
		              "%s: header.chunk_table_offset points outside the file", path);
	if (!range_ok(h->meta_offset, h->meta_size, fsize))
		return pg_err(EBADMSG, "%s: header.meta_offset points outside the file", path);
	if (h->meta_size > (64u << 20) || h->tensor_table_size > (1ull << 32) ||
	    h->chunk_table_size > (1ull << 34))
		return pg_err(EBADMSG, "%s: header tables are implausibly large", path);
	if (h->flags & ~(PG_FLAG_RAW_LAYOUT | PG_FLAG_VERBATIM))
		return pg_err(EBADMSG, "%s: header.flags has unknown bits 0x%x", path, h->flags);
	if (h->n_tensors == 0 && !(h->flags & PG_FLAG_VERBATIM))
		return pg_err(EBADMSG,
		              "%s: header.n_tensors is 0: the image holds no tensors", path);
	if (h->n_chunks == 0)
		return pg_err(EBADMSG, "%s: header.n_chunks is 0: the image holds no chunks", path);
	const uint32_t n_alts = h->version >= PG_VERSION_ALTS ? h->n_alts : 0;
	if (n_alts > h->n_chunks)
		return pg_err(EBADMSG, "%s: header.n_alts %u is more than one a chunk (%u)", path,
		              n_alts, h->n_chunks);
	if (!range_ok(h->chunk_table_offset + h->chunk_table_size,
	              (uint64_t)n_alts * sizeof(struct fp_chunk_desc), fsize))
		return pg_err(EBADMSG, "%s: header.n_alts: the alternate-form table after the chunk "
		              "table runs past the file", path);
	if (n_alts && (h->flags & PG_FLAG_RAW_LAYOUT))
		return pg_err(EBADMSG, "%s: header.flags says raw layout but n_alts is %u (a raw-layout "
		              "image holds one form a chunk)", path, n_alts);
	return 0;
}

static int cmp_u64pair(const void *a, const void *b)
{
	const uint64_t *x = a, *y = b;
	return x[0] < y[0] ? -1 : x[0] > y[0];
}

/* One stored form's fields (a chunk entry, or an alternate's: what names
 * it in messages): its codec, a length its codec allows, and a payload
 * aligned inside the payload area. */
static int check_payload(struct fp_image *img, const struct pg_disk_header *h,
                         const struct fp_chunk_desc *c, uint32_t i, const char *what,
                         uint64_t table_start)
{
	const char *path = img->path;
	if (c->codec != FP_CODEC_RAW && c->codec != FP_CODEC_ZSTD &&
	    c->codec != FP_CODEC_ZSTD_SPLIT)
		return pg_err(EBADMSG, "%s: %s %u: unknown codec %u", path, what, i, c->codec);
	if (c->codec == FP_CODEC_ZSTD_SPLIT && h->version < 3)
		return pg_err(EBADMSG, "%s: %s %u: codec %u (zstd-split) in a version %u image (it "
		              "came with version 3)", path, what, i, c->codec, h->version);
	if (c->codec == FP_CODEC_ZSTD_SPLIT &&
	    (c->stored_len <= PG_SPLIT_HEADER ||
	     c->stored_len > ZSTD_compressBound(h->chunk_size) + PG_SPLIT_HEADER))
		return pg_err(EBADMSG,
		              "%s: %s %u: zstd-split stored_len %u is impossible for chunk_size %u",
		              path, what, i, c->stored_len, h->chunk_size);
	if (c->codec == FP_CODEC_RAW && c->stored_len != c->logical_len)
		return pg_err(EBADMSG,
		              "%s: %s %u: raw chunk stored_len %u != logical_len %u", path, what, i,
		              c->stored_len, c->logical_len);
	if (c->codec == FP_CODEC_ZSTD &&
	    (c->stored_len == 0 || c->stored_len > ZSTD_compressBound(h->chunk_size)))
		return pg_err(EBADMSG,
		              "%s: %s %u: zstd stored_len %u is impossible for chunk_size %u", path,
		              what, i, c->stored_len, h->chunk_size);
	if (c->stored_len == 0)
		return 0;
	if (c->file_offset % FP_IMAGE_ALIGN)
		return pg_err(EBADMSG,
		              "%s: %s %u: file_offset %llu is not 4 KiB aligned", path, what, i,
		              (unsigned long long)c->file_offset);
	if (c->file_offset < FP_IMAGE_ALIGN || !range_ok(c->file_offset, c->stored_len, table_start))
		return pg_err(EBADMSG,
		              "%s: %s %u: payload [%llu, +%u) lies outside the payload area", path,
		              what, i, (unsigned long long)c->file_offset, c->stored_len);
	return 0;
}

/* Each alternate names a chunk of data (ascending, one each), holds its
 * logical bytes under its checksum, and is a payload of its own. */
static int check_alts(struct fp_image *img, const struct pg_disk_header *h, uint64_t table_start,
                      uint64_t (*span)[2], uint32_t *nspan)
{
	const char *path = img->path;
	for (uint32_t k = 0; k < h->n_alts; k++) {
		const struct fp_chunk_desc *a = &img->alts[k];
		uint64_t i = a->logical_offset / h->chunk_size;
		if (a->logical_offset % h->chunk_size || i >= h->n_chunks)
			return pg_err(EBADMSG, "%s: alternate %u: logical_offset %llu is no chunk's", path,
			              k, (unsigned long long)a->logical_offset);
		if (k && a->logical_offset <= img->alts[k - 1].logical_offset)
			return pg_err(EBADMSG, "%s: alternate %u: logical_offset %llu is not past the one "
			              "before (alternates are in ascending order, one a chunk)", path, k,
			              (unsigned long long)a->logical_offset);
		const struct fp_chunk_desc *c = &img->chunks[i];
		if (a->logical_len != c->logical_len || a->checksum != c->checksum || !c->stored_len)
			return pg_err(EBADMSG, "%s: alternate %u: logical_len %u and checksum 0x%08x are "
			              "not chunk %llu's (%u, 0x%08x)", path, k, a->logical_len, a->checksum,
			              (unsigned long long)i, c->logical_len, c->checksum);
		if (check_payload(img, h, a, k, "alternate", table_start))
			return -EBADMSG;
		if (!a->stored_len)
			return pg_err(EBADMSG, "%s: alternate %u: stored_len is 0", path, k);
		img->alt_of[i] = k;
		span[*nspan][0] = a->file_offset;
		span[*nspan][1] = a->file_offset + a->stored_len;
		(*nspan)++;
	}
	return 0;
}

/* Every payload lies in the file before the tables, 4 KiB aligned, and no
 * two payloads overlap. */
static int check_chunks(struct fp_image *img, const struct pg_disk_header *h)
{
	const char *path = img->path;
	uint64_t table_start = h->tensor_table_offset;
	if (h->chunk_table_offset < table_start)
		table_start = h->chunk_table_offset;
	if (h->meta_offset < table_start)
		table_start = h->meta_offset;
	uint64_t (*span)[2] = malloc(sizeof *span * ((uint64_t)h->n_chunks + h->n_alts));
	if (!span)
		return pg_err(ENOMEM, "%s: out of memory", path);
	uint32_t nspan = 0;
	for (uint32_t i = 0; i < h->n_chunks; i++) {
		struct fp_chunk_desc *c = &img->chunks[i];
		if (c->logical_offset != (uint64_t)i * h->chunk_size)
			goto bad_fmt_offset;
		if (c->logical_len > h->chunk_size) {
			pg_err(EBADMSG,
			       "%s: chunk %u: logical_len %u exceeds chunk_size %u", path, i,
			       c->logical_len, h->chunk_size);
			goto fail;
		}
		if (check_payload(img, h, c, i, "chunk", table_start))
			goto fail;
		if (c->stored_len == 0)
			continue;
		span[nspan][0] = c->file_offset;
		span[nspan][1] = c->file_offset + c->stored_len;
		nspan++;
		img->info.data_bytes += c->logical_len;
		img->info.stored_bytes += c->stored_len;
	}
	if (h->n_alts && check_alts(img, h, table_start, span, &nspan))
		goto fail;
	qsort(span, nspan, sizeof *span, cmp_u64pair);
	for (uint32_t i = 1; i < nspan; i++) {
		if (span[i][0] < span[i - 1][1]) {
			pg_err(EBADMSG, "%s: chunk payloads overlap at file offset %llu", path,
			       (unsigned long long)span[i][0]);
			goto fail;
		}
	}
	free(span);
	return 0;
bad_fmt_offset:
	pg_err(EBADMSG,
	       "%s: chunk table entries are not in logical order (overlapping or unaligned chunks)", path);
fail:
	free(span);
	return -EBADMSG;
}

/* A verbatim image's logical bytes are a file's: its tensors may be of any
 * ggml type, at any offset, and every chunk but the last is full. */
static int check_verbatim(const struct fp_image *img)
{
	for (uint32_t i = 0; i + 1 < img->info.n_chunks; i++)
		if (img->chunks[i].logical_len != img->info.chunk_size)
			return pg_err(EBADMSG, "%s: chunk %u: logical_len %u, but a verbatim image's "
			              "chunks are full but for the last", img->path, i,
			              img->chunks[i].logical_len);
	return 0;
}

static int check_tensors(struct fp_image *img, const struct pg_disk_tensor *dt, uint32_t n)
{
	const char *path = img->path;
	uint64_t prev_end = 0;
	uint32_t cs = img->info.chunk_size;
	int verbatim = img->info.kind == FP_IMAGE_VERBATIM;
	for (uint32_t i = 0; i < n; i++) {
		const struct pg_disk_tensor *d = &dt[i];
		struct fp_tensor_desc *t = &img->tensors[i];
		if (!memchr(d->name, 0, FP_NAME_MAX) || !d->name[0])
			return pg_err(EBADMSG,
			              "%s: tensor %u: name is empty or not terminated", path, i);
		memcpy(t->name, d->name, FP_NAME_MAX);
		if (!fp_type_name(d->type) && !(verbatim && fp_ggml_type_name(d->type)))
			return pg_err(EBADMSG,
			              "%s: tensor '%s': unknown type %u", path, t->name, d->type);
		if (d->ndim < 1 || d->ndim > FP_MAX_DIMS)
			return pg_err(EBADMSG,
			              "%s: tensor '%s': ndim %u out of range", path, t->name, d->ndim);
		uint64_t bytes = 0;
		if (verbatim ? pg_verbatim_tensor_bytes(d->type, d->ndim, d->shape, &bytes) ||
		                   bytes != d->size
		             : (bytes = pg_tensor_bytes(d->type, d->ndim, d->shape)) == 0 || bytes != d->size)
			return pg_err(EBADMSG,
			              "%s: tensor '%s': size %llu does not match its type and shape",
			              path, t->name, (unsigned long long)d->size);
		if (d->offset % FP_TENSOR_ALIGN && !verbatim)
			return pg_err(EBADMSG,
			              "%s: tensor '%s': offset %llu is not page (%u byte) aligned", path,
			              t->name, (unsigned long long)d->offset, FP_TENSOR_ALIGN);
		if (d->offset < prev_end)
			return pg_err(EBADMSG,
			              "%s: tensor '%s': overlaps the tensor before it (tensors must be in ascending order)",
			              path, t->name);
		if (!range_ok(d->offset, d->size, img->info.logical_size))
			return pg_err(EBADMSG,
			              "%s: tensor '%s': extends past the logical size", path, t->name);
		t->type = d->type;
		t->ndim = d->ndim;
		memcpy(t->shape, d->shape, sizeof t->shape);
		t->offset = d->offset;
		t->size = d->size;
		prev_end = d->offset + d->size;
		/* Each chunk under the tensor must hold all of the tensor's bytes
		 * in it (a chunk may hold the end of one tensor and the start of
		 * the next). */
		for (uint64_t k = t->offset / cs; k * cs < prev_end; k++) {
			const struct fp_chunk_desc *c = &img->chunks[k];
			uint64_t need = prev_end - k * cs < cs ? prev_end - k * cs : cs;
			if (c->logical_len < need)
				return pg_err(EBADMSG,
				              "%s: tensor '%s': chunk %llu holds %u bytes, the tensor needs %llu",
				              path, t->name, (unsigned long long)k, c->logical_len,
				              (unsigned long long)need);
		}
		for (uint32_t j = 0; j < i; j++)
			if (!strcmp(img->tensors[j].name, t->name))
				return pg_err(EBADMSG,
				              "%s: tensor name '%s' appears twice", path, t->name);
	}
	return 0;
}

static fp_image *open_image(const char *path)
{
	struct fp_image *img = calloc(1, sizeof *img);
	struct pg_disk_tensor *dt = NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC), rc = 0;
	if (!img) {
		rc = pg_err(ENOMEM, "%s: out of memory", path);
		goto fail;
	}
	img->path = strdup(path);
	if (fd < 0) {
		rc = pg_err(pg_errno(), "%s: cannot open: %s", path, strerror(errno));
		goto fail;
	}
	struct stat st;
	if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
		rc = pg_err(EINVAL, "%s: not a regular file", path);
		goto fail;
	}
	uint64_t fsize = (uint64_t)st.st_size;
	struct pg_disk_header h;
	if (fsize < FP_IMAGE_ALIGN || pg_read_full(fd, &h, sizeof h, 0)) {
		rc = pg_err(EBADMSG,
		            "%s: too short to be a flexpage image (%llu bytes; truncated?)", path,
		            (unsigned long long)fsize);
		goto fail;
	}
	if ((rc = check_header(path, &h, fsize)))
		goto fail;
	if (h.version < PG_VERSION_ALTS)
		h.n_alts = 0; /* a reserved word before version 4 */
	img->info = (struct fp_image_info){
		.path = img->path, .file_size = fsize, .logical_size = h.logical_size,
		.chunk_size = h.chunk_size, .n_tensors = h.n_tensors, .n_chunks = h.n_chunks,
		.raw_base = (h.flags & PG_FLAG_RAW_LAYOUT) ? h.raw_base : 0,
		.kind = (h.flags & PG_FLAG_VERBATIM) ? FP_IMAGE_VERBATIM : FP_IMAGE_PACKED,
		.n_alt_forms = h.n_alts,
		.version = h.version,
	};
	img->tensors = calloc(h.n_tensors ? h.n_tensors : 1, sizeof *img->tensors);
	img->chunks = malloc(h.chunk_table_size);
	dt = malloc(h.tensor_table_size ? h.tensor_table_size : 1);
	img->meta = malloc(h.meta_size + 1);
	uint64_t alt_size = (uint64_t)h.n_alts * sizeof(struct fp_chunk_desc);
	if (h.n_alts) {
		img->alts = malloc(alt_size);
		img->alt_of = malloc(sizeof *img->alt_of * h.n_chunks);
		if (img->alt_of)
			memset(img->alt_of, 0xff, sizeof *img->alt_of * h.n_chunks);
	}
	if (!img->tensors || !img->chunks || !dt || !img->meta ||
	    (h.n_alts && (!img->alts || !img->alt_of))) {
		rc = pg_err(ENOMEM, "%s: out of memory for the tables", path);
		goto fail;
	}
	if (pg_read_full(fd, dt, h.tensor_table_size, h.tensor_table_offset) ||
	    pg_read_full(fd, img->chunks, h.chunk_table_size, h.chunk_table_offset) ||
	    pg_read_full(fd, img->alts, alt_size, h.chunk_table_offset + h.chunk_table_size) ||
	    pg_read_full(fd, img->meta, h.meta_size, h.meta_offset)) {
		rc = pg_err(EIO,
		            "%s: cannot read the tables: %s", path, strerror(errno ? errno : EIO));
		goto fail;
	}
	img->meta[h.meta_size] = 0;
	uint32_t crc = pg_crc32c(0, dt, h.tensor_table_size);
	crc = pg_crc32c(crc, img->chunks, h.chunk_table_size);
	crc = pg_crc32c(crc, img->alts, alt_size);
	crc = pg_crc32c(crc, img->meta, h.meta_size);
	if (crc != h.tables_crc) {
		rc = pg_err(EBADMSG,
		            "%s: table checksum mismatch (corrupt tensor table, chunk table or meta)", path);
		goto fail;
	}
	if (strlen(img->meta) != h.meta_size) {
		rc = pg_err(EBADMSG, "%s: meta holds a NUL byte", path);
		goto fail;
	}
	img->info.meta = img->meta;
	if ((rc = check_chunks(img, &h)) || (rc = check_tensors(img, dt, h.n_tensors)) ||
	    (img->info.kind == FP_IMAGE_VERBATIM && (rc = check_verbatim(img))))
		goto fail;
	if (img->info.raw_base) {
		const struct fp_chunk_desc *c = img->chunks;
		uint64_t tables = h.tensor_table_offset;
		if (h.chunk_table_offset < tables)
			tables = h.chunk_table_offset;
		if (h.meta_offset < tables)
			tables = h.meta_offset;
		if (!range_ok(h.raw_base, h.logical_size, tables)) {
			rc = pg_err(EBADMSG,
			            "%s: header.raw_base: the raw layout [%llu, +%llu) runs into the tables "
			            "or past the file", path, (unsigned long long)h.raw_base,
			            (unsigned long long)h.logical_size);
			goto fail;
		}
		for (uint32_t i = 0; i < h.n_chunks; i++)
			if (c[i].stored_len && (c[i].codec != FP_CODEC_RAW ||
			                        c[i].file_offset != h.raw_base + c[i].logical_offset)) {
				rc = pg_err(EBADMSG,
				            "%s: header.flags says raw layout but chunk %u is not at raw_base + offset",
				            path, i);
				goto fail;
			}
	}
	free(dt);
	close(fd);
	return img;
fail:
	free(dt);
	if (fd >= 0)
		close(fd);
	fp_image_close(img);
	return pg_fail_null(rc);
}

int fp_file_is_gguf(const char *path)
{
	char magic[4];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	int yes = fd >= 0 && pread(fd, magic, 4, 0) == 4 && !memcmp(magic, FP_GGUF_MAGIC, 4);
	if (fd >= 0)
		close(fd);
	return yes;
}

fp_image *fp_image_open_chunk(const char *path, uint32_t chunk_size)
{
	if (fp_file_is_gguf(path))
		return pg_gguf_image_open(path, chunk_size);
	fp_image *img = open_image(path);
	if (img && img->info.kind == FP_IMAGE_VERBATIM && pg_gguf_image_attach(img)) {
		fp_image_close(img);
		return NULL;
	}
	return img;
}

fp_image *fp_image_open(const char *path)
{
	return fp_image_open_chunk(path, 0);
}

void fp_image_close(fp_image *img)
{
	if (!img)
		return;
	fp_gguf_close(img->gguf);
	free(img->path);
	free(img->meta);
	free(img->tensors);
	free(img->chunks);
	free(img->alts);
	free(img->alt_of);
	free(img);
}

const struct fp_image_info *fp_image_info(const fp_image *img)
{
	return &img->info;
}

const struct fp_tensor_desc *fp_image_tensor(const fp_image *img, uint32_t i)
{
	return i < img->info.n_tensors ? &img->tensors[i] : NULL;
}

const struct fp_tensor_desc *fp_image_find(const fp_image *img, const char *name)
{
	for (uint32_t i = 0; i < img->info.n_tensors; i++)
		if (!strcmp(img->tensors[i].name, name))
			return &img->tensors[i];
	return NULL;
}

const struct fp_chunk_desc *fp_image_chunk(const fp_image *img, uint32_t i)
{
	return i < img->info.n_chunks ? &img->chunks[i] : NULL;
}

const struct fp_tensor_desc *fp_image_tensor_at(const fp_image *img, uint64_t off)
{
	uint32_t lo = 0, hi = img->info.n_tensors;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (img->tensors[mid].offset <= off)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == 0)
		return NULL;
	const struct fp_tensor_desc *t = &img->tensors[lo - 1];
	return off < t->offset + t->size ? t : NULL;
}

int fp_image_meta(const fp_image *img, const char *key, char *buf, size_t n)
{
	size_t klen = strlen(key);
	for (const char *p = img->meta; *p;) {
		const char *eol = strchr(p, '\n');
		size_t len = eol ? (size_t)(eol - p) : strlen(p);
		if (len > klen && !strncmp(p, key, klen) && p[klen] == '=') {
			size_t vlen = len - klen - 1;
			if (vlen >= n)
				vlen = n ? n - 1 : 0;
			if (n) {
				memcpy(buf, p + klen + 1, vlen);
				buf[vlen] = 0;
			}
			return 0;
		}
		p += len + (eol != NULL);
	}
	return -ENOENT;
}

int pg_decode_chunk(const struct fp_image *img, uint32_t i, const void *src, void *dst,
                    void *zstd_dctx)
{
	return pg_decode_form(img, i, &img->chunks[i], src, dst, zstd_dctx);
}

int pg_decode_form(const struct fp_image *img, uint32_t i, const struct fp_chunk_desc *c,
                   const void *src, void *dst, void *zstd_dctx)
{
	if (c->codec == FP_CODEC_RAW) {
		if (dst != src)
			memcpy(dst, src, c->logical_len);
	} else {
		/* zstd-split: a header, then a frame of the split bytes */
		const size_t skip = c->codec == FP_CODEC_ZSTD_SPLIT ? PG_SPLIT_HEADER : 0;
		struct pg_split sp;
		if (skip) {
			memcpy(&sp, src, sizeof sp);
			if (pg_split_params(&sp, c->logical_len))
				return pg_err(EBADMSG, "%s: chunk %u: zstd-split header (stride %u, head %u, "
				              "%u blocks from %u) does not fit its %u bytes", img->path, i,
				              sp.stride, sp.head, sp.count, sp.begin, c->logical_len);
		}
		const char *frame = (const char *)src + skip;
		size_t n = zstd_dctx
		    ? ZSTD_decompressDCtx(zstd_dctx, dst, img->info.chunk_size, frame, c->stored_len - skip)
		    : ZSTD_decompress(dst, img->info.chunk_size, frame, c->stored_len - skip);
		if (ZSTD_isError(n))
			return pg_err(EBADMSG,
			              "%s: chunk %u: zstd frame does not decode: %s", img->path, i,
			              ZSTD_getErrorName(n));
		if (n != c->logical_len)
			return pg_err(EBADMSG,
			              "%s: chunk %u: zstd frame decodes to %zu bytes, expected %u",
			              img->path, i, n, c->logical_len);
		if (skip && pg_split_decode(&sp, dst))
			return -1;
	}
	/* A GGUF paged directly has no checksums: its chunks are unchecked. */
	if (img->info.kind == FP_IMAGE_DIRECT)
		return 0;
	uint32_t crc = pg_crc32c(0, dst, c->logical_len);
	if (crc != c->checksum)
		return pg_err(EBADMSG,
		              "%s: chunk %u: checksum mismatch (stored 0x%08x, computed 0x%08x)",
		              img->path, i, c->checksum, crc);
	return 0;
}

const struct fp_chunk_desc *fp_image_chunk_form(const fp_image *img, uint32_t i, uint32_t form)
{
	if (i >= img->info.n_chunks)
		return NULL;
	if (!form)
		return &img->chunks[i];
	return form == 1 && img->alt_of && img->alt_of[i] != UINT32_MAX ? &img->alts[img->alt_of[i]]
	                                                                 : NULL;
}

double pg_image_pick_forms(const struct fp_image *img, double read, double decode,
                           double cpus, uint8_t *alt)
{
	const uint32_t n = img->info.n_chunks;
	struct pg_pipe_item *it = calloc(n ? n : 1, sizeof *it);
	if (!it) {
		pg_err(ENOMEM, "%s: out of memory", img->path);
		return -1;
	}
	for (uint32_t i = 0; i < n; i++) {
		for (uint32_t f = 0; f < 2; f++) {
			const struct fp_chunk_desc *d = fp_image_chunk_form(img, i, f);
			if (!d)
				break;
			it[i].read[f] = (double)d->stored_len / read;
			it[i].decode[f] = d->codec != FP_CODEC_RAW ? (double)d->logical_len / decode : 0;
			it[i].forms = (int)f + 1;
		}
	}
	double t = pg_pipe_choose(it, n, cpus, alt);
	free(it);
	return t;
}

uint32_t pg_image_choose_forms(struct fp_image *img, double read, double decode, double cpus)
{
	uint32_t swapped = 0;
	uint8_t *alt = img->alt_of ? calloc(img->info.n_chunks, 1) : NULL;
	if (!alt || pg_image_pick_forms(img, read, decode, cpus, alt) < 0) {
		free(alt);
		return 0; /* each chunk in its table entry's form */
	}
	for (uint32_t i = 0; i < img->info.n_chunks; i++) {
		if (!alt[i])
			continue;
		struct fp_chunk_desc *a = &img->alts[img->alt_of[i]], t = img->chunks[i];
		img->info.stored_bytes += a->stored_len - (uint64_t)t.stored_len;
		img->chunks[i] = *a;
		*a = t;
		swapped++;
	}
	free(alt);
	return swapped;
}

int fp_image_read_chunk(const fp_image *img, uint32_t i, void *dst)
{
	return fp_image_read_chunk_form(img, i, 0, dst);
}

int fp_image_read_chunk_form(const fp_image *img, uint32_t i, uint32_t form, void *dst)
{
	if (i >= img->info.n_chunks)
		return pg_err(EINVAL, "%s: no chunk %u", img->path, i);
	const struct fp_chunk_desc *c = fp_image_chunk_form(img, i, form);
	if (!c)
		return pg_err(EINVAL, "%s: chunk %u has no form %u", img->path, i, form);
	memset(dst, 0, img->info.chunk_size);
	if (!c->stored_len)
		return c->checksum == pg_crc32c(0, dst, 0) ? 0
		       : pg_err(EBADMSG, "%s: chunk %u: checksum mismatch", img->path, i);
	int fd = open(img->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return pg_err(pg_errno(), "%s: cannot open: %s", img->path, strerror(errno));
	void *buf = c->codec == FP_CODEC_RAW ? dst : malloc(c->stored_len);
	int rc = -1;
	if (!buf)
		rc = pg_err(ENOMEM, "%s: out of memory", img->path);
	else if (pg_read_full(fd, buf, c->stored_len, c->file_offset))
		rc = pg_err(EIO, "%s: chunk %u: short read at file offset %llu", img->path, i,
		            (unsigned long long)c->file_offset);
	else if (!(rc = pg_decode_form(img, i, c, buf, dst, NULL)))
		/* zstd may have used the buffer past the frame as scratch. */
		memset((char *)dst + c->logical_len, 0, img->info.chunk_size - c->logical_len);
	if (buf != dst)
		free(buf);
	close(fd);
	return rc;
}
