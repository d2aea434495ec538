/* The repacked layouts: q4_0 and q8_0 matrices with 8 rows interleaved
 * (kernels.h, fk_repack; docs/runtime.md).  A product over one row at a
 * time reads one stream but loads x and converts scales for every row; a
 * product over 8 separate rows reads 8 streams, which the hardware
 * prefetchers follow badly from DRAM (measured 2x slower).  Interleaving
 * gives both: one stream, 8 rows per load of x.  Only the memory order
 * changes; each value still meets the same x in the same sum. */
#include "internal.h"

#include <errno.h>
#include <string.h>

int fk_repack_type(int type)
{
	return type == FK_Q4_0 ? FK_Q4_0_X8 : type == FK_Q8_0 ? FK_Q8_0_X8 : 0;
}

size_t fk_repack_bytes(int type, int n_in, int n_out)
{
	if (!fk_repack_type(type) || n_in <= 0 || n_in % FK_QK || n_out <= 0)
		return 0;
	const size_t unit = type == FK_Q4_0 ? X8_UNIT_Q4 : X8_UNIT_Q8;
	const size_t groups = ((size_t)n_out + X8_ROWS - 1) / X8_ROWS;
	return groups * (size_t)x8_units(n_in) * unit;
}

int fk_repack(int type, const void *w, void *dst, int n_in, int n_out)
{
	const size_t size = fk_repack_bytes(type, n_in, n_out);
	if (!size)
		return fk_fail(EINVAL, "cannot repack a %d x %d matrix of type %s", n_out, n_in,
		               fk_type_name(type) ? fk_type_name(type) : "(unknown)");
	const int q4 = type == FK_Q4_0, nb = n_in / FK_QK;
	const int unit = q4 ? X8_UNIT_Q4 : X8_UNIT_Q8;
	const int step_row = q4 ? X8_STEP_ROW_Q4 : X8_STEP_ROW_Q8;
	const size_t block = q4 ? sizeof(fk_block_q4_0) : sizeof(fk_block_q8_0);
	const size_t group = (size_t)x8_units(n_in) * (size_t)unit;
	uint8_t *out = dst;
	memset(out, 0, size);
	for (int r = 0; r < n_out; r++) {
		uint8_t *g = out + (size_t)(r / X8_ROWS) * group;
		const int gr = r % X8_ROWS;
		for (int b = 0; b < nb; b++) {
			const uint8_t *src = (const uint8_t *)w + ((size_t)r * (size_t)nb + (size_t)b) * block;
			/* the scale (the block's first 2 bytes), then its values */
			memcpy(g + x8_scale_at(unit, gr, b), src, 2);
			memcpy(g + x8_data_at(unit, step_row, gr, b), src + 2, block - 2);
		}
	}
	return 0;
}
