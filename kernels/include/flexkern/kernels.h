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
 * memory, including a region that a pager fills on demand; a product then
 * blocks in the page faults it takes, on whichever thread reads the rows.
 *
 * Errors: a function that can fail returns a negative errno (or NULL with
 * errno set) and leaves a message for people in fk_last_error().  Lookups
 * (fk_type_name, fk_isa_name, fk_row_bytes, fk_isa_supported) answer NULL
 * or 0 for what they do not know and leave no message.
 *
 * Threads: every function may be called from any thread, except where its
 * block says otherwise (fk_set_isa, and a pool's runs, one caller at a time).
 */
#ifndef FLEXKERN_KERNELS_H
#define FLEXKERN_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The message of the calling thread's latest flexkern failure, for people
 * (tests and programs act on the returned code, not on this text).
 * @return never NULL ("no error" before any failure); valid until the
 *         thread's next failing call into flexkern.  Any thread. */
const char *fk_last_error(void);

/* ------------------------------------------------------------------ */
/* Types and block layouts                                              */

/* Element types; the numbers are GGML's (and the image format's). */
enum fk_type {
	FK_F32 = 0,
	FK_F16 = 1,              /* IEEE binary16, little-endian */
	FK_Q4_0 = 2,
	FK_Q8_0 = 8,
	/* Layouts of whole matrices that only fk_repack() writes (never in a
	 * file): q4_0 and q8_0 blocks of 8 rows interleaved, see fk_repack. */
	FK_Q4_0_X8 = 0x102,
	FK_Q8_0_X8 = 0x108,
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

/* The name of an enum fk_type.
 * @return "f32", "f16", "q8_0", "q4_0", "q4_0x8" or "q8_0x8" (static
 *         storage); NULL for any other value. */
const char *fk_type_name(int type);
/* The enum fk_type named name ("f32", "f16", "q8_0", "q4_0"; case matters;
 * the repacked layouts are not file types and are not parsed).
 * @return the type (>= 0); -EINVAL if name is NULL or no type's name, with
 *         the name in fk_last_error(). */
int fk_type_parse(const char *name);
/* Bytes of a row of n values of type.
 * @return the size; 0 if the type is unknown or a repacked layout (whose
 *         rows are not stored one by one: see fk_repack_bytes), or n is
 *         not a whole number of blocks (FK_QK) of a quantized type. */
size_t fk_row_bytes(int type, size_t n);

/* ------------------------------------------------------------------ */
/* Repacked layouts                                                     */

/* A q4_0 or q8_0 matrix with its rows in groups of 8 and, within a group,
 * their blocks interleaved so that one stream of memory feeds 8 rows at a
 * time: the products then load x and build its scales once per 8 rows.
 * Each row keeps its own canonical arithmetic (docs/runtime.md), so a
 * product over the repacked matrix gives the same bits as over the
 * original, on every path and thread count.
 *
 * The layout (docs/runtime.md, "Repacked layout"): group g holds rows
 * 8g..8g+7 as ceil(nb / 4) units of 4 blocks (nb = n_in / FK_QK).  A unit
 * is 64 bytes of scales, then for each of its two steps (blocks 2s, 2s+1
 * of the unit) the 8 rows' data of those two blocks, one row after the
 * other: 2 x 16 bytes of nibbles (q4_0) or 2 x 32 bytes of values (q8_0).
 * Scale 16s + 2r + o is row r's block 2s + o.  Rows and blocks past the
 * matrix are zero bytes.  Units are 576 (q4_0) or 1088 (q8_0) bytes,
 * multiples of 64: an aligned buffer keeps every load in one line. */

/* The repacked type of type: FK_Q4_0_X8 for FK_Q4_0, FK_Q8_0_X8 for
 * FK_Q8_0.
 * @return the type; 0 (FK_F32) for a type that has no repacked layout. */
int fk_repack_type(int type);
/* Bytes of an n_out x n_in matrix of type repacked.
 * @return the size (a multiple of 64); 0 if fk_repack_type(type) is 0,
 *         n_in is not a positive multiple of FK_QK or n_out is not
 *         positive. */
size_t fk_repack_bytes(int type, int n_in, int n_out);
/* Write the n_out x n_in matrix w of type into dst, fk_repack_bytes(type,
 * n_in, n_out) bytes, in the repacked layout; products then take dst with
 * type fk_repack_type(type).  dst is best 64-byte aligned (any alignment
 * works).
 * @return 0; -EINVAL (with the reason in fk_last_error()) if the type or
 *         the sizes are ones fk_repack_bytes answers 0 for.
 * Preconditions: w and dst do not overlap.  Any thread; reads every byte
 * of w once. */
int fk_repack(int type, const void *w, void *dst, int n_in, int n_out);

/* ------------------------------------------------------------------ */
/* Conversion and quantization (scalar, exact, used by tools too)       */

/* IEEE binary16 to float, exactly; NaN stays NaN (quieted), like the F16C
 * instructions.  Cannot fail. */
float fk_fp16_to_fp32(uint16_t h);
/* float to IEEE binary16: round to nearest even, overflow to infinity,
 * like F16C.  Cannot fail. */
uint16_t fk_fp32_to_fp16(float f);

/* GGML's reference quantizers (quantize_row_q8_0_ref, _q4_0_ref): the same
 * scale, the same rounding, the same bytes.  Quantize the n floats of x
 * into n / FK_QK blocks at y.
 * Preconditions: n is a multiple of FK_QK (a partial last block is not
 * written); x and y do not overlap.  Cannot fail. */
void fk_quantize_row_q8_0(const float *x, fk_block_q8_0 *y, size_t n);
void fk_quantize_row_q4_0(const float *x, fk_block_q4_0 *y, size_t n);
/* A row of n values of any fk_type at src back to n floats at dst.
 * Preconditions: a known type (an unknown one or a repacked layout, which
 * has no rows of its own, writes nothing); for a
 * quantized type n is a multiple of FK_QK; src and dst do not overlap.
 * Cannot fail. */
void fk_dequantize_row(int type, const void *src, float *dst, size_t n);

/* ------------------------------------------------------------------ */
/* Instruction set                                                      */

enum fk_isa {
	FK_ISA_SCALAR = 0,
	FK_ISA_AVX2 = 1,   /* AVX2 + FMA + F16C */
	FK_ISA_AVX512 = 2, /* AVX-512 F/BW/VL + VNNI */
};

/* @return "scalar", "avx2" or "avx512" (static storage); NULL for any
 *         other value. */
const char *fk_isa_name(int isa);
/* The enum fk_isa named name.
 * @return the ISA (>= 0); -EINVAL if name is NULL or no ISA's name, with
 *         the name in fk_last_error(). */
int fk_isa_parse(const char *name);
/* @return 1 if this CPU has every instruction the path uses, else 0 (also
 *         for an unknown isa). */
int fk_isa_supported(int isa);
/* The path the products use, process-wide: chosen on the first call as
 * the best the CPU has, unless FLEXPAGE_KERNELS names another the CPU has
 * (an unknown or unsupported name falls back to the best), or fk_set_isa()
 * chose one.
 * @return an enum fk_isa the CPU supports.  Any thread. */
int fk_get_isa(void);
/* Make the products use isa from now on, process-wide.
 * @return 0; -EINVAL if isa is no enum fk_isa, -ENOTSUP if this CPU lacks
 *         it (the path in use is then unchanged).
 * Threads: any, but not while a product runs on any thread (the paths give
 * the same bits; a switch mid-product is still not supported). */
int fk_set_isa(int isa);

/* ------------------------------------------------------------------ */
/* Thread pool                                                          */

typedef struct fk_pool fk_pool;

/* Make a pool of n_threads threads, the caller counted: it takes part in
 * every run, so n_threads - 1 workers start (none for 1; below 1 counts as
 * 1).  Idle workers spin briefly (FLEXPAGE_SPIN_US microseconds, default
 * 50), then sleep on a futex.
 * @return the pool; NULL with errno ENOMEM, or the error of
 *         pthread_create (EAGAIN...) when a worker cannot start (those
 *         that did are joined).  Any thread. */
fk_pool *fk_pool_create(int n_threads);
/* Stop and join the workers and free the pool; NULL does nothing.
 * Preconditions: no fk_pool_run or product on p is in progress.
 * Blocks until every worker has exited (at most one futex wake-up). */
void fk_pool_destroy(fk_pool *p);
/* @return the threads of p, the caller counted; 1 for NULL. */
int fk_pool_size(const fk_pool *p);
/* Call fn(ctx, ith, nth) once on each of the nth = fk_pool_size(p) threads
 * (the caller is ith 0) and return when all have returned.  NULL p runs
 * fn(ctx, 0, 1) on the caller.  Cannot fail.
 * Threads: one caller at a time per pool (products on p count).  Blocks
 * until every thread has returned from fn: spinning briefly, then on a
 * futex. */
void fk_pool_run(fk_pool *p, void (*fn)(void *ctx, int ith, int nth), void *ctx);

/* ------------------------------------------------------------------ */
/* Matrix-vector products                                               */

/* y[r] = sum_i W[r][i] * x[i] for r < n_out.  f16 weights are converted
 * exactly to float and multiplied as f32 ones are.  For q8_0 and q4_0, x
 * is first quantized to q8_0 blocks with a float scale (GGML's rounding),
 * and each block's product is an exact integer dot product; see
 * docs/runtime.md. */
struct fk_matvec {
	int type;                /* enum fk_type of w (a repacked one too) */
	const void *w;           /* n_out rows of n_in values */
	const float *x;          /* n_in */
	float *y;                /* n_out; must not overlap x */
	int n_in, n_out;         /* n_in a multiple of FK_QK if quantized */
};

/* Run n_jobs products as one split of their rows over p's threads (one
 * wake-up, one barrier); jobs with the same x quantize it once.  A product
 * too small to pay for a wake-up runs on the caller alone; NULL p runs all
 * on the caller.  The result does not depend on the thread count or the
 * ISA (see the top of this file).
 * Preconditions: each job's type is known, its n_in a multiple of FK_QK
 * if quantized, its y overlaps no x and no other job's y.
 * Cannot fail: the scratch is the pool's, grown once; if even that
 * allocation fails the process aborts.
 * Threads: one caller at a time per pool, as fk_pool_run.  Blocks until
 * every row is done, including the page faults the rows of w take. */
void fk_matvec_batch(fk_pool *p, const struct fk_matvec *jobs, int n_jobs);
/* One product y = W x: fk_matvec_batch of a single job. */
void fk_matvec(fk_pool *p, float *y, const void *w, int type,
               const float *x, int n_in, int n_out);

/* ------------------------------------------------------------------ */
/* Vector operations (scalar: a decode step spends its time in matvec)  */
/* On the calling thread; they cannot fail.  n counts floats.             */

/* o = x / sqrt(mean(x^2) + eps) * w (sum of squares in double); o may be
 * x. */
void fk_rmsnorm(float *o, const float *x, const float *w, int n, float eps);
/* Softmax of x in place, max-subtracted (sum in double); n <= 0 does
 * nothing. */
void fk_softmax(float *x, int n);
/* Rotate adjacent pairs (x[2i], x[2i+1]) of each of n_heads heads of
 * head_size floats by pos * theta^(-2i/head_size) (angle in double).
 * Precondition: head_size is even. */
void fk_rope(float *x, int n_heads, int head_size, int pos, float theta);
/* x * sigmoid(x), in place. */
void fk_silu(float *x, int n);
/* gate = silu(gate) * up. */
void fk_swiglu(float *gate, const float *up, int n);
/* Sum of a[i] * b[i] in float: eight running sums (i % 8), then folded
 * pairwise; the same result on every CPU. */
float fk_dot_f32(const float *a, const float *b, int n);
/* y += a * x; y and x do not overlap. */
void fk_axpy(float *y, float a, const float *x, int n);

#ifdef __cplusplus
}
#endif
#endif
