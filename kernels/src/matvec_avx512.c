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

/* ------------------------------------------------------------------ */
/* The repacked layouts (repack.c): 8 rows a pass over one stream.      */
/* x, its sums and its scales are loaded once per step (two blocks) for */
/* 8 rows; each row's sums still get exactly its canonical FMAs.        */

/* The loops over a group's rows unrolled, so that the accumulators stay
 * in registers: rolled, GCC keeps them on the stack and every FMA waits
 * for a store to be forwarded (measured 1.3x slower). */
#define UNROLL_ROWS _Pragma("GCC unroll 8")

/* Prefetch a unit's lines PREFETCH_AHEAD ahead, as the rows above do. */
static inline void prefetch_unit(const uint8_t *u, int unit)
{
	for (int off = 0; off < unit; off += 64)
		_mm_prefetch((const char *)u + PREFETCH_AHEAD + off, _MM_HINT_NTA);
}

/* dw * dx of a step's 16 scales (row r's blocks b, b + 1 in lanes 2r,
 * 2r + 1): the products scale2() forms.  half: block b + 1 is past the
 * row (its lanes are then never added). */
static inline __m512 step_scales(const uint8_t *s, const float *xd, int half)
{
	const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)s));
	const __m512 dx = _mm512_mask_blend_ps(0xaaaa, _mm512_set1_ps(xd[0]),
	                                       _mm512_set1_ps(half ? 0.0f : xd[1]));
	return _mm512_mul_ps(dw, dx);
}

/* 64 bytes of x (or of its sums) for blocks b, b + 1; zeros for b + 1
 * when half, so nothing past x is read. */
static inline __m512i load_pair(const void *p, int half)
{
	return half ? _mm512_zextsi256_si512(_mm256_load_si256((const __m256i *)p))
	            : _mm512_load_si512(p);
}

/* q8_0: a row's two blocks are one register, lanes in canonical order
 * (0-7 block b, 8-15 block b + 1), as in pair_q8.  m: 0x00ff for a half
 * step, whose odd-block sums stay untouched. */
static inline void step_q8(__m512 acc[8], const uint8_t *data, __m512 d, __m512i xv, __m512i bias,
                           __mmask16 m)
{
	const __m512i two = _mm512_set1_epi32(2);
	__m512i idx = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
	UNROLL_ROWS
	for (int i = 0; i < X8_ROWS; i++, idx = _mm512_add_epi32(idx, two)) {
		const __m512i u = _mm512_xor_si512(_mm512_loadu_si512(data + i * X8_STEP_ROW_Q8),
		                                   _mm512_set1_epi8((char)0x80));
		const __m512i p = _mm512_dpbusd_epi32(bias, u, xv);
		acc[i] = _mm512_mask3_fmadd_ps(_mm512_permutexvar_ps(idx, d), _mm512_cvtepi32_ps(p),
		                               acc[i], m);
	}
}

static void rows_q8_0x8(const uint8_t *w, const struct fk_xq *x, float *y,
                        int n_in, int r0, int r1)
{
	const int nb = n_in / FK_QK;
	const size_t group = (size_t)x8_units(n_in) * X8_UNIT_Q8;
	for (int r = r0; r < r1; r += X8_ROWS) {
		const uint8_t *g = w + (size_t)(r / X8_ROWS) * group;
		__m512 acc[X8_ROWS];
		UNROLL_ROWS
		for (int i = 0; i < X8_ROWS; i++)
			acc[i] = _mm512_setzero_ps();
		for (int b = 0; b < nb; b += 2) {
			const int half = b + 1 == nb;
			const uint8_t *u = g + (size_t)(b / 4) * X8_UNIT_Q8;
			const int s = (b % 4) / 2;
			if (!s)
				prefetch_unit(u, X8_UNIT_Q8);
			step_q8(acc, u + X8_SCALES + s * X8_ROWS * X8_STEP_ROW_Q8,
			        step_scales(u + 32 * s, x->d + b, half), load_pair(x->qs + b * FK_QK, half),
			        load_pair(x->bias + b * 8, half), half ? 0x00ff : 0xffff);
		}
		for (int i = 0; i < X8_ROWS && r + i < r1; i++)
			y[r + i] = reduce(acc[i]);
	}
}

/* q4_0: one load holds two rows' two blocks, [row: nibbles of b, of
 * b + 1; next row: the same].  The low nibbles (values 0-15, groups 0-3)
 * and the high ones (groups 4-7) go through separate dot products against
 * x rearranged to match, [b 0-15, b+1 0-15, b 0-15, b+1 0-15] and the
 * same for 16-31, so no nibble is shuffled.  Sums of rows 2i, 2i + 1:
 * lo[i] lanes 4L + k = group k of (row, block) L = (2i, b), (2i, b+1),
 * (2i+1, b), (2i+1, b+1); hi[i] the same for group 4 + k.  m: 0x0f0f for
 * a half step (the lanes of block b). */
static inline void step_q4(__m512 lo[4], __m512 hi[4], const uint8_t *data, __m512 d,
                           __m512i xv, __m512i bias, __mmask16 m)
{
	const __m512i xlo = _mm512_shuffle_i64x2(xv, xv, _MM_SHUFFLE(2, 0, 2, 0));
	const __m512i xhi = _mm512_shuffle_i64x2(xv, xv, _MM_SHUFFLE(3, 1, 3, 1));
	const __m512i b4 = _mm512_srai_epi32(bias, 4);
	const __m512i blo = _mm512_shuffle_i64x2(b4, b4, _MM_SHUFFLE(2, 0, 2, 0));
	const __m512i bhi = _mm512_shuffle_i64x2(b4, b4, _MM_SHUFFLE(3, 1, 3, 1));
	const __m512i mask = _mm512_set1_epi8(0x0f), four = _mm512_set1_epi32(4);
	__m512i idx = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
	UNROLL_ROWS
	for (int i = 0; i < X8_ROWS / 2; i++, idx = _mm512_add_epi32(idx, four)) {
		const __m512i wv = _mm512_loadu_si512(data + i * 2 * X8_STEP_ROW_Q4);
		const __m512i nl = _mm512_and_si512(wv, mask);
		const __m512i nh = _mm512_and_si512(_mm512_srli_epi16(wv, 4), mask);
		const __m512 di = _mm512_permutexvar_ps(idx, d);
		lo[i] = _mm512_mask3_fmadd_ps(di, _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(blo, nl, xlo)),
		                              lo[i], m);
		hi[i] = _mm512_mask3_fmadd_ps(di, _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(bhi, nh, xhi)),
		                              hi[i], m);
	}
}

static void rows_q4_0x8(const uint8_t *w, const struct fk_xq *x, float *y,
                        int n_in, int r0, int r1)
{
	const int nb = n_in / FK_QK;
	const size_t group = (size_t)x8_units(n_in) * X8_UNIT_Q4;
	for (int r = r0; r < r1; r += X8_ROWS) {
		const uint8_t *g = w + (size_t)(r / X8_ROWS) * group;
		__m512 lo[X8_ROWS / 2], hi[X8_ROWS / 2];
		UNROLL_ROWS
		for (int i = 0; i < X8_ROWS / 2; i++)
			lo[i] = hi[i] = _mm512_setzero_ps();
		for (int b = 0; b < nb; b += 2) {
			const int half = b + 1 == nb;
			const uint8_t *u = g + (size_t)(b / 4) * X8_UNIT_Q4;
			const int s = (b % 4) / 2;
			if (!s)
				prefetch_unit(u, X8_UNIT_Q4);
			step_q4(lo, hi, u + X8_SCALES + s * X8_ROWS * X8_STEP_ROW_Q4,
			        step_scales(u + 32 * s, x->d + b, half), load_pair(x->qs + b * FK_QK, half),
			        load_pair(x->bias + b * 8, half), half ? 0x0f0f : 0xffff);
		}
		/* Back to each row's 16 canonical sums, in registers (through
		 * memory this fold took a tenth of the kernel's time): lanes 0-3
		 * groups 0-3 of block b, 4-7 groups 4-7 of b, 8-15 the same of
		 * b + 1; then the canonical fold (reduce() is fk_reduce16). */
		const __m512i row0 = _mm512_setr_epi32(0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23);
		const __m512i row1 = _mm512_add_epi32(row0, _mm512_set1_epi32(8));
		UNROLL_ROWS
		for (int i = 0; i < X8_ROWS / 2; i++) {
			if (r + 2 * i < r1)
				y[r + 2 * i] = reduce(_mm512_permutex2var_ps(lo[i], row0, hi[i]));
			if (r + 2 * i + 1 < r1)
				y[r + 2 * i + 1] = reduce(_mm512_permutex2var_ps(lo[i], row1, hi[i]));
		}
	}
}

/* Activations are quantized as on the AVX2 path (identical bytes). */
const struct fk_impl fk_impl_avx512 = {
	.rows_f32 = rows_f32,
	.rows_f16 = rows_f16,
	.rows_q8_0 = rows_q8_0,
	.rows_q4_0 = rows_q4_0,
	.rows_q8_0x8 = rows_q8_0x8,
	.rows_q4_0x8 = rows_q4_0x8,
	.quantize_x = fk_quantize_x_avx2,
};
