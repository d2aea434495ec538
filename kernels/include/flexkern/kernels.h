/* flexkern: the compute kernels of a transformer decode step.
 *
 * Matrix-vector products over f32, f16, q8_0 and q4_0 weights (row-major
 * [out][in], GGML's block layouts), the small vector operations around
 * them (rmsnorm, softmax, rope, silu), fp16 conversion, quantization, and a
 * thread pool that splits a product's rows over threads.
 *
 * Every matrix-vector path (scalar, AVX2, AVX-512) computes each output with
 * the same arithmetic in the same order, so all paths and all thread counts
 * give bit-identical results; docs/runtime.md states that order.  The path
 * is chosen at run time from the CPU; FLEXPAGE_KERNELS=scalar|avx2|avx512
 * in the environment or fk_set_isa() forces one.
 *
 * Weights are only read, through const pointers: they may live in any
 * memory, including a region that a pager fills on demand.
 */
#ifndef FLEXKERN_KERNELS_H
#define FLEXKERN_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ */
/* Types and block layouts                                              */

/* Element types; the numbers are GGML's (and the image format's). */
enum fk_type {
	FK_F32 = 0,
	FK_F16 = 1,              /* IEEE binary16, little-endian */
	FK_Q4_0 = 2,
	FK_Q8_0 = 8,
};

#define FK_QK 32 /* values per quantized block */

/* GGML's block_q8_0: 34 bytes, value j = qs[j] * d. */
typedef struct {
	uint16_t d;              /* scale, IEEE binary16 */
	int8_t qs[FK_QK];
} fk_block_q8_0;

/* GGML's block_q4_0: 18 bytes.  qs[j] holds value j in its low nibble and
 * value j + 16 in its high nibble; value = (nibble - 8) * d. */
typedef struct {
	uint16_t d;              /* scale, IEEE binary16 */
	uint8_t qs[FK_QK / 2];
} fk_block_q4_0;

/* "f32", "f16", "q8_0", "q4_0", or NULL. */
const char *fk_type_name(int type);
/* -1 if unknown. */
int fk_type_parse(const char *name);
/* Bytes of a row of n values; 0 if the type is unknown or n is not a whole
 * number of blocks. */
size_t fk_row_bytes(int type, size_t n);

/* ------------------------------------------------------------------ */
/* Conversion and quantization (scalar, exact, used by tools too)       */

/* Exact; NaN stays NaN (quieted), like the F16C instructions. */
float fk_fp16_to_fp32(uint16_t h);
/* Round to nearest even, overflow to infinity, like F16C. */
uint16_t fk_fp32_to_fp16(float f);

/* GGML's reference quantizers (quantize_row_q8_0_ref, _q4_0_ref): the same
 * scale, the same rounding, the same bytes.  n is a multiple of FK_QK. */
void fk_quantize_row_q8_0(const float *x, fk_block_q8_0 *y, size_t n);
void fk_quantize_row_q4_0(const float *x, fk_block_q4_0 *y, size_t n);
/* A row of any fk_type back to floats. */
void fk_dequantize_row(int type, const void *src, float *dst, size_t n);

/* ------------------------------------------------------------------ */
/* Instruction set                                                      */

enum fk_isa {
	FK_ISA_SCALAR = 0,
	FK_ISA_AVX2 = 1,   /* AVX2 + FMA + F16C */
	FK_ISA_AVX512 = 2, /* AVX-512 F/BW/VL + VNNI */
};

const char *fk_isa_name(int isa);
int fk_isa_parse(const char *name);      /* -1 if unknown */
int fk_isa_supported(int isa);           /* by this CPU */
/* The path in use: the best the CPU has, unless FLEXPAGE_KERNELS or
 * fk_set_isa() chose another. */
int fk_get_isa(void);
/* -1 if the CPU lacks it.  Not to be called while a product runs. */
int fk_set_isa(int isa);

/* ------------------------------------------------------------------ */
/* Thread pool                                                          */

typedef struct fk_pool fk_pool;

/* n_threads counts the caller, which takes part in every run; 1 makes no
 * thread.  Idle workers spin briefly (FLEXPAGE_SPIN_US, default 50), then
 * sleep on a futex.  NULL if a thread cannot be made. */
fk_pool *fk_pool_create(int n_threads);
void fk_pool_destroy(fk_pool *p);
int fk_pool_size(const fk_pool *p);
/* Call fn(ctx, ith, nth) once on each of the nth threads (the caller is
 * ith 0) and return when all have returned.  One caller at a time. */
void fk_pool_run(fk_pool *p, void (*fn)(void *ctx, int ith, int nth), void *ctx);

/* ------------------------------------------------------------------ */
/* Matrix-vector products                                               */

/* y[r] = sum_i W[r][i] * x[i] for r < n_out.  f16 weights are converted
 * exactly to float and multiplied as f32 ones are.  For q8_0 and q4_0, x
 * is first quantized to q8_0 blocks with a float scale (GGML's rounding),
 * and each block's product is an exact integer dot product; see
 * docs/runtime.md. */
struct fk_matvec {
	int type;                /* enum fk_type of w */
	const void *w;           /* n_out rows of n_in values */
	const float *x;          /* n_in */
	float *y;                /* n_out; must not overlap x */
	int n_in, n_out;         /* n_in a multiple of FK_QK if quantized */
};

/* Run several products as one split of their rows over the pool's threads
 * (one wake-up, one barrier); jobs with the same x quantize it once. */
void fk_matvec_batch(fk_pool *p, const struct fk_matvec *jobs, int n_jobs);
void fk_matvec(fk_pool *p, float *y, const void *w, int type,
               const float *x, int n_in, int n_out);

/* ------------------------------------------------------------------ */
/* Vector operations (scalar: a decode step spends its time in matvec)  */

/* o = x / sqrt(mean(x^2) + eps) * w; o may be x. */
void fk_rmsnorm(float *o, const float *x, const float *w, int n, float eps);
/* In place, max-subtracted. */
void fk_softmax(float *x, int n);
/* Rotate adjacent pairs (x[2i], x[2i+1]) of each head by pos * theta^(-2i/head_size). */
void fk_rope(float *x, int n_heads, int head_size, int pos, float theta);
/* x * sigmoid(x), in place. */
void fk_silu(float *x, int n);
/* gate = silu(gate) * up. */
void fk_swiglu(float *gate, const float *up, int n);
/* Sum of a[i] * b[i] in float: eight running sums (i % 8), then folded
 * pairwise; the same result on every CPU. */
float fk_dot_f32(const float *a, const float *b, int n);
/* y += a * x. */
void fk_axpy(float *y, float a, const float *x, int n);

#ifdef __cplusplus
}
#endif
#endif
