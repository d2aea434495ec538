/* The install paths (UFFDIO_MOVE of huge pages, UFFDIO_COPY), the packed
 * layout with its zero padding, and paging without privileges. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <flexpage/flexpage.h>

#include "region_util.h"

/* ---- install paths and layout ---- */

Test(install, full_2m_chunks_move_huge_pages_and_copy_when_asked, .timeout = 120)
{
	const size_t len = 16u << 20;
	uint8_t *ref = ru_data(len, 11);
	char path[512];
	snprintf(path, sizeof path, "%s/huge.img", ru_tmpdir());
	ru_write_image(path, ref, len, 2u << 20, FP_CODEC_RAW);
	for (int nohuge = 0; nohuge < 2; nohuge++) {
		struct fp_options o = ru_options(0);
		o.flags = nohuge ? FP_OPEN_NO_HUGE : 0;
		fp_region *r = fp_open(path, &o);
		cr_assert_not_null(r, "%s", fp_last_error());
		cr_expect_eq(memcmp(fp_tensor(r, "data", NULL), ref, len), 0);
		struct fp_stats s;
		fp_get_stats(r, &s);
		if (nohuge) {
			cr_expect_eq(s.huge_installs, 0);
			cr_expect_eq(s.small_installs, 8);
		} else if (!ru_kernel_has_move()) {
			fp_close(r);
			cr_skip_test("this kernel has no UFFDIO_MOVE (Linux 6.8+)");
		} else {
			cr_expect_eq(s.huge_installs, 8, "huge installs %llu, copies %llu",
			             (unsigned long long)s.huge_installs,
			             (unsigned long long)s.small_installs);
		}
		fp_close(r);
	}
	unlink(path);
	free(ref);
}

Test(install, tensors_are_packed_on_pages_and_padding_reads_zero, .timeout = 60)
{
	const uint32_t chunk = 64u << 10;
	const size_t sizes[] = {1000, chunk, 3 * chunk + 5, 12345};
	char path[512];
	snprintf(path, sizeof path, "%s/layout.img", ru_tmpdir());
	struct fp_writer_options wo = {.chunk_size = chunk, .codec = FP_CODEC_ZSTD};
	fp_writer *w = fp_writer_create(path, &wo);
	cr_assert_not_null(w, "%s", fp_last_error());
	uint8_t *ref[4];
	for (int i = 0; i < 4; i++) {
		char name[16];
		snprintf(name, sizeof name, "t%d", i);
		ref[i] = ru_data(sizes[i], 20 + (uint64_t)i);
		uint64_t shape[1] = {sizes[i]};
		cr_assert_eq(fp_writer_begin_tensor(w, name, FP_TYPE_U8, 1, shape), 0);
		cr_assert_eq(fp_writer_write(w, ref[i], sizes[i]), 0);
		cr_assert_eq(fp_writer_end_tensor(w), 0);
	}
	cr_assert_eq(fp_writer_finish(w), 0, "%s", fp_last_error());
	struct fp_options o = ru_options(0);
	fp_region *r = fp_open(path, &o);
	cr_assert_not_null(r, "%s", fp_last_error());
	const uint8_t *base = fp_region_base(r);
	uint64_t expect_off = 0;
	for (int i = 0; i < 4; i++) {
		char name[16];
		snprintf(name, sizeof name, "t%d", i);
		const struct fp_tensor_desc *d;
		const uint8_t *p = fp_tensor(r, name, &d);
		cr_assert_not_null(p);
		cr_expect_eq(d->offset, expect_off, "%s at %llu", name, (unsigned long long)d->offset);
		cr_expect_eq(p, base + expect_off);
		cr_expect_eq(memcmp(p, ref[i], sizes[i]), 0, "%s bytes differ", name);
		/* Packed: the next tensor starts on the next page; the bytes
		 * between read as zeros. */
		uint64_t end = (expect_off + sizes[i] + 4095) / 4096 * 4096;
		for (uint64_t q = expect_off + sizes[i]; q < end; q += 97)
			cr_expect_eq(base[q], 0, "padding byte at %llu", (unsigned long long)q);
		expect_off = end;
		free(ref[i]);
	}
	cr_expect_eq(fp_region_size(r), (expect_off + chunk - 1) / chunk * chunk);
	for (uint64_t q = expect_off; q < fp_region_size(r); q += 997)
		cr_expect_eq(base[q], 0, "byte %llu after the last tensor", (unsigned long long)q);
	fp_close(r);
	unlink(path);
}

/* ---- unprivileged: UFFD_USER_MODE_ONLY ---- */

#define USER_LEN (2u << 20)
#define USER_SEED 12

/* As nobody (argv: image): the region reads the bytes it was made of. */
RU_CHILD(unprivileged_child)
{
	if (argc != 1 || setgid(65534) || setuid(65534))
		return 30;
	struct fp_options o = ru_options(0);
	fp_region *r = fp_open(argv[0], &o);
	if (!r) {
		fprintf(stderr, "unprivileged open: %s\n", fp_last_error());
		return 31;
	}
	uint8_t *ref = ru_data(USER_LEN, USER_SEED);
	int rc = memcmp(fp_tensor(r, "data", NULL), ref, USER_LEN) ? 32 : 0;
	fp_close(r);
	free(ref);
	return rc;
}

Test(privilege, unprivileged_process_pages_with_user_mode_only, .timeout = 60)
{
	if (geteuid() != 0)
		cr_skip_test("needs root to drop to an unprivileged user");
	uint8_t *ref = ru_data(USER_LEN, USER_SEED);
	char path[512];
	snprintf(path, sizeof path, "%s/user.img", ru_tmpdir());
	ru_write_image(path, ref, USER_LEN, 256u << 10, FP_CODEC_ZSTD);
	free(ref);
	int status = ru_run_child("unprivileged_child", (const char *const[]){path, NULL});
	unlink(path);
	cr_assert_neq(status, -1, "cannot start the child");
	cr_assert(WIFEXITED(status), "killed by signal %d", WTERMSIG(status));
	cr_assert_eq(WEXITSTATUS(status), 0, "exit %d (31: open failed, 32: wrong bytes)",
	             WEXITSTATUS(status));
}
