/* Reading a GGUF header (ggml's docs/gguf.md, versions 2 and 3): the
 * metadata and the tensor infos.  Every length and count is checked
 * against the bytes that are left before anything is allocated or read,
 * so a damaged file fails with a message naming the field, never a crash,
 * a huge allocation or a long loop. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "gguf.h"
#include "image.h"

#define MAX_KEY_LEN 65535u           /* the spec's limit */
#define MAX_NESTING 8                /* arrays of arrays of ... */

int pg_gguf_fail(int errnum, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	return pg_err(errnum, "%s", msg);
}

/* ------------------------------------------------------------------ */
/* A cursor over the header bytes                                       */

struct rd {
	const uint8_t *p;
	uint64_t len;                /* bytes available at p */
	uint64_t fsize;              /* the whole file's */
	uint64_t pos;
	const char *name;
	char at[200];                /* what is being read: "key 3 ('general.name')" */
};

/* n more bytes must be there: ENODATA if the file ends first, ENOBUFS if
 * only the caller's buffer does. */
static int need(struct rd *r, uint64_t n, const char *what)
{
	if (n <= r->len - r->pos)
		return 0;
	uint64_t end;
	if (!__builtin_add_overflow(r->pos, n, &end) && end <= r->fsize)
		return pg_gguf_fail(ENOBUFS, "%s: %s: %s: the header goes on past the %llu bytes read",
		                 r->name, r->at, what, (unsigned long long)r->len);
	return pg_gguf_fail(ENODATA, "%s: truncated: %s: %s needs %llu bytes at offset %llu, but the "
	                 "file ends at %llu", r->name, r->at, what, (unsigned long long)n,
	                 (unsigned long long)r->pos, (unsigned long long)r->fsize);
}

static int get32(struct rd *r, uint32_t *v, const char *what)
{
	int rc = need(r, 4, what);
	if (!rc) {
		memcpy(v, r->p + r->pos, 4);
		r->pos += 4;
	}
	return rc;
}

static int get64(struct rd *r, uint64_t *v, const char *what)
{
	int rc = need(r, 8, what);
	if (!rc) {
		memcpy(v, r->p + r->pos, 8);
		r->pos += 8;
	}
	return rc;
}

/* A GGUF string: its length, then that many bytes, which must be there. */
static int get_string(struct rd *r, uint64_t *len, uint64_t *at, const char *what)
{
	char w[96];
	snprintf(w, sizeof w, "%s length", what);
	int rc = get64(r, len, w);
	if (rc)
		return rc;
	snprintf(w, sizeof w, "%s of %llu bytes", what, (unsigned long long)*len);
	if ((rc = need(r, *len, w)))
		return rc;
	*at = r->pos;
	r->pos += *len;
	return 0;
}

static int check_bools(struct rd *r, const uint8_t *v, uint64_t n)
{
	for (uint64_t i = 0; i < n; i++)
		if (v[i] > 1)
			return pg_gguf_fail(EINVAL, "%s: %s: bool value %u is neither 0 nor 1", r->name, r->at,
			                 v[i]);
	return 0;
}

/* Skip over one value of type t; string arrays at the top level record
 * each string's position in str_at (allocated here). */
static int skip_value(struct rd *r, int t, int depth, struct gguf_kv *kv)
{
	uint32_t size = fp_gguf_type_size(t);
	if (size) {
		int rc = need(r, size, "value");
		if (!rc && t == FP_GGUF_BOOL)
			rc = check_bools(r, r->p + r->pos, 1);
		r->pos += size;
		return rc;
	}
	if (t == FP_GGUF_STRING) {
		uint64_t len, at;
		return get_string(r, &len, &at, "string");
	}
	if (t != FP_GGUF_ARRAY)
		return pg_gguf_fail(EINVAL, "%s: %s: unknown value type %d", r->name, r->at, t);
	if (depth >= MAX_NESTING)
		return pg_gguf_fail(EINVAL, "%s: %s: arrays nested deeper than %d", r->name, r->at,
		                 MAX_NESTING);
	uint32_t et;
	uint64_t n;
	int rc = get32(r, &et, "array element type");
	if (!rc)
		rc = get64(r, &n, "array length");
	if (rc)
		return rc;
	if (!fp_gguf_type_name((int)et))
		return pg_gguf_fail(EINVAL, "%s: %s: unknown array element type %u", r->name, r->at, et);
	if (kv) {
		kv->elem_type = (int)et;
		kv->n = n;
		kv->data = (const uint8_t *)(uintptr_t)r->pos; /* an offset until the copy */
	}
	uint64_t left = r->fsize - r->pos;
	size = fp_gguf_type_size((int)et);
	/* A string takes at least its 8-byte length, an array 12 bytes. */
	uint64_t least = size ? size : et == FP_GGUF_STRING ? 8 : 12;
	if (n > UINT64_MAX / least)
		return pg_gguf_fail(EOVERFLOW, "%s: %s: array length %llu overflows", r->name, r->at,
		                 (unsigned long long)n);
	if (n * least > left)
		return pg_gguf_fail(ENODATA, "%s: truncated: %s: an array of %llu %s needs at least %llu "
		                 "bytes at offset %llu, but the file ends at %llu", r->name, r->at,
		                 (unsigned long long)n, fp_gguf_type_name((int)et),
		                 (unsigned long long)(n * least), (unsigned long long)r->pos,
		                 (unsigned long long)r->fsize);
	if (size) {
		if ((rc = need(r, n * size, "array elements")))
			return rc;
		if (et == FP_GGUF_BOOL && (rc = check_bools(r, r->p + r->pos, n)))
			return rc;
		r->pos += n * size;
		return 0;
	}
	if (kv && et == FP_GGUF_STRING && !(kv->str_at = malloc((n ? n : 1) * sizeof *kv->str_at)))
		return pg_gguf_fail(ENOMEM, "%s: %s: out of memory for %llu strings", r->name, r->at,
		                 (unsigned long long)n);
	uint64_t start = r->pos;
	for (uint64_t i = 0; i < n; i++) {
		if (kv && kv->str_at)
			kv->str_at[i] = r->pos - start;
		if ((rc = skip_value(r, (int)et, depth + 1, NULL)))
			return rc;
	}
	return 0;
}

int pg_gguf_check_array(const char *name, const char *key, int elem_type, uint64_t n,
                     const void *bytes, size_t len)
{
	/* The elements behind the type and length a file would hold. */
	uint8_t *buf = malloc(12 + len);
	if (!buf)
		return pg_gguf_fail(ENOMEM, "%s: key '%s': out of memory", name, key);
	uint32_t et = (uint32_t)elem_type;
	memcpy(buf, &et, 4);
	memcpy(buf + 4, &n, 8);
	if (len)
		memcpy(buf + 12, bytes, len);
	struct rd r = {.p = buf, .len = 12 + len, .fsize = 12 + len, .name = name};
	snprintf(r.at, sizeof r.at, "key '%s'", key);
	int rc = skip_value(&r, FP_GGUF_ARRAY, 0, NULL);
	if (!rc && r.pos != r.len)
		rc = pg_gguf_fail(EINVAL, "%s: key '%s': %zu bytes given, the %llu elements take %llu",
		               name, key, len, (unsigned long long)n, (unsigned long long)(r.pos - 12));
	free(buf);
	return rc;
}

/* ------------------------------------------------------------------ */
/* The header                                                           */

void fp_gguf_close(fp_gguf *g)
{
	if (!g)
		return;
	for (uint64_t i = 0; i < g->kv_cap; i++) {
		free(g->kv[i].key);
		free(g->kv[i].str);
		free(g->kv[i].str_at);
	}
	free(g->kv);
	free(g->kv_by_key);
	free(g->tensors);
	free(g->names);
	free(g->tensor_by_name);
	free(g->buf);
	free(g->name);
	free(g);
}

static int by_key(const void *a, const void *b, void *kv)
{
	const struct gguf_kv *k = kv;
	return strcmp(k[*(const uint64_t *)a].key, k[*(const uint64_t *)b].key);
}

static int by_name(const void *a, const void *b, void *t)
{
	const struct fp_gguf_tensor *x = t;
	return strcmp(x[*(const uint64_t *)a].name, x[*(const uint64_t *)b].name);
}

static int by_offset(const void *a, const void *b, void *t)
{
	const struct fp_gguf_tensor *x = t, *p = &x[*(const uint64_t *)a], *q = &x[*(const uint64_t *)b];
	return p->offset < q->offset ? -1 : p->offset > q->offset;
}

static uint64_t *sorted_index(uint64_t n, int (*cmp)(const void *, const void *, void *), void *arg)
{
	uint64_t *ix = malloc((n ? n : 1) * sizeof *ix);
	if (!ix)
		return NULL;
	for (uint64_t i = 0; i < n; i++)
		ix[i] = i;
	qsort_r(ix, n, sizeof *ix, cmp, arg);
	return ix;
}

static int read_header(struct rd *r, fp_gguf *g)
{
	snprintf(r->at, sizeof r->at, "header");
	int rc = need(r, 4, "magic");
	if (rc)
		return rc;
	if (memcmp(r->p, FP_GGUF_MAGIC, 4))
		return pg_gguf_fail(EINVAL, "%s: not a GGUF file (bad magic)", r->name);
	r->pos = 4;
	if ((rc = get32(r, &g->version, "version")))
		return rc;
	if (g->version == 1)
		return pg_gguf_fail(EPROTONOSUPPORT, "%s: GGUF version 1 is not supported (versions 2 and "
		                 "3 are; a newer llama.cpp converts it)", r->name);
	if (g->version < 2 || g->version > 3)
		return pg_gguf_fail(EPROTONOSUPPORT, "%s: header.version is %u; this flexpage reads GGUF "
		                 "versions 2 and 3%s", r->name, g->version,
		                 (g->version & 0xffff) == 0 ? " (a big-endian file?)" : "");
	if ((rc = get64(r, &g->n_tensors, "tensor count")) || (rc = get64(r, &g->n_kv, "key count")))
		return rc;
	/* A tensor info takes at least 8 + 1 + 4 + 4 + 8 bytes, a key-value
	 * pair 8 + 1 + 4 + 1: a count the file cannot hold is refused before
	 * anything is allocated for it. */
	const struct {
		const char *field;
		uint64_t count, least;
	} counts[2] = {{"tensor_count", g->n_tensors, 25}, {"metadata_kv_count", g->n_kv, 14}};
	for (int i = 0; i < 2; i++) {
		if (counts[i].count > UINT64_MAX / counts[i].least)
			return pg_gguf_fail(EOVERFLOW, "%s: header.%s %llu overflows", r->name, counts[i].field,
			                 (unsigned long long)counts[i].count);
		if (counts[i].count * counts[i].least > r->fsize - r->pos)
			return pg_gguf_fail(ENODATA, "%s: truncated: header.%s %llu needs at least %llu bytes "
			                 "after offset %llu, but the file ends at %llu", r->name,
			                 counts[i].field, (unsigned long long)counts[i].count,
			                 (unsigned long long)(counts[i].count * counts[i].least),
			                 (unsigned long long)r->pos, (unsigned long long)r->fsize);
	}
	return 0;
}

/* Room for entry i of an array of total entries of size bytes, *cap of
 * them allocated: doubled when full (up to total), the new ones zeroed.
 * 0 or -1. */
static int reserve(void **arr, uint64_t *cap, uint64_t i, uint64_t total, size_t size)
{
	if (i < *cap)
		return 0;
	uint64_t n = *cap ? *cap * 2 : 16;
	if (n > total)
		n = total;
	uint8_t *p = realloc(*arr, n * size);
	if (!p)
		return -1;
	memset(p + *cap * size, 0, (n - *cap) * size);
	*arr = p;
	*cap = n;
	return 0;
}

static int read_kvs(struct rd *r, fp_gguf *g)
{
	for (uint64_t i = 0; i < g->n_kv; i++) {
		if (reserve((void **)&g->kv, &g->kv_cap, i, g->n_kv, sizeof *g->kv))
			return pg_gguf_fail(ENOMEM, "%s: out of memory for %llu keys", r->name,
			                 (unsigned long long)g->n_kv);
		struct gguf_kv *kv = &g->kv[i];
		uint64_t len, at;
		uint32_t type;
		snprintf(r->at, sizeof r->at, "key %llu", (unsigned long long)i);
		int rc = get_string(r, &len, &at, "key");
		if (rc)
			return rc;
		if (len == 0 || len > MAX_KEY_LEN || memchr(r->p + at, 0, len))
			return pg_gguf_fail(EINVAL, "%s: %s: a key must be 1 to %u bytes without NUL (it is "
			                 "%llu)", r->name, r->at, MAX_KEY_LEN, (unsigned long long)len);
		if (!(kv->key = strndup((const char *)r->p + at, len)))
			return pg_gguf_fail(ENOMEM, "%s: out of memory", r->name);
		snprintf(r->at, sizeof r->at, "key %llu ('%.120s')", (unsigned long long)i, kv->key);
		if ((rc = get32(r, &type, "value type")))
			return rc;
		kv->type = (int)type;
		if (!fp_gguf_type_name(kv->type))
			return pg_gguf_fail(EINVAL, "%s: %s: unknown value type %u", r->name, r->at, type);
		uint64_t start = r->pos;
		if (kv->type == FP_GGUF_STRING) {
			if ((rc = get_string(r, &kv->n, &at, "string value")))
				return rc;
			if (!(kv->str = malloc(kv->n + 1)))
				return pg_gguf_fail(ENOMEM, "%s: %s: out of memory", r->name, r->at);
			memcpy(kv->str, r->p + at, kv->n);
			kv->str[kv->n] = 0;
			kv->data = (const uint8_t *)(uintptr_t)at;
			kv->bytes = kv->n;
			continue;
		}
		if ((rc = skip_value(r, kv->type, 0, kv)))
			return rc;
		if (kv->type != FP_GGUF_ARRAY)
			kv->data = (const uint8_t *)(uintptr_t)start;
		kv->bytes = r->pos - (uint64_t)(uintptr_t)kv->data;
	}
	if (!(g->kv_by_key = sorted_index(g->n_kv, by_key, g->kv)))
		return pg_gguf_fail(ENOMEM, "%s: out of memory", r->name);
	for (uint64_t i = 1; i < g->n_kv; i++)
		if (!strcmp(g->kv[g->kv_by_key[i]].key, g->kv[g->kv_by_key[i - 1]].key))
			return pg_gguf_fail(EEXIST, "%s: key '%s' appears twice (keys %llu and %llu)", r->name,
			                 g->kv[g->kv_by_key[i]].key,
			                 (unsigned long long)g->kv_by_key[i - 1],
			                 (unsigned long long)g->kv_by_key[i]);
	return 0;
}

static int read_alignment(struct rd *r, fp_gguf *g)
{
	g->alignment = FP_GGUF_DEFAULT_ALIGNMENT;
	int64_t i = fp_gguf_find(g, "general.alignment");
	if (i < 0)
		return 0;
	const struct gguf_kv *kv = &g->kv[i];
	if (kv->type != FP_GGUF_UINT32)
		return pg_gguf_fail(EINVAL, "%s: key 'general.alignment' is %s, it must be u32", r->name,
		                 fp_gguf_type_name(kv->type));
	uint32_t a;
	memcpy(&a, r->p + (uintptr_t)kv->data, 4);
	if (a == 0 || (a & (a - 1)))
		return pg_gguf_fail(EINVAL, "%s: key 'general.alignment' is %u, not a power of two",
		                 r->name, a);
	g->alignment = a;
	return 0;
}

/* Room for tensor i and its name; the names read so far follow a move. */
static int grow_tensors(fp_gguf *g, uint64_t i)
{
	uint64_t cap = g->tensor_cap;
	const char *was = g->names;
	if (reserve((void **)&g->names, &cap, i, g->n_tensors, FP_GGUF_NAME_MAX) ||
	    reserve((void **)&g->tensors, &g->tensor_cap, i, g->n_tensors, sizeof *g->tensors))
		return pg_gguf_fail(ENOMEM, "%s: out of memory for %llu tensors", g->name,
		                 (unsigned long long)g->n_tensors);
	for (uint64_t k = 0; g->names != was && k < i; k++)
		g->tensors[k].name = g->names + k * FP_GGUF_NAME_MAX;
	return 0;
}

static int read_tensor_info(struct rd *r, fp_gguf *g, uint64_t i)
{
	struct fp_gguf_tensor *t = &g->tensors[i];
	char *name = g->names + i * FP_GGUF_NAME_MAX;
	uint64_t len, at;
	snprintf(r->at, sizeof r->at, "tensor %llu", (unsigned long long)i);
	int rc = get_string(r, &len, &at, "name");
	if (rc)
		return rc;
	if (len == 0 || len >= FP_GGUF_NAME_MAX || memchr(r->p + at, 0, len))
		return pg_gguf_fail(EINVAL, "%s: %s: a name must be 1 to %d bytes without NUL (it is %llu)",
		                 r->name, r->at, FP_GGUF_NAME_MAX - 1, (unsigned long long)len);
	memcpy(name, r->p + at, len);
	name[len] = 0;
	t->name = name;
	snprintf(r->at, sizeof r->at, "tensor %llu ('%s')", (unsigned long long)i, name);
	if ((rc = get32(r, &t->n_dims, "n_dims")))
		return rc;
	if (t->n_dims > 4)
		return pg_gguf_fail(EINVAL, "%s: %s: n_dims is %u, at most 4", r->name, r->at, t->n_dims);
	for (uint32_t d = 0; d < 4; d++) {
		t->ne[d] = 1;
		if (d < t->n_dims && (rc = get64(r, &t->ne[d], "dimension")))
			return rc;
		if (t->ne[d] > INT64_MAX)
			return pg_gguf_fail(EOVERFLOW, "%s: %s: dimension %u is %llu, more than ggml's int64 "
			                 "holds", r->name, r->at, d, (unsigned long long)t->ne[d]);
	}
	if ((rc = get32(r, &t->type, "type")))
		return rc;
	uint32_t be = 0;
	if (fp_ggml_type_size(t->type, &be, NULL))
		return pg_gguf_fail(EINVAL, "%s: %s: unknown ggml type %u", r->name, r->at, t->type);
	rc = fp_ggml_nbytes(t->type, t->n_dims, t->ne, &t->size);
	if (rc == -EDOM)
		return pg_gguf_fail(EINVAL, "%s: %s: a row of %llu values is not a multiple of the %s "
		                 "block (%u values)", r->name, r->at, (unsigned long long)t->ne[0],
		                 fp_ggml_type_name(t->type), be);
	if (rc)
		return pg_gguf_fail(EOVERFLOW, "%s: %s: shape [%llu, %llu, %llu, %llu] of %s overflows its "
		                 "byte size", r->name, r->at, (unsigned long long)t->ne[0],
		                 (unsigned long long)t->ne[1], (unsigned long long)t->ne[2],
		                 (unsigned long long)t->ne[3], fp_ggml_type_name(t->type));
	return get64(r, &t->offset, "offset");
}

/* Offsets are relative to the data section until here: make them
 * absolute and check that each tensor is aligned, in the file and alone. */
static int place_tensors(struct rd *r, fp_gguf *g)
{
	for (uint64_t i = 0; i < g->n_tensors; i++) {
		struct fp_gguf_tensor *t = &g->tensors[i];
		if (t->offset % g->alignment)
			return pg_gguf_fail(EINVAL, "%s: tensor %llu ('%s'): offset %llu is not a multiple of "
			                 "general.alignment (%llu)", r->name, (unsigned long long)i, t->name,
			                 (unsigned long long)t->offset, (unsigned long long)g->alignment);
		uint64_t abs, end;
		if (__builtin_add_overflow(t->offset, g->data_offset, &abs) ||
		    __builtin_add_overflow(abs, t->size, &end) || end > g->file_size)
			return pg_gguf_fail(ERANGE, "%s: tensor %llu ('%s'): its %llu bytes at data offset "
			                 "%llu lie outside the file (data starts at %llu, the file is %llu "
			                 "bytes)", r->name, (unsigned long long)i, t->name,
			                 (unsigned long long)t->size, (unsigned long long)t->offset,
			                 (unsigned long long)g->data_offset, (unsigned long long)g->file_size);
		t->offset = abs;
	}
	uint64_t *ix = sorted_index(g->n_tensors, by_offset, g->tensors);
	if (!ix)
		return pg_gguf_fail(ENOMEM, "%s: out of memory", r->name);
	for (uint64_t k = 1; k < g->n_tensors; k++) {
		const struct fp_gguf_tensor *a = &g->tensors[ix[k - 1]], *b = &g->tensors[ix[k]];
		if (b->offset < a->offset + a->size) {
			int rc = pg_gguf_fail(EINVAL, "%s: tensors '%s' and '%s' overlap at file offset %llu",
			                   r->name, a->name, b->name, (unsigned long long)b->offset);
			free(ix);
			return rc;
		}
	}
	free(ix);
	if (!(g->tensor_by_name = sorted_index(g->n_tensors, by_name, g->tensors)))
		return pg_gguf_fail(ENOMEM, "%s: out of memory", r->name);
	for (uint64_t k = 1; k < g->n_tensors; k++) {
		const struct fp_gguf_tensor *a = &g->tensors[g->tensor_by_name[k - 1]];
		const struct fp_gguf_tensor *b = &g->tensors[g->tensor_by_name[k]];
		if (!strcmp(a->name, b->name))
			return pg_gguf_fail(EEXIST, "%s: tensor name '%s' appears twice", r->name, a->name);
	}
	return 0;
}

/* The header's bytes are copied; what pointed at the caller's buffer
 * (as offsets) now points into the copy. */
static int keep_header(struct rd *r, fp_gguf *g)
{
	g->header_size = r->pos;
	if (!(g->buf = malloc(g->header_size)))
		return pg_gguf_fail(ENOMEM, "%s: out of memory", r->name);
	memcpy(g->buf, r->p, g->header_size);
	for (uint64_t i = 0; i < g->n_kv; i++)
		g->kv[i].data = g->buf + (uintptr_t)g->kv[i].data;
	return 0;
}

fp_gguf *fp_gguf_parse(const void *buf, size_t len, uint64_t file_size, const char *name)
{
	fp_gguf *g = calloc(1, sizeof *g);
	if (!g || !(g->name = strdup(name ? name : "GGUF"))) {
		pg_gguf_fail(ENOMEM, "%s: out of memory", name);
		free(g);
		return NULL;
	}
	struct rd r = {.p = buf, .len = len, .fsize = file_size, .name = g->name};
	g->file_size = file_size;
	if (len > file_size) {
		pg_gguf_fail(EINVAL, "%s: %zu bytes given of a file of %llu", g->name, len,
		          (unsigned long long)file_size);
		goto fail;
	}
	if (read_header(&r, g) || read_kvs(&r, g) || read_alignment(&r, g))
		goto fail;
	for (uint64_t i = 0; i < g->n_tensors; i++)
		if (grow_tensors(g, i) || read_tensor_info(&r, g, i))
			goto fail;
	/* The data section starts at the next multiple of the alignment
	 * (with no tensors, nothing need follow the header). */
	g->data_offset = r.pos;
	if (g->n_tensors) {
		g->data_offset = (r.pos + g->alignment - 1) / g->alignment * g->alignment;
		if (g->data_offset > file_size) {
			pg_gguf_fail(ENODATA, "%s: truncated: the data section would start at %llu, past the "
			          "end of the file (%llu bytes)", g->name, (unsigned long long)g->data_offset,
			          (unsigned long long)file_size);
			goto fail;
		}
	}
	if (place_tensors(&r, g) || keep_header(&r, g))
		goto fail;
	return g;
fail:;
	int e = errno;
	fp_gguf_close(g);
	errno = e;
	return NULL;
}

fp_gguf *fp_gguf_open(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		pg_gguf_fail(e, "%s: cannot open: %s", path, strerror(e));
		return NULL;
	}
	struct stat st;
	if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
		close(fd);
		pg_gguf_fail(EINVAL, "%s: not a regular file", path);
		return NULL;
	}
	/* Read the first MiB, and twice as much as long as the header goes on
	 * past what was read. */
	uint64_t fsize = (uint64_t)st.st_size, want = fsize < (1u << 20) ? fsize : (1u << 20);
	fp_gguf *g = NULL;
	for (;;) {
		uint8_t *buf = malloc(want ? want : 1);
		if (!buf) {
			pg_gguf_fail(ENOMEM, "%s: out of memory for a %llu byte header", path,
			          (unsigned long long)want);
			break;
		}
		if (pg_read_full(fd, buf, want, 0)) {
			int e = errno ? errno : EIO;
			free(buf);
			pg_gguf_fail(e, "%s: read failed: %s", path, strerror(e));
			break;
		}
		g = fp_gguf_parse(buf, want, fsize, path);
		free(buf);
		if (g || errno != ENOBUFS || want == fsize)
			break;
		want = want > fsize / 2 ? fsize : want * 2;
	}
	int e = errno;
	close(fd);
	errno = e;
	return g;
}

/* ------------------------------------------------------------------ */
/* Accessors                                                            */

uint32_t fp_gguf_version(const fp_gguf *g) { return g->version; }
uint64_t fp_gguf_alignment(const fp_gguf *g) { return g->alignment; }
uint64_t fp_gguf_data_offset(const fp_gguf *g) { return g->data_offset; }
uint64_t fp_gguf_file_size(const fp_gguf *g) { return g->file_size; }
uint64_t fp_gguf_n_kv(const fp_gguf *g) { return g->n_kv; }
uint64_t fp_gguf_n_tensors(const fp_gguf *g) { return g->n_tensors; }

const char *fp_gguf_key(const fp_gguf *g, uint64_t i)
{
	return i < g->n_kv ? g->kv[i].key : NULL;
}

int fp_gguf_type(const fp_gguf *g, uint64_t i)
{
	return i < g->n_kv ? g->kv[i].type : -ENOENT;
}

int64_t fp_gguf_find(const fp_gguf *g, const char *key)
{
	uint64_t lo = 0, hi = g->n_kv;
	while (lo < hi) {
		uint64_t mid = lo + (hi - lo) / 2;
		int c = strcmp(g->kv[g->kv_by_key[mid]].key, key);
		if (!c)
			return (int64_t)g->kv_by_key[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -ENOENT;
}

/* Key's entry, or NULL with -ENOENT and a message in *rc. */
static const struct gguf_kv *lookup(const fp_gguf *g, const char *key, int *rc)
{
	int64_t i = fp_gguf_find(g, key);
	if (i < 0) {
		*rc = pg_gguf_fail(ENOENT, "%s: no key '%s'", g->name, key);
		return NULL;
	}
	return &g->kv[i];
}

static int wrong_type(const fp_gguf *g, const struct gguf_kv *kv, const char *want)
{
	return pg_gguf_fail(EINVAL, "%s: key '%s' is %s, expected %s", g->name, kv->key,
	                 fp_gguf_type_name(kv->type), want);
}

/* An integer value as a sign and magnitude: 0 if kv holds no integer. */
static int int_value(const struct gguf_kv *kv, int *neg, uint64_t *mag)
{
	const uint8_t *p = kv->data;
	int64_t s;
	*neg = 0;
	switch (kv->type) {
	case FP_GGUF_UINT8: *mag = p[0]; return 1;
	case FP_GGUF_UINT16: { uint16_t v; memcpy(&v, p, 2); *mag = v; return 1; }
	case FP_GGUF_UINT32: { uint32_t v; memcpy(&v, p, 4); *mag = v; return 1; }
	case FP_GGUF_UINT64: memcpy(mag, p, 8); return 1;
	case FP_GGUF_INT8: s = (int8_t)p[0]; break;
	case FP_GGUF_INT16: { int16_t v; memcpy(&v, p, 2); s = v; break; }
	case FP_GGUF_INT32: { int32_t v; memcpy(&v, p, 4); s = v; break; }
	case FP_GGUF_INT64: memcpy(&s, p, 8); break;
	default: return 0;
	}
	*neg = s < 0;
	*mag = s < 0 ? (uint64_t)0 - (uint64_t)s : (uint64_t)s;
	return 1;
}

/* Key's integer value as a sign and magnitude, or an error. */
static int get_int(const fp_gguf *g, const char *key, int *neg, uint64_t *mag)
{
	int rc = 0;
	const struct gguf_kv *kv = lookup(g, key, &rc);
	if (kv && !int_value(kv, neg, mag))
		rc = wrong_type(g, kv, "an integer");
	return rc;
}

int fp_gguf_get_u64(const fp_gguf *g, const char *key, uint64_t *out)
{
	int neg, rc;
	uint64_t mag;
	if ((rc = get_int(g, key, &neg, &mag)))
		return rc;
	if (neg)
		return pg_gguf_fail(ERANGE, "%s: key '%s' is -%llu, expected a value >= 0", g->name, key,
		                 (unsigned long long)mag);
	*out = mag;
	return 0;
}

int fp_gguf_get_i64(const fp_gguf *g, const char *key, int64_t *out)
{
	int neg, rc;
	uint64_t mag;
	if ((rc = get_int(g, key, &neg, &mag)))
		return rc;
	if (!neg && mag > INT64_MAX)
		return pg_gguf_fail(ERANGE, "%s: key '%s' is %llu, more than an int64 holds", g->name, key,
		                 (unsigned long long)mag);
	*out = neg ? (int64_t)(0 - mag) : (int64_t)mag;
	return 0;
}

int fp_gguf_get_f64(const fp_gguf *g, const char *key, double *out)
{
	int rc = 0, neg;
	uint64_t mag;
	const struct gguf_kv *kv = lookup(g, key, &rc);
	if (!kv)
		return rc;
	if (kv->type == FP_GGUF_FLOAT32) {
		float f;
		memcpy(&f, kv->data, 4);
		*out = f;
	} else if (kv->type == FP_GGUF_FLOAT64) {
		memcpy(out, kv->data, 8);
	} else if (int_value(kv, &neg, &mag)) {
		*out = neg ? -(double)mag : (double)mag;
	} else {
		return wrong_type(g, kv, "a number");
	}
	return 0;
}

int fp_gguf_get_bool(const fp_gguf *g, const char *key, int *out)
{
	int rc = 0;
	const struct gguf_kv *kv = lookup(g, key, &rc);
	if (!kv)
		return rc;
	if (kv->type != FP_GGUF_BOOL)
		return wrong_type(g, kv, "bool");
	*out = kv->data[0];
	return 0;
}

int fp_gguf_get_str(const fp_gguf *g, const char *key, const char **s, uint64_t *len)
{
	int rc = 0;
	const struct gguf_kv *kv = lookup(g, key, &rc);
	if (!kv)
		return rc;
	if (kv->type != FP_GGUF_STRING)
		return wrong_type(g, kv, "str");
	*s = kv->str;
	if (len)
		*len = kv->n;
	return 0;
}

int fp_gguf_get_arr(const fp_gguf *g, const char *key, int *elem_type, uint64_t *n,
                    const void **data)
{
	int rc = 0;
	const struct gguf_kv *kv = lookup(g, key, &rc);
	if (!kv)
		return rc;
	if (kv->type != FP_GGUF_ARRAY)
		return wrong_type(g, kv, "an array");
	if (elem_type)
		*elem_type = kv->elem_type;
	if (n)
		*n = kv->n;
	if (data)
		*data = kv->data;
	return 0;
}

int fp_gguf_arr_str(const fp_gguf *g, const char *key, uint64_t i, const char **s, uint64_t *len)
{
	int rc = 0;
	const struct gguf_kv *kv = lookup(g, key, &rc);
	if (!kv)
		return rc;
	if (kv->type != FP_GGUF_ARRAY || kv->elem_type != FP_GGUF_STRING)
		return pg_gguf_fail(EINVAL, "%s: key '%s' is not an array of strings", g->name, key);
	if (i >= kv->n)
		return pg_gguf_fail(ERANGE, "%s: key '%s': no string %llu (it holds %llu)", g->name, key,
		                 (unsigned long long)i, (unsigned long long)kv->n);
	uint64_t l;
	memcpy(&l, kv->data + kv->str_at[i], 8);
	*s = (const char *)kv->data + kv->str_at[i] + 8;
	if (len)
		*len = l;
	return 0;
}

const struct fp_gguf_tensor *fp_gguf_tensor(const fp_gguf *g, uint64_t i)
{
	return i < g->n_tensors ? &g->tensors[i] : NULL;
}

const struct fp_gguf_tensor *fp_gguf_find_tensor(const fp_gguf *g, const char *name)
{
	uint64_t lo = 0, hi = g->n_tensors;
	while (lo < hi) {
		uint64_t mid = lo + (hi - lo) / 2;
		const struct fp_gguf_tensor *t = &g->tensors[g->tensor_by_name[mid]];
		int c = strcmp(t->name, name);
		if (!c)
			return t;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	errno = ENOENT;
	return NULL;
}
