/* The default configuration: `flexpage run` under a budget below the model
 * preserves chunks and streams the rest without any technique flag, and
 * says what is on; --preserve none switches preservation off; a plain
 * fp_open with no plan preserves chunks of its own choosing. */
#include <criterion/criterion.h>
#include <criterion/logging.h>

#include <flexkern/kernels.h>
#include <flexpage/flexpage_experimental.h>
#include <flexrt/runtime.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rt_util.h"

static char *dir;

static void setup(void)
{
	dir = rt_tmpdir();
	cr_assert(dir, "no temporary directory on a disk file system");
}

static void teardown(void)
{
	if (dir)
		rt_rmtree(dir);
	free(dir);
}

/* TinyLlama's layout at 3 layers of width 512 (43 MB in q8_0), in 256 KiB
 * chunks: enough chunks that a quarter of the model holds a plan's 16
 * streaming chunks and more. */
static const struct frt_config tiny = {512, 1408, 3, 8, 1, 32000, 2048, 10000.0f, 1e-5f};
#define CHUNK (256u << 10)

/* A value printed after `key` on a line of text, e.g. "read 12.5 MiB". */
static double after(const char *text, const char *key)
{
	const char *p = strstr(text, key);
	cr_assert(p, "'%s' is not in the output:\n%s", key, text);
	return strtod(p + strlen(key), NULL);
}

Test(defaults, run_preserves_and_streams_less_than_the_model, .init = setup, .fini = teardown)
{
	const char *img = rt_path(dir, "tiny.img");
	char err[512];
	cr_assert_eq(rt_synth(img, &tiny, 0, FK_Q8_0, CHUNK, FP_CODEC_RAW, 42, 1, err, sizeof err), 0,
	             "%s", err);
	fp_image *im = fp_image_open(img);
	cr_assert(im, "%s", fp_last_error());
	const double model_mib = (double)fp_image_info(im)->data_bytes / (1 << 20);
	fp_image_close(im);

	const int steps = 8;
	const char *budgets[] = {"40%", "25%"};
	for (size_t i = 0; i < sizeof budgets / sizeof budgets[0]; i++) {
		cr_assert_eq(rt_tool("run", img, "--load", "flexpage", "--budget", budgets[i], "--steps",
		                     "8", "--temperature", "0", "--ids", "--threads", "2", NULL),
		             0, "run at %s: %s", budgets[i], rt_err);
		cr_assert(strstr(rt_err, "paging: ") && strstr(rt_err, "preserve balanced"),
		          "run at %s does not say that balanced preservation is on:\n%s", budgets[i],
		          rt_err);
		/* the pager's own statistics: "...; preserved X MiB, ..." and
		 * "...; read X MiB, decompressed ..." */
		const double preserved = after(rt_err, "preserved "), read = after(rt_err, "; read ");
		cr_assert_gt(preserved, 0.0, "at %s nothing was preserved:\n%s", budgets[i], rt_err);
		cr_assert_lt(read / steps, model_mib,
		             "at %s a token read %.1f MiB, the whole model is %.1f MiB", budgets[i],
		             read / steps, model_mib);
		cr_log_info("default at %s: %.1f MiB preserved, %.1f MiB read a token of %.1f MiB",
		            budgets[i], preserved, read / steps, model_mib);
	}

	/* the ablation switch: no preservation at all */
	cr_assert_eq(rt_tool("run", img, "--load", "flexpage", "--budget", "25%", "--steps", "4",
	                     "--temperature", "0", "--ids", "--preserve", "none", NULL),
	             0, "%s", rt_err);
	cr_assert(strstr(rt_err, "no preservation"), "%s", rt_err);
	cr_assert_eq(after(rt_err, "preserved "), 0.0, "--preserve none preserved:\n%s", rt_err);
}

Test(defaults, plain_fp_open_preserves_unless_told_not_to, .init = setup, .fini = teardown)
{
	const char *img = rt_path(dir, "tiny.img");
	char err[512];
	cr_assert_eq(rt_synth(img, &tiny, 0, FK_Q8_0, CHUNK, FP_CODEC_RAW, 7, 1, err, sizeof err), 0,
	             "%s", err);
	fp_image *im = fp_image_open(img);
	cr_assert(im, "%s", fp_last_error());
	const uint64_t whole = fp_image_info(im)->data_bytes;
	fp_image_close(im);

	const unsigned flags[] = {0, FP_OPEN_NO_PRESERVE};
	for (size_t i = 0; i < 2; i++) {
		struct fp_options o = {.budget = whole / 4, .retries = -1, .readahead = -1,
		                       .flags = flags[i]};
		fp_region *r = fp_open(img, &o);
		cr_assert(r, "%s", fp_last_error());
		fp_quiesce(r); /* the preserved chunks are loaded at open */
		struct fp_stats st;
		fp_get_stats(r, &st);
		if (flags[i])
			cr_assert_eq(st.preserved_bytes, 0, "FP_OPEN_NO_PRESERVE preserved %llu bytes",
			             (unsigned long long)st.preserved_bytes);
		else
			cr_assert(st.preserved_bytes > 0 && st.preserved_bytes <= o.budget,
			          "a plain fp_open at a quarter preserved %llu bytes of a %llu byte budget",
			          (unsigned long long)st.preserved_bytes, (unsigned long long)o.budget);
		fp_close(r);
	}
	/* a budget that holds everything needs no plan: nothing is preserved
	 * ahead, chunks come on demand */
	struct fp_options o = {.retries = -1, .readahead = -1};
	fp_region *r = fp_open(img, &o);
	cr_assert(r, "%s", fp_last_error());
	fp_quiesce(r);
	struct fp_stats st;
	fp_get_stats(r, &st);
	cr_assert_eq(st.preserved_bytes, 0);
	fp_close(r);
}
