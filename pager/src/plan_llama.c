/* llama.cpp's tensor names for the planner: "blk.N.*" is layer N, and
 * the token embedding of a model with a classifier of its own is looked
 * up one row a token.  GGUF files name their tensors so, and flexpage's
 * images of llama models (synth, pack of a llama2.c checkpoint) too; the
 * planner itself (plan.c) knows no names, its callers pass these. */
#include <stdlib.h>
#include <string.h>

#include "image.h"

int fp_plan_llama_layer(const struct fp_tensor_desc *t, int *attention, void *ctx)
{
	(void)ctx;
	if (strncmp(t->name, "blk.", 4))
		return -1;
	char *end;
	long l = strtol(t->name + 4, &end, 10);
	if (end == t->name + 4 || *end != '.' || l < 0 || l >= 1000000)
		return -1;
	*attention = !strncmp(end, ".attn_", 6);
	return (int)l;
}

/* Looking up one row costs one chunk read when that chunk is not
 * resident: the share read is one chunk of the tensor's.  A shared
 * classifier (no output.weight, or the shared_classifier meta key) reads
 * all of it every token. */
double fp_plan_llama_read_share(const struct fp_tensor_desc *t, void *img)
{
	char shared[8];
	if (strcmp(t->name, "token_embd.weight") || !fp_image_find(img, "output.weight"))
		return 1.0;
	if (fp_image_meta(img, "shared_classifier", shared, sizeof shared) == 0 && !strcmp(shared, "1"))
		return 1.0;
	double one_chunk = (double)fp_image_info(img)->chunk_size / (double)t->size;
	return one_chunk < 1.0 ? one_chunk : 1.0;
}
