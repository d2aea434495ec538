/* Counters and latency histograms.  Histograms are log-linear: eight
 * buckets per power of two of nanoseconds, so quantiles are within 9%. */
#include <stdio.h>
#include <time.h>

#include "internal.h"

uint64_t pg_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

#define SUB 8  /* buckets per power of two */
#define SUB_BITS 3

static int bucket_of(uint64_t ns)
{
	if (ns < SUB)
		return (int)ns;
	int e = 63 - __builtin_clzll(ns); /* e >= SUB_BITS */
	int b = SUB * (e - SUB_BITS + 1) + (int)((ns >> (e - SUB_BITS)) & (SUB - 1));
	return b < FP_HIST_BUCKETS ? b : FP_HIST_BUCKETS - 1;
}

/* The largest value in bucket b. */
static uint64_t bucket_top(int b)
{
	if (b < SUB)
		return (uint64_t)b;
	int e = b / SUB + SUB_BITS - 1, sub = b % SUB;
	return (((uint64_t)SUB + (uint64_t)sub + 1) << (e - SUB_BITS)) - 1;
}

void pg_stat_resident(fp_region *r, uint64_t resident)
{
	if (resident > atomic_load(&r->stats.peak_resident))
		atomic_store(&r->stats.peak_resident, resident);
}

void pg_stat_latency(fp_region *r, int stage, uint64_t ns)
{
	struct pg_counters *s = &r->stats;
	atomic_fetch_add_explicit(&s->hist[stage][bucket_of(ns)], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&s->hist_count[stage], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&s->hist_sum[stage], ns, memory_order_relaxed);
	uint64_t m = atomic_load_explicit(&s->hist_max[stage], memory_order_relaxed);
	while (ns > m && !atomic_compare_exchange_weak(&s->hist_max[stage], &m, ns))
		;
}

uint64_t fp_hist_quantile(const struct fp_hist *h, double q)
{
	if (!h->count)
		return 0;
	uint64_t want = (uint64_t)(q * (double)h->count);
	if (want >= h->count)
		want = h->count - 1;
	uint64_t seen = 0;
	for (int b = 0; b < FP_HIST_BUCKETS; b++) {
		seen += h->bucket[b];
		if (seen > want) {
			uint64_t top = bucket_top(b);
			return top < h->max_ns ? top : h->max_ns;
		}
	}
	return h->max_ns;
}

const char *fp_stage_name(int stage)
{
	static const char *names[FP_NSTAGES] = {"fault", "wait", "read", "decompress", "install",
	                                        "overhead"};
	return stage >= 0 && stage < FP_NSTAGES ? names[stage] : "?";
}

void fp_get_stats(const fp_region *r, struct fp_stats *o)
{
	const struct pg_counters *s = &r->stats;
	o->faults = s->n[PG_FAULTS];
	o->demand_loads = s->n[PG_DEMAND_LOADS];
	o->prefetch_loads = s->n[PG_PREFETCH_LOADS];
	o->evictions = s->n[PG_EVICTIONS];
	o->retries = s->n[PG_RETRIES];
	o->stalls = s->n[PG_STALLS];
	o->poisoned = s->n[PG_POISONED];
	o->huge_installs = s->n[PG_HUGE_INSTALLS];
	o->staged_installs = s->n[PG_STAGED_INSTALLS];
	o->staged_dropped = s->n[PG_STAGED_DROPPED];
	o->small_installs = s->n[PG_SMALL_INSTALLS];
	o->bytes_read = s->n[PG_BYTES_READ];
	o->bytes_decompressed = s->n[PG_BYTES_DECOMPRESSED];
	o->bytes_installed = s->n[PG_BYTES_INSTALLED];
	o->peak_resident_bytes = s->peak_resident;
	o->trace_events = pg_tracer_written(r->tracer);
	o->trace_dropped = pg_tracer_dropped(r->tracer);
	o->readahead_depth = pg_ra_depth(r);
	pg_res_stats((fp_region *)r, o);
	pg_rates_stats(r, o);
	for (int st = 0; st < FP_NSTAGES; st++) {
		struct fp_hist *h = &o->lat[st];
		h->count = s->hist_count[st];
		h->sum_ns = s->hist_sum[st];
		h->max_ns = s->hist_max[st];
		for (int b = 0; b < FP_HIST_BUCKETS; b++)
			h->bucket[b] = s->hist[st][b];
	}
}

void fp_print_stats(FILE *f, const struct fp_stats *s)
{
	const double mib = 1 << 20;
	fprintf(f, "faults %llu, loads %llu demand + %llu read-ahead, evictions %llu, "
	           "retries %llu, poisoned %llu\n",
	        (unsigned long long)s->faults, (unsigned long long)s->demand_loads,
	        (unsigned long long)s->prefetch_loads, (unsigned long long)s->evictions,
	        (unsigned long long)s->retries, (unsigned long long)s->poisoned);
	if (s->stalls)
		fprintf(f, "stalled reads given up %llu\n", (unsigned long long)s->stalls);
	fprintf(f, "installs %llu huge (UFFDIO_MOVE) + %llu by copy; read %.1f MiB, "
	           "decompressed %.1f MiB, installed %.1f MiB\n",
	        (unsigned long long)s->huge_installs, (unsigned long long)s->small_installs,
	        (double)s->bytes_read / mib, (double)s->bytes_decompressed / mib,
	        (double)s->bytes_installed / mib);
	if (s->staged_installs || s->staged_dropped)
		fprintf(f, "staged read-ahead: %llu installed by the loop's faults (position signals), "
		           "%llu dropped as mispredicted; depth %u chunks at the end\n",
		        (unsigned long long)s->staged_installs, (unsigned long long)s->staged_dropped,
		        s->readahead_depth);
	fprintf(f, "resident %.1f MiB (peak %.1f MiB) of budget %.1f MiB; preserved %.1f MiB, "
	           "%.1f MiB of it locked\n",
	        (double)s->resident_bytes / mib, (double)s->peak_resident_bytes / mib,
	        (double)s->budget / mib, (double)s->preserved_bytes / mib,
	        (double)s->locked_bytes / mib);
	fprintf(f, "rates: read %.0f MB/s%s, decode %.0f MB/s a core%s; %u chunks read "
	           "compressed (%u in their alternate form)\n",
	        s->read_rate / 1e6, s->rates_measured & FP_RATE_READ ? " (measured)" : "",
	        s->decode_rate / 1e6, s->rates_measured & FP_RATE_DECODE ? " (measured)" : "",
	        s->compressed_chunks, s->alt_forms_chosen);
	fprintf(f, "%-11s %9s %9s %9s %9s %9s\n", "latency us", "count", "p50", "p90", "p99", "max");
	for (int st = 0; st < FP_NSTAGES; st++) {
		const struct fp_hist *h = &s->lat[st];
		fprintf(f, "%-11s %9llu %9.1f %9.1f %9.1f %9.1f\n", fp_stage_name(st),
		        (unsigned long long)h->count, (double)fp_hist_quantile(h, 0.5) / 1e3,
		        (double)fp_hist_quantile(h, 0.9) / 1e3, (double)fp_hist_quantile(h, 0.99) / 1e3,
		        (double)h->max_ns / 1e3);
	}
}
