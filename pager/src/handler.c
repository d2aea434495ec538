/* The fault handler: one thread and one userfaultfd for the whole process,
 * serving every open region.  It finds a fault's region under RCU, so
 * opening and closing regions never stalls fault service, and it never
 * touches region memory itself: it only queues loads and issues ioctls.
 *
 * The regions form a list, newest first, changed under H.lock and walked
 * by the handler without it.  Its links are C11 atomics: a region is
 * linked with a release store after it is fully made, and the handler
 * follows each link with an acquire load, so a region it reaches is
 * complete (and ThreadSanitizer sees that order too).  A region unlinked
 * keeps its own link, so a walk standing on it goes on; it is freed only
 * after a grace period (pg_handler_unpublish). */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "error.h"
#include "internal.h"
#include "tsan.h"

_Thread_local uint16_t pg_thread_id = FP_TRACE_OTHER_THREAD;
char pg_tsan_grace;

static struct {
	pthread_mutex_t lock;        /* attach/detach; the list's writers */
	fp_region *_Atomic regions;  /* newest first, through next_open */
	int users;
	struct pg_uffd uffd;
	int stop_fd;
	pthread_t thread;
} H = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
};

static fp_region *find_region(uint64_t addr)
{
	for (fp_region *r = atomic_load_explicit(&H.regions, memory_order_acquire); r;
	     r = atomic_load_explicit(&r->next_open, memory_order_acquire)) {
		/* A page given back may lie in a region opened since. */
		if ((addr >= (uintptr_t)r->base && addr < (uintptr_t)r->base + r->size &&
		     !pg_map_gone_at(r, addr)) ||
		    pg_pool_contains(&r->pool, addr))
			return r;
	}
	return NULL;
}

static void serve(const struct uffd_msg *m)
{
	if (m->event != UFFD_EVENT_PAGEFAULT)
		return;
	uint64_t addr = m->arg.pagefault.address & ~4095ull;
	rcu_read_lock();
	fp_region *r = find_region(addr);
	if (r) {
		pg_load_work_begin(r);
		pg_fault(r, addr, m->arg.pagefault.feat.ptid);
		pg_load_work_end(r);
	}
	pg_tsan_release(&pg_tsan_grace);
	rcu_read_unlock();
	/* A fault in no region belongs to a region being closed; closing
	 * unregisters the range, which wakes the thread. */
}

static void *handler_main(void *arg)
{
	rcu_register_thread();
	pg_thread_id = 0;
	struct uffd_msg msgs[64];
	struct pollfd pfd[2] = {
		{.fd = H.uffd.fd, .events = POLLIN},
		{.fd = H.stop_fd, .events = POLLIN},
	};
	for (;;) {
		ssize_t n = read(H.uffd.fd, msgs, sizeof msgs);
		if (n > 0) {
			for (size_t i = 0; i < (size_t)n / sizeof msgs[0]; i++)
				serve(&msgs[i]);
			continue;
		}
		if (n < 0 && errno != EAGAIN && errno != EINTR)
			break;
		if (poll(pfd, 2, -1) < 0 && errno != EINTR)
			break;
		if (pfd[1].revents)
			break;
	}
	rcu_unregister_thread();
	return NULL;
}

int pg_handler_get(struct pg_uffd *out)
{
	int rc = 0;
	pthread_mutex_lock(&H.lock);
	if (!H.users) {
		if ((rc = pg_uffd_open(&H.uffd)))
			goto fail;
		H.stop_fd = eventfd(0, EFD_CLOEXEC);
		int e = H.stop_fd < 0 ? pg_errno()
		        : pthread_create(&H.thread, NULL, handler_main, NULL);
		if (e) {
			rc = pg_err(e, "cannot start the fault handler: %s", strerror(e));
			if (H.stop_fd >= 0)
				close(H.stop_fd);
			close(H.uffd.fd);
			goto fail;
		}
	}
	H.users++;
	*out = H.uffd;
	pthread_mutex_unlock(&H.lock);
	return 0;
fail:
	pthread_mutex_unlock(&H.lock);
	return rc;
}

void pg_handler_put(void)
{
	pthread_mutex_lock(&H.lock);
	if (--H.users == 0) {
		uint64_t one = 1;
		if (write(H.stop_fd, &one, sizeof one) != sizeof one)
			abort();
		pthread_join(H.thread, NULL);
		close(H.stop_fd);
		close(H.uffd.fd);
		memset(&H.uffd, 0, sizeof H.uffd);
	}
	pthread_mutex_unlock(&H.lock);
}

void pg_handler_publish(fp_region *r)
{
	pthread_mutex_lock(&H.lock);
	atomic_store_explicit(&r->next_open, atomic_load_explicit(&H.regions, memory_order_relaxed),
	                      memory_order_relaxed);
	atomic_store_explicit(&H.regions, r, memory_order_release); /* r, made before, is seen */
	pthread_mutex_unlock(&H.lock);
}

void pg_handler_unpublish(fp_region *r)
{
	pthread_mutex_lock(&H.lock);
	fp_region *_Atomic *link = &H.regions;
	fp_region *at;
	while ((at = atomic_load_explicit(link, memory_order_relaxed)) && at != r)
		link = &at->next_open;
	/* Release: what follows r was made before its own publication, which
	 * this thread saw through the lock. */
	if (at)
		atomic_store_explicit(link, atomic_load_explicit(&r->next_open, memory_order_relaxed),
		                      memory_order_release);
	pthread_mutex_unlock(&H.lock);
	synchronize_rcu(); /* from here on the handler cannot reach r */
	pg_tsan_acquire(&pg_tsan_grace);
}
