/* Rates: what reading a chunk's payload and decoding it cost here.  The
 * reader chooses, per chunk, which stored form to read (an image holding
 * a raw and a compressed form of a chunk), and the planner what to keep
 * resident, by read time at the storage's rate plus decode time at one
 * core's rate.  Both rates depend on the machine, so fp_open measures them
 * when something depends on them and they are not given: a few whole
 * payload reads as the loaders do them (O_DIRECT), then decodes of the
 * compressed ones, bounded to about 0.1 s in all. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zstd.h>

#include "codec_split.h"
#include "error.h"
#include "internal.h"
#include "pipeline.h"

#define PROBE_READ_NS 50000000ull    /* reading, wall time */
#define PROBE_DECODE_NS 30000000ull  /* decoding, the thread's CPU time */
#define PROBE_MAX_READS 16
#define PROBE_SAMPLES 16             /* chunks spread over the image */

static uint64_t cpu_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

struct probe {
	const fp_image *img;
	int fd, direct;
	uint8_t *buf, *dst;
	size_t cap;
	ZSTD_DCtx *dctx;
	uint64_t read_ns, decode_ns, decoded;
	double rate[PROBE_MAX_READS + 2]; /* each read's bytes/s */
	struct fp_rates *out;
};

static int by_value(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* Read form d of chunk i as a loader does: one pread of the payload,
 * rounded up to pages when O_DIRECT. */
static int probe_read(struct probe *p, uint32_t i, const struct fp_chunk_desc *d)
{
	size_t want = d->stored_len, len = p->direct ? (want + 4095) / 4096 * 4096 : want;
	if (len > p->cap)
		len = p->cap;
	size_t done = 0;
	uint64_t t0 = pg_now_ns();
	while (done < want) {
		ssize_t n = pread(p->fd, p->buf + done, len - done, (off_t)(d->file_offset + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return pg_err(n < 0 ? pg_errno() : EIO, "%s: chunk %u: probe read at file "
			              "offset %llu failed", p->img->path, i,
			              (unsigned long long)d->file_offset);
		done += (size_t)n;
	}
	uint64_t ns = pg_now_ns() - t0;
	p->read_ns += ns;
	p->rate[p->out->reads] = (double)want / ((double)(ns ? ns : 1) / 1e9);
	p->out->reads++;
	p->out->read_bytes += want;
	return 0;
}

static int probe_decode(struct probe *p, uint32_t i, const struct fp_chunk_desc *d)
{
	uint64_t t0 = cpu_ns();
	if (pg_decode_form(p->img, i, d, p->buf, p->dst, p->dctx))
		return -EBADMSG;
	p->decode_ns += cpu_ns() - t0;
	p->decoded += d->logical_len;
	p->out->decodes++;
	return 0;
}

static int probe_open(struct probe *p, unsigned flags)
{
	p->fd = -1;
	if (!(flags & (FP_OPEN_BUFFERED << 8))) {
		p->fd = open(p->img->path, O_RDONLY | O_DIRECT | O_CLOEXEC);
		p->direct = p->fd >= 0;
		if (p->fd < 0 && errno != EINVAL) /* EINVAL: no O_DIRECT here (tmpfs) */
			return pg_err(pg_errno(), "%s: cannot open: %s", p->img->path, strerror(errno));
	}
	if (p->fd < 0 && (p->fd = open(p->img->path, O_RDONLY | O_CLOEXEC)) < 0)
		return pg_err(pg_errno(), "%s: cannot open: %s", p->img->path, strerror(errno));
	uint32_t cs = p->img->info.chunk_size;
	p->cap = (ZSTD_compressBound(cs) + PG_SPLIT_HEADER + 4095) / 4096 * 4096;
	p->buf = aligned_alloc(4096, p->cap);
	p->dst = aligned_alloc(4096, cs);
	p->dctx = ZSTD_createDCtx();
	if (!p->buf || !p->dst || !p->dctx)
		return pg_err(ENOMEM, "%s: out of memory", p->img->path);
	return 0;
}

int fp_image_probe_rates(const fp_image *img, unsigned flags, struct fp_rates *out)
{
	memset(out, 0, sizeof *out);
	uint64_t start = pg_now_ns();
	struct probe p = {.img = img, .out = out};
	int rc = probe_open(&p, flags);
	int want_read = flags & FP_RATE_READ, want_decode = flags & FP_RATE_DECODE;
	uint32_t n = img->info.n_chunks;
	/* Chunks spread over the image, each of its forms, the larger first
	 * (a raw form's read is the purest measure of the storage). */
	for (uint32_t k = 0; !rc && k < PROBE_SAMPLES && k < n; k++) {
		uint32_t i = (uint32_t)(((2ull * k + 1) * n) / (2ull * (n < PROBE_SAMPLES ? n : PROBE_SAMPLES)));
		const struct fp_chunk_desc *f0 = fp_image_chunk_form(img, i, 0);
		const struct fp_chunk_desc *f1 = fp_image_chunk_form(img, i, 1);
		if (f1 && f1->stored_len > f0->stored_len) {
			const struct fp_chunk_desc *t = f0;
			f0 = f1;
			f1 = t;
		}
		for (const struct fp_chunk_desc *d = f0; d && !rc; d = d == f0 ? f1 : NULL) {
			int reading = want_read && out->reads < PROBE_MAX_READS &&
			              (!out->reads || p.read_ns < PROBE_READ_NS);
			int decoding = want_decode && d->codec != FP_CODEC_RAW &&
			               p.decode_ns < PROBE_DECODE_NS;
			if (!d->stored_len || (!reading && !decoding) || out->reads >= PROBE_MAX_READS)
				continue;
			rc = probe_read(&p, i, d);
			if (!rc && decoding)
				rc = probe_decode(&p, i, d);
		}
	}
	/* Nothing compressed among the samples: the first compressed forms. */
	for (uint32_t i = 0; !rc && want_decode && !out->decodes && i < n; i++)
		for (uint32_t f = 0; f < 2 && !rc && out->reads < PROBE_MAX_READS + 2; f++) {
			const struct fp_chunk_desc *d = fp_image_chunk_form(img, i, f);
			if (d && d->stored_len && d->codec != FP_CODEC_RAW &&
			    !(rc = probe_read(&p, i, d)))
				rc = probe_decode(&p, i, d);
		}
	if (!rc) {
		/* The median read: one read held up (another process's burst, a
		 * disk's hiccup) would otherwise set the rate of the whole run. */
		if (want_read && out->reads) {
			qsort(p.rate, out->reads, sizeof *p.rate, by_value);
			uint32_t m = out->reads / 2;
			out->read_bytes_per_s = out->reads % 2 ? p.rate[m] : (p.rate[m - 1] + p.rate[m]) / 2;
			out->measured |= FP_RATE_READ;
		}
		if (want_decode && out->decodes && p.decode_ns) {
			out->decode_bytes_per_s = (double)p.decoded / ((double)p.decode_ns / 1e9);
			out->measured |= FP_RATE_DECODE;
		}
	}
	if (p.fd >= 0)
		close(p.fd);
	free(p.buf);
	free(p.dst);
	ZSTD_freeDCtx(p.dctx);
	out->probe_ns = pg_now_ns() - start;
	return rc;
}

/* Whether a payload of img is stored compressed (in any form). */
static int any_compressed(const fp_image *img)
{
	for (uint32_t i = 0; i < img->info.n_chunks; i++)
		for (uint32_t f = 0; f < 2; f++) {
			const struct fp_chunk_desc *d = fp_image_chunk_form(img, i, f);
			if (d && d->codec != FP_CODEC_RAW)
				return 1;
		}
	return 0;
}

int pg_rates_init(fp_region *r, uint64_t budget)
{
	struct pg_rates *k = &r->rates;
	const struct fp_options *o = &r->opt;
	k->read = o->read_rate > 0 ? o->read_rate : PG_DEFAULT_READ_RATE;
	k->decode = o->decode_rate > 0 ? o->decode_rate : PG_DEFAULT_DECODE_RATE;
	/* The rates matter to the choice of forms, and to fp_open's own plan
	 * when some chunk is compressed (with every chunk raw, the benefit of
	 * each is its bytes over one rate: the plan is the same at any). */
	int compressed = any_compressed(r->img);
	int plan = !o->preserve && !(o->flags & FP_OPEN_NO_PRESERVE) && budget < r->data_bytes;
	if (r->img->info.n_alt_forms || (plan && compressed)) {
		unsigned want = (o->read_rate > 0 ? 0 : FP_RATE_READ) |
		                (o->decode_rate > 0 ? 0 : FP_RATE_DECODE);
		struct fp_rates m;
		if (want && !fp_image_probe_rates(r->img, want | (o->flags & FP_OPEN_BUFFERED) << 8, &m)) {
			if (m.measured & FP_RATE_READ)
				k->read = m.read_bytes_per_s;
			if (m.measured & FP_RATE_DECODE)
				k->decode = m.decode_bytes_per_s;
			k->measured = m.measured;
			k->probe_ns = m.probe_ns;
		}
		/* A probe that failed leaves the defaults: the loads that meet
		 * the same trouble report it per chunk. */
	}
	k->alt_chosen = pg_image_choose_forms(r->img, k->read, k->decode, pg_pipe_cpus(o->decoders));
	for (uint32_t i = 0; i < r->n_chunks; i++)
		k->compressed += r->img->chunks[i].codec != FP_CODEC_RAW;
	return 0;
}

void pg_rates_stats(const fp_region *r, struct fp_stats *o)
{
	o->read_rate = r->rates.read;
	o->decode_rate = r->rates.decode;
	o->rates_measured = r->rates.measured;
	o->compressed_chunks = r->rates.compressed;
	o->alt_forms_chosen = r->rates.alt_chosen;
	o->probe_ns = r->rates.probe_ns;
}
