/* Internal to flexkern: the per-ISA kernels behind the public API. */
#ifndef FLEXKERN_INTERNAL_H
#define FLEXKERN_INTERNAL_H

#include <flexkern/kernels.h>

#include <string.h>

/* x quantized for the quantized products: q8_0 values with a float scale
 * per block (GGML keeps an fp16 scale here; float loses nothing for free),
 * and per block and per group of 4 values -128 * (sum of the 4 values),
 * where the AVX-512 path starts its unsigned-by-signed sums: with w + 128
 * as the unsigned factor, sum (w + 128) * x - 128 * sum x = sum w * x. */
struct fk_xq {
	float *d;        /* nb */
	int8_t *qs;      /* nb * 32, 64-byte aligned */
	int32_t *bias;   /* nb * 8, 64-byte aligned */
};

/* One ISA's kernels.  Every rows_* computes y[r] for r0 <= r < r1 with the
 * canonical arithmetic of docs/runtime.md ("bit-exact across paths"). */
struct fk_impl {
	void (*rows_f32)(const float *w, const float *x, float *y,
	                 int n_in, int r0, int r1);
	void (*rows_f16)(const uint16_t *w, const float *x, float *y,
	                 int n_in, int r0, int r1);
	void (*rows_q8_0)(const fk_block_q8_0 *w, const struct fk_xq *x, float *y,
	                  int n_in, int r0, int r1);
	void (*rows_q4_0)(const fk_block_q4_0 *w, const struct fk_xq *x, float *y,
	                  int n_in, int r0, int r1);
	/* The repacked layouts (repack.c): r0 is a multiple of 8; r1 is one
	 * too or n_out, and the rows of the last group past r1 are computed
	 * and dropped. */
	void (*rows_q8_0x8)(const uint8_t *w, const struct fk_xq *x, float *y,
	                    int n_in, int r0, int r1);
	void (*rows_q4_0x8)(const uint8_t *w, const struct fk_xq *x, float *y,
	                    int n_in, int r0, int r1);
	void (*quantize_x)(const float *x, const struct fk_xq *out, int n);
};

/* The repacked layout (kernels.h, fk_repack): groups of X8_ROWS rows,
 * units of X8_UNIT_BLOCKS blocks, X8_SCALES bytes of scales first. */
#define X8_ROWS 8
#define X8_UNIT_BLOCKS 4
#define X8_SCALES 64
/* Bytes of one row's two blocks in a step: q4_0 nibbles or q8_0 values. */
#define X8_STEP_ROW_Q4 32
#define X8_STEP_ROW_Q8 64
#define X8_UNIT_Q4 (X8_SCALES + 2 * X8_ROWS * X8_STEP_ROW_Q4)
#define X8_UNIT_Q8 (X8_SCALES + 2 * X8_ROWS * X8_STEP_ROW_Q8)

static inline int x8_units(int n_in)
{
	return (n_in / FK_QK + X8_UNIT_BLOCKS - 1) / X8_UNIT_BLOCKS;
}

/* Offsets in a group of rows of row r's (r < 8) block b: its scale and
 * its data (unit bytes a unit, step_row bytes a row in a step). */
static inline size_t x8_scale_at(int unit, int r, int b)
{
	return (size_t)(b / 4) * (size_t)unit + 2 * (size_t)(16 * ((b % 4) / 2) + 2 * r + b % 2);
}

static inline size_t x8_data_at(int unit, int step_row, int r, int b)
{
	return (size_t)(b / 4) * (size_t)unit + X8_SCALES +
	       (size_t)(((b % 4) / 2) * X8_ROWS + r) * (size_t)step_row +
	       (size_t)(b % 2) * (size_t)(step_row / 2);
}

/* The scale there; memcpy, since a repacked buffer need not be aligned. */
static inline uint16_t x8_scale(const uint8_t *group, int unit, int r, int b)
{
	uint16_t d;
	memcpy(&d, group + x8_scale_at(unit, r, b), sizeof d);
	return d;
}

extern const struct fk_impl fk_impl_scalar;
/* Shared by the AVX2 and AVX-512 tables (AVX2 instructions). */
void fk_quantize_x_avx2(const float *x, const struct fk_xq *out, int n);
extern const struct fk_impl fk_impl_avx2;
extern const struct fk_impl fk_impl_avx512;

/* 64-byte aligned memory owned by the pool, valid until the next call;
 * NULL if it cannot grow. */
void *fk_pool_scratch(fk_pool *p, size_t size);

/* Set errno and the calling thread's fk_last_error(); returns -errnum,
 * for `return fk_fail(EINVAL, ...)`. */
int fk_fail(int errnum, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The selected ISA's kernels (dispatch.c). */
const struct fk_impl *fk_impl_current(void);

/* 1 for the types whose products read x quantized to q8_0. */
static inline int fk_quantizes_x(int type)
{
	return type == FK_Q8_0 || type == FK_Q4_0 || type == FK_Q8_0_X8 || type == FK_Q4_0_X8;
}

/* The canonical final sum of 16 partial sums: (a[l] + a[l+8]), then halves
 * again, pairwise, as a SIMD horizontal sum does it. */
static inline float fk_reduce16(const float a[16])
{
	float s[8], t[4], u[2];
	for (int l = 0; l < 8; l++)
		s[l] = a[l] + a[l + 8];
	for (int l = 0; l < 4; l++)
		t[l] = s[l] + s[l + 4];
	for (int l = 0; l < 2; l++)
		u[l] = t[l] + t[l + 2];
	return u[0] + u[1];
}

#endif
