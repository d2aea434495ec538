/* The inputs the fuzz harnesses (fuzz/) found to break a reader, each fed
 * through the real reader again: it must now fail cleanly, with an error
 * that names the file and what is wrong.  Each test says which harness
 * found it and what went wrong before. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <flexpage/flexpage.h>

#include "cli_util.h"
#include "testutil.h"

TestSuite(found, .init = cli_setup, .fini = cli_teardown, .timeout = 120);

/* fuzz_units: a duration of more nanoseconds than 64 bits hold was
 * converted to an integer anyway (undefined; UBSan stopped the program). */
Test(found, duration_past_64_bits)
{
	static const char *const too_long[] = {"2.66667e+24", "1e300", "18446744073.8s", "1e17ms"};
	for (size_t i = 0; i < sizeof too_long / sizeof *too_long; i++) {
		struct tu_proc p = RUN("run", "/nonexistent/model.img", "--stats-interval", too_long[i]);
		expect_exit(&p, 2, too_long[i]);
		expect_says(&p, "--stats-interval", too_long[i]);
		tu_proc_free(&p);
	}
	/* the largest that fits still parses: the model, not the option, fails */
	struct tu_proc p = RUN("run", "/nonexistent/model.img", "--stats-interval", "18446744073s");
	expect_exit(&p, 1, "18446744073s");
	expect_says(&p, "/nonexistent/model.img", "18446744073s");
	tu_proc_free(&p);
}

/* An input the harness kept (fuzz/found/NAME), whole. */
static uint8_t *found(const char *name, size_t *n)
{
	char p[1024];
	snprintf(p, sizeof p, "%s/fuzz/found/%s", FLEXPAGE_SOURCE_DIR, name);
	uint8_t *b = tu_read_file(p, n);
	cr_assert(b, "cannot read %s", p);
	return b;
}

/* In a child whose address space is limited to 1 GiB (not under ASan,
 * whose shadow memory needs far more), fn must return 0. */
static void in_small_address_space(int (*fn)(void *), void *arg, const char *what)
{
	pid_t pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
#ifndef __SANITIZE_ADDRESS__
		struct rlimit lim = {1ul << 30, 1ul << 30};
		if (setrlimit(RLIMIT_AS, &lim))
			_exit(99);
#endif
		_exit(fn(arg));
	}
	int status;
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status), "%s: killed by signal %d", what, WTERMSIG(status));
	cr_assert_eq(WEXITSTATUS(status), 0, "%s: exit %d (see stderr)", what, WEXITSTATUS(status));
}

/* A clean refusal: NULL, an errno that says the file is wrong (not
 * ENOMEM: the reader must not ask for memory the bytes do not justify),
 * and a message naming the file. */
static int refused(const void *g, const char *name)
{
	if (g) {
		fprintf(stderr, "%s: accepted\n", name);
		return 1;
	}
	if (errno == ENOMEM || errno == 0 || !strstr(fp_last_error(), name)) {
		fprintf(stderr, "%s: errno %d, '%s'\n", name, errno, fp_last_error());
		return 2;
	}
	return 0;
}

struct gguf_case {
	const char *name;
	uint8_t *bytes;
	size_t n;
};

static int parse_as_big_file(void *arg)
{
	const struct gguf_case *c = arg;
	/* a file of 1 GiB whose first bytes these are, as fuzz/gguf.c says */
	return refused(fp_gguf_parse(c->bytes, c->n, 1ull << 30, c->name), c->name);
}

static int open_sparse_file(void *arg)
{
	const struct gguf_case *c = arg;
	char *p = tu_join(g_dir, "big.gguf");
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || write(fd, c->bytes, c->n) != (ssize_t)c->n || ftruncate(fd, 1ll << 30))
		return 98;
	close(fd);
	int rc = refused(fp_gguf_open(p), "big.gguf");
	unlink(p);
	free(p);
	return rc;
}

/* fuzz_gguf: a header claiming 50 million keys (metadata_kv_count
 * 0x03000016) in a file big enough to hold them, but holding three: the
 * reader allocated 2.8 GB for the keys before reading the first. */
Test(found, gguf_key_count_beyond_the_keys_there)
{
	struct gguf_case c = {.name = "gguf-key-count.gguf"};
	c.bytes = found(c.name, &c.n);
	in_small_address_space(parse_as_big_file, &c, "fp_gguf_parse");
	in_small_address_space(open_sparse_file, &c, "fp_gguf_open");
	free(c.bytes);
}

static int trace_tool(void *arg)
{
	const char *path = arg;
	int null = open("/dev/null", O_WRONLY);
	if (null < 0 || dup2(null, STDOUT_FILENO) < 0)
		return 97;
	execl(FLEXPAGE_TOOL, FLEXPAGE_TOOL, "trace", path, (char *)NULL);
	return 96;
}

/* fuzz_trace: a 408-byte trace whose header claims 1 073 741 829 chunks
 * of 64 KiB (the logical size agrees) while its records name chunks 0-4:
 * `flexpage trace` sized its per-chunk tables by the claim, 4 GiB for the
 * first, and under a memory limit said "out of memory" instead of the
 * summary.  The tables now cover the chunks the records name. */
Test(found, trace_chunk_count_beyond_the_chunks_named)
{
	char p[1024];
	snprintf(p, sizeof p, "%s/fuzz/found/trace-chunk-count.trace", FLEXPAGE_SOURCE_DIR);
	in_small_address_space(trace_tool, p, "flexpage trace trace-chunk-count.trace");
}

/* fuzz_trace: a record naming chunk 536 871 167 (below the header's
 * claim, so the reader took it) made the tables above cover half a
 * billion chunks, 2 GiB for the first.  Without the image, more than
 * TT_MAX_UNSEEN_CHUNKS chunks are refused by name. */
Test(found, trace_record_naming_a_far_chunk)
{
	char p[1024];
	snprintf(p, sizeof p, "%s/fuzz/found/trace-far-chunk.trace", FLEXPAGE_SOURCE_DIR);
	struct tu_proc r = RUN("trace", p);
	expect_exit(&r, 1, "trace-far-chunk.trace");
	expect_says(&r, "a record names chunk 536871167", "trace-far-chunk.trace");
	tu_proc_free(&r);
}
