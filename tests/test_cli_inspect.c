/* The flexpage command, run as a program: inspect, and what inspect and
 * cat say about corrupt, truncated and foreign files. */
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
/* inspect                                                              */

Test(cli, inspect_valid_image)
{
	const size_t n = 5 * 65536 + 1000;
	char *img = pack_small("zstd", n, NULL);
	struct tu_proc p = RUN("inspect", img);
	expect_exit(&p, 0, "inspect");
	cr_assert(strstr(p.out, "verdict: valid"), "%s", p.out);
	cr_assert(strstr(p.out, "tensor") && strstr(p.out, "type") && strstr(p.out, "shape"),
	          "no tensor table header:\n%s", p.out);
	/* The one opaque tensor, its type and its shape (the file's length). */
	char shape[32];
	snprintf(shape, sizeof shape, "%zu", n);
	cr_assert(strstr(p.out, "data") && strstr(p.out, "u8") && strstr(p.out, shape),
	          "the tensor row lacks data/u8/%s:\n%s", shape, p.out);
	cr_assert(strstr(p.out, "arch=opaque"), "meta not shown:\n%s", p.out);
	tu_proc_free(&p);

	p = RUN("inspect", img, "--chunks");
	expect_exit(&p, 0, "inspect --chunks");
	cr_assert(strstr(p.out, "zstd") && strstr(p.out, "raw"), "chunk table lacks codecs:\n%s", p.out);
	cr_assert(strstr(p.out, "verdict: valid"), "%s", p.out);
	tu_proc_free(&p);

	p = RUN("inspect", "--quick", img);
	expect_exit(&p, 0, "inspect --quick");
	cr_assert(strstr(p.out, "verdict: tables valid"), "%s", p.out);
	tu_proc_free(&p);
	free(img);
}

/* The version inspect names is the file's (its header word, read here),
 * not the newest the library reads: a raw or zstd image of opaque bytes
 * is version 2, one with both forms of a chunk version 4. */
Test(cli, inspect_names_the_files_version)
{
	const char *codecs[] = {"raw", "zstd", "both"};
	uint32_t seen = 0;
	for (int k = 0; k < 3; k++) {
		char *img = pack_small(codecs[k], 5 * 65536 + 1000, NULL);
		tu_file f;
		cr_assert(!tu_load(img, &f));
		const uint32_t v = tu_get32(&f, TU_H_VERSION);
		tu_free(&f);
		char want[64];
		snprintf(want, sizeof want, "format     flexpage v%u,", v);
		struct tu_proc p = RUN("inspect", "--quick", img);
		expect_exit(&p, 0, "inspect");
		cr_assert(strstr(p.out, want), "%s: the header says version %u:\n%s", codecs[k], v,
		          p.out);
		tu_proc_free(&p);
		seen |= 1u << v;
		unlink(img);
		free(img);
	}
	cr_assert(seen & (1u << 2) && seen & (1u << 4), "versions seen 0x%x: not both 2 and 4", seen);
}

Test(cli, inspect_corrupt_raw_payload)
{
	char *img = pack_small("raw", 6 * 65536 + 10, NULL);
	tu_file f;
	cr_assert(!tu_load(img, &f));
	f.data[4096 + 3 * 65536 + 5] ^= 0x01;
	cr_assert(!tu_save(img, &f));
	tu_free(&f);
	struct tu_proc p = RUN("inspect", img);
	expect_exit(&p, 1, "inspect of a corrupt payload");
	expect_says(&p, "chunk 3", "inspect");
	expect_says(&p, "checksum", "inspect");
	expect_says(&p, "INVALID", "inspect");
	tu_proc_free(&p);
	/* --quick does not read payloads: the tables are fine. */
	p = RUN("inspect", img, "--quick");
	expect_exit(&p, 0, "inspect --quick of a corrupt payload");
	tu_proc_free(&p);
	free(img);
}

Test(cli, inspect_corrupt_zstd_payload)
{
	char *img = pack_small("zstd", 6 * 65536 + 10, NULL);
	tu_file f;
	cr_assert(!tu_load(img, &f));
	uint64_t e = tu_chunk_at(&f, 4); /* compressible: stored as zstd */
	cr_assert_eq(tu_get32(&f, e + TU_C_CODEC), 1u, "test set-up: chunk 4 is not zstd");
	uint64_t off = tu_get64(&f, e + TU_C_FILE_OFFSET) + tu_get32(&f, e + TU_C_STORED_LEN) / 2;
	f.data[off] ^= 0x04;
	cr_assert(!tu_save(img, &f));
	tu_free(&f);
	struct tu_proc p = RUN("inspect", img);
	expect_exit(&p, 1, "inspect of a corrupt zstd payload");
	expect_says(&p, "chunk 4", "inspect");
	expect_says(&p, "checksum|zstd|decode", "inspect");
	tu_proc_free(&p);
	free(img);
}

Test(cli, inspect_truncated_file)
{
	char *img = pack_small("raw", 3 * 65536, NULL);
	struct stat st;
	cr_assert(!stat(img, &st));
	cr_assert(!truncate(img, st.st_size - 100));
	struct tu_proc p = RUN("inspect", img);
	expect_exit(&p, 1, "inspect of a truncated file");
	expect_says(&p, img, "inspect");
	expect_says(&p, "file_size|truncat", "inspect");
	tu_proc_free(&p);
	cr_assert(!truncate(img, 2000));
	p = RUN("inspect", img);
	expect_exit(&p, 1, "inspect of a 2000-byte file");
	expect_says(&p, img, "inspect");
	tu_proc_free(&p);
	free(img);
}

Test(cli, inspect_missing_and_foreign_files)
{
	char *missing = path("missing.fpi");
	struct tu_proc p = RUN("inspect", missing);
	expect_exit(&p, 1, "inspect of a missing file");
	expect_says(&p, missing, "inspect");
	tu_proc_free(&p);
	char *junk = path("junk.bin");
	uint8_t *d = make_input(junk, 3 * 4096, 1);
	p = RUN("inspect", junk);
	expect_exit(&p, 1, "inspect of a non-image");
	expect_says(&p, junk, "inspect");
	expect_says(&p, "magic", "inspect");
	tu_proc_free(&p);
	free(d);
	free(junk);
	free(missing);
}

Test(cli, cat_corrupt_payload_fails_loudly)
{
	/* A chunk that fails its checksum is never served: cat must fail (or
	 * die of SIGBUS) naming the chunk, within the time limit, and what it
	 * wrote before is a prefix of the input. */
	require_uffd();
	uint8_t *data;
	const size_t n = 6 * 65536 + 10;
	char *img = pack_small("raw", n, &data);
	tu_file f;
	cr_assert(!tu_load(img, &f));
	f.data[4096 + 3 * 65536 + 5] ^= 0x01;
	cr_assert(!tu_save(img, &f));
	tu_free(&f);
	struct tu_proc p = RUN("cat", img);
	cr_assert(!(p.exited && p.code == 0), "cat of a corrupt image succeeded");
	cr_assert_leq(p.out_len, 3 * 65536, "cat wrote past the good chunks");
	cr_assert_arr_eq(p.out, data, p.out_len, "cat wrote wrong bytes");
	expect_says(&p, "chunk 3", "cat of a corrupt payload");
	expect_says(&p, "checksum", "cat of a corrupt payload");
	tu_proc_free(&p);
	free(data);
	free(img);
}
