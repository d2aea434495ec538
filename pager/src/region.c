/* Regions: open an image as a reserved, userfaultfd-registered address
 * range served by the handler and this region's loaders; settings; close. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include "error.h"
#include "internal.h"

static void region_free(fp_region *r)
{
	if (r->queue_ready)
		pg_queue_destroy(&r->queue);
	pthread_mutex_destroy(&r->res_lock);
	if (r->settings) {
		if (r->settings->policy)
			r->settings->policy_ops->destroy(r->settings->policy);
		free(r->settings);
	}
	if (r->poison_reason) {
		for (uint32_t c = 0; c < r->n_chunks; c++)
			free(r->poison_reason[c]);
		free(r->poison_reason);
	}
	free((void *)r->state);
	free((void *)r->fault_ns);
	free((void *)r->queued_ns);
	free(r->page_len);
	free(r->res_len);
	free(r->preserve);
	pg_stage_free(r);
	pg_predict_free(r);
	if (r->fd >= 0)
		close(r->fd);
	fp_image_close(r->img);
	free(r);
}

static struct pg_settings *settings_new(fp_region *r, uint64_t budget,
                                        const struct fp_policy_ops *ops)
{
	struct pg_settings *s = calloc(1, sizeof *s);
	if (!s)
		return NULL;
	s->budget = budget;
	s->policy_ops = ops;
	struct fp_policy_env env = {
		.n_chunks = r->n_chunks,
		.chunk_size = r->chunk_size,
		.chunks = r->img->chunks,
		.budget = budget,
	};
	s->policy = ops->create(&env);
	if (!s->policy) {
		free(s);
		return NULL;
	}
	return s;
}

static const struct fp_policy_ops *policy_or_err(const char *name)
{
	const struct fp_policy_ops *ops = fp_policy_find(name);
	if (!ops) {
		char list[256] = "";
		for (const char *const *n = fp_policy_names(); *n; n++)
			snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s",
			         list[0] ? ", " : "", *n);
		pg_err("unknown policy '%s' (known: %s)", name, list);
	} else if (ops->future) {
		pg_err("policy '%s' needs the future accesses: it runs in the simulator only", name);
		return NULL;
	}
	return ops;
}

static int open_payload(fp_region *r, const char *path)
{
	if (!(r->opt.flags & FP_OPEN_BUFFERED)) {
		r->fd = open(path, O_RDONLY | O_DIRECT | O_CLOEXEC);
		if (r->fd >= 0) {
			r->direct = 1;
			return 0;
		}
		/* Some file systems (tmpfs) have no O_DIRECT: read buffered. */
		if (errno != EINVAL)
			return pg_err("%s: cannot open: %s", path, strerror(errno));
	}
	r->fd = open(path, O_RDONLY | O_CLOEXEC);
	return r->fd < 0 ? pg_err("%s: cannot open: %s", path, strerror(errno)) : 0;
}

/* Reserve the region: 2 MiB aligned so that chunks can be huge pages. */
static int map_region(fp_region *r)
{
	size_t len = r->size + HUGE_2M;
	uint8_t *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
	                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return pg_err("%s: cannot reserve %llu bytes of address space: %s", r->img->path,
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

static int start_trace(fp_region *r)
{
	struct fp_trace_header h = {
		.version = FP_TRACE_VERSION,
		.record_size = sizeof(struct fp_trace_event),
		.start_ns = pg_now_ns(),
		.budget = r->settings->budget,
		.logical_size = r->size,
		.chunk_size = r->chunk_size,
		.n_chunks = r->n_chunks,
		.loaders = (uint32_t)r->opt.loaders,
		.readahead = (uint32_t)r->opt.readahead,
	};
	memcpy(h.magic, FP_TRACE_MAGIC, 8);
	snprintf(h.policy, sizeof h.policy, "%s", r->settings->policy_ops->name);
	snprintf(h.image, sizeof h.image, "%s", r->img->path);
	r->tracer = pg_tracer_start(r->opt.trace_path, &h);
	return r->tracer ? 0 : -1;
}

void fp_trace_mark(fp_region *r, uint32_t kind, uint64_t value)
{
	static _Thread_local pid_t tid; /* a system call is dear here: ask once */
	if (!r->tracer)
		return;
	if (!tid)
		tid = gettid();
	fp_trace_event(r, 0, FP_EV_MARK, kind, 0, value, (uint64_t)tid);
}

fp_region *fp_open(const char *path, const struct fp_options *opt)
{
	fp_region *r = calloc(1, sizeof *r);
	if (!r) {
		pg_err("out of memory");
		return NULL;
	}
	r->fd = -1;
	pthread_mutex_init(&r->res_lock, NULL); /* region_free destroys it */
	r->opt = opt ? *opt : (struct fp_options){.retries = -1, .readahead = -1};
	if (!r->opt.loaders)
		r->opt.loaders = 4;
	if (r->opt.loaders < 1 || r->opt.loaders > 64) {
		pg_err("loaders: %d is out of range [1, 64]", r->opt.loaders);
		goto fail;
	}
	const struct fp_policy_ops *ops = policy_or_err(r->opt.policy ? r->opt.policy : "fifo");
	if (!ops)
		goto fail;
	r->img = fp_image_open(path);
	if (!r->img)
		goto fail;
	r->chunk_size = r->img->info.chunk_size;
	if (r->opt.readahead < 0) {
		/* 32 MiB ahead keeps the storage busy whatever the chunk size. */
		r->opt.readahead = (int)((32u << 20) / r->chunk_size);
		r->opt.readahead = r->opt.readahead < 2 ? 2 : r->opt.readahead > 64 ? 64 : r->opt.readahead;
	}
	r->n_chunks = r->img->info.n_chunks;
	r->size = r->img->info.logical_size;
	uint64_t budget = r->opt.budget ? r->opt.budget : r->size;
	if (budget < fp_min_budget(r)) {
		pg_err("%s: budget %llu bytes is below the minimum working set of %llu bytes "
		       "(chunks of %u)", path, (unsigned long long)budget,
		       (unsigned long long)fp_min_budget(r), r->chunk_size);
		goto fail;
	}
	size_t n = r->n_chunks;
	r->state = calloc(n, sizeof *r->state);
	r->fault_ns = calloc(n, sizeof *r->fault_ns);
	r->queued_ns = calloc(n, sizeof *r->queued_ns);
	r->poison_reason = calloc(n, sizeof *r->poison_reason);
	r->page_len = malloc(n * sizeof *r->page_len);
	r->res_len = malloc(n * sizeof *r->res_len);
	r->settings = settings_new(r, budget, ops);
	if (!r->state || !r->fault_ns || !r->queued_ns || !r->poison_reason || !r->page_len ||
	    !r->res_len || !r->settings || (r->queue_ready = 1, pg_queue_init(&r->queue, r->n_chunks))) {
		pg_err("%s: out of memory", path);
		goto fail;
	}
	for (uint32_t c = 0; c < n; c++)
		r->res_len[c] = r->page_len[c] = (r->img->chunks[c].logical_len + 4095u) & ~4095u;
	if (r->opt.preserve) {
		r->preserve = malloc(n);
		if (!r->preserve) {
			pg_err("%s: out of memory", path);
			goto fail;
		}
		memcpy(r->preserve, r->opt.preserve, n);
		uint64_t kept = 0, all = 0;
		for (uint32_t c = 0; c < n; c++) {
			kept += r->preserve[c] ? r->page_len[c] : 0;
			all += r->page_len[c];
		}
		if (kept + fp_min_budget(r) > budget && kept < all) {
			pg_err("%s: preserved chunks take %llu bytes of the %llu byte budget, leaving less "
			       "than the minimum working set of %llu bytes for the rest", path,
			       (unsigned long long)kept, (unsigned long long)budget,
			       (unsigned long long)fp_min_budget(r));
			goto fail;
		}
		struct rlimit rl;
		r->lock_quota = r->opt.lock_quota ? r->opt.lock_quota
		                : geteuid() == 0 || getrlimit(RLIMIT_MEMLOCK, &rl) || rl.rlim_cur == RLIM_INFINITY
		                ? UINT64_MAX : rl.rlim_cur;
	}
	if (pg_stage_init(r) || pg_predict_init(r)) {
		pg_err("%s: out of memory", path);
		goto fail;
	}
	pg_stage_update(r, budget);
	if (open_payload(r, path))
		goto fail;

	struct pg_uffd u;
	if (pg_handler_get(&u))
		goto fail;
	r->uffd = u.fd;
	if (map_region(r))
		goto fail_handler;
	uint64_t ioctls;
	int rc = pg_uffd_register(r->uffd, r->base, r->size, &ioctls);
	if (rc) {
		pg_err("%s: cannot register the region with userfaultfd: %s", path, strerror(-rc));
		goto fail_map;
	}
	r->huge_ok = !(r->opt.flags & FP_OPEN_NO_HUGE) && (u.features & UFFD_FEATURE_MOVE) &&
	             (ioctls & (1ull << _UFFDIO_MOVE)) && r->chunk_size % HUGE_2M == 0;
	r->can_poison = !!(u.features & UFFD_FEATURE_POISON);
	/* Huge pages appear in the region only where a loader moves one in on
	 * purpose (a missing fault goes to userfaultfd, never to the THP
	 * allocator).  A region that takes huge pages must say so, or the
	 * kernel maps a moved huge page as 512 small ones. */
	madvise(r->base, r->size, r->huge_ok ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
	/* Slots for the loads in flight, the staged read-ahead and pages to
	 * spare: up to two per loader and two more wait outside the budget,
	 * and the warmer makes new ones only below one per loader.  Without
	 * a pool the loaders stage in fresh pages. */
	if (r->huge_ok)
		pg_pool_init(&r->pool, r->uffd, r->chunk_size,
		             3 * (uint32_t)r->opt.loaders + 2 + (uint32_t)r->opt.readahead,
		             (uint32_t)r->opt.loaders, 2 * (uint32_t)r->opt.loaders + 2);
	if (r->opt.trace_path && start_trace(r))
		goto fail_register;
	if (pg_loaders_start(r))
		goto fail_trace;
	pg_reporter_add(r);
	pg_handler_publish(r);
	/* Preserved chunks are loaded now, ahead of the loop. */
	for (uint32_t c = 0; r->preserve && c < r->n_chunks; c++) {
		if (r->preserve[c] && r->page_len[c] && pg_chunk_load_ahead(&r->state[c])) {
			atomic_store(&r->queued_ns[c], pg_now_ns());
			pg_queue_push(&r->queue, c, 0);
		}
	}
	return r;

fail_trace:
	pg_tracer_stop(r->tracer);
fail_register:
	pg_pool_destroy(&r->pool, r->uffd);
	pg_uffd_unregister(r->uffd, r->base, r->size);
fail_map:
	munmap(r->base, r->size);
fail_handler:
	pg_handler_put();
fail:
	region_free(r);
	return NULL;
}

void fp_close(fp_region *r)
{
	if (!r)
		return;
	pg_handler_unpublish(r);
	pg_loaders_stop(r);
	pg_tracer_stop(r->tracer);
	pg_reporter_remove(r);
	pg_pool_destroy(&r->pool, r->uffd);
	pg_uffd_unregister(r->uffd, r->base, r->size);
	munmap(r->base, r->size);
	pg_handler_put();
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
	if (!t) {
		pg_err("%s: no tensor named '%s'", r->img->path, name);
		return NULL;
	}
	return r->base + t->offset;
}

uint64_t fp_min_budget(const fp_region *r)
{
	/* Two chunks: the one a thread reads and the one it faults on next. */
	return r->n_chunks > 1 ? 2ull * r->chunk_size : r->chunk_size;
}

/* Publish new settings; the old ones are freed after a grace period, since
 * the handler reads them under RCU without the residency lock. */
static void publish(fp_region *r, struct pg_settings *s)
{
	struct pg_settings *old = r->settings;
	rcu_assign_pointer(r->settings, s);
	pthread_mutex_unlock(&r->res_lock);
	synchronize_rcu();
	if (old->policy != s->policy)
		old->policy_ops->destroy(old->policy);
	free(old);
}

int fp_set_budget(fp_region *r, uint64_t budget)
{
	if (budget < fp_min_budget(r))
		return pg_err("%s: budget %llu bytes is below the minimum working set of %llu bytes",
		              r->img->path, (unsigned long long)budget,
		              (unsigned long long)fp_min_budget(r));
	struct pg_settings *s = malloc(sizeof *s);
	if (!s)
		return pg_err("out of memory");
	pthread_mutex_lock(&r->res_lock);
	*s = *r->settings;
	s->budget = budget;
	publish(r, s);
	pg_stage_update(r, budget);
	fp_trace_event(r, 0, FP_EV_SETTINGS, 0, 0, budget, 0);
	return pg_evict_to(r, budget);
}

int fp_set_policy(fp_region *r, const char *name)
{
	const struct fp_policy_ops *ops = policy_or_err(name);
	if (!ops)
		return -1;
	pthread_mutex_lock(&r->res_lock);
	struct pg_settings *s = settings_new(r, r->settings->budget, ops);
	if (!s) {
		pthread_mutex_unlock(&r->res_lock);
		return pg_err("out of memory");
	}
	/* The new policy starts from what is resident now. */
	for (uint32_t c = 0; c < r->n_chunks; c++)
		if (chunk_state(r, c) == CHUNK_RESIDENT)
			ops->loaded(s->policy, c, 0);
	publish(r, s);
	return 0;
}
