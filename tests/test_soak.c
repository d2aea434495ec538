/* bench/soak for a minute, as CI runs it: its report must say that no byte
 * read differed from the file, that the budget held at every check, and
 * that it served enough faults to have tested something.  The soak checks
 * every byte against its own copy of the data it gave the writer, never
 * against what the pager says. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

/* The value of a "key value" line of the report, or -1 if it is missing. */
static double value(const char *report, const char *key)
{
	size_t n = strlen(key);
	for (const char *l = report; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
		if (!strncmp(l, key, n) && l[n] == ' ')
			return atof(l + n + 1);
	return -1;
}

Test(soak, a_minute_of_faults_every_byte_right_and_the_budget_held, .timeout = 300)
{
	char *io = tu_tmpdir(), *dir = tu_tmpdir();
	cr_assert(io && dir);
	char images[4096];
	snprintf(images, sizeof images, "%s/images", dir);
	const char *const argv[] = {FLEXPAGE_SOAK, "--duration", "60", "--size", "12M", "--seed",
	                            "3", "--dir", images, "--out", dir, "--quiet", NULL};
	struct tu_proc p;
	cr_assert(!tu_run(io, argv, 240, &p), "cannot run %s", FLEXPAGE_SOAK);
	cr_expect(!p.timed_out, "the soak hung; stderr: %s", p.err);
	cr_expect(p.exited && p.code == 0, "the soak failed (exit %d, signal %d); stderr: %s\n%s",
	          p.code, p.sig, p.err, p.out);
	double faults = value(p.out, "faults"), checked = value(p.out, "bytes_checked");
	cr_expect_eq(value(p.out, "wrong_bytes"), 0, "wrong bytes; stderr: %s", p.err);
	cr_expect_eq(value(p.out, "overruns"), 0, "budget overruns; stderr: %s", p.err);
	/* Floors far below what a loaded two-core machine serves in a
	 * minute (50 000 faults and more), far above a soak that stopped. */
	cr_expect_geq(faults, 20000, "only %.0f faults", faults);
	cr_expect_geq(checked, 1e9, "only %.0f bytes checked", checked);
	cr_expect_geq(value(p.out, "budget_changes"), 1000, "too few budget changes");
	cr_expect_geq(value(p.out, "policy_changes"), 100, "too few policy changes");
	cr_expect_gt(value(p.out, "residency_checks"), 1000, "too few residency checks");
	cr_expect(strstr(p.out, "result PASS") != NULL, "%s", p.out);
	tu_proc_free(&p);
	tu_rmtree(io);
	tu_rmtree(dir);
	free(io);
	free(dir);
}
