/* flexkern: block layouts against hand-computed bytes, fp16 against the
 * F16C instructions, quantization bounds, every matrix-vector path against
 * a float64 reference and against this file's own statement of the
 * canonical arithmetic (docs/runtime.md), and the vector operations and
 * thread pool. */
#include <criterion/criterion.h>
#include <criterion/logging.h>

#include <flexkern/kernels.h>

#include <errno.h>
#include <immintrin.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "kern_util.h"

/* ------------------------------------------------------------------ */
/* Block layouts                                                        */

Test(layout, ggml_block_sizes_and_offsets)
{
	cr_assert_eq(sizeof(fk_block_q8_0), 34);
	cr_assert_eq(sizeof(fk_block_q4_0), 18);
	cr_assert_eq(offsetof(fk_block_q8_0, d), 0);
	cr_assert_eq(offsetof(fk_block_q8_0, qs), 2);
	cr_assert_eq(offsetof(fk_block_q4_0, d), 0);
	cr_assert_eq(offsetof(fk_block_q4_0, qs), 2);
	cr_assert_eq(fk_row_bytes(FK_Q8_0, 64), 68);
	cr_assert_eq(fk_row_bytes(FK_Q4_0, 64), 36);
	cr_assert_eq(fk_row_bytes(FK_F32, 5), 20);
	cr_assert_eq(fk_row_bytes(FK_Q8_0, 33), 0, "not whole blocks");
	cr_assert_eq(fk_row_bytes(77, 32), 0, "unknown type");
	cr_assert_eq(fk_type_parse("q4_0"), FK_Q4_0);
	cr_assert_eq(fk_type_parse("q5_1"), -EINVAL);
	cr_assert(strstr(fk_last_error(), "'q5_1'"), "%s", fk_last_error());
	cr_assert_eq(fk_type_parse(NULL), -EINVAL);
	cr_assert_str_eq(fk_type_name(FK_Q8_0), "q8_0");
}

/* amax 127 gives d = 1.0 (fp16 0x3c00, little-endian bytes 00 3c), and
 * roundf's ties go away from zero: 0.5 -> 1, -0.5 -> -1, 2.5 -> 3. */
Test(layout, q8_0_hand_computed_bytes)
{
	float x[32];
	for (int j = 0; j < 32; j++)
		x[j] = (float)(j - 16);
	x[0] = 127.0f;
	x[1] = -127.0f;
	x[2] = 0.5f;
	x[3] = -0.5f;
	x[4] = 2.5f;
	x[5] = 1.49f;
	fk_block_q8_0 b[2];
	memset(b, 0xee, sizeof b);
	fk_quantize_row_q8_0(x, b, 32);
	const unsigned char *p = (const unsigned char *)b;
	const unsigned char head[8] = { 0x00, 0x3c, 0x7f, 0x81, 0x01, 0xff, 0x03, 0x01 };
	for (int i = 0; i < 8; i++)
		cr_assert_eq(p[i], head[i], "byte %d: %02x, expected %02x", i, p[i], head[i]);
	for (int j = 6; j < 32; j++)
		cr_assert_eq((signed char)p[2 + j], j - 16, "qs[%d]", j);
	cr_assert_eq(p[34], 0xee, "wrote past the block");

	/* amax 254: d = 2.0 (0x4000); 3.0 / 2 = 1.5 -> 2 */
	x[0] = 254.0f;
	x[2] = 3.0f;
	fk_quantize_row_q8_0(x, b, 32);
	cr_assert_eq(p[0], 0x00);
	cr_assert_eq(p[1], 0x40);
	cr_assert_eq(p[2], 0x7f);
	cr_assert_eq((signed char)p[3], -64, "-127 / 2 = -63.5 rounds away to -64");
	cr_assert_eq(p[4], 0x02);
}

/* The value of largest magnitude is -8 at j = 0, so d = -8 / -8 = 1.0;
 * x[j] = j - 8 gives nibble j, x[16 + j] = 7 - j gives nibble 15 - j:
 * byte j = j | (15 - j) << 4. */
Test(layout, q4_0_hand_computed_bytes)
{
	float x[32];
	for (int j = 0; j < 16; j++) {
		x[j] = (float)(j - 8);
		x[16 + j] = (float)(7 - j);
	}
	fk_block_q4_0 b[2];
	memset(b, 0xee, sizeof b);
	fk_quantize_row_q4_0(x, b, 32);
	const unsigned char *p = (const unsigned char *)b;
	cr_assert_eq(p[0], 0x00);
	cr_assert_eq(p[1], 0x3c);
	cr_assert_eq(p[2], 0xf0);
	cr_assert_eq(p[3], 0xe1);
	for (int j = 0; j < 16; j++)
		cr_assert_eq(p[2 + j], j | (15 - j) << 4, "qs[%d] = %02x", j, p[2 + j]);
	cr_assert_eq(p[18], 0xee, "wrote past the block");

	/* positive max: d = 8 / -8 = -1 (0xbc00); 8 maps to nibble 0, -8 to
	 * 16, clipped to 15 */
	for (int j = 0; j < 32; j++)
		x[j] = 0.0f;
	x[0] = 8.0f;
	x[1] = -8.0f;
	x[2] = 3.0f;
	fk_quantize_row_q4_0(x, b, 32);
	cr_assert_eq(p[0], 0x00);
	cr_assert_eq(p[1], 0xbc);
	cr_assert_eq(p[2] & 0x0f, 0);
	cr_assert_eq(p[3] & 0x0f, 15);
	cr_assert_eq(p[4] & 0x0f, 5, "3 / -1 + 8.5 = 5.5 truncates to 5");
	cr_assert_eq(p[2] >> 4, 8, "zero is nibble 8");

	float y[32];
	fk_dequantize_row(FK_Q4_0, b, y, 32);
	cr_assert_eq(y[0], 8.0f);
	cr_assert_eq(y[1], -7.0f, "the clipped value");
	cr_assert_eq(y[2], 3.0f);
	cr_assert_eq(y[16], 0.0f);
}

/* The repacked layout, restated from kernels.h: groups of 8 rows, units
 * of 4 blocks (576 or 1088 bytes), 64 bytes of scales with row r's block
 * 2s + o at scale 16s + 2r + o, then per step s the 8 rows' two blocks of
 * values, a row after the other; every other byte zero.  11 rows x 5
 * blocks: a partial last group and a partial last unit. */
static void check_repacked_layout(int type)
{
	enum { ROWS = 11, NB = 5 };
	const int q4 = type == FK_Q4_0;
	const size_t block = q4 ? 18 : 34, vals = block - 2, unit = q4 ? 576 : 1088;
	const size_t units = 2, size = 2 * units * unit;
	unsigned char w[ROWS * NB * 34];
	for (size_t i = 0; i < sizeof w; i++)
		w[i] = (unsigned char)(1 + i % 251); /* no zero byte */
	cr_assert_eq(fk_repack_bytes(type, 32 * NB, ROWS), size);
	unsigned char *out = malloc(size), *seen = calloc(size, 1);
	memset(out, 0xee, size);
	cr_assert_eq(fk_repack(type, w, out, 32 * NB, ROWS), 0);
	for (int r = 0; r < ROWS; r++)
		for (int b = 0; b < NB; b++) {
			const unsigned char *src = w + ((size_t)r * NB + (size_t)b) * block;
			const size_t u = (size_t)(r / 8) * units * unit + (size_t)(b / 4) * unit;
			const int s = (b % 4) / 2, o = b % 2, gr = r % 8;
			const size_t sc = u + 2 * (size_t)(16 * s + 2 * gr + o);
			const size_t da = u + 64 + (size_t)(8 * s + gr) * 2 * vals + (size_t)o * vals;
			cr_assert(!memcmp(out + sc, src, 2), "%s row %d block %d: scale", fk_type_name(type),
			          r, b);
			cr_assert(!memcmp(out + da, src + 2, vals), "%s row %d block %d: values",
			          fk_type_name(type), r, b);
			memset(seen + sc, 1, 2);
			memset(seen + da, 1, vals);
		}
	for (size_t i = 0; i < size; i++)
		if (!seen[i])
			cr_assert_eq(out[i], 0, "%s byte %zu is padding, not zero", fk_type_name(type), i);
	free(out);
	free(seen);
}

Test(layout, repacked_bytes_where_documented)
{
	check_repacked_layout(FK_Q4_0);
	check_repacked_layout(FK_Q8_0);
	cr_assert_eq(fk_repack_type(FK_Q4_0), FK_Q4_0_X8);
	cr_assert_eq(fk_repack_type(FK_Q8_0), FK_Q8_0_X8);
	cr_assert_eq(fk_repack_type(FK_F16), 0);
	char dst[64];
	cr_assert_eq(fk_repack(FK_F32, dst, dst, 32, 1), -EINVAL);
	cr_assert_eq(fk_repack(FK_Q4_0, dst, dst, 33, 1), -EINVAL);
	cr_assert_eq(fk_repack(FK_Q4_0, dst, dst, 32, 0), -EINVAL);
	cr_assert_eq(fk_repack_bytes(FK_Q8_0, 0, 8), 0);
	cr_assert_eq(fk_row_bytes(FK_Q4_0_X8, 32), 0, "a repacked matrix has no row size");
	cr_assert_str_eq(fk_type_name(FK_Q4_0_X8), "q4_0x8");
}

/* ------------------------------------------------------------------ */
/* fp16                                                                 */

Test(fp16, hand_values)
{
	cr_assert_eq(fk_fp32_to_fp16(1.0f), 0x3c00);
	cr_assert_eq(fk_fp32_to_fp16(-2.0f), 0xc000);
	cr_assert_eq(fk_fp32_to_fp16(65504.0f), 0x7bff);
	cr_assert_eq(fk_fp32_to_fp16(65519.0f), 0x7bff);
	cr_assert_eq(fk_fp32_to_fp16(65520.0f), 0x7c00, "ties to even overflow");
	cr_assert_eq(fk_fp32_to_fp16(0x1p-24f), 0x0001);
	cr_assert_eq(fk_fp32_to_fp16(0x1p-25f), 0x0000, "tie to even (zero)");
	cr_assert_eq(fk_fp32_to_fp16(0x1.8p-24f), 0x0002, "tie to even (two)");
	cr_assert_eq(fk_fp32_to_fp16(0x1p-14f), 0x0400);
	cr_assert_eq(fk_fp32_to_fp16(-0.0f), 0x8000);
	cr_assert_eq(fk_fp32_to_fp16(1.0f + 0x1p-11f), 0x3c00, "tie to even (down)");
	cr_assert_eq(fk_fp32_to_fp16(1.0f + 0x1.8p-10f), 0x3c02, "tie to even (up)");
	cr_assert_eq(fk_fp16_to_fp32(0x3555), 0x1.554p-2f);
	cr_assert_eq(fk_fp16_to_fp32(0x0001), 0x1p-24f);
	cr_assert(isinf(fk_fp16_to_fp32(0xfc00)) && fk_fp16_to_fp32(0xfc00) < 0);
	cr_assert(isnan(fk_fp16_to_fp32(0x7d00)));
}

Test(fp16, every_half_round_trips)
{
	for (uint32_t h = 0; h < 65536; h++) {
		if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff))
			continue; /* NaN */
		cr_assert_eq(fk_fp32_to_fp16(fk_fp16_to_fp32((uint16_t)h)), h, "half %04x", h);
	}
}

__attribute__((target("f16c"))) static uint16_t hw_to_half(float f)
{
	return (uint16_t)_mm_extract_epi16(_mm_cvtps_ph(_mm_set_ss(f), _MM_FROUND_TO_NEAREST_INT), 0);
}

__attribute__((target("f16c"))) static float hw_to_float(uint16_t h)
{
	return _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(h)));
}

Test(fp16, matches_f16c_instructions)
{
	__builtin_cpu_init();
	if (!__builtin_cpu_supports("f16c"))
		cr_skip_test("this CPU has no F16C to compare with");
	for (uint32_t h = 0; h < 65536; h++) {
		uint32_t a = bits(fk_fp16_to_fp32((uint16_t)h)), b = bits(hw_to_float((uint16_t)h));
		cr_assert_eq(a, b, "half %04x: %08x, F16C %08x", h, a, b);
	}
	/* every float near the half grid's edges and ties, and random ones */
	for (int i = 0; i < 2000000; i++) {
		uint32_t u = (uint32_t)next_u64();
		if (i & 1) /* close to a half tie: low 13 bits near 0x1000 */
			u = (u & ~0x1fffu) | (0x1000u + (uint32_t)(i % 5) - 2u);
		const float f = from_bits(u);
		const uint16_t a = fk_fp32_to_fp16(f), b = hw_to_half(f);
		cr_assert_eq(a, b, "float %08x: %04x, F16C %04x", u, a, b);
	}
}

/* ------------------------------------------------------------------ */
/* Quantization bounds                                                  */

Test(quant, q8_0_round_trip_bound)
{
	enum { N = 32 * 512 };
	static float x[N], y[N];
	static fk_block_q8_0 q[N / 32];
	/* block scales from 2^-12 to 2^8: well inside fp16's range */
	for (int i = 0; i < N; i += 32) {
		const float s = (float)exp2(uniform() * 20 - 12);
		for (int j = 0; j < 32; j++)
			x[i + j] = gauss() * s;
	}
	fk_quantize_row_q8_0(x, q, N);
	fk_dequantize_row(FK_Q8_0, q, y, N);
	for (int b = 0; b < N / 32; b++) {
		float amax = 0;
		for (int j = 0; j < 32; j++)
			amax = fmaxf(amax, fabsf(x[b * 32 + j]));
		const double d = amax / 127.0, dh = fk_fp16_to_fp32(q[b].d);
		/* half a step, plus what the fp16 scale's rounding moves a
		 * value of up to 127 steps */
		const double bound = 0.5 * d * (1 + 1e-6) + 127.0 * fabs(d - dh) + 1e-30;
		for (int j = 0; j < 32; j++) {
			const double e = fabs((double)x[b * 32 + j] - y[b * 32 + j]);
			cr_assert(e <= bound, "block %d value %d: error %g > %g", b, j, e, bound);
			cr_assert_eq(y[b * 32 + j], (float)q[b].qs[j] * (float)dh);
		}
	}
}

Test(quant, q4_0_round_trip_bound)
{
	enum { N = 32 * 512 };
	static float x[N], y[N];
	static fk_block_q4_0 q[N / 32];
	for (int i = 0; i < N; i++)
		x[i] = gauss();
	fk_quantize_row_q4_0(x, q, N);
	fk_dequantize_row(FK_Q4_0, q, y, N);
	for (int b = 0; b < N / 32; b++) {
		float amax = 0, max = 0;
		for (int j = 0; j < 32; j++)
			if (fabsf(x[b * 32 + j]) > amax) {
				amax = fabsf(x[b * 32 + j]);
				max = x[b * 32 + j];
			}
		const double d = max / -8.0, dh = fk_fp16_to_fp32(q[b].d);
		const double scale_err = 8.0 * fabs(d - dh);
		for (int j = 0; j < 32; j++) {
			const double v = x[b * 32 + j];
			const double e = fabs(v - y[b * 32 + j]);
			/* values at the far end of the grid (x / d near +8) clip
			 * to 7 steps: up to one step off; the rest half a step */
			const double steps = v / d >= 7.5 ? 1.0 : 0.5;
			const double bound = steps * fabs(d) * (1 + 1e-6) + scale_err + 1e-30;
			cr_assert(e <= bound, "block %d value %d: error %g > %g", b, j, e, bound);
		}
	}
}

/* ------------------------------------------------------------------ */
/* Matrix-vector products                                               */

struct mat {
	int type, n_in, n_out;
	size_t row_bytes;
	void *w;
	float *wf;       /* the weights as floats (dequantized) */
	float *x;
};

static struct mat make_mat(int type, int n_in, int n_out)
{
	struct mat m = { type, n_in, n_out, fk_row_bytes(type, (size_t)n_in), NULL, NULL, NULL };
	cr_assert(m.row_bytes > 0);
	m.w = malloc(m.row_bytes * (size_t)n_out);
	m.wf = malloc(sizeof(float) * (size_t)n_in * (size_t)n_out);
	m.x = malloc(sizeof(float) * (size_t)n_in);
	float *row = malloc(sizeof(float) * (size_t)n_in);
	for (int r = 0; r < n_out; r++) {
		const float scale = 0.05f * (float)exp(0.5 * gauss());
		for (int i = 0; i < n_in; i++)
			row[i] = gauss() * scale;
		char *dst = (char *)m.w + (size_t)r * m.row_bytes;
		if (type == FK_F32)
			memcpy(dst, row, m.row_bytes);
		else if (type == FK_Q8_0)
			fk_quantize_row_q8_0(row, (fk_block_q8_0 *)dst, (size_t)n_in);
		else
			fk_quantize_row_q4_0(row, (fk_block_q4_0 *)dst, (size_t)n_in);
		fk_dequantize_row(type, dst, m.wf + (size_t)r * n_in, (size_t)n_in);
	}
	for (int i = 0; i < n_in; i++)
		m.x[i] = gauss();
	free(row);
	return m;
}

static void free_mat(struct mat *m)
{
	free(m->w);
	free(m->wf);
	free(m->x);
}

/* The canonical arithmetic, written from docs/runtime.md without the
 * library's code: x to q8 with roundf(x / (amax / 127)) and a float scale;
 * per block and group of four an exact integer sum; sum (b % 2) * 8 + l
 * gets fma(dw * dx, p); for f32 value j feeds sum j % 16; then the sums
 * fold in halves (fold16). */

static float canonical_row(const struct mat *m, int r, const int8_t *xq, const float *xd)
{
	float acc[16] = {0};
	const char *row = (const char *)m->w + (size_t)r * m->row_bytes;
	if (m->type == FK_F32) {
		const float *w = (const float *)row;
		for (int j = 0; j < m->n_in; j++)
			acc[j % 16] = fmaf(w[j], m->x[j], acc[j % 16]);
		return fold16(acc);
	}
	for (int b = 0; b < m->n_in / 32; b++) {
		int q[32];
		uint16_t dh;
		if (m->type == FK_Q8_0) {
			const unsigned char *blk = (const unsigned char *)row + 34 * b;
			memcpy(&dh, blk, 2);
			for (int j = 0; j < 32; j++)
				q[j] = (signed char)blk[2 + j];
		} else {
			const unsigned char *blk = (const unsigned char *)row + 18 * b;
			memcpy(&dh, blk, 2);
			for (int j = 0; j < 16; j++) {
				q[j] = (blk[2 + j] & 15) - 8;
				q[j + 16] = (blk[2 + j] >> 4) - 8;
			}
		}
		const float d = fk_fp16_to_fp32(dh) * xd[b];
		for (int l = 0; l < 8; l++) {
			int p = 0;
			for (int k = 0; k < 4; k++)
				p += q[4 * l + k] * xq[32 * b + 4 * l + k];
			acc[(b % 2) * 8 + l] = fmaf(d, (float)p, acc[(b % 2) * 8 + l]);
		}
	}
	return fold16(acc);
}

static void quantize_x(const float *x, int n, int8_t *xq, float *xd)
{
	for (int b = 0; b < n / 32; b++) {
		float amax = 0;
		for (int j = 0; j < 32; j++)
			amax = fmaxf(amax, fabsf(x[32 * b + j]));
		const float d = amax / 127.0f, id = d ? 1.0f / d : 0.0f;
		xd[b] = d;
		for (int j = 0; j < 32; j++)
			xq[32 * b + j] = (int8_t)roundf(x[32 * b + j] * id);
	}
}

static const int shapes[][2] = {
	{ 32, 1 }, { 64, 7 }, { 96, 33 }, { 128, 5 }, { 160, 18 }, { 192, 9 }, { 224, 11 },
	{ 256, 64 }, { 2048, 67 }, { 5632, 3 },
};

static void check_paths(int type, int n_in, int n_out)
{
	struct mat m = make_mat(type, n_in, n_out);
	int8_t *xq = malloc((size_t)n_in);
	float *xd = malloc(sizeof(float) * (size_t)(n_in / 32 + 1));
	float *want = malloc(sizeof(float) * (size_t)n_out);
	float *y = malloc(sizeof(float) * (size_t)n_out);
	quantize_x(m.x, n_in, xq, xd);
	for (int r = 0; r < n_out; r++)
		want[r] = canonical_row(&m, r, xq, xd);

	/* the repacked layout of the same matrix must give the same bits; an
	 * odd offset checks that no path needs an aligned buffer */
	const int xtype = fk_repack_type(type);
	char *xbuf = NULL, *xw = NULL;
	if (xtype) {
		const size_t xbytes = fk_repack_bytes(type, n_in, n_out);
		cr_assert(xbytes > 0 && xbytes % 64 == 0);
		xbuf = malloc(xbytes + 1);
		xw = xbuf + (n_out % 2);
		cr_assert_eq(fk_repack(type, m.w, xw, n_in, n_out), 0);
	}
	for (int t = 1; t <= 3; t++) {
		fk_pool *p = fk_pool_create(t);
		for (int i = 0; i < n_isas; i++) {
			cr_assert_eq(fk_set_isa(isas[i]), 0);
			for (int layout = 0; layout <= (xtype != 0); layout++) {
				memset(y, 0xff, sizeof(float) * (size_t)n_out);
				fk_matvec(p, y, layout ? xw : m.w, layout ? xtype : type, m.x, n_in, n_out);
				for (int r = 0; r < n_out; r++)
					cr_assert_eq(bits(y[r]), bits(want[r]),
					             "%s %dx%d %s, %d threads, row %d: %.9g, canonical %.9g",
					             fk_type_name(layout ? xtype : type), n_out, n_in,
					             fk_isa_name(isas[i]), t, r, y[r], want[r]);
			}
		}
		fk_pool_destroy(p);
	}
	free(xbuf);
	free(xq);
	free(xd);
	free(want);
	free(y);
	free_mat(&m);
}

Test(matvec, every_path_is_the_canonical_arithmetic, .init = find_isas)
{
	/* repacked: every count of rows in a last group of 8 and of blocks in
	 * a last unit of 4 (and 8 rows x 1 block, 16 x 9) */
	for (int rows = 1; rows <= 17; rows++)
		for (int blocks = 1; blocks <= 9; blocks += rows % 2 ? 1 : 3) {
			check_paths(FK_Q8_0, 32 * blocks, rows);
			check_paths(FK_Q4_0, 32 * blocks, rows);
		}
	cr_log_info("paths on this CPU: %d (best %s)", n_isas, fk_isa_name(isas[n_isas - 1]));
	for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
		check_paths(FK_Q8_0, shapes[s][0], shapes[s][1]);
		check_paths(FK_Q4_0, shapes[s][0], shapes[s][1]);
		check_paths(FK_F32, shapes[s][0], shapes[s][1]);
	}
	/* f32 rows need no whole blocks: every tail length */
	for (int n = 1; n <= 40; n++)
		check_paths(FK_F32, n, 3);
	check_paths(FK_F32, 172, 9);
}

/* Ties of x / d at k + 0.5 must round away from zero on every path, and
 * w = -128 (never written by the quantizer, possible in a foreign file)
 * must multiply exactly. */
Test(matvec, rounding_ties_and_extreme_weights, .init = find_isas)
{
	enum { N = 64 };
	float x[N];
	fk_block_q8_0 w[2][2];
	for (int j = 0; j < N; j++)
		x[j] = (float)(j % 2 ? -1 : 1) * ((float)(j % 9) + 0.5f);
	x[0] = 127.0f;   /* amax 127: d = 1, x / d = x exactly */
	x[32] = -127.0f;
	for (int r = 0; r < 2; r++)
		for (int b = 0; b < 2; b++) {
			w[r][b].d = 0x3c00;
			for (int j = 0; j < 32; j++)
				w[r][b].qs[j] = (int8_t)(r ? -128 : (j * 37) % 255 - 127);
		}
	double want[2] = {0, 0};
	for (int r = 0; r < 2; r++)
		for (int j = 0; j < N; j++)
			want[r] += (double)w[r][j / 32].qs[j % 32] * roundf(x[j]);
	for (int i = 0; i < n_isas; i++) {
		float y[2];
		fk_set_isa(isas[i]);
		fk_matvec(NULL, y, w, FK_Q8_0, x, N, 2);
		for (int r = 0; r < 2; r++)
			cr_assert_eq(y[r], (float)want[r], "%s row %d: %.9g, expected %.9g",
			             fk_isa_name(isas[i]), r, y[r], want[r]);
	}
}

/* Against float64: f32 within the classic bound n * 2^-24 * sum |w x|
 * (doubled for the fold); quantized within the error that quantizing x
 * can make, half a step of each block's scale times that block's |w|. */
Test(matvec, close_to_float64, .init = find_isas)
{
	const int types[] = { FK_F32, FK_Q8_0, FK_Q4_0 };
	for (int ti = 0; ti < 3; ti++) {
		const int n_in = 2048, n_out = 96;
		struct mat m = make_mat(types[ti], n_in, n_out);
		float y[96];
		fk_set_isa(isas[n_isas - 1]);
		fk_matvec(NULL, y, m.w, m.type, m.x, n_in, n_out);
		double se = 0, sr = 0;
		for (int r = 0; r < n_out; r++) {
			const float *w = m.wf + (size_t)r * n_in;
			double ref = 0, mag = 0, qbound = 0;
			for (int b = 0; b < n_in / 32; b++) {
				double amax = 0, wsum = 0;
				for (int j = 32 * b; j < 32 * b + 32; j++) {
					ref += (double)w[j] * m.x[j];
					mag += fabs((double)w[j] * m.x[j]);
					amax = fmax(amax, fabs(m.x[j]));
					wsum += fabs(w[j]);
				}
				qbound += 0.5 * amax / 127.0 * 1.000001 * wsum;
			}
			double bound = 2.0 * n_in * 0x1p-24 * mag * 1.5;
			if (m.type != FK_F32)
				bound += qbound;
			const double e = fabs(y[r] - ref);
			cr_assert(e <= bound, "%s row %d: %.9g vs %.9g, error %g > bound %g",
			          fk_type_name(m.type), r, y[r], ref, e, bound);
			se += e * e;
			sr += ref * ref;
		}
		const double rel = sqrt(se / sr);
		cr_log_info("%s: relative RMS error against float64 %.2e", fk_type_name(m.type), rel);
		cr_assert(rel < (m.type == FK_F32 ? 1e-6 : 1e-2), "%s: relative RMS error %g",
		          fk_type_name(m.type), rel);
		free_mat(&m);
	}
}

/* Several products in one batch, sharing x or not, equal the products run
 * one by one, for any thread count. */
Test(matvec, batch_equals_single_products, .init = find_isas)
{
	struct mat a = make_mat(FK_Q8_0, 256, 77), b = make_mat(FK_Q8_0, 256, 13);
	struct mat c = make_mat(FK_F32, 256, 40), d = make_mat(FK_Q4_0, 512, 31);
	float ya[77], yb[13], yc[40], yd[31], za[77], zb[13], zc[40], zd[31];
	fk_set_isa(isas[n_isas - 1]);
	fk_matvec(NULL, za, a.w, a.type, a.x, 256, 77);
	fk_matvec(NULL, zb, b.w, b.type, a.x, 256, 13);
	fk_matvec(NULL, zc, c.w, c.type, c.x, 256, 40);
	fk_matvec(NULL, zd, d.w, d.type, d.x, 512, 31);
	for (int t = 1; t <= 4; t++) {
		fk_pool *p = fk_pool_create(t);
		const struct fk_matvec jobs[4] = {
			{ a.type, a.w, a.x, ya, 256, 77 },
			{ b.type, b.w, a.x, yb, 256, 13 },
			{ c.type, c.w, c.x, yc, 256, 40 },
			{ d.type, d.w, d.x, yd, 512, 31 },
		};
		fk_matvec_batch(p, jobs, 4);
		cr_assert(!memcmp(ya, za, sizeof za) && !memcmp(yb, zb, sizeof zb) &&
		          !memcmp(yc, zc, sizeof zc) && !memcmp(yd, zd, sizeof zd),
		          "batch on %d threads differs", t);
		fk_pool_destroy(p);
	}
	free_mat(&a);
	free_mat(&b);
	free_mat(&c);
	free_mat(&d);
}

/* Many jobs on many threads: every row of every job is written once and
 * right, whoever steals which grain (more jobs and threads than the
 * on-stack tables hold). */
Test(matvec, many_jobs_many_threads, .init = find_isas)
{
	enum { JOBS = 11 };
	struct mat m[JOBS];
	float *want[JOBS], *got[JOBS];
	struct fk_matvec jobs[JOBS];
	void *xw[JOBS] = {0};
	fk_set_isa(isas[n_isas - 1]);
	for (int i = 0; i < JOBS; i++) {
		const int type = i % 3 == 0 ? FK_F32 : i % 3 == 1 ? FK_Q8_0 : FK_Q4_0;
		m[i] = make_mat(type, 64 * (1 + i % 4), 300 + 37 * i);
		want[i] = malloc(sizeof(float) * (size_t)m[i].n_out);
		got[i] = malloc(sizeof(float) * (size_t)m[i].n_out);
		fk_matvec(NULL, want[i], m[i].w, type, m[i].x, m[i].n_in, m[i].n_out);
		jobs[i] = (struct fk_matvec){ type, m[i].w, m[i].x, got[i], m[i].n_in, m[i].n_out };
		/* every other quantized job repacked: grains of whole groups of 8 */
		if (fk_repack_type(type) && i % 2) {
			xw[i] = aligned_alloc(64, fk_repack_bytes(type, m[i].n_in, m[i].n_out));
			cr_assert_eq(fk_repack(type, m[i].w, xw[i], m[i].n_in, m[i].n_out), 0);
			jobs[i].type = fk_repack_type(type);
			jobs[i].w = xw[i];
		}
	}
	const int threads[] = { 2, 5, 19 };
	for (int t = 0; t < 3; t++) {
		fk_pool *p = fk_pool_create(threads[t]);
		for (int round = 0; round < 20; round++) {
			for (int i = 0; i < JOBS; i++)
				memset(got[i], 0xff, sizeof(float) * (size_t)m[i].n_out);
			fk_matvec_batch(p, jobs, JOBS);
			for (int i = 0; i < JOBS; i++)
				cr_assert(!memcmp(got[i], want[i], sizeof(float) * (size_t)m[i].n_out),
				          "%d threads, round %d: job %d differs", threads[t], round, i);
		}
		fk_pool_destroy(p);
	}
	for (int i = 0; i < JOBS; i++) {
		free(want[i]);
		free(got[i]);
		free(xw[i]);
		free_mat(&m[i]);
	}
}

/* ------------------------------------------------------------------ */
/* Vector operations                                                    */

Test(ops, rmsnorm_softmax_silu_against_float64)
{
	enum { N = 300 };
	float x[N], w[N], o[N];
	double ss = 0;
	for (int i = 0; i < N; i++) {
		x[i] = gauss() * 3;
		w[i] = 1 + 0.1f * gauss();
		ss += (double)x[i] * x[i];
	}
	fk_rmsnorm(o, x, w, N, 1e-5f);
	const double s = 1.0 / sqrt(ss / N + 1e-5);
	for (int i = 0; i < N; i++)
		cr_assert_float_eq(o[i], w[i] * x[i] * s, 1e-5 * (1 + fabs(w[i] * x[i] * s)), "rmsnorm %d", i);

	float p[N];
	memcpy(p, x, sizeof p);
	fk_softmax(p, N);
	double max = x[0], sum = 0, total = 0;
	for (int i = 1; i < N; i++)
		max = fmax(max, x[i]);
	for (int i = 0; i < N; i++)
		sum += exp(x[i] - max);
	for (int i = 0; i < N; i++) {
		cr_assert_float_eq(p[i], exp(x[i] - max) / sum, 1e-6, "softmax %d", i);
		total += p[i];
	}
	cr_assert_float_eq(total, 1.0, 1e-5);

	float a[N], g[N];
	memcpy(a, x, sizeof a);
	memcpy(g, x, sizeof g);
	fk_silu(a, N);
	fk_swiglu(g, w, N);
	for (int i = 0; i < N; i++) {
		const double si = x[i] / (1 + exp(-(double)x[i]));
		cr_assert_float_eq(a[i], si, 1e-6 * (1 + fabs(si)), "silu %d", i);
		cr_assert_float_eq(g[i], si * w[i], 1e-6 * (1 + fabs(si * w[i])), "swiglu %d", i);
	}
}

/* llama2.c's convention: pairs (2i, 2i+1) inside each head, frequency
 * theta^(-2i / head_size); a rotation keeps each pair's length. */
Test(ops, rope_adjacent_pairs)
{
	enum { HEADS = 3, HS = 8 };
	float x[HEADS * HS], y[HEADS * HS];
	for (int i = 0; i < HEADS * HS; i++)
		x[i] = y[i] = gauss();
	const int pos = 37;
	fk_rope(y, HEADS, HS, pos, 10000.0f);
	for (int h = 0; h < HEADS; h++)
		for (int i = 0; i < HS; i += 2) {
			const double a = pos * pow(10000.0, -(double)i / HS);
			const double x0 = x[h * HS + i], x1 = x[h * HS + i + 1];
			cr_assert_float_eq(y[h * HS + i], x0 * cos(a) - x1 * sin(a), 1e-5, "head %d pair %d", h, i);
			cr_assert_float_eq(y[h * HS + i + 1], x0 * sin(a) + x1 * cos(a), 1e-5, "head %d pair %d", h, i);
		}
	float z[HEADS * HS];
	memcpy(z, x, sizeof z);
	fk_rope(z, HEADS, HS, 0, 10000.0f);
	cr_assert(!memcmp(z, x, sizeof z), "position 0 is the identity");
}

/* ------------------------------------------------------------------ */
/* Thread pool                                                          */

struct count {
	int calls[8];
	int nth;
};

static void count_fn(void *ctx, int ith, int nth)
{
	struct count *c = ctx;
	c->calls[ith]++;
	if (ith == 0) /* one writer: every thread at once would be a data race */
		c->nth = nth;
}

static void pool_rounds(int threads, int rounds)
{
	fk_pool *p = fk_pool_create(threads);
	cr_assert(p);
	cr_assert_eq(fk_pool_size(p), threads);
	struct count c;
	memset(&c, 0, sizeof c);
	for (int r = 0; r < rounds; r++)
		fk_pool_run(p, count_fn, &c);
	for (int i = 0; i < threads; i++)
		cr_assert_eq(c.calls[i], rounds, "thread %d ran %d of %d rounds", i, c.calls[i], rounds);
	cr_assert_eq(c.nth, threads);
	fk_pool_destroy(p);
}

Test(pool, every_thread_once_per_run_spinning)
{
	pool_rounds(1, 100);
	pool_rounds(2, 20000);
	pool_rounds(4, 5000);
}

/* With no spinning every hand-off goes through the futex. */
Test(pool, every_thread_once_per_run_sleeping)
{
	setenv("FLEXPAGE_SPIN_US", "0", 1);
	pool_rounds(2, 5000);
	pool_rounds(3, 2000);
	unsetenv("FLEXPAGE_SPIN_US");
}

Test(isa, selection)
{
	cr_assert(fk_isa_supported(FK_ISA_SCALAR));
	cr_assert_eq(fk_set_isa(FK_ISA_SCALAR), 0);
	cr_assert_eq(fk_get_isa(), FK_ISA_SCALAR);
	cr_assert_eq(fk_isa_parse("avx2"), FK_ISA_AVX2);
	cr_assert_eq(fk_isa_parse("sse9"), -EINVAL);
	cr_assert(strstr(fk_last_error(), "'sse9'"), "%s", fk_last_error());
	cr_assert_str_eq(fk_isa_name(FK_ISA_AVX512), "avx512");
	cr_assert_eq(fk_set_isa(7), -EINVAL);
	cr_assert_eq(fk_get_isa(), FK_ISA_SCALAR, "a refused choice changes nothing");
	if (!fk_isa_supported(FK_ISA_AVX512)) {
		cr_assert_eq(fk_set_isa(FK_ISA_AVX512), -ENOTSUP);
		cr_assert(strstr(fk_last_error(), "avx512"), "%s", fk_last_error());
	}
}
