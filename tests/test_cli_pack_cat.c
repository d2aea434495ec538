/* The flexpage command, run as a program: pack then cat gives exactly the
 * input's bytes, for every codec and chunk size. */
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
