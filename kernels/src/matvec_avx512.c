/* AVX-512 (F, BW, VL, VNNI) kernels, built with those flags and called
 * only on a CPU that has them.  One 512-bit register holds all 16
 * canonical sums: lanes 0-7 take the even blocks, lanes 8-15 the odd ones,
 * so two blocks go through one VNNI dot product, one convert and one FMA.
 * Results are bit-identical to matvec_scalar.c. */
#include "internal.h"

#include <immintrin.h>

/* One row after the other, prefetching 4 KiB ahead: see matvec_avx2.c. */
#define PREFETCH_AHEAD 4096
#define PREFETCH(p) _mm_prefetch((const char *)(p) + PREFETCH_AHEAD, _MM_HINT_NTA)

static inline float reduce(__m512 acc)
{
	const __m256 s = _mm256_add_ps(_mm512_castps512_ps256(acc),
	                               _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(acc), 1)));
	const __m128 t = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
	const __m128 u = _mm_add_ps(t, _mm_movehl_ps(t, t));
	return _mm_cvtss_f32(_mm_add_ss(u, _mm_movehdup_ps(u)));
}

static float dot_f32(const float *w, const float *x, int n)
{
	__m512 acc = _mm512_setzero_ps();
	int j = 0;
	for (; j + 16 <= n; j += 16) {
		PREFETCH(w + j);
		acc = _mm512_fmadd_ps(_mm512_loadu_ps(w + j), _mm512_loadu_ps(x + j), acc);
	}
	if (j < n) {
		/* merge masking leaves the lanes past the row untouched */
		const __mmask16 m = (__mmask16)((1u << (n - j)) - 1);
		acc = _mm512_mask3_fmadd_ps(_mm512_maskz_loadu_ps(m, w + j),
		                            _mm512_maskz_loadu_ps(m, x + j), acc, m);
	}
	return reduce(acc);
}

static void rows_f32(const float *w, const float *x, float *y,
                     int n_in, int r0, int r1)
{
	for (int r = r0; r < r1; r++)
		y[r] = dot_f32(w + (size_t)r * n_in, x, n_in);
}

/* dot_f32 over halves, converted exactly (vcvtph2ps); the masked tail
 * reads nothing past the row. */
static float dot_f16(const uint16_t *w, const float *x, int n)
{
	__m512 acc = _mm512_setzero_ps();
	int j = 0;
	for (; j + 16 <= n; j += 16) {
		PREFETCH(w + j);
		acc = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(w + j))),
		                      _mm512_loadu_ps(x + j), acc);
	}
	if (j < n) {
		const __mmask16 m = (__mmask16)((1u << (n - j)) - 1);
		const __m512 wv = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, w + j));
		acc = _mm512_mask3_fmadd_ps(wv, _mm512_maskz_loadu_ps(m, x + j), acc, m);
	}
	return reduce(acc);
}

static void rows_f16(const uint16_t *w, const float *x, float *y,
                     int n_in, int r0, int r1)
{
	for (int r = r0; r < r1; r++)
		y[r] = dot_f16(w + (size_t)r * n_in, x, n_in);
}

/* Scales of blocks b (lanes 0-7) and b + 1 (lanes 8-15). */
static inline __m512 scale2(uint16_t d0, uint16_t d1, const float *xd)
{
	return _mm512_mask_blend_ps(0xff00, _mm512_set1_ps(_cvtsh_ss(d0) * xd[0]),
	                            _mm512_set1_ps(_cvtsh_ss(d1) * xd[1]));
}

/* q8_0: (w + 128) is the unsigned factor; the sums start from bias =
 * -128 * sum x, so each lane ends as the exact sum of w * x over its 4
 * values. */
static inline __m512 pair_q8(const fk_block_q8_0 *blk, const struct fk_xq *x, int b, __m512 acc)
{
	const __m512i w = _mm512_inserti64x4(
		_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)blk[0].qs)),
		_mm256_loadu_si256((const __m256i *)blk[1].qs), 1);
	const __m512i u = _mm512_xor_si512(w, _mm512_set1_epi8((char)0x80));
	const __m512i xv = _mm512_load_si512(x->qs + b * FK_QK);
	const __m512i p = _mm512_dpbusd_epi32(_mm512_load_si512(x->bias + b * 8), u, xv);
	return _mm512_fmadd_ps(scale2(blk[0].d, blk[1].d, x->d + b), _mm512_cvtepi32_ps(p), acc);
}

static inline __m512 last_q8(const fk_block_q8_0 *blk, const struct fk_xq *x, int b, __m512 acc)
{
	const __m256i u = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)blk->qs),
	                                   _mm256_set1_epi8((char)0x80));
	const __m256i xv = _mm256_load_si256((const __m256i *)(x->qs + b * FK_QK));
	const __m256i p = _mm256_dpbusd_epi32(_mm256_load_si256((const __m256i *)(x->bias + b * 8)), u, xv);
	const __m512 d = _mm512_set1_ps(_cvtsh_ss(blk->d) * x->d[b]);
	return _mm512_mask3_fmadd_ps(d, _mm512_cvtepi32_ps(_mm512_zextsi256_si512(p)), acc, 0x00ff);
}

/* q4_0: the nibble (q + 8) is the unsigned factor already, so the sums
 * start from -8 * sum x = bias / 16. */
static inline __m512i nibbles2(const fk_block_q4_0 *blk)
{
	const __m256i t = _mm256_inserti128_si256(
		_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)blk[0].qs)),
		_mm_loadu_si128((const __m128i *)blk[1].qs), 1);
	const __m512i z = _mm512_inserti64x4(_mm512_castsi256_si512(t), _mm256_srli_epi16(t, 4), 1);
	/* [lo0, lo1, hi0, hi1] -> [lo0, hi0, lo1, hi1] */
	const __m512i o = _mm512_shuffle_i64x2(z, z, _MM_SHUFFLE(3, 1, 2, 0));
	return _mm512_and_si512(o, _mm512_set1_epi8(0x0f));
}

static inline __m512 pair_q4(const fk_block_q4_0 *blk, const struct fk_xq *x, int b, __m512 acc)
{
	const __m512i xv = _mm512_load_si512(x->qs + b * FK_QK);
	const __m512i bias = _mm512_srai_epi32(_mm512_load_si512(x->bias + b * 8), 4);
	const __m512i p = _mm512_dpbusd_epi32(bias, nibbles2(blk), xv);
	return _mm512_fmadd_ps(scale2(blk[0].d, blk[1].d, x->d + b), _mm512_cvtepi32_ps(p), acc);
}

static inline __m512 last_q4(const fk_block_q4_0 *blk, const struct fk_xq *x, int b, __m512 acc)
{
	const __m128i t = _mm_loadu_si128((const __m128i *)blk->qs);
	const __m256i n = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(t, 4), t),
	                                   _mm256_set1_epi8(0x0f));
	const __m256i xv = _mm256_load_si256((const __m256i *)(x->qs + b * FK_QK));
	const __m256i bias = _mm256_srai_epi32(_mm256_load_si256((const __m256i *)(x->bias + b * 8)), 4);
	const __m256i p = _mm256_dpbusd_epi32(bias, n, xv);
	const __m512 d = _mm512_set1_ps(_cvtsh_ss(blk->d) * x->d[b]);
	return _mm512_mask3_fmadd_ps(d, _mm512_cvtepi32_ps(_mm512_zextsi256_si512(p)), acc, 0x00ff);
}

#define ROWS_Q(NAME, BLOCK, PAIR, LAST)                                        \
static void NAME(const BLOCK *w, const struct fk_xq *x, float *y,             \
                 int n_in, int r0, int r1)                                    \
{                                                                              \
	const int nb = n_in / FK_QK;                                           \
	for (int r = r0; r < r1; r++) {                                        \
		const BLOCK *p = w + (size_t)r * nb;                           \
		__m512 a = _mm512_setzero_ps();                                \
		int b = 0;                                                     \
		for (; b + 2 <= nb; b += 2) {                                  \
			PREFETCH(p + b);                                       \
			a = PAIR(p + b, x, b, a);                              \
		}                                                              \
		if (b < nb)                                                    \
			a = LAST(p + b, x, b, a);                              \
		y[r] = reduce(a);                                              \
	}                                                                      \
}

ROWS_Q(rows_q8_0, fk_block_q8_0, pair_q8, last_q8)
ROWS_Q(rows_q4_0, fk_block_q4_0, pair_q4, last_q4)

/* Activations are quantized as on the AVX2 path (identical bytes). */
const struct fk_impl fk_impl_avx512 = {
	.rows_f32 = rows_f32,
	.rows_f16 = rows_f16,
	.rows_q8_0 = rows_q8_0,
	.rows_q4_0 = rows_q4_0,
	.quantize_x = fk_quantize_x_avx2,
};
