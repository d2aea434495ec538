/* The SIGBUS reporter: names the image, tensor and chunk of an access to
 * poisoned data (poison.c), and why it was poisoned. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"

#define MAX_REGIONS 256
/* Read by the signal handler without locks: slots only go NULL <-> region. */
static fp_region *_Atomic regions[MAX_REGIONS];

void pg_reporter_add(fp_region *r)
{
	for (int i = 0; i < MAX_REGIONS; i++) {
		fp_region *expect = NULL;
		if (atomic_compare_exchange_strong(&regions[i], &expect, r))
			return;
	}
}

void pg_reporter_remove(fp_region *r)
{
	for (int i = 0; i < MAX_REGIONS; i++) {
		fp_region *expect = r;
		if (atomic_compare_exchange_strong(&regions[i], &expect, NULL))
			return;
	}
}

static int describe(fp_region *r, uint64_t addr, char *buf, size_t n)
{
	uint64_t off = addr - (uintptr_t)r->base;
	uint32_t c = (uint32_t)(off / r->chunk_size);
	const char *why = pg_poison_reason(r, c);
	if (!why)
		return -1;
	const struct fp_tensor_desc *t = fp_image_tensor_at(r->img, off);
	snprintf(buf, n, "flexpage: access to poisoned data at %p: image %s, tensor '%s', "
	                 "chunk %u (logical offset %llu): %s\n",
	         (void *)(uintptr_t)addr, r->img->path, t ? t->name : "(padding)", c,
	         (unsigned long long)off, why);
	return 0;
}

int fp_describe_poison(const void *addr, char *buf, size_t n)
{
	uint64_t a = (uintptr_t)addr;
	for (int i = 0; i < MAX_REGIONS; i++) {
		fp_region *r = atomic_load(&regions[i]);
		if (r && a >= (uintptr_t)r->base && a < (uintptr_t)r->base + r->size)
			return describe(r, a, buf, n);
	}
	return -1;
}

static void on_fault(int sig, siginfo_t *si, void *uc)
{
	char msg[1024];
	if (!fp_describe_poison(si->si_addr, msg, sizeof msg)) {
		ssize_t w = write(STDERR_FILENO, msg, strlen(msg));
		(void)w;
	}
	/* Returning re-runs the access under the default action: the process
	 * dies of the signal, as it would without flexpage. */
	signal(sig, SIG_DFL);
}

void fp_install_fault_reporter(void)
{
	struct sigaction sa = {.sa_sigaction = on_fault, .sa_flags = SA_SIGINFO | SA_RESETHAND};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, NULL);
	sigaction(SIGSEGV, &sa, NULL);
}
