/* Regions: fp_open opens an image as a reserved, userfaultfd-registered
 * address range served by the handler and this region's loaders, in the
 * steps below; fp_close undoes them in reverse.  Settings change here too. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "error.h"
#include "internal.h"

static void region_free(fp_region *r)
{
	pg_map_free(r);
	pg_res_free(r);
	pg_poison_free(r);
	pg_preserve_free(r);
	pg_stage_free(r);
	pg_order_free(r);
	pg_ra_free(r);
	pg_load_free(r);
	free((void *)r->state);
	free(r->page_len);
	fp_image_close(r->img);
	free(r);
}

/* The options, with their defaults. */
static fp_region *region_new(const struct fp_options *opt)
{
	struct fp_options o = opt ? *opt : (struct fp_options){.retries = -1, .readahead = -1};
	if (!o.loaders)
		o.loaders = 4;
	if (o.loaders < 1 || o.loaders > 64)
		return pg_err_null(EINVAL, "loaders: %d is out of range [1, 64]", o.loaders);
	if (o.flags & ~PG_OPEN_FLAGS)
		return pg_err_null(EINVAL, "flags: unknown bits 0x%x", o.flags & ~PG_OPEN_FLAGS);
	if (o.decoders < 0 || o.decoders > 64)
		return pg_err_null(EINVAL, "decoders: %d is out of range [0, 64]", o.decoders);
	if (!(o.read_rate >= 0) || !(o.decode_rate >= 0))
		return pg_err_null(EINVAL, "read_rate %g, decode_rate %g: rates are bytes/s, 0 to "
		                   "measure", o.read_rate, o.decode_rate);
	fp_region *r = calloc(1, sizeof *r);
	if (!r)
		return pg_err_null(ENOMEM, "out of memory");
	r->opt = o;
	pg_map_init(r);
	return r;
}

/* The image and the layout it gives the region. */
static int open_image(fp_region *r, const char *path)
{
	r->img = fp_image_open_chunk(path, r->opt.chunk_size);
	if (!r->img)
		return -errno;
	r->chunk_size = r->img->info.chunk_size;
	r->n_chunks = r->img->info.n_chunks;
	r->size = r->img->info.logical_size;
	if (r->opt.readahead < 0) {
		/* 32 MiB ahead keeps the storage busy whatever the chunk size. */
		r->opt.readahead = (int)((32u << 20) / r->chunk_size);
		r->opt.readahead = r->opt.readahead < 2 ? 2 : r->opt.readahead > 64 ? 64 : r->opt.readahead;
	}
	r->state = calloc(r->n_chunks, sizeof *r->state);
	r->page_len = malloc(r->n_chunks * sizeof *r->page_len);
	if (!r->state || !r->page_len)
		return pg_err(ENOMEM, "%s: out of memory", path);
	for (uint32_t c = 0; c < r->n_chunks; c++) {
		r->page_len[c] = (r->img->chunks[c].logical_len + 4095u) & ~4095u;
		r->data_bytes += r->page_len[c];
	}
	return 0;
}

/* Every part's per-chunk state, for this budget and policy. */
static int make_parts(fp_region *r, const char *path, uint64_t budget,
                      const struct fp_policy_ops *ops)
{
	if (budget < fp_min_budget(r))
		return pg_err(EINVAL, "%s: budget %llu bytes is below the minimum working set of %llu "
		              "bytes (chunks of %u)", path, (unsigned long long)budget,
		              (unsigned long long)fp_min_budget(r), r->chunk_size);
	if (pg_res_init(r, budget, ops) || pg_load_init(r) || pg_ra_init(r) || pg_order_init(r) ||
	    pg_stage_init(r))
		return pg_err(ENOMEM, "%s: out of memory", path);
	int rc = pg_preserve_init(r, budget);
	if (rc)
		return rc;
	pg_stage_update(r, budget);
	return 0;
}

/* Reserve the region: 2 MiB aligned so that chunks can be huge pages. */
static int map_region(fp_region *r)
{
	size_t len = r->size + HUGE_2M;
	uint8_t *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
	                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return pg_err(pg_errno(), "%s: cannot reserve %llu bytes of address space: %s", r->img->path,
		              (unsigned long long)r->size, strerror(errno));
	uint8_t *base = (uint8_t *)(((uintptr_t)p + HUGE_2M - 1) & ~(uintptr_t)(HUGE_2M - 1));
	if (base > p)
		munmap(p, (size_t)(base - p));
	size_t tail = (size_t)(p + len - (base + r->size));
	if (tail)
		munmap(base + r->size, tail);
	r->base = base;
	/* A fork must not copy (or share) the served pages. */
	madvise(base, r->size, MADV_DONTFORK);
	return 0;
}

/* Take the handler's userfaultfd, map and register the range, and make
 * the page pool. */
static int attach(fp_region *r)
{
	struct pg_uffd u;
	int rc = pg_handler_get(&u);
	if (rc)
		return rc;
	r->uffd = u.fd;
	if ((rc = map_region(r)))
		goto fail_handler;
	uint64_t ioctls;
	rc = pg_uffd_register(r->uffd, r->base, r->size, &ioctls);
	if (rc) {
		rc = pg_err(-rc, "%s: cannot register the region with userfaultfd: %s", r->img->path,
		            strerror(-rc));
		goto fail_map;
	}
	pg_install_setup(r, u.features, ioctls);
	if (pg_poison_init(r, u.features)) {
		rc = pg_err(ENOMEM, "%s: out of memory", r->img->path);
		goto fail_register;
	}
	/* Huge pages appear in the region only where a loader moves one in on
	 * purpose (a missing fault goes to userfaultfd, never to the THP
	 * allocator).  A region that takes huge pages must say so, or the
	 * kernel maps a moved huge page as 512 small ones. */
	madvise(r->base, r->size, pg_install_huge(r) ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
	/* Slots for the loads in flight, the staged read-ahead and pages to
	 * spare: up to two per loader and two more wait outside the budget,
	 * and the warmer makes new ones only below one per loader.  Without
	 * a pool the loaders stage in fresh pages. */
	if (pg_install_huge(r))
		pg_pool_init(&r->pool, r->uffd, r->chunk_size,
		             3 * (uint32_t)r->opt.loaders + 2 + (uint32_t)r->opt.readahead,
		             (uint32_t)r->opt.loaders, 2 * (uint32_t)r->opt.loaders + 2);
	return 0;

fail_register:
	pg_uffd_unregister(r->uffd, r->base, r->size);
fail_map:
	munmap(r->base, r->size);
fail_handler:
	pg_handler_put();
	return rc;
}

static void detach(fp_region *r)
{
	pg_pool_destroy(&r->pool, r->uffd);
	pg_map_close(r); /* the pages not given back (fp_region_unmap) */
	pg_handler_put();
}

static int start_trace(fp_region *r)
{
	struct fp_trace_header h = {
		.version = FP_TRACE_VERSION,
		.record_size = sizeof(struct fp_trace_event),
		.start_ns = pg_now_ns(),
		.budget = pg_res_budget(r),
		.logical_size = r->size,
		.chunk_size = r->chunk_size,
		.n_chunks = r->n_chunks,
		.loaders = (uint32_t)r->opt.loaders,
		.readahead = (uint32_t)r->opt.readahead,
	};
	memcpy(h.magic, FP_TRACE_MAGIC, 8);
	snprintf(h.policy, sizeof h.policy, "%s", pg_res_policy_name(r));
	snprintf(h.image, sizeof h.image, "%s", r->img->path);
	r->tracer = pg_tracer_start(r->opt.trace_path, &h);
	return r->tracer ? 0 : -errno;
}

/* Start the trace and the loaders, then let the handler see the region. */
static int start(fp_region *r)
{
	int rc = r->opt.trace_path ? start_trace(r) : 0;
	if (rc)
		return rc;
	if ((rc = pg_loaders_start(r))) {
		pg_tracer_stop(r->tracer);
		return rc;
	}
	if ((rc = pg_reporter_add(r))) {
		pg_loaders_stop(r);
		pg_tracer_stop(r->tracer);
		return rc;
	}
	pg_handler_publish(r);
	return 0;
}

void fp_trace_mark(fp_region *r, uint32_t kind, uint64_t value)
{
	static _Thread_local pid_t tid; /* a system call is dear here: ask once */
	if (!r->tracer)
		return;
	if (!tid)
		tid = gettid();
	pg_trace_event(r, 0, FP_EV_MARK, kind, 0, value, (uint64_t)tid);
}

/* Once stop returns no thread of the region runs. */
static void stop(fp_region *r)
{
	pg_handler_unpublish(r);
	pg_loaders_stop(r);
	pg_tracer_stop(r->tracer);
	pg_reporter_remove(r);
}

fp_region *fp_open(const char *path, const struct fp_options *opt)
{
	fp_region *r = region_new(opt);
	if (!r)
		return NULL;
	int rc;
	const struct fp_policy_ops *ops = pg_res_find_policy(r->opt.policy ? r->opt.policy : "fifo");
	if (!ops) {
		rc = -errno;
		goto fail;
	}
	uint64_t budget;
	if ((rc = open_image(r, path)) ||
	    (rc = pg_rates_init(r, budget = r->opt.budget ? r->opt.budget : r->size)) ||
	    (rc = make_parts(r, path, budget, ops)) ||
	    (rc = pg_load_open(r, path)) || (rc = attach(r)))
		goto fail;
	if ((rc = start(r))) {
		detach(r);
		goto fail;
	}
	/* Preserved chunks are loaded now, ahead of the loop. */
	pg_preserve_load(r);
	return r;
fail:
	region_free(r);
	return pg_fail_null(rc);
}

void fp_close(fp_region *r)
{
	if (!r)
		return;
	stop(r);
	detach(r);
	region_free(r);
}

const fp_image *fp_region_image(const fp_region *r)
{
	return r->img;
}

const void *fp_region_base(const fp_region *r)
{
	return r->base;
}

uint64_t fp_region_size(const fp_region *r)
{
	return r->size;
}

const void *fp_tensor(const fp_region *r, const char *name, const struct fp_tensor_desc **desc)
{
	const struct fp_tensor_desc *t = fp_image_find(r->img, name);
	if (desc)
		*desc = t;
	if (!t)
		return pg_err_null(ENOENT, "%s: no tensor named '%s'", r->img->path, name);
	return r->base + t->offset;
}

uint64_t pg_min_working_set(const fp_region *r)
{
	/* Two chunks: the one a thread reads and the one it faults on next. */
	return r->n_chunks > 1 ? 2ull * r->chunk_size : r->chunk_size;
}

uint64_t fp_min_budget(const fp_region *r)
{
	/* Preserved chunks are never evicted: a budget must hold them too. */
	uint64_t kept = r->keep.kept_bytes;
	return kept >= r->data_bytes ? kept : kept + pg_min_working_set(r);
}

int fp_set_budget(fp_region *r, uint64_t budget)
{
	if (budget < fp_min_budget(r))
		return pg_err(EINVAL, "%s: budget %llu bytes is below the minimum working set of %llu "
		              "bytes%s", r->img->path, (unsigned long long)budget,
		              (unsigned long long)fp_min_budget(r),
		              r->keep.kept_bytes ? " (with the preserved chunks, never evicted)" : "");
	int rc = pg_res_set_budget(r, budget);
	if (rc)
		return rc;
	pg_stage_update(r, budget);
	pg_trace_event(r, 0, FP_EV_SETTINGS, 0, 0, budget, 0);
	return pg_evict_to(r, budget);
}

int fp_set_policy(fp_region *r, const char *name)
{
	const struct fp_policy_ops *ops = pg_res_find_policy(name);
	if (!ops)
		return -errno;
	return pg_res_set_policy(r, ops);
}
