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
	/* Alternate forms (version 4): alts[alt_of[i]] is chunk i's other
	 * stored form, alt_of[i] == UINT32_MAX if it has none; NULL, NULL
	 * when the image holds none. */
	struct fp_chunk_desc *alts;
	uint32_t *alt_of;
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

/* The rates a plan assumes when none is given or measured (bytes/s). */
#define PG_DEFAULT_READ_RATE 2e9
#define PG_DEFAULT_DECODE_RATE 1.2e9

/* Nanoseconds a form of a chunk adds to a token's streaming on its own:
 * the larger of its read at read bytes/s and its decode at decode bytes/s
 * a core spread over cpus cores (pipeline.h).  What preserving the chunk
 * saves, in the planner's weights. */
static inline double pg_form_ns(const struct fp_chunk_desc *d, double read, double decode,
                                double cpus)
{
	double r = (double)d->stored_len / read * 1e9;
	double c = d->codec != FP_CODEC_RAW ? (double)d->logical_len / decode / cpus * 1e9 : 0;
	return r > c ? r : c;
}

/* The form of every chunk that makes the streaming of all of them least
 * at these rates (pipeline.h): alt[i] = 1 for chunk i's alternate, 0 for
 * its table entry.  Returns that least time in seconds, or -1 (ENOMEM). */
double pg_image_pick_forms(const struct fp_image *img, double read, double decode,
                           double cpus, uint8_t *alt);

/* Make every chunk's table entry the form pg_image_pick_forms picks
 * (swapping it with its alternate): a region reads its own image so.
 * Returns the chunks swapped. */
uint32_t pg_image_choose_forms(struct fp_image *img, double read, double decode, double cpus);

/* Decode a stored payload of chunk i into dst (chunk_size bytes);
 * verifies length and checksum.  src holds c->stored_len bytes.  For zstd,
 * dctx may be NULL.  pg_decode_form decodes form d of chunk i (its table
 * entry or its alternate).  On failure returns -1 with the reason in
 * fp_last_error(). */
int pg_decode_chunk(const struct fp_image *img, uint32_t i, const void *src,
                    void *dst, void *zstd_dctx);
int pg_decode_form(const struct fp_image *img, uint32_t i, const struct fp_chunk_desc *d,
                   const void *src, void *dst, void *zstd_dctx);

#endif
