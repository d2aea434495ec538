/* The interposed functions.  Each one decides quickly whether the call
 * concerns a served mapping (while none is served, every call goes
 * straight through); the parts of a range that are not served go to the
 * real function, untouched.
 *
 * On a served mapping:
 *   mmap           a read-only mapping of a whole model file is served
 *                  (MAP_POPULATE and MAP_LOCKED are not acted on: pages
 *                  come on demand, within the budget); MAP_FIXED over a
 *                  served range unmaps it first
 *   munmap         gives the pages back (the kernel may reuse them at
 *                  once); the last of a mapping closes its region
 *   madvise, posix_madvise
 *                  accepted and not acted on: WILLNEED would read the whole
 *                  model, DONTNEED would drop pages behind the pager's back
 *                  (the bytes of a read-only file mapping read the same
 *                  after it anyway)
 *   mlock, mlock2, munlock
 *                  accepted and not acted on: residency is the budget's
 *                  (preserved chunks are locked by the pager)
 *   mlockall       MCL_CURRENT locks on fault and leaves served ranges
 *                  unlocked; after MCL_FUTURE no new region opens
 *   mprotect       PROT_READ is accepted; anything else fails (EACCES)
 *   mremap         fails (EINVAL): a region cannot move */
#include <errno.h>
#include <stdarg.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "preload.h"

#define EXPORT __attribute__((visibility("default")))

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif
#ifndef MAP_SHARED_VALIDATE
#define MAP_SHARED_VALIDATE 0x03
#endif
#ifndef MCL_ONFAULT
#define MCL_ONFAULT 4
#endif

static int aligned(const void *addr, size_t len)
{
	return !((uintptr_t)addr % PL_PAGE) && len && (uintptr_t)addr + len > (uintptr_t)addr;
}

/* Flags a served mapping may have: how the kernel would share it, and
 * hints that only change when pages arrive. */
static int servable_flags(int flags)
{
	int type = flags & MAP_TYPE;
	int hints = MAP_POPULATE | MAP_NORESERVE | MAP_NONBLOCK | MAP_LOCKED | MAP_DENYWRITE |
	            MAP_EXECUTABLE;
	return (type == MAP_SHARED || type == MAP_PRIVATE || type == MAP_SHARED_VALIDATE) &&
	       !(flags & ~MAP_TYPE & ~hints);
}

/* A read-only mapping of a whole regular file, at offset 0: a candidate. */
static int candidate(size_t len, int prot, int flags, int fd, off_t off, struct stat *st)
{
	if (fd < 0 || (flags & MAP_ANONYMOUS) || off || prot != PROT_READ || !len ||
	    !servable_flags(flags) || atomic_load(&pl_disabled))
		return 0;
	if (fstat(fd, st) || !S_ISREG(st->st_mode) || st->st_size <= 0)
		return 0;
	uint64_t pages = ((uint64_t)len + PL_PAGE - 1) / PL_PAGE;
	return pages == ((uint64_t)st->st_size + PL_PAGE - 1) / PL_PAGE;
}

EXPORT void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	const struct pl_real *real = pl_real();
	struct stat st;
	if (candidate(len, prot, flags, fd, off, &st)) {
		void *p = pl_serve(len, flags, fd, &st);
		if (p)
			return p;
	}
	/* A fixed mapping replaces what was there: served pages go first, or
	 * the pager would go on installing into the new mapping. */
	if ((flags & MAP_FIXED) && !(flags & MAP_FIXED_NOREPLACE) && atomic_load(&pl_n_served) &&
	    aligned(addr, len))
		pl_unmap((uintptr_t)addr, len, 0);
	return real->mmap(addr, len, prot, flags, fd, off);
}

EXPORT void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off)
	__attribute__((alias("mmap")));

EXPORT int munmap(void *addr, size_t len)
{
	if (!atomic_load(&pl_n_served) || !aligned(addr, len))
		return pl_real()->munmap(addr, len);
	return pl_unmap((uintptr_t)addr, len, 1);
}

/* ---- calls that are accepted on served pages and passed on elsewhere ---- */

struct pass {
	const char *what;
	int (*real)(struct pass *p, uintptr_t lo, size_t len);
	int arg;
	unsigned uarg;
	int rc, err;                 /* the real calls' combined result */
};

static int accept_live(struct pl_walk *w, struct pl_served *s, uintptr_t lo, uintptr_t hi)
{
	struct pass *p = w->ctx;
	pl_log(PL_LOG_DEBUG, "%s: %s of [%llu, %llu) accepted, not acted on", s->name, p->what,
	       (unsigned long long)(lo - s->base), (unsigned long long)(hi - s->base));
	return 0;
}

static int pass_gap(struct pl_walk *w, uintptr_t lo, uintptr_t hi)
{
	struct pass *p = w->ctx;
	/* Like the kernel over a hole: go on, and report the failure. */
	if (p->real(p, lo, hi - lo) && !p->rc) {
		p->rc = -1;
		p->err = errno;
	}
	return 0;
}

/* Run p over [lo, lo+len): served pages accepted, the others passed on. */
static int split(struct pass *p, uintptr_t lo, size_t len)
{
	struct pl_walk w = {.live = accept_live, .gap = pass_gap, .ctx = p};
	len = (len + PL_PAGE - 1) / PL_PAGE * PL_PAGE;
	pthread_mutex_lock(&pl_table_lock);
	pl_walk(lo, len, &w);
	pthread_mutex_unlock(&pl_table_lock);
	if (p->rc)
		errno = p->err;
	return p->rc;
}

static int real_madvise(struct pass *p, uintptr_t lo, size_t len)
{
	return pl_real()->madvise((void *)lo, len, p->arg);
}

EXPORT int madvise(void *addr, size_t len, int advice)
{
	if (!atomic_load(&pl_n_served) || !aligned(addr, len))
		return pl_real()->madvise(addr, len, advice);
	struct pass p = {.what = "madvise", .real = real_madvise, .arg = advice};
	return split(&p, (uintptr_t)addr, len);
}

static int real_posix_madvise(struct pass *p, uintptr_t lo, size_t len)
{
	int e = pl_real()->posix_madvise((void *)lo, len, p->arg);
	errno = e;
	return e ? -1 : 0;
}

EXPORT int posix_madvise(void *addr, size_t len, int advice)
{
	if (!atomic_load(&pl_n_served) || !aligned(addr, len))
		return pl_real()->posix_madvise(addr, len, advice);
	struct pass p = {.what = "posix_madvise", .real = real_posix_madvise, .arg = advice};
	int saved = errno;
	int rc = split(&p, (uintptr_t)addr, len) ? p.err : 0;
	errno = saved; /* posix_madvise returns its error */
	return rc;
}

static int real_mlock(struct pass *p, uintptr_t lo, size_t len)
{
	return pl_real()->mlock((void *)lo, len);
}

static int real_mlock2(struct pass *p, uintptr_t lo, size_t len)
{
	return pl_real()->mlock2((void *)lo, len, p->uarg);
}

static int real_munlock(struct pass *p, uintptr_t lo, size_t len)
{
	return pl_real()->munlock((void *)lo, len);
}

/* mlock and its kin round the start down to a page, as the kernel does. */
static int lock_split(const void *addr, size_t len, struct pass *p)
{
	uintptr_t lo = (uintptr_t)addr / PL_PAGE * PL_PAGE;
	size_t n = len + ((uintptr_t)addr - lo);
	if (!atomic_load(&pl_n_served) || !len || lo + n <= lo)
		return p->real(p, (uintptr_t)addr, len);
	return split(p, lo, n);
}

EXPORT int mlock(const void *addr, size_t len)
{
	struct pass p = {.what = "mlock", .real = real_mlock};
	return lock_split(addr, len, &p);
}

EXPORT int mlock2(const void *addr, size_t len, unsigned int flags)
{
	struct pass p = {.what = "mlock2", .real = real_mlock2, .uarg = flags};
	return lock_split(addr, len, &p);
}

EXPORT int munlock(const void *addr, size_t len)
{
	struct pass p = {.what = "munlock", .real = real_munlock};
	return lock_split(addr, len, &p);
}

static int unlock_live(struct pl_walk *w, struct pl_served *s, uintptr_t lo, uintptr_t hi)
{
	pl_real()->munlock((void *)lo, hi - lo);
	return 0;
}

/* Locking a region would fill it (MCL_CURRENT without MCL_ONFAULT faults
 * every page in) and stop its evictions (MADV_DONTNEED refuses locked
 * pages): the program's other memory is locked on fault, the served
 * ranges are unlocked again at once (and so are preserved chunks, which
 * stay resident all the same). */
EXPORT int mlockall(int flags)
{
	if (flags & MCL_FUTURE)
		atomic_store(&pl_mlockall_future, 1);
	if (!atomic_load(&pl_n_served) || !(flags & MCL_CURRENT))
		return pl_real()->mlockall(flags);
	int rc = pl_real()->mlockall(flags | MCL_ONFAULT), err = errno;
	struct pl_walk w = {.live = unlock_live};
	pthread_mutex_lock(&pl_table_lock);
	struct pl_served *s;
	for (int i = 0; (s = pl_table_at(i)); i++)
		pl_walk(s->base, s->len, &w);
	pthread_mutex_unlock(&pl_table_lock);
	pl_log(PL_LOG_INFO, "mlockall: served models are left unlocked (their budget holds them)");
	errno = err;
	return rc;
}

EXPORT int munlockall(void)
{
	atomic_store(&pl_mlockall_future, 0);
	return pl_real()->munlockall();
}

static int real_mprotect(struct pass *p, uintptr_t lo, size_t len)
{
	return pl_real()->mprotect((void *)lo, len, p->arg);
}

static int refuse_live(struct pl_walk *w, struct pl_served *s, uintptr_t lo, uintptr_t hi)
{
	struct pass *p = w->ctx;
	pl_log(PL_LOG_DEBUG, "%s: %s of [%llu, %llu) refused", s->name, p->what,
	       (unsigned long long)(lo - s->base), (unsigned long long)(hi - s->base));
	return -1;
}

EXPORT int mprotect(void *addr, size_t len, int prot)
{
	if (!atomic_load(&pl_n_served) || !aligned(addr, len))
		return pl_real()->mprotect(addr, len, prot);
	struct pass p = {.what = "mprotect", .real = real_mprotect, .arg = prot};
	if (prot == PROT_READ)
		return split(&p, (uintptr_t)addr, len);
	/* Writable, executable or inaccessible: the region is none of these
	 * to the pager.  Refused before anything changes. */
	struct pl_walk w = {.live = refuse_live, .ctx = &p};
	pthread_mutex_lock(&pl_table_lock);
	int served = pl_walk((uintptr_t)addr, (len + PL_PAGE - 1) / PL_PAGE * PL_PAGE, &w);
	pthread_mutex_unlock(&pl_table_lock);
	if (served) {
		errno = EACCES;
		return -1;
	}
	return pl_real()->mprotect(addr, len, prot);
}

static int any_live(uintptr_t lo, size_t len)
{
	struct pass p = {.what = "mremap"};
	struct pl_walk w = {.live = refuse_live, .ctx = &p};
	if (!len)
		len = PL_PAGE;
	if (lo + len < lo)
		return 0;
	pthread_mutex_lock(&pl_table_lock);
	int hit = pl_walk(lo / PL_PAGE * PL_PAGE, (len + PL_PAGE - 1) / PL_PAGE * PL_PAGE, &w);
	pthread_mutex_unlock(&pl_table_lock);
	return hit;
}

EXPORT void *mremap(void *old, size_t old_len, size_t new_len, int flags, ...)
{
	void *to = NULL;
	if (flags & MREMAP_FIXED) {
		va_list ap;
		va_start(ap, flags);
		to = va_arg(ap, void *);
		va_end(ap);
	}
	if (atomic_load(&pl_n_served) &&
	    (any_live((uintptr_t)old, old_len) || ((flags & MREMAP_FIXED) && any_live((uintptr_t)to, new_len)))) {
		errno = EINVAL;
		return MAP_FAILED;
	}
	return pl_real()->mremap(old, old_len, new_len, flags, to);
}
