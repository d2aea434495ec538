/* flexpage trace, run as a program: the summary agrees with fp_get_stats
 * for a trace recorded through the library, and gives the defined numbers
 * for a synthetic trace whose every number is known. */
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

/* ---- the summary ----------------------------------------------------------- */

/* The number after "key" at the start of a line of the summary. */
static unsigned long long field(const char *out, const char *line_start, const char *after)
{
	const char *p = strstr(out, line_start);
	cr_assert_not_null(p, "no '%s' in the summary:\n%s", line_start, out);
	p += strlen(line_start);
	if (after) {
		const char *eol = strchr(p, '\n');
		const char *q = strstr(p, after);
		cr_assert(q && (!eol || q < eol), "no '%s' on the '%s' line", after, line_start);
		/* The number just before "after". */
		while (q > p && q[-1] == ' ')
			q--;
		while (q > p && q[-1] >= '0' && q[-1] <= '9')
			q--;
		p = q;
	}
	char *end;
	unsigned long long v = strtoull(p, &end, 10);
	cr_assert(end != p, "no number for '%s'", line_start);
	return v;
}

Test(trace_tool, summary_counts_match_the_library_stats, .timeout = 60)
{
	struct recorded rec;
	record(&rec);
	struct run r = RUN(rec.trace, "--tokens", "2");
	cr_assert_eq(r.code, 0, "exit %d: %s", r.code, r.err);
	const char *o = r.out;
	cr_expect_eq(field(o, "\n  faults", NULL), rec.s.faults, "%s", o);
	cr_expect_eq(field(o, "\n  loads", NULL), rec.s.demand_loads + rec.s.prefetch_loads);
	cr_expect_eq(field(o, "\n  loads", " demand"), rec.s.demand_loads);
	cr_expect_eq(field(o, "\n  loads", " read-ahead"), rec.s.prefetch_loads);
	cr_expect_eq(field(o, "\n  evictions", NULL), rec.s.evictions);
	cr_expect_eq(field(o, "\n  poisoned", NULL), rec.s.poisoned);
	cr_expect_eq(field(o, "\n  marks", NULL), TOKENS + 1);
	cr_expect_eq(field(o, "\n  settings", NULL), 1);
	/* Every fault is accounted for exactly once. */
	unsigned long long waited = field(o, "\n  faults", " waited"),
	                   resident = field(o, "\n  faults", " found the chunk resident"),
	                   padding = field(o, "\n  faults", " on padding"),
	                   poisoned = field(o, "\n  faults", " poisoned"),
	                   unserved = field(o, "\n  faults", " unserved");
	cr_expect_eq(waited + resident + padding + poisoned + unserved, rec.s.faults);
	cr_expect_gt(waited, 0);
	cr_expect_eq(unserved, 0);
	cr_expect_eq(field(o, "\ntokens:", NULL), TOKENS);
	cr_expect(strstr(o, "\n      mean ") && strstr(o, "\n       max "), "%s", o);
	cr_expect(strstr(o, "(2 more)"), "--tokens 2 shows two rows of four:\n%s", o);
	cr_expect(strstr(o, "policy fifo"), "%s", o);
	cr_expect(!strstr(o, "not opened"), "the image is there:\n%s", o);
	cr_expect(strstr(o, "\n  device rate "), "with the image, the stored bytes give a rate:\n%s", o);
	run_free(&r);

	/* The peak resident bytes the trace shows are those the library saw. */
	r = RUN(rec.trace, "--quiet", "--hist");
	cr_assert_eq(r.code, 0, "%s", r.err);
	cr_expect(!strstr(r.out, "\nevents"), "--quiet drops the summary");
	const char *hist[] = {"fault service", "read", "decompress", "install", "queue wait"};
	for (int i = 0; i < 5; i++) {
		const char *p = strstr(r.out, hist[i]);
		cr_expect_not_null(p, "no %s histogram:\n%s", hist[i], r.out);
		if (p)
			cr_expect(strstr(p, "p50 ") && strstr(p, "p99 ") && strstr(p, "max ") &&
			          strstr(p, "|#"),
			          "%s", p);
	}
	run_free(&r);

	/* Without the image, chunk sizes fall back to chunk_size, and say so. */
	r = RUN(rec.trace, "--image", "/nonexistent/model.img");
	cr_assert_eq(r.code, 0, "%s", r.err);
	cr_expect(strstr(r.out, "not opened"), "%s", r.out);
	cr_expect(!strstr(r.out, "device rate"), "no stored bytes, no rate:\n%s", r.out);
	cr_expect_eq(field(r.out, "\n  loads", NULL), rec.s.demand_loads + rec.s.prefetch_loads);
	run_free(&r);
}

/* ---- a synthetic trace whose every number is known ----------------------- */

#define US 1000ull
#define SYN_CHUNK (64u << 10)

static struct fp_trace_event ev_fault(uint64_t us, uint32_t c, uint8_t state, uint64_t tid)
{
	return (struct fp_trace_event){us * US, FP_EV_FAULT, state, 0, c, tid, (uint64_t)c * SYN_CHUNK};
}

static struct fp_trace_event ev_load(uint64_t us, uint32_t c)
{
	/* read 5 us, decompress 2 us, install 1 us, queue wait 1 us */
	return (struct fp_trace_event){us * US, FP_EV_LOAD, 1, 1, c, 5 * US | (2 * US) << 32,
	                               1 * US | (1 * US) << 32};
}

static struct fp_trace_event ev(uint64_t us, uint8_t type, uint8_t flags, uint16_t thread,
                                uint32_t c, uint64_t a, uint64_t b)
{
	return (struct fp_trace_event){us * US, type, flags, thread, c, a, b};
}

/* A hand-made trace file: the header, then the records in order, or
 * interleaved (the even ones, then the odd ones). */
static const char *write_trace(const char *name, const struct fp_trace_header *h,
                               const struct fp_trace_event *e, size_t n, int interleaved)
{
	const char *path = tmp(name);
	FILE *f = fopen(path, "wb");
	cr_assert_not_null(f);
	cr_assert_eq(fwrite(h, sizeof *h, 1, f), 1);
	for (size_t pass = 0; pass < (interleaved ? 2u : 1u); pass++)
		for (size_t i = pass; i < n; i += interleaved ? 2 : 1)
			cr_assert_eq(fwrite(&e[i], sizeof e[i], 1, f), 1);
	cr_assert_eq(fclose(f), 0);
	return path;
}

/* Two threads (100, 101) stall on overlapping faults; thread 100 resumes
 * and marks token 1 before its last load is recorded; thread 102 faults
 * twice on a chunk that is never loaded; thread 103 waits for a poison. */
static const char *write_synthetic(void)
{
	struct fp_trace_event e[] = {
		ev(0, FP_EV_MARK, FP_MARK_TOKEN, 0xffff, 0, 0, 100),
		ev_fault(10, 0, 0, 100), ev_fault(12, 0, 1, 101), ev_load(20, 0),
		ev_fault(30, 1, 0, 100), ev_fault(35, 2, 0, 101), ev_load(40, 1), ev_load(50, 2),
		ev(60, FP_EV_EVICT, 0, 1, 0, 0, 0),
		ev_fault(90, 4, 0, 100),
		ev(100, FP_EV_MARK, FP_MARK_TOKEN, 0xffff, 0, 1, 100),
		ev_load(105, 4),
		ev_fault(110, 0, 2, 100), ev_fault(120, 3, 0, 100), ev_load(130, 3),
		ev_fault(137, 6, 0, 102), ev_fault(138, 6, 0, 102),
		ev(140, FP_EV_MARK, FP_MARK_TOKEN_END, 0xffff, 0, 2, 100),
		ev(150, FP_EV_SETTINGS, 0, 0xffff, 0, 2 * SYN_CHUNK, 0),
		ev(151, FP_EV_EVICT, 0, 0xffff, 1, 0, 0),
		ev_fault(200, 7, 0, 103), ev(210, FP_EV_POISON, 0, 1, 7, 0, 0),
	};
	struct fp_trace_header h = synthetic_header(SYN_CHUNK, 8, 3 * SYN_CHUNK, 1, 0);
	/* Out of order, as several threads' rings reach the file. */
	return write_trace("synthetic.trace", &h, e, sizeof e / sizeof e[0], 1);
}

/* The row of the token table labelled label: time, stall, stall%, compute. */
static void token_row(const char *out, const char *label, double v[4])
{
	char key[32];
	snprintf(key, sizeof key, "\n  %8s ", label);
	const char *p = strstr(out, key);
	cr_assert_not_null(p, "no token row %s in:\n%s", label, out);
	cr_assert_eq(sscanf(p + strlen(key), "%lf %lf %lf%% %lf", &v[0], &v[1], &v[2], &v[3]), 4,
	             "row %s", label);
}

Test(trace_tool, synthetic_trace_gives_the_defined_numbers, .timeout = 30)
{
	const char *path = write_synthetic();
	struct run r = RUN(path, "--hist");
	cr_assert_eq(r.code, 0, "exit %d: %s", r.code, r.err);
	const char *o = r.out;
	cr_expect_eq(field(o, "\n  faults", NULL), 10, "%s", o);
	cr_expect_eq(field(o, "\n  faults", " waited"), 6);
	cr_expect_eq(field(o, "\n  faults", " found the chunk resident"), 1);
	cr_expect_eq(field(o, "\n  faults", " on padding"), 1);
	cr_expect_eq(field(o, "\n  faults", " poisoned"), 1);
	cr_expect_eq(field(o, "\n  faults", " unserved"), 1);
	cr_expect_eq(field(o, "\n  loads", " demand"), 5);
	cr_expect_eq(field(o, "\n  evictions", NULL), 2);
	cr_expect_eq(field(o, "\n  poisoned", NULL), 1);
	/* Without the image every chunk counts chunk_size: 4 of 64 KiB at the
	 * peak, 5 loads - 2 evictions at the end. */
	cr_expect(strstr(o, "256.00 KiB  peak, 192.00 KiB at the end, budget 128.00 KiB"), "%s", o);
	/* Merged stalls: [10,20] [30,50] [90,100] (clipped at thread 100's mark)
	 * [120,130] [200,210] us. */
	cr_expect(strstr(o, "fault stall   60.0 us"), "%s", o);
	double t0[4], t1[4], mean[4];
	token_row(o, "0", t0);
	token_row(o, "1", t1);
	token_row(o, "mean", mean);
	cr_expect(t0[0] == 0.1 && t0[1] == 0.04 && t0[3] == 0.06, "token 0: %g %g %g", t0[0], t0[1], t0[3]);
	cr_expect(t1[0] == 0.04 && t1[1] == 0.01 && t1[3] == 0.03, "token 1: %g %g %g", t1[0], t1[1], t1[3]);
	cr_expect(mean[0] == 0.07 && mean[1] == 0.025, "mean: %g %g", mean[0], mean[1]);
	/* Service times 8, 10, 10, 10, 15, 15 us (the clipped one unclipped). */
	const char *svc = strstr(o, "fault service");
	cr_assert_not_null(svc);
	cr_expect(strstr(svc, "6 samples") && strstr(svc, "p50 10.0 us") && strstr(svc, "max 15.0 us"),
	          "%s", svc);
	run_free(&r);

	const char *json = tmp("synthetic.json");
	r = RUN(path, "-q", "--chrome", json);
	cr_assert_eq(r.code, 0, "%s", r.err);
	run_free(&r);
	size_t len;
	char *text = slurp(json, &len), err[128];
	struct jval *root = json_parse(text, len, err, sizeof err);
	cr_assert_not_null(root, "%s", err);
	const struct jval *evs = jget(root, "traceEvents");
	cr_assert_not_null(evs);
	int stalls = 0, tokens = 0, poison = 0;
	for (size_t i = 0; i < evs->n; i++) {
		const struct jval *e = evs->items[i];
		if (!strcmp(jstr(e, "cat"), "stall")) {
			stalls++;
			/* Thread 100's stall from 90 us ends at its mark, 100 us. */
			if (jnum(e, "ts") > 89 && jnum(e, "ts") < 91)
				cr_expect(jnum(e, "dur") < 10.0 && jnum(e, "dur") > 9.9, "%g", jnum(e, "dur"));
		}
		tokens += !strcmp(jstr(e, "cat"), "token");
		poison += !strcmp(jstr(e, "cat"), "poison");
	}
	cr_expect_eq(stalls, 7);
	cr_expect_eq(tokens, 2);
	cr_expect_eq(poison, 1);
	jfree(root);
	free(text);
}

/* A token with a staged chunk (read 4 ms, decode 1 ms, queue wait 3 ms),
 * installed later from its stage, and a chunk loaded on demand. */
static const char *staged_trace(void)
{
	struct fp_trace_event e[] = {
		ev(0, FP_EV_MARK, FP_MARK_TOKEN, 0xffff, 0, 0, 100),
		/* chunk 0 staged: read 4 ms, decode 1 ms, queue wait 3 ms */
		ev(5000, FP_EV_STAGE, 0, 1, 0, 4000 * US | (1000 * US) << 32, (3000 * US) << 32),
		ev_fault(6000, 0, 1, 100),
		/* installed from the stage: install 10 us, nothing else */
		ev(6010, FP_EV_LOAD, FP_LOAD_FROM_STAGE, 1, 0, 0, 10 * US),
		/* chunk 1 loaded on demand: read 2 ms, decode 1 ms, install 30 us,
		 * queue wait 1 ms */
		ev_fault(6100, 1, 0, 100),
		ev(9130, FP_EV_LOAD, FP_LOAD_DEMAND, 1, 1, 2000 * US | (1000 * US) << 32,
		   30 * US | (1000 * US) << 32),
		ev(9200, FP_EV_MARK, FP_MARK_TOKEN_END, 0xffff, 0, 1, 100),
	};
	struct fp_trace_header h = synthetic_header(SYN_CHUNK, 4, 4 * SYN_CHUNK, 1, 0);
	return write_trace("staged.trace", &h, e, sizeof e / sizeof e[0], 0);
}

/* A staged read carries its read, decode and queue wait in the stage
 * record; the load that installs it later carries only its install.  The
 * histograms count reads where they happened: two reads (4 ms staged, 2 ms
 * loaded), two installs, and no zero read for the staged chunk's install.
 * The loaders' busy total is the histograms' sum. */
Test(trace_tool, histograms_count_a_staged_read_once, .timeout = 30)
{
	struct run r = RUN(staged_trace(), "--hist");
	cr_assert_eq(r.code, 0, "exit %d: %s", r.code, r.err);
	const char *o = r.out;
	cr_expect(strstr(o, "busy (read 6.00 ms, decompress 2.00 ms, install 40.0 us)"), "%s", o);
	cr_expect(strstr(o, "queue wait    2.00 ms  mean per read"), "%s", o);
	static const struct {
		const char *name, *want;
	} hist[] = {
		{"\nread: ", "2 samples\n  p50 2.00 ms   p90 4.00 ms   p99 4.00 ms   max 4.00 ms   mean 3.00 ms"},
		{"\ndecompress (CRC + zstd): ", "2 samples\n  p50 1.00 ms   p90 1.00 ms   p99 1.00 ms   max 1.00 ms   mean 1.00 ms"},
		{"\ninstall (UFFDIO_MOVE / COPY): ", "2 samples\n  p50 10.0 us   p90 30.0 us   p99 30.0 us   max 30.0 us   mean 20.0 us"},
		{"\nqueue wait (queued -> picked by a loader): ", "2 samples\n  p50 1.00 ms   p90 3.00 ms   p99 3.00 ms   max 3.00 ms   mean 2.00 ms"},
	};
	for (size_t i = 0; i < sizeof hist / sizeof hist[0]; i++) {
		const char *p = strstr(o, hist[i].name);
		cr_assert_not_null(p, "no histogram %s in:\n%s", hist[i].name, o);
		p += strlen(hist[i].name);
		cr_expect(!strncmp(p, hist[i].want, strlen(hist[i].want)), "%s: want\n%s\ngot\n%.200s",
		          hist[i].name, hist[i].want, p);
	}
	run_free(&r);
}

/* The Chrome view draws a staging read on its loader, where it happened,
 * and the later install from the stage as a load of its own. */
Test(trace_tool, chrome_draws_a_staging, .timeout = 30)
{
	const char *json = tmp("staged.json");
	struct run r = RUN(staged_trace(), "--chrome", json, "-q");
	cr_assert_eq(r.code, 0, "exit %d: %s", r.code, r.err);
	run_free(&r);
	struct jval *root = load_json(json);
	const struct jval *ev = jget(root, "traceEvents");
	cr_assert(ev && ev->type == J_ARR, "no traceEvents array");
	int stagings = 0, reads = 0, loads = 0;
	for (size_t i = 0; i < ev->n; i++) {
		const struct jval *e = ev->items[i];
		const char *ph = jstr(e, "ph"), *cat = jstr(e, "cat"), *name = jstr(e, "name");
		if (strcmp(ph, "X") || !cat)
			continue;
		if (!strcmp(cat, "staging")) {
			stagings++;
			cr_expect_eq(jnum(jget(e, "args"), "chunk"), 0);
			/* it began when its queue wait ended: 5 ms - 4 ms - 1 ms */
			cr_expect_float_eq(jnum(e, "ts"), 0.0, 1e-6);
			cr_expect_float_eq(jnum(e, "dur"), 5000.0, 1e-6);
			cr_expect_float_eq(jnum(jget(e, "args"), "wait_us"), 3000.0, 1e-6);
		} else if (!strcmp(cat, "stage") && !strcmp(name, "read")) {
			reads++;
			const double want = jnum(jget(e, "args"), "chunk") == 0 ? 4000.0 : 2000.0;
			cr_expect_float_eq(jnum(e, "dur"), want - 0.004, 1e-6, "read of chunk %g",
			                   jnum(jget(e, "args"), "chunk"));
		} else if (!strcmp(cat, "load")) {
			loads++;
		}
	}
	cr_expect_eq(stagings, 1);
	cr_expect_eq(reads, 2, "the staged read and the demand load's");
	cr_expect_eq(loads, 2, "the install from the stage and the demand load");
	jfree(root);
}
