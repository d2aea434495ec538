/* Which chunks stay resident: the pager's planner over the model's
 * tensors, with llama.cpp's names (fp_plan_llama_*, as flexpage run and
 * plan use them: layers by their blk.N names, what flexpage pack gives a
 * llama2.c checkpoint too).  The streamed rest keeps up to 16
 * chunks of the budget (half of a small one). */

#include "preload.h"

#define STREAM_CHUNKS 16

int pl_plan(const fp_image *img, uint64_t budget, int preserve, const struct fp_options *o,
            struct fp_plan *out)
{
	uint64_t chunk = fp_image_info(img)->chunk_size, stream = budget / 2;
	if (stream > STREAM_CHUNKS * chunk)
		stream = STREAM_CHUNKS * chunk;
	if (stream < 2 * chunk)
		stream = 2 * chunk;
	struct fp_plan_options po = {
		.budget = budget,
		.stream_bytes = stream,
		.balanced = preserve == PL_PRESERVE_BALANCED,
		.order = FP_PLAN_BY_BENEFIT,
		.tensor_layer = fp_plan_llama_layer,
		.read_share = fp_plan_llama_read_share,
		.read_share_ctx = (void *)img,
		/* the rates and decoders fp_open chooses the stored forms by */
		.read_bytes_per_s = o->read_rate,
		.decode_bytes_per_s = o->decode_rate,
		.decoders = o->decoders,
	};
	return fp_plan_make(img, &po, out);
}
