/* A fixed set of worker threads for the per-token products.
 *
 * A decode step dispatches about a hundred short jobs per token, so thread
 * creation per job is out of the question and so is a condition variable's
 * cost on every job.  Workers wait for a new generation number: they spin
 * for a short while (the next job usually comes within microseconds), then
 * sleep on a futex, so that an idle pool or a worker stalled on a page
 * fault leaves the CPU to the threads that need it (on 2 cores, the
 * pager's loaders).  The caller does share 0 of every job and waits for
 * the others the same way. */
#include "internal.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

struct worker {
	struct fk_pool *pool;
	int ith;
	pthread_t thread;
};

struct fk_pool {
	int n;                       /* threads, the caller included */
	struct worker *workers;      /* n - 1 */
	void (*fn)(void *ctx, int ith, int nth);
	void *ctx;
	_Atomic uint32_t gen;        /* bumped for each job (futex word) */
	_Atomic uint32_t pending;    /* workers still in the job (futex word) */
	_Atomic int sleepers;        /* workers in futex_wait on gen */
	_Atomic int caller_sleeps;   /* caller in futex_wait on pending */
	_Atomic int stop;
	uint64_t spin_ns;
	void *scratch;               /* fk_pool_scratch() */
	size_t scratch_size;
};

static void futex_wait(_Atomic uint32_t *addr, uint32_t val)
{
	/* EINTR, EAGAIN (value already changed): the caller re-checks */
	syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0);
}

static void futex_wake(_Atomic uint32_t *addr, int n)
{
	syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
}

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

/* Spin until *addr != val or spin_ns pass; 1 if it changed. */
static int spin_while(_Atomic uint32_t *addr, uint32_t val, uint64_t spin_ns)
{
	uint64_t t0 = 0;
	for (unsigned i = 0;; i++) {
		if (atomic_load_explicit(addr, memory_order_acquire) != val)
			return 1;
		cpu_relax();
		if ((i & 63) == 63) {
			uint64_t t = mono_ns();
			if (!t0)
				t0 = t;
			else if (t - t0 >= spin_ns)
				return 0;
		}
	}
}

static void *worker_main(void *arg)
{
	struct worker *wk = arg;
	struct fk_pool *p = wk->pool;
	uint32_t seen = 0;

	for (;;) {
		if (!spin_while(&p->gen, seen, p->spin_ns)) {
			/* announce the sleep before the last look at gen: the
			 * dispatcher bumps gen before it looks at sleepers */
			atomic_fetch_add(&p->sleepers, 1);
			while (atomic_load(&p->gen) == seen)
				futex_wait(&p->gen, seen);
			atomic_fetch_sub(&p->sleepers, 1);
		}
		seen = atomic_load_explicit(&p->gen, memory_order_acquire);
		if (atomic_load_explicit(&p->stop, memory_order_acquire))
			return NULL;
		p->fn(p->ctx, wk->ith, p->n);
		if (atomic_fetch_sub(&p->pending, 1) == 1 && atomic_load(&p->caller_sleeps))
			futex_wake(&p->pending, 1);
	}
}

static void signal_workers(struct fk_pool *p)
{
	atomic_fetch_add(&p->gen, 1);
	if (atomic_load(&p->sleepers))
		futex_wake(&p->gen, INT_MAX);
}

fk_pool *fk_pool_create(int n_threads)
{
	if (n_threads < 1)
		n_threads = 1;
	struct fk_pool *p = calloc(1, sizeof *p);
	if (!p) {
		fk_fail(ENOMEM, "thread pool: out of memory");
		return NULL;
	}
	p->n = n_threads;
	p->spin_ns = 50000;
	const char *env = getenv("FLEXPAGE_SPIN_US");
	if (env && *env)
		p->spin_ns = strtoull(env, NULL, 10) * 1000;
	if (n_threads > 1) {
		p->workers = calloc((size_t)n_threads - 1, sizeof *p->workers);
		if (!p->workers) {
			free(p);
			fk_fail(ENOMEM, "thread pool: out of memory for %d workers", n_threads - 1);
			return NULL;
		}
	}
	for (int i = 1; i < n_threads; i++) {
		struct worker *wk = &p->workers[i - 1];
		wk->pool = p;
		wk->ith = i;
		const int e = pthread_create(&wk->thread, NULL, worker_main, wk);
		if (e) {
			p->n = i; /* destroy joins the ones that started */
			fk_pool_destroy(p);
			fk_fail(e, "thread pool: cannot start thread %d of %d: %s", i + 1, n_threads,
			        strerror(e));
			return NULL;
		}
	}
	return p;
}

void fk_pool_destroy(fk_pool *p)
{
	if (!p)
		return;
	atomic_store(&p->stop, 1);
	signal_workers(p);
	for (int i = 1; i < p->n; i++)
		pthread_join(p->workers[i - 1].thread, NULL);
	free(p->workers);
	free(p->scratch);
	free(p);
}

void *fk_pool_scratch(fk_pool *p, size_t size)
{
	if (size <= p->scratch_size)
		return p->scratch;
	void *s = aligned_alloc(64, (size + 63) & ~(size_t)63);
	if (!s)
		return NULL;
	free(p->scratch);
	p->scratch = s;
	p->scratch_size = size;
	return s;
}

int fk_pool_size(const fk_pool *p)
{
	return p ? p->n : 1;
}

void fk_pool_run(fk_pool *p, void (*fn)(void *ctx, int ith, int nth), void *ctx)
{
	if (!p || p->n == 1) {
		fn(ctx, 0, 1);
		return;
	}
	p->fn = fn;
	p->ctx = ctx;
	atomic_store(&p->pending, (uint32_t)(p->n - 1));
	signal_workers(p);
	fn(ctx, 0, p->n);
	uint32_t left;
	while ((left = atomic_load(&p->pending)) != 0) {
		if (spin_while(&p->pending, left, p->spin_ns))
			continue;
		atomic_store(&p->caller_sleeps, 1);
		left = atomic_load(&p->pending);
		if (left)
			futex_wait(&p->pending, left);
		atomic_store(&p->caller_sleeps, 0);
	}
}
