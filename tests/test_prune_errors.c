/* flexpage prune on bad input: a K of every layer or more, a text too
 * short for one window, a model of one layer, an exhaustive search too
 * large, an OUT that exists: a clear message naming the cause, a non-zero
 * exit, no crash and no file written or harmed. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <flexkern/kernels.h>

#include "prune_fixture.h"
#include "rt_util.h"

#define STORIES PRUNE_STORIES
#define TOK512 PRUNE_TOK512

static const char *dir, *calib;
static char out[4096];

static void setup(void)
{
	prune_fixture_init(20000, NULL);
	dir = prune_dir;
	calib = prune_calib;
	snprintf(out, sizeof out, "%s", rt_path(dir, "out.img"));
}

TestSuite(prune_errors, .init = setup, .fini = prune_fixture_fini, .timeout = 300);

/* It failed with an exit code in want (0: any non-zero), said needle, and
 * left no OUT. */
static void expect_refused(int rc, int want, const char *needle, const char *what)
{
	cr_expect(rc != 0 && rc < 128, "%s: exit %d (128 + n is a signal)", what, rc);
	if (want)
		cr_expect_eq(rc, want, "%s: exit %d, expected %d: %s", what, rc, want, rt_err);
	cr_expect(strstr(rt_err, needle), "%s: '%s' is not in: %s", what, needle, rt_err);
	cr_expect(access(out, F_OK), "%s: %s was written", what, out);
}

Test(prune_errors, k_of_every_layer_or_more)
{
	expect_refused(rt_tool("prune", STORIES, "--calib", calib, "--drop", "5", "-o", out, NULL), 2,
	               "--drop 5", "--drop 5 of 5 layers");
	cr_expect(strstr(rt_err, "at most 4"), "%s", rt_err);
	expect_refused(rt_tool("prune", STORIES, "--calib", calib, "--drop", "9", "-o", out, NULL), 2,
	               "5 layers", "--drop 9 of 5 layers");
	expect_refused(rt_tool("prune", STORIES, "--calib", calib, "--drop", "0", "-o", out, NULL), 2,
	               "--drop", "--drop 0");
	expect_refused(rt_tool("prune", STORIES, "--calib", calib, "--target", "1K", "-o", out, NULL),
	               0, "--target 1K", "a target below one layer");
	/* a speed target: the rate is measured, so only the ends are certain */
	expect_refused(rt_tool("prune", STORIES, "--calib", calib, "--target", "1e9tok/s", "-o", out,
	                       NULL), 1, "more than all layers", "a rate no model of 1 layer reaches");
	expect_refused(rt_tool("prune", STORIES, "--calib", calib, "--target", "0.001tok/s", "-o",
	                       out, NULL), 1, "as fast already", "a rate the full model beats");
	expect_refused(rt_tool("prune", STORIES, "--calib", calib, "--target", "fasttok/s", "-o", out,
	                       NULL), 2, "not a rate", "a rate that is no number");
}

Test(prune_errors, text_too_short_for_one_window)
{
	char tiny[4096];
	snprintf(tiny, sizeof tiny, "%s", rt_path(dir, "tiny.txt"));
	const char text[] = "Once upon a time there was a cat.\n\nThe end.\n";
	cr_assert_eq(rt_write_file(tiny, text, sizeof text - 1), 0);
	expect_refused(rt_tool("prune", STORIES, "--calib", tiny, "--drop", "1", "-o", out, NULL), 0,
	               "tiny.txt", "a text of two short paragraphs");
	cr_expect(strstr(rt_err, "window"), "%s", rt_err);
	char empty[4096];
	snprintf(empty, sizeof empty, "%s", rt_path(dir, "empty.txt"));
	cr_assert_eq(rt_write_file(empty, "\n\n", 2), 0);
	expect_refused(rt_tool("prune", STORIES, "--calib", empty, "--drop", "1", "-o", out, NULL), 0,
	               "window", "a blank text");
	expect_refused(rt_tool("prune", STORIES, "--calib", rt_path(dir, "none.txt"), "--drop", "1",
	                       "-o", out, NULL), 0, "none.txt", "a missing text");
	/* a window longer than the model's positions is refused up front */
	expect_refused(rt_tool("prune", STORIES, "--calib", calib, "--drop", "1", "--window", "4096",
	                       "-o", out, NULL), 2, "seq_len", "--window 4096");
}

Test(prune_errors, a_model_without_layers_to_prune)
{
	char one[4096], err[512];
	snprintf(one, sizeof one, "%s", rt_path(dir, "one.img"));
	const struct frt_config cfg = {64, 172, 1, 8, 4, 512, 512, 0, 0};
	cr_assert_eq(rt_synth(one, &cfg, 1, FK_F32, 0, 0, 3, 1, err, sizeof err), 0, "%s", err);
	expect_refused(rt_tool("prune", one, "--calib", calib, "--tokenizer", TOK512, "--drop", "1",
	                       "-o", out, NULL), 0, "no layer to prune", "a model of one layer");
	cr_expect(strstr(rt_err, "one.img"), "%s", rt_err);
}

Test(prune_errors, options_and_files)
{
	expect_refused(rt_tool("prune", STORIES, "--calib", calib, "-o", out, NULL), 2,
	               "--drop K or --target", "neither --drop nor --target");
	expect_refused(rt_tool("prune", STORIES, "--calib", calib, "--drop", "1", "--method", "best",
	                       "-o", out, NULL), 2, "'best'", "an unknown method");
	expect_refused(rt_tool("prune", STORIES, "--calib", calib, "--drop", "1", "--fitness", "bleu",
	                       "-o", out, NULL), 2, "'bleu'", "an unknown fitness");
	expect_refused(rt_tool("prune", STORIES, "--drop", "1", "-o", out, NULL), 2, "--calib",
	               "no --calib");
	expect_refused(rt_tool("prune", STORIES, "--calib", calib, "--drop", "2", "--method",
	                       "exhaustive", "--max-masks", "5", "-o", out, NULL), 2, "10 masks",
	               "an exhaustive search above --max-masks");
	expect_refused(rt_tool("prune", rt_path(dir, "nothing.bin"), "--calib", calib, "--drop", "1",
	                       "-o", out, NULL), 0, "nothing.bin", "a missing model");

	/* an OUT that exists is left as it was without --force */
	const char precious[] = "the user's file";
	cr_assert_eq(rt_write_file(out, precious, sizeof precious), 0);
	const int rc = rt_tool("prune", STORIES, "--calib", calib, "--drop", "1", "-o", out, NULL);
	cr_expect_eq(rc, 1, "exit %d: %s", rc, rt_err);
	cr_expect(strstr(rt_err, "--force"), "%s", rt_err);
	size_t n;
	char *kept = rt_read_file(out, &n);
	cr_expect(kept && n == sizeof precious && !memcmp(kept, precious, n), "%s was changed", out);
	free(kept);
	cr_expect_eq(rt_tool("prune", STORIES, "--calib", calib, "--drop", "1", "-o", out, "--force",
	                     "-q", NULL), 0, "%s", rt_err);
	unlink(out);
	/* --target: 75% of the 1040128 bytes of weights takes two layers of
	 * 181760 (one leaves 858368, above 780096) */
	cr_expect_eq(rt_tool("prune", STORIES, "--calib", calib, "--target", "75%", "--dry-run", "-q",
	                     NULL), 0, "%s", rt_err);
	cr_expect(strstr(rt_out, " drop=2 "), "--target 75%%: %s", rt_out);
	cr_expect_eq(rt_tool("prune", "--help", NULL), 0);
	cr_expect(strstr(rt_out, "--drop K") && strstr(rt_out, "--fitness"), "%s", rt_out);
}
