/* The pager's failures: retries, poison, and the SIGBUS reporter. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <flexpage/flexpage.h>

#include "region_util.h"

/* ---- failures: retries, poison and the reporter ---- */

struct hook_plan {
	int fail_chunk;          /* -1: every chunk */
	int mode;                /* 0 EIO, 1 short, 2 flip a byte, 3 sleep */
	int times;               /* failures per chunk before success; 1000: always */
	atomic_int count[4096];
};

static void hook(void *ctx, uint32_t chunk, void *buf, size_t len, long *result)
{
	struct hook_plan *p = ctx;
	if (p->fail_chunk >= 0 && (uint32_t)p->fail_chunk != chunk)
		return;
	if (atomic_fetch_add(&p->count[chunk % 4096], 1) >= p->times)
		return;
	switch (p->mode) {
	case 0: *result = -EIO; break;
	case 1: *result = *result / 2; break;
	case 2: ((uint8_t *)buf)[len / 2] ^= 0x40; break;
	case 3: usleep(20000); break;
	}
}

/* A raw image of 256 KiB chunks whose chunk 3 fails its checksum. */
static void write_corrupt(const char *path, const uint8_t *ref, size_t len)
{
	ru_write_image(path, ref, len, 256u << 10, FP_CODEC_RAW);
	ru_flip_byte(path, 4096 + 3 * (256u << 10) + 1000); /* chunk 3's payload */
}

static void expect_sigbus(int status, const char *err, const char *reason)
{
	cr_expect(WIFSIGNALED(status) && WTERMSIG(status) == SIGBUS,
	          "expected death by SIGBUS, got status 0x%x; stderr: %s", status, err);
	cr_expect(strstr(err, "poisoned data") != NULL, "no reporter message: %s", err);
	cr_expect(strstr(err, "tensor 'data'") != NULL, "tensor not named: %s", err);
	cr_expect(strstr(err, "chunk 3") != NULL, "chunk not named: %s", err);
	cr_expect(strstr(err, reason) != NULL, "reason '%s' missing: %s", reason, err);
}

Test(failure, corrupt_chunk_on_disk_ends_with_sigbus_and_report, .timeout = 120)
{
	const size_t len = 4u << 20;
	uint8_t *ref = ru_data(len, 4);
	char path[512], err[4096];
	snprintf(path, sizeof path, "%s/corrupt.img", ru_tmpdir());
	write_corrupt(path, ref, len);
	struct fp_options o = ru_options(0);
	int status = ru_read_in_child(path, &o, ref, len, NULL, err, sizeof err);
	expect_sigbus(status, err, "checksum mismatch");
	unlink(path);
	free(ref);
}

Test(failure, io_errors_short_reads_and_bad_frames_poison_after_retries, .timeout = 120)
{
	const size_t len = 4u << 20;
	uint8_t *ref = ru_data(len, 5);
	char path[512], err[4096];
	snprintf(path, sizeof path, "%s/fail.img", ru_tmpdir());
	ru_write_image(path, ref, len, 256u << 10, FP_CODEC_ZSTD);
	/* A flipped byte fails the frame or, in a chunk stored raw, the checksum. */
	const char *reasons[] = {"Input/output error", "short read", "chunk 3: "};
	for (int mode = 0; mode < 3; mode++) {
		struct hook_plan *plan = calloc(1, sizeof *plan);
		plan->fail_chunk = 3;
		plan->mode = mode;
		plan->times = 1000;
		struct fp_options o = ru_options(0);
		struct fp_hooks hooks = {.read = hook, .read_ctx = plan};
		o.hooks = &hooks;
		int status = ru_read_in_child(path, &o, ref, len, NULL, err, sizeof err);
		expect_sigbus(status, err, reasons[mode]);
		free(plan);
	}
	unlink(path);
	free(ref);
}

Test(failure, transient_errors_are_retried_and_slow_reads_complete, .timeout = 120)
{
	const size_t len = 4u << 20;
	uint8_t *ref = ru_data(len, 6);
	char path[512];
	snprintf(path, sizeof path, "%s/retry.img", ru_tmpdir());
	ru_write_image(path, ref, len, 256u << 10, FP_CODEC_RAW);
	for (int mode = 0; mode < 4; mode++) {
		struct hook_plan *plan = calloc(1, sizeof *plan);
		plan->fail_chunk = -1;
		plan->mode = mode;
		plan->times = mode == 3 ? 1 : 2; /* two failures, then the last retry works */
		struct fp_options o = ru_options(1u << 20);
		struct fp_hooks hooks = {.read = hook, .read_ctx = plan};
		o.hooks = &hooks;
		fp_region *r = fp_open(path, &o);
		cr_assert_not_null(r, "fp_open: %s", fp_last_error());
		cr_expect_eq(memcmp(fp_tensor(r, "data", NULL), ref, len), 0, "mode %d: bytes differ", mode);
		struct fp_stats s;
		fp_get_stats(r, &s);
		cr_expect_eq(s.poisoned, 0, "mode %d poisoned %llu", mode, (unsigned long long)s.poisoned);
		if (mode < 3)
			cr_expect_geq(s.retries, 2 * 16, "mode %d: %llu retries", mode,
			              (unsigned long long)s.retries);
		fp_close(r);
		free(plan);
	}
	unlink(path);
	free(ref);
}

/* The reporter hands the signal on to the handler the application had,
 * after its report. */
Test(failure, reporter_chains_to_the_applications_handler, .timeout = 120)
{
	const size_t len = 4u << 20;
	uint8_t *ref = ru_data(len, 4);
	char path[512], err[4096];
	snprintf(path, sizeof path, "%s/chain.img", ru_tmpdir());
	write_corrupt(path, ref, len);
	struct fp_options o = ru_options(0);
	const struct ru_child_setup cs = {.app_handler = 1};
	int status = ru_read_in_child(path, &o, ref, len, &cs, err, sizeof err);
	cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 42,
	          "the application's handler did not end the child: status 0x%x; stderr: %s", status,
	          err);
	cr_expect(strstr(err, "poisoned data") != NULL, "no reporter message: %s", err);
	cr_expect(strstr(err, "chunk 3") != NULL, "chunk not named: %s", err);
	const char *report = strstr(err, "poisoned data"), *app = strstr(err, "own SIGBUS handler");
	cr_expect(report && app && report < app, "the report must come first: %s", err);
	unlink(path);
	free(ref);
}

/* The reporter knows every open region, however many: here the failing
 * one is opened after 300 others. */
Test(failure, reporter_knows_every_region_however_many, .timeout = 300)
{
	const size_t len = 4u << 20;
	uint8_t *ref = ru_data(len, 4);
	char path[512], small[512], err[8192];
	snprintf(path, sizeof path, "%s/many.img", ru_tmpdir());
	snprintf(small, sizeof small, "%s/small.img", ru_tmpdir());
	write_corrupt(path, ref, len);
	ru_write_image(small, ref, 64u << 10, 64u << 10, FP_CODEC_RAW);
	struct fp_options o = ru_options(0);
	const struct ru_child_setup cs = {.extra_regions = 300, .extra_path = small};
	int status = ru_read_in_child(path, &o, ref, len, &cs, err, sizeof err);
	expect_sigbus(status, err, "checksum mismatch");
	unlink(small);
	unlink(path);
	free(ref);
}

/* fp_describe_poison gives the reporter's text for a poisoned chunk, and
 * -ENOENT elsewhere.  The chunk is preserved, so it is loaded (and fails)
 * at open, with no access to raise a signal. */
Test(failure, describe_poison_names_the_chunk_and_nothing_else, .timeout = 120)
{
	const uint32_t chunk = 256u << 10;
	const size_t len = 4 * chunk;
	uint8_t *ref = ru_data(len, 7);
	char path[512];
	snprintf(path, sizeof path, "%s/describe.img", ru_tmpdir());
	ru_write_image(path, ref, len, chunk, FP_CODEC_RAW);
	struct hook_plan *plan = calloc(1, sizeof *plan);
	plan->fail_chunk = 2;
	plan->times = 1000; /* EIO, always */
	uint8_t preserve[4] = {0, 0, 1, 0};
	struct fp_options o = ru_options(0);
	o.readahead = 0;
	o.preserve = preserve;
	struct fp_hooks hooks = {.read = hook, .read_ctx = plan};
	o.hooks = &hooks;
	fp_region *r = fp_open(path, &o);
	cr_assert_not_null(r, "%s", fp_last_error());
	fp_quiesce(r);
	struct fp_stats s;
	fp_get_stats(r, &s);
	cr_expect_eq(s.poisoned, 1);
	const uint8_t *base = fp_region_base(r);
	char buf[1024], want[1024];
	const uint8_t *at = base + 2 * chunk + 100;
	cr_assert_eq(fp_describe_poison(at, buf, sizeof buf), 0);
	snprintf(want, sizeof want, "flexpage: access to poisoned data at %p: image %s, tensor 'data', "
	         "chunk 2 (logical offset %u): ", (const void *)at, path, 2 * chunk + 100);
	cr_expect_eq(strncmp(buf, want, strlen(want)), 0, "\n got: %s\nwant: %s...", buf, want);
	cr_expect(strstr(buf, "Input/output error") && buf[strlen(buf) - 1] == '\n', "%s", buf);
	char cut[16];
	cr_assert_eq(fp_describe_poison(at, cut, sizeof cut), 0);
	cr_expect_eq(strlen(cut), sizeof cut - 1);
	cr_expect_eq(strncmp(cut, want, sizeof cut - 1), 0);
	cr_expect_eq(fp_describe_poison(base + 5000, buf, sizeof buf), -ENOENT,
	             "a chunk that did not fail is not described");
	cr_expect_eq(fp_describe_poison(buf, buf, sizeof buf), -ENOENT, "not in a region");
	cr_expect_eq(memcmp(base, ref, 2 * chunk), 0, "the other chunks are served");
	fp_close(r);
	unlink(path);
	free(plan);
	free(ref);
}
