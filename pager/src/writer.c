/* Writing an image.  Tensors stream in, packed: each starts on the next
 * page (FP_TENSOR_ALIGN) of the logical layout, so a chunk may hold the end
 * of one tensor and the start of the next, and only the last chunk is
 * partial: every other chunk installs whole, as one huge page, and no
 * memory goes to padding.  (With align_tensors each tensor starts a chunk
 * instead.)  Each full (or final) chunk is checksummed, compressed and
 * written at once, so a model never sits whole in memory.
 * Everything goes to a temporary file that only fp_writer_finish() renames
 * over the destination. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zstd.h>

#include "error.h"
#include "codec_split.h"
#include "format.h"
#include "pipeline.h"
#include "progress.h"
#include "tmpfile.h"

/* One stored form of a chunk. */
struct pg_form {
	uint32_t codec, stored;
	const void *payload;
};

struct fp_writer {
	char *path, *tmp_path;
	int fd;
	struct fp_writer_options opt;
	ZSTD_CCtx *cctx;
	uint8_t *buf;            /* the chunk being filled */
	uint8_t *zbuf;
	size_t zcap;
	uint8_t *sbuf, *sz;      /* zstd-split: the split bytes, their frame */
	ZSTD_DCtx *dctx;         /* FP_CODEC_AUTO: times the candidates' decodes */
	int any_split;           /* a chunk is zstd-split: the image is version 3 */
	uint32_t fill;           /* bytes in buf */
	uint64_t logical;        /* logical offset of buf[0] */
	uint64_t cursor;         /* next free file offset (zstd layout) */
	int in_tensor;
	uint64_t tensor_left;
	struct pg_disk_tensor *tensors;
	uint32_t n_tensors, cap_tensors;
	struct fp_chunk_desc *chunks;
	uint32_t n_chunks, cap_chunks;
	struct fp_chunk_desc *alts;  /* FP_CODEC_BOTH and AUTO: the raw forms stored beside */
	uint32_t n_alts, cap_alts;
	double *decode_s;            /* FP_CODEC_AUTO: CPU seconds to decode each chunk's entry */
	uint32_t cap_decode_s;
	char *meta;
	uint64_t written;        /* tensor bytes taken in, for the progress bar */
	struct pg_progress progress;
};

static int write_full(fp_writer *w, const void *buf, size_t len, uint64_t off)
{
	size_t done = 0;
	while (done < len) {
		ssize_t n = pwrite(w->fd, (const char *)buf + done, len - done, (off_t)(off + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return pg_err(n < 0 ? errno : ENOSPC, "%s: write failed: %s", w->tmp_path,
			              strerror(n < 0 ? errno : ENOSPC));
		done += (size_t)n;
	}
	return 0;
}

static uint64_t align_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) / a * a;
}

fp_writer *fp_writer_create(const char *path, const struct fp_writer_options *opt)
{
	fp_writer *w = calloc(1, sizeof *w);
	if (!w)
		return pg_err_null(ENOMEM, "%s: out of memory", path);
	int rc;
	w->fd = -1;
	w->opt = opt ? *opt : (struct fp_writer_options){0};
	if (!w->opt.chunk_size)
		w->opt.chunk_size = 2u << 20;
	if (!w->opt.both_min_saving)
		w->opt.both_min_saving = FP_IMAGE_ALIGN;
	uint32_t cs = w->opt.chunk_size;
	if (cs < FP_CHUNK_MIN || cs > FP_CHUNK_MAX || (cs & (cs - 1))) {
		rc = pg_err(EINVAL,
		            "%s: chunk size %u is not a power of two from 64K to 4M", path, cs);
		goto fail;
	}
	if (w->opt.verbatim && w->opt.align_tensors) {
		rc = pg_err(EINVAL, "%s: a verbatim image keeps the file's offsets: it cannot align "
		            "tensors", path);
		goto fail;
	}
	if (w->opt.codec != FP_CODEC_RAW && w->opt.codec != FP_CODEC_ZSTD &&
	    w->opt.codec != FP_CODEC_AUTO && w->opt.codec != FP_CODEC_BOTH) {
		rc = pg_err(EINVAL, "%s: unknown codec %u", path, w->opt.codec);
		goto fail;
	}
	if (w->opt.codec != FP_CODEC_RAW) {
		if (!w->opt.zstd_level)
			w->opt.zstd_level = 3;
		if (w->opt.zstd_level < ZSTD_minCLevel() || w->opt.zstd_level > ZSTD_maxCLevel()) {
			rc = pg_err(EINVAL, "%s: zstd level %d out of range [%d, %d]", path,
			            w->opt.zstd_level, ZSTD_minCLevel(), ZSTD_maxCLevel());
			goto fail;
		}
		w->cctx = ZSTD_createCCtx();
		w->zcap = ZSTD_compressBound(cs);
		w->zbuf = malloc(w->zcap);
		w->sbuf = malloc(cs);
		w->sz = malloc(w->zcap + PG_SPLIT_HEADER);
		w->dctx = ZSTD_createDCtx();
	}
	w->path = strdup(path);
	w->buf = aligned_alloc(FP_IMAGE_ALIGN, cs);
	if (!w->path || !w->buf ||
	    (w->opt.codec != FP_CODEC_RAW && (!w->cctx || !w->zbuf || !w->sbuf || !w->sz || !w->dctx))) {
		rc = pg_err(ENOMEM, "%s: out of memory", path);
		goto fail;
	}
	if ((w->fd = pg_tmpfile_create(path, &w->tmp_path)) < 0) {
		rc = w->fd;
		goto fail;
	}
	w->cursor = FP_IMAGE_ALIGN;
	pg_progress_start(&w->progress, "pack", w->opt.expected_bytes, w->opt.progress);
	return w;
fail:
	fp_writer_abort(w);
	return pg_fail_null(rc);
}

int fp_writer_set_meta(fp_writer *w, const char *meta)
{
	free(w->meta);
	w->meta = strdup(meta ? meta : "");
	return w->meta ? 0 : pg_err(ENOMEM, "out of memory");
}

/* The blocks of a quantized tensor that fill most of the chunk being
 * flushed, for zstd-split: 0 with *sp set, or -1 if none. */
static int split_blocks(const fp_writer *w, struct pg_split *sp)
{
	const uint64_t lo = (uint64_t)w->n_chunks * w->opt.chunk_size, hi = lo + w->fill;
	uint64_t best = 0;
	for (uint32_t i = 0; i < w->n_tensors; i++) {
		const struct pg_disk_tensor *t = &w->tensors[i];
		const uint32_t stride = t->type == FP_TYPE_Q8_0 ? 34 : t->type == FP_TYPE_Q4_0 ? 18 : 0;
		const uint64_t a = t->offset > lo ? t->offset : lo;
		const uint64_t b = t->offset + t->size < hi ? t->offset + t->size : hi;
		if (!stride || b <= a)
			continue;
		const uint64_t first = t->offset + (a - t->offset + stride - 1) / stride * stride;
		const uint64_t count = first < b ? (b - first) / stride : 0;
		if (count * stride > best) {
			best = count * stride;
			*sp = (struct pg_split){.stride = (uint16_t)stride, .head = 2,
			                        .begin = (uint32_t)(first - lo), .count = (uint32_t)count};
		}
	}
	return best ? 0 : -1;
}

static double seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Seconds to decode a candidate payload (FP_CODEC_AUTO without a given
 * decode rate): it is decoded once, into the split buffer. */
static double decode_time(fp_writer *w, const struct pg_form *f)
{
	if (f->codec == FP_CODEC_RAW)
		return 0;
	if (w->opt.decode_rate > 0)
		return w->fill / w->opt.decode_rate;
	/* The better of two decodes: the first may pay for pages of sbuf
	 * touched for the first time or for a preemption, which a loader
	 * decoding a chunk a token does not. */
	const size_t skip = f->codec == FP_CODEC_ZSTD_SPLIT ? PG_SPLIT_HEADER : 0;
	double best = 0;
	for (int k = 0; k < 2; k++) {
		const double t0 = seconds();
		ZSTD_decompressDCtx(w->dctx, w->sbuf, w->opt.chunk_size,
		                    (const char *)f->payload + skip, f->stored - skip);
		if (skip) {
			struct pg_split sp;
			memcpy(&sp, f->payload, sizeof sp);
			pg_split_decode(&sp, w->sbuf);
		}
		const double t = seconds() - t0;
		best = k && best < t ? best : t;
	}
	return best;
}

/* The stored forms of the chunk in buf: raw, zstd and, over quantized
 * blocks, zstd-split; the index of the one to store, or -errno.  zstd
 * stores the smallest (raw when nothing shrinks: decoding it would cost
 * time and save nothing), and so do both and auto, which store the raw
 * form beside it (auto chooses between the two when the image is
 * finished: pick_auto_forms). */
static int pick_form(fp_writer *w, struct pg_form f[3])
{
	int n = 0;
	f[n++] = (struct pg_form){FP_CODEC_RAW, w->fill, w->buf};
	size_t z = ZSTD_compressCCtx(w->cctx, w->zbuf, w->zcap, w->buf, w->fill, w->opt.zstd_level);
	if (ZSTD_isError(z))
		return pg_err(EIO, "%s: zstd: %s", w->path, ZSTD_getErrorName(z));
	f[n++] = (struct pg_form){FP_CODEC_ZSTD, (uint32_t)z, w->zbuf};
	struct pg_split sp;
	if (!split_blocks(w, &sp)) {
		pg_split_encode(&sp, w->buf, w->fill, w->sbuf);
		z = ZSTD_compressCCtx(w->cctx, w->sz + PG_SPLIT_HEADER, w->zcap, w->sbuf, w->fill,
		                      w->opt.zstd_level);
		if (ZSTD_isError(z))
			return pg_err(EIO, "%s: zstd: %s", w->path, ZSTD_getErrorName(z));
		memcpy(w->sz, &sp, sizeof sp);
		f[n++] = (struct pg_form){FP_CODEC_ZSTD_SPLIT, (uint32_t)z + PG_SPLIT_HEADER, w->sz};
	}
	double cost[3];
	for (int i = 0; i < n; i++)
		cost[i] = i ? f[i].stored : f[i].stored - 0.5; /* ties: raw */
	int best = 0;
	for (int i = 1; i < n; i++)
		if (cost[i] < cost[best])
			best = i;
	return best;
}

/* Room for one more entry in a table of chunk entries. */
static int grow(fp_writer *w, struct fp_chunk_desc **t, uint32_t n, uint32_t *cap)
{
	if (n < *cap)
		return 0;
	uint32_t c = *cap ? *cap * 2 : 256;
	void *p = realloc(*t, sizeof **t * c);
	if (!p)
		return pg_err(ENOMEM, "%s: out of memory", w->path);
	*t = p;
	*cap = c;
	return 0;
}

static int flush_chunk(fp_writer *w)
{
	uint32_t cs = w->opt.chunk_size;
	const int alts = w->opt.codec == FP_CODEC_BOTH || w->opt.codec == FP_CODEC_AUTO;
	if (grow(w, &w->chunks, w->n_chunks, &w->cap_chunks) ||
	    (alts && grow(w, &w->alts, w->n_alts, &w->cap_alts)))
		return -ENOMEM;
	if (w->opt.codec == FP_CODEC_AUTO && w->n_chunks == w->cap_decode_s) {
		uint32_t c = w->cap_decode_s ? w->cap_decode_s * 2 : 256;
		double *p = realloc(w->decode_s, sizeof *p * c);
		if (!p)
			return pg_err(ENOMEM, "%s: out of memory", w->path);
		w->decode_s = p;
		w->cap_decode_s = c;
	}
	struct fp_chunk_desc *c = &w->chunks[w->n_chunks];
	*c = (struct fp_chunk_desc){
		.logical_offset = (uint64_t)w->n_chunks * cs,
		.logical_len = w->fill,
		.stored_len = w->fill,
		.codec = FP_CODEC_RAW,
		.checksum = pg_crc32c(0, w->buf, w->fill),
	};
	const void *payload = w->buf;
	if (w->opt.codec == FP_CODEC_RAW) {
		c->file_offset = FP_IMAGE_ALIGN + c->logical_offset;
	} else {
		struct pg_form f[3];
		int rc = pick_form(w, f);
		if (rc < 0)
			return rc;
		c->codec = f[rc].codec;
		c->stored_len = f[rc].stored;
		payload = f[rc].payload;
		if (w->opt.codec == FP_CODEC_AUTO)
			w->decode_s[w->n_chunks] = decode_time(w, &f[rc]);
		w->any_split |= c->codec == FP_CODEC_ZSTD_SPLIT;
		c->file_offset = w->cursor;
	}
	int rc = c->stored_len ? write_full(w, payload, c->stored_len, c->file_offset) : 0;
	if (rc)
		return rc;
	if (w->opt.codec != FP_CODEC_RAW)
		w->cursor = align_up(c->file_offset + c->stored_len, FP_IMAGE_ALIGN);
	else
		w->cursor = align_up(c->file_offset + cs, FP_IMAGE_ALIGN);
	/* Both forms: the raw bytes too, where compressing saved at least
	 * both_min_saving (else reading the raw form is never dearer); auto
	 * keeps the raw form of every compressed chunk until it chooses. */
	if (c->codec != FP_CODEC_RAW &&
	    ((w->opt.codec == FP_CODEC_BOTH &&
	      (uint64_t)c->stored_len + w->opt.both_min_saving <= w->fill) ||
	     w->opt.codec == FP_CODEC_AUTO)) {
		struct fp_chunk_desc *a = &w->alts[w->n_alts];
		*a = *c;
		a->codec = FP_CODEC_RAW;
		a->stored_len = w->fill;
		a->file_offset = w->cursor;
		if ((rc = write_full(w, w->buf, w->fill, a->file_offset)))
			return rc;
		w->cursor = align_up(a->file_offset + a->stored_len, FP_IMAGE_ALIGN);
		w->n_alts++;
	}
	w->n_chunks++;
	w->fill = 0;
	return 0;
}

/* A new entry at the end of the tensor table, its name, type and shape set;
 * NULL with pg_err's errno when out of memory. */
static struct pg_disk_tensor *new_tensor(fp_writer *w, const char *name, uint32_t type,
                                         uint32_t ndim, const uint64_t *shape)
{
	if (w->n_tensors == w->cap_tensors) {
		uint32_t cap = w->cap_tensors ? w->cap_tensors * 2 : 64;
		void *p = realloc(w->tensors, sizeof *w->tensors * cap);
		if (!p) {
			pg_err(ENOMEM, "%s: out of memory", w->path);
			return NULL;
		}
		w->tensors = p;
		w->cap_tensors = cap;
	}
	struct pg_disk_tensor *t = &w->tensors[w->n_tensors++];
	memset(t, 0, sizeof *t);
	strcpy(t->name, name);
	t->type = type;
	t->ndim = ndim;
	memcpy(t->shape, shape, ndim * sizeof *shape);
	return t;
}

static int check_name(fp_writer *w, const char *name)
{
	if (!name[0] || strlen(name) >= FP_NAME_MAX)
		return pg_err(EINVAL,
		              "%s: tensor name '%s' is empty or longer than %d bytes", w->path, name,
		              FP_NAME_MAX - 1);
	for (uint32_t i = 0; i < w->n_tensors; i++)
		if (!strcmp(w->tensors[i].name, name))
			return pg_err(EEXIST, "%s: tensor name '%s' used twice", w->path, name);
	return 0;
}

int fp_writer_add_tensor_at(fp_writer *w, const char *name, uint32_t type, uint32_t ndim,
                            const uint64_t *shape, uint64_t offset)
{
	if (!w->opt.verbatim)
		return pg_err(EINVAL, "%s: tensor '%s': only a verbatim writer places tensors at "
		              "offsets", w->path, name);
	int rc = check_name(w, name);
	if (rc)
		return rc;
	uint64_t bytes, end;
	if (pg_verbatim_tensor_bytes(type, ndim, shape, &bytes))
		return pg_err(EINVAL, "%s: tensor '%s': invalid type %u or shape", w->path, name, type);
	if (__builtin_add_overflow(offset, bytes, &end))
		return pg_err(EOVERFLOW, "%s: tensor '%s': offset %llu + %llu bytes overflows", w->path,
		              name, (unsigned long long)offset, (unsigned long long)bytes);
	struct pg_disk_tensor *t = new_tensor(w, name, type, ndim, shape);
	if (!t)
		return -ENOMEM;
	t->offset = offset;
	t->size = bytes;
	return 0;
}

int fp_writer_begin_tensor(fp_writer *w, const char *name, uint32_t type, uint32_t ndim,
                           const uint64_t *shape)
{
	if (w->opt.verbatim)
		return pg_err(EINVAL, "%s: tensor '%s': a verbatim writer places tensors with "
		              "fp_writer_add_tensor_at", w->path, name);
	if (w->in_tensor)
		return pg_err(EINVAL,
		              "%s: tensor '%s' begun before the previous one ended", w->path, name);
	int rc = check_name(w, name);
	if (rc)
		return rc;
	uint64_t bytes = pg_tensor_bytes(type, ndim, shape);
	if (!bytes)
		return pg_err(EINVAL,
		              "%s: tensor '%s': invalid type %u or shape", w->path, name, type);
	/* Zeros up to the next page (or chunk); a chunk filled by them goes out. */
	if (w->opt.align_tensors) {
		if (w->fill)
			rc = flush_chunk(w);
	} else {
		uint32_t pad = (uint32_t)(align_up(w->fill, FP_TENSOR_ALIGN) - w->fill);
		memset(w->buf + w->fill, 0, pad);
		w->fill += pad;
		if (w->fill == w->opt.chunk_size)
			rc = flush_chunk(w);
	}
	if (rc)
		return rc;
	struct pg_disk_tensor *t = new_tensor(w, name, type, ndim, shape);
	if (!t)
		return -ENOMEM;
	t->offset = (uint64_t)w->n_chunks * w->opt.chunk_size + w->fill;
	t->size = bytes;
	w->tensor_left = bytes;
	w->in_tensor = 1;
	return 0;
}

int fp_writer_write(fp_writer *w, const void *data, size_t n)
{
	if (!w->in_tensor && !w->opt.verbatim)
		return pg_err(EINVAL, "%s: data written outside a tensor", w->path);
	if (w->in_tensor && n > w->tensor_left)
		return pg_err(EINVAL,
		              "%s: tensor '%s': %zu bytes more than its shape holds", w->path,
		              w->tensors[w->n_tensors - 1].name, n - (size_t)w->tensor_left);
	const uint8_t *p = data;
	if (w->in_tensor)
		w->tensor_left -= n;
	w->written += n;
	while (n) {
		size_t take = w->opt.chunk_size - w->fill;
		if (take > n)
			take = n;
		memcpy(w->buf + w->fill, p, take);
		w->fill += (uint32_t)take;
		p += take;
		n -= take;
		int rc = w->fill == w->opt.chunk_size ? flush_chunk(w) : 0;
		if (rc)
			return rc;
	}
	pg_progress_update(&w->progress, w->written);
	return 0;
}

int fp_writer_end_tensor(fp_writer *w)
{
	if (!w->in_tensor)
		return pg_err(EINVAL, "%s: end of a tensor that was not begun", w->path);
	if (w->tensor_left)
		return pg_err(EINVAL, "%s: tensor '%s' is %llu bytes short of its shape", w->path,
		              w->tensors[w->n_tensors - 1].name, (unsigned long long)w->tensor_left);
	w->in_tensor = 0;
	return 0;
}

static int read_full(fp_writer *w, void *buf, size_t len, uint64_t off)
{
	size_t done = 0;
	while (done < len) {
		ssize_t n = pread(w->fd, (char *)buf + done, len - done, (off_t)(off + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return pg_err(n < 0 ? errno : EIO, "%s: read back failed: %s", w->tmp_path,
			              n < 0 ? strerror(errno) : "short file");
		done += (size_t)n;
	}
	return 0;
}

/* FP_CODEC_AUTO, at the end: every compressed chunk was stored with its raw
 * form beside it; keep, of each, the form that makes streaming the whole
 * image least at read_rate with decoding spread over the reader's cores
 * (pipeline.h: each chunk the slower of its read and its decode), and
 * move the payloads kept down over the ones dropped.
 * A payload only moves towards the start, each read whole before it is
 * written, so none is overwritten before it is moved. */
static int pick_auto_forms(fp_writer *w)
{
	const uint32_t n = w->n_chunks;
	const double read = w->opt.read_rate > 0 ? w->opt.read_rate : 1e9;
	struct pg_pipe_item *it = calloc(n ? n : 1, sizeof *it);
	uint32_t *alt = calloc(n ? n : 1, sizeof *alt);
	uint8_t *pick = calloc(n ? n : 1, 1);
	int rc = 0;
	if (!it || !alt || !pick) {
		rc = pg_err(ENOMEM, "%s: out of memory", w->path);
		goto out;
	}
	for (uint32_t i = 0, j = 0; i < n; i++) {
		const struct fp_chunk_desc *c = &w->chunks[i];
		it[i] = (struct pg_pipe_item){.read = {c->stored_len / read}, .forms = 1};
		if (c->codec != FP_CODEC_RAW)
			it[i].decode[0] = w->decode_s[i];
		alt[i] = UINT32_MAX;
		if (j < w->n_alts && w->alts[j].logical_offset == c->logical_offset) {
			alt[i] = j++;
			it[i].read[1] = w->alts[alt[i]].stored_len / read;
			it[i].forms = 2;
		}
	}
	pg_pipe_choose(it, n, pg_pipe_cpus(w->opt.decoders), pick);
	uint64_t cursor = FP_IMAGE_ALIGN;
	w->any_split = 0;
	for (uint32_t i = 0; i < n; i++) {
		struct fp_chunk_desc *c = &w->chunks[i];
		if (pick[i])
			*c = w->alts[alt[i]];
		if (c->stored_len && c->file_offset != cursor &&
		    ((rc = read_full(w, w->sbuf, c->stored_len, c->file_offset)) ||
		     (rc = write_full(w, w->sbuf, c->stored_len, cursor))))
			goto out;
		c->file_offset = cursor;
		cursor = align_up(cursor + c->stored_len, FP_IMAGE_ALIGN);
		w->any_split |= c->codec == FP_CODEC_ZSTD_SPLIT;
	}
	w->cursor = cursor;
	w->n_alts = 0;
out:
	free(it);
	free(alt);
	free(pick);
	return rc;
}

static int by_offset(const void *a, const void *b)
{
	const struct pg_disk_tensor *x = a, *y = b;
	return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* A verbatim image's tensors, sorted, lie apart inside the bytes written. */
static int check_placement(fp_writer *w)
{
	uint64_t written = (uint64_t)w->n_chunks * w->opt.chunk_size + w->fill;
	if (!written)
		return pg_err(EINVAL, "%s: no bytes to write", w->path);
	qsort(w->tensors, w->n_tensors, sizeof *w->tensors, by_offset);
	for (uint32_t i = 0; i < w->n_tensors; i++) {
		const struct pg_disk_tensor *t = &w->tensors[i];
		if (t->offset + t->size > written)
			return pg_err(EINVAL, "%s: tensor '%s' ends at %llu, past the %llu bytes written",
			              w->path, t->name, (unsigned long long)(t->offset + t->size),
			              (unsigned long long)written);
		if (i && t->offset < w->tensors[i - 1].offset + w->tensors[i - 1].size)
			return pg_err(EINVAL, "%s: tensors '%s' and '%s' overlap at offset %llu", w->path,
			              w->tensors[i - 1].name, t->name, (unsigned long long)t->offset);
	}
	return 0;
}

int fp_writer_finish(fp_writer *w)
{
	int rc;
	if (w->in_tensor) {
		rc = pg_err(EINVAL, "%s: tensor '%s' not ended", w->path,
		            w->tensors[w->n_tensors - 1].name);
		goto out;
	}
	if (!w->n_tensors && !w->opt.verbatim) {
		rc = pg_err(EINVAL, "%s: no tensors to write", w->path);
		goto out;
	}
	if (w->opt.verbatim && (rc = check_placement(w)))
		goto out;
	if (w->fill && (rc = flush_chunk(w))) /* the last, partial chunk */
		goto out;
	if (w->opt.codec == FP_CODEC_AUTO && (rc = pick_auto_forms(w)))
		goto out;
	const char *meta = w->meta ? w->meta : "";
	struct pg_disk_header h = {
		/* readers of version 2 read what needs no more */
		.version = w->n_alts ? PG_VERSION_ALTS : w->any_split ? 3 : 2,
		.n_alts = w->n_alts,
		.header_size = PG_HEADER_BYTES,
		.logical_size = (uint64_t)w->n_chunks * w->opt.chunk_size,
		.chunk_size = w->opt.chunk_size,
		.n_tensors = w->n_tensors,
		.n_chunks = w->n_chunks,
		.tensor_table_size = (uint64_t)w->n_tensors * sizeof(struct pg_disk_tensor),
		.chunk_table_size = (uint64_t)w->n_chunks * sizeof(struct fp_chunk_desc),
		.meta_size = strlen(meta),
	};
	memcpy(h.magic, FP_IMAGE_MAGIC, 8);
	if (w->opt.codec == FP_CODEC_RAW) {
		h.flags = PG_FLAG_RAW_LAYOUT;
		h.raw_base = FP_IMAGE_ALIGN;
	}
	if (w->opt.verbatim)
		h.flags |= PG_FLAG_VERBATIM;
	h.tensor_table_offset = align_up(w->cursor, FP_IMAGE_ALIGN);
	h.chunk_table_offset = h.tensor_table_offset + h.tensor_table_size;
	uint64_t alt_size = (uint64_t)w->n_alts * sizeof(struct fp_chunk_desc);
	h.meta_offset = h.chunk_table_offset + h.chunk_table_size + alt_size;
	h.file_size = h.meta_offset + h.meta_size;
	uint32_t crc = pg_crc32c(0, w->tensors, h.tensor_table_size);
	crc = pg_crc32c(crc, w->chunks, h.chunk_table_size);
	crc = pg_crc32c(crc, w->alts, alt_size);
	h.tables_crc = pg_crc32c(crc, meta, h.meta_size);
	h.header_crc = pg_crc32c(0, &h, offsetof(struct pg_disk_header, header_crc));
	if ((rc = write_full(w, w->tensors, h.tensor_table_size, h.tensor_table_offset)) ||
	    (rc = write_full(w, w->chunks, h.chunk_table_size, h.chunk_table_offset)) ||
	    (rc = write_full(w, w->alts, alt_size, h.chunk_table_offset + h.chunk_table_size)) ||
	    (rc = write_full(w, meta, h.meta_size, h.meta_offset)) ||
	    (rc = write_full(w, &h, sizeof h, 0)))
		goto out;
	if (ftruncate(w->fd, (off_t)h.file_size)) {
		rc = pg_err(pg_errno(), "%s: cannot finish the file: %s", w->tmp_path,
		            strerror(errno));
		goto out;
	}
	if ((rc = pg_tmpfile_commit(w->fd, w->tmp_path, w->path)))
		goto out;
	free(w->tmp_path);
	w->tmp_path = NULL; /* nothing left to remove */
	rc = 0;
out:
	pg_progress_end(&w->progress);
	fp_writer_abort(w);
	return rc;
}

void fp_writer_abort(fp_writer *w)
{
	if (!w)
		return;
	if (w->fd >= 0)
		close(w->fd);
	if (w->tmp_path)
		unlink(w->tmp_path);
	ZSTD_freeCCtx(w->cctx);
	ZSTD_freeDCtx(w->dctx);
	free(w->sbuf);
	free(w->sz);
	free(w->tmp_path);
	free(w->path);
	free(w->buf);
	free(w->zbuf);
	free(w->tensors);
	free(w->chunks);
	free(w->alts);
	free(w->decode_s);
	free(w->meta);
	free(w);
}
