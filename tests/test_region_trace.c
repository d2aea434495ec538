/* The event trace a region records: every fault, load and eviction, read
 * back through the trace reader, and bad traces refused. */
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

/* ---- the event trace ---- */

Test(trace, records_every_fault_load_and_eviction_and_survives_a_round_trip, .timeout = 120)
{
	const size_t len = 4u << 20;
	const uint32_t chunk = 256u << 10;
	uint8_t *ref = ru_data(len, 13);
	char path[512], tpath[512];
	snprintf(path, sizeof path, "%s/traced.img", ru_tmpdir());
	snprintf(tpath, sizeof tpath, "%s/traced.trace", ru_tmpdir());
	ru_write_image(path, ref, len, chunk, FP_CODEC_ZSTD);
	struct fp_options o = ru_options(4ull * chunk);
	o.trace_path = tpath;
	o.readahead = 0;
	o.loaders = 1;
	fp_region *r = fp_open(path, &o);
	cr_assert_not_null(r, "%s", fp_last_error());
	for (int pass = 0; pass < 2; pass++) {
		fp_trace_mark(r, FP_MARK_TOKEN, (uint64_t)pass);
		cr_assert_eq(memcmp(fp_tensor(r, "data", NULL), ref, len), 0);
	}
	struct fp_stats s;
	fp_get_stats(r, &s);
	fp_close(r);

	fp_trace *t = fp_trace_open(tpath);
	cr_assert_not_null(t, "%s", fp_last_error());
	const struct fp_trace_header *h = fp_trace_header(t);
	cr_expect_eq(h->chunk_size, chunk);
	cr_expect_eq(h->n_chunks, len / chunk);
	cr_expect_eq(h->budget, 4ull * chunk);
	cr_expect_str_eq(h->policy, "fifo");
	uint64_t count[FP_EV_TYPES] = {0}, prev = 0;
	int sorted = 1;
	for (uint64_t i = 0; i < fp_trace_count(t); i++) {
		const struct fp_trace_event *e = &fp_trace_events(t)[i];
		count[e->type]++;
		sorted &= e->t_ns >= prev;
		prev = e->t_ns;
		if (e->type == FP_EV_FAULT)
			cr_expect_eq(e->b / chunk, e->chunk);
	}
	cr_expect(sorted);
	cr_expect_eq(count[FP_EV_FAULT], s.faults);
	cr_expect_eq(count[FP_EV_LOAD], s.demand_loads + s.prefetch_loads);
	cr_expect_eq(count[FP_EV_EVICT], s.evictions);
	cr_expect_eq(count[FP_EV_MARK], 2);
	cr_expect_eq(count[FP_EV_LOAD], 2 * len / chunk, "two passes over 16 chunks in a 4-chunk budget");
	fp_trace_close(t);

	/* Truncated and corrupt traces are refused with a clear error. */
	struct stat st;
	cr_assert_eq(stat(tpath, &st), 0);
	cr_assert_eq(truncate(tpath, st.st_size - 5), 0);
	cr_expect_null(fp_trace_open(tpath));
	cr_expect_eq(errno, EBADMSG);
	cr_expect(strstr(fp_last_error(), "truncated") != NULL, "%s", fp_last_error());
	cr_assert_eq(truncate(tpath, st.st_size - 32), 0);
	cr_assert_not_null((t = fp_trace_open(tpath)), "%s", fp_last_error());
	fp_trace_close(t);
	ru_flip_byte(tpath, sizeof(struct fp_trace_header) + 8); /* first record's type */
	cr_expect_null(fp_trace_open(tpath));
	cr_expect_eq(errno, EBADMSG);
	cr_expect(strstr(fp_last_error(), "corrupt trace") != NULL, "%s", fp_last_error());
	ru_flip_byte(tpath, 0);
	cr_expect_null(fp_trace_open(tpath));
	cr_expect_eq(errno, EBADMSG);
	cr_expect(strstr(fp_last_error(), "bad magic") != NULL, "%s", fp_last_error());
	cr_assert_eq(truncate(tpath, 100), 0);
	cr_expect_null(fp_trace_open(tpath));
	cr_expect_eq(errno, EBADMSG);
	cr_expect(strstr(fp_last_error(), "too short") != NULL, "%s", fp_last_error());
	unlink(tpath);
	unlink(path);
	free(ref);
}
