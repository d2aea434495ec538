/* fork: userfaultfd does not follow a fork (the pager asks for no
 * UFFD_FEATURE_EVENT_FORK), and a region is MADV_DONTFORK, so a child
 * would find no pages where its parent's model was, and its pager would
 * be the parent's (the same userfaultfd, threads that do not exist in the
 * child).  So the child gets, at the same addresses, the kernel's mapping
 * of each model file over the pages its parent still had mapped: the
 * file's bytes, read through the page cache.  In the child nothing more is
 * served: every call goes to the real function. */
#include <sys/mman.h>

#include "preload.h"

atomic_int pl_disabled;

static void prepare(void)
{
	pthread_mutex_lock(&pl_table_lock);
}

static void parent(void)
{
	pthread_mutex_unlock(&pl_table_lock);
}

static int map_file(struct pl_walk *w, struct pl_served *s, uintptr_t lo, uintptr_t hi)
{
	/* A child that cannot map the file finds no pages there (SIGSEGV). */
	if (s->fd >= 0)
		pl_real()->mmap((void *)lo, hi - lo, PROT_READ,
		                (s->shared ? MAP_SHARED : MAP_PRIVATE) | MAP_FIXED, s->fd,
		                (off_t)(lo - s->base));
	return 0;
}

static void child(void)
{
	struct pl_walk w = {.live = map_file};
	struct pl_served *s;
	for (int i = 0; (s = pl_table_at(i)); i++)
		pl_walk(s->base, s->len, &w);
	atomic_store(&pl_disabled, 1);
	atomic_store(&pl_n_served, 0);
	pthread_mutex_unlock(&pl_table_lock);
}

static void register_handlers(void)
{
	pthread_atfork(prepare, parent, child);
}

void pl_fork_init(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, register_handlers);
}
