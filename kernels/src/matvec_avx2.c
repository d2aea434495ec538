/* AVX2 + FMA + F16C kernels (this file alone is built with those flags;
 * dispatch.c calls it only on a CPU that has them).  Each reproduces the
 * canonical arithmetic of matvec_scalar.c exactly: lanes 0-7 of the first
 * accumulator are sums 0-7, the second's are sums 8-15. */
#include "internal.h"

#include <immintrin.h>
#include <string.h>

/* Rows are read one after the other: one stream per thread, which the
 * hardware prefetchers follow best (two interleaved rows measured 30%
 * slower from DRAM).  The software prefetch runs 4 KiB ahead, across the
 * page boundaries where hardware prefetchers stop, with the non-temporal
 * hint: a weight is read once per token, and keeping it out of the outer
 * caches measured 10-25% faster than prefetching into them. */
#define PREFETCH_AHEAD 4096
#define PREFETCH(p) _mm_prefetch((const char *)(p) + PREFETCH_AHEAD, _MM_HINT_NTA)

/* fk_reduce16 of the sums held in a0 (0-7) and a1 (8-15). */
static inline float reduce(__m256 a0, __m256 a1)
{
	const __m256 s = _mm256_add_ps(a0, a1);
	const __m128 t = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
	const __m128 u = _mm_add_ps(t, _mm_movehl_ps(t, t));
	return _mm_cvtss_f32(_mm_add_ss(u, _mm_movehdup_ps(u)));
}

/* acc lanes < rem get fma(w, x, acc); the others stay untouched, as in
 * the scalar loop that never reaches them.  Masked loads read nothing
 * past the row. */
static inline __m256 fma_tail(const float *w, const float *x, int rem, __m256 acc)
{
	const __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32(rem),
	                                     _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
	const __m256 f = _mm256_fmadd_ps(_mm256_maskload_ps(w, m), _mm256_maskload_ps(x, m), acc);
	return _mm256_blendv_ps(acc, f, _mm256_castsi256_ps(m));
}

static float dot_f32(const float *w, const float *x, int n)
{
	__m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
	int j = 0;
	for (; j + 16 <= n; j += 16) {
		PREFETCH(w + j);
		a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + j), _mm256_loadu_ps(x + j), a0);
		a1 = _mm256_fmadd_ps(_mm256_loadu_ps(w + j + 8), _mm256_loadu_ps(x + j + 8), a1);
	}
	if (n - j >= 8) {
		a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + j), _mm256_loadu_ps(x + j), a0);
		j += 8;
		if (n - j > 0)
			a1 = fma_tail(w + j, x + j, n - j, a1);
	} else if (n - j > 0) {
		a0 = fma_tail(w + j, x + j, n - j, a0);
	}
	return reduce(a0, a1);
}

static void rows_f32(const float *w, const float *x, float *y,
                     int n_in, int r0, int r1)
{
	for (int r = r0; r < r1; r++)
		y[r] = dot_f32(w + (size_t)r * n_in, x, n_in);
}

/* Eight halves converted exactly (F16C), as fk_fp16_to_fp32 does. */
static inline __m256 load_f16(const uint16_t *w)
{
	return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)w));
}

/* fma_tail for rem < 8 halves: a copy keeps the load inside the row. */
static inline __m256 fma_tail_f16(const uint16_t *w, const float *x, int rem, __m256 acc)
{
	uint16_t h[8] = {0};
	memcpy(h, w, (size_t)rem * sizeof *h);
	const __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32(rem),
	                                     _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
	const __m256 f = _mm256_fmadd_ps(load_f16(h), _mm256_maskload_ps(x, m), acc);
	return _mm256_blendv_ps(acc, f, _mm256_castsi256_ps(m));
}

/* dot_f32 over halves: the same lanes, the same order. */
static float dot_f16(const uint16_t *w, const float *x, int n)
{
	__m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
	int j = 0;
	for (; j + 16 <= n; j += 16) {
		PREFETCH(w + j);
		a0 = _mm256_fmadd_ps(load_f16(w + j), _mm256_loadu_ps(x + j), a0);
		a1 = _mm256_fmadd_ps(load_f16(w + j + 8), _mm256_loadu_ps(x + j + 8), a1);
	}
	if (n - j >= 8) {
		a0 = _mm256_fmadd_ps(load_f16(w + j), _mm256_loadu_ps(x + j), a0);
		j += 8;
		if (n - j > 0)
			a1 = fma_tail_f16(w + j, x + j, n - j, a1);
	} else if (n - j > 0) {
		a0 = fma_tail_f16(w + j, x + j, n - j, a0);
	}
	return reduce(a0, a1);
}

static void rows_f16(const uint16_t *w, const float *x, float *y,
                     int n_in, int r0, int r1)
{
	for (int r = r0; r < r1; r++)
		y[r] = dot_f16(w + (size_t)r * n_in, x, n_in);
}

/* Eight int32 lanes: lane l = sum of w[k] * x[k] over k = 4l..4l+3.
 * |w| is the unsigned factor, so w = -128 (possible in a foreign file)
 * stays exact; x is in [-127, 127], so x * sign(w) cannot overflow, and a
 * pair of products (at most 2 * 128 * 127) cannot saturate. */
static inline __m256i lane_dot(__m256i w, __m256i x)
{
	const __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w));
	return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
}

/* The 32 nibbles of a q4_0 block as bytes 0..15 (values q + 8), in value
 * order: low nibbles first, then high. */
static inline __m256i nibbles(const void *qs)
{
	const __m128i t = _mm_loadu_si128((const __m128i *)qs);
	return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(t, 4), t), _mm256_set1_epi8(0x0f));
}

static inline __m256 block_q8(uint16_t dh, const void *qs, const struct fk_xq *x, int b, __m256 acc)
{
	const __m256 d = _mm256_set1_ps(_cvtsh_ss(dh) * x->d[b]);
	const __m256i w = _mm256_loadu_si256((const __m256i *)qs);
	const __m256i xv = _mm256_load_si256((const __m256i *)(x->qs + b * FK_QK));
	return _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(lane_dot(w, xv)), acc);
}

/* The nibble (q + 8) is unsigned already, so it multiplies x directly
 * (at most 2 * 15 * 127 per pair: no saturation), and the sums start from
 * -8 * sum x = bias / 16: the same exact integers as lane_dot of q. */
static inline __m256 block_q4(uint16_t dh, const void *qs, const struct fk_xq *x, int b, __m256 acc)
{
	const __m256 d = _mm256_set1_ps(_cvtsh_ss(dh) * x->d[b]);
	const __m256i xv = _mm256_load_si256((const __m256i *)(x->qs + b * FK_QK));
	const __m256i bias = _mm256_srai_epi32(_mm256_load_si256((const __m256i *)(x->bias + b * 8)), 4);
	const __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(nibbles(qs), xv), _mm256_set1_epi16(1));
	return _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(_mm256_add_epi32(p, bias)), acc);
}

/* One function body per block type. */
#define ROWS_Q(NAME, BLOCK, STEP)                                              \
static void NAME(const BLOCK *w, const struct fk_xq *x, float *y,             \
                 int n_in, int r0, int r1)                                    \
{                                                                              \
	const int nb = n_in / FK_QK;                                           \
	for (int r = r0; r < r1; r++) {                                        \
		const BLOCK *p = w + (size_t)r * nb;                           \
		__m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();     \
		int b = 0;                                                     \
		for (; b + 2 <= nb; b += 2) {                                  \
			PREFETCH(p + b);                                       \
			a0 = STEP(p[b].d, p[b].qs, x, b, a0);                  \
			a1 = STEP(p[b + 1].d, p[b + 1].qs, x, b + 1, a1);      \
		}                                                              \
		if (b < nb)                                                    \
			a0 = STEP(p[b].d, p[b].qs, x, b, a0);                  \
		y[r] = reduce(a0, a1);                                         \
	}                                                                      \
}

ROWS_Q(rows_q8_0, fk_block_q8_0, block_q8)
ROWS_Q(rows_q4_0, fk_block_q4_0, block_q4)

/* The repacked layouts, a row at a time as above: the first row of a
 * group brings the group's lines into the cache (one stream), the other
 * seven find them there.  AVX2 has no 8-row kernel: this path is the
 * fallback, the AVX-512 one is where the layout pays. */
#define ROWS_X8(NAME, UNIT, STEP_ROW, STEP)                                    \
static void NAME(const uint8_t *w, const struct fk_xq *x, float *y,           \
                 int n_in, int r0, int r1)                                    \
{                                                                              \
	const int nb = n_in / FK_QK;                                           \
	const size_t group = (size_t)x8_units(n_in) * UNIT;                    \
	for (int r = r0; r < r1; r++) {                                        \
		const uint8_t *g = w + (size_t)(r / X8_ROWS) * group;          \
		const int gr = r % X8_ROWS;                                    \
		__m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();     \
		int b = 0;                                                     \
		for (; b + 2 <= nb; b += 2) {                                  \
			a0 = STEP(x8_scale(g, UNIT, gr, b),                    \
			          g + x8_data_at(UNIT, STEP_ROW, gr, b), x, b, a0); \
			a1 = STEP(x8_scale(g, UNIT, gr, b + 1),                \
			          g + x8_data_at(UNIT, STEP_ROW, gr, b + 1), x, b + 1, a1); \
		}                                                              \
		if (b < nb)                                                    \
			a0 = STEP(x8_scale(g, UNIT, gr, b),                    \
			          g + x8_data_at(UNIT, STEP_ROW, gr, b), x, b, a0); \
		y[r] = reduce(a0, a1);                                         \
	}                                                                      \
}

ROWS_X8(rows_q8_0x8, X8_UNIT_Q8, X8_STEP_ROW_Q8, block_q8)
ROWS_X8(rows_q4_0x8, X8_UNIT_Q4, X8_STEP_ROW_Q4, block_q4)

/* roundf: truncate, then step away from zero when the dropped fraction
 * (exact: a float minus its truncation) is at least one half. */
static inline __m256 round_away(__m256 v)
{
	const __m256 sign = _mm256_set1_ps(-0.0f);
	const __m256 t = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
	const __m256 frac = _mm256_andnot_ps(sign, _mm256_sub_ps(v, t));
	const __m256 up = _mm256_cmp_ps(frac, _mm256_set1_ps(0.5f), _CMP_GE_OQ);
	const __m256 one = _mm256_or_ps(_mm256_and_ps(v, sign), _mm256_set1_ps(1.0f));
	return _mm256_add_ps(t, _mm256_and_ps(up, one));
}

static inline __m256i to_q(__m256 v, __m256 id)
{
	__m256 r = round_away(_mm256_mul_ps(v, id));
	r = _mm256_min_ps(_mm256_max_ps(r, _mm256_set1_ps(-127.0f)), _mm256_set1_ps(127.0f));
	return _mm256_cvtps_epi32(r);
}

void fk_quantize_x_avx2(const float *x, const struct fk_xq *out, int n)
{
	const __m256 sign = _mm256_set1_ps(-0.0f);
	for (int b = 0; b < n / FK_QK; b++) {
		const float *xb = x + b * FK_QK;
		__m256 v[4];
		for (int k = 0; k < 4; k++)
			v[k] = _mm256_loadu_ps(xb + 8 * k);
		__m256 m = _mm256_max_ps(_mm256_max_ps(_mm256_andnot_ps(sign, v[0]), _mm256_andnot_ps(sign, v[1])),
		                         _mm256_max_ps(_mm256_andnot_ps(sign, v[2]), _mm256_andnot_ps(sign, v[3])));
		__m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
		h = _mm_max_ps(h, _mm_movehl_ps(h, h));
		h = _mm_max_ss(h, _mm_movehdup_ps(h));
		const float amax = _mm_cvtss_f32(h);
		const float d = amax / 127.0f;
		const float id = d ? 1.0f / d : 0.0f;
		out->d[b] = d;
		const __m256 vid = _mm256_set1_ps(id);
		__m256i i0 = _mm256_packs_epi32(to_q(v[0], vid), to_q(v[1], vid));
		__m256i i2 = _mm256_packs_epi32(to_q(v[2], vid), to_q(v[3], vid));
		i0 = _mm256_packs_epi16(i0, i2);
		/* the packs interleave 128-bit lanes; put the values back in order */
		i0 = _mm256_permutevar8x32_epi32(i0, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
		_mm256_store_si256((__m256i *)(out->qs + b * FK_QK), i0);
		const __m256i s4 = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi8(1), i0),
		                                     _mm256_set1_epi16(1));
		_mm256_storeu_si256((__m256i *)(out->bias + b * 8),
		                    _mm256_mullo_epi32(s4, _mm256_set1_epi32(-128)));
	}
}

const struct fk_impl fk_impl_avx2 = {
	.rows_f32 = rows_f32,
	.rows_f16 = rows_f16,
	.rows_q8_0 = rows_q8_0,
	.rows_q4_0 = rows_q4_0,
	.rows_q8_0x8 = rows_q8_0x8,
	.rows_q4_0x8 = rows_q4_0x8,
	.quantize_x = fk_quantize_x_avx2,
};
