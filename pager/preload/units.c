/* The sizes and intervals the environment is written in, parsed apart
 * from the environment itself (config.c) so that each rule is in one
 * place and can be fuzzed alone (fuzz/units.c). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "preload.h"

int pl_parse_size(const char *s, uint64_t *bytes, double *pct, char *why, size_t n)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (end == s || errno || !(v > 0) || isinf(v)) {
		snprintf(why, n, "'%s' is not a size above zero (try 600M, 1.5G%s)", s,
		         pct ? " or 40%" : "");
		return -1;
	}
	if (*end == '%' && pct && !end[1]) {
		if (v > 100) {
			snprintf(why, n, "%s is more than 100%%", s);
			return -1;
		}
		*pct = v;
		return 0;
	}
	const char *units = "KMGT";
	const char *u = *end ? strchr(units, *end & ~0x20) : NULL;
	double mult = 1;
	if (u) {
		mult = ldexp(1.0, 10 * (int)(u - units + 1));
		end++;
		if ((*end == 'i' || *end == 'I') && (end[1] == 'B' || end[1] == 'b'))
			end++;
	}
	if (*end == 'B' || *end == 'b')
		end++;
	if (*end) {
		snprintf(why, n, "'%s': unknown unit (K, M, G, T%s)", s, pct ? " or %" : "");
		return -1;
	}
	if (v * mult >= 1.8e19) {
		snprintf(why, n, "'%s' is too large", s);
		return -1;
	}
	*bytes = (uint64_t)(v * mult);
	return 0;
}

int pl_parse_interval(const char *s, uint64_t *ns, char *why, size_t n)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	double scale = !strcmp(end, "ms") ? 1e6 : !strcmp(end, "s") || !*end ? 1e9 : 0;
	if (end == s || errno || !(v > 0) || !scale || v * scale > 8.64e13) {
		snprintf(why, n, "'%s' is neither 'exit' nor an interval (1s, 500ms)", s);
		return -1;
	}
	*ns = (uint64_t)(v * scale);
	return 0;
}
