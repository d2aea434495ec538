/* Tensor element types and codecs: names and sizes. */
#include <errno.h>
#include <string.h>

#include "format.h"

static const struct {
	uint32_t type;
	const char *name;
	uint32_t block_values, block_bytes;
} types[] = {
	{FP_TYPE_F32, "f32", 1, 4},
	{FP_TYPE_F16, "f16", 1, 2},
	{FP_TYPE_Q4_0, "q4_0", 32, 18},
	{FP_TYPE_Q8_0, "q8_0", 32, 34},
	{FP_TYPE_U8, "u8", 1, 1},
};

const char *fp_type_name(uint32_t type)
{
	for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
		if (types[i].type == type)
			return types[i].name;
	return NULL;
}

int fp_type_parse(const char *name)
{
	for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
		if (!strcmp(types[i].name, name))
			return (int)types[i].type;
	return -EINVAL;
}

const char *fp_codec_name(uint32_t codec)
{
	switch (codec) {
	case FP_CODEC_RAW: return "raw";
	case FP_CODEC_ZSTD: return "zstd";
	case FP_CODEC_ZSTD_SPLIT: return "zstd-split";
	default: return NULL;
	}
}

uint64_t pg_tensor_bytes(uint32_t type, uint32_t ndim, const uint64_t *shape)
{
	size_t i;
	for (i = 0; i < sizeof types / sizeof types[0]; i++)
		if (types[i].type == type)
			break;
	if (i == sizeof types / sizeof types[0] || ndim < 1 || ndim > FP_MAX_DIMS)
		return 0;
	if (shape[0] == 0 || shape[0] % types[i].block_values)
		return 0;
	uint64_t n = shape[0] / types[i].block_values * types[i].block_bytes;
	for (uint32_t d = 1; d < ndim; d++) {
		if (shape[d] == 0 || __builtin_mul_overflow(n, shape[d], &n))
			return 0;
	}
	return n;
}
