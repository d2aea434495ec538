/* Run-time choice of the kernels' instruction set.  The SIMD files are
 * built with their own flags, so this file (built for the baseline x86-64)
 * is the only gate: nothing of them runs unless the CPU has what they use. */
#include "internal.h"

#include <cpuid.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static const struct fk_impl *const impls[] = {
	[FK_ISA_SCALAR] = &fk_impl_scalar,
	[FK_ISA_AVX2] = &fk_impl_avx2,
	[FK_ISA_AVX512] = &fk_impl_avx512,
};

static const char *const names[] = {
	[FK_ISA_SCALAR] = "scalar",
	[FK_ISA_AVX2] = "avx2",
	[FK_ISA_AVX512] = "avx512",
};

/* -1: not chosen yet. */
static _Atomic int current = -1;

const char *fk_isa_name(int isa)
{
	return isa >= 0 && isa <= FK_ISA_AVX512 ? names[isa] : NULL;
}

static int find(const char *name)
{
	for (int i = 0; i <= FK_ISA_AVX512; i++)
		if (name && !strcmp(name, names[i]))
			return i;
	return -1;
}

int fk_isa_parse(const char *name)
{
	const int isa = find(name);
	if (isa < 0)
		return fk_fail(EINVAL, "instruction set '%s' is not scalar, avx2 or avx512",
		               name ? name : "(null)");
	return isa;
}

/* F16C from CPUID itself: clang's __builtin_cpu_supports does not know it. */
static int has_f16c(void)
{
	unsigned a, b, c, d;
	return __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C);
}

int fk_isa_supported(int isa)
{
	__builtin_cpu_init();
	switch (isa) {
	case FK_ISA_SCALAR:
		return 1;
	case FK_ISA_AVX2:
		return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && has_f16c();
	case FK_ISA_AVX512:
		return fk_isa_supported(FK_ISA_AVX2) && __builtin_cpu_supports("avx512f") &&
		       __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
		       __builtin_cpu_supports("avx512vnni");
	}
	return 0;
}

static int best(void)
{
	const char *env = getenv("FLEXPAGE_KERNELS");
	int want = env && *env && strcmp(env, "auto") ? find(env) : -1;
	if (want >= 0 && fk_isa_supported(want))
		return want;
	/* an unknown or unsupported request falls back to the best there is:
	 * the kernels must never fault on an instruction */
	for (int i = FK_ISA_AVX512; i > FK_ISA_SCALAR; i--)
		if (fk_isa_supported(i))
			return i;
	return FK_ISA_SCALAR;
}

int fk_get_isa(void)
{
	int isa = atomic_load_explicit(&current, memory_order_relaxed);
	if (isa < 0) {
		isa = best();
		atomic_store_explicit(&current, isa, memory_order_relaxed);
	}
	return isa;
}

int fk_set_isa(int isa)
{
	if (!fk_isa_name(isa))
		return fk_fail(EINVAL, "instruction set %d is unknown", isa);
	if (!fk_isa_supported(isa))
		return fk_fail(ENOTSUP, "this CPU does not have %s", fk_isa_name(isa));
	atomic_store_explicit(&current, isa, memory_order_relaxed);
	return 0;
}

const struct fk_impl *fk_impl_current(void)
{
	return impls[fk_get_isa()];
}
