/* flexpage trace --plot: two PNGs, or a clear error without gnuplot. */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <flexpage/flexpage_experimental.h>


#include "json_util.h"
#include "trace_tool_util.h"

/* ---- --plot ----------------------------------------------------------------------- */

static void expect_png(const char *path)
{
	size_t len;
	char *p = slurp(path, &len);
	cr_assert_not_null(p, "no %s", path);
	cr_expect_gt(len, 1000, "%s is %zu bytes", path, len);
	cr_expect_eq(memcmp(p, "\x89PNG\r\n\x1a\n", 8), 0, "%s is not a PNG", path);
	free(p);
}

Test(trace_tool, plot_writes_two_pngs, .timeout = 60)
{
	if (!have_gnuplot())
		cr_skip_test("gnuplot is not installed (apt-get install gnuplot-nox)");
	struct recorded rec;
	record(&rec);
	const char *prefix = tmp("plot 'it'");
	struct run r = RUN(rec.trace, "-q", "--plot", prefix);
	cr_assert_eq(r.code, 0, "exit %d: %s", r.code, r.err);
	run_free(&r);
	char png[600];
	snprintf(png, sizeof png, "%s-latency.png", prefix);
	expect_png(png);
	snprintf(png, sizeof png, "%s-resident.png", prefix);
	expect_png(png);
}

Test(trace_tool, plot_without_gnuplot_names_the_package, .timeout = 60)
{
	struct recorded rec;
	record(&rec);
	const char *empty = tmp("empty-bin");
	mkdir(empty, 0755);
	struct run r = run_tool_env(empty, (const char *const[]){rec.trace, "-q", "--plot",
	                                                         tmp("none"), NULL});
	cr_expect_eq(r.code, 1, "exit %d", r.code);
	cr_expect(strstr(r.err, "gnuplot-nox"), "%s", r.err);
	run_free(&r);
}
