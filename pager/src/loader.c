/* Loader workers: read a chunk's payload (O_DIRECT), verify and decode it
 * into a staging buffer, make room within the budget, and install the
 * whole chunk at once.  Full 2 MiB chunks are staged in a transparent huge
 * page that UFFDIO_MOVE hands to the region without a copy; anything else
 * is installed with UFFDIO_COPY. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <zstd.h>

#include "error.h"
#include "internal.h"

struct loader {
	fp_region *r;
	uint16_t id;             /* 1.., for the trace */
	pthread_t thread;
	uint8_t *stage;          /* chunk_size, 2 MiB aligned, huge pages */
	void *stage_map;
	size_t stage_map_len;
	uint8_t *rbuf;           /* compressed payloads */
	size_t rbuf_len;
	ZSTD_DCtx *dctx;
};

static uint64_t round_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) / a * a;
}

/* Read chunk c's payload into buf.  Returns 0, or -1 with fp_last_error(). */
static int read_payload(struct loader *L, uint32_t c, void *buf, size_t cap)
{
	fp_region *r = L->r;
	const struct fp_chunk_desc *d = &r->img->chunks[c];
	size_t want = d->stored_len, len = r->direct ? round_up(want, 4096) : want;
	if (len > cap)
		len = cap;
	size_t done = 0;
	long result = 0;
	while (done < want) {
		ssize_t n = pread(r->fd, (char *)buf + done, len - done, (off_t)(d->file_offset + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			result = -errno;
			break;
		}
		if (n == 0)
			break;
		done += (size_t)n;
	}
	if (!result)
		result = (long)(done < want ? done : want);
	if (r->opt.read_hook)
		r->opt.read_hook(r->opt.read_hook_ctx, c, buf, want, &result);
	atomic_fetch_add_explicit(&r->stats.bytes_read, done, memory_order_relaxed);
	if (result < 0)
		return pg_err("%s: chunk %u: read at file offset %llu failed: %s", r->img->path, c,
		              (unsigned long long)d->file_offset, strerror((int)-result));
	if ((size_t)result < want)
		return pg_err("%s: chunk %u: short read (%ld of %zu bytes at file offset %llu)",
		              r->img->path, c, result, want, (unsigned long long)d->file_offset);
	return 0;
}

/* Read, verify and decode chunk c into buf (chunk_size bytes), with retries. */
static int fetch(struct loader *L, uint32_t c, uint8_t *buf, char *why, size_t whylen,
                 uint64_t *read_ns, uint64_t *decode_ns)
{
	fp_region *r = L->r;
	const struct fp_chunk_desc *d = &r->img->chunks[c];
	int tries = 1 + (r->opt.retries < 0 ? 2 : r->opt.retries);
	for (int attempt = 0; attempt < tries; attempt++) {
		if (attempt)
			atomic_fetch_add_explicit(&r->stats.retries, 1, memory_order_relaxed);
		uint64_t t0 = pg_now_ns();
		void *src = d->codec == FP_CODEC_RAW ? (void *)buf : (void *)L->rbuf;
		size_t cap = d->codec == FP_CODEC_RAW ? r->chunk_size : L->rbuf_len;
		if (read_payload(L, c, src, cap)) {
			snprintf(why, whylen, "%s", fp_last_error());
			continue;
		}
		uint64_t t1 = pg_now_ns();
		if (pg_decode_chunk(r->img, c, src, buf, L->dctx)) {
			snprintf(why, whylen, "%s", fp_last_error());
			continue;
		}
		*read_ns = t1 - t0;
		*decode_ns = pg_now_ns() - t1;
		pg_predict_load_time(r, *read_ns + *decode_ns);
		pg_stat_latency(r, FP_STAGE_READ, *read_ns);
		pg_stat_latency(r, FP_STAGE_DECOMPRESS, *decode_ns);
		if (d->codec != FP_CODEC_RAW)
			atomic_fetch_add_explicit(&r->stats.bytes_decompressed, d->logical_len,
			                          memory_order_relaxed);
		/* What is installed past the data must read as zeros. */
		memset(buf + d->logical_len, 0, r->res_len[c] - d->logical_len);
		return 0;
	}
	return -1;
}

/* Install chunk c from buf; returns 1 if its pages were moved out of buf.
 * Counters are raised before the ioctl: the install wakes the waiting
 * threads, and what they read next (fp_get_stats) must include it. */
int pg_install(fp_region *r, uint32_t c, int demand, uint8_t *buf)
{
	uint8_t *dst = r->base + (uint64_t)c * r->chunk_size;
	size_t len = r->res_len[c], moved = 0;
	atomic_fetch_add_explicit(demand ? &r->stats.demand_loads : &r->stats.prefetch_loads, 1,
	                          memory_order_relaxed);
	atomic_fetch_add_explicit(&r->stats.bytes_installed, r->page_len[c], memory_order_relaxed);
	if (atomic_load(&r->huge_ok) && len == r->chunk_size) {
		atomic_fetch_add_explicit(&r->stats.huge_installs, 1, memory_order_relaxed);
		int rc = pg_uffd_move(r->uffd, dst, buf, len, &moved);
		if (!rc)
			return 1;
		atomic_fetch_sub_explicit(&r->stats.huge_installs, 1, memory_order_relaxed);
		/* A busy page (pinned for a moment, under migration) is copied
		 * this once; a refusal of the mapping itself means copying from
		 * now on. */
		if (rc != -EBUSY && rc != -EAGAIN && atomic_exchange(&r->huge_ok, 0))
			fprintf(stderr, "flexpage: %s: UFFDIO_MOVE failed (%s); installing by copy\n",
			        r->img->path, strerror(-rc));
	}
	atomic_fetch_add_explicit(&r->stats.small_installs, 1, memory_order_relaxed);
	int rc = pg_uffd_copy(r->uffd, dst + moved, buf + moved, len - moved);
	if (rc) {
		/* Nothing sane is left: the region can no longer be served. */
		fprintf(stderr, "flexpage: %s: chunk %u: UFFDIO_COPY failed: %s\n", r->img->path, c,
		        strerror(-rc));
		abort();
	}
	return moved > 0;
}

static uint64_t clamp32(uint64_t ns)
{
	return ns > UINT32_MAX ? UINT32_MAX : ns;
}

/* A read-ahead load that found no room gives its chunk back: 1, or 0 if a
 * fault made it a demand load meanwhile. */
static int give_back(fp_region *r, uint32_t c)
{
	return pg_chunk_give_back(&r->state[c]);
}

static void load(struct loader *L, uint32_t c, uint64_t popped_ns)
{
	fp_region *r = L->r;
	char why[400];
	uint64_t read_ns = 0, decode_ns = 0, wait_ns = popped_ns - atomic_load(&r->queued_ns[c]);
	pg_stat_latency(r, FP_STAGE_WAIT, wait_ns);
	uint64_t bytes = r->page_len[c];
	int preserved = r->preserve && r->preserve[c];
	/* Read-ahead reserves its room before it reads, so a load that would
	 * not fit costs no I/O; a demand load (or preservation) always goes,
	 * and reserves once its bytes are ready. */
	int reserved = 0;
	if (!pg_chunk_demanded(&r->state[c]) && !preserved) {
		reserved = !pg_reserve_ahead(r, c);
		if (!reserved && give_back(r, c))
			return;
	}
	/* A full chunk goes through a pooled huge page when there is one.  A
	 * read-ahead load in streaming mode stops short of installing: it is
	 * staged, and the loop's fault installs it (pg_stage_fault).
	 * A staged tensor tail (less than a chunk, installed by copy) waits in
	 * a pooled page too, rather than in fresh memory. */
	int stage_wanted = reserved && atomic_load(&r->stage_ahead);
	int whole = r->res_len[c] == r->chunk_size;
	uint8_t *slot = atomic_load(&r->huge_ok) && (whole || stage_wanted)
	                    ? pg_pool_take_full(&r->pool) : NULL;
	int staging = stage_wanted && (slot || !whole || !atomic_load(&r->huge_ok));
	uint8_t *own = staging && !slot ? aligned_alloc(4096, r->chunk_size) : NULL;
	staging &= slot || own;
	uint8_t *buf = slot ? slot : own ? own : L->stage;
	if (fetch(L, c, buf, why, sizeof why, &read_ns, &decode_ns)) {
		if (slot)
			pg_pool_put(&r->pool, slot, 1);
		free(own);
		if (reserved)
			pg_unreserve_ahead(r, c);
		pg_poison_chunk(r, c, why);
		return;
	}
	int demand = pg_chunk_demanded(&r->state[c]);
	if (!reserved)
		pg_reserve(r, bytes);
	if (staging && pg_stage_put(r, c, buf, slot != NULL)) {
		fp_trace_event(r, 0, FP_EV_STAGE, 0, c, clamp32(read_ns) | clamp32(decode_ns) << 32,
		               clamp32(wait_ns) << 32);
		return;
	}
	demand |= pg_chunk_demanded(&r->state[c]);
	uint64_t t0 = pg_now_ns();
	int moved = pg_install(r, c, demand, buf);
	if (slot)
		pg_pool_put(&r->pool, slot, !moved);
	free(own);
	uint64_t t1 = pg_now_ns();
	pg_stat_latency(r, FP_STAGE_INSTALL, t1 - t0);
	pg_mark_resident(r, c, demand);
	uint64_t fault = atomic_exchange(&r->fault_ns[c], 0);
	if (fault && fault <= t1) {
		pg_stat_latency(r, FP_STAGE_FAULT, t1 - fault);
		uint64_t work = read_ns + decode_ns;
		pg_stat_latency(r, FP_STAGE_OVERHEAD, t1 - fault > work ? t1 - fault - work : 0);
	}
	fp_trace_event(r, t1, FP_EV_LOAD, (uint32_t)demand, c, clamp32(read_ns) | clamp32(decode_ns) << 32,
	               clamp32(t1 - t0) | clamp32(wait_ns) << 32);
}

static void *loader_main(void *arg)
{
	struct loader *L = arg;
	fp_region *r = L->r;
	rcu_register_thread();
	pg_thread_id = L->id;
	uint32_t c;
	int demand;
	while (!pg_queue_pop(&r->queue, &c, &demand)) {
		/* Claim the load: only a LOADING chunk no one owns.  Another
		 * entry of the same chunk (read-ahead, then promoted) is skipped. */
		if (pg_chunk_claim(&r->state[c]))
			load(L, c, pg_now_ns());
	}
	rcu_unregister_thread();
	return NULL;
}

static void loader_free(struct loader *L)
{
	if (L->stage_map)
		munmap(L->stage_map, L->stage_map_len);
	if (L->rbuf)
		munmap(L->rbuf, L->rbuf_len);
	ZSTD_freeDCtx(L->dctx);
}

static int loader_init(struct loader *L, fp_region *r)
{
	L->r = r;
	L->stage_map_len = (size_t)r->chunk_size + HUGE_2M;
	L->stage_map = mmap(NULL, L->stage_map_len, PROT_READ | PROT_WRITE,
	                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (L->stage_map == MAP_FAILED) {
		L->stage_map = NULL;
		return pg_err("cannot map a staging buffer: %s", strerror(errno));
	}
	L->stage = (uint8_t *)round_up((uintptr_t)L->stage_map, HUGE_2M);
	madvise(L->stage, r->chunk_size, MADV_HUGEPAGE);
	madvise(L->stage_map, L->stage_map_len, MADV_DONTFORK);
	/* Compressed payloads are read into huge pages too: a 2 MiB O_DIRECT
	 * read into small pages is split into several requests. */
	L->rbuf_len = round_up(ZSTD_compressBound(r->chunk_size), HUGE_2M);
	L->rbuf = mmap(NULL, L->rbuf_len, PROT_READ | PROT_WRITE,
	               MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (L->rbuf == MAP_FAILED) {
		L->rbuf = NULL;
		return pg_err("out of memory for a loader");
	}
	madvise(L->rbuf, L->rbuf_len, MADV_HUGEPAGE);
	madvise(L->rbuf, L->rbuf_len, MADV_DONTFORK);
	L->dctx = ZSTD_createDCtx();
	if (!L->dctx)
		return pg_err("out of memory for a loader");
	return 0;
}

int pg_loaders_start(fp_region *r)
{
	int n = r->opt.loaders;
	r->loaders = calloc((size_t)n, sizeof(struct loader));
	if (!r->loaders)
		return pg_err("out of memory");
	struct loader *L = r->loaders;
	for (r->n_loaders = 0; r->n_loaders < n; r->n_loaders++) {
		struct loader *l = &L[r->n_loaders];
		l->id = (uint16_t)(r->n_loaders + 1);
		if (loader_init(l, r) || pthread_create(&l->thread, NULL, loader_main, l)) {
			if (!strstr(fp_last_error(), "loader"))
				pg_err("cannot start a loader thread");
			loader_free(l);
			pg_loaders_stop(r);
			return -1;
		}
	}
	return 0;
}

void pg_loaders_stop(fp_region *r)
{
	struct loader *L = r->loaders;
	pg_queue_stop(&r->queue);
	for (int i = 0; i < r->n_loaders; i++) {
		pthread_join(L[i].thread, NULL);
		loader_free(&L[i]);
	}
	free(L);
	r->loaders = NULL;
	r->n_loaders = 0;
}
