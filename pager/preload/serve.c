/* Serving a mapping: find its source, fit a budget and a plan, open the
 * region, give back the region's pages past the file (so that what is
 * mapped is exactly the file's pages, as with the kernel's mmap), and
 * record the mapping.  Anything that stops it is said once and the kernel
 * maps the file instead, unless FLEXPAGE_STRICT=1. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "preload.h"

atomic_int pl_mlockall_future;

static uint64_t pages_of(uint64_t bytes)
{
	return (bytes + PL_PAGE - 1) / PL_PAGE * PL_PAGE;
}

/* The file's path, for messages and for fp_open: its name if that still
 * names the same file, else the descriptor's entry in /proc. */
static void file_name(int fd, const struct stat *st, char *name, size_t n, char *open_path,
                      size_t on)
{
	char link[64];
	snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
	snprintf(open_path, on, "%s", link);
	ssize_t k = readlink(link, name, n - 1);
	if (k <= 0) {
		snprintf(name, n, "%s", link);
		return;
	}
	name[k] = 0;
	struct stat now;
	if (!stat(name, &now) && now.st_dev == st->st_dev && now.st_ino == st->st_ino)
		snprintf(open_path, on, "%s", name);
}

static void *refuse(const struct stat *st, const char *name, int err, const char *why)
{
	int strict = pl_config()->strict;
	pl_refuse(st->st_dev, st->st_ino, "%s: not served (%s); %s", name, why,
	          strict ? "FLEXPAGE_STRICT=1: the mmap fails" : "mapped by the kernel instead");
	if (!strict)
		return NULL;
	errno = err;
	return MAP_FAILED;
}

/* A byte budget of the file's size holds the whole file: the mapping is
 * the file's pages, and a budget a few bytes short of them would leave
 * the plan's stream reserve (16 chunks) out of the preserved set. */
/* The rates the plan and the choice of stored forms are made at: those
 * given (FLEXPAGE_READ_RATE, FLEXPAGE_DECODE_RATE), the others measured
 * once here when they matter (an image with compressed chunks or two forms
 * of some), so that the plan and fp_open's choice of forms agree. */
static void probe_rates(const fp_image *img, struct fp_options *o)
{
	const struct fp_image_info *info = fp_image_info(img);
	unsigned want = (o->read_rate > 0 ? 0 : FP_RATE_READ) |
	                (o->decode_rate > 0 ? 0 : FP_RATE_DECODE);
	struct fp_rates m;
	if (!want || (!info->n_alt_forms && info->stored_bytes >= info->data_bytes) ||
	    fp_image_probe_rates(img, want, &m))
		return; /* not needed, or fp_open meets the same trouble */
	if (m.measured & FP_RATE_READ)
		o->read_rate = m.read_bytes_per_s;
	if (m.measured & FP_RATE_DECODE)
		o->decode_rate = m.decode_bytes_per_s;
	pl_log(PL_LOG_INFO, "%s: rates measured: read %.0f MB/s, decode %.0f MB/s a core",
	       info->path, o->read_rate / 1e6, o->decode_rate / 1e6);
}

static uint64_t budget_for(const struct pl_config *c, uint64_t size)
{
	uint64_t whole = pages_of(size);
	if (c->budget_pct > 0)
		return (uint64_t)((double)whole * c->budget_pct / 100.0);
	return c->budget_bytes < size ? c->budget_bytes : whole;
}

static char *trace_path(const struct pl_config *c, char *buf, size_t n)
{
	static atomic_int traces;
	if (!c->trace)
		return NULL;
	int k = atomic_fetch_add(&traces, 1) + 1;
	if (k == 1)
		snprintf(buf, n, "%s", c->trace);
	else
		snprintf(buf, n, "%s.%d", c->trace, k);
	return buf;
}

static struct pl_served *record(fp_region *r, const char *name, int fd, int flags, size_t len,
                                uint64_t budget, uint64_t size)
{
	struct pl_served *s = calloc(1, sizeof *s);
	size_t pages = len / PL_PAGE;
	if (!s || !(s->live = calloc((pages + 63) / 64, sizeof *s->live)) || !(s->name = strdup(name))) {
		if (s)
			free(s->live);
		free(s);
		return NULL;
	}
	for (size_t p = 0; p < pages; p++)
		s->live[p / 64] |= 1ull << (p % 64);
	s->n_live = pages;
	s->base = (uintptr_t)fp_region_base(r);
	s->len = len;
	s->r = r;
	s->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	s->shared = (flags & MAP_TYPE) != MAP_PRIVATE;
	s->budget = budget;
	s->file_size = size;
	return s;
}

static void free_served(struct pl_served *s)
{
	if (s->fd >= 0)
		close(s->fd);
	free(s->live);
	free(s->name);
	free(s);
}

static const char *preserve_name(int p)
{
	return p == PL_PRESERVE_BALANCED ? "balanced" : p == PL_PRESERVE_FIRST ? "first" : "none";
}

void *pl_serve(size_t len, int flags, int fd, const struct stat *st)
{
	const struct pl_config *c = pl_config();
	char name[4096], open_path[4096], why[1024], trace[4200];
	file_name(fd, st, name, sizeof name, open_path, sizeof open_path);
	if (c->error[0]) {
		char magic[4];
		int gguf = pread(fd, magic, 4, 0) == 4 && !memcmp(magic, FP_GGUF_MAGIC, 4);
		if (!c->strict || !gguf)
			return NULL;
		errno = EINVAL;
		return MAP_FAILED;
	}
	struct pl_source *src = malloc(sizeof *src);
	if (!src)
		return NULL;
	pl_find_source(fd, st, open_path, src);
	void *ret = NULL;
	struct fp_plan plan = {0};
	if (src->kind == PL_NOT_MODEL)
		goto out;
	if (src->kind == PL_REFUSED) {
		ret = refuse(st, name, ENODEV, src->why);
		goto out;
	}
	if (atomic_load(&pl_mlockall_future)) {
		ret = refuse(st, name, ENODEV, "mlockall(MCL_FUTURE) is in effect: a new region would "
		                               "be locked and filled whole");
		goto out;
	}
	const struct fp_image_info *info = fp_image_info(src->img);
	uint64_t budget = budget_for(c, (uint64_t)st->st_size);
	uint64_t min = info->n_chunks > 1 ? 2ull * info->chunk_size : info->chunk_size;
	if (budget < min) {
		snprintf(why, sizeof why, "budget %llu bytes is below the minimum of %llu (two chunks of "
		         "%u; FLEXPAGE_CHUNK can make a GGUF's smaller)", (unsigned long long)budget,
		         (unsigned long long)min, info->chunk_size);
		ret = refuse(st, name, ENOMEM, why);
		goto out;
	}
	struct fp_options o = {
		.budget = budget,
		.loaders = c->loaders,
		.policy = c->policy,
		.retries = -1,
		.readahead = -1,
		.trace_path = trace_path(c, trace, sizeof trace),
		.chunk_size = c->chunk,
		.read_rate = c->read_rate,
		.decode_rate = c->decode_rate,
		.decoders = c->decoders,
	};
	probe_rates(src->img, &o);
	if (c->preserve != PL_PRESERVE_NONE && pl_plan(src->img, budget, c->preserve, &o, &plan)) {
		snprintf(why, sizeof why, "plan: %s", fp_last_error());
		ret = refuse(st, name, ENODEV, why);
		goto out;
	}
	o.preserve = plan.preserve;
	if (c->preserve == PL_PRESERVE_NONE)
		o.flags |= FP_OPEN_NO_PRESERVE; /* else fp_open plans on its own */
	/* The SIGBUS reporter names the tensor of a chunk that failed; it
	 * hands every other signal on to the program's own handlers. */
	fp_install_fault_reporter();
	fp_region *r = fp_open(src->path, &o);
	if (!r) {
		ret = refuse(st, name, ENODEV, fp_last_error());
		goto out;
	}
	/* The region ends on a chunk, the mapping on the file's last page. */
	size_t maplen = (size_t)pages_of(len);
	if (fp_region_size(r) > maplen)
		fp_region_unmap(r, maplen, fp_region_size(r) - maplen);
	struct pl_served *s = record(r, name, fd, flags, maplen, budget, (uint64_t)st->st_size);
	if (!s || pl_table_add(s)) {
		const char *whynot = s ? "too many models mapped at once" : "out of memory";
		fp_close(r);
		if (s)
			free_served(s);
		ret = refuse(st, name, ENOMEM, whynot);
		goto out;
	}
	pl_fork_init();
	pl_stats_start();
	pl_log(PL_LOG_INFO, "%s: served from %s: %llu bytes, budget %llu (%.0f%%), chunks of %u KiB, "
	       "preserve %s: %u chunks (%llu bytes)", name,
	       src->kind == PL_GGUF ? "the GGUF itself" : src->path, (unsigned long long)st->st_size,
	       (unsigned long long)budget, 100.0 * (double)budget / (double)pages_of(st->st_size),
	       info->chunk_size >> 10, preserve_name(c->preserve), plan.n_preserved,
	       (unsigned long long)plan.preserved_bytes);
	ret = (void *)s->base;
out:
	fp_plan_free(&plan);
	if (src->img)
		fp_image_close(src->img);
	free(src);
	return ret;
}

void pl_close(struct pl_served *s)
{
	if (pl_config()->stats)
		pl_stats_summary(s, "unmapped");
	pl_log(PL_LOG_DEBUG, "%s: closed", s->name);
	fp_close(s->r);
	free_served(s);
}
