/* The image reader: header, tensor and chunk tables, meta (and a GGUF
 * taken as an image, by its magic), then each chunk read and decoded
 * (zstd, CRC-32C) as the pager would, in each of its stored forms.  A bad input must give NULL or an
 * error, never a crash or a read out of bounds. */
#include <flexpage/flexpage_experimental.h>

#include <stdlib.h>
#include <string.h>

#include "input.h"

#define MAX_CHUNKS 8 /* each read is a chunk_size memset: keep runs fast */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *path = fz_file(data, size, 0, NULL);
	fp_image *img = fp_image_open(path);
	if (!img)
		return 0;
	const struct fp_image_info *info = fp_image_info(img);
	for (uint32_t i = 0; i < info->n_tensors; i++) {
		const struct fp_tensor_desc *t = fp_image_tensor(img, i);
		/* a listed tensor is found by its name, and by its first byte */
		if (fp_image_find(img, t->name) != t ||
		    (t->size && fp_image_tensor_at(img, t->offset) != t))
			abort();
	}
	char value[64];
	(void)fp_image_meta(img, "format", value, sizeof value);
	(void)fp_image_tensor_at(img, info->logical_size);
	void *chunk = malloc(info->chunk_size);
	if (!chunk)
		abort();
	for (uint32_t i = 0; i < info->n_chunks && i < MAX_CHUNKS; i++) {
		(void)fp_image_read_chunk(img, i, chunk);
		/* a chunk's alternate form (version 4) decodes under the same
		 * checksum, or fails */
		const struct fp_chunk_desc *alt = fp_image_chunk_form(img, i, 1);
		if (alt && (alt->logical_len != fp_image_chunk(img, i)->logical_len ||
		            alt->checksum != fp_image_chunk(img, i)->checksum))
			abort();
		if (alt)
			(void)fp_image_read_chunk_form(img, i, 1, chunk);
	}
	(void)fp_image_chunk_form(img, info->n_chunks, 1);
	free(chunk);
	fp_image_close(img);
	return 0;
}
