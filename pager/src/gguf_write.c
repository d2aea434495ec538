/* Writing a GGUF file (version 3), laid out as ggml writes one: header,
 * metadata, tensor infos, padding to the alignment, then each tensor's
 * bytes padded to the alignment.  Metadata is serialised as it is set;
 * tensor offsets are fixed as tensors are declared, so the header goes
 * out whole at the first data byte and the data streams after it without
 * ever being held in memory. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gguf.h"
#include "tmpfile.h"

#define OUT_BUF (1u << 20)

struct wtensor {
	char name[FP_GGUF_NAME_MAX];
	uint32_t type, n_dims;
	uint64_t ne[4];
	uint64_t offset, size;       /* offset from the data section */
	const void *data;            /* or NULL: streamed */
};

struct fp_gguf_writer {
	char *path, *tmp;
	int fd;
	uint8_t *kv;                 /* the serialised key-value pairs */
	size_t kv_len, kv_cap;
	char **keys;
	uint64_t n_kv;
	uint32_t alignment;
	struct wtensor *t;
	uint64_t n_t, cap_t;
	uint64_t data_size;          /* the data section so far, padded */
	int header_done;
	uint64_t cur, cur_done;      /* the tensor being streamed, its bytes so far */
	uint8_t *out;                /* output buffer */
	size_t out_fill;
	uint64_t written;            /* bytes of the file so far */
	int failed;                  /* a write failed: finish must not make a file */
};

static uint64_t align_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) / a * a;
}

fp_gguf_writer *fp_gguf_writer_create(const char *path)
{
	fp_gguf_writer *w = calloc(1, sizeof *w);
	if (!w) {
		pg_gguf_fail(ENOMEM, "%s: out of memory", path);
		return NULL;
	}
	w->fd = -1;
	w->alignment = FP_GGUF_DEFAULT_ALIGNMENT;
	w->path = strdup(path);
	w->out = malloc(OUT_BUF);
	if (!w->path || !w->out) {
		pg_gguf_fail(ENOMEM, "%s: out of memory", path);
		fp_gguf_writer_abort(w);
		return NULL;
	}
	if ((w->fd = pg_tmpfile_create(path, &w->tmp)) < 0) {
		int e = errno;
		fp_gguf_writer_abort(w);
		errno = e;
		return NULL;
	}
	return w;
}

/* ------------------------------------------------------------------ */
/* Output                                                               */

static int flush_out(fp_gguf_writer *w)
{
	size_t done = 0;
	while (done < w->out_fill) {
		ssize_t n = write(w->fd, w->out + done, w->out_fill - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return pg_gguf_fail(n < 0 ? errno : ENOSPC, "%s: write failed: %s", w->tmp,
			                 strerror(n < 0 ? errno : ENOSPC));
		done += (size_t)n;
	}
	w->out_fill = 0;
	return 0;
}

static int out(fp_gguf_writer *w, const void *p, size_t n)
{
	const uint8_t *b = p;
	while (n) {
		size_t take = OUT_BUF - w->out_fill < n ? OUT_BUF - w->out_fill : n;
		if (b)
			memcpy(w->out + w->out_fill, b, take);
		else
			memset(w->out + w->out_fill, 0, take); /* padding */
		w->out_fill += take;
		w->written += take;
		n -= take;
		if (b)
			b += take;
		if (w->out_fill == OUT_BUF && flush_out(w))
			return -errno;
	}
	return 0;
}

static int pad(fp_gguf_writer *w)
{
	return out(w, NULL, align_up(w->written, w->alignment) - w->written);
}

/* ------------------------------------------------------------------ */
/* Metadata                                                             */

static int append(fp_gguf_writer *w, const void *p, size_t n)
{
	if (w->kv_len + n > w->kv_cap) {
		size_t cap = w->kv_cap ? w->kv_cap : 4096;
		while (cap < w->kv_len + n)
			cap *= 2;
		uint8_t *q = realloc(w->kv, cap);
		if (!q)
			return pg_gguf_fail(ENOMEM, "%s: out of memory for the metadata", w->path);
		w->kv = q;
		w->kv_cap = cap;
	}
	memcpy(w->kv + w->kv_len, p, n);
	w->kv_len += n;
	return 0;
}

static int append_str(fp_gguf_writer *w, const char *s, uint64_t len)
{
	return append(w, &len, 8) || append(w, s, len) ? -ENOMEM : 0;
}

/* The key and the type of a new pair; its value is appended next. */
static int begin_kv(fp_gguf_writer *w, const char *key, int type)
{
	if (w->header_done)
		return pg_gguf_fail(EINVAL, "%s: key '%s': set after the data began", w->path, key);
	size_t len = key ? strlen(key) : 0;
	if (!len || len > 65535)
		return pg_gguf_fail(EINVAL, "%s: a key must be 1 to 65535 bytes", w->path);
	for (uint64_t i = 0; i < w->n_kv; i++)
		if (!strcmp(w->keys[i], key))
			return pg_gguf_fail(EEXIST, "%s: key '%s' set twice", w->path, key);
	if (!strcmp(key, "general.alignment") && type != FP_GGUF_UINT32)
		return pg_gguf_fail(EINVAL, "%s: key 'general.alignment' must be u32", w->path);
	char **k = realloc(w->keys, (w->n_kv + 1) * sizeof *k);
	if (!k || !(k[w->n_kv] = strdup(key))) {
		if (k)
			w->keys = k;
		return pg_gguf_fail(ENOMEM, "%s: out of memory", w->path);
	}
	w->keys = k;
	w->n_kv++;
	uint32_t t = (uint32_t)type;
	return append_str(w, key, len) || append(w, &t, 4) ? -ENOMEM : 0;
}

static int set_scalar(fp_gguf_writer *w, const char *key, int type, const void *v)
{
	int rc = begin_kv(w, key, type);
	return rc ? rc : append(w, v, fp_gguf_type_size(type));
}

int fp_gguf_writer_set_alignment(fp_gguf_writer *w, uint32_t alignment)
{
	return fp_gguf_set_u32(w, "general.alignment", alignment);
}

int fp_gguf_set_u8(fp_gguf_writer *w, const char *key, uint8_t v) { return set_scalar(w, key, FP_GGUF_UINT8, &v); }
int fp_gguf_set_i8(fp_gguf_writer *w, const char *key, int8_t v) { return set_scalar(w, key, FP_GGUF_INT8, &v); }
int fp_gguf_set_u16(fp_gguf_writer *w, const char *key, uint16_t v) { return set_scalar(w, key, FP_GGUF_UINT16, &v); }
int fp_gguf_set_i16(fp_gguf_writer *w, const char *key, int16_t v) { return set_scalar(w, key, FP_GGUF_INT16, &v); }
int fp_gguf_set_i32(fp_gguf_writer *w, const char *key, int32_t v) { return set_scalar(w, key, FP_GGUF_INT32, &v); }
int fp_gguf_set_u64(fp_gguf_writer *w, const char *key, uint64_t v) { return set_scalar(w, key, FP_GGUF_UINT64, &v); }
int fp_gguf_set_i64(fp_gguf_writer *w, const char *key, int64_t v) { return set_scalar(w, key, FP_GGUF_INT64, &v); }
int fp_gguf_set_f32(fp_gguf_writer *w, const char *key, float v) { return set_scalar(w, key, FP_GGUF_FLOAT32, &v); }
int fp_gguf_set_f64(fp_gguf_writer *w, const char *key, double v) { return set_scalar(w, key, FP_GGUF_FLOAT64, &v); }

int fp_gguf_set_u32(fp_gguf_writer *w, const char *key, uint32_t v)
{
	if (key && !strcmp(key, "general.alignment")) {
		/* Offsets follow from the alignment: it comes before any tensor. */
		if (v == 0 || (v & (v - 1)))
			return pg_gguf_fail(EINVAL, "%s: general.alignment %u is not a power of two", w->path, v);
		if (w->n_t)
			return pg_gguf_fail(EINVAL, "%s: general.alignment set after a tensor was added",
			                 w->path);
	}
	int rc = set_scalar(w, key, FP_GGUF_UINT32, &v);
	if (!rc && !strcmp(key, "general.alignment"))
		w->alignment = v;
	return rc;
}

int fp_gguf_set_bool(fp_gguf_writer *w, const char *key, int v)
{
	uint8_t b = v != 0;
	return set_scalar(w, key, FP_GGUF_BOOL, &b);
}

int fp_gguf_set_str(fp_gguf_writer *w, const char *key, const char *s)
{
	int rc = begin_kv(w, key, FP_GGUF_STRING);
	return rc ? rc : append_str(w, s, strlen(s));
}

static int begin_array(fp_gguf_writer *w, const char *key, int elem_type, uint64_t n)
{
	if (!fp_gguf_type_name(elem_type))
		return pg_gguf_fail(EINVAL, "%s: key '%s': unknown element type %d", w->path, key, elem_type);
	int rc = begin_kv(w, key, FP_GGUF_ARRAY);
	uint32_t et = (uint32_t)elem_type;
	return rc ? rc : append(w, &et, 4) || append(w, &n, 8) ? -ENOMEM : 0;
}

int fp_gguf_set_arr(fp_gguf_writer *w, const char *key, int elem_type, const void *data, uint64_t n)
{
	uint32_t size = fp_gguf_type_size(elem_type);
	if (!size)
		return pg_gguf_fail(EINVAL, "%s: key '%s': element type %s is not numeric (use "
		                 "fp_gguf_set_arr_str or fp_gguf_set_arr_raw)", w->path, key,
		                 fp_gguf_type_name(elem_type) ? fp_gguf_type_name(elem_type) : "?");
	if (n > SIZE_MAX / size)
		return pg_gguf_fail(EOVERFLOW, "%s: key '%s': %llu elements overflow", w->path, key,
		                 (unsigned long long)n);
	if (elem_type == FP_GGUF_BOOL)
		for (uint64_t i = 0; i < n; i++)
			if (((const uint8_t *)data)[i] > 1)
				return pg_gguf_fail(EINVAL, "%s: key '%s': bool %llu is neither 0 nor 1", w->path,
				                 key, (unsigned long long)i);
	int rc = begin_array(w, key, elem_type, n);
	return rc ? rc : append(w, data, (size_t)n * size);
}

int fp_gguf_set_arr_str(fp_gguf_writer *w, const char *key, const char *const *s, uint64_t n)
{
	int rc = begin_array(w, key, FP_GGUF_STRING, n);
	for (uint64_t i = 0; !rc && i < n; i++)
		rc = append_str(w, s[i], strlen(s[i]));
	return rc;
}

int fp_gguf_set_arr_raw(fp_gguf_writer *w, const char *key, int elem_type, uint64_t n,
                        const void *bytes, size_t len)
{
	int rc = pg_gguf_check_array(w->path, key ? key : "", elem_type, n, bytes, len);
	if (!rc)
		rc = begin_array(w, key, elem_type, n);
	return rc ? rc : append(w, bytes, len);
}

/* ------------------------------------------------------------------ */
/* Tensors                                                              */

int fp_gguf_writer_add_tensor(fp_gguf_writer *w, const char *name, uint32_t type,
                              uint32_t n_dims, const uint64_t *ne, const void *data)
{
	if (w->header_done)
		return pg_gguf_fail(EINVAL, "%s: tensor '%s': added after the data began", w->path, name);
	size_t len = strlen(name);
	if (!len || len >= FP_GGUF_NAME_MAX)
		return pg_gguf_fail(EINVAL, "%s: tensor name '%s' must be 1 to %d bytes", w->path, name,
		                 FP_GGUF_NAME_MAX - 1);
	if (n_dims < 1 || n_dims > 4)
		return pg_gguf_fail(EINVAL, "%s: tensor '%s': n_dims %u is not 1 to 4", w->path, name, n_dims);
	for (uint64_t i = 0; i < w->n_t; i++)
		if (!strcmp(w->t[i].name, name))
			return pg_gguf_fail(EEXIST, "%s: tensor name '%s' used twice", w->path, name);
	uint64_t size;
	int rc = fp_ggml_nbytes(type, n_dims, ne, &size);
	if (rc)
		return pg_gguf_fail(-rc, "%s: tensor '%s': type %u with this shape: %s", w->path, name, type,
		                 rc == -EINVAL ? "unknown type" : rc == -EDOM
		                 ? "the row is not a multiple of the block" : "too many bytes");
	if (w->n_t == w->cap_t) {
		uint64_t cap = w->cap_t ? w->cap_t * 2 : 64;
		struct wtensor *p = realloc(w->t, cap * sizeof *p);
		if (!p)
			return pg_gguf_fail(ENOMEM, "%s: out of memory", w->path);
		w->t = p;
		w->cap_t = cap;
	}
	struct wtensor *t = &w->t[w->n_t++];
	memset(t, 0, sizeof *t);
	memcpy(t->name, name, len + 1);
	t->type = type;
	t->n_dims = n_dims;
	for (uint32_t d = 0; d < 4; d++)
		t->ne[d] = d < n_dims ? ne[d] : 1;
	t->offset = w->data_size;
	t->size = size;
	t->data = data;
	w->data_size = align_up(t->offset + size, w->alignment);
	return 0;
}

static int write_header(fp_gguf_writer *w)
{
	const uint32_t version = 3;
	int rc = out(w, FP_GGUF_MAGIC, 4);
	if (!rc)
		rc = out(w, &version, 4);
	if (!rc)
		rc = out(w, &w->n_t, 8);
	if (!rc)
		rc = out(w, &w->n_kv, 8);
	if (!rc)
		rc = out(w, w->kv, w->kv_len);
	for (uint64_t i = 0; !rc && i < w->n_t; i++) {
		const struct wtensor *t = &w->t[i];
		uint64_t len = strlen(t->name);
		rc = out(w, &len, 8);
		if (!rc)
			rc = out(w, t->name, len);
		if (!rc)
			rc = out(w, &t->n_dims, 4);
		if (!rc)
			rc = out(w, t->ne, 8 * (size_t)t->n_dims);
		if (!rc)
			rc = out(w, &t->type, 4);
		if (!rc)
			rc = out(w, &t->offset, 8);
	}
	if (!rc)
		rc = pad(w);
	w->header_done = 1;
	return rc;
}

/* Tensors at the cursor whose bytes are at hand (given, or none) go out. */
static int write_ready(fp_gguf_writer *w)
{
	while (w->cur < w->n_t && (w->t[w->cur].data || !w->t[w->cur].size)) {
		const struct wtensor *t = &w->t[w->cur];
		int rc = out(w, t->data, t->size);
		if (!rc)
			rc = pad(w);
		if (rc)
			return rc;
		w->cur++;
	}
	return 0;
}

int fp_gguf_writer_write(fp_gguf_writer *w, const void *data, size_t n)
{
	int rc = w->header_done ? 0 : write_header(w);
	if (!rc)
		rc = write_ready(w);
	const uint8_t *p = data;
	while (!rc && n) {
		if (w->cur == w->n_t)
			rc = pg_gguf_fail(EINVAL, "%s: %zu bytes written past the last tensor", w->path, n);
		if (rc)
			break;
		struct wtensor *t = &w->t[w->cur];
		uint64_t take = t->size - w->cur_done < n ? t->size - w->cur_done : n;
		rc = out(w, p, (size_t)take);
		p += take;
		n -= (size_t)take;
		if (!rc && (w->cur_done += take) == t->size) {
			w->cur++;
			w->cur_done = 0;
			rc = pad(w);
			if (!rc)
				rc = write_ready(w);
		}
	}
	w->failed |= rc != 0;
	return rc;
}

int fp_gguf_writer_finish(fp_gguf_writer *w)
{
	int rc = w->failed ? pg_gguf_fail(EIO, "%s: not written: an earlier write failed", w->path)
	         : w->header_done ? 0 : write_header(w);
	if (!rc)
		rc = write_ready(w);
	if (!rc && w->cur < w->n_t)
		rc = pg_gguf_fail(EINVAL, "%s: tensor '%s' got %llu of its %llu bytes", w->path,
		               w->t[w->cur].name, (unsigned long long)w->cur_done,
		               (unsigned long long)w->t[w->cur].size);
	if (!rc)
		rc = flush_out(w);
	if (!rc && pg_tmpfile_commit(w->fd, w->tmp, w->path))
		rc = -errno;
	if (!rc) {
		free(w->tmp); /* nothing left to remove */
		w->tmp = NULL;
	}
	int e = errno;
	fp_gguf_writer_abort(w);
	errno = e;
	return rc;
}

void fp_gguf_writer_abort(fp_gguf_writer *w)
{
	if (!w)
		return;
	if (w->fd >= 0)
		close(w->fd);
	if (w->tmp)
		unlink(w->tmp);
	for (uint64_t i = 0; i < w->n_kv; i++)
		free(w->keys[i]);
	free(w->keys);
	free(w->kv);
	free(w->t);
	free(w->out);
	free(w->tmp);
	free(w->path);
	free(w);
}
