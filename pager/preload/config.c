/* The environment, read once with secure_getenv (a set-user-ID program
 * sees none of it).  A value that cannot be used is said once, and then
 * nothing is served: every mapping goes to the kernel (or fails, with
 * FLEXPAGE_STRICT=1). */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "preload.h"

static struct pl_config cfg;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static int bad(const char *var, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int bad(const char *var, const char *fmt, ...)
{
	if (cfg.error[0])
		return -1; /* the first one says enough */
	int n = snprintf(cfg.error, sizeof cfg.error, "%s: ", var);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cfg.error + n, sizeof cfg.error - (size_t)n, fmt, ap);
	va_end(ap);
	return -1;
}

/* units.c's rules, the reason said as the variable's. */
static int size_of(const char *var, const char *s, uint64_t *bytes, double *pct)
{
	char why[256];
	return pl_parse_size(s, bytes, pct, why, sizeof why) ? bad(var, "%s", why) : 0;
}

static int interval_of(const char *var, const char *s, uint64_t *ns)
{
	char why[256];
	return pl_parse_interval(s, ns, why, sizeof why) ? bad(var, "%s", why) : 0;
}

static int pick(const char *var, const char *s, const char *const *names, int *out)
{
	for (int i = 0; names[i]; i++)
		if (!strcmp(s, names[i])) {
			*out = i;
			return 0;
		}
	char list[128] = "";
	for (int i = 0; names[i]; i++)
		snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "", names[i]);
	return bad(var, "'%s' is not one of %s", s, list);
}

/* FILE=IMAGE or IMAGE, ':'-separated. */
static int images_of(const char *var, const char *s)
{
	char *copy = strdup(s);
	int n = 1;
	for (const char *p = s; *p; p++)
		n += *p == ':';
	cfg.images = calloc((size_t)n, sizeof *cfg.images);
	if (!copy || !cfg.images) {
		free(copy);
		return bad(var, "out of memory");
	}
	char *save = NULL;
	for (char *item = strtok_r(copy, ":", &save); item; item = strtok_r(NULL, ":", &save)) {
		struct pl_image_spec *spec = &cfg.images[cfg.n_images];
		char *eq = strchr(item, '=');
		if (eq) {
			*eq = 0;
			if (!*item || !eq[1])
				return bad(var, "'%s=%s': FILE=IMAGE needs both", item, eq + 1);
			spec->file = strdup(item);
			spec->image = strdup(eq + 1);
		} else {
			spec->image = strdup(item);
		}
		cfg.n_images++;
	}
	/* The strings stay for the process's life. */
	free(copy);
	return 0;
}

/* A whole number from lo to hi. */
static int count_of(const char *var, const char *s, int lo, int hi, int *out)
{
	char *end;
	errno = 0;
	long n = strtol(s, &end, 10);
	if (*end || errno || n < lo || n > hi)
		return bad(var, "'%s' is not a number from %d to %d", s, lo, hi);
	*out = (int)n;
	return 0;
}

/* A rate in bytes/s, written as a size (600M, 1.5G). */
static int rate_of(const char *var, const char *s, double *out)
{
	uint64_t b = 0;
	if (size_of(var, s, &b, NULL))
		return -1;
	*out = (double)b;
	return 0;
}

static const char *env(const char *name)
{
	const char *v = secure_getenv(name);
	return v && *v ? v : NULL;
}

static void read_env(void)
{
	static const char *const preserve[] = {"none", "balanced", "first", NULL};
	static const char *const levels[] = {"quiet", "warn", "info", "debug", NULL};
	static const char *const strict[] = {"0", "1", NULL};
	cfg.budget_pct = 100;
	cfg.preserve = PL_PRESERVE_BALANCED;
	cfg.log_level = PL_LOG_WARN;
	const char *v;
	if ((v = env("FLEXPAGE_LOG")))
		pick("FLEXPAGE_LOG", v, levels, &cfg.log_level);
	if ((v = env("FLEXPAGE_STRICT")))
		pick("FLEXPAGE_STRICT", v, strict, &cfg.strict);
	if ((v = env("FLEXPAGE_BUDGET"))) {
		cfg.budget_pct = 0;
		size_of("FLEXPAGE_BUDGET", v, &cfg.budget_bytes, &cfg.budget_pct);
	}
	if ((v = env("FLEXPAGE_IMAGE")))
		images_of("FLEXPAGE_IMAGE", v);
	if ((v = env("FLEXPAGE_PRESERVE")))
		pick("FLEXPAGE_PRESERVE", v, preserve, &cfg.preserve);
	if ((v = env("FLEXPAGE_CHUNK"))) {
		uint64_t c = 0;
		if (!size_of("FLEXPAGE_CHUNK", v, &c, NULL) &&
		    (c < FP_CHUNK_MIN || c > FP_CHUNK_MAX || (c & (c - 1))))
			bad("FLEXPAGE_CHUNK", "'%s' is not a power of two from 64K to 4M", v);
		cfg.chunk = (uint32_t)c;
	}
	if ((v = env("FLEXPAGE_LOADERS")))
		count_of("FLEXPAGE_LOADERS", v, 1, 64, &cfg.loaders);
	if ((v = env("FLEXPAGE_READ_RATE")))
		rate_of("FLEXPAGE_READ_RATE", v, &cfg.read_rate);
	if ((v = env("FLEXPAGE_DECODE_RATE")))
		rate_of("FLEXPAGE_DECODE_RATE", v, &cfg.decode_rate);
	if ((v = env("FLEXPAGE_DECODERS")))
		count_of("FLEXPAGE_DECODERS", v, 0, 64, &cfg.decoders);
	if ((v = env("FLEXPAGE_POLICY"))) {
		if (!fp_policy_find(v))
			bad("FLEXPAGE_POLICY", "no policy named '%s'", v);
		cfg.policy = strdup(v);
	}
	if ((v = env("FLEXPAGE_TRACE")))
		cfg.trace = strdup(v);
	if ((v = env("FLEXPAGE_STATS"))) {
		cfg.stats = 1;
		if (strcmp(v, "exit"))
			interval_of("FLEXPAGE_STATS", v, &cfg.stats_interval_ns);
	}
	if (cfg.error[0] && cfg.log_level >= PL_LOG_WARN)
		pl_say("%s; nothing is served%s", cfg.error,
		       cfg.strict ? " (FLEXPAGE_STRICT=1: model mappings fail)" : "");
}

const struct pl_config *pl_config(void)
{
	pthread_once(&once, read_env);
	return &cfg;
}
