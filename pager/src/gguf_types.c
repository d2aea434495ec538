/* ggml's tensor types, by the numbers and sizes ggml.c's type_traits table
 * gives them (block values, block bytes), and GGUF's metadata value types. */
#include <errno.h>
#include <stddef.h>

#include "format.h"

static const struct {
	const char *name;
	uint32_t block_elems, block_bytes;
} ggml_types[FP_GGML_NTYPES] = {
	[FP_GGML_F32] = {"f32", 1, 4},
	[FP_GGML_F16] = {"f16", 1, 2},
	[FP_GGML_Q4_0] = {"q4_0", 32, 2 + 16},
	[FP_GGML_Q4_1] = {"q4_1", 32, 2 * 2 + 16},
	[FP_GGML_Q5_0] = {"q5_0", 32, 2 + 4 + 16},
	[FP_GGML_Q5_1] = {"q5_1", 32, 2 * 2 + 4 + 16},
	[FP_GGML_Q8_0] = {"q8_0", 32, 2 + 32},
	[FP_GGML_Q8_1] = {"q8_1", 32, 2 * 2 + 32},
	/* K-quants: super-blocks of 256 values */
	[FP_GGML_Q2_K] = {"q2_K", 256, 2 * 2 + 256 / 16 + 256 / 4},           /* 84 */
	[FP_GGML_Q3_K] = {"q3_K", 256, 2 + 256 / 4 + 256 / 8 + 12},           /* 110 */
	[FP_GGML_Q4_K] = {"q4_K", 256, 2 * 2 + 12 + 256 / 2},                 /* 144 */
	[FP_GGML_Q5_K] = {"q5_K", 256, 2 * 2 + 12 + 256 / 2 + 256 / 8},       /* 176 */
	[FP_GGML_Q6_K] = {"q6_K", 256, 2 + 256 / 16 + 3 * 256 / 4},           /* 210 */
	[FP_GGML_Q8_K] = {"q8_K", 256, 4 + 256 + 256 / 16 * 2},               /* 292 */
	/* importance quants */
	[FP_GGML_IQ2_XXS] = {"iq2_xxs", 256, 2 + 256 / 8 * 2},                /* 66 */
	[FP_GGML_IQ2_XS] = {"iq2_xs", 256, 2 + 256 / 8 * 2 + 256 / 32},       /* 74 */
	[FP_GGML_IQ3_XXS] = {"iq3_xxs", 256, 2 + 3 * (256 / 8)},              /* 98 */
	[FP_GGML_IQ1_S] = {"iq1_s", 256, 2 + 256 / 8 + 256 / 16},             /* 50 */
	[FP_GGML_IQ4_NL] = {"iq4_nl", 32, 2 + 16},
	[FP_GGML_IQ3_S] = {"iq3_s", 256, 2 + 13 * (256 / 32) + 256 / 64},     /* 110 */
	[FP_GGML_IQ2_S] = {"iq2_s", 256, 2 + 256 / 4 + 256 / 16},             /* 82 */
	[FP_GGML_IQ4_XS] = {"iq4_xs", 256, 2 + 2 + 256 / 64 + 256 / 2},       /* 136 */
	[FP_GGML_I8] = {"i8", 1, 1},
	[FP_GGML_I16] = {"i16", 1, 2},
	[FP_GGML_I32] = {"i32", 1, 4},
	[FP_GGML_I64] = {"i64", 1, 8},
	[FP_GGML_F64] = {"f64", 1, 8},
	[FP_GGML_IQ1_M] = {"iq1_m", 256, 256 / 8 + 256 / 16 + 256 / 32},      /* 56 */
	[FP_GGML_BF16] = {"bf16", 1, 2},
	/* ternary */
	[FP_GGML_TQ1_0] = {"tq1_0", 256, 2 + 256 / 64 + (256 - 4 * 256 / 64) / 5}, /* 54 */
	[FP_GGML_TQ2_0] = {"tq2_0", 256, 2 + 256 / 4},                        /* 66 */
	/* microscaling fp4 */
	[FP_GGML_MXFP4] = {"mxfp4", 32, 1 + 16},
	[FP_GGML_NVFP4] = {"nvfp4", 64, 64 / 16 + 64 / 2},                    /* 36 */
	[FP_GGML_Q1_0] = {"q1_0", 128, 2 + 128 / 8},                          /* 18 */
};

const char *fp_ggml_type_name(uint32_t type)
{
	return type < FP_GGML_NTYPES ? ggml_types[type].name : NULL;
}

int fp_ggml_type_size(uint32_t type, uint32_t *block_elems, uint32_t *block_bytes)
{
	if (!fp_ggml_type_name(type))
		return -EINVAL;
	if (block_elems)
		*block_elems = ggml_types[type].block_elems;
	if (block_bytes)
		*block_bytes = ggml_types[type].block_bytes;
	return 0;
}

int fp_ggml_nbytes(uint32_t type, uint32_t n_dims, const uint64_t *ne, uint64_t *bytes)
{
	uint32_t be, bb;
	if (fp_ggml_type_size(type, &be, &bb) || n_dims > 4)
		return -EINVAL;
	uint64_t n0 = n_dims ? ne[0] : 1;
	if (n0 % be)
		return -EDOM;
	uint64_t n = n0 / be * bb;
	for (uint32_t d = 1; d < n_dims; d++)
		if (__builtin_mul_overflow(n, ne[d], &n))
			return -EOVERFLOW;
	/* ggml holds sizes and element counts in int64_t */
	uint64_t elems = n0;
	for (uint32_t d = 1; d < n_dims; d++)
		if (__builtin_mul_overflow(elems, ne[d], &elems))
			return -EOVERFLOW;
	if (n > INT64_MAX || elems > INT64_MAX)
		return -EOVERFLOW;
	*bytes = n;
	return 0;
}

const char *fp_gguf_type_name(int vtype)
{
	static const char *const names[FP_GGUF_NTYPES] = {
		"u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "str", "arr", "u64", "i64", "f64",
	};
	return vtype >= 0 && vtype < FP_GGUF_NTYPES ? names[vtype] : NULL;
}

uint32_t fp_gguf_type_size(int vtype)
{
	static const uint8_t size[FP_GGUF_NTYPES] = {
		[FP_GGUF_UINT8] = 1, [FP_GGUF_INT8] = 1, [FP_GGUF_UINT16] = 2, [FP_GGUF_INT16] = 2,
		[FP_GGUF_UINT32] = 4, [FP_GGUF_INT32] = 4, [FP_GGUF_FLOAT32] = 4, [FP_GGUF_BOOL] = 1,
		[FP_GGUF_UINT64] = 8, [FP_GGUF_INT64] = 8, [FP_GGUF_FLOAT64] = 8,
	};
	return vtype >= 0 && vtype < FP_GGUF_NTYPES ? size[vtype] : 0;
}

int pg_verbatim_tensor_bytes(uint32_t type, uint32_t ndim, const uint64_t *shape, uint64_t *bytes)
{
	if (ndim < 1 || ndim > FP_MAX_DIMS)
		return -EINVAL;
	/* flexpage's opaque bytes take what ggml's i8 takes */
	return fp_ggml_nbytes(type == FP_TYPE_U8 ? FP_GGML_I8 : type, ndim, shape, bytes);
}
