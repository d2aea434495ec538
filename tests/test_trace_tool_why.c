/* flexpage trace: reads in flight, why each demand fault waited, and what
 * its load was doing meanwhile, for a hand-made trace whose every number is
 * worked out below from the records alone. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <flexpage/flexpage_experimental.h>

#include "trace_tool_util.h"

#define US 1000ull
#define WHY_CHUNK (64u << 10)

static struct fp_trace_event fault(uint64_t us, uint32_t c, uint8_t state, uint64_t tid)
{
	return (struct fp_trace_event){us * US, FP_EV_FAULT, state, 0, c, tid, (uint64_t)c * WHY_CHUNK};
}

/* A load record at us: its read, decode and install times and its queue
 * wait, in us.  Its read began at us - install - decode - read. */
static struct fp_trace_event load(uint64_t us, uint32_t c, uint8_t flags, uint64_t read,
                                  uint64_t decode, uint64_t install, uint64_t wait)
{
	return (struct fp_trace_event){us * US, FP_EV_LOAD, flags, 1, c, read * US | (decode * US) << 32,
	                               install * US | (wait * US) << 32};
}

static struct fp_trace_event evict(uint64_t us, uint32_t c)
{
	return (struct fp_trace_event){us * US, FP_EV_EVICT, 0, 1, c, 0, 0};
}

/* Reads (start, end in us): c0 [10,25], c1 [20,40], c2 [25,45], c3 [60,70],
 * c3 again [88,93], c0 again [90,96].
 * Faults (thread, chunk, seen state, stall): A 100 c0 empty [10,30] cold;
 * B 100 c2 loading [30,50], its read began at 25: in flight; C 100 c3
 * loading [55,80], queued at 50, read from 60: queued; D 100 c0 empty
 * [90,100], evicted at 85: re-read; E 101 c3 evicting [83,95]. */
static const char *write_trace(void)
{
	struct fp_trace_event e[] = {
		fault(10, 0, FP_FAULT_EMPTY, 100),
		load(30, 0, FP_LOAD_DEMAND, 15, 3, 2, 0),
		fault(30, 2, FP_FAULT_LOADING, 100),
		load(40, 1, 0, 20, 0, 0, 5),
		load(50, 2, FP_LOAD_DEMAND, 20, 4, 1, 3),
		fault(55, 3, FP_FAULT_LOADING, 100),
		load(80, 3, FP_LOAD_DEMAND, 10, 5, 5, 10),
		fault(83, 3, FP_FAULT_EVICTING, 101),
		evict(84, 3),
		evict(85, 0),
		fault(90, 0, FP_FAULT_EMPTY, 100),
		load(95, 3, FP_LOAD_DEMAND, 5, 1, 1, 2),
		load(100, 0, FP_LOAD_DEMAND, 6, 2, 2, 0),
	};
	struct fp_trace_header h = synthetic_header(WHY_CHUNK, 8, 4 * WHY_CHUNK, 2, 2);
	const char *path = tmp("why.trace");
	FILE *f = fopen(path, "wb");
	cr_assert_not_null(f);
	cr_assert_eq(fwrite(&h, sizeof h, 1, f), 1);
	size_t n = sizeof e / sizeof e[0];
	cr_assert_eq(fwrite(e, sizeof e[0], n, f), n);
	cr_assert_eq(fclose(f), 0);
	return path;
}

/* The numbers on the line that starts (after spaces) with key. */
static int numbers_after(const char *out, const char *key, double *v, int max)
{
	const char *p = strstr(out, key);
	cr_assert_not_null(p, "no '%s' in:\n%s", key, out);
	p += strlen(key);
	int n = 0;
	while (n < max && *p && *p != '\n') {
		char *end;
		double x = strtod(p, &end);
		if (end == p) {
			p++;
			continue;
		}
		v[n++] = x;
		p = end;
	}
	return n;
}

Test(trace_tool, reads_in_flight_and_why_each_fault_waited, .timeout = 30)
{
	const char *path = write_trace();
	struct run r = RUN(path);
	cr_assert_eq(r.code, 0, "exit %d: %s", r.code, r.err);
	const char *o = r.out;
	double v[8];

	cr_expect(strstr(o, "6 reads, at most 2 at once"), "%s", o);
	/* Depth 0 for 47 us of 100, 1 for 30, 2 for 23: mean 0.76.  Within the
	 * merged stalls [10,50] [55,80] [83,100] (82 us): 29, 30 and 23 us. */
	cr_assert_eq(numbers_after(o, "at once)\n  mean", v, 3), 3);
	cr_expect(v[0] == 0.76 && v[1] == 47.0 && v[2] == 35.4, "%g %g %g\n%s", v[0], v[1], v[2], o);
	cr_assert_eq(numbers_after(o, "    0 in flight", v, 4), 4);
	cr_expect(v[0] == 47.0 && v[1] == 47.0 && v[2] == 29.0 && v[3] == 35.4, "%g %g %g %g", v[0],
	          v[1], v[2], v[3]);
	cr_assert_eq(numbers_after(o, "    1 in flight", v, 4), 4);
	cr_expect(v[0] == 30.0 && v[2] == 30.0, "%g %g", v[0], v[2]);
	cr_assert_eq(numbers_after(o, "    2 in flight", v, 4), 4);
	cr_expect(v[0] == 23.0 && v[2] == 23.0, "%g %g", v[0], v[2]);

	/* One fault of each reason; stalls 20 + 20 + 25 + 10 + 12 = 87 us. */
	cr_expect(strstr(o, "(5 faults;"), "%s", o);
	static const struct {
		const char *key;
		double count, us;
	} why[] = {
		{"its read was in flight", 1, 20}, {"queued, read not started", 1, 25},
		{"its pages were being evicted", 1, 12}, {"resident before, evicted or dropped", 1, 10},
		{"not issued: first use", 1, 20},
	};
	for (size_t i = 0; i < sizeof why / sizeof why[0]; i++) {
		cr_assert_eq(numbers_after(o, why[i].key, v, 3), 3, "%s", why[i].key);
		cr_expect(v[0] == why[i].count && v[1] == why[i].us, "%s: %g %g", why[i].key, v[0], v[1]);
	}
	/* Before the read 0 + 0 + 5 + 0 + 5, read 15 + 15 + 10 + 6 + 5,
	 * decode 3 + 4 + 5 + 2 + 1, install 2 + 1 + 5 + 2 + 1. */
	static const struct {
		const char *key;
		double us;
	} part[] = {
		{"before its read began", 10}, {"    read in flight", 51},
		{"verify and decode", 15}, {"install (UFFDIO_MOVE", 11},
	};
	for (size_t i = 0; i < sizeof part / sizeof part[0]; i++) {
		const char *p = strstr(o, "what the load was doing");
		cr_assert_not_null(p, "%s", o);
		cr_assert_geq(numbers_after(p, part[i].key, v, 3), 1, "%s", part[i].key);
		/* The install row's name holds no digits; the others' neither. */
		cr_expect(v[0] == part[i].us, "%s: %g\n%s", part[i].key, v[0], p);
	}
	run_free(&r);
}

Test(trace_tool, plot_draws_reads_in_flight, .timeout = 60)
{
	if (!have_gnuplot())
		cr_skip_test("gnuplot is not installed (tools/setup installs it)");
	const char *path = write_trace();
	const char *prefix = tmp("why-plot");
	struct run r = RUN(path, "-q", "--plot", prefix);
	cr_assert_eq(r.code, 0, "exit %d: %s", r.code, r.err);
	char png[600];
	snprintf(png, sizeof png, "%s-inflight.png", prefix);
	size_t len = 0;
	char *bytes = slurp(png, &len);
	cr_assert_not_null(bytes, "no %s", png);
	cr_expect(len > 8 && !memcmp(bytes, "\x89PNG", 4), "%s is not a PNG", png);
	free(bytes);
	run_free(&r);
}
