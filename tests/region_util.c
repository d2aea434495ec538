#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <signal.h>
#include <unistd.h>

#include "region_util.h"

static uint64_t next(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

uint8_t *ru_data(size_t len, uint64_t seed)
{
	uint8_t *p = malloc(len ? len : 1);
	uint64_t x = 0x2545F4914F6CDD1Dull ^ (seed * 0x9E3779B97F4A7C15ull);
	size_t i = 0;
	while (i < len) {
		size_t run = 1 + next(&x) % 20000;
		int kind = (int)(next(&x) % 3);
		uint64_t pat = next(&x);
		for (size_t k = 0; k < run && i < len; k++, i++)
			p[i] = kind == 0 ? (uint8_t)next(&x) : kind == 1 ? (uint8_t)(pat >> (8 * (k % 5))) : 0;
	}
	return p;
}

static char tmpdir[256];

static void remove_tmpdir(void)
{
	rmdir(tmpdir);
}

const char *ru_tmpdir(void)
{
	if (!tmpdir[0]) {
		snprintf(tmpdir, sizeof tmpdir, "/var/tmp/flexpage-test-%d", (int)getpid());
		mkdir(tmpdir, 0755);
		chmod(tmpdir, 0755);
		atexit(remove_tmpdir);
	}
	return tmpdir;
}

void ru_write_image(const char *path, const uint8_t *data, size_t len, uint32_t chunk,
                    uint32_t codec)
{
	struct fp_writer_options wo = {.chunk_size = chunk, .codec = codec};
	fp_writer *w = fp_writer_create(path, &wo);
	uint64_t shape[1] = {len};
	if (!w || fp_writer_begin_tensor(w, "data", FP_TYPE_U8, 1, shape) ||
	    fp_writer_write(w, data, len) || fp_writer_end_tensor(w) || fp_writer_finish(w)) {
		fprintf(stderr, "cannot write %s: %s\n", path, fp_last_error());
		abort();
	}
}

struct fp_options ru_options(uint64_t budget)
{
	return (struct fp_options){.budget = budget, .retries = -1, .readahead = -1};
}

uint64_t ru_resident_pages(const void *base, uint64_t len)
{
	size_t pages = (size_t)((len + 4095) / 4096);
	unsigned char *vec = malloc(pages);
	uint64_t n = 0;
	if (vec && !mincore((void *)base, len, vec))
		for (size_t i = 0; i < pages; i++)
			n += vec[i] & 1;
	free(vec);
	return n;
}

void ru_flip_byte(const char *path, uint64_t offset)
{
	int fd = open(path, O_RDWR);
	uint8_t b;
	if (fd < 0 || pread(fd, &b, 1, (off_t)offset) != 1)
		abort();
	b ^= 0x5a;
	if (pwrite(fd, &b, 1, (off_t)offset) != 1)
		abort();
	fsync(fd);
	close(fd);
}

int ru_count_dir(const char *path)
{
	DIR *d = opendir(path);
	int n = 0;
	struct dirent *e;
	while (d && (e = readdir(d)))
		n += e->d_name[0] != '.';
	if (d)
		closedir(d);
	return n - (strstr(path, "/fd") ? 1 : 0); /* opendir's own descriptor */
}

int ru_kernel_has_move(void)
{
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC);
	if (fd < 0)
		return 0;
	struct uffdio_api api = {.api = UFFD_API};
	int ok = !ioctl(fd, UFFDIO_API, &api) && (api.features & (1ull << 16));
	close(fd);
	return ok;
}

void ru_drop_caches(void)
{
	sync();
	int fd = open("/proc/sys/vm/drop_caches", O_WRONLY);
	if (fd >= 0) {
		if (write(fd, "3", 1) != 1)
			perror("drop_caches");
		close(fd);
	}
}

int ru_blk_layer(const struct fp_tensor_desc *t, int *attention, void *ctx)
{
	(void)ctx;
	unsigned layer;
	int used = 0;
	if (sscanf(t->name, "blk.%u.%n", &layer, &used) != 1 || !used)
		return -1;
	*attention = !strncmp(t->name + used, "attn_", 5);
	return (int)layer;
}

static int memory_cgroup_dir(char *out, size_t n)
{
	FILE *f = fopen("/proc/self/cgroup", "r");
	char line[512];
	int found = 0;
	while (f && fgets(line, sizeof line, f)) {
		char *p = strstr(line, ":memory:");
		if (!p)
			continue;
		p += strlen(":memory:");
		p[strcspn(p, "\n")] = 0;
		snprintf(out, n, "/sys/fs/cgroup/memory%s", p);
		found = 1;
	}
	if (f)
		fclose(f);
	return found ? 0 : -1;
}

int ru_cgroup_available(char *why, size_t n)
{
	char dir[400], file[512];
	if (geteuid() != 0) {
		snprintf(why, n, "needs root to create a memory cgroup");
		return 0;
	}
	if (memory_cgroup_dir(dir, sizeof dir)) {
		snprintf(why, n, "no cgroup v1 memory controller in /proc/self/cgroup");
		return 0;
	}
	snprintf(file, sizeof file, "%s/memory.limit_in_bytes", dir);
	if (access(file, W_OK)) {
		snprintf(why, n, "%s is not writable", file);
		return 0;
	}
	return 1;
}

static int write_file(const char *dir, const char *name, const char *val)
{
	char file[600];
	snprintf(file, sizeof file, "%s/%s", dir, name);
	int fd = open(file, O_WRONLY);
	if (fd < 0)
		return -1;
	ssize_t w = write(fd, val, strlen(val));
	close(fd);
	return w == (ssize_t)strlen(val) ? 0 : -1;
}

int ru_cgroup_create(char *path, size_t n, uint64_t limit)
{
	static int seq;
	char dir[400], val[32];
	if (memory_cgroup_dir(dir, sizeof dir))
		return -1;
	snprintf(path, n, "%s/flexpage-test-%d-%d", dir, (int)getpid(), seq++);
	if (mkdir(path, 0755))
		return -1;
	snprintf(val, sizeof val, "%llu", (unsigned long long)limit);
	return write_file(path, "memory.limit_in_bytes", val);
}

int ru_cgroup_join(const char *path)
{
	char val[32];
	snprintf(val, sizeof val, "%d", (int)getpid());
	return write_file(path, "cgroup.procs", val);
}

uint64_t ru_cgroup_max_usage(const char *path)
{
	char file[600];
	unsigned long long v = 0;
	snprintf(file, sizeof file, "%s/memory.max_usage_in_bytes", path);
	FILE *f = fopen(file, "r");
	if (f) {
		if (fscanf(f, "%llu", &v) != 1)
			v = 0;
		fclose(f);
	}
	return v;
}

void ru_cgroup_remove(const char *path)
{
	rmdir(path);
}

/* Readers of a region, each checking what it reads against ref. */
struct scan_args {
	const uint8_t *base, *ref;
	size_t len;
	uint64_t seed;
	int random, reads;
	atomic_int *bad;
};

static void *scan(void *arg)
{
	struct scan_args *a = arg;
	uint64_t x = a->seed | 1;
	if (!a->random) {
		if (memcmp(a->base, a->ref, a->len))
			atomic_fetch_add(a->bad, 1);
		return NULL;
	}
	for (int i = 0; i < a->reads; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		size_t off = x % a->len, n = 4096;
		if (off + n > a->len)
			n = a->len - off;
		if (memcmp(a->base + off, a->ref + off, n))
			atomic_fetch_add(a->bad, 1);
	}
	return NULL;
}

/* Read region r with `threads` threads at once (thread 0 scans in order,
 * the others at random) and return how many reads differed from ref. */
int ru_read_concurrently(fp_region *r, const uint8_t *ref, size_t len, int threads, int reads)
{
	pthread_t t[16];
	struct scan_args a[16];
	atomic_int bad = 0;
	const uint8_t *base = fp_tensor(r, "data", NULL);
	for (int i = 0; i < threads; i++) {
		a[i] = (struct scan_args){base, ref, len, 0x9e3779b97f4a7c15ull * (uint64_t)(i + 1),
		                          i > 0, reads, &bad};
		pthread_create(&t[i], NULL, scan, &a[i]);
	}
	for (int i = 0; i < threads; i++)
		pthread_join(t[i], NULL);
	return bad;
}

/* ---- a region read in a child, with the fault reporter ---- */

static void app_on_sigbus(int sig, siginfo_t *si, void *uc)
{
	(void)sig, (void)si, (void)uc;
	static const char msg[] = "the application's own SIGBUS handler ran\n";
	ssize_t w = write(2, msg, sizeof msg - 1);
	(void)w;
	_exit(42);
}

int ru_read_in_child(const char *path, const struct fp_options *o, const uint8_t *ref,
                     size_t len, const struct ru_child_setup *cs, char *err, size_t errlen)
{
	const struct ru_child_setup none = {0};
	if (!cs)
		cs = &none;
	int pfd[2];
	if (pipe(pfd))
		return -1;
	pid_t pid = fork();
	if (pid < 0) {
		close(pfd[0]);
		close(pfd[1]);
		return -1;
	}
	if (pid == 0) {
		dup2(pfd[1], 2);
		close(pfd[0]);
		/* The handler the reporter finds before it: the application's,
		 * or the default (also under ASan, which has one of its own). */
		struct sigaction sa = {.sa_handler = SIG_DFL};
		if (cs->app_handler) {
			sa.sa_sigaction = app_on_sigbus;
			sa.sa_flags = SA_SIGINFO;
		}
		sigemptyset(&sa.sa_mask);
		sigaction(SIGBUS, &sa, NULL);
		signal(SIGSEGV, SIG_DFL);
		if (fp_install_fault_reporter())
			_exit(22);
		struct fp_options one = ru_options(0);
		one.loaders = 1;
		one.readahead = 0;
		for (int i = 0; i < cs->extra_regions; i++)
			if (!fp_open(cs->extra_path, &one)) {
				fprintf(stderr, "open %d: %s\n", i, fp_last_error());
				_exit(23);
			}
		fp_region *r = fp_open(path, o);
		if (!r) {
			fprintf(stderr, "open: %s\n", fp_last_error());
			_exit(20);
		}
		const uint8_t *base = fp_tensor(r, "data", NULL);
		_exit(memcmp(base, ref, len) ? 21 : 0);
	}
	close(pfd[1]);
	size_t got = 0;
	ssize_t n;
	while (got + 1 < errlen && (n = read(pfd[0], err + got, errlen - 1 - got)) > 0)
		got += (size_t)n;
	err[got] = 0;
	close(pfd[0]);
	int status;
	waitpid(pid, &status, 0);
	return status;
}

/* ---- children as fresh processes ---- */

/* argv[0] of a child: what tells run_child (before main) to run one. */
#define CHILD_MARK "flexpage-test-child"
#define MAX_CHILDREN 16

static struct {
	const char *name;
	ru_child_main fn;
} children[MAX_CHILDREN];
static int n_children;

void ru_child_register(const char *name, ru_child_main fn)
{
	if (n_children == MAX_CHILDREN)
		abort();
	children[n_children].name = name;
	children[n_children++].fn = fn;
}

/* After every RU_CHILD registration (priority 101), before Criterion's
 * main.  _exit: the test framework's exit handlers are not the child's. */
__attribute__((constructor(102))) static void run_child(int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[0], CHILD_MARK))
		return;
	for (int i = 0; i < n_children; i++)
		if (!strcmp(children[i].name, argv[1])) {
			int rc = children[i].fn(argc - 2, argv + 2);
			fflush(NULL);
			_exit(rc);
		}
	fprintf(stderr, "no child function %s in this program\n", argv[1]);
	_exit(127);
}

int ru_run_child(const char *name, const char *const *args)
{
	const char *argv[32] = {CHILD_MARK, name};
	int n = 2;
	for (; args && args[n - 2] && n < 31; n++)
		argv[n] = args[n - 2];
	argv[n] = NULL;
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		execv("/proc/self/exe", (char *const *)argv);
		_exit(126);
	}
	int status;
	if (waitpid(pid, &status, 0) != pid)
		return -1;
	return status;
}
