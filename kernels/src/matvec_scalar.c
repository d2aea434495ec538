/* The reference kernels.  They define the canonical arithmetic that the
 * SIMD paths reproduce bit for bit (docs/runtime.md):
 *
 * f32:  16 running sums, value j feeding sum j % 16 with one fused
 *       multiply-add each; then fk_reduce16.
 * f16:  the same, each weight first converted exactly to float.
 * q8_0, q4_0 against x quantized to q8_0: per block b and per group l of
 *       4 values, the exact integer p = sum of w*x over values 4l..4l+3;
 *       sum (b % 2) * 8 + l += fma(dw_b * dx_b, p); then fk_reduce16.
 *       The repacked layouts (repack.c) hold the same blocks elsewhere and
 *       go through the same arithmetic.
 *
 * Sums of 16 lanes and groups of 4 are what AVX2 (two 8-lane registers)
 * and AVX-512 (one 16-lane register) compute naturally. */
#include "internal.h"

#include <math.h>

static void rows_f32(const float *w, const float *x, float *y,
                     int n_in, int r0, int r1)
{
	for (int r = r0; r < r1; r++) {
		const float *row = w + (size_t)r * n_in;
		float acc[16] = {0};
		for (int j = 0; j < n_in; j++)
			acc[j % 16] = fmaf(row[j], x[j], acc[j % 16]);
		y[r] = fk_reduce16(acc);
	}
}

static void rows_f16(const uint16_t *w, const float *x, float *y,
                     int n_in, int r0, int r1)
{
	for (int r = r0; r < r1; r++) {
		const uint16_t *row = w + (size_t)r * n_in;
		float acc[16] = {0};
		for (int j = 0; j < n_in; j++)
			acc[j % 16] = fmaf(fk_fp16_to_fp32(row[j]), x[j], acc[j % 16]);
		y[r] = fk_reduce16(acc);
	}
}

/* One block b of a row into its 8 sums a (acc + (b % 2) * 8): dh its
 * scale, qs its 32 values (q8_0) or 16 bytes of nibbles (q4_0). */
static void block_q8(uint16_t dh, const int8_t *qs, const struct fk_xq *x, int b, float *a)
{
	const float d = fk_fp16_to_fp32(dh) * x->d[b];
	const int8_t *xq = x->qs + b * FK_QK;
	for (int l = 0; l < 8; l++) {
		int p = 0;
		for (int k = 4 * l; k < 4 * l + 4; k++)
			p += qs[k] * xq[k];
		a[l] = fmaf(d, (float)p, a[l]);
	}
}

static void block_q4(uint16_t dh, const uint8_t *qs, const struct fk_xq *x, int b, float *a)
{
	const float d = fk_fp16_to_fp32(dh) * x->d[b];
	const int8_t *xq = x->qs + b * FK_QK;
	for (int l = 0; l < 8; l++) {
		int p = 0;
		for (int k = 4 * l; k < 4 * l + 4; k++) {
			const int q = k < 16 ? (qs[k] & 0x0f) : (qs[k - 16] >> 4);
			p += (q - 8) * xq[k];
		}
		a[l] = fmaf(d, (float)p, a[l]);
	}
}

static void rows_q8_0(const fk_block_q8_0 *w, const struct fk_xq *x, float *y,
                      int n_in, int r0, int r1)
{
	const int nb = n_in / FK_QK;
	for (int r = r0; r < r1; r++) {
		const fk_block_q8_0 *row = w + (size_t)r * nb;
		float acc[16] = {0};
		for (int b = 0; b < nb; b++)
			block_q8(row[b].d, row[b].qs, x, b, acc + (b & 1) * 8);
		y[r] = fk_reduce16(acc);
	}
}

static void rows_q4_0(const fk_block_q4_0 *w, const struct fk_xq *x, float *y,
                      int n_in, int r0, int r1)
{
	const int nb = n_in / FK_QK;
	for (int r = r0; r < r1; r++) {
		const fk_block_q4_0 *row = w + (size_t)r * nb;
		float acc[16] = {0};
		for (int b = 0; b < nb; b++)
			block_q4(row[b].d, row[b].qs, x, b, acc + (b & 1) * 8);
		y[r] = fk_reduce16(acc);
	}
}

/* The repacked layouts: the same blocks in the same order per row, found
 * where repack.c put them. */
static void rows_q8_0x8(const uint8_t *w, const struct fk_xq *x, float *y,
                        int n_in, int r0, int r1)
{
	const int nb = n_in / FK_QK;
	const size_t group = (size_t)x8_units(n_in) * X8_UNIT_Q8;
	for (int r = r0; r < r1; r++) {
		const uint8_t *g = w + (size_t)(r / X8_ROWS) * group;
		float acc[16] = {0};
		for (int b = 0; b < nb; b++)
			block_q8(x8_scale(g, X8_UNIT_Q8, r % X8_ROWS, b),
			         (const int8_t *)g + x8_data_at(X8_UNIT_Q8, X8_STEP_ROW_Q8, r % X8_ROWS, b),
			         x, b, acc + (b & 1) * 8);
		y[r] = fk_reduce16(acc);
	}
}

static void rows_q4_0x8(const uint8_t *w, const struct fk_xq *x, float *y,
                        int n_in, int r0, int r1)
{
	const int nb = n_in / FK_QK;
	const size_t group = (size_t)x8_units(n_in) * X8_UNIT_Q4;
	for (int r = r0; r < r1; r++) {
		const uint8_t *g = w + (size_t)(r / X8_ROWS) * group;
		float acc[16] = {0};
		for (int b = 0; b < nb; b++)
			block_q4(x8_scale(g, X8_UNIT_Q4, r % X8_ROWS, b),
			         g + x8_data_at(X8_UNIT_Q4, X8_STEP_ROW_Q4, r % X8_ROWS, b),
			         x, b, acc + (b & 1) * 8);
		y[r] = fk_reduce16(acc);
	}
}

/* GGML's q8_0 rounding (round half away from zero of x / (amax / 127)),
 * with the scale kept in float. */
static void quantize_x(const float *x, const struct fk_xq *out, int n)
{
	for (int b = 0; b < n / FK_QK; b++) {
		const float *xb = x + b * FK_QK;
		int8_t *q = out->qs + b * FK_QK;
		float amax = 0.0f;
		for (int j = 0; j < FK_QK; j++)
			amax = fmaxf(amax, fabsf(xb[j]));
		const float d = amax / 127.0f;
		const float id = d ? 1.0f / d : 0.0f;
		out->d[b] = d;
		for (int j = 0; j < FK_QK; j++) {
			const float v = fminf(fmaxf(roundf(xb[j] * id), -127.0f), 127.0f);
			q[j] = (int8_t)v;
		}
		for (int l = 0; l < 8; l++)
			out->bias[b * 8 + l] = -128 * (q[4 * l] + q[4 * l + 1] +
			                               q[4 * l + 2] + q[4 * l + 3]);
	}
}

const struct fk_impl fk_impl_scalar = {
	.rows_f32 = rows_f32,
	.rows_f16 = rows_f16,
	.rows_q8_0 = rows_q8_0,
	.rows_q4_0 = rows_q4_0,
	.rows_q8_0x8 = rows_q8_0x8,
	.rows_q4_0x8 = rows_q4_0x8,
	.quantize_x = quantize_x,
};
