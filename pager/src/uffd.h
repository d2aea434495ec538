/* Thin wrappers over the userfaultfd ioctls, with the definitions that
 * older kernel headers lack (UFFDIO_MOVE appeared in 6.8, UFFDIO_POISON
 * in 6.6).  Each returns 0 or a negative errno. */
#ifndef FLEXPAGE_UFFD_H
#define FLEXPAGE_UFFD_H

#include <linux/userfaultfd.h>
#include <stddef.h>
#include <stdint.h>

#ifndef UFFD_FEATURE_POISON
#define UFFD_FEATURE_POISON (1ull << 14)
#endif
#ifndef UFFD_FEATURE_MOVE
#define UFFD_FEATURE_MOVE (1ull << 16)
#endif
#ifndef _UFFDIO_MOVE
#define _UFFDIO_MOVE (0x05)
struct uffdio_move {
	__u64 dst;
	__u64 src;
	__u64 len;
#define UFFDIO_MOVE_MODE_DONTWAKE ((__u64)1 << 0)
#define UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES ((__u64)1 << 1)
	__u64 mode;
	__s64 move;
};
#define UFFDIO_MOVE _IOWR(UFFDIO, _UFFDIO_MOVE, struct uffdio_move)
#endif
#ifndef _UFFDIO_POISON
#define _UFFDIO_POISON (0x08)
struct uffdio_poison {
	struct uffdio_range range;
#define UFFDIO_POISON_MODE_DONTWAKE ((__u64)1 << 0)
	__u64 mode;
	__s64 updated;
};
#define UFFDIO_POISON _IOWR(UFFDIO, _UFFDIO_POISON, struct uffdio_poison)
#endif

struct pg_uffd {
	int fd;
	uint64_t features;       /* what UFFDIO_API granted */
	int user_mode_only;      /* opened with UFFD_USER_MODE_ONLY */
};

/* Open a userfaultfd with the features flexpage uses (as many as the kernel
 * has).  On failure, fp_last_error() says why and how to enable it. */
int pg_uffd_open(struct pg_uffd *u);
int pg_uffd_register(int fd, void *addr, size_t len, uint64_t *ioctls);
int pg_uffd_unregister(int fd, void *addr, size_t len);
/* Copy len bytes into missing pages at dst.  Pages that already exist are
 * skipped (and their waiters woken); a partial copy is resumed. */
int pg_uffd_copy(int fd, void *dst, const void *src, size_t len);
/* Move the pages at src to dst (zero-copy); waiters are woken.  *moved
 * counts the bytes moved, also on failure. */
int pg_uffd_move(int fd, void *dst, void *src, size_t len, size_t *moved);
int pg_uffd_zeropage(int fd, void *dst, size_t len);
int pg_uffd_wake(int fd, void *addr, size_t len);
int pg_uffd_poison(int fd, void *addr, size_t len);

#endif
