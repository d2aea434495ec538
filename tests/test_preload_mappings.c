/* libflexpage-preload.so against the kernel's own mmap, through the probe
 * (tests/preload/map_probe.c): what it takes is served from a region and
 * reads the file's bytes (checked against pread of the file); what it must
 * not take goes to the kernel and behaves exactly as without it; llama.cpp's
 * unmapping pattern really frees the ranges; MAP_POPULATE, MADV_WILLNEED
 * and mlock read nothing at load; mmap64 and posix_madvise are the
 * library's too; threads, several models and fork (also while threads
 * fault, map and unmap) work; what cannot be served (no userfaultfd
 * included) is said once, or fails with FLEXPAGE_STRICT=1; FLEXPAGE_LOG
 * says what each level promises. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "preload_util.h"
#include "gguf_util.h"
#include "region_util.h"
#include "testutil.h"

#define CHUNK_64K "FLEXPAGE_CHUNK=64K"

static void probe(const char *const *args, const char *const *env, int preload, struct pu_result *r)
{
	const char *argv[16] = {pu_probe()};
	for (int i = 0; args[i] && i < 14; i++)
		argv[i + 1] = args[i];
	struct pu_opts o = {.env = env, .preload = preload, .timeout_s = 120};
	pu_run(argv, &o, r);
	cr_assert(!r->timed_out, "the probe hung: %s %s\nstdout:\n%s\nstderr:\n%s", args[0], args[1],
	          r->out, r->err);
	cr_assert(WIFEXITED(r->status) && WEXITSTATUS(r->status) == 0,
	          "the probe failed (status 0x%x)\nstdout:\n%s\nstderr:\n%s", r->status, r->out, r->err);
}

static int has_line(const char *out, const char *line)
{
	size_t n = strlen(line);
	for (const char *p = out; (p = strstr(p, line)); p += n)
		if ((p == out || p[-1] == '\n') && (p[n] == '\n' || !p[n]))
			return 1;
	return 0;
}

/* The probe's output with the lines naming who maps it and what is
 * resident taken out: what must be the same with the library or not. */
static char *behaviour(const char *out)
{
	char *s = calloc(1, strlen(out) + 1), *w = s;
	for (const char *line = out; *line;) {
		const char *end = strchr(line, '\n');
		size_t len = end ? (size_t)(end - line + 1) : strlen(line);
		if (strncmp(line, "map: ", 5) && strncmp(line, "resident after", 14) &&
		    strncmp(line, "model ", 6) && strncmp(line, "first: ", 7)) {
			memcpy(w, line, len);
			w += len;
		}
		line += len;
	}
	return s;
}

static void expect_same_behaviour(const struct pu_result *kernel, const struct pu_result *lib)
{
	char *a = behaviour(kernel->out), *b = behaviour(lib->out);
	cr_expect_str_eq(b, a, "with the library the program behaves otherwise:\n--- without\n%s--- with\n%s",
	                 kernel->out, lib->out);
	free(a);
	free(b);
}

static void expect_within_budget(const char *err, const char *name, uint64_t chunk)
{
	long long faults = pu_summary(err, name, "faults"), peak = pu_summary(err, name, "peak resident");
	long long budget = pu_summary(err, name, "of budget");
	cr_expect_gt(faults, 0, "no faults served (or no summary): %s", err);
	cr_expect_gt(budget, 0, "no budget in the summary: %s", err);
	/* The pager's bound: a demand load with nothing to evict goes over
	 * by its chunk, at most one per loader (4). */
	cr_expect_leq(peak, budget + 4 * (long long)chunk, "peak resident %lld over budget %lld", peak,
	              budget);
}

Test(served, a_gguf_read_only_mapping_is_served_and_reads_the_files_bytes, .timeout = 300)
{
	const char *gguf = pu_peer("STORIES_GGUF");
	const char *args[] = {"read", gguf, NULL}, *args_p[] = {"read", gguf, "private", NULL};
	const char *env[] = {CHUNK_64K, "FLEXPAGE_BUDGET=25%", "FLEXPAGE_STATS=exit", NULL};
	struct pu_result k, s;
	probe(args, NULL, 0, &k);
	probe(args, env, 1, &s);
	cr_expect(has_line(k.out, "map: kernel"), "%s", k.out);
	cr_expect(has_line(s.out, "map: served"), "%s", s.out);
	cr_expect(has_line(s.out, "bytes: equal") && has_line(s.out, "bytes again: equal"), "%s", s.out);
	cr_expect(has_line(s.out, "free after munmap: yes"), "%s", s.out);
	expect_same_behaviour(&k, &s);
	expect_within_budget(s.err, "stories260K.gguf", 64 << 10);
	cr_expect_eq(pu_count(s.err, ": unmapped: "), 1, "one summary, when it was unmapped: %s", s.err);
	pu_result_free(&s);
	/* MAP_PRIVATE and read-only: the program never writes it, so it is
	 * served too (llama2.c maps its checkpoint so). */
	probe(args_p, env, 1, &s);
	cr_expect(has_line(s.out, "map: served") && has_line(s.out, "bytes: equal"), "%s", s.out);
	pu_result_free(&s);
	/* A large model, 2 MiB chunks (huge pages), a quarter of it resident. */
	const char *tiny = pu_peer("TINYLLAMA_GGUF");
	const char *args_t[] = {"read", tiny, NULL}, *env_t[] = {"FLEXPAGE_BUDGET=25%", "FLEXPAGE_STATS=exit", NULL};
	probe(args_t, env_t, 1, &s);
	cr_expect(has_line(s.out, "map: served") && has_line(s.out, "bytes: equal") &&
	          has_line(s.out, "bytes again: equal"), "%s", s.out);
	expect_within_budget(s.err, "tinyllama-layout-4l-q8_0-seed2.gguf", 2 << 20);
	pu_result_free(&s);
	pu_result_free(&k);
}

/* FLEXPAGE_READ_RATE and FLEXPAGE_DECODE_RATE reach the region (its
 * report says the rates it chose forms and planned by, not measured). */
Test(served, the_rates_given_are_the_regions, .timeout = 120)
{
	const char *gguf = pu_peer("STORIES_GGUF");
	const char *args[] = {"read", gguf, NULL};
	const char *env[] = {CHUNK_64K, "FLEXPAGE_BUDGET=50%", "FLEXPAGE_STATS=exit",
	                     "FLEXPAGE_LOG=info", "FLEXPAGE_READ_RATE=300M",
	                     "FLEXPAGE_DECODE_RATE=900M", "FLEXPAGE_DECODERS=1", NULL};
	struct pu_result s;
	probe(args, env, 1, &s);
	cr_expect(has_line(s.out, "map: served") && has_line(s.out, "bytes: equal"), "%s", s.out);
	/* 300M and 900M are binary: 314572800 and 943718400 bytes/s */
	cr_expect(strstr(s.err, "rates: read 315 MB/s, decode 944 MB/s a core;"), "%s", s.err);
	pu_result_free(&s);
}

Test(served, populate_willneed_and_mlock_read_nothing_at_load, .timeout = 300)
{
	const char *tiny = pu_peer("TINYLLAMA_GGUF");
	const char *args[] = {"read", tiny, "populate", "willneed", "mlock", NULL};
	const char *none[] = {"FLEXPAGE_BUDGET=50%", "FLEXPAGE_PRESERVE=none", "FLEXPAGE_STATS=exit", NULL};
	struct pu_result k, s;
	probe(args, NULL, 0, &k);
	probe(args, none, 1, &s);
	unsigned long long res, all;
	const char *line = strstr(k.out, "resident after mapping: ");
	cr_assert(line && sscanf(line, "resident after mapping: %llu of %llu", &res, &all) == 2, "%s", k.out);
	cr_expect_eq(res, all, "the kernel's MAP_POPULATE reads it all: %s", k.out);
	line = strstr(s.out, "resident after mapping: ");
	cr_assert(line && sscanf(line, "resident after mapping: %llu of %llu", &res, &all) == 2, "%s", s.out);
	cr_expect_eq(res, 0, "served: nothing may be read at load without preservation: %s", s.out);
	cr_expect(has_line(s.out, "madvise willneed: 0") && has_line(s.out, "mlock: 0"), "%s", s.out);
	cr_expect(has_line(s.out, "bytes: equal"), "%s", s.out);
	expect_same_behaviour(&k, &s);
	expect_within_budget(s.err, "tinyllama-layout-4l-q8_0-seed2.gguf", 2 << 20);
	pu_result_free(&s);
	/* With preservation, what is loaded at open is the plan: at most the
	 * budget, never the model. */
	const char *balanced[] = {"FLEXPAGE_BUDGET=50%", "FLEXPAGE_STATS=exit", NULL};
	probe(args, balanced, 1, &s);
	line = strstr(s.out, "resident after mapping: ");
	cr_assert(line && sscanf(line, "resident after mapping: %llu of %llu", &res, &all) == 2, "%s", s.out);
	cr_expect_leq(res, all / 2 + 1, "more than the budget resident at load: %s", s.out);
	pu_result_free(&s);
	pu_result_free(&k);
}

Test(served, mmap64_and_posix_madvise_go_through_the_library, .timeout = 120)
{
	/* llama.cpp maps with mmap and advises with posix_madvise(WILLNEED);
	 * a program built with 64-bit offsets on a 32-bit ABI calls mmap64.
	 * glibc's own mmap64 and posix_madvise would not reach the library's
	 * mmap and madvise, so each must be interposed on its own: the
	 * mapping is served, and the debug log shows the advice taken. */
	const char *gguf = pu_peer("STORIES_GGUF");
	const char *args[] = {"read", gguf, "mmap64", "pwillneed", NULL};
	const char *env[] = {CHUNK_64K, "FLEXPAGE_BUDGET=25%", "FLEXPAGE_PRESERVE=none", "FLEXPAGE_LOG=debug",
	                     NULL};
	struct pu_result k, s;
	probe(args, NULL, 0, &k);
	probe(args, env, 1, &s);
	cr_expect(has_line(k.out, "map: kernel"), "%s", k.out);
	cr_expect(has_line(s.out, "map: served"), "mmap64 was not served: %s", s.out);
	cr_expect(has_line(s.out, "posix_madvise willneed: 0") && has_line(s.out, "bytes: equal"), "%s", s.out);
	cr_expect(strstr(s.out, "resident after mapping: 0 of "), "WILLNEED read at load: %s", s.out);
	cr_expect(strstr(s.err, "posix_madvise of [0, ") && strstr(s.err, "accepted, not acted on"),
	          "posix_madvise did not reach the library: %s", s.err);
	expect_same_behaviour(&k, &s);
	pu_result_free(&k);
	pu_result_free(&s);
}

/* Where a GGUF's tensor data start, by the tests' own reader. */
static uint64_t data_offset(const char *path)
{
	FILE *f = fopen(path, "rb");
	cr_assert_not_null(f, "%s", path);
	size_t cap = 4u << 20;
	uint8_t *p = malloc(cap);
	size_t n = fread(p, 1, cap, f);
	fclose(f);
	struct gw *g = calloc(1, sizeof *g);
	cr_assert_eq(gw_read(p, n, g), 0, "%s: not a GGUF the tests' reader takes", path);
	uint64_t off = g->data_offset;
	free(g);
	free(p);
	return off;
}

Test(served, llama_cpp_unmaps_header_tail_and_rest_and_the_ranges_are_free, .timeout = 300)
{
	/* The header pages below the first tensor (stories260K.gguf's data
	 * start at 14176: 3 pages), the last page, then the rest with an
	 * unaligned length, as llama.cpp does; each range must be free after
	 * (the probe maps its own memory there), the rest still read right. */
	const char *files[] = {pu_peer("STORIES_GGUF"), pu_peer("TINYLLAMA_GGUF")};
	for (int i = 0; i < 2; i++) {
		char head[32];
		snprintf(head, sizeof head, "%llu", (unsigned long long)data_offset(files[i]));
		const char *args[] = {"llama", files[i], head, NULL};
		const char *env[] = {CHUNK_64K, "FLEXPAGE_BUDGET=30%", "FLEXPAGE_STATS=exit", NULL};
		const char *env_2m[] = {"FLEXPAGE_BUDGET=30%", "FLEXPAGE_STATS=exit", NULL};
		struct pu_result k, s;
		probe(args, NULL, 0, &k);
		probe(args, i ? env_2m : env, 1, &s);
		cr_expect(has_line(s.out, "map: served"), "%s", s.out);
		for (const char *const *l = (const char *const[]){"head free: yes", "last page free: yes",
		                                                   "rest free: yes", "bytes between: equal",
		                                                   "bytes between again: equal", NULL};
		     *l; l++)
			cr_expect(has_line(s.out, *l), "'%s' missing:\n%s", *l, s.out);
		expect_same_behaviour(&k, &s);
		cr_expect_eq(pu_count(s.err, ": unmapped: "), 1, "the last munmap closes the region: %s", s.err);
		pu_result_free(&k);
		pu_result_free(&s);
	}
}

Test(not_taken, writable_partial_offset_and_exec_mappings_go_to_the_kernel, .timeout = 120)
{
	const char *gguf = pu_peer("STORIES_GGUF");
	const char *args[] = {"notake", gguf, NULL};
	const char *env[] = {CHUNK_64K, "FLEXPAGE_BUDGET=25%", NULL};
	struct pu_result k, s;
	probe(args, NULL, 0, &k);
	probe(args, env, 1, &s);
	for (const char *const *l = (const char *const[]){"writable: kernel", "partial: kernel",
	                                                   "offset: kernel", "exec: kernel",
	                                                   "writable write: kept", NULL};
	     *l; l++)
		cr_expect(has_line(s.out, *l), "'%s' missing:\n%s", *l, s.out);
	cr_expect_str_eq(s.out, k.out, "the program behaves otherwise with the library");
	cr_expect_str_eq(s.err, "", "something was said though all is well: %s", s.err);
	pu_result_free(&k);
	pu_result_free(&s);
}

Test(not_taken, a_file_that_is_no_model_goes_to_the_kernel_silently, .timeout = 120)
{
	char path[512];
	snprintf(path, sizeof path, "%s/not-a-model.bin", ru_tmpdir());
	uint8_t *data = ru_data(3u << 20, 7);
	FILE *f = fopen(path, "wb");
	cr_assert(f && fwrite(data, 1, 3u << 20, f) == 3u << 20);
	fclose(f);
	free(data);
	const char *args[] = {"read", path, "populate", NULL};
	const char *env[] = {"FLEXPAGE_BUDGET=25%", "FLEXPAGE_LOG=info", NULL};
	struct pu_result k, s;
	probe(args, NULL, 0, &k);
	probe(args, env, 1, &s);
	cr_expect(has_line(s.out, "map: kernel"), "%s", s.out);
	cr_expect_str_eq(s.out, k.out, "the program behaves otherwise with the library");
	cr_expect_str_eq(s.err, "", "a file that is no model is not flexpage's business: %s", s.err);
	pu_result_free(&k);
	pu_result_free(&s);
	unlink(path);
}

/* A copy of stories260K.gguf with its header damaged at one place. */
static void damaged_copy(const char *path, long at, const void *bytes, size_t n, long truncate_to)
{
	size_t len;
	uint8_t *p = tu_read_file(pu_peer("STORIES_GGUF"), &len);
	memcpy(p + at, bytes, n);
	FILE *f = fopen(path, "wb");
	cr_assert(f && fwrite(p, 1, truncate_to ? (size_t)truncate_to : len, f) ==
	                   (truncate_to ? (size_t)truncate_to : len));
	fclose(f);
	free(p);
}

Test(not_taken, a_damaged_gguf_goes_to_the_kernel_and_is_said_once, .timeout = 120)
{
	char path[512];
	snprintf(path, sizeof path, "%s/damaged.gguf", ru_tmpdir());
	const uint32_t version = 99;
	damaged_copy(path, 4, &version, 4, 0);
	const char *args[] = {"twice", path, NULL};
	const char *env[] = {CHUNK_64K, "FLEXPAGE_BUDGET=25%", NULL};
	struct pu_result k, s;
	probe(args, NULL, 0, &k);
	probe(args, env, 1, &s);
	cr_expect(strstr(s.out, "first: kernel, second: kernel"), "%s", s.out);
	cr_expect_str_eq(s.out, k.out, "the program behaves otherwise with the library");
	cr_expect_eq(pu_count(s.err, "not served"), 1, "said once, for two mappings: %s", s.err);
	cr_expect(strstr(s.err, "damaged.gguf") && strstr(s.err, "version"),
	          "the message names the file and the field: %s", s.err);
	pu_result_free(&s);
	/* FLEXPAGE_STRICT=1: the mmap fails instead. */
	const char *strict[] = {CHUNK_64K, "FLEXPAGE_STRICT=1", NULL};
	const char *read_args[] = {pu_probe(), "read", path, NULL};
	struct pu_opts o = {.env = strict, .preload = 1, .timeout_s = 60};
	pu_run(read_args, &o, &s);
	cr_expect(WIFEXITED(s.status) && WEXITSTATUS(s.status) == 3, "status 0x%x", s.status);
	cr_expect(strstr(s.out, "mmap: failed: No such device"), "%s", s.out);
	pu_result_free(&s);
	/* Tensors past the end of the file: truncated. */
	damaged_copy(path, 0, "GGUF", 4, 600000);
	probe(args, env, 1, &s);
	cr_expect(strstr(s.out, "first: kernel, second: kernel"), "%s", s.out);
	cr_expect_eq(pu_count(s.err, "not served"), 1, "%s", s.err);
	pu_result_free(&s);
	pu_result_free(&k);
	unlink(path);
}

Test(not_taken, a_budget_below_two_chunks_falls_back_or_fails_strictly, .timeout = 120)
{
	const char *tiny = pu_peer("TINYLLAMA_GGUF");
	const char *args[] = {"read", tiny, NULL};
	const char *env[] = {"FLEXPAGE_BUDGET=3M", NULL};
	struct pu_result s;
	probe(args, env, 1, &s);
	cr_expect(has_line(s.out, "map: kernel") && has_line(s.out, "bytes: equal"), "%s", s.out);
	cr_expect(strstr(s.err, "below the minimum") && strstr(s.err, "not served"), "%s", s.err);
	pu_result_free(&s);
	const char *strict[] = {"FLEXPAGE_BUDGET=3M", "FLEXPAGE_STRICT=1", NULL};
	const char *argv[] = {pu_probe(), "read", tiny, NULL};
	struct pu_opts o = {.env = strict, .preload = 1, .timeout_s = 60};
	pu_run(argv, &o, &s);
	cr_expect(strstr(s.out, "mmap: failed: Cannot allocate memory"), "%s", s.out);
	pu_result_free(&s);
}

Test(not_taken, settings_that_cannot_be_used_are_said_once_and_nothing_is_served, .timeout = 120)
{
	const char *gguf = pu_peer("STORIES_GGUF");
	const char *args[] = {"twice", gguf, NULL};
	const struct {
		const char *env, *said;
	} bad[] = {
		{"FLEXPAGE_BUDGET=lots", "FLEXPAGE_BUDGET: 'lots' is not a size"},
		{"FLEXPAGE_BUDGET=140%", "more than 100%"},
		{"FLEXPAGE_PRESERVE=most", "FLEXPAGE_PRESERVE: 'most' is not one of none, balanced, first"},
		{"FLEXPAGE_CHUNK=100K", "FLEXPAGE_CHUNK: '100K' is not a power of two"},
		{"FLEXPAGE_STATS=often", "FLEXPAGE_STATS: 'often'"},
		{"FLEXPAGE_LOADERS=0", "FLEXPAGE_LOADERS"},
		{"FLEXPAGE_READ_RATE=fast", "FLEXPAGE_READ_RATE: 'fast' is not a size"},
		{"FLEXPAGE_DECODE_RATE=0", "FLEXPAGE_DECODE_RATE"},
		{"FLEXPAGE_DECODERS=-1", "FLEXPAGE_DECODERS: '-1' is not a number from 0 to 64"},
		{"FLEXPAGE_DECODERS=2x", "FLEXPAGE_DECODERS: '2x' is not a number"},
		{"FLEXPAGE_POLICY=psychic", "no policy named 'psychic'"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		const char *env[] = {bad[i].env, NULL};
		struct pu_result s;
		probe(args, env, 1, &s);
		cr_expect(strstr(s.out, "first: kernel, second: kernel"), "%s: %s", bad[i].env, s.out);
		cr_expect(strstr(s.err, bad[i].said), "%s: expected '%s' in: %s", bad[i].env, bad[i].said, s.err);
		cr_expect_eq(pu_count(s.err, "flexpage: "), 1, "%s: said once: %s", bad[i].env, s.err);
		pu_result_free(&s);
	}
	/* FLEXPAGE_STRICT=1: a GGUF's mapping fails instead */
	const char *strict[] = {"FLEXPAGE_BUDGET=lots", "FLEXPAGE_STRICT=1", NULL};
	const char *argv[] = {pu_probe(), "read", gguf, NULL};
	struct pu_opts o = {.env = strict, .preload = 1, .timeout_s = 60};
	struct pu_result s;
	pu_run(argv, &o, &s);
	cr_expect(WIFEXITED(s.status) && WEXITSTATUS(s.status) == 3, "status 0x%x", s.status);
	cr_expect(strstr(s.out, "mmap: failed: Invalid argument"), "%s", s.out);
	pu_result_free(&s);
}

Test(images, an_image_serves_the_file_it_holds, .timeout = 300)
{
	const char *bin = pu_peer("STORIES_BIN"), *img = pu_peer("STORIES_IMG");
	const char *args[] = {"read", bin, "private", NULL};
	char pair[1200], other[1200], packed_env[1200], packed[512];
	const char *bare[] = {NULL, "FLEXPAGE_BUDGET=50%", "FLEXPAGE_STATS=exit", NULL};
	char env_image[1100];
	snprintf(env_image, sizeof env_image, "FLEXPAGE_IMAGE=%s", img);
	bare[0] = env_image;
	struct pu_result k, s;
	probe(args, NULL, 0, &k);
	probe(args, bare, 1, &s);
	cr_expect(has_line(s.out, "map: served") && has_line(s.out, "bytes: equal"), "%s", s.out);
	expect_within_budget(s.err, "stories260K.bin", 64 << 10);
	expect_same_behaviour(&k, &s);
	pu_result_free(&s);
	/* FILE=IMAGE */
	snprintf(pair, sizeof pair, "FLEXPAGE_IMAGE=%s=%s", bin, img);
	const char *env_pair[] = {pair, "FLEXPAGE_BUDGET=50%", NULL};
	probe(args, env_pair, 1, &s);
	cr_expect(has_line(s.out, "map: served") && has_line(s.out, "bytes: equal"), "%s", s.out);
	cr_expect_str_eq(s.err, "", "%s", s.err);
	pu_result_free(&s);
	/* An image of another file, named for this one: refused, said. */
	snprintf(other, sizeof other, "FLEXPAGE_IMAGE=%s=%s", bin, pu_peer("STORIES_GGUF"));
	const char *env_other[] = {other, CHUNK_64K, NULL};
	probe(args, env_other, 1, &s);
	cr_expect(has_line(s.out, "map: kernel") && has_line(s.out, "bytes: equal"), "%s", s.out);
	cr_expect(strstr(s.err, "does not hold this file"), "%s", s.err);
	pu_result_free(&s);
	/* A packed (not verbatim) image cannot hold a file byte for byte. */
	snprintf(packed, sizeof packed, "%s/stories-packed.img", ru_tmpdir());
	char cmd[2048];
	snprintf(cmd, sizeof cmd, "%s pack --force --quiet %s %s", FLEXPAGE_TOOL, bin, packed);
	cr_assert_eq(system(cmd), 0, "%s", cmd);
	snprintf(packed_env, sizeof packed_env, "FLEXPAGE_IMAGE=%s=%s", bin, packed);
	const char *env_packed[] = {packed_env, NULL};
	probe(args, env_packed, 1, &s);
	cr_expect(has_line(s.out, "map: kernel"), "%s", s.out);
	cr_expect(strstr(s.err, "packed image does not hold a file byte for byte"), "%s", s.err);
	pu_result_free(&s);
	pu_result_free(&k);
	unlink(packed);
}

Test(processes, threads_map_at_once_and_several_models_are_served_together, .timeout = 300)
{
	const char *gguf = pu_peer("STORIES_GGUF"), *tiny = pu_peer("TINYLLAMA_GGUF");
	const char *args[] = {"threads", gguf, "8", NULL};
	const char *env[] = {CHUNK_64K, "FLEXPAGE_BUDGET=30%", "FLEXPAGE_STATS=exit", NULL};
	struct pu_result s;
	probe(args, env, 1, &s);
	cr_expect(has_line(s.out, "threads: 8 of 8 read equal bytes"), "%s", s.out);
	cr_expect_eq(pu_count(s.err, ": unmapped: "), 8, "a region each: %s", s.err);
	pu_result_free(&s);
	/* A target and a draft model, read in turn. */
	const char *models[] = {"models", tiny, gguf, NULL};
	const char *env_m[] = {CHUNK_64K, "FLEXPAGE_BUDGET=25%", "FLEXPAGE_STATS=exit", NULL};
	probe(models, env_m, 1, &s);
	cr_expect(has_line(s.out, "model 0: served") && has_line(s.out, "model 1: served") &&
	          has_line(s.out, "models: equal"), "%s", s.out);
	cr_expect_eq(pu_count(s.err, ": unmapped: "), 2, "%s", s.err);
	pu_result_free(&s);
}

Test(processes, a_child_of_fork_reads_the_files_bytes, .timeout = 120)
{
	const char *gguf = pu_peer("STORIES_GGUF");
	const char *args[] = {"fork", gguf, NULL};
	const char *env[] = {CHUNK_64K, "FLEXPAGE_BUDGET=25%", NULL};
	struct pu_result k, s;
	probe(args, NULL, 0, &k);
	probe(args, env, 1, &s);
	cr_expect(has_line(s.out, "map: served"), "%s", s.out);
	cr_expect(has_line(s.out, "child bytes: equal") && has_line(s.out, "child: exit 0") &&
	          has_line(s.out, "parent bytes after: equal"), "%s", s.out);
	expect_same_behaviour(&k, &s);
	pu_result_free(&k);
	pu_result_free(&s);
}

Test(served, advice_locks_and_protections_on_a_served_mapping, .timeout = 120)
{
	const char *gguf = pu_peer("STORIES_GGUF");
	const char *args[] = {"advice", gguf, NULL};
	const char *env[] = {CHUNK_64K, "FLEXPAGE_BUDGET=25%", "FLEXPAGE_STATS=exit", NULL};
	struct pu_result s;
	probe(args, env, 1, &s);
	cr_expect(has_line(s.out, "map: served"), "%s", s.out);
	cr_expect_eq(pu_count(s.out, "  bytes: equal"), 9, "every madvise leaves the bytes: %s", s.out);
	for (const char *const *l = (const char *const[]){"madvise dontneed: 0", "madvise pageout: 0",
	                                                   "posix_madvise willneed: 0", "mlock: 0",
	                                                   "mlock2 onfault: 0", "munlock: 0",
	                                                   "mprotect read: 0",
	                                                   "mprotect write: -1 Permission denied",
	                                                   "mremap: Invalid argument",
	                                                   "bytes at the end: equal", NULL};
	     *l; l++)
		cr_expect(has_line(s.out, *l), "'%s' missing:\n%s", *l, s.out);
	expect_within_budget(s.err, "stories260K.gguf", 64 << 10);
	pu_result_free(&s);
}

Test(served, mlockall_locks_the_program_but_not_the_model, .timeout = 120)
{
	/* MCL_CURRENT would fault every page of the region in and stop its
	 * evictions; under MCL_FUTURE a new region would be filled whole, so
	 * none is opened until munlockall. */
	const char *gguf = pu_peer("STORIES_GGUF");
	const char *args[] = {"mlockall", gguf, NULL};
	const char *env[] = {CHUNK_64K, "FLEXPAGE_BUDGET=25%", "FLEXPAGE_PRESERVE=none", "FLEXPAGE_STATS=exit",
	                     NULL};
	struct pu_result s;
	probe(args, env, 1, &s);
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
	/* The sanitizer's runtime, preloaded first, answers mlock, mlockall
	 * and munlockall itself (0, nothing done): the library never sees
	 * them, so only what holds either way is checked. */
	cr_log_info("under a sanitizer, mlockall never reaches the library: MCL_FUTURE is not checked");
	cr_expect(has_line(s.out, "mlockall current: 0") && has_line(s.out, "bytes after mlockall: equal"), "%s",
	          s.out);
	cr_expect(strstr(s.out, "resident after mlockall: 0 of "), "%s", s.out);
	pu_result_free(&s);
	return;
#endif
	for (const char *const *l = (const char *const[]){"map: served", "mlockall current: 0",
	                                                   "bytes after mlockall: equal", "mlockall future: 0",
	                                                   "map: under mlockall future: kernel",
	                                                   "bytes under mlockall future: equal", "munlockall: 0",
	                                                   "map: after munlockall: served",
	                                                   "bytes after munlockall: equal", NULL};
	     *l; l++)
		cr_expect(has_line(s.out, *l), "'%s' missing:\n%s", *l, s.out);
	cr_expect(strstr(s.out, "resident after mlockall: 0 of "), "mlockall filled the region: %s", s.out);
	cr_expect_eq(pu_count(s.err, "mlockall(MCL_FUTURE) is in effect"), 1, "%s", s.err);
	/* the first region evicted as it read: within its budget */
	long long peak = pu_summary(s.err, "stories260K.gguf", "peak resident");
	long long budget = pu_summary(s.err, "stories260K.gguf", "of budget");
	cr_expect_eq(pu_count(s.err, ": unmapped: "), 2, "%s", s.err);
	cr_expect(budget > 0 && peak <= budget + 4 * 65536, "peak %lld, budget %lld: %s", peak, budget, s.err);
	pu_result_free(&s);
}

Test(served, trace_files_and_interval_lines, .timeout = 300)
{
	char trace[512], env_trace[600];
	snprintf(trace, sizeof trace, "%s/preload.trace", ru_tmpdir());
	snprintf(env_trace, sizeof env_trace, "FLEXPAGE_TRACE=%s", trace);
	const char *models[] = {"models", pu_peer("TINYLLAMA_GGUF"), pu_peer("STORIES_GGUF"), NULL};
	const char *env[] = {env_trace, CHUNK_64K, "FLEXPAGE_BUDGET=25%", "FLEXPAGE_STATS=50ms", NULL};
	struct pu_result s;
	probe(models, env, 1, &s);
	cr_expect(has_line(s.out, "models: equal"), "%s", s.out);
	char second[600];
	snprintf(second, sizeof second, "%s.2", trace);
	for (const char *p = trace; p; p = p == trace ? second : NULL) {
		size_t n;
		uint8_t *t = tu_read_file(p, &n);
		cr_expect(t && n > 8 && !memcmp(t, "FPTRACE1", 8), "%s is not a trace", p);
		free(t);
		unlink(p);
	}
	cr_expect_gt(pu_count(s.err, "s] "), 0, "no interval line: %s", s.err);
	cr_expect_eq(pu_count(s.err, ": unmapped: "), 2, "%s", s.err);
	pu_result_free(&s);
}

Test(served, a_model_still_mapped_at_exit_has_its_summary_then, .timeout = 120)
{
	const char *gguf = pu_peer("STORIES_GGUF");
	const char *args[] = {"read", gguf, "keep", NULL};
	const char *env[] = {CHUNK_64K, "FLEXPAGE_BUDGET=25%", "FLEXPAGE_STATS=exit", NULL};
	struct pu_result s;
	probe(args, env, 1, &s);
	cr_expect(has_line(s.out, "map: served") && has_line(s.out, "bytes again: equal"), "%s", s.out);
	cr_expect_eq(pu_count(s.err, "stories260K.gguf: at exit: faults "), 1, "%s", s.err);
	cr_expect_eq(pu_count(s.err, ": unmapped: "), 0, "%s", s.err);
	cr_expect_gt(pu_summary(s.err, "stories260K.gguf", "faults"), 0, "%s", s.err);
	pu_result_free(&s);
}

Test(settings, each_log_level_says_what_it_promises, .timeout = 120)
{
	const char *gguf = pu_peer("STORIES_GGUF");
	char damaged[512];
	snprintf(damaged, sizeof damaged, "%s/damaged-log.gguf", ru_tmpdir());
	const uint32_t version = 99;
	damaged_copy(damaged, 4, &version, 4, 0);
	const char *served[] = {"read", gguf, NULL}, *refused[] = {"read", damaged, NULL};
	struct pu_result s;
	/* quiet: not even a mapping that cannot be served is said */
	const char *quiet[] = {CHUNK_64K, "FLEXPAGE_BUDGET=25%", "FLEXPAGE_LOG=quiet", NULL};
	probe(refused, quiet, 1, &s);
	cr_expect(has_line(s.out, "map: kernel") && has_line(s.out, "bytes: equal"), "%s", s.out);
	cr_expect_str_eq(s.err, "", "quiet, yet: %s", s.err);
	pu_result_free(&s);
	/* warn (the default): that is said, a mapping served is not */
	const char *warn[] = {CHUNK_64K, "FLEXPAGE_BUDGET=25%", NULL};
	probe(refused, warn, 1, &s);
	cr_expect_eq(pu_count(s.err, "damaged-log.gguf: not served"), 1, "%s", s.err);
	pu_result_free(&s);
	probe(served, warn, 1, &s);
	cr_expect(has_line(s.out, "map: served"), "%s", s.out);
	cr_expect_str_eq(s.err, "", "all is well, yet: %s", s.err);
	pu_result_free(&s);
	/* info: each mapping served, and with the summary the pager's report */
	const char *info[] = {CHUNK_64K, "FLEXPAGE_BUDGET=25%", "FLEXPAGE_LOG=info", "FLEXPAGE_STATS=exit", NULL};
	probe(served, info, 1, &s);
	cr_expect_eq(pu_count(s.err, "stories260K.gguf: served from the GGUF itself"), 1, "%s", s.err);
	cr_expect_eq(pu_count(s.err, ": unmapped: faults "), 1, "%s", s.err);
	cr_expect_gt(pu_count(s.err, "stories260K.gguf:   "), 2, "no report under the summary: %s", s.err);
	cr_expect_eq(pu_count(s.err, "accepted, not acted on"), 0, "a debug line at info: %s", s.err);
	pu_result_free(&s);
	/* debug: each call on the served mapping too */
	const char *llama[] = {"llama", gguf, "12288", NULL};
	const char *debug[] = {CHUNK_64K, "FLEXPAGE_BUDGET=25%", "FLEXPAGE_LOG=debug", NULL};
	probe(llama, debug, 1, &s);
	cr_expect(strstr(s.err, "stories260K.gguf: madvise of [0, ") && strstr(s.err, "accepted, not acted on"),
	          "%s", s.err);
	cr_expect_eq(pu_count(s.err, "stories260K.gguf: unmapped ["), 3, "header, last page, rest: %s", s.err);
	cr_expect_eq(pu_count(s.err, "stories260K.gguf: closed"), 1, "%s", s.err);
	pu_result_free(&s);
	unlink(damaged);
}

Test(not_taken, without_userfaultfd_the_kernel_maps_it_said_once_or_it_fails_strictly, .timeout = 120)
{
	const char *gguf = pu_peer("STORIES_GGUF");
	const char *args[] = {"nouffd", "twice", gguf, NULL};
	const char *env[] = {CHUNK_64K, "FLEXPAGE_BUDGET=25%", NULL};
	struct pu_result k, s;
	probe(args, NULL, 0, &k);
	probe(args, env, 1, &s);
	cr_expect(has_line(s.out, "userfaultfd: off"), "%s", s.out);
	cr_expect(strstr(s.out, "first: kernel, second: kernel"), "%s", s.out);
	cr_expect_str_eq(s.out, k.out, "the program behaves otherwise with the library");
	cr_expect_eq(pu_count(s.err, "not served"), 1, "said once, for two mappings: %s", s.err);
	cr_expect(strstr(s.err, "stories260K.gguf") && strstr(s.err, "userfaultfd is not available"),
	          "the message names the file and the reason: %s", s.err);
	pu_result_free(&s);
	const char *strict[] = {CHUNK_64K, "FLEXPAGE_BUDGET=25%", "FLEXPAGE_STRICT=1", NULL};
	const char *argv[] = {pu_probe(), "nouffd", "read", gguf, NULL};
	struct pu_opts o = {.env = strict, .preload = 1, .timeout_s = 60};
	pu_run(argv, &o, &s);
	cr_expect(WIFEXITED(s.status) && WEXITSTATUS(s.status) == 3, "status 0x%x", s.status);
	cr_expect(strstr(s.out, "mmap: failed: No such device"), "%s", s.out);
	pu_result_free(&s);
	pu_result_free(&k);
}

Test(processes, forks_while_threads_fault_map_and_unmap, .timeout = 300)
{
	/* Four threads fault through a quarter-budget mapping, two more map,
	 * read and unmap the file as regions of their own, and meanwhile the
	 * main thread forks eight children that read every byte: the fork
	 * handlers must see a whole table, never a half-changed one, and no
	 * child may hang or read wrong bytes.  Three rounds. */
	const char *gguf = pu_peer("STORIES_GGUF");
	const char *args[] = {"forkbusy", gguf, "4", NULL};
	const char *env[] = {CHUNK_64K, "FLEXPAGE_BUDGET=25%", NULL};
	for (int round = 0; round < 3; round++) {
		struct pu_result s;
		probe(args, env, 1, &s);
		for (const char *const *l = (const char *const[]){"map: served",
		                                                   "forkbusy children: 8 of 8 read equal bytes",
		                                                   "forkbusy threads: equal", "forkbusy work: done",
		                                                   "parent bytes after: equal", NULL};
		     *l; l++)
			cr_expect(has_line(s.out, *l), "round %d: '%s' missing:\n%s\n%s", round, *l, s.out, s.err);
		pu_result_free(&s);
	}
}
