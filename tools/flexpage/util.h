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
/* Parse a codec: "raw", "auto", "zstd" or "zstd:LEVEL" (1-22; level 0 =
 * default).  Commands that cannot use auto refuse it themselves. */
int parse_codec(const char *s, uint32_t *codec, int *level);
#define CODEC_ERROR "--codec: '%s' is not raw, zstd[:LEVEL], auto or both[:LEVEL] (levels 1-22)"
/* Parse --chunk: a power of two from 64K to 4M. */
int parse_chunk_size(const char *s, uint32_t *out, char *err, size_t errlen);
/* Parse a duration: "1s", "500ms", "2" (seconds) into nanoseconds. */
int parse_duration(const char *s, uint64_t *ns);
/* A decimal integer in lo..hi, or a number in lo..hi: 0, or -1. */
int parse_int(const char *s, int lo, int hi, int *out);
int parse_float(const char *s, float lo, float hi, float *out);
/* "1.17 GiB", "512 KiB", "12 B". */
const char *fmt_bytes(uint64_t n, char *buf, size_t len);
/* Monotonic clock in nanoseconds. */
uint64_t now_ns(void);

/* A progress bar of counted things ("tokens") on stderr, drawn at most
 * ten times a second and only when stderr is a terminal (and enable). */
struct progress {
	const char *label, *unit;
	uint64_t total, start_ns, last_ns;
	int active;
};
void progress_start(struct progress *p, const char *label, const char *unit, uint64_t total,
                    int enable);
void progress_update(struct progress *p, uint64_t done);
/* Draw the final state and end the line. */
void progress_end(struct progress *p, uint64_t done);

#endif
