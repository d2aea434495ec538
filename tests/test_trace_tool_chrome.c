/* flexpage trace --chrome: valid JSON that holds the events. */
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

/* ---- --chrome ------------------------------------------------------------------ */

Test(trace_tool, chrome_json_is_valid_and_holds_the_events, .timeout = 60)
{
	struct recorded rec;
	record(&rec);
	const char *out = tmp("trace.json");
	struct run r = RUN(rec.trace, "--chrome", out);
	cr_assert_eq(r.code, 0, "exit %d: %s", r.code, r.err);
	run_free(&r);
	struct jval *root = load_json(out);
	const struct jval *ev = jget(root, "traceEvents");
	cr_assert(ev && ev->type == J_ARR, "no traceEvents array");
	uint64_t loads = 0, demand = 0, stagings = 0, stages = 0, stalls = 0, evicts = 0, faults = 0, tokens = 0,
	         resident = 0, budget = 0, threads = 0;
	double last_resident = -1, max_resident = 0, stall_in_tokens = 0;
	for (size_t i = 0; i < ev->n; i++) {
		const struct jval *e = ev->items[i];
		cr_assert_eq(e->type, J_OBJ);
		const char *ph = jstr(e, "ph"), *cat = jstr(e, "cat"), *name = jstr(e, "name");
		cr_assert(jget(e, "pid") && jget(e, "tid"), "event %zu without pid/tid", i);
		if (strcmp(ph, "M"))
			cr_assert_geq(jnum(e, "ts"), 0, "event %zu (%s) without ts", i, name);
		if (!strcmp(ph, "X"))
			cr_assert_geq(jnum(e, "dur"), 0, "X event %zu without dur", i);
		if (!strcmp(ph, "X") && !strcmp(cat, "load")) {
			loads++;
			demand += !strcmp(name, "demand load");
			cr_expect_lt(jnum(jget(e, "args"), "chunk"), NCHUNKS);
		} else if (!strcmp(ph, "X") && !strcmp(cat, "staging")) {
			stagings++;
			cr_expect_lt(jnum(jget(e, "args"), "chunk"), NCHUNKS);
		} else if (!strcmp(ph, "X") && !strcmp(cat, "stage")) {
			stages++;
		} else if (!strcmp(ph, "X") && !strcmp(cat, "stall")) {
			stalls++;
		} else if (!strcmp(ph, "X") && !strcmp(cat, "token")) {
			tokens++;
			stall_in_tokens += jnum(jget(e, "args"), "stall_us");
		} else if (!strcmp(ph, "i") && !strcmp(cat, "evict")) {
			evicts++;
		} else if (!strcmp(ph, "i") && !strcmp(cat, "fault")) {
			faults++;
		} else if (!strcmp(ph, "C") && !strcmp(name, "resident")) {
			resident++;
			last_resident = jnum(jget(e, "args"), "bytes");
			if (last_resident > max_resident)
				max_resident = last_resident;
		} else if (!strcmp(ph, "C") && !strcmp(name, "budget")) {
			budget++;
		} else if (!strcmp(ph, "M") && !strcmp(name, "thread_name")) {
			threads++;
		}
	}
	cr_expect_eq(loads, rec.s.demand_loads + rec.s.prefetch_loads);
	cr_expect_eq(demand, rec.s.demand_loads);
	cr_expect_leq(stages, 3 * loads + 2 * stagings);
	cr_expect_geq(stages, loads, "read/decompress/install slices nest in the loads");
	cr_expect_gt(stalls, 0, "demand faults stall the reading thread");
	cr_expect_leq(stalls, rec.s.faults);
	cr_expect_eq(evicts, rec.s.evictions);
	cr_expect_eq(faults, rec.s.faults);
	cr_expect_eq(tokens, TOKENS);
	cr_expect_gt(stall_in_tokens, 0);
	/* One resident sample at the start, one per load (a staged chunk's at
	 * its staging, not again at its install), drop, eviction and budget
	 * change, one at the end; it ends where the library's count ended. */
	fp_trace *tr = fp_trace_open(rec.trace);
	cr_assert_not_null(tr, "%s", fp_last_error());
	uint64_t staged = 0, dropped = 0, from_stage = 0;
	for (uint64_t i = 0; i < fp_trace_count(tr); i++) {
		const struct fp_trace_event *te = &fp_trace_events(tr)[i];
		staged += te->type == FP_EV_STAGE;
		dropped += te->type == FP_EV_DROP;
		from_stage += te->type == FP_EV_LOAD && (te->flags & FP_LOAD_FROM_STAGE);
	}
	fp_trace_close(tr);
	cr_expect_eq(stagings, staged, "every staging drawn");
	cr_expect_eq(resident, 3 + loads - from_stage + staged + dropped + rec.s.evictions,
	             "start, loads, stagings, drops, evictions, budget change, end");
	cr_expect_eq((uint64_t)last_resident, rec.s.resident_bytes);
	cr_expect_leq((uint64_t)max_resident, rec.s.peak_resident_bytes + 2ull * CHUNK);
	cr_expect_eq(budget, 2, "the budget at the start and after fp_set_budget");
	cr_expect_geq(threads, 4, "handler, two loaders and the reading thread");
	jfree(root);

	/* The image gone: chunk_size per chunk, still valid JSON. */
	r = RUN(rec.trace, "--chrome", out, "--image", "/nonexistent/x.img", "-q");
	cr_assert_eq(r.code, 0, "%s", r.err);
	run_free(&r);
	jfree(load_json(out));

	/* Names that need escaping: a trace whose header names a weird image. */
	size_t len;
	char *bytes = slurp(rec.trace, &len);
	cr_assert_not_null(bytes);
	struct fp_trace_header h;
	memcpy(&h, bytes, sizeof h);
	memset(h.image, 0, sizeof h.image);
	snprintf(h.image, sizeof h.image, "/tmp/we\"ird\\name\t\x01\xff\xc3(.img");
	memcpy(bytes, &h, sizeof h);
	const char *weird = tmp("weird.trace");
	FILE *f = fopen(weird, "wb");
	cr_assert(f && fwrite(bytes, 1, len, f) == len && !fclose(f));
	free(bytes);
	r = RUN(weird, "--chrome", out);
	cr_assert_eq(r.code, 0, "%s", r.err);
	cr_expect(strstr(r.out, "not opened"), "%s", r.out);
	run_free(&r);
	root = load_json(out);
	cr_expect(strstr(jstr(jget(root, "otherData"), "image"), "we\"ird\\name\t\x01"));
	jfree(root);
}
