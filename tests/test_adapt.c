/* Speed-adaptive reading: an image holding both forms of a chunk (pack
 * --codec both) decodes to the same bytes in either form; a region reads,
 * per chunk, the form a brute force over all assignments finds quickest
 * at the rates it is given; either form pages the plain bytes at budgets
 * of 100, 50 and 25 %; the open-time probe measures rates an independent
 * timing of the same kind of reads agrees with; older images still open,
 * and a broken alternate-form table is refused by name. */
#include <criterion/criterion.h>
#include <criterion/logging.h>

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zstd.h>

#include <flexpage/flexpage_experimental.h>

#include "rt_util.h"
#include "testutil.h"

#define STORIES FLEXPAGE_SHARED_MODELS "/stories260K.bin"
#define TEXT FLEXPAGE_SHARED_MODELS "/../data/tinystories_val.txt"

static char *dir;
static const char *raw_img, *both_img;

static void pack(const char *out, const char *codec)
{
	int rc = rt_tool("pack", STORIES, out, "--compressible", "2", "--quant", "q8_0", "--calib",
	                 TEXT, "--calib-skip", "400K", "--calib-tokens", "600", "--codec", codec,
	                 "--chunk", "64K", "-f", NULL);
	cr_assert_eq(rc, 0, "pack %s: %s", out, rt_err);
}

static void setup(void)
{
	dir = rt_tmpdir();
	cr_assert(dir, "no temporary directory");
	if (access(STORIES, R_OK) || access(TEXT, R_OK))
		cr_skip_test("%s or %s is missing: these tests need the real model", STORIES, TEXT);
	raw_img = strdup(rt_path(dir, "raw.img"));
	both_img = strdup(rt_path(dir, "both.img"));
	pack(raw_img, "raw");
	pack(both_img, "both");
}

static void teardown(void)
{
	rt_rmtree(dir);
	free(dir);
	free((void *)raw_img);
	free((void *)both_img);
}

TestSuite(adapt, .init = setup, .fini = teardown, .timeout = 600);

/* What the loaders read: per chunk, the bytes of the payload read last. */
struct reads {
	_Atomic uint32_t len[64];
};

static void record(void *ctx, uint32_t chunk, void *buf, size_t len, long *result)
{
	(void)buf;
	(void)result;
	struct reads *r = ctx;
	if (chunk < 64)
		atomic_store(&r->len[chunk], (uint32_t)len);
}

/* Touch every page of the region, so every chunk is read. */
static void touch_all(const fp_region *r)
{
	const volatile uint8_t *p = fp_region_base(r);
	uint64_t sum = 0;
	for (uint64_t o = 0; o < fp_region_size(r); o += 4096)
		sum += p[o];
	(void)sum;
}

Test(adapt, both_forms_decode_to_their_checksum)
{
	size_t rlen;
	uint8_t *rb = rt_read_file(raw_img, &rlen);
	cr_assert(rb);
	fp_image *img = fp_image_open(both_img);
	cr_assert(img, "%s", fp_last_error());
	const struct fp_image_info *info = fp_image_info(img);
	cr_assert_gt(info->n_alt_forms, 0, "pack --codec both stored no chunk in two forms");
	uint8_t *buf = aligned_alloc(4096, info->chunk_size);
	uint32_t twice = 0;
	for (uint32_t i = 0; i < info->n_chunks; i++)
		for (uint32_t f = 0; f < 2; f++) {
			const struct fp_chunk_desc *c = fp_image_chunk_form(img, i, f);
			if (!c)
				continue;
			twice += f;
			cr_assert_eq(fp_image_read_chunk_form(img, i, f, buf), 0, "%s", fp_last_error());
			cr_assert_eq(tu_crc32c(0, buf, c->logical_len), c->checksum, "chunk %u form %u", i, f);
			cr_assert_eq(memcmp(buf, rb + 4096 + (size_t)i * info->chunk_size, c->logical_len), 0,
			             "chunk %u form %u differs from the raw image's bytes", i, f);
			if (f) /* the alternate is the raw form; the entry a smaller compressed one */
				cr_assert(c->codec == FP_CODEC_RAW &&
				          fp_image_chunk(img, i)->stored_len + 4096 <= c->stored_len,
				          "chunk %u: forms %u (%u bytes) and %u (%u bytes)", i,
				          fp_image_chunk(img, i)->codec, fp_image_chunk(img, i)->stored_len,
				          c->codec, c->stored_len);
		}
	cr_assert_eq(twice, info->n_alt_forms);
	cr_assert_eq(fp_image_read_chunk_form(img, 0, 2, buf), -EINVAL);
	/* the header: version 4, n_alts as the reader counted them */
	tu_file f;
	cr_assert_eq(tu_load(both_img, &f), 0);
	cr_assert_eq(tu_get32(&f, TU_H_VERSION), 4u);
	cr_assert_eq(tu_get32(&f, TU_H_N_ALTS), info->n_alt_forms);
	tu_free(&f);
	free(buf);
	fp_image_close(img);
	free(rb);
}

/* A token's streaming time when every chunk is read once in the forms
 * mask names (bit i set = chunk i's alternate): each chunk is waited for
 * until it is read at read bytes/s and decoded at decode bytes/s a core on
 * cpus cores, whichever ends later; INFINITY when a chunk named has no
 * alternate. */
static double token_time(const fp_image *img, uint32_t mask, double read, double decode,
                         double cpus)
{
	double t = 0;
	for (uint32_t i = 0; i < fp_image_info(img)->n_chunks; i++) {
		const struct fp_chunk_desc *c = fp_image_chunk_form(img, i, (mask >> i) & 1);
		if (!c)
			return INFINITY;
		t += fmax(c->stored_len / read, c->codec ? c->logical_len / decode / cpus : 0);
	}
	return t;
}

/* The least token time over every assignment of forms to chunks (n <= 16). */
static double brute_force(const fp_image *img, double read, double decode, double cpus)
{
	const uint32_t n = fp_image_info(img)->n_chunks;
	cr_assert_leq(n, 16, "a brute force over 2^%u assignments is too many", n);
	double best = INFINITY;
	for (uint32_t mask = 0; mask < (1u << n); mask++)
		best = fmin(best, token_time(img, mask, read, decode, cpus));
	return best;
}

Test(adapt, the_form_read_is_what_a_brute_force_picks)
{
	fp_image *img = fp_image_open(both_img);
	cr_assert(img, "%s", fp_last_error());
	const uint32_t n = fp_image_info(img)->n_chunks;
	/* slow disk, fast disk, fast decode, slow decode, and either side of
	 * the break-even (the decode rate) */
	const double rates[][2] = {{100e6, 1.5e9}, {5e9, 1.5e9}, {400e6, 20e9}, {400e6, 100e6},
	                           {1e9, 1.2e9}, {0.5e9, 0.8e9}, {2e9, 1.2e9}};
	int some_alt = 0, some_entry = 0;
	for (size_t k = 0; k < sizeof rates / sizeof *rates; k++) {
		/* one decoder: decoding gets one core whatever the machine */
		const double best = brute_force(img, rates[k][0], rates[k][1], 1);
		struct reads seen = {0};
		const struct fp_hooks hooks = {.read = record, .read_ctx = &seen};
		struct fp_options o = {.retries = -1, .readahead = -1, .hooks = &hooks, .decoders = 1,
		                       .read_rate = rates[k][0], .decode_rate = rates[k][1]};
		fp_region *r = fp_open(both_img, &o);
		cr_assert(r, "%s", fp_last_error());
		touch_all(r);
		fp_quiesce(r);
		struct fp_stats st;
		fp_get_stats(r, &st);
		cr_assert_eq(st.rates_measured, 0u, "rates given: nothing to measure");
		cr_assert_eq(st.read_rate, rates[k][0]);
		/* the forms read, seen through the I/O seam (the loaders' reads) */
		uint32_t mask = 0, alt = 0;
		for (uint32_t i = 0; i < n; i++) {
			const uint32_t len = atomic_load(&seen.len[i]);
			const struct fp_chunk_desc *a = fp_image_chunk_form(img, i, 1);
			if (a && len == a->stored_len) {
				mask |= 1u << i;
				alt++;
			} else {
				cr_assert_eq(len, fp_image_chunk_form(img, i, 0)->stored_len,
				             "rates %g/%g: chunk %u read %u bytes, neither form's", rates[k][0],
				             rates[k][1], i, len);
			}
		}
		const double got = token_time(img, mask, rates[k][0], rates[k][1], 1);
		cr_assert_leq(got, best * (1 + 1e-9),
		              "rates %g/%g: the forms read (mask 0x%x) stream in %.6g s, the brute "
		              "force's in %.6g s", rates[k][0], rates[k][1], mask, got, best);
		cr_assert_eq(st.alt_forms_chosen, alt);
		uint32_t with_alt = 0;
		for (uint32_t i = 0; i < n; i++)
			with_alt += fp_image_chunk_form(img, i, 1) != NULL;
		some_alt |= alt > 0;
		some_entry |= alt < with_alt;
		fp_close(r);
	}
	cr_assert(some_alt && some_entry, "the rates never made the forms' choice differ");
	fp_image_close(img);
}

/* Force one form by the rates: compressed (a slow disk, a free decode) or
 * raw (a free read, a slow decode); either pages the plain bytes. */
Test(adapt, either_form_pages_the_plain_bytes)
{
	size_t rlen;
	uint8_t *rb = rt_read_file(raw_img, &rlen);
	fp_image *img = fp_image_open(both_img);
	cr_assert(rb && img);
	const struct fp_image_info *info = fp_image_info(img);
	uint32_t only_compressed = 0;
	for (uint32_t i = 0; i < info->n_chunks; i++)
		only_compressed += !fp_image_chunk_form(img, i, 1) && fp_image_chunk(img, i)->codec;
	const double forced[][2] = {{1e6, 1e12}, {1e12, 1e6}};
	for (int form = 0; form < 2; form++) {
		const uint64_t budgets[] = {0, info->logical_size / 2, info->logical_size / 4};
		for (int b = 0; b < 3; b++) {
			struct fp_options o = {.retries = -1, .readahead = -1, .budget = budgets[b],
			                       .read_rate = forced[form][0], .decode_rate = forced[form][1],
			                       .flags = FP_OPEN_NO_PRESERVE};
			if (o.budget && o.budget < 2ull * info->chunk_size)
				o.budget = 2ull * info->chunk_size;
			fp_region *r = fp_open(both_img, &o);
			cr_assert(r, "%s", fp_last_error());
			const uint8_t *p = fp_region_base(r);
			for (int pass = 0; pass < 2; pass++)
				for (uint32_t i = 0; i < info->n_chunks; i++) {
					const struct fp_chunk_desc *c = fp_image_chunk(img, i);
					cr_assert_eq(memcmp(p + (size_t)i * info->chunk_size,
					                    rb + 4096 + (size_t)i * info->chunk_size, c->logical_len),
					             0, "form %s, budget %llu: chunk %u differs",
					             form ? "raw" : "compressed", (unsigned long long)o.budget, i);
				}
			struct fp_stats st;
			fp_get_stats(r, &st);
			cr_assert_eq(st.compressed_chunks,
			             form ? only_compressed : only_compressed + info->n_alt_forms,
			             "form %d: %u chunks read compressed", form, st.compressed_chunks);
			cr_assert_eq(st.poisoned, 0);
			fp_close(r);
		}
	}
	fp_image_close(img);
	free(rb);
}

static uint64_t ns_now(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* The probe against this test's own timing: every payload of the image
 * read with one O_DIRECT pread each, every compressed one decoded by zstd
 * here, on the thread's CPU clock.  Loose bounds: both are short and the
 * machine may be loaded or its disk slow. */
Test(adapt, the_probe_measures_plausible_rates)
{
	fp_image *img = fp_image_open(both_img);
	cr_assert(img, "%s", fp_last_error());
	struct fp_rates m;
	cr_assert_eq(fp_image_probe_rates(img, FP_RATE_READ | FP_RATE_DECODE, &m), 0, "%s",
	             fp_last_error());
	cr_assert_eq(m.measured, FP_RATE_READ | FP_RATE_DECODE);
	cr_assert(m.reads >= 1 && m.reads <= 17, "%u reads", m.reads);
	cr_assert_lt(m.probe_ns, 2000000000ull, "the probe took %.0f ms", m.probe_ns / 1e6);

	tu_file f;
	cr_assert_eq(tu_load(both_img, &f), 0);
	int fd = open(both_img, O_RDONLY | O_DIRECT);
	cr_assert_geq(fd, 0);
	const size_t cap = 1u << 20;
	uint8_t *buf = aligned_alloc(4096, cap), *out = malloc(64u << 10);
	uint64_t read_ns = 0, bytes = 0, decode_ns = 0, decoded = 0;
	const uint32_t n = tu_get32(&f, TU_H_N_CHUNKS), n_alts = tu_get32(&f, TU_H_N_ALTS);
	const uint64_t ct = tu_get64(&f, TU_H_CT_OFFSET);
	for (int rep = 0; rep < 3; rep++)
		for (uint32_t e = 0; e < n + n_alts; e++) { /* the chunk table, then the alternates */
			const uint64_t at = ct + (uint64_t)e * TU_C_BYTES;
			const uint32_t stored = tu_get32(&f, at + TU_C_STORED_LEN);
			const uint32_t codec = tu_get32(&f, at + TU_C_CODEC);
			const uint64_t off = tu_get64(&f, at + TU_C_FILE_OFFSET);
			if (!stored)
				continue;
			const size_t len = (stored + 4095u) / 4096 * 4096;
			uint64_t t0 = ns_now(CLOCK_MONOTONIC);
			cr_assert_geq(pread(fd, buf, len, (off_t)off), (ssize_t)stored);
			read_ns += ns_now(CLOCK_MONOTONIC) - t0;
			bytes += stored;
			if (codec) {
				const size_t skip = codec == FP_CODEC_ZSTD_SPLIT ? 16 : 0;
				t0 = ns_now(CLOCK_THREAD_CPUTIME_ID);
				size_t d = ZSTD_decompress(out, 64u << 10, buf + skip, stored - skip);
				decode_ns += ns_now(CLOCK_THREAD_CPUTIME_ID) - t0;
				cr_assert(!ZSTD_isError(d));
				decoded += d;
			}
		}
	close(fd);
	const double my_read = bytes / (read_ns / 1e9), my_decode = decoded / (decode_ns / 1e9);
	cr_log_info("probe: read %.0f MB/s, decode %.0f MB/s in %.1f ms; here: %.0f, %.0f MB/s",
	            m.read_bytes_per_s / 1e6, m.decode_bytes_per_s / 1e6, m.probe_ns / 1e6,
	            my_read / 1e6, my_decode / 1e6);
	cr_assert(m.read_bytes_per_s > my_read / 10 && m.read_bytes_per_s < my_read * 10,
	          "probe read %.0f MB/s, timed here %.0f MB/s", m.read_bytes_per_s / 1e6,
	          my_read / 1e6);
	cr_assert(m.decode_bytes_per_s > my_decode / 4 && m.decode_bytes_per_s < my_decode * 4,
	          "probe decode %.0f MB/s, timed here %.0f MB/s", m.decode_bytes_per_s / 1e6,
	          my_decode / 1e6);
	free(buf);
	free(out);
	tu_free(&f);

	/* fp_open measures them when the forms depend on them, and only then */
	fp_region *r = fp_open(both_img, NULL);
	cr_assert(r, "%s", fp_last_error());
	struct fp_stats st;
	fp_get_stats(r, &st);
	cr_assert_eq(st.rates_measured, FP_RATE_READ | FP_RATE_DECODE);
	cr_assert_gt(st.read_rate, 0);
	cr_assert_gt(st.probe_ns, 0);
	fp_close(r);
	struct fp_options half = {.retries = -1, .readahead = -1, .budget = 4u << 16};
	r = fp_open(raw_img, &half); /* every chunk raw: nothing depends on the rates */
	cr_assert(r, "%s", fp_last_error());
	fp_get_stats(r, &st);
	cr_assert_eq(st.rates_measured, 0u);
	cr_assert_eq(st.probe_ns, 0u);
	fp_close(r);
	fp_image_close(img);
}

/* Images of versions 2 and 3 open and page as before; a version 3 header
 * whose word after tables_crc is set (n_alts from version 4 on) still
 * has no alternates. */
Test(adapt, older_versions_still_open)
{
	const char *v3 = rt_path(dir, "zstd.img");
	pack(v3, "zstd");
	tu_file f;
	cr_assert_eq(tu_load(v3, &f), 0);
	cr_assert_eq(tu_get32(&f, TU_H_VERSION), 3u, "a zstd-split image is version 3");
	tu_set32(&f, TU_H_N_ALTS, 1);
	tu_fix_crcs(&f);
	cr_assert_eq(tu_save(v3, &f), 0);
	tu_free(&f);
	cr_assert_eq(tu_load(raw_img, &f), 0);
	cr_assert_eq(tu_get32(&f, TU_H_VERSION), 2u, "a raw image is version 2");
	tu_free(&f);
	size_t rlen;
	uint8_t *rb = rt_read_file(raw_img, &rlen);
	const char *paths[] = {raw_img, v3};
	for (int k = 0; k < 2; k++) {
		fp_image *img = fp_image_open(paths[k]);
		cr_assert(img, "%s: %s", paths[k], fp_last_error());
		cr_assert_eq(fp_image_info(img)->n_alt_forms, 0u);
		cr_assert_null(fp_image_chunk_form(img, 0, 1));
		const uint32_t cs = fp_image_info(img)->chunk_size, n = fp_image_info(img)->n_chunks;
		fp_image_close(img);
		fp_region *r = fp_open(paths[k], NULL);
		cr_assert(r, "%s", fp_last_error());
		for (uint32_t i = 0; i < n; i++) {
			const struct fp_chunk_desc *c = fp_image_chunk(fp_region_image(r), i);
			cr_assert_eq(memcmp((const uint8_t *)fp_region_base(r) + (size_t)i * cs,
			                    rb + 4096 + (size_t)i * cs, c->logical_len), 0,
			             "%s chunk %u", paths[k], i);
		}
		fp_close(r);
	}
	free(rb);
}

/* A broken alternate-form table: refused, the message naming it. */
static void expect_refused(const char *path, void (*breakit)(tu_file *), const char *words)
{
	tu_file f;
	cr_assert_eq(tu_load(both_img, &f), 0);
	breakit(&f);
	tu_fix_crcs(&f);
	cr_assert_eq(tu_save(path, &f), 0);
	tu_free(&f);
	fp_image *img = fp_image_open(path);
	cr_assert_null(img, "a broken image opened (%s)", words);
	cr_assert_eq(errno, EBADMSG);
	cr_assert(tu_contains_any(fp_last_error(), words), "message '%s' names none of %s",
	          fp_last_error(), words);
}

static uint64_t alt_at(const tu_file *f, uint32_t k)
{
	return tu_get64(f, TU_H_CT_OFFSET) + tu_get64(f, TU_H_CT_SIZE) + (uint64_t)k * TU_C_BYTES;
}

static void bad_checksum(tu_file *f)
{
	tu_set32(f, alt_at(f, 0) + TU_C_CHECKSUM, tu_get32(f, alt_at(f, 0) + TU_C_CHECKSUM) ^ 1);
}

static void bad_chunk(tu_file *f)
{
	tu_set64(f, alt_at(f, 0) + TU_C_LOGICAL_OFFSET, 1ull << 40);
}

static void overlapping(tu_file *f)
{
	/* onto chunk 0's payload */
	tu_set64(f, alt_at(f, 0) + TU_C_FILE_OFFSET, tu_get64(f, tu_chunk_at(f, 0) + TU_C_FILE_OFFSET));
}

static void too_many(tu_file *f)
{
	tu_set32(f, TU_H_N_ALTS, tu_get32(f, TU_H_N_CHUNKS) + 1);
}

static void bad_codec(tu_file *f)
{
	tu_set32(f, alt_at(f, 0) + TU_C_CODEC, 7);
}

Test(adapt, a_broken_alternate_table_is_refused)
{
	const char *p = rt_path(dir, "broken.img");
	expect_refused(p, bad_checksum, "alternate 0");
	expect_refused(p, bad_chunk, "alternate 0");
	expect_refused(p, overlapping, "overlap");
	expect_refused(p, too_many, "n_alts");
	expect_refused(p, bad_codec, "alternate 0: unknown codec");
}
