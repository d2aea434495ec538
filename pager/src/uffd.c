#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "error.h"
#include "uffd.h"

#ifndef USERFAULTFD_IOC_NEW
#define USERFAULTFD_IOC_NEW _IO(0xAA, 0x00)
#endif

static int raw_open(int flags)
{
	int fd = (int)syscall(SYS_userfaultfd, flags);
	if (fd >= 0)
		return fd;
	int err = errno;
	/* /dev/userfaultfd grants full userfaultfd to whoever may open it,
	 * whatever vm.unprivileged_userfaultfd says. */
	int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
	if (dev >= 0) {
		fd = ioctl(dev, USERFAULTFD_IOC_NEW, flags);
		close(dev);
		if (fd >= 0)
			return fd;
	}
	errno = err;
	return -1;
}

static int handshake(int fd, uint64_t want, uint64_t *granted)
{
	struct uffdio_api api = {.api = UFFD_API, .features = want};
	if (ioctl(fd, UFFDIO_API, &api))
		return -errno;
	*granted = api.features;
	return 0;
}

int pg_uffd_open(struct pg_uffd *u)
{
	const int base = O_CLOEXEC | O_NONBLOCK;
	memset(u, 0, sizeof *u);
	int fd = raw_open(base);
	if (fd < 0 && (errno == EPERM || errno == EACCES)) {
		fd = raw_open(base | UFFD_USER_MODE_ONLY);
		u->user_mode_only = fd >= 0;
	}
	if (fd < 0) {
		int e = errno;
		if (e == ENOSYS)
			return pg_err(ENOSYS, "userfaultfd is not available: this kernel was built without "
			              "CONFIG_USERFAULTFD");
		return pg_err(e, "userfaultfd is not available (%s): run as root, or allow it with "
		              "'sysctl vm.unprivileged_userfaultfd=1', or give this user access to "
		              "/dev/userfaultfd", strerror(e));
	}
	/* Ask for what we can use; features the kernel lacks are masked out
	 * by asking first on a throwaway descriptor (UFFDIO_API may be called
	 * once per descriptor). */
	uint64_t want = UFFD_FEATURE_THREAD_ID | UFFD_FEATURE_POISON | UFFD_FEATURE_MOVE |
	                UFFD_FEATURE_EXACT_ADDRESS;
	int probe = raw_open(base | (u->user_mode_only ? UFFD_USER_MODE_ONLY : 0));
	uint64_t avail = 0;
	if (probe >= 0) {
		if (handshake(probe, 0, &avail))
			avail = 0;
		close(probe);
	}
	int rc = handshake(fd, want & avail, &u->features);
	if (rc) {
		close(fd);
		return pg_err(-rc, "userfaultfd: UFFDIO_API handshake failed: %s", strerror(-rc));
	}
	u->fd = fd;
	return 0;
}

int pg_uffd_register(int fd, void *addr, size_t len, uint64_t *ioctls)
{
	struct uffdio_register reg = {
		.range = {.start = (uintptr_t)addr, .len = len},
		.mode = UFFDIO_REGISTER_MODE_MISSING,
	};
	if (ioctl(fd, UFFDIO_REGISTER, &reg))
		return -errno;
	*ioctls = reg.ioctls;
	return 0;
}

int pg_uffd_unregister(int fd, void *addr, size_t len)
{
	struct uffdio_range r = {.start = (uintptr_t)addr, .len = len};
	return ioctl(fd, UFFDIO_UNREGISTER, &r) ? -errno : 0;
}

int pg_uffd_wake(int fd, void *addr, size_t len)
{
	struct uffdio_range r = {.start = (uintptr_t)addr, .len = len};
	return ioctl(fd, UFFDIO_WAKE, &r) ? -errno : 0;
}

/* One UFFDIO_COPY or UFFDIO_ZEROPAGE attempt: 0 or an errno, and the
 * bytes it filled in *done. */
static int copy_once(int fd, uintptr_t dst, uintptr_t src, size_t len, size_t *done)
{
	struct uffdio_copy c = {.dst = dst, .src = src, .len = len};
	int rc = ioctl(fd, UFFDIO_COPY, &c) ? errno : 0;
	*done = c.copy > 0 ? (size_t)c.copy : 0;
	return rc;
}

static int zero_once(int fd, uintptr_t dst, uintptr_t src, size_t len, size_t *done)
{
	struct uffdio_zeropage z = {.range = {.start = dst, .len = len}};
	int rc = ioctl(fd, UFFDIO_ZEROPAGE, &z) ? errno : 0;
	*done = z.zeropage > 0 ? (size_t)z.zeropage : 0;
	return rc;
}

/* Fill the missing pages of [dst, dst+len), resuming partial fills.  A page
 * that already exists (EEXIST) was installed by someone else: the kernel
 * does not wake its waiters for us, so wake them and go on past it. */
static int fill(int fd, void *dst, const void *src, size_t len,
                int (*once)(int, uintptr_t, uintptr_t, size_t, size_t *))
{
	const size_t page = 4096;
	size_t done = 0;
	while (done < len) {
		size_t n;
		int rc = once(fd, (uintptr_t)dst + done, (uintptr_t)src + done, len - done, &n);
		done += n;
		if (!rc || rc == EAGAIN || rc == EINTR)
			continue;
		if (rc != EEXIST)
			return -rc;
		pg_uffd_wake(fd, (char *)dst + done, page);
		done += page;
	}
	return 0;
}

int pg_uffd_copy(int fd, void *dst, const void *src, size_t len)
{
	return fill(fd, dst, src, len, copy_once);
}

int pg_uffd_move(int fd, void *dst, void *src, size_t len, size_t *moved)
{
	size_t done = 0;
	*moved = 0;
	while (done < len) {
		struct uffdio_move m = {
			.dst = (uintptr_t)dst + done,
			.src = (uintptr_t)src + done,
			.len = len - done,
		};
		int rc = ioctl(fd, UFFDIO_MOVE, &m) ? errno : 0;
		if (m.move > 0) {
			done += (size_t)m.move;
			*moved = done;
		}
		if (!rc)
			continue;
		if (rc == EAGAIN && m.move > 0)
			continue;
		return -rc;
	}
	return 0;
}

int pg_uffd_zeropage(int fd, void *dst, size_t len)
{
	return fill(fd, dst, NULL, len, zero_once);
}

int pg_uffd_poison(int fd, void *addr, size_t len)
{
	struct uffdio_poison p = {.range = {.start = (uintptr_t)addr, .len = len}};
	if (!ioctl(fd, UFFDIO_POISON, &p))
		return 0;
	if (errno == EEXIST)
		return pg_uffd_wake(fd, addr, len);
	return -errno;
}
