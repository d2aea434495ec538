/* Small helpers shared by the flexpage subcommands. */
#ifndef FLEXPAGE_TOOL_UTIL_H
#define FLEXPAGE_TOOL_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* Parse a size: "1048576", "600M", "1.5G", "64K", or "40%" of whole
 * (whole 0: per cent not allowed).  Suffixes are powers of 1024.
 * Returns 0, or -1 with a message naming what in "option" is wrong. */
int parse_size(const char *s, uint64_t whole, uint64_t *out,
               const char *option, char *err, size_t errlen);
/* Parse a codec: "raw", "zstd" or "zstd:LEVEL" (1-22; level 0 = default). */
int parse_codec(const char *s, uint32_t *codec, int *level);
#define CODEC_ERROR "--codec: '%s' is not raw, zstd or zstd:LEVEL (1-22)"
/* Parse --chunk: a power of two from 64K to 4M. */
int parse_chunk_size(const char *s, uint32_t *out, char *err, size_t errlen);
/* Parse a duration: "1s", "500ms", "2" (seconds) into nanoseconds. */
int parse_duration(const char *s, uint64_t *ns);
/* "1.17 GiB", "512 KiB", "12 B". */
const char *fmt_bytes(uint64_t n, char *buf, size_t len);
/* Monotonic clock in nanoseconds. */
uint64_t now_ns(void);

#endif
