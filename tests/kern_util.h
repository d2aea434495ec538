/* Helpers of the kernel suites (test_kernels, test_kernels_f16): a
 * deterministic random stream, float bits, the kernel paths this CPU has,
 * and the canonical fold of 16 sums written from docs/runtime.md. */
#ifndef FLEXPAGE_TEST_KERN_UTIL_H
#define FLEXPAGE_TEST_KERN_UTIL_H

#include <flexkern/kernels.h>

#include <math.h>
#include <stdint.h>
#include <string.h>

static uint64_t rng = 0x1234567887654321ull;

static inline uint64_t next_u64(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static inline double uniform(void)
{
	return (double)(next_u64() >> 11) * 0x1p-53;
}

/* Gaussian with a few outliers, like trained weights. */
static inline float gauss(void)
{
	double u1 = uniform(), u2 = uniform();
	if (u1 < 1e-300)
		u1 = 1e-300;
	double g = sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
	if ((next_u64() & 63) == 0)
		g *= 6.0;
	return (float)g;
}

static inline uint32_t bits(float f)
{
	uint32_t u;
	memcpy(&u, &f, 4);
	return u;
}

static inline float from_bits(uint32_t u)
{
	float f;
	memcpy(&f, &u, 4);
	return f;
}

static int isas[3];
static int n_isas;

static inline void find_isas(void)
{
	n_isas = 0;
	for (int i = FK_ISA_SCALAR; i <= FK_ISA_AVX512; i++)
		if (fk_isa_supported(i))
			isas[n_isas++] = i;
}

/* The 16 sums fold in halves: 16 -> 8 -> 4 -> 2 -> 1. */
static inline float fold16(const float a[16])
{
	float v[16];
	memcpy(v, a, sizeof v);
	for (int w = 8; w >= 1; w /= 2)
		for (int l = 0; l < w; l++)
			v[l] = v[l] + v[l + w];
	return v[0];
}

#endif
