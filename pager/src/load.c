/* Loading: the loader threads pop chunk indices (demand loads first),
 * claim the load, make room in the budget, read the payload (O_DIRECT),
 * verify and decode it into a buffer, and then install it (install.c) or,
 * read ahead while streaming, stage it (readahead_stage.c).  A full 2 MiB
 * chunk is read into a pooled huge page that the install moves into the
 * region; failed loads are retried, then poisoned (poison.c).  A read that
 * does not return is given up by the watchdog (stall.c), which takes the
 * load from its loader through the loader's read slot. */
#include <errno.h>
#include <fcntl.h>
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
	/* The read slot: while a payload read is out, the ms it started (high
	 * half) and its chunk + 1 (low half); 0 otherwise.  Whoever swaps a
	 * set slot to 0 owns the load: the loader when its read returns, or
	 * the watchdog when it gives the read up. */
	_Atomic uint64_t reading;
	atomic_int retired;      /* replaced: end once the stalled read returns */
	atomic_int ended;        /* retired and returned: its slot can be reused */
	int live;                /* its thread was started and not joined */
};

/* fetch() and read_payload(): the watchdog took the load. */
#define GIVEN_UP (-2)

static uint32_t now_ms(void)
{
	return (uint32_t)(pg_now_ns() / 1000000);
}

static uint64_t round_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) / a * a;
}

int pg_load_init(fp_region *r)
{
	struct pg_loads *l = &r->load;
	l->fault_ns = calloc(r->n_chunks, sizeof *l->fault_ns);
	l->queued_ns = calloc(r->n_chunks, sizeof *l->queued_ns);
	l->stalls = calloc(r->n_chunks, sizeof *l->stalls);
	if (!l->fault_ns || !l->queued_ns || !l->stalls)
		return -1;
	int t = r->opt.load_timeout_ms;
	l->timeout_ms = t < 0 ? 0 : t ? (uint32_t)t : 10000;
	if (r->opt.decoders > 0 && r->opt.decoders < r->opt.loaders) {
		if (sem_init(&l->decoders, 0, (unsigned)r->opt.decoders))
			return -1;
		l->decoders_limited = 1;
	}
	l->queue_ready = 1;
	return pg_queue_init(&l->queue, r->n_chunks);
}

void pg_load_free(fp_region *r)
{
	struct pg_loads *l = &r->load;
	if (l->queue_ready)
		pg_queue_destroy(&l->queue);
	if (l->decoders_limited)
		sem_destroy(&l->decoders);
	free((void *)l->fault_ns);
	free((void *)l->queued_ns);
	free((void *)l->stalls);
	if (l->fd_open)
		close(l->fd);
}

int pg_load_open(fp_region *r, const char *path)
{
	struct pg_loads *l = &r->load;
	if (!(r->opt.flags & FP_OPEN_BUFFERED)) {
		l->fd = open(path, O_RDONLY | O_DIRECT | O_CLOEXEC);
		if (l->fd >= 0) {
			l->fd_open = l->direct = 1;
			return 0;
		}
		/* Some file systems (tmpfs) have no O_DIRECT: read buffered. */
		if (errno != EINVAL)
			return pg_err(pg_errno(), "%s: cannot open: %s", path, strerror(errno));
	}
	l->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (l->fd < 0)
		return pg_err(pg_errno(), "%s: cannot open: %s", path, strerror(errno));
	l->fd_open = 1;
	return 0;
}

void pg_load_queue(fp_region *r, uint32_t c, int demand, uint64_t now)
{
	atomic_store(&r->load.queued_ns[c], now);
	pg_queue_push(&r->load.queue, c, demand);
}

void pg_load_work_begin(fp_region *r)
{
	pg_queue_work_begin(&r->load.queue);
}

void pg_load_work_end(fp_region *r)
{
	pg_queue_work_end(&r->load.queue);
}

void fp_quiesce(fp_region *r)
{
	pg_queue_wait_idle(&r->load.queue);
}

int pg_load_on_fault(fp_region *r, uint32_t c, uint32_t *seen, uint64_t now)
{
	if (!pg_chunk_load_on_fault(&r->state[c], seen))
		return 0;
	atomic_store(&r->load.fault_ns[c], now);
	pg_load_queue(r, c, 1, now);
	return 1;
}

/* The fault time is published before DEMANDED, so the loader that sees
 * DEMANDED always finds it. */
int pg_load_promote(fp_region *r, uint32_t c, uint32_t *seen, uint64_t now)
{
	uint64_t none = 0;
	int stamped = atomic_compare_exchange_strong(&r->load.fault_ns[c], &none, now);
	if (!pg_chunk_demand(&r->state[c], seen)) {
		if (stamped) {
			uint64_t mine = now;
			atomic_compare_exchange_strong(&r->load.fault_ns[c], &mine, 0);
		}
		return 0;
	}
	/* Read-ahead was already on it: queue it again as a demand load (the
	 * loader that claims it first loads it).  Its pages going, the
	 * evictor queues it once they are gone. */
	if ((*seen & CHUNK_STATE_MASK) == CHUNK_LOADING)
		pg_queue_push(&r->load.queue, c, 1);
	return 1;
}

/* Read chunk c's payload into buf.  Returns 0, -1 with fp_last_error(),
 * or GIVEN_UP: the read took so long that the watchdog took the load. */
static int read_payload(struct loader *L, uint32_t c, void *buf, size_t cap)
{
	fp_region *r = L->r;
	const struct fp_chunk_desc *d = &r->img->chunks[c];
	size_t want = d->stored_len, len = r->load.direct ? round_up(want, 4096) : want;
	if (len > cap)
		len = cap;
	size_t done = 0;
	long result = 0;
	atomic_store(&L->reading, (uint64_t)now_ms() << 32 | ((uint64_t)c + 1));
	while (done < want) {
		ssize_t n = pread(r->load.fd, (char *)buf + done, len - done,
		                  (off_t)(d->file_offset + done));
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
	const struct fp_hooks *hooks = r->opt.hooks;
	if (hooks && hooks->read)
		hooks->read(hooks->read_ctx, c, buf, want, &result);
	pg_count(r, PG_BYTES_READ, done);
	if (!atomic_exchange(&L->reading, 0))
		return GIVEN_UP; /* too late: the bytes are dropped unseen */
	if (result < 0)
		return pg_err((int)-result, "%s: chunk %u: read at file offset %llu failed: %s",
		              r->img->path, c, (unsigned long long)d->file_offset,
		              strerror((int)-result));
	if ((size_t)result < want)
		return pg_err(EIO, "%s: chunk %u: short read (%ld of %zu bytes at file offset %llu)",
		              r->img->path, c, result, want, (unsigned long long)d->file_offset);
	return 0;
}

/* Read, verify and decode chunk c into buf (chunk_size bytes), with
 * retries: a failed read, a checksum that does not match or a zstd frame
 * that does not decode is tried again, `retries` more times.  0, -1, or
 * GIVEN_UP (the load is no longer this loader's). */
static int fetch(struct loader *L, uint32_t c, uint8_t *buf, char *why, size_t whylen,
                 uint64_t *read_ns, uint64_t *decode_ns)
{
	fp_region *r = L->r;
	const struct fp_chunk_desc *d = &r->img->chunks[c];
	int tries = 1 + (r->opt.retries < 0 ? 2 : r->opt.retries);
	for (int attempt = 0; attempt < tries; attempt++) {
		if (attempt)
			pg_count(r, PG_RETRIES, 1);
		uint64_t t0 = pg_now_ns();
		void *src = d->codec == FP_CODEC_RAW ? (void *)buf : (void *)L->rbuf;
		size_t cap = d->codec == FP_CODEC_RAW ? r->chunk_size : L->rbuf_len;
		int rc = read_payload(L, c, src, cap);
		if (rc == GIVEN_UP)
			return GIVEN_UP;
		if (rc) {
			snprintf(why, whylen, "%s", fp_last_error());
			continue;
		}
		/* Decoding takes a core: with fp_options.decoders, only that many
		 * loaders decode at once, so the compute threads keep theirs.
		 * The wait counts as decode time: it is what the load costs. */
		int limit = r->load.decoders_limited && d->codec != FP_CODEC_RAW;
		uint64_t t1 = pg_now_ns();
		while (limit && sem_wait(&r->load.decoders) && errno == EINTR)
			;
		/* The checksum step: CRC-32C of the decoded bytes (image.c). */
		int bad = pg_decode_chunk(r->img, c, src, buf, L->dctx);
		if (limit)
			sem_post(&r->load.decoders);
		if (bad) {
			snprintf(why, whylen, "%s", fp_last_error());
			continue;
		}
		*read_ns = t1 - t0;
		*decode_ns = pg_now_ns() - t1;
		pg_ra_load_time(r, *read_ns + *decode_ns);
		pg_stat_latency(r, FP_STAGE_READ, *read_ns);
		pg_stat_latency(r, FP_STAGE_DECOMPRESS, *decode_ns);
		if (d->codec != FP_CODEC_RAW)
			pg_count(r, PG_BYTES_DECOMPRESSED, d->logical_len);
		/* What is installed past the data must read as zeros. */
		memset(buf + d->logical_len, 0, pg_res_len(r, c) - d->logical_len);
		return 0;
	}
	return -1;
}

static uint64_t clamp32(uint64_t ns)
{
	return ns > UINT32_MAX ? UINT32_MAX : ns;
}

/* Load claimed chunk c, popped at popped_ns.  Returns 0 if its read was
 * given up: the watchdog owns the load (and the entry) from then on. */
static int load(struct loader *L, uint32_t c, uint64_t popped_ns)
{
	fp_region *r = L->r;
	char why[400];
	uint64_t read_ns = 0, decode_ns = 0;
	uint64_t wait_ns = popped_ns - atomic_load(&r->load.queued_ns[c]);
	pg_stat_latency(r, FP_STAGE_WAIT, wait_ns);
	uint64_t bytes = r->page_len[c];
	/* Read-ahead reserves its room before it reads, so a load that would
	 * not fit costs no I/O; a demand load (or preservation) always goes,
	 * and reserves once its bytes are ready. */
	int reserved = 0;
	if (!pg_chunk_demanded(&r->state[c]) && !pg_preserved(r, c)) {
		reserved = !pg_ra_reserve(r, c);
		if (!reserved && pg_chunk_give_back(&r->state[c]))
			return 1; /* no room; a later fault's window takes it */
	}
	/* A full chunk goes through a pooled huge page when there is one.  A
	 * read-ahead load in streaming mode stops short of installing: it is
	 * staged, and the loop's fault installs it (pg_stage_fault).
	 * A staged tensor tail (less than a chunk, installed by copy) waits in
	 * a pooled page too, rather than in fresh memory. */
	int stage_wanted = reserved && pg_staging(r);
	int whole = pg_res_len(r, c) == r->chunk_size;
	uint8_t *slot = pg_install_huge(r) && (whole || stage_wanted)
	                    ? pg_pool_take_full(&r->pool) : NULL;
	int staging = stage_wanted && (slot || !whole || !pg_install_huge(r));
	uint8_t *own = staging && !slot ? aligned_alloc(4096, r->chunk_size) : NULL;
	staging &= slot || own;
	uint8_t *buf = slot ? slot : own ? own : L->stage;
	int rc = fetch(L, c, buf, why, sizeof why, &read_ns, &decode_ns);
	if (rc) {
		if (slot)
			pg_pool_put(&r->pool, slot, 1);
		free(own);
		if (rc == GIVEN_UP)
			return 0; /* the watchdog released the reservation too */
		if (reserved)
			pg_ra_unreserve(r, c);
		pg_poison_chunk(r, c, why);
		return 1;
	}
	int demand = pg_chunk_demanded(&r->state[c]);
	if (!reserved)
		pg_reserve(r, bytes);
	int staged = staging ? pg_stage_put(r, c, buf, slot != NULL) : 0;
	if (staged > 0) {
		pg_trace_event(r, 0, FP_EV_STAGE, 0, c, clamp32(read_ns) | clamp32(decode_ns) << 32,
		               clamp32(wait_ns) << 32);
		return 1;
	}
	if (staged < 0) {
		/* The budget was cut while it was read: given back. */
		if (slot)
			pg_pool_put(&r->pool, slot, 1);
		free(own);
		return 1;
	}
	demand |= pg_chunk_demanded(&r->state[c]);
	uint64_t t0 = pg_now_ns();
	int moved = pg_install(r, c, demand, buf);
	if (slot)
		pg_pool_put(&r->pool, slot, !moved);
	free(own);
	uint64_t t1 = pg_now_ns();
	pg_stat_latency(r, FP_STAGE_INSTALL, t1 - t0);
	pg_installed(r, c, demand);
	uint64_t fault = atomic_exchange(&r->load.fault_ns[c], 0);
	if (fault && fault <= t1) {
		pg_stat_latency(r, FP_STAGE_FAULT, t1 - fault);
		uint64_t work = read_ns + decode_ns;
		pg_stat_latency(r, FP_STAGE_OVERHEAD, t1 - fault > work ? t1 - fault - work : 0);
	}
	pg_trace_event(r, t1, FP_EV_LOAD, demand ? FP_LOAD_DEMAND : 0, c,
	               clamp32(read_ns) | clamp32(decode_ns) << 32,
	               clamp32(t1 - t0) | clamp32(wait_ns) << 32);
	return 1;
}

static void *loader_main(void *arg)
{
	struct loader *L = arg;
	fp_region *r = L->r;
	rcu_register_thread();
	pg_thread_id = L->id;
	uint32_t c;
	int demand;
	while (!pg_queue_pop(&r->load.queue, &c, &demand)) {
		/* Claim the load: only a LOADING chunk no one owns.  Another
		 * entry of the same chunk (read-ahead, then promoted) is skipped. */
		if (pg_chunk_claim(&r->state[c]) && !load(L, c, pg_now_ns())) {
			/* Its read was given up: the watchdog settled the entry.
			 * Replaced meanwhile, this loader ends. */
			if (atomic_load(&L->retired)) {
				atomic_store(&L->ended, 1);
				break;
			}
			continue;
		}
		pg_queue_done(&r->load.queue);
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
		return pg_err(pg_errno(), "cannot map a staging buffer: %s", strerror(errno));
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
		return pg_err(ENOMEM, "out of memory for a loader");
	}
	madvise(L->rbuf, L->rbuf_len, MADV_HUGEPAGE);
	madvise(L->rbuf, L->rbuf_len, MADV_DONTFORK);
	L->dctx = ZSTD_createDCtx();
	if (!L->dctx)
		return pg_err(ENOMEM, "out of memory for a loader");
	return 0;
}

/* Start a loader in slot i (n_loaders: one more). */
static int loader_start(fp_region *r, int i)
{
	struct pg_loads *l = &r->load;
	struct loader *L = &l->loaders[i];
	memset(L, 0, sizeof *L);
	L->id = (uint16_t)(i + 1);
	int rc = loader_init(L, r);
	int e = rc ? 0 : pthread_create(&L->thread, NULL, loader_main, L);
	if (rc || e) {
		if (e)
			rc = pg_err(e, "cannot start a loader thread: %s", strerror(e));
		loader_free(L);
		memset(L, 0, sizeof *L);
		return rc;
	}
	L->live = 1;
	if (i == atomic_load(&l->n_loaders))
		atomic_store(&l->n_loaders, i + 1);
	return 0;
}

int pg_loaders_start(fp_region *r)
{
	struct pg_loads *l = &r->load;
	int n = r->opt.loaders;
	l->max_loaders = n + (l->timeout_ms ? PG_MAX_REPLACED : 0);
	l->loaders = calloc((size_t)l->max_loaders, sizeof *l->loaders);
	if (!l->loaders)
		return pg_err(ENOMEM, "out of memory");
	for (int i = 0; i < n; i++) {
		int rc = loader_start(r, i);
		if (rc) {
			pg_loaders_stop(r);
			return rc;
		}
	}
	int rc = pg_stall_start(r);
	if (rc)
		pg_loaders_stop(r);
	return rc;
}

int pg_loaders_count(fp_region *r)
{
	return atomic_load(&r->load.n_loaders);
}

/* A slot for a replacement: one whose loader ended (joined here), one
 * never started, or a new one; -1 if PG_MAX_REPLACED are stalled.  Only
 * the watchdog starts or reuses slots.  With reap 0 it only looks. */
static int free_slot(fp_region *r, int reap)
{
	struct pg_loads *l = &r->load;
	int n = atomic_load(&l->n_loaders);
	for (int i = 0; i < n; i++) {
		struct loader *L = &l->loaders[i];
		if (L->live && !atomic_load(&L->ended))
			continue;
		if (reap && L->live) {
			pthread_join(L->thread, NULL);
			loader_free(L);
			L->live = 0;
		}
		return i;
	}
	return n < l->max_loaders ? n : -1;
}

int pg_loader_give_up(fp_region *r, int i, uint32_t ms, uint32_t *chunk, int *replaced)
{
	struct pg_loads *l = &r->load;
	struct loader *L = &l->loaders[i];
	uint64_t v = atomic_load(&L->reading);
	if (!v || (uint32_t)(now_ms() - (uint32_t)(v >> 32)) < ms)
		return 0;
	/* Retired before the exchange, so that the loader, which can only
	 * learn it lost after the exchange, sees it. */
	int can = free_slot(r, 0) >= 0;
	atomic_store(&L->retired, can);
	if (!atomic_compare_exchange_strong(&L->reading, &v, 0)) {
		atomic_store(&L->retired, 0); /* it returned just now: still its own */
		return 0;
	}
	*chunk = (uint32_t)v - 1;
	*replaced = can && !loader_start(r, free_slot(r, 1));
	if (can && !*replaced)
		atomic_store(&L->retired, 0); /* keep it, if it has not ended yet */
	return 1;
}

void pg_loaders_stop(fp_region *r)
{
	struct pg_loads *l = &r->load;
	pg_stall_stop(r);
	pg_queue_stop(&l->queue);
	for (int i = 0; i < l->n_loaders; i++) {
		if (!l->loaders[i].live)
			continue;
		pthread_join(l->loaders[i].thread, NULL);
		loader_free(&l->loaders[i]);
	}
	free(l->loaders);
	l->loaders = NULL;
	l->n_loaders = 0;
}
