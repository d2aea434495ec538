/* The zstd-split codec's transform (codec_split.c, docs/format.md). */
#ifndef FLEXPAGE_CODEC_SPLIT_H
#define FLEXPAGE_CODEC_SPLIT_H

#include <stdint.h>

#define PG_SPLIT_HEADER 16u

/* The payload header, stored as it is (little-endian). */
struct pg_split {
	uint16_t stride, head;
	uint32_t begin, count, zero;
};
_Static_assert(sizeof(struct pg_split) == PG_SPLIT_HEADER, "split header layout");

/* 0 if s describes blocks inside a chunk of len bytes, else -1. */
int pg_split_params(const struct pg_split *s, uint32_t len);
/* The len bytes of src with s's blocks' heads moved ahead, into dst. */
void pg_split_encode(const struct pg_split *s, const uint8_t *src, uint32_t len, uint8_t *dst);
/* The inverse, in place.  0, or -1 with fp_last_error() (out of memory). */
int pg_split_decode(const struct pg_split *s, uint8_t *buf);

#endif
