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
	struct fp_gguf *gguf;           /* the GGUF header of a GGUF's bytes, or NULL */
};

/* pread len bytes at off, in as many reads as it takes; -1 on an error or
 * end of file. */
int pg_read_full(int fd, void *buf, size_t len, uint64_t off);

/* gguf_image.c: a GGUF file as a direct image (its chunks carry no
 * checksum), and the GGUF header of a verbatim image packed from one
 * (meta format=gguf), read from its chunks.  NULL / -1 with errno and
 * fp_last_error(). */
struct fp_image *pg_gguf_image_open(const char *path, uint32_t chunk_size);
int pg_gguf_image_attach(struct fp_image *img);

/* Decode a stored payload into dst (chunk_size bytes); verifies length and
 * checksum.  src holds c->stored_len bytes.  For zstd, dctx may be NULL.
 * On failure returns -1 with the reason in fp_last_error(). */
int pg_decode_chunk(const struct fp_image *img, uint32_t i, const void *src,
                    void *dst, void *zstd_dctx);

#endif
