/* The flexpage command, run as a program: usage errors and --help. */
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
#include "cli_util.h"

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
