/* sweep_read: the storage bound for bench/sweep.
 *
 *   sweep_read --info IMAGE
 *       prints "data_bytes logical_size chunk_size n_chunks raw_base
 *       compressed_chunks" from the image's header and chunk table
 *       (docs/format.md), one line, in bytes.  A GGUF file, which the
 *       pager serves directly in 2 MiB chunks of the file itself, is
 *       "file_size n_chunks*2MiB 2MiB n_chunks 0 0".
 *   sweep_read IMAGE [--threads N] [--block SIZE_MIB]
 *       reads every chunk payload of IMAGE (exactly the stored bytes the
 *       pager reads, rounded up to 4 KiB; never the holes between them)
 *       with O_DIRECT, N threads (default 2) taking the payload range in
 *       turn in blocks of SIZE_MIB (default 2), each thread into its own
 *       2 MiB-aligned huge-page buffer, touched before the clock starts
 *       (as the pager's loaders read into recycled huge pages).  Prints
 *       "bytes seconds GB/s".
 *
 * Standalone on purpose (no project library): it reads the format itself,
 * so it measures the disk and nothing of flexpage.  The caller drops the
 * page cache first; O_DIRECT bypasses it anyway. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define HUGE_2M (2u << 20)

struct extent {
	uint64_t off, len;
};

static struct extent *ext;  /* payload extents, merged where contiguous */
static size_t n_ext;
static int fd;
static uint64_t block;
static int n_threads = 2;
static _Atomic uint64_t next_block, total_read;
static uint64_t n_blocks_total;
static int eof_ends_block;  /* a GGUF's last extent is rounded up past its end */
static struct block {
	uint64_t off, len;  /* within the file */
} *blocks;

static uint64_t rd64(const unsigned char *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static uint32_t rd32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int die(const char *what, const char *path)
{
	fprintf(stderr, "sweep_read: %s: %s\n", path, what);
	return 1;
}

static void *reader(void *arg)
{
	unsigned char *buf = arg;
	for (;;) {
		uint64_t b = atomic_fetch_add(&next_block, 1);
		if (b >= n_blocks_total)
			return NULL;
		uint64_t off = blocks[b].off, left = blocks[b].len;
		while (left) {
			ssize_t r = pread(fd, buf, left, (off_t)off);
			if (r < 0 && errno == EINTR)
				continue;
			if (r == 0 && eof_ends_block)
				break;
			if (r <= 0) {
				fprintf(stderr, "sweep_read: read at %llu: %s\n", (unsigned long long)off,
				        r ? strerror(errno) : "end of file");
				exit(1);
			}
			off += (uint64_t)r;
			left -= (uint64_t)r;
			atomic_fetch_add(&total_read, (uint64_t)r);
		}
	}
}

static int read_all(const char *path);

int main(int argc, char **argv)
{
	const char *path = NULL;
	int info = 0;
	unsigned block_mib = 2;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--info"))
			info = 1;
		else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
			n_threads = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--block") && i + 1 < argc)
			block_mib = (unsigned)atoi(argv[++i]);
		else if (argv[i][0] != '-' && !path)
			path = argv[i];
		else {
			fprintf(stderr, "usage: sweep_read [--info] IMAGE [--threads N] [--block MIB]\n");
			return 2;
		}
	}
	if (!path || n_threads < 1 || n_threads > 64 || block_mib < 1 || block_mib > 64) {
		fprintf(stderr, "usage: sweep_read [--info] IMAGE [--threads N] [--block MIB]\n");
		return 2;
	}
	block = (uint64_t)block_mib << 20;

	/* the tables, read through the page cache */
	int tfd = open(path, O_RDONLY | O_CLOEXEC);
	if (tfd < 0)
		return die(strerror(errno), path);
	unsigned char h[128];
	if (pread(tfd, h, sizeof h, 0) != (ssize_t)sizeof h)
		return die("not a flexpage image or a GGUF file (too short)", path);
	if (!memcmp(h, "GGUF", 4)) {
		/* paged directly: the payload is the whole file */
		const off_t size = lseek(tfd, 0, SEEK_END);
		if (size <= 0)
			return die("empty GGUF file", path);
		const uint64_t fsize = (uint64_t)size, n = (fsize + HUGE_2M - 1) / HUGE_2M;
		if (info) {
			printf("%llu %llu %u %llu 0 0\n", (unsigned long long)fsize,
			       (unsigned long long)(n * HUGE_2M), HUGE_2M, (unsigned long long)n);
			return 0;
		}
		ext = malloc(sizeof *ext);
		if (!ext)
			return die("out of memory", path);
		ext[n_ext++] = (struct extent){0, (fsize + 4095) & ~4095ull};
		eof_ends_block = 1;
		close(tfd);
		return read_all(path);
	}
	if (memcmp(h, "FLEXPAGE", 8))
		return die("not a flexpage image or a GGUF file", path);
	const uint64_t logical = rd64(h + 24), ct_off = rd64(h + 64), raw_base = rd64(h + 96);
	const uint32_t chunk_size = rd32(h + 32), n_chunks = rd32(h + 40);
	if (!n_chunks || n_chunks > (1u << 24))
		return die("implausible chunk count", path);
	unsigned char *ct = malloc((size_t)n_chunks * 32);
	ext = malloc((size_t)n_chunks * sizeof *ext);
	if (!ct || !ext)
		return die("out of memory", path);
	if (pread(tfd, ct, (size_t)n_chunks * 32, (off_t)ct_off) != (ssize_t)n_chunks * 32)
		return die("short chunk table", path);
	close(tfd);
	uint64_t data = 0;
	uint32_t compressed = 0;
	for (uint32_t i = 0; i < n_chunks; i++) {
		const unsigned char *c = ct + (size_t)i * 32;
		const uint64_t len = rd32(c + 12), off = rd64(c + 16);
		data += rd32(c + 8);
		compressed += rd32(c + 24) != 0;
		if (!len)
			continue;
		const uint64_t alen = (len + 4095) & ~4095ull;
		if (n_ext && ext[n_ext - 1].off + ext[n_ext - 1].len == off)
			ext[n_ext - 1].len += alen;
		else
			ext[n_ext++] = (struct extent){off, alen};
	}
	if (info) {
		printf("%llu %llu %u %u %llu %u\n", (unsigned long long)data,
		       (unsigned long long)logical, chunk_size, n_chunks,
		       (unsigned long long)raw_base, compressed);
		return 0;
	}
	return read_all(path);
}

/* Read every extent with O_DIRECT, in blocks over the threads; print the
 * rate. */
static int read_all(const char *path)
{
	/* cut the extents into blocks */
	size_t cap = 0;
	for (size_t e = 0; e < n_ext; e++)
		cap += (size_t)((ext[e].len + block - 1) / block);
	blocks = malloc(cap * sizeof *blocks);
	if (!blocks)
		return die("out of memory", path);
	for (size_t e = 0; e < n_ext; e++)
		for (uint64_t o = 0; o < ext[e].len; o += block) {
			uint64_t l = ext[e].len - o < block ? ext[e].len - o : block;
			blocks[n_blocks_total].off = ext[e].off + o;
			blocks[n_blocks_total++].len = l;
		}

	fd = open(path, O_RDONLY | O_DIRECT | O_CLOEXEC);
	if (fd < 0)
		return die(strerror(errno), path);
	pthread_t th[64];
	unsigned char *bufs[64];
	const size_t blen = (block + HUGE_2M - 1) / HUGE_2M * HUGE_2M;
	for (int t = 0; t < n_threads; t++) {
		void *m = mmap(NULL, blen + HUGE_2M, PROT_READ | PROT_WRITE,
		               MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (m == MAP_FAILED)
			return die("out of memory for buffers", path);
		bufs[t] = (unsigned char *)(((uintptr_t)m + HUGE_2M - 1) & ~(uintptr_t)(HUGE_2M - 1));
		madvise(bufs[t], blen, MADV_HUGEPAGE);
		memset(bufs[t], 1, blen);
	}
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int t = 0; t < n_threads; t++)
		if (pthread_create(&th[t], NULL, reader, bufs[t]))
			return die("cannot start a thread", path);
	for (int t = 0; t < n_threads; t++)
		pthread_join(th[t], NULL);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	const double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	printf("%llu %.6f %.3f\n", (unsigned long long)total_read, s, (double)total_read / s / 1e9);
	return 0;
}
