/* flexpage where it is not trusted: the preload library inside a
 * set-user-ID program (secure execution, AT_SECURE = 1: the environment
 * is not the program's to honour), and the pager under an unprivileged
 * user, who gets userfaultfd in user mode only.  Both need root, to make
 * the set-user-ID program and to become the user nobody; each runs the
 * real thing: the kernel's AT_SECURE, the kernel's UFFD_USER_MODE_ONLY. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/userfaultfd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <flexpage/flexpage.h>

#include "region_util.h"
#include "testutil.h"

#define NOBODY 65534

static char *g_tmp;

static void setup(void)
{
	g_tmp = tu_tmpdir();
	cr_assert(g_tmp, "cannot create a temporary directory");
	cr_assert(!chmod(g_tmp, 0755), "chmod %s: %s", g_tmp, strerror(errno));
}

static void teardown(void)
{
	if (g_tmp)
		tu_rmtree(g_tmp);
	free(g_tmp);
	g_tmp = NULL;
}

TestSuite(untrusted, .init = setup, .fini = teardown, .timeout = 120);

static void need_root(void)
{
	if (geteuid() != 0)
		cr_skip_test("needs root: to make a set-user-ID program and to become nobody");
}

static void become_nobody(void)
{
	if (setgroups(0, NULL) || setgid(NOBODY) || setuid(NOBODY))
		_exit(120);
}

/* ------------------------------------------------------------------ */
/* The preload library in a set-user-ID program                          */

struct ran {
	int status;
	char *out, *err;
};

/* prog run as nobody with exactly env, stdout and stderr captured. */
static struct ran run_as_nobody(const char *prog, const char *const *argv, const char *const *env)
{
	char *out = tu_join(g_tmp, "out"), *err = tu_join(g_tmp, "err");
	pid_t pid = fork();
	cr_assert(pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		int o = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		int e = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (o < 0 || e < 0 || dup2(o, 1) < 0 || dup2(e, 2) < 0)
			_exit(121);
		become_nobody();
		execve(prog, (char *const *)argv, (char *const *)env);
		_exit(122);
	}
	struct ran r = {0};
	for (int t = 0; t < 600; t++) {
		if (waitpid(pid, &r.status, WNOHANG) == pid)
			break;
		if (t == 599) {
			kill(pid, SIGKILL);
			waitpid(pid, &r.status, 0);
			cr_assert_fail("%s: did not finish within 60 s", prog);
		}
		usleep(100000);
	}
	size_t n;
	r.out = tu_read_file(out, &n);
	r.err = tu_read_file(err, &n);
	cr_assert(r.out && r.err, "cannot read the captured output");
	free(out);
	free(err);
	return r;
}

static void ran_free(struct ran *r)
{
	free(r->out);
	free(r->err);
}

/* The probe linked with libflexpage-preload.so, copied to path with mode. */
static void copy_probe(const char *path, mode_t mode)
{
	size_t n;
	void *b = tu_read_file(FLEXPAGE_SECURE_PROBE, &n);
	cr_assert(b, "cannot read %s", FLEXPAGE_SECURE_PROBE);
	cr_assert(!tu_write_file(path, b, n), "cannot write %s", path);
	free(b);
	/* chown to root first: a set-user-ID bit is cleared by a chown after it */
	cr_assert(!chown(path, 0, 0) && !chmod(path, mode), "%s: %s", path, strerror(errno));
}

static char *make_gguf(void)
{
	char *gguf = tu_join(g_tmp, "model.gguf");
	const char *argv[] = {FLEXPAGE_TOOL, "synth", "-q", "--shape", "64,128,2,4,4,20000,32",
	                      "-o", gguf, NULL};
	struct tu_proc p;
	cr_assert(!tu_run(g_tmp, argv, 60, &p) && p.exited && p.code == 0,
	          "flexpage synth failed: %s", p.err);
	tu_proc_free(&p);
	cr_assert(!chmod(gguf, 0644));
	return gguf;
}

static void expect_line(const struct ran *r, const char *line, const char *what)
{
	cr_assert(strstr(r->out, line), "%s: the probe does not say '%s':\n%s\nstderr:\n%s", what,
	          line, r->out, r->err);
}

/* LeakSanitizer cannot stop a set-user-ID process's threads (it is not
 * dumpable), so an ASan build's probe runs without it. */
#define SANITIZER_ENV "ASAN_OPTIONS=detect_leaks=0"

Test(untrusted, preload_ignores_the_environment_of_a_set_user_id_program)
{
	need_root();
	char *gguf = make_gguf();
	char *plain = tu_join(g_tmp, "probe"), *suid = tu_join(g_tmp, "probe-suid");
	copy_probe(plain, 0755);
	copy_probe(suid, 04755);
	const char *const argv_plain[] = {plain, "read", gguf, "at_secure", NULL};
	const char *const argv_suid[] = {suid, "read", gguf, "at_secure", NULL};

	/* A setting that cannot be used: honoured, nothing is served and the
	 * library says why; in secure execution it is not read at all, and
	 * the defaults serve the model. */
	const char *const bad[] = {"FLEXPAGE_BUDGET=lots", SANITIZER_ENV, NULL};
	struct ran r = run_as_nobody(plain, argv_plain, bad);
	cr_assert(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0, "plain probe: status 0x%x\n%s",
	          r.status, r.err);
	expect_line(&r, "at_secure: 0", "plain probe");
	expect_line(&r, "map: kernel", "plain probe, FLEXPAGE_BUDGET=lots");
	cr_assert(strstr(r.err, "FLEXPAGE_BUDGET"), "plain probe: the library did not say what is "
	          "wrong with FLEXPAGE_BUDGET:\n%s", r.err);
	ran_free(&r);

	r = run_as_nobody(suid, argv_suid, bad);
	cr_assert(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0,
	          "set-user-ID probe: status 0x%x\n%s", r.status, r.err);
	expect_line(&r, "at_secure: 1", "set-user-ID probe");
	expect_line(&r, "map: served", "set-user-ID probe, FLEXPAGE_BUDGET=lots ignored");
	expect_line(&r, "bytes: equal", "set-user-ID probe");
	cr_assert(!strstr(r.err, "FLEXPAGE_BUDGET"),
	          "set-user-ID probe: the library read FLEXPAGE_BUDGET:\n%s", r.err);
	ran_free(&r);

	/* A good setting: the summary it asks for comes only where it may. */
	const char *const stats[] = {"FLEXPAGE_STATS=exit", SANITIZER_ENV, NULL};
	r = run_as_nobody(plain, argv_plain, stats);
	expect_line(&r, "map: served", "plain probe, FLEXPAGE_STATS=exit");
	cr_assert(strstr(r.err, "unmapped:"), "plain probe: no summary for FLEXPAGE_STATS=exit:\n%s",
	          r.err);
	ran_free(&r);
	r = run_as_nobody(suid, argv_suid, stats);
	expect_line(&r, "map: served", "set-user-ID probe, FLEXPAGE_STATS=exit");
	expect_line(&r, "bytes: equal", "set-user-ID probe");
	cr_assert(!strstr(r.err, "unmapped:"),
	          "set-user-ID probe: the library read FLEXPAGE_STATS:\n%s", r.err);
	ran_free(&r);
	free(plain);
	free(suid);
	free(gguf);
}

/* ------------------------------------------------------------------ */
/* An unprivileged user: UFFD_USER_MODE_ONLY                             */

#define CHUNK (256u << 10)
#define LEN (8u * CHUNK)

static int sysctl_value(const char *path)
{
	FILE *f = fopen(path, "r");
	int v = -1;
	if (f && fscanf(f, "%d", &v) != 1)
		v = -1;
	if (f)
		fclose(f);
	return v;
}

/* write(2) of len bytes from p into a pipe: what it returned, errno in
 * *err; the bytes that came out of the pipe in back. */
static ssize_t write_pipe(const void *p, size_t len, int *err, uint8_t *back)
{
	int fd[2];
	if (pipe(fd))
		return -2;
	ssize_t n = write(fd[1], p, len);
	*err = errno;
	if (n > 0 && read(fd[0], back, (size_t)n) != n)
		n = -3;
	close(fd[0]);
	close(fd[1]);
	return n;
}

/* An O_DIRECT write of 4 KiB from p into a new file in dir: its result,
 * errno in *err, the file's bytes in back. */
static ssize_t write_direct(const char *dir, const void *p, int *err, uint8_t *back)
{
	char path[512];
	snprintf(path, sizeof path, "%s/direct.%d", dir, (int)getpid());
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_DIRECT, 0600);
	if (fd < 0)
		return -2;
	ssize_t n = pwrite(fd, p, 4096, 0);
	*err = errno;
	close(fd);
	fd = open(path, O_RDONLY); /* read back through the page cache */
	if (n == 4096 && (fd < 0 || pread(fd, back, 4096, 0) != 4096))
		n = -3;
	if (fd >= 0)
		close(fd);
	unlink(path);
	return n;
}

/* What the child found, as its exit status. */
enum {
	OK = 0, FULL_UFFD = 40, NO_USER_MODE, OPEN_FAILED, PIPE_BEFORE, DIRECT_BEFORE, BYTES,
	PIPE_AFTER, DIRECT_AFTER, ROOT_PIPE, ROOT_DIRECT,
};
static const char *const what_failed[] = {
	"a full userfaultfd opened as nobody", "no UFFD_USER_MODE_ONLY userfaultfd for nobody",
	"fp_open as nobody failed", "write(2) from a page not yet resident did not fail with EFAULT",
	"an O_DIRECT write from a page not yet resident did not fail with EFAULT",
	"the region read wrong bytes (user-mode faults not served)",
	"write(2) from a resident page failed or wrote wrong bytes",
	"an O_DIRECT write from a resident page failed or wrote wrong bytes",
	"as root, write(2) from a page not yet resident failed or wrote wrong bytes",
	"as root, an O_DIRECT write from a page not yet resident failed or wrote wrong bytes",
};

/* The region of path opened with no read-ahead and no preservation, so
 * that a page is resident only once the loop has touched it. */
static fp_region *open_lazy(const char *path)
{
	struct fp_options o = ru_options(0);
	o.readahead = 0;
	o.flags |= FP_OPEN_NO_PRESERVE;
	return fp_open(path, &o);
}

#define USER_SEED 16

/* As nobody (argv: image, a directory on disk): the mode and its limits. */
RU_CHILD(unprivileged_child)
{
	if (argc != 2)
		return 127;
	const char *path = argv[0], *dir = argv[1];
	uint8_t *ref = ru_data(LEN, USER_SEED);
	become_nobody();
	/* the kernel's answer to this user, before the pager asks it */
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC);
	if (fd >= 0 || (errno != EPERM && errno != EACCES))
		return FULL_UFFD;
	if (open("/dev/userfaultfd", O_RDWR | O_CLOEXEC) >= 0)
		return FULL_UFFD;
	fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | UFFD_USER_MODE_ONLY);
	if (fd < 0)
		return NO_USER_MODE;
	close(fd);

	fp_region *r = open_lazy(path);
	if (!r) {
		fprintf(stderr, "unprivileged fp_open: %s\n", fp_last_error());
		return OPEN_FAILED;
	}
	const uint8_t *base = fp_tensor(r, "data", NULL);
	uint8_t *back = malloc(4096);
	int err = 0, rc = OK;
	ssize_t n = 0;
	/* The kernel's own faults on the region are refused: chunk 1 for
	 * write(2), chunk 2 for an O_DIRECT write, each untouched so far. */
	if ((n = write_pipe(base + CHUNK, 4096, &err, back)) != -1 || err != EFAULT)
		rc = PIPE_BEFORE;
	else if ((n = write_direct(dir, base + 2 * CHUNK, &err, back)) != -1 || err != EFAULT)
		rc = DIRECT_BEFORE;
	/* The program's own reads are served, every byte */
	else if (memcmp(base, ref, LEN))
		rc = BYTES;
	/* and once resident, the pages are the kernel's to read too */
	else if ((n = write_pipe(base + CHUNK, 4096, &err, back)) != 4096 ||
	         memcmp(back, ref + CHUNK, 4096))
		rc = PIPE_AFTER;
	else if ((n = write_direct(dir, base + 2 * CHUNK, &err, back)) != 4096 ||
	         memcmp(back, ref + 2 * CHUNK, 4096))
		rc = DIRECT_AFTER;
	if (rc)
		fprintf(stderr, "as nobody: the last call returned %zd, errno %d\n", n, err);
	free(back);
	free(ref);
	fp_close(r);
	return rc;
}

/* The same system calls as root, whose full userfaultfd serves the
 * kernel's faults: the EFAULTs above are the mode's, not the test's. */
RU_CHILD(root_child)
{
	if (argc != 2)
		return 127;
	const char *path = argv[0], *dir = argv[1];
	uint8_t *ref = ru_data(LEN, USER_SEED);
	fp_region *r = open_lazy(path);
	if (!r)
		return OPEN_FAILED;
	const uint8_t *base = fp_tensor(r, "data", NULL);
	uint8_t *back = malloc(4096);
	int err = 0, rc = OK;
	if (write_pipe(base + CHUNK, 4096, &err, back) != 4096 || memcmp(back, ref + CHUNK, 4096))
		rc = ROOT_PIPE;
	else if (write_direct(dir, base + 2 * CHUNK, &err, back) != 4096 ||
	         memcmp(back, ref + 2 * CHUNK, 4096))
		rc = ROOT_DIRECT;
	free(back);
	free(ref);
	fp_close(r);
	return rc;
}

/* Child `name` on path, as a fresh process (ru_run_child): it must exit 0. */
static void expect_child(const char *name, const char *path, const char *who)
{
	int status = ru_run_child(name, (const char *const[]){path, ru_tmpdir(), NULL});
	cr_assert_neq(status, -1, "cannot start the child");
	cr_assert(WIFEXITED(status), "%s: killed by signal %d", who, WTERMSIG(status));
	int code = WEXITSTATUS(status);
	cr_assert_eq(code, 0, "%s: %s (exit %d)", who,
	             code >= FULL_UFFD && code <= ROOT_DIRECT ? what_failed[code - FULL_UFFD] : "?",
	             code);
}

Test(untrusted, unprivileged_user_gets_user_mode_only_and_its_limits)
{
	need_root();
	if (sysctl_value("/proc/sys/vm/unprivileged_userfaultfd") != 0)
		cr_skip_test("vm.unprivileged_userfaultfd is not 0: every user gets full userfaultfd");
	uint8_t *ref = ru_data(LEN, USER_SEED);
	char path[512];
	snprintf(path, sizeof path, "%s/user-mode.img", ru_tmpdir());
	ru_write_image(path, ref, LEN, CHUNK, FP_CODEC_RAW);
	cr_assert(!chmod(path, 0644) && !chmod(ru_tmpdir(), 0777 | S_ISVTX));
	expect_child("unprivileged_child", path, "as nobody");
	expect_child("root_child", path, "as root");
	unlink(path);
	free(ref);
}
