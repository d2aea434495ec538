/* The prune suites' set-up: one calibration prefix of the shared text. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "prune_fixture.h"
#include "rt_util.h"

char *prune_dir;
char prune_calib[4096];

void prune_fixture_init(size_t calib_bytes, const char *extra)
{
	const char *need[] = {PRUNE_STORIES, PRUNE_TOK512, PRUNE_TEXT, extra};
	for (size_t i = 0; i < sizeof need / sizeof need[0]; i++)
		if (need[i] && access(need[i], R_OK))
			cr_skip_test("%s is missing: these tests need the shared models and text", need[i]);
	struct stat st;
	cr_assert(!stat(PRUNE_TEXT, &st) && (size_t)st.st_size > calib_bytes,
	          "%s holds %lld bytes, fewer than the %zu of the calibration text", PRUNE_TEXT,
	          (long long)st.st_size, calib_bytes);
	prune_dir = rt_tmpdir();
	cr_assert(prune_dir, "no temporary directory");
	snprintf(prune_calib, sizeof prune_calib, "%s", rt_path(prune_dir, "calib.txt"));
	cr_assert_eq(rt_copy_resized(PRUNE_TEXT, prune_calib, calib_bytes), 0, "writing %s",
	             prune_calib);
}

void prune_fixture_fini(void)
{
	if (prune_dir)
		rt_rmtree(prune_dir);
	free(prune_dir);
	prune_dir = NULL;
}
