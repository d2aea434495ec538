#include "util.h"

#include <flexpage/flexpage.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int parse_size(const char *s, uint64_t whole, uint64_t *out,
               const char *option, char *err, size_t errlen)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (end == s || errno || !(v >= 0) || isinf(v)) {
		snprintf(err, errlen, "%s: '%s' is not a size (try 600M, 1.5G or 40%%)", option, s);
		return -1;
	}
	double mult = 1;
	if (*end == '%') {
		if (!whole) {
			snprintf(err, errlen, "%s: a per cent needs a whole to take it of", option);
			return -1;
		}
		if (v > 100) {
			snprintf(err, errlen, "%s: %s is more than 100%%", option, s);
			return -1;
		}
		mult = (double)whole / 100.0;
		end++;
	} else if (*end) {
		switch (*end) {
		case 'k': case 'K': mult = 1024.0; break;
		case 'm': case 'M': mult = 1024.0 * 1024; break;
		case 'g': case 'G': mult = 1024.0 * 1024 * 1024; break;
		case 't': case 'T': mult = 1024.0 * 1024 * 1024 * 1024; break;
		case 'b': case 'B': mult = 1; break;
		default:
			snprintf(err, errlen, "%s: unknown size suffix in '%s' (K, M, G, T or %%)", option, s);
			return -1;
		}
		end++;
		if ((*end == 'i' || *end == 'I') && (end[1] == 'B' || end[1] == 'b'))
			end += 2;
		else if (*end == 'B' || *end == 'b')
			end++;
	}
	if (*end) {
		snprintf(err, errlen, "%s: trailing characters in '%s'", option, s);
		return -1;
	}
	double r = v * mult;
	if (r >= 18446744073709551615.0) {
		snprintf(err, errlen, "%s: '%s' is too large", option, s);
		return -1;
	}
	*out = (uint64_t)r;
	return 0;
}

int parse_int(const char *s, int lo, int hi, int *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (end == s || *end || errno || v < lo || v > hi)
		return -1;
	*out = (int)v;
	return 0;
}

int parse_float(const char *s, float lo, float hi, float *out)
{
	char *end;
	float v = strtof(s, &end);
	if (end == s || *end || !(v >= lo && v <= hi))
		return -1;
	*out = v;
	return 0;
}

int parse_duration(const char *s, uint64_t *ns)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (end == s || errno || !(v >= 0))
		return -1;
	double mult = 1e9;
	if (!strcmp(end, "ms"))
		mult = 1e6;
	else if (!strcmp(end, "us"))
		mult = 1e3;
	else if (!strcmp(end, "s") || !*end)
		mult = 1e9;
	else
		return -1;
	if (!(v * mult < 18446744073709551615.0))
		return -1; /* more nanoseconds than 64 bits hold (585 years) */
	*ns = (uint64_t)(v * mult);
	return 0;
}

const char *fmt_bytes(uint64_t n, char *buf, size_t len)
{
	static const char *unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	double v = (double)n;
	int u = 0;
	while (v >= 1024 && u < 4) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%llu B", (unsigned long long)n);
	else
		snprintf(buf, len, "%.2f %s", v, unit[u]);
	return buf;
}

uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int parse_codec(const char *s, uint32_t *codec, int *level)
{
	*level = 0;
	if (!strcmp(s, "raw")) {
		*codec = FP_CODEC_RAW;
		return 0;
	}
	if (!strcmp(s, "auto")) {
		*codec = FP_CODEC_AUTO;
		return 0;
	}
	/* zstd and both take a level: zstd:19 */
	const int both = !strncmp(s, "both", 4);
	if ((both || !strncmp(s, "zstd", 4)) && (!s[4] || s[4] == ':')) {
		*codec = both ? FP_CODEC_BOTH : FP_CODEC_ZSTD;
		if (s[4] == ':') {
			char *end;
			long l = strtol(s + 5, &end, 10);
			if (*end || end == s + 5 || l < 1 || l > 22)
				return -1;
			*level = (int)l;
		}
		return 0;
	}
	return -1;
}

int parse_chunk_size(const char *s, uint32_t *out, char *err, size_t errlen)
{
	uint64_t v;
	if (parse_size(s, 0, &v, "--chunk", err, errlen))
		return -1;
	if (v < FP_CHUNK_MIN || v > FP_CHUNK_MAX || (v & (v - 1))) {
		snprintf(err, errlen, "--chunk: %s is not a power of two from 64K to 4M", s);
		return -1;
	}
	*out = (uint32_t)v;
	return 0;
}

static void progress_draw(const struct progress *p, uint64_t done, uint64_t now)
{
	const double frac = p->total ? (double)(done < p->total ? done : p->total) / (double)p->total
	                             : 0;
	const double secs = (double)(now - p->start_ns) / 1e9;
	const double rate = secs > 0 ? (double)done / secs : 0;
	char bar[31];
	for (int i = 0; i < 30; i++)
		bar[i] = i < (int)(frac * 30) ? '#' : '.';
	bar[30] = '\0';
	fprintf(stderr, "\r%s [%s] %3d%%  %llu/%llu %s  %.0f %s/s", p->label, bar, (int)(frac * 100),
	        (unsigned long long)done, (unsigned long long)p->total, p->unit, rate, p->unit);
	if (rate > 0 && done < p->total)
		fprintf(stderr, "  %.0f s left ", (double)(p->total - done) / rate);
	else
		fprintf(stderr, "%14s", "");
	fflush(stderr);
}

void progress_start(struct progress *p, const char *label, const char *unit, uint64_t total,
                    int enable)
{
	*p = (struct progress){.label = label, .unit = unit, .total = total};
	p->active = enable && total && isatty(STDERR_FILENO);
	p->start_ns = p->last_ns = now_ns();
}

void progress_update(struct progress *p, uint64_t done)
{
	if (!p->active)
		return;
	const uint64_t now = now_ns();
	if (now - p->last_ns < 100000000ull)
		return;
	p->last_ns = now;
	progress_draw(p, done, now);
}

void progress_end(struct progress *p, uint64_t done)
{
	if (!p->active)
		return;
	progress_draw(p, done, now_ns());
	fputc('\n', stderr);
	p->active = 0;
}
