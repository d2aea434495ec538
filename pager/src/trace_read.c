/* Reading a trace back: validated, sorted by time. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "error.h"
#include <flexpage/flexpage_experimental.h>

struct fp_trace {
	struct fp_trace_header h;
	struct fp_trace_event *ev;
	uint64_t n;
};

/* Stable merge sort by time: records of one thread keep their order even
 * when the clock gives two of them the same nanosecond. */
static void sort_by_time(struct fp_trace_event *a, struct fp_trace_event *tmp, uint64_t n)
{
	if (n < 2)
		return;
	uint64_t m = n / 2;
	sort_by_time(a, tmp, m);
	sort_by_time(a + m, tmp, n - m);
	uint64_t i = 0, j = m, k = 0;
	while (i < m && j < n)
		tmp[k++] = a[j].t_ns < a[i].t_ns ? a[j++] : a[i++];
	while (i < m)
		tmp[k++] = a[i++];
	while (j < n)
		tmp[k++] = a[j++];
	memcpy(a, tmp, n * sizeof *a);
}

fp_trace *fp_trace_open(const char *path)
{
	fp_trace *t = calloc(1, sizeof *t);
	FILE *f = fopen(path, "rb");
	struct stat st;
	int rc;
	if (!t || !f || fstat(fileno(f), &st)) {
		int e = pg_errno();
		rc = !t ? pg_err(ENOMEM, "%s: out of memory", path)
		        : pg_err(e, "%s: cannot open the trace: %s", path, strerror(e));
		goto fail;
	}
	if (fread(&t->h, sizeof t->h, 1, f) != 1) {
		rc = pg_err(EBADMSG, "%s: too short for a trace header (truncated?)", path);
		goto fail;
	}
	if (memcmp(t->h.magic, FP_TRACE_MAGIC, 8)) {
		rc = pg_err(EBADMSG, "%s: not a flexpage trace (bad magic)", path);
		goto fail;
	}
	if (t->h.version != FP_TRACE_VERSION || t->h.record_size != sizeof(struct fp_trace_event)) {
		rc = pg_err(ENOTSUP, "%s: trace version %u / record size %u not supported (want %u / %zu)",
		            path, t->h.version, t->h.record_size, FP_TRACE_VERSION,
		            sizeof(struct fp_trace_event));
		goto fail;
	}
	if (!t->h.chunk_size || !t->h.n_chunks ||
	    t->h.logical_size != (uint64_t)t->h.n_chunks * t->h.chunk_size ||
	    !memchr(t->h.policy, 0, sizeof t->h.policy) ||
	    !memchr(t->h.image, 0, sizeof t->h.image)) {
		rc = pg_err(EBADMSG, "%s: corrupt trace header", path);
		goto fail;
	}
	uint64_t body = (uint64_t)st.st_size - sizeof t->h;
	if (body % sizeof(struct fp_trace_event)) {
		rc = pg_err(EBADMSG, "%s: truncated trace: %llu bytes after the last whole record",
		            path, (unsigned long long)(body % sizeof(struct fp_trace_event)));
		goto fail;
	}
	t->n = body / sizeof(struct fp_trace_event);
	t->ev = malloc(t->n ? t->n * sizeof *t->ev : 1);
	if (!t->ev || fread(t->ev, sizeof *t->ev, t->n, f) != t->n) {
		rc = !t->ev ? pg_err(ENOMEM, "%s: out of memory", path)
		            : pg_err(EIO, "%s: cannot read %llu trace records", path,
		                     (unsigned long long)t->n);
		goto fail;
	}
	for (uint64_t i = 0; i < t->n; i++) {
		const struct fp_trace_event *e = &t->ev[i];
		int bad = e->type < FP_EV_FAULT || e->type >= FP_EV_TYPES ||
		          (e->type != FP_EV_MARK && e->type != FP_EV_SETTINGS && e->chunk >= t->h.n_chunks);
		if (e->type == FP_EV_FAULT)
			bad |= e->b / t->h.chunk_size != e->chunk ||
			       (e->flags > FP_FAULT_SEEN_MAX && e->flags != FP_FAULT_PADDING);
		if (bad) {
			rc = pg_err(EBADMSG,
			            "%s: corrupt trace: record %llu has type %u, chunk %u", path,
			            (unsigned long long)i, e->type, e->chunk);
			goto fail;
		}
	}
	struct fp_trace_event *tmp = malloc(t->n ? t->n * sizeof *tmp : 1);
	if (!tmp) {
		rc = pg_err(ENOMEM, "%s: out of memory", path);
		goto fail;
	}
	sort_by_time(t->ev, tmp, t->n);
	free(tmp);
	fclose(f);
	return t;
fail:
	if (f)
		fclose(f);
	fp_trace_close(t);
	return pg_fail_null(rc);
}

const struct fp_trace_header *fp_trace_header(const fp_trace *t)
{
	return &t->h;
}

uint64_t fp_trace_count(const fp_trace *t)
{
	return t->n;
}

const struct fp_trace_event *fp_trace_events(const fp_trace *t)
{
	return t->ev;
}

void fp_trace_close(fp_trace *t)
{
	if (!t)
		return;
	free(t->ev);
	free(t);
}
