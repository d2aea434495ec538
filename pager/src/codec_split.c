/* The zstd-split codec (FP_CODEC_ZSTD_SPLIT): a chunk of quantized blocks
 * (q8_0: a 2-byte fp16 scale and 32 int8; q4_0: the scale and 16 bytes of
 * nibbles) stored as one zstd frame of the same bytes with every block's
 * scale moved ahead of all the quants.  zstd codes the literals of a block
 * with one Huffman table: interleaved, the scales' bytes, whose statistics
 * are nothing like the quants', widen that table, and scales that repeat
 * (a coarse scale grid) cannot form matches.  Apart, each stream is
 * coded for its own statistics.
 *
 * Payload: a 16-byte header, then the frame.
 *
 *   u16 stride   bytes a block (34 or 18)
 *   u16 head     bytes of a block moved ahead (2: the scale)
 *   u32 begin    chunk offset of the first block moved
 *   u32 count    blocks moved, from begin
 *   u32 zero
 *
 * The frame decodes to logical_len bytes: [0, begin) as they are, the
 * count heads, the count tails, then the rest as it is.  The decoder
 * restores GGML's layout in place; the checksum is over the restored
 * bytes, as for every codec. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "codec_split.h"
#include "error.h"

int pg_split_params(const struct pg_split *s, uint32_t len)
{
	if ((s->stride != 34 && s->stride != 18) || s->head != 2 || s->zero)
		return -1;
	uint64_t end = (uint64_t)s->begin + (uint64_t)s->count * s->stride;
	return end <= len ? 0 : -1;
}

void pg_split_encode(const struct pg_split *s, const uint8_t *src, uint32_t len, uint8_t *dst)
{
	const uint32_t tail = s->stride - s->head, n = s->count;
	const uint8_t *blk = src + s->begin;
	uint8_t *heads = dst + s->begin, *tails = heads + (size_t)n * s->head;
	memcpy(dst, src, s->begin);
	for (uint32_t k = 0; k < n; k++) {
		memcpy(heads + (size_t)k * s->head, blk + (size_t)k * s->stride, s->head);
		memcpy(tails + (size_t)k * tail, blk + (size_t)k * s->stride + s->head, tail);
	}
	const size_t done = s->begin + (size_t)n * s->stride;
	memcpy(dst + done, src + done, len - done);
}

int pg_split_decode(const struct pg_split *s, uint8_t *buf)
{
	const uint32_t tail = s->stride - s->head, n = s->count;
	if (!n)
		return 0;
	uint8_t *blk = buf + s->begin;
	/* The heads are overwritten first: keep them.  Block k's tail lies at
	 * n * head + k * tail, at or after its place k * stride + head, and
	 * writing block k never reaches the tail of a later block, so one pass
	 * forward restores the layout. */
	uint8_t *heads = malloc((size_t)n * s->head);
	if (!heads)
		return pg_err(ENOMEM, "out of memory for a zstd-split chunk");
	memcpy(heads, blk, (size_t)n * s->head);
	for (uint32_t k = 0; k < n; k++) {
		memmove(blk + (size_t)k * s->stride + s->head, blk + (size_t)n * s->head + (size_t)k * tail,
		        tail);
		memcpy(blk + (size_t)k * s->stride, heads + (size_t)k * s->head, s->head);
	}
	free(heads);
	return 0;
}
