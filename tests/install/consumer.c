/* A program that knows libflexpage only from its installed files: run.sh
 * builds it out of the tree with `pkg-config --cflags --libs flexpage`.
 *
 *   consumer DIR PACKED PLAIN
 *
 * It checks that the headers and the library it runs with are one
 * version, writes an image of its own with the library, and reads both
 * that image and PACKED (`flexpage pack` of PLAIN) through regions with a
 * budget of four chunks, so that pages are faulted in and evicted; every
 * byte read through a region must equal the plain bytes.  Exit 0 when all
 * agree, 1 on any difference or failure, 77 without userfaultfd. */
#include <flexpage/flexpage.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define FAIL(...) (fprintf(stderr, "consumer: " __VA_ARGS__), fputc('\n', stderr), exit(1))

static uint64_t faults, evictions;

/* Bytes that are neither all alike nor all random: runs that zstd
 * shrinks, between stretches of xorshift output. */
static void fill(unsigned char *p, size_t n, uint64_t seed)
{
	uint64_t x = seed | 1;
	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		p[i] = (i >> 14) & 1 ? (unsigned char)(i >> 9) : (unsigned char)x;
	}
}

static unsigned char *read_file(const char *path, size_t *n)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st))
		FAIL("%s: %s", path, strerror(errno));
	unsigned char *buf = malloc(st.st_size ? (size_t)st.st_size : 1);
	size_t got = 0;
	while (buf && got < (size_t)st.st_size) {
		ssize_t k = read(fd, buf + got, (size_t)st.st_size - got);
		if (k <= 0)
			FAIL("%s: read: %s", path, k ? strerror(errno) : "end of file");
		got += (size_t)k;
	}
	if (!buf)
		FAIL("out of memory");
	close(fd);
	*n = got;
	return buf;
}

static void write_image(const char *path, const unsigned char *data, size_t n)
{
	const struct fp_writer_options wo = {.chunk_size = 64 << 10, .codec = FP_CODEC_ZSTD};
	fp_writer *w = fp_writer_create(path, &wo);
	const uint64_t shape[1] = {n};
	if (!w || fp_writer_set_meta(w, "arch=opaque\n") ||
	    fp_writer_begin_tensor(w, "blob", FP_TYPE_U8, 1, shape) ||
	    fp_writer_write(w, data, n) || fp_writer_end_tensor(w)) {
		const char *why = fp_last_error();
		if (w)
			fp_writer_abort(w);
		FAIL("writing %s: %s", path, why);
	}
	if (fp_writer_finish(w))
		FAIL("writing %s: %s", path, fp_last_error());
}

/* Page tensor name of image path and compare it with want[0..n): in
 * order, then backwards a page at a time (the budget keeps evicting). */
static void compare(const char *path, const char *name, const unsigned char *want, size_t n)
{
	fp_image *img = fp_image_open(path);
	if (!img)
		FAIL("%s", fp_last_error());
	const struct fp_options o = {.budget = 4ull * fp_image_info(img)->chunk_size, .loaders = 2};
	fp_image_close(img);
	fp_region *r = fp_open(path, &o);
	if (!r)
		FAIL("%s", fp_last_error());
	const struct fp_tensor_desc *d;
	const unsigned char *p = fp_tensor(r, name, &d);
	if (!p || d->size != n)
		FAIL("%s: tensor %s: %s, %llu bytes, the plain file has %zu", path, name,
		     p ? "found" : "missing", p ? (unsigned long long)d->size : 0ull, n);
	for (size_t off = 0; off < n; off += 4096) {
		const size_t len = n - off < 4096 ? n - off : 4096;
		if (memcmp(p + off, want + off, len))
			FAIL("%s: the page at %zu differs from the plain bytes", path, off);
	}
	for (size_t at = (n - 1) / 4096 * 4096;; at -= 4096) {
		const size_t len = n - at < 4096 ? n - at : 4096;
		if (memcmp(p + at, want + at, len))
			FAIL("%s: the page at %zu differs from the plain bytes (backwards)", path, at);
		if (!at)
			break;
	}
	struct fp_stats st;
	fp_get_stats(r, &st);
	if (!st.faults || !st.evictions || st.poisoned)
		FAIL("%s: %llu faults, %llu evictions, %llu poisoned: expected faults and evictions",
		     path, (unsigned long long)st.faults, (unsigned long long)st.evictions,
		     (unsigned long long)st.poisoned);
	faults += st.faults;
	evictions += st.evictions;
	fp_close(r);
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: consumer DIR PACKED PLAIN\n");
		return 2;
	}
	if (fp_version_number() != FLEXPAGE_VERSION_NUMBER ||
	    strcmp(fp_version_string(), FLEXPAGE_VERSION_STRING))
		FAIL("headers %s (%d), library %s (%u)", FLEXPAGE_VERSION_STRING,
		     FLEXPAGE_VERSION_NUMBER, fp_version_string(), fp_version_number());
	int ufd = (int)syscall(SYS_userfaultfd, O_CLOEXEC);
	if (ufd < 0) {
		printf("consumer: skipped: no userfaultfd (%s)\n", strerror(errno));
		return 77;
	}
	close(ufd);

	/* an image of the consumer's own: ten chunks and a bit, past the budget */
	const size_t n = 10 * (64u << 10) + 12345;
	unsigned char *data = malloc(n);
	char own[4096];
	if (!data)
		FAIL("out of memory");
	fill(data, n, 42);
	snprintf(own, sizeof own, "%s/own.img", argv[1]);
	write_image(own, data, n);
	compare(own, "blob", data, n);
	free(data);

	/* flexpage pack's image of a plain file */
	size_t plain_n;
	unsigned char *plain = read_file(argv[3], &plain_n);
	compare(argv[2], "data", plain, plain_n);
	free(plain);

	/* a failure says which file */
	char missing[4096];
	snprintf(missing, sizeof missing, "%s/missing.img", argv[1]);
	if (fp_open(missing, NULL) || !strstr(fp_last_error(), "missing.img"))
		FAIL("fp_open of a missing file: '%s'", fp_last_error());

	printf("consumer: libflexpage %s: %zu + %zu bytes through 2 regions equal the plain bytes "
	       "(%llu faults, %llu evictions)\n", fp_version_string(), n, plain_n,
	       (unsigned long long)faults, (unsigned long long)evictions);
	return 0;
}
