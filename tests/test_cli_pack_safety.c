/* The flexpage command, run as a program: pack never harms an existing
 * OUT, not on a full disk nor when killed, and refuses bad inputs and
 * outputs. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <flexpage/flexpage.h>

#include "testutil.h"
#include "cli_util.h"

/* ------------------------------------------------------------------ */
/* pack: never harms an existing OUT                                    */

Test(cli, pack_refuses_to_overwrite_without_force)
{
	require_uffd();
	char *in = path("in.bin"), *out = path("out.fpi");
	const size_t n = 200000;
	uint8_t *data = make_input(in, n, 3);
	uint8_t *old = precious(out);
	struct tu_proc p = RUN("pack", in, out, "--chunk", "64K");
	expect_failure(&p, "pack over an existing OUT");
	expect_says(&p, "--force|exists", "pack over an existing OUT");
	tu_proc_free(&p);
	expect_file(out, old, 10000, "pack without --force");
	const char *const names[] = {"in.bin", "out.fpi", NULL};
	expect_no_extras(names, "pack without --force");

	p = RUN("pack", in, out, "--chunk", "64K", "--force", "-q");
	expect_exit(&p, 0, "pack --force");
	tu_proc_free(&p);
	expect_no_extras(names, "pack --force");
	p = RUN("cat", out);
	expect_exit(&p, 0, "cat");
	expect_output(&p, data, n, "cat after pack --force");
	tu_proc_free(&p);
	free(old);
	free(data);
	free(in);
	free(out);
}

static void write_truncated_checkpoint(const char *file)
{
	/* llama2.c header: dim=64, hidden_dim=172, n_layers=5, n_heads=8,
	 * n_kv_heads=4, vocab_size=512, seq_len=512; then far too few floats. */
	int32_t hdr[7] = {64, 172, 5, 8, 4, 512, 512};
	size_t n = sizeof hdr + 40000;
	uint8_t *b = calloc(1, n);
	memcpy(b, hdr, sizeof hdr);
	tu_fill_random(8, b + sizeof hdr, 40000);
	cr_assert(!tu_write_file(file, b, n));
	free(b);
}

Test(cli, pack_failing_midway_keeps_out)
{
	char *in = path("short.bin"), *out = path("out.fpi");
	write_truncated_checkpoint(in);
	uint8_t *old = precious(out);
	const char *const names[] = {"short.bin", "out.fpi", NULL};
	static const char *const variants[][2] = {{"--chunk", "64K"}, {"--quant", "q8_0"}, {"--codec", "zstd"}};
	for (size_t k = 0; k < 3; k++) {
		struct tu_proc p = RUN("pack", in, out, "--force", "-q", variants[k][0], variants[k][1]);
		expect_failure(&p, "pack of a truncated checkpoint");
		expect_says(&p, "short.bin", "pack of a truncated checkpoint");
		tu_proc_free(&p);
		expect_file(out, old, 10000, "a failed pack");
		expect_no_extras(names, "a failed pack");
	}
	/* Without an existing OUT, none is left behind. */
	cr_assert(!unlink(out));
	struct tu_proc p = RUN("pack", in, out, "-q");
	expect_failure(&p, "pack of a truncated checkpoint");
	tu_proc_free(&p);
	cr_assert(!tu_file_exists(out), "a failed pack left OUT behind");
	const char *const only_in[] = {"short.bin", NULL};
	expect_no_extras(only_in, "a failed pack");
	free(old);
	free(in);
	free(out);
}

Test(cli, pack_io_error_keeps_out)
{
	/* The child inherits a file size limit and an ignored SIGXFSZ: its
	 * writes past 1 MiB fail with EFBIG, like a full disk. */
	char *in = path("in.bin"), *out = path("out.fpi");
	uint8_t *data = make_input(in, 3u << 20, 9);
	uint8_t *old = precious(out);
	signal(SIGXFSZ, SIG_IGN);
	struct rlimit rl = {1u << 20, 1u << 20};
	cr_assert(!setrlimit(RLIMIT_FSIZE, &rl));
	const char *const names[] = {"in.bin", "out.fpi", NULL};
	static const char *const codecs[] = {"raw", "zstd"};
	for (int k = 0; k < 2; k++) {
		struct tu_proc p = RUN("pack", in, out, "--force", "-q", "--chunk", "64K", "--codec", codecs[k]);
		expect_failure(&p, "pack onto a full disk");
		expect_says(&p, "write|large|space", "pack onto a full disk");
		tu_proc_free(&p);
		expect_file(out, old, 10000, "pack onto a full disk");
		expect_no_extras(names, "pack onto a full disk");
	}
	free(old);
	free(data);
	free(in);
	free(out);
}

Test(cli, pack_out_in_missing_directory_or_a_directory)
{
	char *in = path("in.bin"), *out = path("no/such/dir/out.fpi"), *dir = path("adir");
	uint8_t *data = make_input(in, 100000, 10);
	struct tu_proc p = RUN("pack", in, out);
	expect_failure(&p, "pack into a missing directory");
	expect_says(&p, "no/such/dir", "pack into a missing directory");
	tu_proc_free(&p);
	cr_assert(!mkdir(dir, 0755));
	p = RUN("pack", in, dir);
	expect_failure(&p, "pack onto a directory");
	tu_proc_free(&p);
	p = RUN("pack", in, dir, "--force");
	expect_failure(&p, "pack --force onto a directory");
	tu_proc_free(&p);
	struct stat st;
	cr_assert(!stat(dir, &st) && S_ISDIR(st.st_mode), "the directory OUT was replaced");
	const char *const names[] = {"in.bin", "adir", NULL};
	expect_no_extras(names, "pack onto a directory");
	free(data);
	free(in);
	free(out);
	free(dir);
}

static void pack_cat_sizes(const size_t *sizes, size_t count)
{
	require_uffd();
	char *in = path("in.bin"), *out = path("out.fpi");
	for (size_t k = 0; k < count; k++) {
		uint8_t *data = make_input(in, sizes[k], k);
		struct tu_proc p = RUN("pack", in, out, "--force", "-q", "--chunk", "64K",
		                       "--codec", k % 2 ? "zstd" : "raw");
		expect_exit(&p, 0, "pack");
		tu_proc_free(&p);
		p = RUN("cat", out);
		expect_exit(&p, 0, "cat");
		expect_output(&p, data, sizes[k], "cat of an edge-sized file");
		tu_proc_free(&p);
		free(data);
	}
	free(in);
	free(out);
}

Test(cli, pack_cat_edge_sizes)
{
	/* One chunk plus one byte, two chunks exactly, two plus one byte. */
	static const size_t sizes[] = {65537, 131072, 131073};
	pack_cat_sizes(sizes, 3);
}

Test(cli, cat_single_chunk_image)
{
	/* An image of one chunk (a file of at most one chunk: any file up to
	 * 2 MiB with the default chunk size) must be readable with the
	 * default budget, which is the whole image. */
	static const size_t sizes[] = {1, 4096, 65536};
	pack_cat_sizes(sizes, 3);
}

Test(cli, cat_invalid_image)
{
	char *img = pack_small("raw", 3 * 65536, NULL);
	struct stat st;
	cr_assert(!stat(img, &st));
	cr_assert(!truncate(img, st.st_size - 1));
	struct tu_proc p = RUN("cat", img);
	expect_exit(&p, 1, "cat of a truncated image");
	expect_says(&p, img, "cat of a truncated image");
	cr_assert_eq(p.out_len, 0, "cat of an invalid image wrote data");
	tu_proc_free(&p);
	p = RUN("cat", img, "--budget", "50%");
	expect_exit(&p, 1, "cat --budget of a truncated image");
	expect_says(&p, img, "cat of a truncated image");
	tu_proc_free(&p);
	free(img);
}

Test(cli, pack_missing_or_empty_input)
{
	char *in = path("nope.bin"), *out = path("out.fpi"), *empty = path("empty.bin");
	uint8_t *old = precious(out);
	cr_assert(!tu_write_file(empty, "", 0));
	const char *const names[] = {"out.fpi", "empty.bin", NULL};
	struct tu_proc p = RUN("pack", in, out, "--force");
	expect_failure(&p, "pack of a missing input");
	expect_says(&p, "nope.bin", "pack of a missing input");
	tu_proc_free(&p);
	expect_file(out, old, 10000, "pack of a missing input");
	expect_no_extras(names, "pack of a missing input");

	p = RUN("pack", empty, out, "--force");
	expect_failure(&p, "pack of an empty input");
	expect_says(&p, "empty.bin", "pack of an empty input");
	tu_proc_free(&p);
	expect_file(out, old, 10000, "pack of an empty input");
	expect_no_extras(names, "pack of an empty input");
	free(old);
	free(in);
	free(out);
	free(empty);
}

Test(cli, pack_out_equal_to_in_is_refused)
{
	char *in = path("in.bin"), *hard = path("hard.bin"), *sym = path("sym.bin");
	const size_t n = 100000;
	uint8_t *data = make_input(in, n, 4);
	cr_assert(!link(in, hard));
	cr_assert(!symlink("in.bin", sym));
	char alias[4096];
	snprintf(alias, sizeof alias, "%s/./in.bin", g_dir);
	const char *outs[] = {in, alias, hard, sym};
	const char *const names[] = {"in.bin", "hard.bin", "sym.bin", NULL};
	for (size_t k = 0; k < 4; k++) {
		struct tu_proc p = RUN("pack", in, outs[k], "--force");
		expect_failure(&p, "pack IN IN");
		expect_says(&p, "input|same", "pack IN IN");
		tu_proc_free(&p);
		expect_file(in, data, n, "pack IN IN");
		expect_no_extras(names, "pack IN IN");
	}
	free(data);
	free(in);
	free(hard);
	free(sym);
}

/* ------------------------------------------------------------------ */
/* pack: a disk that fills up, a pack killed midway                     */

/* The names in dir, other than keep, as one string ("" if none). */
static void others_in(const char *dir, const char *keep, char *buf, size_t n)
{
	buf[0] = 0;
	DIR *d = opendir(dir);
	cr_assert(d, "%s: %s", dir, strerror(errno));
	struct dirent *e;
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && strcmp(e->d_name, keep))
			snprintf(buf + strlen(buf), n - strlen(buf), "%s ", e->d_name);
	closedir(d);
}

Test(cli, pack_onto_a_full_disk_keeps_out)
{
	/* A 2 MiB tmpfs, mounted for the test: the packs below need more. */
	char *in = path("in.bin"), *mnt = path("small"), out[4096], extra[1024];
	uint8_t *data = make_input(in, 6u << 20, 11);
	cr_assert(!mkdir(mnt, 0755));
	cr_assert(!mount("flexpage-test", mnt, "tmpfs", 0, "size=2M"), "mount a tmpfs on %s: %s", mnt,
	          strerror(errno));
	snprintf(out, sizeof out, "%s/out.fpi", mnt);
	uint8_t *old = precious(out);
	static const char *const codecs[] = {"raw", "zstd"};
	for (int k = 0; k < 2; k++) {
		struct tu_proc p = RUN("pack", in, out, "--force", "-q", "--chunk", "64K", "--codec",
		                       codecs[k]);
		expect_failure(&p, "pack onto a full disk");
		expect_says(&p, "space", "pack onto a full disk");
		expect_says(&p, "out.fpi", "pack onto a full disk");
		tu_proc_free(&p);
		expect_file(out, old, 10000, "pack onto a full disk");
		others_in(mnt, "out.fpi", extra, sizeof extra);
		cr_expect_str_empty(extra, "a full disk's pack left: %s", extra);
	}
	cr_expect(!umount(mnt), "umount %s: %s", mnt, strerror(errno));
	rmdir(mnt);
	free(old);
	free(data);
	free(in);
	free(mnt);
}

/* A temporary of out's, in g_dir, with bytes in it: its name, or NULL. */
static char *temporary_of(const char *base)
{
	DIR *d = opendir(g_dir);
	struct dirent *e;
	char *found = NULL;
	while (d && (e = readdir(d)) && !found) {
		if (strncmp(e->d_name, base, strlen(base)) || !strstr(e->d_name, ".tmp."))
			continue;
		char *p = path(e->d_name);
		struct stat st;
		if (!stat(p, &st) && st.st_size > 0)
			found = p;
		else
			free(p);
	}
	if (d)
		closedir(d);
	return found;
}

Test(cli, pack_killed_midway_keeps_out_and_the_next_pack_cleans_up, .timeout = 240)
{
	require_uffd();
	char *big = path("big.bin"), *small = path("small.bin"), *out = path("out.fpi");
	uint8_t *data = make_input(big, 32u << 20, 12);
	uint8_t *fresh = make_input(small, 300000, 13);
	uint8_t *old = precious(out);
	/* zstd at level 19 is slow: the pack is still writing when killed. */
	pid_t pid = fork();
	if (pid == 0) {
		int nul = open("/dev/null", O_WRONLY);
		dup2(nul, 1);
		dup2(nul, 2);
		execl(FLEXPAGE_TOOL, FLEXPAGE_TOOL, "pack", big, out, "--force", "-q", "--chunk", "64K",
		      "--codec", "zstd:19", (char *)NULL);
		_exit(127);
	}
	char *stale = NULL;
	for (int i = 0; i < 60000 && !stale; i++) {
		stale = temporary_of("out.fpi");
		if (!stale)
			usleep(1000);
	}
	kill(pid, SIGKILL);
	int status;
	waitpid(pid, &status, 0);
	cr_assert(stale, "no temporary appeared within a minute");
	cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
	          "the pack ended before it was killed (status 0x%x)", status);
	expect_file(out, old, 10000, "a pack killed midway");
	cr_assert(tu_file_exists(stale), "the killed pack's temporary is gone already");

	/* A temporary a live writer holds (locked) is not the next pack's to
	 * remove; the dead one's is. */
	char *live = path("out.fpi.tmp.LIVE01");
	int lfd = open(live, O_CREAT | O_RDWR | O_CLOEXEC, 0644);
	cr_assert(lfd >= 0 && !flock(lfd, LOCK_EX), "%s: %s", live, strerror(errno));
	struct tu_proc p = RUN("pack", small, out, "--force", "-q", "--chunk", "64K");
	expect_exit(&p, 0, "the next pack");
	tu_proc_free(&p);
	cr_expect(!tu_file_exists(stale), "the next pack left the dead one's temporary %s", stale);
	cr_expect(tu_file_exists(live), "the next pack removed a live writer's temporary");
	close(lfd);
	unlink(live);
	const char *const names[] = {"big.bin", "small.bin", "out.fpi", NULL};
	expect_no_extras(names, "after the next pack");
	p = RUN("cat", out);
	expect_exit(&p, 0, "cat");
	expect_output(&p, fresh, 300000, "cat after the next pack");
	tu_proc_free(&p);
	free(live);
	free(stale);
	free(old);
	free(fresh);
	free(data);
	free(big);
	free(small);
	free(out);
}
