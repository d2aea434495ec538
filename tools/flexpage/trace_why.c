/* flexpage trace: why the loop waited.  Three views of one trace, all
 * derived from the load and stage records' stage times
 * (docs/trace-tool.md, "Why the loop waited"):
 *   - reads in flight over time: how busy the loaders kept the device;
 *   - each demand fault's reason: why its chunk was not there in time;
 *   - each stall split by what its load was doing meanwhile. */
#include <stdlib.h>
#include <string.h>

#include "trace_tool.h"
#include "util.h"

const char *tt_why_name(int why)
{
	static const char *const names[TT_NWHY] = {
		[TT_WHY_IN_FLIGHT] = "read-ahead late: its read was in flight",
		[TT_WHY_QUEUED] = "read-ahead late: queued, read not started",
		[TT_WHY_EVICTING] = "its pages were being evicted",
		[TT_WHY_REREAD] = "not issued: resident before, evicted or dropped",
		[TT_WHY_COLD] = "not issued: first use",
	};
	return why >= 0 && why < TT_NWHY ? names[why] : "?";
}

const char *tt_part_name(int part)
{
	static const char *const names[TT_NPART] = {
		[TT_PART_BEFORE] = "before its read began (queue, making room)",
		[TT_PART_READ] = "read in flight",
		[TT_PART_DECODE] = "verify and decode (CRC, zstd)",
		[TT_PART_INSTALL] = "install (UFFDIO_MOVE / COPY)",
	};
	return part >= 0 && part < TT_NPART ? names[part] : "?";
}

/* A read's span: queued (estimated: read start - queue wait), read start,
 * read end, decode end, install end (the load record; = decode end for a
 * staged read). */
struct span {
	uint64_t queued, rs, re, de, ie;
	int known;
};

static struct span span_of(const struct fp_trace_event *e)
{
	struct span s = {.known = 1};
	uint64_t install = e->type == FP_EV_LOAD ? tt_install_ns(e) : 0;
	uint64_t wait = e->type == FP_EV_LOAD ? tt_wait_ns(e) : e->b >> 32;
	uint64_t busy = tt_read_ns(e) + tt_decomp_ns(e) + install;
	s.ie = e->t_ns;
	s.rs = busy > e->t_ns ? 0 : e->t_ns - busy;
	s.re = s.rs + tt_read_ns(e);
	s.de = s.re + tt_decomp_ns(e);
	s.queued = wait > s.rs ? 0 : s.rs - wait;
	return s;
}

static uint64_t overlap(uint64_t a0, uint64_t a1, uint64_t b0, uint64_t b1)
{
	uint64_t lo = a0 > b0 ? a0 : b0, hi = a1 < b1 ? a1 : b1;
	return hi > lo ? hi - lo : 0;
}

static int cmp_load(const void *a, const void *b)
{
	const struct tt_stall *x = *(const struct tt_stall *const *)a;
	const struct tt_stall *y = *(const struct tt_stall *const *)b;
	return x->load < y->load ? -1 : x->load > y->load;
}

/* Reasons and parts: walk the records in order with each chunk's history,
 * meeting the stalls at the records that ended them. */
static int classify(struct tt_model *m)
{
	struct tt_why *w = &m->why;
	uint32_t nc = m->nc;
	size_t ns = 0;
	struct tt_stall **by_load = malloc((m->n_stalls + 1) * sizeof *by_load);
	uint32_t *held = calloc(nc ? nc : 1, sizeof *held);   /* loads + stages so far */
	struct span *staged = calloc(nc ? nc : 1, sizeof *staged);
	if (!by_load || !held || !staged) {
		free(by_load);
		free(held);
		free(staged);
		return -1;
	}
	for (size_t i = 0; i < m->n_stalls; i++)
		if (!m->stalls[i].poisoned)
			by_load[ns++] = &m->stalls[i];
	if (ns)
		qsort(by_load, ns, sizeof *by_load, cmp_load);
	size_t k = 0;
	for (uint64_t i = 0; i < m->n; i++) {
		const struct fp_trace_event *e = &m->ev[i];
		uint32_t c = e->chunk;
		if (c >= nc)
			continue;
		if (e->type == FP_EV_DROP) {
			staged[c].known = 0;
			continue;
		}
		if (e->type == FP_EV_STAGE) {
			staged[c] = span_of(e);
			held[c]++;
			continue;
		}
		if (e->type != FP_EV_LOAD)
			continue;
		struct span s = span_of(e);
		uint32_t before = held[c]; /* times resident before this load */
		if (e->flags & FP_LOAD_FROM_STAGE) {
			/* The read was the stage record's; this is the install. */
			struct span st = staged[c];
			if (st.known) {
				st.ie = e->t_ns;
				s = st;
				before--;
			} else {
				s.rs = s.re = s.de = s.queued = e->t_ns - tt_install_ns(e);
			}
		}
		for (; k < ns && by_load[k]->load == i; k++) {
			const struct tt_stall *st = by_load[k];
			int why = s.rs < st->start                ? TT_WHY_IN_FLIGHT
			        : s.queued < st->start             ? TT_WHY_QUEUED
			        : st->state == FP_FAULT_EVICTING   ? TT_WHY_EVICTING
			        : before                           ? TT_WHY_REREAD
			                                           : TT_WHY_COLD;
			uint64_t len = st->end > st->start ? st->end - st->start : 0;
			w->faults[why]++;
			w->stall[why] += len;
			w->part[TT_PART_BEFORE] += overlap(st->start, st->end, 0, s.rs);
			w->part[TT_PART_READ] += overlap(st->start, st->end, s.rs, s.re);
			w->part[TT_PART_DECODE] += overlap(st->start, st->end, s.re, s.de);
			w->part[TT_PART_INSTALL] += overlap(st->start, st->end, s.de, s.ie > s.de ? s.ie : s.de);
			w->stall_sum += len;
		}
		if (!(e->flags & FP_LOAD_FROM_STAGE))
			held[c]++;
	}
	free(by_load);
	free(held);
	free(staged);
	return 0;
}

/* An edge of the reads-in-flight curve: +1 a read begins, -1 one ends. */
struct edge {
	uint64_t t;
	int d;
};

static int cmp_edge(const void *a, const void *b)
{
	const struct edge *x = a, *y = b;
	if (x->t != y->t)
		return x->t < y->t ? -1 : 1;
	return x->d - y->d; /* ends first: back-to-back reads do not overlap */
}

/* Reads in flight: every read's [start, end) from the load and stage
 * records, swept into the time spent at each depth, and that time within
 * the merged stalls. */
static int sweep_reads(struct tt_model *m)
{
	struct tt_why *w = &m->why;
	size_t ne = 0, cap = 2 * m->reads + 1;
	struct edge *ed = malloc(cap * sizeof *ed);
	const uint64_t *iv = m->merged;
	size_t ni = m->n_merged;
	if (!ed)
		return -1;
	for (uint64_t i = 0; i < m->n; i++) {
		const struct fp_trace_event *e = &m->ev[i];
		if (!tt_did_read(e))
			continue;
		struct span s = span_of(e);
		if (s.re <= s.rs)
			continue;
		ed[ne++] = (struct edge){s.rs, +1};
		ed[ne++] = (struct edge){s.re, -1};
		w->reads++;
		if (m->stored_bytes && e->chunk < m->nc)
			w->read_bytes += m->stored_bytes[e->chunk];
	}
	if (ne)
		qsort(ed, ne, sizeof *ed, cmp_edge);
	m->inflight = malloc((ne + 2) * sizeof *m->inflight);
	if (!m->inflight) {
		free(ed);
		return -1;
	}
	/* Walk the edges; between two, the depth holds. */
	uint64_t t = 0, end = m->t_last;
	int depth = 0;
	size_t j = 0;
	m->inflight[m->n_inflight++] = (struct tt_depth){0, 0};
	for (size_t i = 0; i <= ne; i++) {
		uint64_t next = i < ne ? ed[i].t : end;
		if (next > end)
			next = end;
		if (next > t) {
			uint64_t dt = next - t;
			int b = depth < TT_DEPTH_MAX ? depth : TT_DEPTH_MAX;
			w->depth_time[b] += dt;
			w->depth_area += (double)depth * (double)dt;
			while (j < ni && iv[j + 1] <= t)
				j += 2;
			for (size_t q = j; q < ni && iv[q] < next; q += 2)
				w->depth_stall[b] += overlap(t, next, iv[q], iv[q + 1]);
			t = next;
		}
		if (i == ne)
			break;
		depth += ed[i].d;
		if (depth > w->max_depth)
			w->max_depth = depth;
		struct tt_depth *last = &m->inflight[m->n_inflight - 1];
		if (last->t == ed[i].t)
			last->depth = (uint32_t)depth;
		else
			m->inflight[m->n_inflight++] = (struct tt_depth){ed[i].t, (uint32_t)depth};
	}
	free(ed);
	return 0;
}

int tt_why_build(struct tt_model *m)
{
	return classify(m) || sweep_reads(m) ? -1 : 0;
}

static double pct(uint64_t part, uint64_t whole)
{
	return whole ? 100.0 * (double)part / (double)whole : 0.0;
}

void tt_print_why(FILE *f, const struct tt_model *m)
{
	const struct tt_why *w = &m->why;
	char a[32], b[32];
	uint64_t span = m->t_last, stalled = 0;
	for (int d = 0; d <= TT_DEPTH_MAX; d++)
		stalled += w->depth_stall[d];
	fprintf(f, "\nreads in flight (from each load's read time; %llu reads, at most %d at once)\n",
	        (unsigned long long)w->reads, w->max_depth);
	fprintf(f, "  mean %.2f over the trace; the device was idle %.1f%% of the trace and %.1f%%\n"
	           "  of the fault stall\n",
	        span ? w->depth_area / (double)span : 0.0, pct(w->depth_time[0], span),
	        pct(w->depth_stall[0], stalled));
	uint64_t busy = span > w->depth_time[0] ? span - w->depth_time[0] : 0;
	if (w->read_bytes && busy)
		fprintf(f, "  device rate %.2f GB/s: %s read in the %s some read was in flight\n",
		        (double)w->read_bytes / (double)busy, fmt_bytes(w->read_bytes, a, sizeof a),
		        tt_fmt_ns(busy, b, sizeof b));
	fprintf(f, "  %-14s %10s %7s %10s %7s\n", "", "time", "share", "in stall", "share");
	for (int d = 0; d <= TT_DEPTH_MAX; d++) {
		if (!w->depth_time[d])
			continue;
		char label[16];
		snprintf(label, sizeof label, d < TT_DEPTH_MAX ? "%d" : ">=%d", d);
		fprintf(f, "  %3s in flight %10s %6.1f%% %10s %6.1f%%\n", label,
		        tt_fmt_ns(w->depth_time[d], a, sizeof a), pct(w->depth_time[d], span),
		        tt_fmt_ns(w->depth_stall[d], b, sizeof b), pct(w->depth_stall[d], stalled));
	}

	uint64_t nf = 0;
	for (int r = 0; r < TT_NWHY; r++)
		nf += w->faults[r];
	fprintf(f, "\nwhy each demand fault waited (%llu faults; stall summed per fault, so\n"
	           "  overlapping stalls count each time)\n",
	        (unsigned long long)nf);
	for (int r = 0; r < TT_NWHY; r++)
		fprintf(f, "  %-50s %7llu  %10s %6.1f%%\n", tt_why_name(r),
		        (unsigned long long)w->faults[r], tt_fmt_ns(w->stall[r], a, sizeof a),
		        pct(w->stall[r], w->stall_sum));
	fprintf(f, "  what the load was doing while the fault waited:\n");
	for (int p = 0; p < TT_NPART; p++)
		fprintf(f, "    %-48s %10s %6.1f%%\n", tt_part_name(p),
		        tt_fmt_ns(w->part[p], a, sizeof a), pct(w->part[p], w->stall_sum));
}
