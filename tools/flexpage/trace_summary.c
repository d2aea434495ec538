/* flexpage trace: the text summary, the per-token table and the latency
 * histograms. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trace_tool.h"
#include "util.h"

const char *tt_fmt_ns(uint64_t ns, char *buf, size_t n)
{
	if (ns < 1000)
		snprintf(buf, n, "%llu ns", (unsigned long long)ns);
	else if (ns < 1000000)
		snprintf(buf, n, "%.1f us", (double)ns / 1e3);
	else if (ns < 1000000000)
		snprintf(buf, n, "%.2f ms", (double)ns / 1e6);
	else
		snprintf(buf, n, "%.2f s", (double)ns / 1e9);
	return buf;
}

static double ms(uint64_t ns)
{
	return (double)ns / 1e6;
}

static double pct(uint64_t part, uint64_t whole)
{
	return whole ? 100.0 * (double)part / (double)whole : 0.0;
}

/* ---- latency series ------------------------------------------------------ */

const char *tt_lat_name(int which)
{
	static const char *const names[TT_NLAT] = {
		"fault service (fault record -> load record)", "read", "decompress (CRC + zstd)",
		"install (UFFDIO_MOVE / COPY)", "queue wait (queued -> picked by a loader)",
	};
	return which >= 0 && which < TT_NLAT ? names[which] : "?";
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

uint64_t *tt_latencies(const struct tt_model *m, int which, size_t *n)
{
	size_t cap = which == TT_LAT_SERVICE ? m->n_stalls
	           : which == TT_LAT_INSTALL ? m->count[FP_EV_LOAD]
	                                     : m->reads;
	size_t k = 0;
	*n = 0;
	if (!cap)
		return NULL;
	uint64_t *v = malloc(cap * sizeof *v);
	if (!v)
		return NULL;
	if (which == TT_LAT_SERVICE) {
		for (size_t i = 0; i < m->n_stalls; i++)
			if (!m->stalls[i].poisoned)
				v[k++] = m->stalls[i].service;
	} else if (which == TT_LAT_INSTALL) {
		for (uint64_t i = 0; i < m->n; i++)
			if (m->ev[i].type == FP_EV_LOAD)
				v[k++] = tt_install_ns(&m->ev[i]);
	} else {
		for (uint64_t i = 0; i < m->n; i++) {
			const struct fp_trace_event *e = &m->ev[i];
			if (!tt_did_read(e))
				continue;
			v[k++] = which == TT_LAT_READ     ? tt_read_ns(e)
			       : which == TT_LAT_DECOMP   ? tt_decomp_ns(e)
			                                  : tt_wait_ns(e);
		}
	}
	if (!k) {
		free(v);
		return NULL;
	}
	qsort(v, k, sizeof *v, cmp_u64);
	*n = k;
	return v;
}

uint64_t tt_quantile(const uint64_t *v, size_t n, double q)
{
	if (!n)
		return 0;
	size_t rank = (size_t)(q * (double)n + 0.999999);
	if (rank < 1)
		rank = 1;
	if (rank > n)
		rank = n;
	return v[rank - 1];
}

/* ---- the summary ----------------------------------------------------------- */

/* v: time, stall, compute, faults, demand, ahead, evict, read, decomp,
 * install (times in ms); share: stall per cent. */
static void print_token_row(FILE *f, const char *label, const double *v, double share,
                            int counts_exact)
{
	const char *cf = counts_exact ? "%7.0f" : "%7.1f";
	fprintf(f, "  %8s %9.3f %9.3f %6.1f%% %10.3f ", label, v[0], v[1], share, v[2]);
	for (int i = 3; i < 7; i++) {
		fprintf(f, cf, v[i]);
		fputc(' ', f);
	}
	fprintf(f, "%9.3f %9.3f %9.3f\n", v[7], v[8], v[9]);
}

static void print_tokens(FILE *f, const struct tt_model *m, int rows)
{
	if (!m->n_tokens) {
		fprintf(f, "\ntokens: none (no FP_MARK_TOKEN marks in this trace)\n");
		return;
	}
	fprintf(f,
	        "\ntokens: %zu (from one FP_MARK_TOKEN mark to the next, an FP_MARK_TOKEN_END or\n"
	        "  the last record).  stall: wall time in the token during which at least one\n"
	        "  thread waited on a demand fault; compute = time - stall; read, decomp, install:\n"
	        "  loader stage times of the loads completed in the token (they overlap compute,\n"
	        "  and each other with several loaders).  Times in ms.\n",
	        m->n_tokens);
	fprintf(f, "  %8s %9s %9s %7s %10s %7s %7s %7s %7s %9s %9s %9s\n", "token", "time", "stall",
	        "stall%", "compute", "faults", "demand", "ahead", "evict", "read", "decomp", "install");
	double sum[10] = {0}, max[10] = {0}, max_share = 0;
	for (size_t k = 0; k < m->n_tokens; k++) {
		const struct tt_token *t = &m->tokens[k];
		uint64_t time = t->end - t->start;
		double v[10] = {
			ms(time), ms(t->stall), ms(time - (t->stall < time ? t->stall : time)),
			(double)t->faults, (double)t->demand, (double)t->readahead,
			(double)t->evictions, ms(t->read), ms(t->decomp), ms(t->install),
		};
		double share = pct(t->stall, time);
		for (int i = 0; i < 10; i++) {
			sum[i] += v[i];
			if (v[i] > max[i])
				max[i] = v[i];
		}
		if (share > max_share)
			max_share = share;
		if ((int)k < rows) {
			char label[24];
			snprintf(label, sizeof label, "%llu", (unsigned long long)t->value);
			print_token_row(f, label, v, share, 1);
		}
	}
	if ((size_t)rows < m->n_tokens)
		fprintf(f, "  %8s (%zu more)\n", "...", m->n_tokens - (size_t)rows);
	double mean[10];
	for (int i = 0; i < 10; i++)
		mean[i] = sum[i] / (double)m->n_tokens;
	print_token_row(f, "mean", mean, sum[0] > 0 ? 100.0 * sum[1] / sum[0] : 0.0, 0);
	print_token_row(f, "max", max, max_share, 1);
	fprintf(f, "  (mean stall%%: total stall over total time; max: the largest value of each\n"
	           "  column, not one token)\n");
}

void tt_print_summary(FILE *f, const struct tt_model *m, int rows)
{
	const struct fp_trace_header *h = m->h;
	char a[32], b[32], c[32], d[32];
	uint64_t span = m->t_last;
	fprintf(f, "trace      %s: %llu records over %s\n", m->path, (unsigned long long)m->n,
	        tt_fmt_ns(span, a, sizeof a));
	fprintf(f, "image      %s: %u chunks of %s (%s)\n", h->image[0] ? h->image : "(none)",
	        h->n_chunks, fmt_bytes(h->chunk_size, a, sizeof a),
	        fmt_bytes(h->logical_size, b, sizeof b));
	if (!m->have_image)
		fprintf(f, "           not opened (%s): each chunk counted as %s\n", m->image_note,
		        fmt_bytes(h->chunk_size, a, sizeof a));
	fprintf(f, "pager      policy %s, budget %s, %u loader%s, read-ahead %u\n", h->policy,
	        fmt_bytes(h->budget, a, sizeof a), h->loaders, h->loaders == 1 ? "" : "s",
	        h->readahead);

	fprintf(f, "\nevents\n");
	fprintf(f, "  faults     %10llu  (%llu waited for a load, %llu found the chunk resident, "
	           "%llu on padding, %llu poisoned, %llu unserved at the end)\n",
	        (unsigned long long)m->count[FP_EV_FAULT], (unsigned long long)m->faults_waited,
	        (unsigned long long)m->faults_resident, (unsigned long long)m->faults_padding,
	        (unsigned long long)m->faults_poisoned, (unsigned long long)m->faults_unserved);
	fprintf(f, "  loads      %10llu  (%llu demand, %llu read-ahead)\n",
	        (unsigned long long)m->count[FP_EV_LOAD], (unsigned long long)m->demand_loads,
	        (unsigned long long)m->readahead_loads);
	fprintf(f, "  evictions  %10llu\n", (unsigned long long)m->count[FP_EV_EVICT]);
	fprintf(f, "  poisoned   %10llu\n", (unsigned long long)m->count[FP_EV_POISON]);
	fprintf(f, "  marks      %10llu\n", (unsigned long long)m->count[FP_EV_MARK]);
	fprintf(f, "  settings   %10llu\n", (unsigned long long)m->count[FP_EV_SETTINGS]);

	fprintf(f, "\nbytes\n");
	fprintf(f, "  installed  %10s  (resident bytes of the chunks loaded)\n",
	        fmt_bytes(m->bytes_installed, a, sizeof a));
	if (m->stored_bytes)
		fprintf(f, "  read       %10s  (their stored bytes in the image; retries not seen)\n",
		        fmt_bytes(m->bytes_stored, a, sizeof a));
	fprintf(f, "  resident   %10s  peak, %s at the end, budget %s%s\n",
	        fmt_bytes(m->peak_resident > 0 ? (uint64_t)m->peak_resident : 0, a, sizeof a),
	        fmt_bytes(m->res[m->n_res - 1].resident > 0 ? (uint64_t)m->res[m->n_res - 1].resident
	                                                    : 0,
	                  b, sizeof b),
	        fmt_bytes(m->end_budget, c, sizeof c),
	        m->budget_changes ? " (changed during the run)" : "");

	fprintf(f, "\ntime\n");
	fprintf(f, "  fault stall %9s  (%.1f%% of the trace: wall time during which at least one\n"
	           "                          thread waited on a demand fault, overlaps merged)\n",
	        tt_fmt_ns(m->stall_union, a, sizeof a), pct(m->stall_union, span));
	uint64_t busy = m->busy_read + m->busy_decomp + m->busy_install;
	uint32_t loaders = m->max_loader ? m->max_loader : 1;
	fprintf(f, "  loaders     %9s  busy (read %s, decompress %s, install %s): %.1f%% of %u x the trace\n",
	        tt_fmt_ns(busy, a, sizeof a), tt_fmt_ns(m->busy_read, b, sizeof b),
	        tt_fmt_ns(m->busy_decomp, c, sizeof c), tt_fmt_ns(m->busy_install, d, sizeof d),
	        span ? 100.0 * (double)busy / ((double)span * loaders) : 0.0, loaders);
	if (m->reads)
		fprintf(f, "  queue wait  %9s  mean per read\n",
		        tt_fmt_ns(m->busy_wait / m->reads, a, sizeof a));
	tt_print_why(f, m);
	print_tokens(f, m, rows);
}

/* ---- histograms ---------------------------------------------------------------- */

/* Bucket bounds 1-2-5 per decade, from 100 ns. */
#define NBOUNDS 34
static uint64_t bound(int k)
{
	static const uint64_t step[3] = {1, 2, 5};
	uint64_t v = 100;
	for (int i = 0; i < k / 3; i++)
		v *= 10;
	return v * step[k % 3];
}

static int bucket_of(uint64_t ns)
{
	int k = 0;
	while (k + 1 < NBOUNDS && ns >= bound(k + 1))
		k++;
	return k;
}

static void print_one_hist(FILE *f, const struct tt_model *m, int which)
{
	size_t n;
	uint64_t *v = tt_latencies(m, which, &n);
	fprintf(f, "\n%s: ", tt_lat_name(which));
	if (!v) {
		fprintf(f, "no samples\n");
		return;
	}
	uint64_t sum = 0;
	for (size_t i = 0; i < n; i++)
		sum += v[i];
	char a[24], b[24], c[24], d[24], e[24];
	fprintf(f, "%zu samples\n  p50 %s   p90 %s   p99 %s   max %s   mean %s\n", n,
	        tt_fmt_ns(tt_quantile(v, n, 0.5), a, sizeof a),
	        tt_fmt_ns(tt_quantile(v, n, 0.9), b, sizeof b),
	        tt_fmt_ns(tt_quantile(v, n, 0.99), c, sizeof c), tt_fmt_ns(v[n - 1], d, sizeof d),
	        tt_fmt_ns(sum / n, e, sizeof e));
	uint64_t count[NBOUNDS] = {0}, top = 0;
	for (size_t i = 0; i < n; i++)
		count[bucket_of(v[i])]++;
	int lo = bucket_of(v[0]), hi = bucket_of(v[n - 1]);
	for (int k = lo; k <= hi; k++)
		if (count[k] > top)
			top = count[k];
	for (int k = lo; k <= hi; k++) {
		int bar = (int)((count[k] * 40 + top - 1) / top);
		fprintf(f, "  %9s .. %-9s |%.*s%*s| %llu\n", tt_fmt_ns(k ? bound(k) : 0, a, sizeof a),
		        k + 1 < NBOUNDS ? tt_fmt_ns(bound(k + 1), b, sizeof b) : "", bar,
		        "########################################", 40 - bar, "",
		        (unsigned long long)count[k]);
	}
	free(v);
}

void tt_print_hist(FILE *f, const struct tt_model *m)
{
	fprintf(f, "\nlatency histograms (buckets 1-2-5 per decade; fault service is per demand\n"
	           "fault, unclipped; read, decompress and queue wait per read, a load's or a\n"
	           "staging's; install per load)\n");
	for (int w = 0; w < TT_NLAT; w++)
		print_one_hist(f, m, w);
}
