/* Types, and GGML's reference quantizers and dequantizers.  These run
 * once per weight (import, synthesis), so they are scalar and exact. */
#include "internal.h"

#include <errno.h>
#include <math.h>
#include <string.h>

_Static_assert(sizeof(fk_block_q8_0) == 34, "GGML block_q8_0 is 34 bytes");
_Static_assert(sizeof(fk_block_q4_0) == 18, "GGML block_q4_0 is 18 bytes");

const char *fk_type_name(int type)
{
	switch (type) {
	case FK_F32: return "f32";
	case FK_F16: return "f16";
	case FK_Q8_0: return "q8_0";
	case FK_Q4_0: return "q4_0";
	case FK_Q4_0_X8: return "q4_0x8";
	case FK_Q8_0_X8: return "q8_0x8";
	}
	return NULL;
}

int fk_type_parse(const char *name)
{
	static const int types[] = { FK_F32, FK_F16, FK_Q8_0, FK_Q4_0 };
	for (size_t i = 0; name && i < sizeof types / sizeof types[0]; i++)
		if (!strcmp(name, fk_type_name(types[i])))
			return types[i];
	return fk_fail(EINVAL, "type '%s' is not f32, f16, q8_0 or q4_0", name ? name : "(null)");
}

size_t fk_row_bytes(int type, size_t n)
{
	switch (type) {
	case FK_F32:
		return n * sizeof(float);
	case FK_F16:
		return n * sizeof(uint16_t);
	case FK_Q8_0:
		return n % FK_QK ? 0 : n / FK_QK * sizeof(fk_block_q8_0);
	case FK_Q4_0:
		return n % FK_QK ? 0 : n / FK_QK * sizeof(fk_block_q4_0);
	}
	return 0;
}

/* Equal to GGML's cast for every finite block; the clamp only keeps a
 * degenerate scale (an infinite inverse) from an undefined conversion. */
static float clampf(float v, float lo, float hi)
{
	return v > lo ? (v < hi ? v : hi) : lo;
}

void fk_quantize_row_q8_0(const float *x, fk_block_q8_0 *y, size_t n)
{
	for (size_t b = 0; b < n / FK_QK; b++, x += FK_QK) {
		float amax = 0.0f;
		for (int j = 0; j < FK_QK; j++)
			amax = fmaxf(amax, fabsf(x[j]));
		const float d = amax / 127.0f;
		const float id = d ? 1.0f / d : 0.0f;
		y[b].d = fk_fp32_to_fp16(d);
		for (int j = 0; j < FK_QK; j++)
			y[b].qs[j] = (int8_t)clampf(roundf(x[j] * id), -127.0f, 127.0f);
	}
}

void fk_quantize_row_q4_0(const float *x, fk_block_q4_0 *y, size_t n)
{
	for (size_t b = 0; b < n / FK_QK; b++, x += FK_QK) {
		/* the signed value of largest magnitude (the first, on ties) maps
		 * to -8, so the grid's extra negative step is not wasted */
		float amax = 0.0f, max = 0.0f;
		for (int j = 0; j < FK_QK; j++) {
			if (amax < fabsf(x[j])) {
				amax = fabsf(x[j]);
				max = x[j];
			}
		}
		const float d = max / -8.0f;
		const float id = d ? 1.0f / d : 0.0f;
		y[b].d = fk_fp32_to_fp16(d);
		for (int j = 0; j < FK_QK / 2; j++) {
			const float x0 = x[j] * id;
			const float x1 = x[j + FK_QK / 2] * id;
			/* GGML: MIN(15, (int8_t)(x + 8.5f)), truncating */
			const int i0 = (int)clampf(x0 + 8.5f, 0.0f, 15.0f);
			const int i1 = (int)clampf(x1 + 8.5f, 0.0f, 15.0f);
			y[b].qs[j] = (uint8_t)(i0 | (i1 << 4));
		}
	}
}

void fk_dequantize_row(int type, const void *src, float *dst, size_t n)
{
	if (type == FK_F32) {
		memcpy(dst, src, n * sizeof(float));
	} else if (type == FK_F16) {
		const uint16_t *h = src;
		for (size_t i = 0; i < n; i++)
			dst[i] = fk_fp16_to_fp32(h[i]);
	} else if (type == FK_Q8_0) {
		const fk_block_q8_0 *b = src;
		for (size_t i = 0; i < n / FK_QK; i++) {
			const float d = fk_fp16_to_fp32(b[i].d);
			for (int j = 0; j < FK_QK; j++)
				dst[i * FK_QK + j] = b[i].qs[j] * d;
		}
	} else if (type == FK_Q4_0) {
		const fk_block_q4_0 *b = src;
		for (size_t i = 0; i < n / FK_QK; i++) {
			const float d = fk_fp16_to_fp32(b[i].d);
			for (int j = 0; j < FK_QK / 2; j++) {
				dst[i * FK_QK + j] = ((b[i].qs[j] & 0x0f) - 8) * d;
				dst[i * FK_QK + j + FK_QK / 2] = ((b[i].qs[j] >> 4) - 8) * d;
			}
		}
	}
}
