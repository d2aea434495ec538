/* The in-memory form of a validated image. */
#ifndef FLEXPAGE_IMAGE_H
#define FLEXPAGE_IMAGE_H

#include <flexpage/flexpage_experimental.h>

struct fp_image {
	struct fp_image_info info;
	char *path;
	char *meta;
	struct fp_tensor_desc *tensors; /* ascending logical offset */
	struct fp_chunk_desc *chunks;
};

/* Decode a stored payload into dst (chunk_size bytes); verifies length and
 * checksum.  src holds c->stored_len bytes.  For zstd, dctx may be NULL.
 * On failure returns -1 with the reason in fp_last_error(). */
int pg_decode_chunk(const struct fp_image *img, uint32_t i, const void *src,
                    void *dst, void *zstd_dctx);

#endif
