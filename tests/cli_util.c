/* What the flexpage command suites share: the suite, its directories, and
 * running the tool with its output captured.  The reference is always the
 * plain bytes of the input file. */
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

char *g_dir;
char *g_io;

void cli_setup(void)
{
	g_dir = tu_tmpdir();
	g_io = tu_tmpdir();
	cr_assert(g_dir && g_io, "cannot create a temporary directory under /var/tmp or /tmp");
	cr_assert(!access(FLEXPAGE_TOOL, X_OK), "the flexpage tool is not built: %s", FLEXPAGE_TOOL);
}

void cli_teardown(void)
{
	tu_rmtree(g_dir);
	tu_rmtree(g_io);
	free(g_dir);
	free(g_io);
	g_dir = g_io = NULL;
}

TestSuite(cli, .init = cli_setup, .fini = cli_teardown, .timeout = 120);

/* ------------------------------------------------------------------ */
/* Helpers                                                              */

struct tu_proc run_(const char *const *argv)
{
	struct tu_proc p;
	cr_assert(!tu_run(g_io, argv, 60, &p), "cannot run %s: %s", argv[0], strerror(errno));
	char cmd[512] = "";
	for (const char *const *a = argv + 1; *a && strlen(cmd) < 400; a++)
		snprintf(cmd + strlen(cmd), sizeof cmd - strlen(cmd), "%s%s", cmd[0] ? " " : "", *a);
	cr_assert(!p.timed_out, "flexpage %s: did not finish within 60 s (hang?)\nstderr: %s", cmd, p.err);
	return p;
}

void expect_exit(const struct tu_proc *p, int code, const char *what)
{
	cr_assert(p->exited, "%s: killed by signal %d\nstderr: %s", what, p->sig, p->err);
	cr_assert_eq(p->code, code, "%s: exit status %d, expected %d\nstderr: %s", what, p->code, code,
	             p->err);
}

void expect_failure(const struct tu_proc *p, const char *what)
{
	cr_assert(p->exited, "%s: killed by signal %d (expected a clean failure)\nstderr: %s", what,
	          p->sig, p->err);
	cr_assert_neq(p->code, 0, "%s: exit status 0, expected a failure\nstdout: %.300s", what, p->out);
}

char *path(const char *name)
{
	char *p = tu_join(g_dir, name);
	cr_assert(p);
	return p;
}

/* A file of n bytes: 64 KiB stretches, alternately compressible and random. */
uint8_t *make_input(const char *file, size_t n, uint64_t seed)
{
	uint8_t *buf = malloc(n);
	cr_assert(buf);
	for (size_t off = 0, k = 0; off < n; off += 65536, k++) {
		size_t len = n - off < 65536 ? n - off : 65536;
		if (k % 2)
			tu_fill_random(seed + k, buf + off, len);
		else
			tu_fill_compressible(seed + k, buf + off, len);
	}
	cr_assert(!tu_write_file(file, buf, n));
	return buf;
}

void expect_file(const char *file, const uint8_t *want, size_t n, const char *what)
{
	size_t len;
	uint8_t *got = tu_read_file(file, &len);
	cr_assert(got, "%s: %s is gone", what, file);
	cr_assert_eq(len, n, "%s: %s is %zu bytes, expected %zu", what, file, len, n);
	cr_assert_arr_eq(got, want, n, "%s: %s changed", what, file);
	free(got);
}

void expect_no_extras(const char *const *names, const char *what)
{
	char *extra = tu_dir_extras(g_dir, names);
	cr_assert_str_eq(extra, "", "%s: unexpected files beside OUT: %s", what, extra);
	free(extra);
}

void expect_output(const struct tu_proc *p, const uint8_t *want, size_t n, const char *what)
{
	cr_assert_eq(p->out_len, n, "%s: wrote %zu bytes, expected %zu\nstderr: %s", what, p->out_len, n,
	             p->err);
	for (size_t k = 0; k < n; k++)
		if ((uint8_t)p->out[k] != want[k])
			cr_assert_fail("%s: byte %zu (chunk of 64K #%zu) is 0x%02x, expected 0x%02x", what, k,
			               k >> 16, (uint8_t)p->out[k], want[k]);
}

void require_uffd(void)
{
	long fd = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (fd >= 0) {
		close((int)fd);
		return;
	}
	int e = errno;
#ifdef USERFAULTFD_IOC_NEW
	int dfd = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
	if (dfd >= 0) {
		int u = ioctl(dfd, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
		close(dfd);
		if (u >= 0) {
			close(u);
			return;
		}
	}
#endif
	cr_skip_test("userfaultfd is unavailable here (%s): run as root, or set "
	             "vm.unprivileged_userfaultfd=1, or give access to /dev/userfaultfd",
	             strerror(e));
}


char *pack_small(const char *codec, size_t n, uint8_t **data)
{
	char *in = path("in.bin"), *out = path("img.fpi");
	uint8_t *d = make_input(in, n, 23);
	struct tu_proc p = RUN("pack", in, out, "--chunk", "64K", "--codec", codec, "-q");
	expect_exit(&p, 0, "pack");
	tu_proc_free(&p);
	free(in);
	if (data)
		*data = d;
	else
		free(d);
	return out;
}

void expect_says(const struct tu_proc *p, const char *alts, const char *what)
{
	size_t n = p->out_len + p->err_len + 2;
	char *all = malloc(n);
	snprintf(all, n, "%s\n%s", p->out, p->err);
	cr_assert(tu_contains_any(all, alts), "%s: the output does not say %s:\nstdout: %s\nstderr: %s",
	          what, alts, p->out, p->err);
	free(all);
}

uint8_t *precious(const char *file)
{
	uint8_t *b = malloc(10000);
	tu_fill_random(99, b, 10000);
	cr_assert(!tu_write_file(file, b, 10000));
	return b;
}
