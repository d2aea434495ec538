/* The flexpage command, run as a program (FLEXPAGE_TOOL) with its output
 * captured: pack, inspect and cat, their failure modes and usage errors.
 * The reference is always the plain bytes of the input file. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <flexpage/flexpage.h>

#include "testutil.h"

static char *g_dir; /* the files a test works on */
static char *g_io;  /* captured stdout / stderr, kept apart from g_dir */

static void setup(void)
{
	g_dir = tu_tmpdir();
	g_io = tu_tmpdir();
	cr_assert(g_dir && g_io, "cannot create a temporary directory under /var/tmp or /tmp");
	cr_assert(!access(FLEXPAGE_TOOL, X_OK), "the flexpage tool is not built: %s", FLEXPAGE_TOOL);
}

static void teardown(void)
{
	tu_rmtree(g_dir);
	tu_rmtree(g_io);
	free(g_dir);
	free(g_io);
	g_dir = g_io = NULL;
}

TestSuite(cli, .init = setup, .fini = teardown, .timeout = 120);

/* ------------------------------------------------------------------ */
/* Helpers                                                              */

static struct tu_proc run_(const char *const *argv)
{
	struct tu_proc p;
	cr_assert(!tu_run(g_io, argv, 60, &p), "cannot run %s: %s", argv[0], strerror(errno));
	char cmd[512] = "";
	for (const char *const *a = argv + 1; *a && strlen(cmd) < 400; a++)
		snprintf(cmd + strlen(cmd), sizeof cmd - strlen(cmd), "%s%s", cmd[0] ? " " : "", *a);
	cr_assert(!p.timed_out, "flexpage %s: did not finish within 60 s (hang?)\nstderr: %s", cmd, p.err);
	return p;
}
#define RUN(...) run_((const char *[]){FLEXPAGE_TOOL, __VA_ARGS__, NULL})

static void expect_exit(const struct tu_proc *p, int code, const char *what)
{
	cr_assert(p->exited, "%s: killed by signal %d\nstderr: %s", what, p->sig, p->err);
	cr_assert_eq(p->code, code, "%s: exit status %d, expected %d\nstderr: %s", what, p->code, code,
	             p->err);
}

static void expect_failure(const struct tu_proc *p, const char *what)
{
	cr_assert(p->exited, "%s: killed by signal %d (expected a clean failure)\nstderr: %s", what,
	          p->sig, p->err);
	cr_assert_neq(p->code, 0, "%s: exit status 0, expected a failure\nstdout: %.300s", what, p->out);
}

static char *path(const char *name)
{
	char *p = tu_join(g_dir, name);
	cr_assert(p);
	return p;
}

/* A file of n bytes: 64 KiB stretches, alternately compressible and random. */
static uint8_t *make_input(const char *file, size_t n, uint64_t seed)
{
	uint8_t *buf = malloc(n);
	cr_assert(buf);
	for (size_t off = 0, k = 0; off < n; off += 65536, k++) {
		size_t len = n - off < 65536 ? n - off : 65536;
		if (k % 2)
			tu_fill_random(seed + k, buf + off, len);
		else
			tu_fill_compressible(seed + k, buf + off, len);
	}
	cr_assert(!tu_write_file(file, buf, n));
	return buf;
}

static void expect_file(const char *file, const uint8_t *want, size_t n, const char *what)
{
	size_t len;
	uint8_t *got = tu_read_file(file, &len);
	cr_assert(got, "%s: %s is gone", what, file);
	cr_assert_eq(len, n, "%s: %s is %zu bytes, expected %zu", what, file, len, n);
	cr_assert_arr_eq(got, want, n, "%s: %s changed", what, file);
	free(got);
}

static void expect_no_extras(const char *const *names, const char *what)
{
	char *extra = tu_dir_extras(g_dir, names);
	cr_assert_str_eq(extra, "", "%s: unexpected files beside OUT: %s", what, extra);
	free(extra);
}

static void expect_output(const struct tu_proc *p, const uint8_t *want, size_t n, const char *what)
{
	cr_assert_eq(p->out_len, n, "%s: wrote %zu bytes, expected %zu\nstderr: %s", what, p->out_len, n,
	             p->err);
	for (size_t k = 0; k < n; k++)
		if ((uint8_t)p->out[k] != want[k])
			cr_assert_fail("%s: byte %zu (chunk of 64K #%zu) is 0x%02x, expected 0x%02x", what, k,
			               k >> 16, (uint8_t)p->out[k], want[k]);
}

static void require_uffd(void)
{
	long fd = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (fd >= 0) {
		close((int)fd);
		return;
	}
	int e = errno;
#ifdef USERFAULTFD_IOC_NEW
	int dfd = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
	if (dfd >= 0) {
		int u = ioctl(dfd, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
		close(dfd);
		if (u >= 0) {
			close(u);
			return;
		}
	}
#endif
	cr_skip_test("userfaultfd is unavailable here (%s): run as root, or set "
	             "vm.unprivileged_userfaultfd=1, or give access to /dev/userfaultfd",
	             strerror(e));
}

/* ------------------------------------------------------------------ */
/* pack + cat: exactly the input's bytes                                */

static void pack_cat(const char *codec, const char *chunk, uint64_t cs, const char *size_budget)
{
	require_uffd();
	const size_t n = (9u << 20) + 12345;
	char *in = path("in.bin"), *out = path("out.fpi");
	uint8_t *data = make_input(in, n, 17);
	struct tu_proc p = RUN("pack", in, out, "--chunk", chunk, "--codec", codec, "-q");
	expect_exit(&p, 0, "pack");
	tu_proc_free(&p);
	const char *const names[] = {"in.bin", "out.fpi", NULL};
	expect_no_extras(names, "after pack");

	p = RUN("inspect", out);
	expect_exit(&p, 0, "inspect");
	cr_assert(strstr(p.out, "verdict: valid"), "inspect: %s", p.out);
	tu_proc_free(&p);

	p = RUN("cat", out);
	expect_exit(&p, 0, "cat");
	expect_output(&p, data, n, "cat");
	tu_proc_free(&p);

	p = RUN("cat", out, "--budget", "25%");
	expect_exit(&p, 0, "cat --budget 25%");
	expect_output(&p, data, n, "cat --budget 25%");
	tu_proc_free(&p);

	p = RUN("cat", out, "--budget", size_budget);
	expect_exit(&p, 0, "cat --budget SIZE");
	expect_output(&p, data, n, "cat --budget SIZE");
	tu_proc_free(&p);

	p = RUN("cat", "--budget", size_budget, "--no-huge", "--policy", "lru", "--loaders", "1", out);
	expect_exit(&p, 0, "cat --no-huge --policy lru --loaders 1");
	expect_output(&p, data, n, "cat --no-huge --policy lru --loaders 1");
	tu_proc_free(&p);

	/* The whole logical layout: the data, then zeros to the chunk boundary. */
	uint64_t logical = (n + cs - 1) / cs * cs;
	uint8_t *layout = calloc(1, logical);
	memcpy(layout, data, n);
	p = RUN("cat", out, "--layout");
	expect_exit(&p, 0, "cat --layout");
	expect_output(&p, layout, logical, "cat --layout");
	tu_proc_free(&p);
	p = RUN("cat", out, "--layout", "--budget", "25%");
	expect_exit(&p, 0, "cat --layout --budget 25%");
	expect_output(&p, layout, logical, "cat --layout --budget 25%");
	tu_proc_free(&p);

	expect_no_extras(names, "after cat");
	free(layout);
	free(data);
	free(in);
	free(out);
}

Test(cli, pack_cat_raw_64k) { pack_cat("raw", "64K", 64u << 10, "200K"); }
Test(cli, pack_cat_raw_1m) { pack_cat("raw", "1M", 1u << 20, "2600K"); }
Test(cli, pack_cat_zstd_64k) { pack_cat("zstd", "64K", 64u << 10, "200K"); }
Test(cli, pack_cat_zstd_1m) { pack_cat("zstd:9", "1M", 1u << 20, "3M"); }

Test(cli, pack_default_options_and_summary)
{
	require_uffd();
	const size_t n = (3u << 20) + 1;
	char *in = path("in.bin"), *out = path("out.fpi");
	uint8_t *data = make_input(in, n, 5);
	struct tu_proc p = RUN("pack", in, out);
	expect_exit(&p, 0, "pack (defaults)");
	cr_assert(strstr(p.err, out) && strstr(p.err, "wrote"), "pack's summary: %s", p.err);
	tu_proc_free(&p);
	p = RUN("inspect", out);
	expect_exit(&p, 0, "inspect");
	cr_assert(strstr(p.out, "2048 KiB") || strstr(p.out, "2 MiB"), "default chunk is not 2 MiB:\n%s",
	          p.out);
	tu_proc_free(&p);
	p = RUN("cat", out, "--budget", "4M", "--stats");
	expect_exit(&p, 0, "cat --stats");
	expect_output(&p, data, n, "cat --stats");
	cr_assert_gt(p.err_len, 0, "cat --stats printed nothing on stderr");
	tu_proc_free(&p);
	free(data);
	free(in);
	free(out);
}

Test(cli, cat_budget_exactly_minimum)
{
	require_uffd();
	const size_t n = (1u << 20) + 3;
	char *in = path("in.bin"), *out = path("out.fpi");
	uint8_t *data = make_input(in, n, 6);
	struct tu_proc p = RUN("pack", in, out, "--chunk", "64K", "--codec", "zstd", "-q");
	expect_exit(&p, 0, "pack");
	tu_proc_free(&p);
	p = RUN("cat", out, "--budget", "128K");
	expect_exit(&p, 0, "cat --budget 128K (two 64K chunks)");
	expect_output(&p, data, n, "cat --budget 128K");
	tu_proc_free(&p);
	free(data);
	free(in);
	free(out);
}

/* ------------------------------------------------------------------ */
/* inspect                                                              */

static char *pack_small(const char *codec, size_t n, uint8_t **data)
{
	char *in = path("in.bin"), *out = path("img.fpi");
	uint8_t *d = make_input(in, n, 23);
	struct tu_proc p = RUN("pack", in, out, "--chunk", "64K", "--codec", codec, "-q");
	expect_exit(&p, 0, "pack");
	tu_proc_free(&p);
	free(in);
	if (data)
		*data = d;
	else
		free(d);
	return out;
}

Test(cli, inspect_valid_image)
{
	const size_t n = 5 * 65536 + 1000;
	char *img = pack_small("zstd", n, NULL);
	struct tu_proc p = RUN("inspect", img);
	expect_exit(&p, 0, "inspect");
	cr_assert(strstr(p.out, "verdict: valid"), "%s", p.out);
	cr_assert(strstr(p.out, "tensor") && strstr(p.out, "type") && strstr(p.out, "shape"),
	          "no tensor table header:\n%s", p.out);
	/* The one opaque tensor, its type and its shape (the file's length). */
	char shape[32];
	snprintf(shape, sizeof shape, "%zu", n);
	cr_assert(strstr(p.out, "data") && strstr(p.out, "u8") && strstr(p.out, shape),
	          "the tensor row lacks data/u8/%s:\n%s", shape, p.out);
	cr_assert(strstr(p.out, "arch=opaque"), "meta not shown:\n%s", p.out);
	tu_proc_free(&p);

	p = RUN("inspect", img, "--chunks");
	expect_exit(&p, 0, "inspect --chunks");
	cr_assert(strstr(p.out, "zstd") && strstr(p.out, "raw"), "chunk table lacks codecs:\n%s", p.out);
	cr_assert(strstr(p.out, "verdict: valid"), "%s", p.out);
	tu_proc_free(&p);

	p = RUN("inspect", "--quick", img);
	expect_exit(&p, 0, "inspect --quick");
	cr_assert(strstr(p.out, "verdict: tables valid"), "%s", p.out);
	tu_proc_free(&p);
	free(img);
}

static void expect_says(const struct tu_proc *p, const char *alts, const char *what)
{
	size_t n = p->out_len + p->err_len + 2;
	char *all = malloc(n);
	snprintf(all, n, "%s\n%s", p->out, p->err);
	cr_assert(tu_contains_any(all, alts), "%s: the output does not say %s:\nstdout: %s\nstderr: %s",
	          what, alts, p->out, p->err);
	free(all);
}

Test(cli, inspect_corrupt_raw_payload)
{
	char *img = pack_small("raw", 6 * 65536 + 10, NULL);
	tu_file f;
	cr_assert(!tu_load(img, &f));
	f.data[4096 + 3 * 65536 + 5] ^= 0x01;
	cr_assert(!tu_save(img, &f));
	tu_free(&f);
	struct tu_proc p = RUN("inspect", img);
	expect_exit(&p, 1, "inspect of a corrupt payload");
	expect_says(&p, "chunk 3", "inspect");
	expect_says(&p, "checksum", "inspect");
	expect_says(&p, "INVALID", "inspect");
	tu_proc_free(&p);
	/* --quick does not read payloads: the tables are fine. */
	p = RUN("inspect", img, "--quick");
	expect_exit(&p, 0, "inspect --quick of a corrupt payload");
	tu_proc_free(&p);
	free(img);
}

Test(cli, inspect_corrupt_zstd_payload)
{
	char *img = pack_small("zstd", 6 * 65536 + 10, NULL);
	tu_file f;
	cr_assert(!tu_load(img, &f));
	uint64_t e = tu_chunk_at(&f, 4); /* compressible: stored as zstd */
	cr_assert_eq(tu_get32(&f, e + TU_C_CODEC), 1u, "test set-up: chunk 4 is not zstd");
	uint64_t off = tu_get64(&f, e + TU_C_FILE_OFFSET) + tu_get32(&f, e + TU_C_STORED_LEN) / 2;
	f.data[off] ^= 0x04;
	cr_assert(!tu_save(img, &f));
	tu_free(&f);
	struct tu_proc p = RUN("inspect", img);
	expect_exit(&p, 1, "inspect of a corrupt zstd payload");
	expect_says(&p, "chunk 4", "inspect");
	expect_says(&p, "checksum|zstd|decode", "inspect");
	tu_proc_free(&p);
	free(img);
}

Test(cli, inspect_truncated_file)
{
	char *img = pack_small("raw", 3 * 65536, NULL);
	struct stat st;
	cr_assert(!stat(img, &st));
	cr_assert(!truncate(img, st.st_size - 100));
	struct tu_proc p = RUN("inspect", img);
	expect_exit(&p, 1, "inspect of a truncated file");
	expect_says(&p, img, "inspect");
	expect_says(&p, "file_size|truncat", "inspect");
	tu_proc_free(&p);
	cr_assert(!truncate(img, 2000));
	p = RUN("inspect", img);
	expect_exit(&p, 1, "inspect of a 2000-byte file");
	expect_says(&p, img, "inspect");
	tu_proc_free(&p);
	free(img);
}

Test(cli, inspect_missing_and_foreign_files)
{
	char *missing = path("missing.fpi");
	struct tu_proc p = RUN("inspect", missing);
	expect_exit(&p, 1, "inspect of a missing file");
	expect_says(&p, missing, "inspect");
	tu_proc_free(&p);
	char *junk = path("junk.bin");
	uint8_t *d = make_input(junk, 3 * 4096, 1);
	p = RUN("inspect", junk);
	expect_exit(&p, 1, "inspect of a non-image");
	expect_says(&p, junk, "inspect");
	expect_says(&p, "magic", "inspect");
	tu_proc_free(&p);
	free(d);
	free(junk);
	free(missing);
}

Test(cli, cat_corrupt_payload_fails_loudly)
{
	/* A chunk that fails its checksum is never served: cat must fail (or
	 * die of SIGBUS) naming the chunk, within the time limit, and what it
	 * wrote before is a prefix of the input. */
	require_uffd();
	uint8_t *data;
	const size_t n = 6 * 65536 + 10;
	char *img = pack_small("raw", n, &data);
	tu_file f;
	cr_assert(!tu_load(img, &f));
	f.data[4096 + 3 * 65536 + 5] ^= 0x01;
	cr_assert(!tu_save(img, &f));
	tu_free(&f);
	struct tu_proc p = RUN("cat", img);
	cr_assert(!(p.exited && p.code == 0), "cat of a corrupt image succeeded");
	cr_assert_leq(p.out_len, 3 * 65536, "cat wrote past the good chunks");
	cr_assert_arr_eq(p.out, data, p.out_len, "cat wrote wrong bytes");
	expect_says(&p, "chunk 3", "cat of a corrupt payload");
	expect_says(&p, "checksum", "cat of a corrupt payload");
	tu_proc_free(&p);
	free(data);
	free(img);
}

/* ------------------------------------------------------------------ */
/* pack: never harms an existing OUT                                    */

static uint8_t *precious(const char *file)
{
	uint8_t *b = malloc(10000);
	tu_fill_random(99, b, 10000);
	cr_assert(!tu_write_file(file, b, 10000));
	return b;
}

Test(cli, pack_refuses_to_overwrite_without_force)
{
	require_uffd();
	char *in = path("in.bin"), *out = path("out.fpi");
	const size_t n = 200000;
	uint8_t *data = make_input(in, n, 3);
	uint8_t *old = precious(out);
	struct tu_proc p = RUN("pack", in, out, "--chunk", "64K");
	expect_failure(&p, "pack over an existing OUT");
	expect_says(&p, "--force|exists", "pack over an existing OUT");
	tu_proc_free(&p);
	expect_file(out, old, 10000, "pack without --force");
	const char *const names[] = {"in.bin", "out.fpi", NULL};
	expect_no_extras(names, "pack without --force");

	p = RUN("pack", in, out, "--chunk", "64K", "--force", "-q");
	expect_exit(&p, 0, "pack --force");
	tu_proc_free(&p);
	expect_no_extras(names, "pack --force");
	p = RUN("cat", out);
	expect_exit(&p, 0, "cat");
	expect_output(&p, data, n, "cat after pack --force");
	tu_proc_free(&p);
	free(old);
	free(data);
	free(in);
	free(out);
}

static void write_truncated_checkpoint(const char *file)
{
	/* llama2.c header: dim=64, hidden_dim=172, n_layers=5, n_heads=8,
	 * n_kv_heads=4, vocab_size=512, seq_len=512; then far too few floats. */
	int32_t hdr[7] = {64, 172, 5, 8, 4, 512, 512};
	size_t n = sizeof hdr + 40000;
	uint8_t *b = calloc(1, n);
	memcpy(b, hdr, sizeof hdr);
	tu_fill_random(8, b + sizeof hdr, 40000);
	cr_assert(!tu_write_file(file, b, n));
	free(b);
}

Test(cli, pack_failing_midway_keeps_out)
{
	char *in = path("short.bin"), *out = path("out.fpi");
	write_truncated_checkpoint(in);
	uint8_t *old = precious(out);
	const char *const names[] = {"short.bin", "out.fpi", NULL};
	static const char *const variants[][2] = {{"--chunk", "64K"}, {"--quant", "q8_0"}, {"--codec", "zstd"}};
	for (size_t k = 0; k < 3; k++) {
		struct tu_proc p = RUN("pack", in, out, "--force", "-q", variants[k][0], variants[k][1]);
		expect_failure(&p, "pack of a truncated checkpoint");
		expect_says(&p, "short.bin", "pack of a truncated checkpoint");
		tu_proc_free(&p);
		expect_file(out, old, 10000, "a failed pack");
		expect_no_extras(names, "a failed pack");
	}
	/* Without an existing OUT, none is left behind. */
	cr_assert(!unlink(out));
	struct tu_proc p = RUN("pack", in, out, "-q");
	expect_failure(&p, "pack of a truncated checkpoint");
	tu_proc_free(&p);
	cr_assert(!tu_file_exists(out), "a failed pack left OUT behind");
	const char *const only_in[] = {"short.bin", NULL};
	expect_no_extras(only_in, "a failed pack");
	free(old);
	free(in);
	free(out);
}

Test(cli, pack_io_error_keeps_out)
{
	/* The child inherits a file size limit and an ignored SIGXFSZ: its
	 * writes past 1 MiB fail with EFBIG, like a full disk. */
	char *in = path("in.bin"), *out = path("out.fpi");
	uint8_t *data = make_input(in, 3u << 20, 9);
	uint8_t *old = precious(out);
	signal(SIGXFSZ, SIG_IGN);
	struct rlimit rl = {1u << 20, 1u << 20};
	cr_assert(!setrlimit(RLIMIT_FSIZE, &rl));
	const char *const names[] = {"in.bin", "out.fpi", NULL};
	static const char *const codecs[] = {"raw", "zstd"};
	for (int k = 0; k < 2; k++) {
		struct tu_proc p = RUN("pack", in, out, "--force", "-q", "--chunk", "64K", "--codec", codecs[k]);
		expect_failure(&p, "pack onto a full disk");
		expect_says(&p, "write|large|space", "pack onto a full disk");
		tu_proc_free(&p);
		expect_file(out, old, 10000, "pack onto a full disk");
		expect_no_extras(names, "pack onto a full disk");
	}
	free(old);
	free(data);
	free(in);
	free(out);
}

Test(cli, pack_out_in_missing_directory_or_a_directory)
{
	char *in = path("in.bin"), *out = path("no/such/dir/out.fpi"), *dir = path("adir");
	uint8_t *data = make_input(in, 100000, 10);
	struct tu_proc p = RUN("pack", in, out);
	expect_failure(&p, "pack into a missing directory");
	expect_says(&p, "no/such/dir", "pack into a missing directory");
	tu_proc_free(&p);
	cr_assert(!mkdir(dir, 0755));
	p = RUN("pack", in, dir);
	expect_failure(&p, "pack onto a directory");
	tu_proc_free(&p);
	p = RUN("pack", in, dir, "--force");
	expect_failure(&p, "pack --force onto a directory");
	tu_proc_free(&p);
	struct stat st;
	cr_assert(!stat(dir, &st) && S_ISDIR(st.st_mode), "the directory OUT was replaced");
	const char *const names[] = {"in.bin", "adir", NULL};
	expect_no_extras(names, "pack onto a directory");
	free(data);
	free(in);
	free(out);
	free(dir);
}

static void pack_cat_sizes(const size_t *sizes, size_t count)
{
	require_uffd();
	char *in = path("in.bin"), *out = path("out.fpi");
	for (size_t k = 0; k < count; k++) {
		uint8_t *data = make_input(in, sizes[k], k);
		struct tu_proc p = RUN("pack", in, out, "--force", "-q", "--chunk", "64K",
		                       "--codec", k % 2 ? "zstd" : "raw");
		expect_exit(&p, 0, "pack");
		tu_proc_free(&p);
		p = RUN("cat", out);
		expect_exit(&p, 0, "cat");
		expect_output(&p, data, sizes[k], "cat of an edge-sized file");
		tu_proc_free(&p);
		free(data);
	}
	free(in);
	free(out);
}

Test(cli, pack_cat_edge_sizes)
{
	/* One chunk plus one byte, two chunks exactly, two plus one byte. */
	static const size_t sizes[] = {65537, 131072, 131073};
	pack_cat_sizes(sizes, 3);
}

Test(cli, cat_single_chunk_image)
{
	/* An image of one chunk (a file of at most one chunk: any file up to
	 * 2 MiB with the default chunk size) must be readable with the
	 * default budget, which is the whole image. */
	static const size_t sizes[] = {1, 4096, 65536};
	pack_cat_sizes(sizes, 3);
}

Test(cli, cat_invalid_image)
{
	char *img = pack_small("raw", 3 * 65536, NULL);
	struct stat st;
	cr_assert(!stat(img, &st));
	cr_assert(!truncate(img, st.st_size - 1));
	struct tu_proc p = RUN("cat", img);
	expect_exit(&p, 1, "cat of a truncated image");
	expect_says(&p, img, "cat of a truncated image");
	cr_assert_eq(p.out_len, 0, "cat of an invalid image wrote data");
	tu_proc_free(&p);
	p = RUN("cat", img, "--budget", "50%");
	expect_exit(&p, 1, "cat --budget of a truncated image");
	expect_says(&p, img, "cat of a truncated image");
	tu_proc_free(&p);
	free(img);
}

Test(cli, pack_missing_or_empty_input)
{
	char *in = path("nope.bin"), *out = path("out.fpi"), *empty = path("empty.bin");
	uint8_t *old = precious(out);
	cr_assert(!tu_write_file(empty, "", 0));
	const char *const names[] = {"out.fpi", "empty.bin", NULL};
	struct tu_proc p = RUN("pack", in, out, "--force");
	expect_failure(&p, "pack of a missing input");
	expect_says(&p, "nope.bin", "pack of a missing input");
	tu_proc_free(&p);
	expect_file(out, old, 10000, "pack of a missing input");
	expect_no_extras(names, "pack of a missing input");

	p = RUN("pack", empty, out, "--force");
	expect_failure(&p, "pack of an empty input");
	expect_says(&p, "empty.bin", "pack of an empty input");
	tu_proc_free(&p);
	expect_file(out, old, 10000, "pack of an empty input");
	expect_no_extras(names, "pack of an empty input");
	free(old);
	free(in);
	free(out);
	free(empty);
}

Test(cli, pack_out_equal_to_in_is_refused)
{
	char *in = path("in.bin"), *hard = path("hard.bin"), *sym = path("sym.bin");
	const size_t n = 100000;
	uint8_t *data = make_input(in, n, 4);
	cr_assert(!link(in, hard));
	cr_assert(!symlink("in.bin", sym));
	char alias[4096];
	snprintf(alias, sizeof alias, "%s/./in.bin", g_dir);
	const char *outs[] = {in, alias, hard, sym};
	const char *const names[] = {"in.bin", "hard.bin", "sym.bin", NULL};
	for (size_t k = 0; k < 4; k++) {
		struct tu_proc p = RUN("pack", in, outs[k], "--force");
		expect_failure(&p, "pack IN IN");
		expect_says(&p, "input|same", "pack IN IN");
		tu_proc_free(&p);
		expect_file(in, data, n, "pack IN IN");
		expect_no_extras(names, "pack IN IN");
	}
	free(data);
	free(in);
	free(hard);
	free(sym);
}

/* ------------------------------------------------------------------ */
/* Usage errors and --help                                              */

static void expect_usage_error(const char *const *args, const char *says, const char *what)
{
	const char *argv[16] = {FLEXPAGE_TOOL};
	size_t k = 1;
	for (; args[k - 1]; k++)
		argv[k] = args[k - 1];
	argv[k] = NULL;
	struct tu_proc p = run_(argv);
	expect_failure(&p, what);
	if (says)
		cr_assert(tu_contains_any(p.err, says), "%s: stderr does not say %s:\n%s", what, says, p.err);
	cr_assert_eq(p.out_len, 0, "%s: wrote %zu bytes on stdout", what, p.out_len);
	tu_proc_free(&p);
}
#define USAGE(says, ...) expect_usage_error((const char *[]){__VA_ARGS__, NULL}, says, #__VA_ARGS__)

Test(cli, pack_usage_errors)
{
	char *in = path("in.bin"), *out = path("out.fpi");
	uint8_t *d = make_input(in, 100000, 2);
	USAGE("bogus", "pack", in, out, "--bogus");
	USAGE("--chunk", "pack", in, out, "--chunk", "100K");
	USAGE("--chunk", "pack", in, out, "--chunk", "12Q");
	USAGE("--chunk", "pack", in, out, "--chunk", "8M");
	USAGE("--chunk", "pack", in, out, "--chunk", "32K");
	USAGE("--chunk", "pack", in, out, "--chunk", "");
	USAGE("--codec", "pack", in, out, "--codec", "lz4");
	USAGE("--codec", "pack", in, out, "--codec", "zstd:23");
	USAGE("--codec", "pack", in, out, "--codec", "zstd:x");
	USAGE("--quant", "pack", in, out, "--quant", "q3");
	USAGE("--quant", "pack", in, out, "--quant", "q8_0"); /* not a checkpoint */
	USAGE(NULL, "pack", in);
	USAGE(NULL, "pack", in, out, "extra");
	USAGE(NULL, "pack");
	cr_assert(!tu_file_exists(out), "a usage error created OUT");
	const char *const names[] = {"in.bin", NULL};
	expect_no_extras(names, "pack usage errors");
	free(d);
	free(in);
	free(out);
}

Test(cli, cat_usage_errors)
{
	char *img = pack_small("raw", 4 * 65536, NULL);
	USAGE("--budget", "cat", img, "--budget", "12Q");
	USAGE("--budget", "cat", img, "--budget", "150%");
	USAGE("--budget", "cat", img, "--budget", "-5M");
	USAGE("--budget", "cat", img, "--budget", "");
	USAGE("--budget", "cat", img, "--budget", "abc");
	USAGE("--budget", "cat", img, "--budget", "1e30");
	USAGE("--loaders", "cat", img, "--loaders", "0");
	USAGE("--loaders", "cat", img, "--loaders", "abc");
	USAGE("loaders", "cat", img, "--loaders", "1000");
	USAGE("policy", "cat", img, "--policy", "nosuch");
	USAGE("bogus", "cat", img, "--bogus");
	USAGE(NULL, "cat");
	USAGE(NULL, "cat", img, img);
	free(img);
}

Test(cli, cat_budget_below_minimum)
{
	require_uffd();
	char *img = pack_small("raw", 4 * 65536, NULL);
	/* Two chunks is the minimum working set: 64K and 127K are below it. */
	USAGE("budget", "cat", img, "--budget", "64K");
	USAGE("budget", "cat", img, "--budget", "127K");
	USAGE("budget", "cat", img, "--budget", "1");
	struct tu_proc p = RUN("cat", img, "--budget", "64K");
	cr_assert(tu_contains_any(p.err, "minimum"), "no mention of the minimum working set: %s", p.err);
	tu_proc_free(&p);
	free(img);
}

Test(cli, cat_budget_zero_is_refused)
{
	/* A budget of 0 bytes or 0% is below the minimum working set like any
	 * other; it must not silently mean "the whole image". */
	require_uffd();
	char *img = pack_small("raw", 4 * 65536, NULL);
	USAGE("budget", "cat", img, "--budget", "0%");
	USAGE("budget", "cat", img, "--budget", "0");
	free(img);
}

Test(cli, inspect_and_command_usage_errors)
{
	char *img = pack_small("raw", 65536, NULL);
	USAGE("bogus", "inspect", img, "--bogus");
	USAGE(NULL, "inspect");
	USAGE(NULL, "inspect", img, img);
	USAGE("nosuchcmd", "nosuchcmd");
	struct tu_proc p = RUN("--bogus-global");
	expect_failure(&p, "flexpage --bogus-global");
	tu_proc_free(&p);
	const char *argv[] = {FLEXPAGE_TOOL, NULL};
	p = run_(argv);
	expect_failure(&p, "flexpage without a command");
	cr_assert(strstr(p.err, "pack") && strstr(p.err, "usage"), "%s", p.err);
	tu_proc_free(&p);
	free(img);
}

static void expect_help(const char *cmd, const char *const *mentions)
{
	struct tu_proc p = cmd ? RUN(cmd, "--help") : RUN("--help");
	expect_exit(&p, 0, cmd ? cmd : "--help");
	for (const char *const *m = mentions; *m; m++)
		cr_assert(strstr(p.out, *m), "'%s --help' does not mention %s:\n%s", cmd ? cmd : "", *m,
		          p.out);
	tu_proc_free(&p);
	if (cmd) {
		p = RUN(cmd, "-h");
		expect_exit(&p, 0, "-h");
		cr_assert_gt(p.out_len, 0);
		tu_proc_free(&p);
	}
}

Test(cli, help_for_each_command)
{
	const char *const pack[] = {"usage", "--chunk", "--codec", "--quant", "--opaque", "--force",
	                            "--quiet", NULL};
	const char *const inspect[] = {"usage", "--quick", "--chunks", NULL};
	const char *const cat[] = {"usage", "--budget", "--loaders", "--policy", "--no-huge", "--layout",
	                           "--stats", NULL};
	const char *const top[] = {"pack", "inspect", "cat", NULL};
	expect_help("pack", pack);
	expect_help("inspect", inspect);
	expect_help("cat", cat);
	expect_help(NULL, top);
	struct tu_proc p = RUN("--version");
	expect_exit(&p, 0, "--version");
	cr_assert(strstr(p.out, "flexpage"), "%s", p.out);
	tu_proc_free(&p);
}

/* The version macros, the library and --version all say CMake's project
 * version (FLEXPAGE_PROJECT_VERSION, set by tests/pager.cmake). */
Test(cli, version_is_the_project_version)
{
	unsigned major, minor, patch;
	cr_assert_eq(sscanf(FLEXPAGE_PROJECT_VERSION, "%u.%u.%u", &major, &minor, &patch), 3,
	             "project version '%s'", FLEXPAGE_PROJECT_VERSION);
	cr_assert_str_eq(FLEXPAGE_VERSION_STRING, FLEXPAGE_PROJECT_VERSION);
	cr_assert_eq(FLEXPAGE_VERSION_MAJOR, major);
	cr_assert_eq(FLEXPAGE_VERSION_MINOR, minor);
	cr_assert_eq(FLEXPAGE_VERSION_PATCH, patch);
	cr_assert_eq(fp_version_number(), major * 10000 + minor * 100 + patch);
	cr_assert_str_eq(fp_version_string(), FLEXPAGE_PROJECT_VERSION);

	struct tu_proc p = RUN("--version");
	expect_exit(&p, 0, "--version");
	char want[64];
	snprintf(want, sizeof want, "flexpage %s (image format %u)\n", FLEXPAGE_PROJECT_VERSION,
	         FP_IMAGE_VERSION);
	cr_assert_str_eq(p.out, want);
	tu_proc_free(&p);
}

/* ------------------------------------------------------------------ */
/* The shared llama2.c checkpoint                                       */

static char *shared_model(void)
{
	char *m = tu_join(FLEXPAGE_SHARED_MODELS, "stories260K.bin");
	if (access(m, R_OK)) {
		free(m);
		cr_skip_test("%s/stories260K.bin is missing: the checkpoint tests need it",
		             FLEXPAGE_SHARED_MODELS);
	}
	return m;
}

Test(cli, cat_opaque_checkpoint_equals_file)
{
	require_uffd();
	char *model = shared_model();
	size_t n;
	uint8_t *want = tu_read_file(model, &n);
	cr_assert(want && n > 28);
	char *out = path("stories.fpi");
	static const char *const variants[][5] = {
		{"--chunk", "64K", "--codec", "raw", "25%"},
		{"--chunk", "64K", "--codec", "zstd", "200K"},
		{"--chunk", "256K", "--codec", "zstd:19", "100%"},
	};
	for (size_t k = 0; k < 3; k++) {
		struct tu_proc p = RUN("pack", model, out, "--opaque", "--force", "-q", variants[k][0],
		                       variants[k][1], variants[k][2], variants[k][3]);
		expect_exit(&p, 0, "pack --opaque");
		tu_proc_free(&p);
		p = RUN("cat", out);
		expect_exit(&p, 0, "cat");
		expect_output(&p, want, n, "cat of the opaque checkpoint");
		tu_proc_free(&p);
		p = RUN("cat", out, "--budget", variants[k][4]);
		expect_exit(&p, 0, "cat --budget");
		expect_output(&p, want, n, "cat --budget of the opaque checkpoint");
		tu_proc_free(&p);
		p = RUN("inspect", out);
		expect_exit(&p, 0, "inspect");
		cr_assert(strstr(p.out, "arch=opaque") && strstr(p.out, "verdict: valid"), "%s", p.out);
		tu_proc_free(&p);
	}
	free(out);
	free(want);
	free(model);
}

Test(cli, pack_checkpoint_as_model)
{
	char *model = shared_model();
	char *out = path("stories.fpi");
	struct tu_proc p = RUN("pack", model, out, "-q", "--chunk", "64K");
	expect_exit(&p, 0, "pack of the checkpoint");
	tu_proc_free(&p);
	p = RUN("inspect", out);
	expect_exit(&p, 0, "inspect of the packed checkpoint");
	cr_assert(strstr(p.out, "verdict: valid"), "%s", p.out);
	cr_assert(strstr(p.out, "token_embd") && strstr(p.out, "blk.0.") && strstr(p.out, "blk.4."),
	          "the tensor table lacks GGUF-named tensors:\n%s", p.out);
	cr_assert(!strstr(p.out, "blk.5."), "more layers than the checkpoint's 5:\n%s", p.out);
	cr_assert(strstr(p.out, "f32"), "%s", p.out);
	tu_proc_free(&p);
	/* hidden_dim 172 is not a multiple of 32: q8_0 must either work or
	 * refuse clearly, leaving OUT as it was. */
	size_t n0;
	uint8_t *before = tu_read_file(out, &n0);
	p = RUN("pack", model, out, "-q", "--force", "--quant", "q8_0", "--codec", "zstd");
	cr_assert(p.exited, "pack --quant q8_0 killed by signal %d", p.sig);
	if (p.code) {
		expect_says(&p, "multiple of 32|32", "pack --quant q8_0 of a 172-wide checkpoint");
		expect_file(out, before, n0, "a refused pack --quant q8_0");
	} else {
		struct tu_proc q = RUN("inspect", out);
		expect_exit(&q, 0, "inspect of the q8_0 checkpoint");
		cr_assert(strstr(q.out, "q8_0") && strstr(q.out, "verdict: valid"), "%s", q.out);
		tu_proc_free(&q);
	}
	tu_proc_free(&p);
	const char *const names[] = {"stories.fpi", NULL};
	expect_no_extras(names, "pack of the checkpoint");
	free(before);
	free(out);
	free(model);
}

/* llama2.c checkpoint geometry, from its 7-int header. */
struct ckpt {
	int dim, hidden, layers, heads, kv_heads, vocab, seq;
	uint64_t kv_dim;
	const float *w; /* the floats after the header */
	size_t nfloats;
};

/* The checkpoint slice that a GGUF-named tensor must hold; NULL if the
 * name is not one the checkpoint defines. */
static const float *ckpt_slice(const struct ckpt *c, const char *name, uint64_t *count)
{
	uint64_t d = (uint64_t)c->dim, h = (uint64_t)c->hidden, L = (uint64_t)c->layers;
	uint64_t V = (uint64_t)(c->vocab < 0 ? -c->vocab : c->vocab), kv = c->kv_dim;
	uint64_t hs = d / (uint64_t)c->heads;
	struct { const char *suffix; uint64_t per_layer; } order[] = {
		{"attn_norm", d}, {"attn_q", d * d}, {"attn_k", kv * d}, {"attn_v", kv * d},
		{"attn_output", d * d}, {"ffn_norm", d}, {"ffn_gate", h * d}, {"ffn_down", d * h},
		{"ffn_up", h * d},
	};
	uint64_t at = V * d; /* after token_embd */
	if (!strcmp(name, "token_embd.weight")) {
		*count = V * d;
		return c->w;
	}
	int l;
	char suffix[64];
	if (sscanf(name, "blk.%d.%63[a-z_].weight", &l, suffix) == 2 && l >= 0 && (uint64_t)l < L) {
		for (size_t k = 0; k < sizeof order / sizeof order[0]; k++) {
			if (!strcmp(order[k].suffix, suffix)) {
				*count = order[k].per_layer;
				return c->w + at + (uint64_t)l * order[k].per_layer;
			}
			at += L * order[k].per_layer;
		}
		return NULL;
	}
	for (size_t k = 0; k < sizeof order / sizeof order[0]; k++)
		at += L * order[k].per_layer;
	if (!strcmp(name, "output_norm.weight")) {
		*count = d;
		return c->w + at;
	}
	at += d + 2 * (uint64_t)c->seq * (hs / 2);
	if (!strcmp(name, "output.weight") && c->vocab < 0) {
		*count = V * d;
		return c->w + at;
	}
	return NULL;
}

Test(cli, cat_checkpoint_tensors_match_checkpoint)
{
	/* Packed as a model (f32), every tensor read through the pager holds
	 * exactly the checkpoint's floats for it. */
	require_uffd();
	char *model = shared_model();
	size_t n;
	uint8_t *raw = tu_read_file(model, &n);
	cr_assert(raw && n > 28);
	int32_t hdr[7];
	memcpy(hdr, raw, sizeof hdr);
	struct ckpt c = {hdr[0], hdr[1], hdr[2], hdr[3], hdr[4], hdr[5], hdr[6], 0,
	                 (const float *)(raw + 28), (n - 28) / 4};
	c.kv_dim = (uint64_t)c.dim * (uint64_t)c.kv_heads / (uint64_t)c.heads;
	char *out = path("stories.fpi");
	struct tu_proc p = RUN("pack", model, out, "-q", "--chunk", "64K", "--codec", "zstd");
	expect_exit(&p, 0, "pack of the checkpoint");
	tu_proc_free(&p);
	fp_image *img = fp_image_open(out);
	cr_assert(img, "%s", fp_last_error());
	p = RUN("cat", out, "--budget", "30%");
	expect_exit(&p, 0, "cat of the model image");
	const struct fp_image_info *info = fp_image_info(img);
	uint64_t pos = 0, matched = 0;
	const char *required[] = {"token_embd.weight", "blk.0.attn_q.weight", "blk.4.ffn_down.weight",
	                          "output_norm.weight", NULL};
	for (const char **r = required; *r; r++)
		cr_assert(fp_image_find(img, *r), "no tensor %s", *r);
	for (uint32_t i = 0; i < info->n_tensors; i++) {
		const struct fp_tensor_desc *t = fp_image_tensor(img, i);
		cr_assert_leq(pos + t->size, p.out_len, "cat's output ends inside %s", t->name);
		uint64_t count;
		const float *want = ckpt_slice(&c, t->name, &count);
		if (want) {
			cr_assert_eq(t->type, 0u, "%s is not f32", t->name);
			cr_assert_eq(t->size, count * 4, "%s: %llu bytes, the checkpoint has %llu floats",
			             t->name, (unsigned long long)t->size, (unsigned long long)count);
			cr_assert_leq((const uint8_t *)(want + count), raw + n, "test: slice past the file");
			cr_assert_arr_eq(p.out + pos, want, t->size, "%s differs from the checkpoint", t->name);
			matched++;
		}
		pos += t->size;
	}
	cr_assert_eq(pos, p.out_len, "cat wrote %zu bytes, the tensors hold %llu", p.out_len,
	             (unsigned long long)pos);
	cr_assert_geq(matched, 2 + 9 * (uint64_t)c.layers, "only %llu tensors matched checkpoint names",
	              (unsigned long long)matched);
	tu_proc_free(&p);
	fp_image_close(img);
	free(out);
	free(raw);
	free(model);
}

Test(cli, pack_synthetic_checkpoint_q8_0)
{
	/* A small checkpoint whose rows are multiples of 32: --quant q8_0
	 * makes the matrices q8_0 and keeps the norms f32. */
	const int32_t hdr[7] = {64, 128, 2, 4, 4, 96, 16};
	uint64_t d = 64, h = 128, L = 2, V = 96, S = 16, hs = 16;
	uint64_t floats = V * d + L * (d + 4 * d * d + d + 3 * h * d) + d + 2 * S * (hs / 2);
	size_t n = 28 + floats * 4;
	uint8_t *b = malloc(n);
	memcpy(b, hdr, 28);
	float *f = (float *)(b + 28);
	uint64_t rng = 5;
	for (uint64_t k = 0; k < floats; k++)
		f[k] = (float)((int64_t)(tu_rand(&rng) % 2001) - 1000) / 1000.0f;
	char *in = path("tiny.bin"), *out = path("tiny.fpi");
	cr_assert(!tu_write_file(in, b, n));
	struct tu_proc p = RUN("pack", in, out, "-q", "--quant", "q8_0", "--chunk", "64K");
	expect_exit(&p, 0, "pack --quant q8_0");
	tu_proc_free(&p);
	fp_image *img = fp_image_open(out);
	cr_assert(img, "%s", fp_last_error());
	const struct fp_tensor_desc *q = fp_image_find(img, "blk.1.attn_q.weight");
	const struct fp_tensor_desc *nrm = fp_image_find(img, "blk.1.attn_norm.weight");
	cr_assert(q && nrm, "tensors missing");
	cr_assert_eq(q->type, 8u, "attn_q is not q8_0");
	cr_assert_eq(q->size, d * d / 32 * 34);
	cr_assert_eq(nrm->type, 0u, "attn_norm is not f32");
	fp_image_close(img);
	p = RUN("inspect", out);
	expect_exit(&p, 0, "inspect");
	cr_assert(strstr(p.out, "verdict: valid"), "%s", p.out);
	tu_proc_free(&p);
	free(b);
	free(in);
	free(out);
}
