#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cmds.h"
#include "run_paging.h"
#include "util.h"

int run_paging_plan(struct run_paging *p, const char *path, struct fp_options *o,
                    char *err, size_t errlen)
{
	/* balanced preservation is the default: it measured best in
	 * bench/sweep at every budget below the model (bench/README.md) */
	const char *preserve = p->preserve ? p->preserve : "balanced";
	if (!strcmp(preserve, "none")) {
		o->flags |= FP_OPEN_NO_PRESERVE; /* nor a plan of fp_open's own */
		return 0;
	}
	int balanced = !strcmp(preserve, "balanced");
	if (!balanced && strcmp(preserve, "first")) {
		snprintf(err, errlen, "--preserve: '%s' is not balanced, first or none", p->preserve);
		return -1;
	}
	/* the plan's chunks are the region's: a GGUF is cut at o->chunk_size */
	fp_image *img = fp_image_open_chunk(path, o->chunk_size);
	if (!img) {
		snprintf(err, errlen, "%s", fp_last_error());
		return -1;
	}
	const struct fp_image_info *info = fp_image_info(img);
	/* The rates the plan weighs reads and decodes by, and fp_open chooses
	 * each chunk's form by: measured once here, unless given, when an
	 * image has something compressed for them to decide, and handed to
	 * fp_open so that both use the same. */
	int compressed = 0;
	for (uint32_t i = 0; !compressed && i < info->n_chunks; i++)
		compressed = fp_image_chunk(img, i)->codec != FP_CODEC_RAW;
	/* a plan of every chunk, or of raw chunks alone, is the same at any rate */
	int depends = info->n_alt_forms || (compressed && o->budget && o->budget < info->data_bytes);
	unsigned want = depends ? (o->read_rate > 0 ? 0 : FP_RATE_READ) |
	                             (o->decode_rate > 0 ? 0 : FP_RATE_DECODE) : 0;
	if (want && !fp_image_probe_rates(img, want | (o->flags & FP_OPEN_BUFFERED) << 8, &p->rates)) {
		if (p->rates.measured & FP_RATE_READ)
			o->read_rate = p->rates.read_bytes_per_s;
		if (p->rates.measured & FP_RATE_DECODE)
			o->decode_rate = p->rates.decode_bytes_per_s;
	}
	struct fp_plan_options po = {
		.read_bytes_per_s = o->read_rate,
		.decode_bytes_per_s = o->decode_rate,
		.decoders = o->decoders,
		.budget = o->budget ? o->budget : info->data_bytes,
		.stream_bytes = (uint64_t)PLAN_STREAM_CHUNKS * info->chunk_size,
		.balanced = balanced,
		.order = p->attention_first ? FP_PLAN_ATTENTION_FIRST : FP_PLAN_BY_BENEFIT,
		.read_share = fp_plan_llama_read_share,
		.read_share_ctx = img,
		.tensor_layer = fp_plan_llama_layer,
	};
	int rc = -1;
	if (p->stream &&
	    parse_stream(p->stream, po.budget, info->chunk_size, &po.stream_bytes, err, errlen))
		goto out;
	if (fp_plan_make(img, &po, &p->plan)) {
		snprintf(err, errlen, "%s", fp_last_error());
		goto out;
	}
	o->preserve = p->plan.preserve;
	rc = 0;
out:
	fp_image_close(img);
	return rc;
}

static void *tick(void *arg)
{
	struct run_paging *p = arg;
	struct fp_stats prev, now;
	fp_get_stats(p->region, &prev);
	uint64_t t0 = now_ns(), last = t0, tokens0 = 0;
	pthread_mutex_lock(&p->lock);
	while (!p->stop) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		uint64_t at = (uint64_t)ts.tv_nsec + p->stats_interval_ns;
		ts.tv_sec += (time_t)(at / 1000000000ull);
		ts.tv_nsec = (long)(at % 1000000000ull);
		pthread_cond_timedwait(&p->cond, &p->lock, &ts);
		if (p->stop)
			break;
		uint64_t tokens = p->tokens, t = now_ns();
		pthread_mutex_unlock(&p->lock);
		fp_get_stats(p->region, &now);
		double dt = (double)(t - last) / 1e9;
		fprintf(stderr,
		        "[%6.1fs] %5.2f tok/s | faults %6llu | loads %5llu demand %5llu ahead | "
		        "evict %5llu | read %7.1f MiB/s | resident %7.1f MiB | fault p50 %7.1f us | "
		        "depth %2u\n",
		        (double)(t - t0) / 1e9, (double)(tokens - tokens0) / dt,
		        (unsigned long long)(now.faults - prev.faults),
		        (unsigned long long)(now.demand_loads - prev.demand_loads),
		        (unsigned long long)(now.prefetch_loads - prev.prefetch_loads),
		        (unsigned long long)(now.evictions - prev.evictions),
		        (double)(now.bytes_read - prev.bytes_read) / (1 << 20) / dt,
		        (double)now.resident_bytes / (1 << 20),
		        (double)fp_hist_quantile(&now.lat[FP_STAGE_FAULT], 0.5) / 1e3, now.readahead_depth);
		prev = now;
		last = t;
		tokens0 = tokens;
		pthread_mutex_lock(&p->lock);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

void run_paging_start(struct run_paging *p, fp_region *r)
{
	p->region = r;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->cond, NULL);
	fp_trace_mark(r, FP_MARK_TOKEN, 0);
	if (p->stats_interval_ns)
		p->ticking = !pthread_create(&p->ticker, NULL, tick, p);
}

void run_paging_token(struct run_paging *p, int pos)
{
	if (!p->region)
		return;
	fp_trace_mark(p->region, FP_MARK_TOKEN, (uint64_t)pos + 1);
	pthread_mutex_lock(&p->lock);
	p->tokens++;
	pthread_mutex_unlock(&p->lock);
}

void run_paging_stop(struct run_paging *p)
{
	if (p->region) {
		fp_trace_mark(p->region, FP_MARK_TOKEN_END, p->tokens);
		pthread_mutex_lock(&p->lock);
		p->stop = 1;
		pthread_cond_broadcast(&p->cond);
		pthread_mutex_unlock(&p->lock);
		if (p->ticking)
			pthread_join(p->ticker, NULL);
		pthread_mutex_destroy(&p->lock);
		pthread_cond_destroy(&p->cond);
	}
}
