/* The real functions behind the interposed ones, found with dlsym
 * (RTLD_NEXT: the next definition after this library, libc's or another
 * preloaded library's), and the pager's own calls, which the link sends
 * here (--wrap) so that they never meet the interposers. */
#include <dlfcn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "preload.h"

static struct pl_real real;
static atomic_int resolved;

static void *need(const char *name)
{
	void *f = dlsym(RTLD_NEXT, name);
	if (!f) {
		/* Without the real function nothing can go on. */
		static const char msg[] = "flexpage: preload: the real function is missing: ";
		ssize_t w = write(2, msg, sizeof msg - 1);
		w = write(2, name, __builtin_strlen(name));
		w = write(2, "\n", 1);
		(void)w;
		abort();
	}
	return f;
}

/* Racing first calls resolve the same pointers: harmless. */
const struct pl_real *pl_real(void)
{
	if (atomic_load_explicit(&resolved, memory_order_acquire))
		return &real;
	real.mmap = need("mmap");
	real.munmap = need("munmap");
	real.madvise = need("madvise");
	real.posix_madvise = need("posix_madvise");
	real.mlock = need("mlock");
	real.mlock2 = need("mlock2");
	real.munlock = need("munlock");
	real.mlockall = need("mlockall");
	real.munlockall = need("munlockall");
	real.mprotect = need("mprotect");
	real.mremap = need("mremap");
	atomic_store_explicit(&resolved, 1, memory_order_release);
	return &real;
}

__attribute__((constructor)) static void resolve_early(void)
{
	pl_real();
}

/* The pager's calls (linked with --wrap=NAME). */
void *__wrap_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off);
int __wrap_munmap(void *addr, size_t len);
int __wrap_madvise(void *addr, size_t len, int advice);
int __wrap_mlock2(const void *addr, size_t len, unsigned int flags);

void *__wrap_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	return pl_real()->mmap(addr, len, prot, flags, fd, off);
}

int __wrap_munmap(void *addr, size_t len)
{
	return pl_real()->munmap(addr, len);
}

int __wrap_madvise(void *addr, size_t len, int advice)
{
	return pl_real()->madvise(addr, len, advice);
}

int __wrap_mlock2(const void *addr, size_t len, unsigned int flags)
{
	return pl_real()->mlock2(addr, len, flags);
}
