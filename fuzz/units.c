/* The parsers of what people type: the flexpage command's sizes (600M,
 * 1.5G, 40%), durations, numbers, codecs and chunk sizes
 * (tools/flexpage/util.c), and the preload library's sizes and intervals
 * (pager/preload/units.c).  Byte 0 of the input picks the parser and the
 * whole a per cent is taken of; the rest is the text.  Besides not
 * crashing, each accepted value must lie in the range it is documented to. */
#include <flexpage/flexpage.h>

#include <stdlib.h>
#include <string.h>

#include "preload.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint64_t wholes[4] = {0, 1, 1000003, UINT64_MAX};

static void check(int ok) { if (!ok) abort(); }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	char *s = malloc(size);
	if (!s)
		abort();
	memcpy(s, data + 1, size - 1);
	s[size - 1] = 0;
	const uint64_t whole = wholes[(data[0] >> 4) & 3];
	char err[256] = "";
	uint64_t u = 0;
	uint32_t u32 = 0;
	double pct = 0;
	int i = 0;
	float f = 0;
	switch (data[0] & 7) {
	case 0:
		if (!parse_size(s, whole, &u, "--budget", err, sizeof err)) {
			char buf[32];
			check(strchr(s, '%') == NULL || u <= whole);
			check(fmt_bytes(u, buf, sizeof buf) != NULL);
		} else {
			check(err[0] != 0); /* a rejection says why */
		}
		break;
	case 1:
		if (!parse_duration(s, &u))
			check(strtod(s, NULL) * 1e9 >= (double)u * 0.999);
		break;
	case 2:
		if (!parse_int(s, -5, 1000, &i))
			check(i >= -5 && i <= 1000);
		if (!parse_float(s, 0.0f, 2.0f, &f))
			check(f >= 0.0f && f <= 2.0f);
		break;
	case 3:
		if (!parse_codec(s, &u32, &i))
			check(((u32 == FP_CODEC_RAW || u32 == FP_CODEC_AUTO) && i == 0) ||
			      ((u32 == FP_CODEC_ZSTD || u32 == FP_CODEC_BOTH) && i >= 0 && i <= 22));
		break;
	case 4:
		if (!parse_chunk_size(s, &u32, err, sizeof err))
			check(u32 >= FP_CHUNK_MIN && u32 <= FP_CHUNK_MAX && !(u32 & (u32 - 1)));
		else
			check(err[0] != 0);
		break;
	case 5:
		pct = 0;
		if (!pl_parse_size(s, &u, &pct, err, sizeof err))
			check(pct == 0 ? u > 0 || strtod(s, NULL) < 1 : pct > 0 && pct <= 100);
		else
			check(err[0] != 0);
		break;
	case 6:
		if (!pl_parse_size(s, &u, NULL, err, sizeof err))
			check(strchr(s, '%') == NULL);
		break;
	default:
		if (!pl_parse_interval(s, &u, err, sizeof err))
			check(u <= 86400000000000ull);
		else
			check(err[0] != 0);
		break;
	}
	free(s);
	return 0;
}
