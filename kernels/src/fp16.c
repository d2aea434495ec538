/* IEEE binary16 <-> binary32, bit-exact with the F16C instructions, so
 * that scales decode the same on every path and every CPU. */
#include <flexkern/kernels.h>

#include <string.h>

static uint32_t f2u(float f)
{
	uint32_t u;
	memcpy(&u, &f, sizeof u);
	return u;
}

static float u2f(uint32_t u)
{
	float f;
	memcpy(&f, &u, sizeof f);
	return f;
}

float fk_fp16_to_fp32(uint16_t h)
{
	uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
	uint32_t exp = (h >> 10) & 0x1fu;
	uint32_t mant = h & 0x3ffu;

	if (exp == 0) {
		/* zero or subnormal: mant * 2^-24, exact in binary32 */
		float v = (float)mant * 0x1p-24f;
		return u2f(f2u(v) | sign);
	}
	if (exp == 31) /* infinity, or NaN made quiet as vcvtph2ps does */
		return u2f(sign | 0x7f800000u | (mant << 13) | (mant ? 0x400000u : 0));
	return u2f(sign | ((exp + 112) << 23) | (mant << 13));
}

/* Round m >> shift to nearest, ties to even. */
static uint32_t shift_rne(uint32_t m, unsigned shift)
{
	uint32_t r = m >> shift;
	uint32_t rem = m & ((1u << shift) - 1);
	uint32_t half = 1u << (shift - 1);
	if (rem > half || (rem == half && (r & 1)))
		r++;
	return r;
}

uint16_t fk_fp32_to_fp16(float f)
{
	uint32_t u = f2u(f);
	uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
	uint32_t a = u & 0x7fffffffu;

	if (a > 0x7f800000u) /* NaN: keep the top payload bits, quiet */
		return (uint16_t)(sign | 0x7e00u | ((a >> 13) & 0x3ffu));
	if (a >= 0x477ff000u) /* >= 65520 rounds to infinity */
		return (uint16_t)(sign | 0x7c00u);
	if (a < 0x38800000u) { /* below 2^-14: subnormal half or zero */
		uint32_t e = a >> 23;
		if (e < 102) /* below 2^-25: rounds to zero */
			return sign;
		uint32_t m = (a & 0x7fffffu) | 0x800000u;
		/* the half's units are 2^-24: a * 2^24 = m * 2^(e - 126) */
		return (uint16_t)(sign | shift_rne(m, 126 - e));
	}
	/* normal: rebias, round the 13 dropped bits (a carry may reach the
	 * exponent, which is right) */
	uint32_t h = ((a >> 23) - 112) << 10 | ((a >> 13) & 0x3ffu);
	uint32_t rem = a & 0x1fffu;
	if (rem > 0x1000u || (rem == 0x1000u && (h & 1)))
		h++;
	return (uint16_t)(sign | h);
}
