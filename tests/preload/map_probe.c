/* A program that maps files the ways engines do and says what it sees, on
 * stdout, one fact a line: the preload suite runs it with and without
 * libflexpage-preload.so and compares.  Nothing of flexpage is in it; the
 * bytes are checked against pread(2) of the file.
 *
 *   map_probe read FILE [private] [populate] [willneed] [mlock] [at_secure]
 *                                  (at_secure: first say the auxiliary
 *                                  vector's AT_SECURE, set for a set-user-ID
 *                                  program)
 *   map_probe notake FILE          mappings that must go to the kernel
 *   map_probe llama FILE HEAD      llama.cpp's pattern: the HEAD bytes of
 *                                  header pages, the last page, then the rest
 *                                  unmapped, each checked free afterwards
 *   map_probe advice FILE          madvise, mlock, mprotect, mremap on it
 *   map_probe mlockall FILE        mlockall(MCL_CURRENT) over a mapping, then
 *                                  the file mapped under MCL_FUTURE and after
 *                                  munlockall (with the library only: plain
 *                                  MCL_CURRENT fills every mapping there is)
 *   map_probe threads FILE N       N threads map, read and unmap at once
 *   map_probe models FILE...       several files mapped at once, read in turn
 *   map_probe fork FILE            a child of fork reads the mapping
 *   map_probe forkbusy FILE N      N threads read the mapping and two more map
 *                                  and unmap the file again, while the main
 *                                  thread forks children that read it
 *   map_probe twice FILE           the same file mapped twice
 *
 * read also takes mmap64 (map with mmap64), pwillneed (posix_madvise
 * WILLNEED) and keep (exit without munmap).  Any command may be preceded
 * by nouffd: a seccomp filter first makes userfaultfd(2) fail with ENOSYS
 * and /dev/userfaultfd's USERFAULTFD_IOC_NEW with ENOTTY, as on a kernel
 * without userfaultfd. */
#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

#ifndef USERFAULTFD_IOC_NEW
#define USERFAULTFD_IOC_NEW _IO(0xAA, 0x00)
#endif

#if defined(__x86_64__)
#define PROBE_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define PROBE_AUDIT_ARCH AUDIT_ARCH_AARCH64
#endif

#define PAGE 4096ul

static size_t pages(size_t n)
{
	return (n + PAGE - 1) / PAGE;
}

static int open_file(const char *path, size_t *size)
{
	int fd = open(path, O_RDONLY);
	struct stat st;
	if (fd < 0 || fstat(fd, &st)) {
		perror(path);
		exit(2);
	}
	*size = (size_t)st.st_size;
	return fd;
}

static void *map(int fd, size_t len, int prot, int flags, off_t off)
{
	void *p = mmap(NULL, len, prot, flags, fd, off);
	if (p == MAP_FAILED) {
		printf("mmap: failed: %s\n", strerror(errno));
		exit(3);
	}
	return p;
}

/* "kernel" if /proc/self/maps shows the file at p, "served" if anonymous. */
static const char *who_maps(const void *p)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[4096];
	const char *who = "unmapped";
	while (f && fgets(line, sizeof line, f)) {
		unsigned long lo, hi;
		if (sscanf(line, "%lx-%lx", &lo, &hi) != 2 || (uintptr_t)p < lo || (uintptr_t)p >= hi)
			continue;
		who = strchr(line, '/') ? "kernel" : "served";
		break;
	}
	if (f)
		fclose(f);
	return who;
}

static size_t resident(const void *p, size_t len)
{
	unsigned char *v = malloc(pages(len));
	size_t n = 0;
	if (v && !mincore((void *)p, len, v))
		for (size_t i = 0; i < pages(len); i++)
			n += v[i] & 1;
	free(v);
	return n;
}

/* The first offset in [lo, hi) where p differs from the file, or hi. */
static size_t first_diff(int fd, const uint8_t *p, size_t lo, size_t hi)
{
	uint8_t buf[65536];
	for (size_t off = lo; off < hi;) {
		size_t n = hi - off < sizeof buf ? hi - off : sizeof buf;
		ssize_t got = pread(fd, buf, n, (off_t)off);
		if (got != (ssize_t)n)
			return off;
		for (size_t i = 0; i < n; i++)
			if (p[off + i] != buf[i])
				return off + i;
		off += n;
	}
	return hi;
}

static void say_bytes(const char *what, int fd, const uint8_t *p, size_t lo, size_t hi)
{
	size_t d = first_diff(fd, p, lo, hi);
	if (d == hi)
		printf("%s: equal\n", what);
	else
		printf("%s: differ at %zu\n", what, d);
}

/* Whether [p, p+len) is free: a fixed mapping that may not replace
 * anything goes there. */
static const char *is_free(void *p, size_t len)
{
	void *q = mmap(p, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
	               -1, 0);
	if (q == MAP_FAILED)
		return "no";
	if (q != p) {
		munmap(q, len);
		return "no (elsewhere)";
	}
	memset(q, 0x5a, len); /* and it is memory of our own */
	return "yes";
}

static int cmd_read(int argc, char **argv)
{
	size_t size;
	int fd = open_file(argv[2], &size);
	int flags = MAP_SHARED, willneed = 0, pwillneed = 0, lock = 0, use64 = 0, keep = 0;
	for (int i = 3; i < argc; i++) {
		if (!strcmp(argv[i], "mmap64"))
			use64 = 1;
		else if (!strcmp(argv[i], "pwillneed"))
			pwillneed = 1;
		else if (!strcmp(argv[i], "keep"))
			keep = 1;
		else if (!strcmp(argv[i], "private"))
			flags = (flags & ~MAP_SHARED) | MAP_PRIVATE;
		else if (!strcmp(argv[i], "populate"))
			flags |= MAP_POPULATE;
		else if (!strcmp(argv[i], "willneed"))
			willneed = 1;
		else if (!strcmp(argv[i], "mlock"))
			lock = 1;
		else if (!strcmp(argv[i], "at_secure"))
			printf("at_secure: %lu\n", getauxval(AT_SECURE));
	}
	uint8_t *p = use64 ? mmap64(NULL, size, PROT_READ, flags, fd, 0) : map(fd, size, PROT_READ, flags, 0);
	if (p == MAP_FAILED) {
		printf("mmap64: failed: %s\n", strerror(errno));
		return 3;
	}
	printf("map: %s\n", who_maps(p));
	if (willneed)
		printf("madvise willneed: %d\n", madvise(p, size, MADV_WILLNEED));
	if (pwillneed)
		printf("posix_madvise willneed: %d\n", posix_madvise(p, size, POSIX_MADV_WILLNEED));
	if (lock)
		printf("mlock: %d\n", mlock(p, size));
	printf("resident after mapping: %zu of %zu pages\n", resident(p, size), pages(size));
	say_bytes("bytes", fd, p, 0, size);
	say_bytes("bytes again", fd, p, 0, size);
	if (keep)
		return 0; /* still mapped at exit */
	printf("munmap: %d\n", munmap(p, size));
	printf("free after munmap: %s\n", is_free(p, size));
	return 0;
}

static int cmd_notake(int argc, char **argv)
{
	size_t size;
	int fd = open_file(argv[2], &size);
	/* Writable and private: the program's own copy, which it may write. */
	uint8_t *p = map(fd, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, 0);
	printf("writable: %s\n", who_maps(p));
	say_bytes("writable bytes", fd, p, 0, size);
	uint8_t was = p[10], now = (uint8_t)(was + 1);
	p[10] = now;
	printf("writable write: %s\n", p[10] == now ? "kept" : "lost");
	say_bytes("file after the write", fd, p, 11, size);
	munmap(p, size);
	/* Part of the file: the first pages only. */
	size_t part = size > 2 * PAGE ? size - PAGE - 100 : size / 2;
	p = map(fd, part, PROT_READ, MAP_SHARED, 0);
	printf("partial: %s\n", who_maps(p));
	say_bytes("partial bytes", fd, p, 0, part);
	munmap(p, part);
	/* From an offset. */
	if (size > PAGE) {
		p = map(fd, size - PAGE, PROT_READ, MAP_SHARED, PAGE);
		printf("offset: %s\n", who_maps(p));
		size_t d = first_diff(fd, p - PAGE, PAGE, size);
		printf("offset bytes: %s\n", d == size ? "equal" : "differ");
		munmap(p, size - PAGE);
	}
	/* Executable. */
	p = map(fd, size, PROT_READ | PROT_EXEC, MAP_PRIVATE, 0);
	printf("exec: %s\n", who_maps(p));
	munmap(p, size);
	/* Read-only and whole: whatever the library does with it. */
	p = map(fd, size, PROT_READ, MAP_SHARED, 0);
	say_bytes("read-only bytes", fd, p, 0, size);
	munmap(p, size);
	return 0;
}

static int cmd_llama(int argc, char **argv)
{
	size_t size;
	int fd = open_file(argv[2], &size);
	size_t head = (size_t)strtoul(argv[3], NULL, 10) / PAGE * PAGE;
	posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	uint8_t *p = map(fd, size, PROT_READ, MAP_SHARED | MAP_POPULATE, 0);
	close(fd);
	fd = open_file(argv[2], &size);
	printf("map: %s\n", who_maps(p));
	printf("madvise willneed: %d\n", madvise(p, size, MADV_WILLNEED)); /* length not rounded */
	say_bytes("bytes", fd, p, 0, size);
	printf("munmap head: %d\n", munmap(p, head));
	printf("head free: %s\n", is_free(p, head));
	size_t last = (size - 1) / PAGE * PAGE;
	printf("munmap last page: %d\n", munmap(p + last, size - last));
	printf("last page free: %s\n", is_free(p + last, size - last));
	say_bytes("bytes between", fd, p, head, last);
	say_bytes("bytes between again", fd, p, head, last);
	printf("munmap the rest: %d\n", munmap(p + head, last - head + 1)); /* unaligned, as llama.cpp's */
	printf("rest free: %s\n", is_free(p + head, last - head));
	return 0;
}

static int cmd_advice(int argc, char **argv)
{
	size_t size;
	int fd = open_file(argv[2], &size);
	uint8_t *p = map(fd, size, PROT_READ, MAP_SHARED, 0);
	printf("map: %s\n", who_maps(p));
	const struct {
		const char *name;
		int advice;
	} adv[] = {{"normal", MADV_NORMAL},   {"random", MADV_RANDOM},     {"sequential", MADV_SEQUENTIAL},
	           {"willneed", MADV_WILLNEED}, {"dontneed", MADV_DONTNEED}, {"cold", MADV_COLD},
	           {"pageout", MADV_PAGEOUT}, {"hugepage", MADV_HUGEPAGE}, {"dontdump", MADV_DONTDUMP}};
	for (size_t i = 0; i < sizeof adv / sizeof adv[0]; i++) {
		int rc = madvise(p, size, adv[i].advice);
		printf("madvise %s: %d\n", adv[i].name, rc);
		say_bytes("  bytes", fd, p, 0, size);
	}
	printf("posix_madvise willneed: %d\n", posix_madvise(p, size, POSIX_MADV_WILLNEED));
	printf("posix_madvise dontneed: %d\n", posix_madvise(p, size, POSIX_MADV_DONTNEED));
	printf("mlock: %d\n", mlock(p + 1, size - 1));
	printf("mlock2 onfault: %d\n", mlock2(p, size, MLOCK_ONFAULT));
	say_bytes("bytes after mlock", fd, p, 0, size);
	printf("munlock: %d\n", munlock(p, size));
	printf("mprotect read: %d\n", mprotect(p, size, PROT_READ));
	errno = 0;
	int rc = mprotect(p, size, PROT_READ | PROT_WRITE);
	printf("mprotect write: %d %s\n", rc, rc ? strerror(errno) : "");
	void *q = mremap(p, size, size * 2, MREMAP_MAYMOVE);
	printf("mremap: %s\n", q == MAP_FAILED ? strerror(errno) : "moved");
	if (q != MAP_FAILED)
		p = q;
	say_bytes("bytes at the end", fd, p, 0, size);
	printf("munmap: %d\n", munmap(p, q != MAP_FAILED ? size * 2 : size));
	return 0;
}

static int cmd_mlockall(int argc, char **argv)
{
	size_t size;
	int fd = open_file(argv[2], &size);
	uint8_t *p = map(fd, size, PROT_READ, MAP_SHARED, 0);
	printf("map: %s\n", who_maps(p));
	printf("mlockall current: %d\n", mlockall(MCL_CURRENT));
	printf("resident after mlockall: %zu of %zu pages\n", resident(p, size), pages(size));
	say_bytes("bytes after mlockall", fd, p, 0, size);
	printf("munmap: %d\n", munmap(p, size));
	printf("mlockall future: %d\n", mlockall(MCL_FUTURE));
	p = map(fd, size, PROT_READ, MAP_SHARED, 0);
	printf("map: under mlockall future: %s\n", who_maps(p));
	say_bytes("bytes under mlockall future", fd, p, 0, size);
	munmap(p, size);
	printf("munlockall: %d\n", munlockall());
	p = map(fd, size, PROT_READ, MAP_SHARED, 0);
	printf("map: after munlockall: %s\n", who_maps(p));
	say_bytes("bytes after munlockall", fd, p, 0, size);
	munmap(p, size);
	return 0;
}

struct thread_arg {
	const char *path;
	int ok;
};

static void *map_and_read(void *arg)
{
	struct thread_arg *a = arg;
	size_t size;
	int fd = open_file(a->path, &size);
	uint8_t *p = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
	a->ok = p != MAP_FAILED && first_diff(fd, p, 0, size) == size && !munmap(p, size);
	close(fd);
	return NULL;
}

static int cmd_threads(int argc, char **argv)
{
	int n = atoi(argv[3]);
	pthread_t t[64];
	struct thread_arg a[64];
	for (int i = 0; i < n && i < 64; i++) {
		a[i] = (struct thread_arg){argv[2], 0};
		pthread_create(&t[i], NULL, map_and_read, &a[i]);
	}
	int ok = 0;
	for (int i = 0; i < n && i < 64; i++) {
		pthread_join(t[i], NULL);
		ok += a[i].ok;
	}
	printf("threads: %d of %d read equal bytes\n", ok, n);
	return 0;
}

static int cmd_models(int argc, char **argv)
{
	int n = argc - 2;
	uint8_t *p[16];
	size_t size[16];
	int fd[16];
	for (int i = 0; i < n && i < 16; i++) {
		fd[i] = open_file(argv[2 + i], &size[i]);
		p[i] = map(fd[i], size[i], PROT_READ, MAP_SHARED, 0);
		printf("model %d: %s\n", i, who_maps(p[i]));
	}
	/* In turn, a slice of each, as a draft and a target model are read. */
	int bad = 0;
	for (size_t off = 0; off < 64u << 20; off += 256u << 10)
		for (int i = 0; i < n && i < 16; i++)
			if (off < size[i]) {
				size_t hi = off + (256u << 10) < size[i] ? off + (256u << 10) : size[i];
				bad += first_diff(fd[i], p[i], off, hi) != hi;
			}
	printf("models: %s\n", bad ? "differ" : "equal");
	for (int i = 0; i < n && i < 16; i++)
		munmap(p[i], size[i]);
	return 0;
}

static int cmd_fork(int argc, char **argv)
{
	size_t size;
	int fd = open_file(argv[2], &size);
	uint8_t *p = map(fd, size, PROT_READ, MAP_SHARED, 0);
	printf("map: %s\n", who_maps(p));
	say_bytes("parent bytes before", fd, p, 0, size / 2);
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		alarm(30);
		size_t d = first_diff(fd, p, 0, size);
		printf("child bytes: %s\n", d == size ? "equal" : "differ");
		printf("child munmap: %d\n", munmap(p, size));
		fflush(stdout);
		_exit(0);
	}
	int status;
	waitpid(pid, &status, 0);
	if (WIFSIGNALED(status))
		printf("child: killed by signal %d\n", WTERMSIG(status));
	else
		printf("child: exit %d\n", WEXITSTATUS(status));
	say_bytes("parent bytes after", fd, p, 0, size);
	printf("munmap: %d\n", munmap(p, size));
	return 0;
}

struct busy {
	const char *path;
	const uint8_t *p;
	size_t size;
	int fd;
	atomic_int *stop;
	long rounds, bad;
};

/* Read the mapping slice by slice, over and over, against the file. */
static void *busy_reader(void *arg)
{
	struct busy *b = arg;
	size_t slice = 64u << 10, n = (b->size + slice - 1) / slice;
	for (size_t k = (size_t)b->rounds * 7919; !atomic_load(b->stop); k += 7919, b->rounds++) {
		size_t lo = k % n * slice, hi = lo + slice < b->size ? lo + slice : b->size;
		b->bad += first_diff(b->fd, b->p, lo, hi) != hi;
	}
	return NULL;
}

/* Map the file again and again (each a region of its own), read a little
 * of it and unmap it. */
static void *busy_mapper(void *arg)
{
	struct busy *b = arg;
	while (!atomic_load(b->stop)) {
		uint8_t *q = mmap(NULL, b->size, PROT_READ, MAP_SHARED, b->fd, 0);
		if (q == MAP_FAILED) {
			b->bad++;
			continue;
		}
		size_t hi = b->size < (256u << 10) ? b->size : 256u << 10;
		b->bad += first_diff(b->fd, q, 0, hi) != hi;
		b->bad += munmap(q, b->size) != 0;
		b->rounds++;
	}
	return NULL;
}

static int cmd_forkbusy(int argc, char **argv)
{
	size_t size;
	int fd = open_file(argv[2], &size), n = atoi(argv[3]);
	uint8_t *p = map(fd, size, PROT_READ, MAP_SHARED, 0);
	printf("map: %s\n", who_maps(p));
	atomic_int stop = 0;
	pthread_t t[34];
	struct busy b[34];
	n = n < 1 ? 1 : n > 32 ? 32 : n;
	for (int i = 0; i < n + 2; i++) {
		b[i] = (struct busy){argv[2], p, size, fd, &stop, i, 0};
		pthread_create(&t[i], NULL, i < n ? busy_reader : busy_mapper, &b[i]);
	}
	int children = 8, ok = 0;
	for (int c = 0; c < children; c++) {
		usleep(20000);
		fflush(stdout);
		pid_t pid = fork();
		if (pid == 0) {
			alarm(30);
			_exit(first_diff(fd, p, 0, size) == size && !munmap(p, size) ? 0 : 1);
		}
		int status;
		if (pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) && !WEXITSTATUS(status))
			ok++;
	}
	atomic_store(&stop, 1);
	long bad = 0, reads = 0, maps = 0;
	for (int i = 0; i < n + 2; i++) {
		pthread_join(t[i], NULL);
		bad += b[i].bad;
		if (i < n)
			reads += b[i].rounds;
		else
			maps += b[i].rounds;
	}
	printf("forkbusy children: %d of %d read equal bytes\n", ok, children);
	printf("forkbusy threads: %s\n", bad ? "differ" : "equal");
	printf("forkbusy work: %s\n", reads > 0 && maps > 0 ? "done" : "none");
	say_bytes("parent bytes after", fd, p, 0, size);
	printf("munmap: %d\n", munmap(p, size));
	return 0;
}

static int cmd_twice(int argc, char **argv)
{
	size_t size;
	int fd = open_file(argv[2], &size);
	uint8_t *a = map(fd, size, PROT_READ, MAP_SHARED, 0), *b = map(fd, size, PROT_READ, MAP_PRIVATE, 0);
	printf("first: %s, second: %s, %s\n", who_maps(a), who_maps(b), a == b ? "same" : "apart");
	say_bytes("first bytes", fd, a, 0, size);
	say_bytes("second bytes", fd, b, 0, size);
	munmap(a, size);
	say_bytes("second bytes after the first went", fd, b, 0, size);
	munmap(b, size);
	return 0;
}

/* As on a kernel without userfaultfd: the system call fails with ENOSYS,
 * and so does /dev/userfaultfd's ioctl that makes one. */
static int no_userfaultfd(void)
{
#ifdef PROBE_AUDIT_ARCH
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, PROBE_AUDIT_ARCH, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_userfaultfd, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_ioctl, 0, 3),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[1])),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, USERFAULTFD_IOC_NEW, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOTTY),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = {.len = sizeof f / sizeof f[0], .filter = f};
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog))
		return -1;
	errno = 0;
	return syscall(SYS_userfaultfd, O_CLOEXEC) == -1 && errno == ENOSYS ? 0 : -1;
#else
	return -1;
#endif
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc > 1 && !strcmp(argv[1], "nouffd")) {
		if (no_userfaultfd()) {
			fprintf(stderr, "map_probe: cannot switch userfaultfd off: %s\n", strerror(errno));
			return 2;
		}
		printf("userfaultfd: off\n");
		argv++;
		argc--;
	}
	if (argc < 3) {
		fprintf(stderr, "usage: map_probe [nouffd] read|notake|llama|advice|mlockall|threads|models|fork|forkbusy|twice FILE ...\n");
		return 2;
	}
	const char *c = argv[1];
	if (!strcmp(c, "read"))
		return cmd_read(argc, argv);
	if (!strcmp(c, "notake"))
		return cmd_notake(argc, argv);
	if (!strcmp(c, "llama") && argc > 3)
		return cmd_llama(argc, argv);
	if (!strcmp(c, "advice"))
		return cmd_advice(argc, argv);
	if (!strcmp(c, "threads") && argc > 3)
		return cmd_threads(argc, argv);
	if (!strcmp(c, "models"))
		return cmd_models(argc, argv);
	if (!strcmp(c, "fork"))
		return cmd_fork(argc, argv);
	if (!strcmp(c, "mlockall"))
		return cmd_mlockall(argc, argv);
	if (!strcmp(c, "forkbusy") && argc > 3)
		return cmd_forkbusy(argc, argv);
	if (!strcmp(c, "twice"))
		return cmd_twice(argc, argv);
	fprintf(stderr, "map_probe: unknown command %s\n", c);
	return 2;
}
