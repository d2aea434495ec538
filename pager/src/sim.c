/* The simulator: replays a chunk access stream through a policy with the
 * live pager's accounting (pg_make_room, the same policy code), so that an
 * experiment written once runs offline in seconds. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "policy.h"

struct sim {
	const struct fp_policy_env *env;
	const struct fp_policy_ops *ops;
	void *policy;
	uint8_t *resident;
	uint64_t bytes;          /* resident bytes */
	struct fp_sim_result *out;
};

static uint64_t page_len(const struct fp_policy_env *env, uint32_t c)
{
	if (!env->chunks)
		return env->chunk_size;
	return (env->chunks[c].logical_len + 4095ull) & ~4095ull;
}

static void sim_evict(void *ctx, uint32_t c)
{
	struct sim *s = ctx;
	s->ops->evicted(s->policy, c);
	s->resident[c] = 0;
	s->bytes -= page_len(s->env, c);
	s->out->evictions++;
}

int fp_simulate(const struct fp_policy_env *env, const struct fp_policy_ops *ops,
                const uint32_t *access, uint64_t n, struct fp_sim_result *out)
{
	memset(out, 0, sizeof *out);
	if (!env->n_chunks || env->budget < 2ull * env->chunk_size)
		return pg_err(EINVAL, "simulate: budget %llu is below the minimum of two chunks (%llu)",
		              (unsigned long long)env->budget, 2ull * env->chunk_size);
	struct sim s = {.env = env, .ops = ops, .out = out};
	s.resident = calloc(env->n_chunks, 1);
	s.policy = ops->create(env);
	if (!s.resident || !s.policy) {
		free(s.resident);
		if (s.policy)
			ops->destroy(s.policy);
		return pg_err(ENOMEM, "simulate: out of memory");
	}
	if (ops->future)
		ops->future(s.policy, access, n);
	int rc = 0;
	for (uint64_t i = 0; i < n; i++) {
		uint32_t c = access[i];
		if (c >= env->n_chunks) {
			rc = pg_err(EINVAL, "simulate: access %llu names chunk %u of %u",
			            (unsigned long long)i, c, env->n_chunks);
			break;
		}
		if (s.resident[c]) {
			out->hits++;
			ops->touched(s.policy, c);
			continue;
		}
		uint64_t len = page_len(env, c);
		pg_make_room(ops, s.policy, env->budget, &s.bytes, len, sim_evict, &s);
		s.resident[c] = 1;
		s.bytes += len;
		if (s.bytes > out->peak_resident)
			out->peak_resident = s.bytes;
		ops->loaded(s.policy, c, 1);
		out->loads++;
		if (env->chunks) {
			out->bytes_read += env->chunks[c].stored_len;
			if (env->chunks[c].codec != FP_CODEC_RAW)
				out->bytes_decoded += env->chunks[c].logical_len;
		} else {
			out->bytes_read += env->chunk_size;
		}
	}
	out->accesses = n;
	ops->destroy(s.policy);
	free(s.resident);
	return rc;
}

int fp_trace_accesses(const fp_trace *t, const fp_image *img, uint32_t **access, uint64_t *n)
{
	const struct fp_trace_header *h = fp_trace_header(t);
	const struct fp_trace_event *ev = fp_trace_events(t);
	uint64_t count = fp_trace_count(t), k = 0;
	if (img && (fp_image_info(img)->n_chunks != h->n_chunks ||
	            fp_image_info(img)->chunk_size != h->chunk_size))
		return pg_err(EINVAL, "trace and image %s do not match (chunks %u x %u vs %u x %u)",
		              fp_image_info(img)->path, h->n_chunks, h->chunk_size,
		              fp_image_info(img)->n_chunks, fp_image_info(img)->chunk_size);
	uint32_t *a = malloc(sizeof *a * (count ? count : 1));
	if (!a)
		return pg_err(ENOMEM, "out of memory for %llu accesses", (unsigned long long)count);
	for (uint64_t i = 0; i < count; i++) {
		if (ev[i].type != FP_EV_FAULT)
			continue;
		uint32_t c = ev[i].chunk;
		if (img) {
			uint64_t in_chunk = ev[i].b - (uint64_t)c * h->chunk_size;
			if (in_chunk >= ((fp_image_chunk(img, c)->logical_len + 4095ull) & ~4095ull))
				continue; /* padding: served with zero pages, never loaded */
		}
		if (k && a[k - 1] == c)
			continue;
		a[k++] = c;
	}
	*access = a;
	*n = k;
	return 0;
}
