/* Helpers of bench/fault_latency (see fl_util.h). */
#include "fl_util.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <flexpage/flexpage.h>

int fl_no_drop;

double fl_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void fl_die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("fault_latency: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

void fl_note(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("fault_latency: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	fflush(stderr);
	va_end(ap);
}

int fl_parse_size(const char *s, uint64_t *out)
{
	char *end;
	errno = 0;
	if (!isdigit((unsigned char)*s))
		return -1;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno)
		return -1;
	unsigned shift = 0;
	switch (toupper((unsigned char)*end)) {
	case 'K': shift = 10; end++; break;
	case 'M': shift = 20; end++; break;
	case 'G': shift = 30; end++; break;
	case 'T': shift = 40; end++; break;
	default: break;
	}
	if (shift && (*end == 'i' || *end == 'I'))
		end++;
	if (shift && (*end == 'B' || *end == 'b'))
		end++;
	if (*end || (shift && v > (ULLONG_MAX >> shift)))
		return -1;
	*out = (uint64_t)v << shift;
	return 0;
}

int fl_parse_list(const char *s, uint64_t *out, int max, int sizes)
{
	char buf[512];
	if (strlen(s) >= sizeof buf)
		return -1;
	strcpy(buf, s);
	int n = 0;
	char *save = NULL;
	for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (n == max)
			return -1;
		uint64_t v;
		if (sizes) {
			if (fl_parse_size(tok, &v))
				return -1;
		} else {
			char *end;
			errno = 0;
			v = strtoull(tok, &end, 10);
			if (errno || *end || !isdigit((unsigned char)*tok))
				return -1;
		}
		out[n++] = v;
	}
	return n ? n : -1;
}

const char *fl_size_str(uint64_t b, char *buf, size_t n)
{
	if (b >= (1ull << 30) && b % (1ull << 30) == 0)
		snprintf(buf, n, "%llu GiB", (unsigned long long)(b >> 30));
	else if (b >= FL_MIB && b % FL_MIB == 0)
		snprintf(buf, n, "%llu MiB", (unsigned long long)(b >> 20));
	else if (b >= FL_MIB)
		snprintf(buf, n, "%.1f MiB", (double)b / (double)FL_MIB);
	else
		snprintf(buf, n, "%llu KiB", (unsigned long long)(b >> 10));
	return buf;
}

int fl_mkdirs(const char *path)
{
	char buf[PATH_MAX];
	if (strlen(path) >= sizeof buf) {
		errno = ENAMETOOLONG;
		return -1;
	}
	strcpy(buf, path);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(buf, 0755) && errno != EEXIST)
			return -1;
		*p = '/';
	}
	if (mkdir(buf, 0755) && errno != EEXIST)
		return -1;
	return 0;
}

int fl_drop_caches(void)
{
	if (fl_no_drop)
		return 0;
	sync();
	const char *path = "/proc/sys/vm/drop_caches";
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, "3\n", 2) != 2) {
		fl_note("%s: cannot write: %s (run as root, or pass --no-drop and read every "
		        "result as warm)", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

/* ---- the machine ---------------------------------------------------- */

static void read_line_value(const char *path, const char *key, char *out, size_t n)
{
	FILE *f = fopen(path, "r");
	char line[512];
	out[0] = 0;
	if (!f)
		return;
	while (fgets(line, sizeof line, f)) {
		if (strncmp(line, key, strlen(key)))
			continue;
		char *v = strchr(line, ':');
		if (!v)
			continue;
		v++;
		while (*v == ' ' || *v == '\t')
			v++;
		v[strcspn(v, "\n")] = 0;
		snprintf(out, n, "%s", v);
		break;
	}
	fclose(f);
}

void fl_disk_of(const char *dir, char *dev, size_t n, char *fstype, size_t fn)
{
	snprintf(dev, n, "?");
	snprintf(fstype, fn, "?");
	struct stat st;
	if (stat(dir, &st))
		return;
	char path[128], link[PATH_MAX];
	snprintf(path, sizeof path, "/sys/dev/block/%u:%u", major(st.st_dev), minor(st.st_dev));
	ssize_t k = readlink(path, link, sizeof link - 1);
	if (k > 0) {
		link[k] = 0;
		/* .../block/vda or .../block/vda/vda1: the whole disk is the
		 * component after "block/". */
		char *b = strstr(link, "/block/");
		if (b) {
			b += 7;
			b[strcspn(b, "/")] = 0;
			snprintf(dev, n, "%s", b);
		}
	}
	/* The file system: the longest mount point that prefixes dir. */
	char real[PATH_MAX];
	if (!realpath(dir, real))
		return;
	FILE *f = fopen("/proc/self/mounts", "r");
	if (!f)
		return;
	char src[256], mnt[PATH_MAX], type[64];
	size_t best = 0;
	while (fscanf(f, "%255s %4095s %63s %*[^\n]", src, mnt, type) == 3) {
		size_t l = strlen(mnt);
		if (strncmp(real, mnt, l) || (real[l] && real[l] != '/' && l > 1))
			continue;
		if (l >= best) {
			best = l;
			snprintf(fstype, fn, "%s", type);
		}
	}
	fclose(f);
}

void fl_machine_info(const char *dir, char *buf, size_t n)
{
	char cpu[256], mem[64], dev[64], fstype[64], driver[64] = "", rot[16] = "";
	read_line_value("/proc/cpuinfo", "model name", cpu, sizeof cpu);
	read_line_value("/proc/meminfo", "MemTotal", mem, sizeof mem);
	struct utsname u;
	uname(&u);
	fl_disk_of(dir, dev, sizeof dev, fstype, sizeof fstype);
	char path[PATH_MAX], link[PATH_MAX];
	snprintf(path, sizeof path, "/sys/block/%s/device/driver", dev);
	ssize_t k = readlink(path, link, sizeof link - 1);
	if (k > 0) {
		link[k] = 0;
		const char *name = strrchr(link, '/') ? strrchr(link, '/') + 1 : link;
		snprintf(driver, sizeof driver, ", %.60s", name);
	}
	snprintf(path, sizeof path, "/sys/block/%s/queue/rotational", dev);
	FILE *f = fopen(path, "r");
	if (f) {
		if (fgets(rot, sizeof rot, f))
			rot[strcspn(rot, "\n")] = 0;
		fclose(f);
	}
	double gib = strtod(mem, NULL) / (1024.0 * 1024.0);
	snprintf(buf, n, "CPU %s, %ld cores, Linux %s, %.1f GiB RAM, disk /dev/%s (%s%s%s) for %s",
	         cpu[0] ? cpu : "?", sysconf(_SC_NPROCESSORS_ONLN), u.release, gib, dev, fstype,
	         driver, rot[0] == '1' ? ", reported rotational" : "", dir);
}

/* ---- test data ------------------------------------------------------ */

#define Q8_BLOCK 34
#define Q8_VALUES 32
#define ROW_VALUES 4096ull
#define ROW_BYTES (ROW_VALUES / Q8_VALUES * Q8_BLOCK)     /* 4352 */
#define FULL_ROWS 16384ull                                 /* 68 MiB */
#define SLAB_BLOCKS (1u << 16)                             /* 2.1 MiB of blocks per seed */

static inline uint64_t rng_next(uint64_t *s)
{
	/* xorshift64* */
	uint64_t x = *s;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545F4914F6CDD1Dull;
}

static uint16_t f32_to_f16(float f)
{
	uint32_t b;
	memcpy(&b, &f, 4);
	uint32_t sign = (b >> 16) & 0x8000u;
	int e = (int)((b >> 23) & 0xff) - 127 + 15;
	uint32_t m = b & 0x7fffffu;
	if (e <= 0)
		return (uint16_t)sign; /* flush tiny scales to zero: never happens here */
	if (e >= 31)
		return (uint16_t)(sign | 0x7c00u);
	uint32_t h = sign | ((uint32_t)e << 10) | (m >> 13);
	if (m & 0x1000u)
		h++; /* round half up */
	return (uint16_t)h;
}

/* One slab of blocks: deterministic from (seed, slab index). */
static void make_blocks(uint8_t *dst, uint64_t nblocks, uint64_t seed)
{
	uint64_t s = seed * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull;
	if (!s)
		s = 1;
	for (int i = 0; i < 8; i++)
		rng_next(&s);
	int32_t v[Q8_VALUES];
	for (uint64_t b = 0; b < nblocks; b++) {
		/* Gaussian-ish: the sum of four 16-bit uniforms (Irwin-Hall). */
		int32_t amax = 1;
		uint64_t r0 = rng_next(&s);
		for (int i = 0; i < Q8_VALUES; i++) {
			uint64_t r = rng_next(&s);
			int32_t x = (int32_t)(r & 0xffff) + (int32_t)((r >> 16) & 0xffff) +
			            (int32_t)((r >> 32) & 0xffff) + (int32_t)(r >> 48) - 131070;
			/* About one value in eight twice as wide: the heavier tails
			 * of trained weights, which give zstd its ~1.05 ratio. */
			if (((r0 >> (2 * i)) & 7) == 0)
				x *= 2;
			v[i] = x;
			int32_t a = x < 0 ? -x : x;
			if (a > amax)
				amax = a;
		}
		uint8_t *blk = dst + b * Q8_BLOCK;
		/* The real scale d = amax / 127, for weights of std 0.01-0.02. */
		float d = (float)amax / 37837.0f * (0.01f + 0.01f * (float)(r0 >> 60) / 16.0f) / 127.0f;
		uint16_t h = f32_to_f16(d);
		blk[0] = (uint8_t)h;
		blk[1] = (uint8_t)(h >> 8);
		float id = 127.0f / (float)amax;
		for (int i = 0; i < Q8_VALUES; i++)
			blk[2 + i] = (uint8_t)(int8_t)lrintf((float)v[i] * id);
	}
}

struct gen_job {
	uint8_t *buf;
	uint64_t nblocks, seed;
	uint64_t next_slab, n_slabs;
	pthread_mutex_t lock;
};

static void *gen_main(void *arg)
{
	struct gen_job *j = arg;
	for (;;) {
		pthread_mutex_lock(&j->lock);
		uint64_t slab = j->next_slab++;
		pthread_mutex_unlock(&j->lock);
		if (slab >= j->n_slabs)
			break;
		uint64_t b0 = slab * SLAB_BLOCKS;
		uint64_t nb = j->nblocks - b0 < SLAB_BLOCKS ? j->nblocks - b0 : SLAB_BLOCKS;
		make_blocks(j->buf + b0 * Q8_BLOCK, nb, j->seed ^ (slab + 1) * 0xD1B54A32D192ED03ull);
	}
	return NULL;
}

void fl_data_make(struct fl_data *d, uint64_t size, uint64_t seed)
{
	memset(d, 0, sizeof *d);
	uint64_t full = FULL_ROWS * ROW_BYTES;
	uint64_t n_full = size / full;
	uint64_t rest_rows = (size - n_full * full) / ROW_BYTES / 32 * 32;
	d->n = (int)n_full + (rest_rows ? 1 : 0);
	if (!d->n)
		fl_die("--size %llu is below the smallest tensor (%llu bytes)",
		       (unsigned long long)size, (unsigned long long)(32 * ROW_BYTES));
	d->t = calloc((size_t)d->n, sizeof *d->t);
	if (!d->t)
		fl_die("out of memory");
	uint64_t off = 0;
	for (int i = 0; i < d->n; i++) {
		struct fl_tensor *t = &d->t[i];
		uint64_t rows = i < (int)n_full ? FULL_ROWS : rest_rows;
		snprintf(t->name, sizeof t->name, "blk.%d.ffn_up.weight", i);
		t->shape[0] = ROW_VALUES;
		t->shape[1] = rows;
		t->off = off;
		t->size = rows * ROW_BYTES;
		off += t->size;
	}
	d->size = off;
	d->buf = malloc(d->size);
	if (!d->buf)
		fl_die("out of memory for %llu bytes of test data", (unsigned long long)d->size);
	/* Unique blocks for the first 128 MiB, then copies of them: chunks are
	 * compressed one by one (4 MiB at most), so the copies change no ratio,
	 * and generating 1 GiB would cost ~10 s of a shared CPU. */
	uint64_t nblocks = d->size / Q8_BLOCK, pool = (128ull << 20) / Q8_BLOCK;
	struct gen_job j = {.buf = d->buf, .nblocks = nblocks < pool ? nblocks : pool,
	                    .seed = seed};
	j.n_slabs = (j.nblocks + SLAB_BLOCKS - 1) / SLAB_BLOCKS;
	pthread_mutex_init(&j.lock, NULL);
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	int nt = ncpu > 1 ? (ncpu > 8 ? 8 : (int)ncpu) : 1;
	pthread_t th[8];
	for (int i = 0; i < nt; i++)
		if (pthread_create(&th[i], NULL, gen_main, &j))
			fl_die("cannot start a thread: %s", strerror(errno));
	for (int i = 0; i < nt; i++)
		pthread_join(th[i], NULL);
	pthread_mutex_destroy(&j.lock);
	uint64_t pool_bytes = j.nblocks * Q8_BLOCK;
	for (uint64_t at = pool_bytes; at < d->size; at += pool_bytes)
		memcpy(d->buf + at, d->buf, d->size - at < pool_bytes ? d->size - at : pool_bytes);
}

void fl_data_free(struct fl_data *d)
{
	free(d->buf);
	free(d->t);
	memset(d, 0, sizeof *d);
}

int fl_write_image(const struct fl_data *d, const char *path, uint32_t chunk_size,
                   uint32_t codec, int zstd_level)
{
	struct fp_writer_options o = {
		.chunk_size = chunk_size, .codec = codec, .zstd_level = zstd_level,
		.expected_bytes = d->size, .progress = 0,
	};
	fp_writer *w = fp_writer_create(path, &o);
	if (!w) {
		fl_note("%s", fp_last_error());
		return -1;
	}
	if (fp_writer_set_meta(w, "arch=opaque\ncreator=bench/fault_latency\n"))
		goto fail;
	for (int i = 0; i < d->n; i++) {
		const struct fl_tensor *t = &d->t[i];
		if (fp_writer_begin_tensor(w, t->name, FP_TYPE_Q8_0, 2, t->shape))
			goto fail;
		for (uint64_t o2 = 0; o2 < t->size; o2 += 8 * FL_MIB) {
			uint64_t n = t->size - o2 < 8 * FL_MIB ? t->size - o2 : 8 * FL_MIB;
			if (fp_writer_write(w, d->buf + t->off + o2, (size_t)n))
				goto fail;
		}
		if (fp_writer_end_tensor(w))
			goto fail;
	}
	if (fp_writer_finish(w)) {
		fl_note("%s", fp_last_error());
		return -1;
	}
	return 0;
fail:
	fl_note("%s", fp_last_error());
	fp_writer_abort(w);
	return -1;
}

/* ---- scanning ------------------------------------------------------- */

static uint64_t sum_words(const uint64_t *p, size_t n)
{
	uint64_t a = 0, b = 0, c = 0, e = 0;
	size_t i = 0;
	for (; i + 4 <= n; i += 4) {
		a += p[i];
		b ^= p[i + 1];
		c += p[i + 2];
		e ^= p[i + 3];
	}
	for (; i < n; i++)
		a += p[i];
	return a ^ (b * 3) ^ (c * 5) ^ (e * 7);
}

uint64_t fl_scan(const uint8_t *base, const uint64_t *off, const uint64_t *len, int n,
                 enum fl_touch touch)
{
	uint64_t sum = 0;
	for (int i = 0; i < n; i++) {
		const uint8_t *p = base + off[i];
		uint64_t l = len[i];
		if (touch == FL_TOUCH_PAGE) {
			for (uint64_t o = 0; o < l; o += 4096) {
				uint64_t w;
				memcpy(&w, p + o, sizeof w);
				sum = sum * 31 + w;
			}
		} else {
			/* Tensors start on 4 KiB boundaries; q8_0 sizes are multiples
			 * of 8 here (4352-byte rows). */
			sum = sum * 31 + sum_words((const uint64_t *)(const void *)p, (size_t)(l / 8));
		}
	}
	return sum;
}

int fl_thp_bytes(const void *addr, uint64_t len, uint64_t *thp, uint64_t *rss)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	if (!f)
		return -1;
	uintptr_t a = (uintptr_t)addr, b = a + len;
	char line[512];
	int in = 0;
	*thp = *rss = 0;
	while (fgets(line, sizeof line, f)) {
		unsigned long lo, hi;
		char dash;
		if (sscanf(line, "%lx%c%lx ", &lo, &dash, &hi) == 3 && dash == '-' &&
		    strchr(line, ' ') > strchr(line, '-')) {
			in = lo >= a && hi <= b;
			continue;
		}
		unsigned long long kb;
		if (in && sscanf(line, "AnonHugePages: %llu kB", &kb) == 1)
			*thp += kb << 10;
		else if (in && sscanf(line, "Rss: %llu kB", &kb) == 1)
			*rss += kb << 10;
	}
	fclose(f);
	return 0;
}

int fl_vma_hugepage(const void *addr)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	if (!f)
		return -1;
	uintptr_t a = (uintptr_t)addr;
	char line[512];
	int in = 0, rc = -1;
	while (fgets(line, sizeof line, f)) {
		unsigned long lo, hi;
		char dash;
		if (sscanf(line, "%lx%c%lx ", &lo, &dash, &hi) == 3 && dash == '-' &&
		    strchr(line, ' ') > strchr(line, '-')) {
			in = a >= lo && a < hi;
			continue;
		}
		if (in && !strncmp(line, "VmFlags:", 8)) {
			rc = strstr(line, " hg") != NULL;
			break;
		}
	}
	fclose(f);
	return rc;
}

uint64_t fl_cpu_pressure_us(void)
{
	FILE *f = fopen("/proc/pressure/cpu", "r");
	if (!f)
		return 0;
	char line[256];
	unsigned long long total = 0;
	while (fgets(line, sizeof line, f)) {
		char *t = strstr(line, "total=");
		if (!strncmp(line, "some", 4) && t) {
			total = strtoull(t + 6, NULL, 10);
			break;
		}
	}
	fclose(f);
	return total;
}

double fl_loadavg(void)
{
	FILE *f = fopen("/proc/loadavg", "r");
	double v = -1;
	if (f) {
		if (fscanf(f, "%lf", &v) != 1)
			v = -1;
		fclose(f);
	}
	return v;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

void fl_sort(double *v, size_t n)
{
	qsort(v, n, sizeof *v, cmp_double);
}

double fl_quantile(const double *v, size_t n, double q)
{
	if (!n)
		return 0;
	size_t i = (size_t)(q * (double)(n - 1) + 0.5);
	return v[i < n ? i : n - 1];
}
