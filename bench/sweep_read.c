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
 *   sweep_read IMAGE --order FILE [--threads N]
 *       reads the chunks FILE lists (chunk indices, one a line, as many
 *       times and in the order listed: a pager's reads replayed from its
 *       trace), each its stored payload in one read, by N threads taking
 *       the list in turn.  Prints "bytes seconds GB/s".  Images only.
 *   --footprint MIB (with the two above): the threads read into MIB of
 *       huge pages between them, each thread taking its buffers in turn,
 *       rather than one buffer each (a pager reads into whichever of its
 *       pages is free: the memory a read lands in is not always hot).
 *   sweep_read IMAGE --uring QD [--block SIZE_MIB]
 *       the same bytes read by one thread through io_uring: QD reads in
 *       flight, each into its own huge-page buffer registered with the
 *       ring (IORING_OP_READ_FIXED), as an io_uring loader would read
 *       into the pool's pages.  Prints "bytes seconds GB/s".
 *   sweep_read --compare IMAGE [--rounds N] [--out DIR]
 *       both side by side in one run: pread threads 1, 2, 4, 8 (the
 *       loaders' way) and io_uring QD 1, 2, 4, 8, each with 2 MiB and
 *       4 MiB reads, N rounds (default 3) in alternating order, the page
 *       cache dropped before each read when root; prints the medians,
 *       the CPU each costs per GB, and io_uring over pread at each depth,
 *       as Markdown, and saves DIR/sweep_read.md and .csv when asked.
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
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#ifdef SWEEP_READ_URING
#include <liburing.h>
#endif

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
static struct extent *chunk_ext; /* each chunk's payload, 4 KiB rounded (--order) */
static uint32_t n_chunk_ext;
static const char *order_path;   /* --order: the chunks to read, in order */
static unsigned footprint_mib;   /* --footprint: MiB the pread threads read into; 0: one buffer each */
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

static unsigned bufs_per_thread = 1; /* --footprint: buffers each thread cycles through */
static size_t buf_len;                /* bytes of one buffer */

static void *reader(void *arg)
{
	unsigned char *const first = arg;
	unsigned turn = 0;
	for (;;) {
		uint64_t b = atomic_fetch_add(&next_block, 1);
		if (b >= n_blocks_total)
			return NULL;
		unsigned char *buf = first + (size_t)turn * buf_len;
		turn = turn + 1 == bufs_per_thread ? 0 : turn + 1;
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
static int uring_qd;       /* --uring QD; 0: pread threads */
static int compare_rounds; /* --compare: rounds; 0: one read */
static const char *out_dir;

static int usage(void)
{
	fprintf(stderr, "usage: sweep_read [--info] IMAGE [--threads N] [--block MIB] [--footprint MIB]\n"
	                "       sweep_read IMAGE --order FILE [--threads N] [--footprint MIB]\n"
	                "       sweep_read IMAGE --uring QD [--block MIB]\n"
	                "       sweep_read --compare IMAGE [--rounds N] [--out DIR]\n");
	return 2;
}

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
		else if (!strcmp(argv[i], "--uring") && i + 1 < argc)
			uring_qd = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--compare"))
			compare_rounds = compare_rounds ? compare_rounds : 3;
		else if (!strcmp(argv[i], "--rounds") && i + 1 < argc)
			compare_rounds = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--out") && i + 1 < argc)
			out_dir = argv[++i];
		else if (!strcmp(argv[i], "--order") && i + 1 < argc)
			order_path = argv[++i];
		else if (!strcmp(argv[i], "--footprint") && i + 1 < argc)
			footprint_mib = (unsigned)atoi(argv[++i]);
		else if (argv[i][0] != '-' && !path)
			path = argv[i];
		else
			return usage();
	}
	if (!path || n_threads < 1 || n_threads > 64 || block_mib < 1 || block_mib > 64 ||
	    uring_qd < 0 || uring_qd > 64 || compare_rounds < 0 || compare_rounds > 99 ||
	    footprint_mib > (64u << 10) ||
	    ((order_path || footprint_mib) && (uring_qd || compare_rounds || info)))
		return usage();
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
		if (order_path)
			return die("--order needs a flexpage image (a GGUF has no chunk table)", path);
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
	chunk_ext = calloc(n_chunks, sizeof *chunk_ext);
	n_chunk_ext = n_chunks;
	if (!ct || !ext || !chunk_ext)
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
		chunk_ext[i] = (struct extent){off, alen};
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

/* The blocks --order lists: one chunk's payload each.  Returns -1 with
 * the reason printed. */
static int order_blocks(void)
{
	FILE *f = fopen(order_path, "r");
	if (!f) {
		fprintf(stderr, "sweep_read: %s: %s\n", order_path, strerror(errno));
		return -1;
	}
	size_t cap = 0;
	n_blocks_total = 0;
	unsigned long v;
	int line = 0;
	while (fscanf(f, "%lu", &v) == 1) {
		line++;
		if (v >= n_chunk_ext || !chunk_ext[v].len) {
			fprintf(stderr, "sweep_read: %s: entry %d: chunk %lu is not a stored chunk of the image\n",
			        order_path, line, v);
			fclose(f);
			return -1;
		}
		if (n_blocks_total == cap) {
			struct block *b = realloc(blocks, (cap ? 2 * cap : 1024) * sizeof *blocks);
			if (!b) {
				fprintf(stderr, "sweep_read: %s: out of memory at entry %d\n", order_path, line);
				fclose(f);
				return -1;
			}
			blocks = b;
			cap = cap ? 2 * cap : 1024;
		}
		blocks[n_blocks_total].off = chunk_ext[v].off;
		blocks[n_blocks_total++].len = chunk_ext[v].len;
	}
	const int bad = !feof(f);
	fclose(f);
	if (bad || !n_blocks_total) {
		if (bad)
			fprintf(stderr, "sweep_read: %s: entry %d: not a chunk index\n", order_path, line + 1);
		else
			fprintf(stderr, "sweep_read: %s: no chunk listed\n", order_path);
		return -1;
	}
	/* every read fits its thread's buffer */
	for (uint64_t b = 0; b < n_blocks_total; b++)
		if (blocks[b].len > block)
			block = blocks[b].len;
	return 0;
}

/* Cut the extents into blocks of `block` bytes. */
static int cut_blocks(void)
{
	size_t cap = 0;
	for (size_t e = 0; e < n_ext; e++)
		cap += (size_t)((ext[e].len + block - 1) / block);
	free(blocks);
	blocks = malloc(cap * sizeof *blocks);
	if (!blocks)
		return -1;
	n_blocks_total = 0;
	for (size_t e = 0; e < n_ext; e++)
		for (uint64_t o = 0; o < ext[e].len; o += block) {
			uint64_t l = ext[e].len - o < block ? ext[e].len - o : block;
			blocks[n_blocks_total].off = ext[e].off + o;
			blocks[n_blocks_total++].len = l;
		}
	return 0;
}

/* n buffers of blen bytes, 2 MiB aligned, huge pages, touched; maps[]
 * keeps the mappings for free_buffers(). */
static void *maps[64];

static int huge_buffers(unsigned char **bufs, int n, size_t blen)
{
	for (int t = 0; t < n; t++) {
		void *m = mmap(NULL, blen + HUGE_2M, PROT_READ | PROT_WRITE,
		               MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (m == MAP_FAILED)
			return -1;
		maps[t] = m;
		bufs[t] = (unsigned char *)(((uintptr_t)m + HUGE_2M - 1) & ~(uintptr_t)(HUGE_2M - 1));
		madvise(bufs[t], blen, MADV_HUGEPAGE);
		memset(bufs[t], 1, blen);
	}
	return 0;
}

static void free_buffers(int n, size_t blen)
{
	for (int t = 0; t < n; t++)
		munmap(maps[t], blen + HUGE_2M);
}

static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* The process's CPU time (user + system), seconds. */
static double cpu_s(void)
{
	struct rusage u;
	getrusage(RUSAGE_SELF, &u);
	return (double)(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
	       (double)(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

/* Every block by n pread threads; the seconds it took. */
static double run_pread(unsigned char **bufs, int n)
{
	pthread_t th[64];
	atomic_store(&next_block, 0);
	atomic_store(&total_read, 0);
	double t0 = now_s();
	for (int t = 0; t < n; t++)
		if (pthread_create(&th[t], NULL, reader, bufs[t])) {
			fprintf(stderr, "sweep_read: cannot start a thread\n");
			exit(1);
		}
	for (int t = 0; t < n; t++)
		pthread_join(th[t], NULL);
	return now_s() - t0;
}

#ifdef SWEEP_READ_URING
/* Every block by one thread through io_uring, qd reads in flight, each
 * into a registered buffer; the seconds it took.  A short read goes on
 * from where it stopped, in the same buffer. */
static double run_uring(unsigned char **bufs, int qd, size_t blen)
{
	struct io_uring ring;
	int e = io_uring_queue_init((unsigned)qd, &ring, 0);
	if (e) {
		fprintf(stderr, "sweep_read: io_uring_queue_init: %s\n", strerror(-e));
		exit(1);
	}
	struct iovec iov[64];
	for (int i = 0; i < qd; i++)
		iov[i] = (struct iovec){bufs[i], blen};
	if ((e = io_uring_register_buffers(&ring, iov, (unsigned)qd))) {
		fprintf(stderr, "sweep_read: io_uring_register_buffers: %s\n", strerror(-e));
		exit(1);
	}
	struct { uint64_t off, left; unsigned char *at; } slot[64];
	uint64_t next = 0, read = 0;
	int busy = 0;
	double t0 = now_s();
	for (int i = 0; i < qd; i++)
		slot[i].left = 0; /* free */
	for (;;) {
		for (int i = 0; i < qd; i++) {
			if (slot[i].left || next >= n_blocks_total)
				continue; /* in flight, or nothing left to read */
			slot[i].off = blocks[next].off;
			slot[i].left = blocks[next++].len;
			slot[i].at = bufs[i];
			struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
			io_uring_prep_read_fixed(sqe, fd, slot[i].at, (unsigned)slot[i].left,
			                         slot[i].off, i);
			io_uring_sqe_set_data64(sqe, (uint64_t)i);
			busy++;
		}
		if (!busy)
			break;
		struct io_uring_cqe *cqe;
		if ((e = io_uring_submit_and_wait(&ring, 1)) < 0 && e != -EINTR) {
			fprintf(stderr, "sweep_read: io_uring_submit_and_wait: %s\n", strerror(-e));
			exit(1);
		}
		unsigned head, seen = 0;
		io_uring_for_each_cqe(&ring, head, cqe) {
			seen++;
			int i = (int)io_uring_cqe_get_data64(cqe);
			int res = cqe->res;
			busy--;
			if (res == -EINTR || res == -EAGAIN)
				res = 0;
			else if (res < 0 || (res == 0 && !eof_ends_block)) {
				fprintf(stderr, "sweep_read: read at %llu: %s\n",
				        (unsigned long long)slot[i].off, res ? strerror(-res) : "end of file");
				exit(1);
			}
			if (res == 0 && cqe->res == 0) {
				slot[i].left = 0; /* a GGUF's rounded-up end */
				continue;
			}
			read += (uint64_t)res;
			slot[i].off += (uint64_t)res;
			slot[i].at += res;
			slot[i].left -= (uint64_t)res;
			if (slot[i].left) {
				struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
				io_uring_prep_read_fixed(sqe, fd, slot[i].at, (unsigned)slot[i].left,
				                         slot[i].off, i);
				io_uring_sqe_set_data64(sqe, (uint64_t)i);
				busy++;
			}
		}
		io_uring_cq_advance(&ring, seen);
	}
	double s = now_s() - t0;
	atomic_store(&total_read, read);
	io_uring_queue_exit(&ring);
	return s;
}
#endif

/* One read of everything: pread threads, or io_uring at qd (qd > 0). */
static double run_one(int threads, int qd, double *cpu)
{
	unsigned char *bufs[64];
	buf_len = (block + HUGE_2M - 1) / HUGE_2M * HUGE_2M;
	bufs_per_thread = 1;
	if (!qd && footprint_mib) {
		const uint64_t each = ((uint64_t)footprint_mib << 20) / (uint64_t)threads / buf_len;
		bufs_per_thread = each > 1 ? (unsigned)each : 1;
	}
	const size_t blen = buf_len * bufs_per_thread;
	int n = qd ? qd : threads;
	if (huge_buffers(bufs, n, blen)) {
		fprintf(stderr, "sweep_read: out of memory for buffers\n");
		exit(1);
	}
	double c0 = cpu_s(), s;
#ifdef SWEEP_READ_URING
	s = qd ? run_uring(bufs, qd, blen) : run_pread(bufs, threads);
#else
	s = run_pread(bufs, threads);
#endif
	*cpu = cpu_s() - c0;
	free_buffers(n, blen);
	return s;
}

#ifdef SWEEP_READ_URING
static void drop_cache(void)
{
	FILE *f = fopen("/proc/sys/vm/drop_caches", "w");
	if (f) {
		sync();
		fputs("3\n", f);
		fclose(f);
	}
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof *v, cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static double loadavg1(void)
{
	double l = -1;
	FILE *f = fopen("/proc/loadavg", "r");
	if (f) {
		if (fscanf(f, "%lf", &l) != 1)
			l = -1;
		fclose(f);
	}
	return l;
}

/* --compare: pread threads against io_uring depths, 2 and 4 MiB reads,
 * rounds in alternating order; medians. */
#define N_DEPTHS 4
static int compare(const char *path)
{
	static const int depth[N_DEPTHS] = {1, 2, 4, 8};
	static const unsigned mib[2] = {2, 4};
	enum { PREAD, URING };
	static double gbs[2][2][N_DEPTHS][99], cpu_gb[2][2][N_DEPTHS][99];
	uint64_t bytes = 0;
	double load0 = loadavg1(), t_start = now_s();
	for (int r = 0; r < compare_rounds; r++)
		for (int k = 0; k < 2 * 2 * N_DEPTHS; k++) {
			/* Alternate: odd rounds run the list backwards. */
			int j = r % 2 ? 2 * 2 * N_DEPTHS - 1 - k : k;
			int b = j / (2 * N_DEPTHS), way = j / N_DEPTHS % 2, d = j % N_DEPTHS;
			block = (uint64_t)mib[b] << 20;
			if (cut_blocks())
				return die("out of memory", path);
			drop_cache();
			double cpu, s = run_one(way == PREAD ? depth[d] : 1, way == URING ? depth[d] : 0,
			                        &cpu);
			bytes = atomic_load(&total_read);
			gbs[b][way][d][r] = (double)bytes / s / 1e9;
			cpu_gb[b][way][d][r] = cpu / ((double)bytes / 1e9);
			fprintf(stderr, "sweep_read: round %d: %u MiB reads, %s %d: %.2f GB/s, "
			                "%.0f ms CPU/GB\n", r + 1, mib[b], way == PREAD ? "pread threads" :
			                "io_uring QD", depth[d], gbs[b][way][d][r],
			        1e3 * cpu_gb[b][way][d][r]);
		}
	char *md = NULL, *csv = NULL;
	size_t mdn = 0, csvn = 0;
	FILE *f = open_memstream(&md, &mdn), *g = open_memstream(&csv, &csvn);
	if (!f || !g)
		return die("out of memory", path);
	fprintf(f, "# O_DIRECT reads: loader threads (pread) against io_uring (bench/sweep_read)\n\n"
	           "File: %s, %.2f GB of payload read whole per measurement, page cache dropped "
	           "before each%s.  %d rounds, configurations in alternating order; medians.  "
	           "1-min load average %.2f at the start, %.2f at the end; %.0f s.  pread: N "
	           "threads, each a 2 MiB-aligned huge-page buffer (the loaders' way).  io_uring: "
	           "one thread, QD reads in flight, each into a huge-page buffer registered with "
	           "the ring (IORING_OP_READ_FIXED).  CPU: the process's user + system time per GB "
	           "read.\n\n", path, (double)bytes / 1e9, geteuid() ? " (not root: not dropped)" : "",
	        compare_rounds, load0, loadavg1(), now_s() - t_start);
	fprintf(f, "| read size | depth | pread GB/s | io_uring GB/s | io_uring / pread | pread CPU "
	           "ms/GB | io_uring CPU ms/GB | pread min–max | io_uring min–max |\n"
	           "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |\n");
	fprintf(g, "read_mib,depth,way,round,gbps,cpu_ms_per_gb\n");
	for (int b = 0; b < 2; b++)
		for (int d = 0; d < N_DEPTHS; d++) {
			double med[2], cmed[2], lo[2], hi[2];
			for (int w = 0; w < 2; w++) {
				for (int r = 0; r < compare_rounds; r++)
					fprintf(g, "%u,%d,%s,%d,%.4f,%.2f\n", mib[b], depth[d],
					        w == PREAD ? "pread" : "io_uring", r + 1, gbs[b][w][d][r],
					        1e3 * cpu_gb[b][w][d][r]);
				med[w] = median(gbs[b][w][d], compare_rounds);
				lo[w] = gbs[b][w][d][0];
				hi[w] = gbs[b][w][d][compare_rounds - 1];
				cmed[w] = median(cpu_gb[b][w][d], compare_rounds);
			}
			fprintf(f, "| %u MiB | %d | %.2f | %.2f | %.2f | %.0f | %.0f | %.2f–%.2f "
			           "| %.2f–%.2f |\n", mib[b], depth[d], med[PREAD], med[URING],
			        med[URING] / med[PREAD], 1e3 * cmed[PREAD], 1e3 * cmed[URING], lo[PREAD],
			        hi[PREAD], lo[URING], hi[URING]);
		}
	fclose(f);
	fclose(g);
	fputs(md, stdout);
	if (out_dir) {
		const char *name[2] = {"sweep_read.md", "sweep_read.csv"};
		const char *text[2] = {md, csv};
		for (int i = 0; i < 2; i++) {
			char p[4096], tmp[4200];
			snprintf(p, sizeof p, "%s/%s", out_dir, name[i]);
			snprintf(tmp, sizeof tmp, "%s.tmp", p);
			FILE *o = fopen(tmp, "w");
			if (!o || fputs(text[i], o) < 0 || fclose(o) || rename(tmp, p))
				return die(strerror(errno), p);
		}
	}
	free(md);
	free(csv);
	return 0;
}
#else
static int compare(const char *path)
{
	return die("built without liburing: --compare needs it (cmake finds liburing-dev)", path);
}
#endif

/* Read every extent with O_DIRECT, in blocks over the threads (or through
 * io_uring); print the rate, or compare the ways. */
static int read_all(const char *path)
{
	fd = open(path, O_RDONLY | O_DIRECT | O_CLOEXEC);
	if (fd < 0)
		return die(strerror(errno), path);
	if (compare_rounds)
		return compare(path);
#ifndef SWEEP_READ_URING
	if (uring_qd)
		return die("built without liburing: no --uring", path);
#endif
	if (order_path ? order_blocks() : cut_blocks())
		return order_path ? 1 : die("out of memory", path);
	double cpu, s = run_one(n_threads, uring_qd, &cpu);
	printf("%llu %.6f %.3f\n", (unsigned long long)atomic_load(&total_read), s,
	       (double)atomic_load(&total_read) / s / 1e9);
	return 0;
}
