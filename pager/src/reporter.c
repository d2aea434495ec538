/* The SIGBUS reporter: for an access to poisoned data (poison.c), names the
 * image, tensor and chunk, and why it was poisoned, then hands the signal
 * on to the handler the application had (or to the default action).
 *
 * The signal handler takes no lock and calls only async-signal-safe
 * functions: it walks a list of open regions that is only ever added to
 * (a closed region's node is reused by the next one opened), formats the
 * message by hand and writes it with write(2). */
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "error.h"
#include "internal.h"

struct node {
	struct node *next;           /* set before the node is published, never after */
	fp_region *_Atomic r;        /* NULL: free for the next region */
};

static struct node *_Atomic regions;

int pg_reporter_add(fp_region *r)
{
	for (struct node *n = atomic_load(&regions); n; n = n->next) {
		fp_region *none = NULL;
		if (atomic_compare_exchange_strong(&n->r, &none, r))
			return 0;
	}
	struct node *n = calloc(1, sizeof *n);
	if (!n)
		return pg_err(ENOMEM, "out of memory");
	atomic_store(&n->r, r);
	n->next = atomic_load(&regions);
	while (!atomic_compare_exchange_weak(&regions, &n->next, n))
		;
	return 0;
}

void pg_reporter_remove(fp_region *r)
{
	for (struct node *n = atomic_load(&regions); n; n = n->next) {
		fp_region *mine = r;
		if (atomic_compare_exchange_strong(&n->r, &mine, NULL))
			return;
	}
}

static fp_region *region_at(uintptr_t a)
{
	for (struct node *n = atomic_load(&regions); n; n = n->next) {
		fp_region *r = atomic_load(&n->r);
		if (r && a >= (uintptr_t)r->base && a < (uintptr_t)r->base + r->size &&
		    !pg_map_gone_at(r, a))
			return r;
	}
	return NULL;
}

/* A message built without snprintf (not async-signal-safe): text, decimal
 * and hex numbers, cut at the end of the buffer. */
struct text {
	char *p;
	size_t n, len;
};

static void put(struct text *t, const char *s)
{
	while (*s && t->len + 1 < t->n)
		t->p[t->len++] = *s++;
	t->p[t->len] = 0;
}

static void put_num(struct text *t, uint64_t v, unsigned base)
{
	char digits[24];
	int i = 0;
	do {
		digits[i++] = "0123456789abcdef"[v % base];
		v /= base;
	} while (v);
	char s[26] = {0}, *q = s;
	if (base == 16) {
		*q++ = '0';
		*q++ = 'x';
	}
	while (i)
		*q++ = digits[--i];
	put(t, s);
}

/* "flexpage: access to poisoned data at ADDR: image PATH, tensor 'NAME',
 * chunk C (logical offset OFF): REASON\n" */
static int describe(fp_region *r, uintptr_t addr, char *buf, size_t n)
{
	uint64_t off = addr - (uintptr_t)r->base;
	uint32_t c = (uint32_t)(off / r->chunk_size);
	const char *why = pg_poison_reason(r, c);
	if (!why)
		return -ENOENT;
	const struct fp_tensor_desc *tensor = fp_image_tensor_at(r->img, off);
	struct text t = {buf, n, 0};
	if (!n)
		return 0;
	buf[0] = 0;
	put(&t, "flexpage: access to poisoned data at ");
	put_num(&t, addr, 16);
	put(&t, ": image ");
	put(&t, r->img->path);
	put(&t, ", tensor '");
	put(&t, tensor ? tensor->name : "(padding)");
	put(&t, "', chunk ");
	put_num(&t, c, 10);
	put(&t, " (logical offset ");
	put_num(&t, off, 10);
	put(&t, "): ");
	put(&t, why);
	put(&t, "\n");
	return 0;
}

int fp_describe_poison(const void *addr, char *buf, size_t n)
{
	fp_region *r = region_at((uintptr_t)addr);
	return r ? describe(r, (uintptr_t)addr, buf, n) : -ENOENT;
}

/* The handlers the application had for SIGBUS and SIGSEGV (the latter is
 * what a poisoned chunk raises where the kernel has no UFFDIO_POISON). */
static struct sigaction previous[2];
static atomic_int installed;

static void on_fault(int sig, siginfo_t *si, void *uc)
{
	int saved = errno;
	char msg[1024];
	if (!fp_describe_poison(si->si_addr, msg, sizeof msg)) {
		ssize_t w = write(STDERR_FILENO, msg, strlen(msg));
		(void)w;
	}
	errno = saved;
	const struct sigaction *prev = &previous[sig == SIGSEGV];
	if (prev->sa_flags & SA_SIGINFO) {
		prev->sa_sigaction(sig, si, uc);
	} else if (prev->sa_handler != SIG_DFL && prev->sa_handler != SIG_IGN) {
		prev->sa_handler(sig);
	} else {
		/* Returning re-runs the access under the default action: the
		 * process dies of the signal, as it would without flexpage (a
		 * fault cannot be ignored). */
		struct sigaction dfl = {.sa_handler = SIG_DFL};
		sigemptyset(&dfl.sa_mask);
		sigaction(sig, &dfl, NULL);
	}
}

int fp_install_fault_reporter(void)
{
	if (atomic_exchange(&installed, 1))
		return 0; /* once: the previous handlers are the application's */
	struct sigaction sa = {.sa_sigaction = on_fault, .sa_flags = SA_SIGINFO};
	sigemptyset(&sa.sa_mask);
	int bus = sigaction(SIGBUS, &sa, &previous[0]);
	if (bus || sigaction(SIGSEGV, &sa, &previous[1])) {
		int e = pg_errno();
		if (!bus)
			sigaction(SIGBUS, &previous[0], NULL);
		atomic_store(&installed, 0);
		return pg_err(e, "cannot install the fault reporter: %s", strerror(e));
	}
	return 0;
}
