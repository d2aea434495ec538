/* Bounds for fault_latency (see fl_base.h). */
#include "fl_base.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <zstd.h>

#include <flexpage/flexpage.h>

#define HUGE_2M (2u << 20)

struct odirect_job {
	const char *path;
	int fd;
	uint64_t off, len;
	size_t req;
	uint8_t *dst;
	int huge;
	atomic_uint_fast64_t next;   /* next block */
	uint64_t nblocks;
	_Atomic int failed;
	char why[256];
	pthread_mutex_t why_lock;
};

static void job_fail(struct odirect_job *j, const char *fmt, uint64_t pos, int err)
{
	pthread_mutex_lock(&j->why_lock);
	if (!j->failed)
		snprintf(j->why, sizeof j->why, fmt, j->path, (unsigned long long)pos, strerror(err));
	j->failed = 1;
	pthread_mutex_unlock(&j->why_lock);
}

static void *odirect_main(void *arg)
{
	struct odirect_job *j = arg;
	uint8_t *own = NULL, *map = NULL;
	size_t maplen = j->req + HUGE_2M;
	if (!j->dst) {
		map = mmap(NULL, maplen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (map == MAP_FAILED) {
			job_fail(j, "%s: cannot map a read buffer (%llu): %s", 0, errno);
			return NULL;
		}
		own = (uint8_t *)(((uintptr_t)map + HUGE_2M - 1) & ~(uintptr_t)(HUGE_2M - 1));
		madvise(own, j->req, j->huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
		memset(own, 0, j->req);
	}
	for (;;) {
		uint64_t b = atomic_fetch_add(&j->next, 1);
		if (b >= j->nblocks || j->failed)
			break;
		uint64_t pos = b * j->req;
		size_t n = j->len - pos < j->req ? (size_t)(j->len - pos) : j->req;
		n = (n + 4095) & ~(size_t)4095;
		uint8_t *buf = own ? own : j->dst + pos;
		size_t done = 0;
		while (done < n) {
			ssize_t k = pread(j->fd, buf + done, n - done, (off_t)(j->off + pos + done));
			if (k < 0 && errno == EINTR)
				continue;
			if (k < 0) {
				job_fail(j, "%s: O_DIRECT read at file offset %llu failed: %s",
				         j->off + pos + done, errno);
				break;
			}
			if (k == 0)
				break; /* end of file: the rounded-up tail */
			done += (size_t)k;
		}
	}
	if (map)
		munmap(map, maplen);
	return NULL;
}

double fl_odirect_read(const char *path, uint64_t off, uint64_t len, size_t req, int threads,
                       uint8_t *dst, int huge)
{
	struct odirect_job j = {.path = path, .off = off, .len = len, .req = req, .dst = dst,
	                        .huge = huge};
	j.nblocks = (len + req - 1) / req;
	pthread_mutex_init(&j.why_lock, NULL);
	j.fd = open(path, O_RDONLY | O_DIRECT | O_CLOEXEC);
	if (j.fd < 0) {
		fl_note("%s: cannot open with O_DIRECT: %s", path, strerror(errno));
		return -1;
	}
	pthread_t th[64];
	if (threads > 64)
		threads = 64;
	double t0 = fl_now();
	int started = 0;
	for (; started < threads; started++)
		if (pthread_create(&th[started], NULL, odirect_main, &j))
			break;
	for (int i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	double t = fl_now() - t0;
	close(j.fd);
	pthread_mutex_destroy(&j.why_lock);
	if (started < threads) {
		fl_note("cannot start a reader thread: %s", strerror(errno));
		return -1;
	}
	if (j.failed) {
		fl_note("%s", j.why);
		return -1;
	}
	return t;
}

double fl_mmap_scan(const char *path, uint64_t raw_base, uint64_t len, int advice,
                    const uint64_t *off, const uint64_t *lens, int n, enum fl_touch touch,
                    uint64_t *sum)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		fl_note("%s: cannot open: %s", path, strerror(errno));
		return -1;
	}
	double t0 = fl_now();
	uint8_t *p = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, (off_t)raw_base);
	if (p == MAP_FAILED) {
		fl_note("%s: cannot mmap %llu bytes at file offset %llu: %s", path,
		        (unsigned long long)len, (unsigned long long)raw_base, strerror(errno));
		close(fd);
		return -1;
	}
	if (advice != MADV_NORMAL && madvise(p, len, advice))
		fl_note("%s: madvise(%d) failed: %s (scanning without it)", path, advice,
		        strerror(errno));
	*sum = fl_scan(p, off, lens, n, touch);
	double t = fl_now() - t0;
	munmap(p, len);
	close(fd);
	return t;
}

int fl_zstd_rate(const char *path, struct fl_zstd_rate *out)
{
	memset(out, 0, sizeof *out);
	fp_image *img = fp_image_open(path);
	if (!img) {
		fl_note("%s", fp_last_error());
		return -1;
	}
	const struct fp_image_info *info = fp_image_info(img);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		fl_note("%s: cannot open: %s", path, strerror(errno));
		fp_image_close(img);
		return -1;
	}
	uint64_t total = 0;
	for (uint32_t i = 0; i < info->n_chunks; i++) {
		const struct fp_chunk_desc *c = fp_image_chunk(img, i);
		if (c->codec == FP_CODEC_ZSTD)
			total += c->stored_len;
	}
	uint8_t *src = malloc(total ? total : 1);
	uint8_t *dst = malloc(info->chunk_size);
	size_t *at = calloc(info->n_chunks, sizeof *at);
	double *us = calloc(info->n_chunks, sizeof *us);
	ZSTD_DCtx *dctx = ZSTD_createDCtx();
	int rc = -1;
	if (!src || !dst || !at || !us || !dctx) {
		fl_note("%s: out of memory for the zstd payloads", path);
		goto out;
	}
	memset(dst, 0, info->chunk_size);
	uint64_t pos = 0;
	for (uint32_t i = 0; i < info->n_chunks; i++) {
		const struct fp_chunk_desc *c = fp_image_chunk(img, i);
		if (c->codec != FP_CODEC_ZSTD) {
			out->raw_chunks++;
			continue;
		}
		ssize_t k = pread(fd, src + pos, c->stored_len, (off_t)c->file_offset);
		if (k != (ssize_t)c->stored_len) {
			fl_note("%s: chunk %u: read of %u bytes at file offset %llu: %s", path, i,
			        c->stored_len, (unsigned long long)c->file_offset,
			        k < 0 ? strerror(errno) : "short read");
			goto out;
		}
		at[i] = pos;
		pos += c->stored_len;
	}
	uint64_t decoded = 0;
	uint32_t nz = 0;
	double t0 = fl_now();
	for (uint32_t i = 0; i < info->n_chunks; i++) {
		const struct fp_chunk_desc *c = fp_image_chunk(img, i);
		if (c->codec != FP_CODEC_ZSTD)
			continue;
		double a = fl_now();
		size_t n = ZSTD_decompressDCtx(dctx, dst, info->chunk_size, src + at[i], c->stored_len);
		us[nz++] = (fl_now() - a) * 1e6;
		if (ZSTD_isError(n) || n != c->logical_len) {
			fl_note("%s: chunk %u: zstd frame does not decode to %u bytes: %s", path, i,
			        c->logical_len, ZSTD_isError(n) ? ZSTD_getErrorName(n) : "wrong size");
			goto out;
		}
		decoded += n;
	}
	double t = fl_now() - t0;
	out->zstd_chunks = nz;
	out->gbps = t > 0 ? (double)decoded / t / FL_GB : 0;
	out->ratio = info->stored_bytes ? (double)info->data_bytes / (double)info->stored_bytes : 0;
	fl_sort(us, nz);
	out->chunk_us_p50 = fl_quantile(us, nz, 0.5);
	rc = 0;
out:
	ZSTD_freeDCtx(dctx);
	free(us);
	free(at);
	free(dst);
	free(src);
	close(fd);
	fp_image_close(img);
	return rc;
}

void fl_fresh_touch(size_t bytes, int huge, struct fl_fresh *out)
{
	memset(out, 0, sizeof *out);
	bytes = (bytes + HUGE_2M - 1) & ~(size_t)(HUGE_2M - 1);
	size_t maplen = bytes + HUGE_2M;
	uint8_t *m = mmap(NULL, maplen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		return;
	uint8_t *p = (uint8_t *)(((uintptr_t)m + HUGE_2M - 1) & ~(uintptr_t)(HUGE_2M - 1));
	madvise(p, bytes, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
	size_t n = bytes / HUGE_2M;
	double *us = calloc(n, sizeof *us);
	if (us) {
		for (size_t i = 0; i < n; i++) {
			double a = fl_now();
			for (size_t o = 0; o < HUGE_2M; o += 4096)
				((volatile uint8_t *)p)[i * HUGE_2M + o] = 1;
			us[i] = (fl_now() - a) * 1e6;
		}
		fl_sort(us, n);
		out->p50_us = fl_quantile(us, n, 0.5);
		out->p90_us = fl_quantile(us, n, 0.9);
		free(us);
	}
	munmap(m, maplen);
}

static uint8_t *reserve_map;
static size_t reserve_len;

void fl_reserve_hold(size_t bytes)
{
	if (reserve_map)
		return;
	reserve_len = (bytes + HUGE_2M - 1) & ~(size_t)(HUGE_2M - 1);
	reserve_map = mmap(NULL, reserve_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
	                   -1, 0);
	if (reserve_map == MAP_FAILED) {
		reserve_map = NULL;
		return;
	}
	madvise(reserve_map, reserve_len, MADV_HUGEPAGE);
	for (size_t o = 0; o < reserve_len; o += 4096)
		((volatile uint8_t *)reserve_map)[o] = 1;
}

void fl_reserve_release(void)
{
	if (reserve_map)
		munmap(reserve_map, reserve_len);
	reserve_map = NULL;
}
