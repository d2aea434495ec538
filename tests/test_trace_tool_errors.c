/* flexpage trace on bad traces and bad options: exit 1 with the reason. */
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

/* ---- bad traces and options ------------------------------------------------------- */

static void copy_file(const char *from, const char *to, long cut)
{
	size_t len;
	char *p = slurp(from, &len);
	cr_assert_not_null(p);
	if (cut > 0)
		len -= (size_t)cut;
	FILE *f = fopen(to, "wb");
	cr_assert(f && fwrite(p, 1, len, f) == len && !fclose(f));
	free(p);
}

static void flip(const char *path, long off)
{
	FILE *f = fopen(path, "r+b");
	cr_assert_not_null(f);
	fseek(f, off, SEEK_SET);
	int c = fgetc(f);
	fseek(f, off, SEEK_SET);
	fputc(c ^ 0x5a, f);
	fclose(f);
}

static void expect_refused(const char *path, const char *why)
{
	struct run r = RUN(path);
	cr_expect_eq(r.code, 1, "%s: exit %d", why, r.code);
	cr_expect(strstr(r.err, why), "want '%s' in: %s", why, r.err);
	cr_expect(strstr(r.err, path), "the message names the file: %s", r.err);
	cr_expect_eq(r.out[0], 0, "nothing on stdout: %s", r.out);
	run_free(&r);
}

Test(trace_tool, bad_traces_exit_1_with_the_reason, .timeout = 60)
{
	struct recorded rec;
	record(&rec);
	const char *t = tmp("bad.trace");
	copy_file(rec.trace, t, 5);
	expect_refused(t, "truncated");
	copy_file(rec.trace, t, 0);
	flip(t, (long)sizeof(struct fp_trace_header) + 8); /* first record's type */
	expect_refused(t, "corrupt");
	copy_file(rec.trace, t, 0);
	flip(t, 0);
	expect_refused(t, "bad magic");
	copy_file(rec.trace, t, 0);
	cr_assert_eq(truncate(t, 100), 0);
	expect_refused(t, "too short");
	expect_refused(tmp("no-such.trace"), "cannot open");
	/* A header whose sizes do not add up (n_chunks is the first u32 after
	 * chunk_size). */
	copy_file(rec.trace, t, 0);
	flip(t, (long)offsetof(struct fp_trace_header, n_chunks) + 3);
	expect_refused(t, "corrupt trace header");
}

Test(trace_tool, a_trace_without_records_is_summarised, .timeout = 60)
{
	struct recorded rec;
	record(&rec);
	const char *t = tmp("empty.trace");
	size_t len;
	char *p = slurp(rec.trace, &len);
	cr_assert_not_null(p);
	FILE *f = fopen(t, "wb");
	cr_assert(f && fwrite(p, 1, sizeof(struct fp_trace_header), f) == sizeof(struct fp_trace_header) &&
	          !fclose(f));
	free(p);
	const char *json = tmp("empty.json");
	struct run r = have_gnuplot() ? RUN(t, "--hist", "--chrome", json, "--plot", tmp("empty"))
	                              : RUN(t, "--hist", "--chrome", json);
	cr_assert_eq(r.code, 0, "exit %d: %s", r.code, r.err);
	cr_expect(strstr(r.out, ": 0 records"), "%s", r.out);
	cr_expect(strstr(r.out, "tokens: none"), "%s", r.out);
	cr_expect(strstr(r.out, "no samples"), "%s", r.out);
	run_free(&r);
	jfree(load_json(json));
}

Test(trace_tool, options, .timeout = 30)
{
	struct run r = RUN("--help");
	cr_expect_eq(r.code, 0);
	cr_expect(strstr(r.out, "usage: flexpage trace"), "%s", r.out);
	run_free(&r);
	const char *const bad[][4] = {
		{"--bogus", "x.trace", NULL}, {"--tokens", "many", "x.trace", NULL},
		{"a.trace", "b.trace", NULL}, {"--chrome", NULL}, {"--hist", NULL},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		r = run_tool_env(NULL, bad[i]);
		cr_expect_eq(r.code, 2, "%s: exit %d", bad[i][0], r.code);
		cr_expect(strstr(r.err, "usage: flexpage trace"), "%s: %s", bad[i][0], r.err);
		run_free(&r);
	}
}
