/* Which chunks stay resident: the pager's planner over the model's
 * tensors, layers by their blk.N names (llama.cpp's, and what flexpage
 * pack gives a llama2.c checkpoint).  The streamed rest keeps up to 16
 * chunks of the budget (half of a small one). */
#include <stdlib.h>
#include <string.h>

#include "preload.h"

#define STREAM_CHUNKS 16

/* A decode looks one row of the token embedding up a token: when the
 * classifier is a tensor of its own, what it reads of the embedding is one
 * chunk, so it is preserved last.  A shared classifier reads all of it. */
static double read_share(const struct fp_tensor_desc *t, void *ctx)
{
	const fp_image *img = ctx;
	char shared[8];
	if (strcmp(t->name, "token_embd.weight") || !fp_image_find(img, "output.weight") ||
	    (!fp_image_meta(img, "shared_classifier", shared, sizeof shared) && !strcmp(shared, "1")))
		return 1.0;
	double one = (double)fp_image_info(img)->chunk_size / (double)t->size;
	return one < 1.0 ? one : 1.0;
}

/* "blk.N.*" is layer N, attention if ".attn_" follows. */
static int blk_layer(const struct fp_tensor_desc *t, int *attention, void *ctx)
{
	char *end;
	if (strncmp(t->name, "blk.", 4))
		return -1;
	long l = strtol(t->name + 4, &end, 10);
	if (end == t->name + 4 || *end != '.' || l < 0 || l >= 1000000)
		return -1;
	*attention = !strncmp(end, ".attn_", 6);
	return (int)l;
}

int pl_plan(const fp_image *img, uint64_t budget, int preserve, struct fp_plan *out)
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
		.tensor_layer = blk_layer,
		.read_share = read_share,
		.read_share_ctx = (void *)img,
	};
	return fp_plan_make(img, &po, out);
}
