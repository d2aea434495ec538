/* Put a model's weights in memory one of three ways and hand the runtime
 * pointers to them:
 *
 *   resident  read every byte into anonymous memory (images: chunk by
 *             chunk through the image reader, which verifies each one);
 *   mmap      map the file: a raw image's logical layout or a checkpoint,
 *             as llama.cpp maps a GGUF file, with the chosen madvise();
 *   flexpage  open a region: the pager serves each page on first touch.
 *
 * The runtime cannot tell them apart; every tensor is checked against the
 * configuration before any pointer is handed out. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <flexkern/kernels.h>

#include "cmds.h"
#include "model.h"

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -1;
}

int model_load_parse(const char *name)
{
	if (!strcmp(name, "resident"))
		return MODEL_LOAD_RESIDENT;
	if (!strcmp(name, "mmap"))
		return MODEL_LOAD_MMAP;
	if (!strcmp(name, "flexpage"))
		return MODEL_LOAD_FLEXPAGE;
	return -1;
}

const char *model_load_name(int load)
{
	switch (load) {
	case MODEL_LOAD_RESIDENT: return "resident";
	case MODEL_LOAD_MMAP: return "mmap";
	case MODEL_LOAD_FLEXPAGE: return "flexpage";
	}
	return "default";
}

int model_detect(const char *path, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return fail(err, errlen, "%s: cannot open: %s", path, strerror(errno));
	char magic[8];
	ssize_t n = pread(fd, magic, sizeof magic, 0);
	if (n == (ssize_t)sizeof magic && !memcmp(magic, FP_IMAGE_MAGIC, 8)) {
		close(fd);
		return MODEL_FORMAT_IMAGE;
	}
	if (model_is_llama2c(path)) {
		close(fd);
		return MODEL_FORMAT_LLAMA2C;
	}
	/* say what is wrong with it as a checkpoint, the likelier intent */
	struct llama2c_layout lay;
	char why[512];
	llama2c_read_layout(fd, "", &lay, why, sizeof why);
	close(fd);
	return fail(err, errlen, "%s: neither a flexpage image nor a llama2.c checkpoint (as a "
	            "checkpoint: %s)", path, why[0] == ':' ? why + 2 : why);
}

/* ------------------------------------------------------------------ */
/* Pointers                                                             */

static int alloc_layers(struct model *m, char *err, size_t errlen)
{
	m->layers = calloc((size_t)m->cfg.n_layers, sizeof *m->layers);
	if (!m->layers)
		return fail(err, errlen, "%s: out of memory", m->path);
	m->weights.layers = m->layers;
	return 0;
}

static void wire_llama2c(struct model *m, const char *base, const struct llama2c_layout *lay)
{
	const struct frt_config *c = &m->cfg;
	const size_t d = (size_t)c->dim, hd = (size_t)c->hidden_dim;
	const size_t kv = d * (size_t)c->n_kv_heads / (size_t)c->n_heads;
	for (size_t l = 0; l < (size_t)c->n_layers; l++) {
		struct frt_layer *L = &m->layers[l];
		L->attn_norm = (const float *)(base + lay->rms_att + 4 * l * d);
		L->wq = base + lay->wq + 4 * l * d * d;
		L->wk = base + lay->wk + 4 * l * kv * d;
		L->wv = base + lay->wv + 4 * l * kv * d;
		L->wo = base + lay->wo + 4 * l * d * d;
		L->ffn_norm = (const float *)(base + lay->rms_ffn + 4 * l * d);
		L->w1 = base + lay->w1 + 4 * l * hd * d;
		L->w2 = base + lay->w2 + 4 * l * d * hd;
		L->w3 = base + lay->w3 + 4 * l * hd * d;
	}
	m->weights.type = FK_F32;
	m->weights.token_embd = base + lay->token_embd;
	m->weights.output_norm = (const float *)(base + lay->rms_final);
	m->weights.output = base + lay->wcls;
}

/* ------------------------------------------------------------------ */
/* Images: meta and tensor checks                                       */

static int meta_int(const fp_image *img, const char *path, const char *key, int *v,
                    char *err, size_t errlen)
{
	char buf[64], *end;
	if (fp_image_meta(img, key, buf, sizeof buf))
		return fail(err, errlen, "%s: meta key '%s' is missing (not a model image?)", path, key);
	errno = 0;
	long x = strtol(buf, &end, 10);
	if (end == buf || *end || errno || x < -2147483647L || x > 2147483647L)
		return fail(err, errlen, "%s: meta key %s = '%s' is not an integer", path, key, buf);
	*v = (int)x;
	return 0;
}

static int read_meta(struct model *m, const fp_image *img, int *type, char *err, size_t errlen)
{
	char buf[64];
	const char *p = m->path;
	if (fp_image_meta(img, "arch", buf, sizeof buf))
		return fail(err, errlen, "%s: meta key 'arch' is missing (not a model image?)", p);
	if (strcmp(buf, "llama"))
		return fail(err, errlen, "%s: meta arch = %s: not a Llama model%s", p, buf,
		            strcmp(buf, "opaque") ? "" : " (packed as opaque bytes)");
	struct frt_config *c = &m->cfg;
	if (meta_int(img, p, "dim", &c->dim, err, errlen) ||
	    meta_int(img, p, "hidden_dim", &c->hidden_dim, err, errlen) ||
	    meta_int(img, p, "n_layers", &c->n_layers, err, errlen) ||
	    meta_int(img, p, "n_heads", &c->n_heads, err, errlen) ||
	    meta_int(img, p, "n_kv_heads", &c->n_kv_heads, err, errlen) ||
	    meta_int(img, p, "vocab_size", &c->vocab_size, err, errlen) ||
	    meta_int(img, p, "seq_len", &c->seq_len, err, errlen) ||
	    meta_int(img, p, "shared_classifier", &m->shared_classifier, err, errlen))
		return -1;
	if (model_check_config(c, p, "meta key", err, errlen))
		return -1;
	c->rope_theta = 10000.0f;
	c->norm_eps = 1e-5f;
	if (!fp_image_meta(img, "rope_theta", buf, sizeof buf))
		c->rope_theta = strtof(buf, NULL);
	if (!fp_image_meta(img, "norm_eps", buf, sizeof buf))
		c->norm_eps = strtof(buf, NULL);
	if (!(c->rope_theta > 0) || !(c->norm_eps >= 0))
		return fail(err, errlen, "%s: meta rope_theta or norm_eps is not a positive number", p);
	if (fp_image_meta(img, "type", buf, sizeof buf))
		return fail(err, errlen, "%s: meta key 'type' is missing", p);
	*type = fk_type_parse(buf);
	if (*type < 0)
		return fail(err, errlen, "%s: meta type = %s: not f32, q8_0 or q4_0", p, buf);
	if (*type != FK_F32 && (c->dim % FK_QK || c->hidden_dim % FK_QK))
		return fail(err, errlen, "%s: meta type = %s needs dim and hidden_dim to be multiples of %d",
		            p, buf, FK_QK);
	return 0;
}

/* The tensor name as rows x cols of type, or an error naming it. */
static const struct fp_tensor_desc *want_tensor(const fp_image *img, const char *path,
                                                const char *name, int type, uint64_t rows,
                                                uint64_t cols, char *err, size_t errlen)
{
	const struct fp_tensor_desc *t = fp_image_find(img, name);
	if (!t) {
		fail(err, errlen, "%s: tensor %s is missing", path, name);
		return NULL;
	}
	if ((int)t->type != type) {
		const char *tn = fp_type_name(t->type);
		fail(err, errlen, "%s: tensor %s is %s, expected %s", path, name, tn ? tn : "unknown",
		     fk_type_name(type));
		return NULL;
	}
	const int is_vec = rows == 1;
	if (t->shape[0] != cols || (is_vec ? (t->ndim == 2 && t->shape[1] != 1) || t->ndim > 2
	                                   : t->ndim != 2 || t->shape[1] != rows)) {
		fail(err, errlen, "%s: tensor %s has shape [%llu, %llu], expected [%llu, %llu]", path, name,
		     (unsigned long long)t->shape[0], (unsigned long long)(t->ndim > 1 ? t->shape[1] : 1),
		     (unsigned long long)cols, (unsigned long long)rows);
		return NULL;
	}
	if (t->size != fk_row_bytes(type, (size_t)cols) * rows) {
		fail(err, errlen, "%s: tensor %s is %llu bytes, its shape needs %llu", path, name,
		     (unsigned long long)t->size,
		     (unsigned long long)(fk_row_bytes(type, (size_t)cols) * rows));
		return NULL;
	}
	return t;
}

/* Check every tensor of the image and point the weights at base + offset,
 * or, given at[] (a compact copy), at base + at[first chunk]. */
static int wire_image(struct model *m, const fp_image *img, int type, const char *base,
                      const uint64_t *at, char *err, size_t errlen)
{
	const uint64_t cs = fp_image_info(img)->chunk_size;
#define AT(t) (base + (at ? at[(t)->offset / cs] + (t)->offset % cs : (t)->offset))
	const struct frt_config *c = &m->cfg;
	const uint64_t d = (uint64_t)c->dim, hd = (uint64_t)c->hidden_dim, V = (uint64_t)c->vocab_size;
	const uint64_t kv = d * (uint64_t)c->n_kv_heads / (uint64_t)c->n_heads;
	const struct fp_tensor_desc *t;
	char name[FP_NAME_MAX];
#define WANT(nm, ty, r, cl)                                                          \
	do {                                                                         \
		t = want_tensor(img, m->path, nm, ty, r, cl, err, errlen);           \
		if (!t)                                                              \
			return -1;                                                   \
	} while (0)

	m->weights.type = type;
	WANT("token_embd.weight", type, V, d);
	m->weights.token_embd = AT(t);
	WANT("output_norm.weight", FK_F32, 1, d);
	m->weights.output_norm = (const float *)AT(t);
	if (m->shared_classifier) {
		m->weights.output = m->weights.token_embd;
	} else {
		WANT("output.weight", type, V, d);
		m->weights.output = AT(t);
	}
	for (int l = 0; l < c->n_layers; l++) {
		struct frt_layer *L = &m->layers[l];
		const struct {
			const char *suffix;
			const void **dst;
			int ty;
			uint64_t rows, cols;
		} f[] = {
			{"attn_norm", (const void **)&L->attn_norm, FK_F32, 1, d},
			{"attn_q", &L->wq, type, d, d},
			{"attn_k", &L->wk, type, kv, d},
			{"attn_v", &L->wv, type, kv, d},
			{"attn_output", &L->wo, type, d, d},
			{"ffn_norm", (const void **)&L->ffn_norm, FK_F32, 1, d},
			{"ffn_gate", &L->w1, type, hd, d},
			{"ffn_up", &L->w3, type, hd, d},
			{"ffn_down", &L->w2, type, d, hd},
		};
		for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
			snprintf(name, sizeof name, "blk.%d.%s.weight", l, f[i].suffix);
			WANT(name, f[i].ty, f[i].rows, f[i].cols);
			*f[i].dst = AT(t);
		}
	}
#undef WANT
#undef AT
	return 0;
}

/* ------------------------------------------------------------------ */
/* The three loads                                                      */

static int map_file(struct model *m, int fd, uint64_t off, uint64_t len, int advice,
                    char *err, size_t errlen)
{
	void *p = mmap(NULL, (size_t)len, PROT_READ, MAP_PRIVATE, fd, (off_t)off);
	if (p == MAP_FAILED)
		return fail(err, errlen, "%s: mmap of %llu bytes failed: %s", m->path,
		            (unsigned long long)len, strerror(errno));
	m->map = p;
	m->map_len = (size_t)len;
	if (advice && madvise(p, (size_t)len, advice))
		return fail(err, errlen, "%s: madvise failed: %s", m->path, strerror(errno));
	return 0;
}

static int read_all(int fd, void *dst, size_t n, const char *path, char *err, size_t errlen)
{
	char *p = dst;
	off_t off = 0;
	while (n) {
		ssize_t r = pread(fd, p, n, off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return fail(err, errlen, "%s: read failed at offset %lld: %s", path, (long long)off,
			            r ? strerror(errno) : "the file shrank");
		p += r;
		off += r;
		n -= (size_t)r;
	}
	return 0;
}

/* Anonymous memory of len bytes, for a resident copy.  Huge pages where
 * the kernel has them: a decode streams every weight once per token, and
 * with 4 KiB pages it would also walk a page table every 4 KiB. */
static void *anon(size_t len)
{
	void *p = mmap(NULL, len ? len : 1, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	madvise(p, len ? len : 1, MADV_HUGEPAGE); /* advice only: ignore failure */
	return p;
}

static int open_llama2c(struct model *m, const struct model_options *o, char *err, size_t errlen)
{
	if (m->load == MODEL_LOAD_FLEXPAGE)
		return fail(err, errlen, "%s is a llama2.c checkpoint: --load flexpage needs an image "
		            "(make one with: flexpage pack %s IMAGE)", m->path, m->path);
	int fd = open(m->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return fail(err, errlen, "%s: cannot open: %s", m->path, strerror(errno));
	struct llama2c_layout lay;
	int rc = llama2c_read_layout(fd, m->path, &lay, err, errlen);
	if (!rc) {
		m->cfg = lay.cfg;
		m->shared_classifier = lay.shared_classifier;
		m->size = lay.file_size;
		rc = alloc_layers(m, err, errlen);
	}
	if (!rc && m->load == MODEL_LOAD_MMAP) {
		rc = map_file(m, fd, 0, lay.file_size, o ? o->advice : 0, err, errlen);
		if (!rc)
			wire_llama2c(m, m->map, &lay);
	} else if (!rc) {
		m->buf_len = (size_t)lay.file_size;
		m->buf = anon(m->buf_len);
		if (!m->buf)
			rc = fail(err, errlen, "%s: out of memory for a resident copy (%llu bytes)", m->path,
			          (unsigned long long)lay.file_size);
		if (!rc)
			rc = read_all(fd, m->buf, m->buf_len, m->path, err, errlen);
		if (!rc)
			wire_llama2c(m, m->buf, &lay);
	}
	close(fd);
	return rc;
}

/* A resident copy of the weights alone: each chunk's data, rounded up to
 * a page, one after another.  A tensor's chunks stay contiguous (every
 * chunk under a tensor but its last is full), and the padding after a
 * partial chunk (version 1 images: after every tensor) is left out. */
static int read_compact(struct model *m, const fp_image *img, int type, char *err, size_t errlen)
{
	const struct fp_image_info *info = fp_image_info(img);
	uint64_t *at = malloc(sizeof *at * (info->n_chunks ? info->n_chunks : 1));
	if (!at)
		return fail(err, errlen, "%s: out of memory", m->path);
	uint64_t len = 0;
	for (uint32_t i = 0; i < info->n_chunks; i++) {
		at[i] = len;
		len += (fp_image_chunk(img, i)->logical_len + 4095ull) / 4096 * 4096;
	}
	int rc = 0;
	m->buf_len = (size_t)len;
	m->buf = anon(m->buf_len);
	char *bounce = m->buf ? aligned_alloc(4096, info->chunk_size) : NULL;
	if (!bounce)
		rc = fail(err, errlen, "%s: out of memory for a resident copy (%llu bytes)", m->path,
		          (unsigned long long)len);
	for (uint32_t i = 0; !rc && i < info->n_chunks; i++) {
		if (fp_image_read_chunk(img, i, bounce))
			rc = fail(err, errlen, "%s", fp_last_error());
		else
			memcpy((char *)m->buf + at[i], bounce, fp_image_chunk(img, i)->logical_len);
	}
	free(bounce);
	if (!rc)
		rc = wire_image(m, img, type, m->buf, at, err, errlen);
	free(at);
	return rc;
}

static int open_image(struct model *m, const struct model_options *o, char *err, size_t errlen)
{
	fp_image *img = fp_image_open(m->path);
	if (!img)
		return fail(err, errlen, "%s", fp_last_error());
	const struct fp_image_info *info = fp_image_info(img);
	int type = FK_F32, rc = read_meta(m, img, &type, err, errlen);
	if (!rc)
		rc = alloc_layers(m, err, errlen);
	m->size = info->logical_size;
	if (!rc && m->load == MODEL_LOAD_MMAP) {
		if (!info->raw_base) {
			rc = fail(err, errlen, "%s: --load mmap needs a raw image (this one is compressed); "
			          "pack it with --codec raw", m->path);
		} else {
			int fd = open(m->path, O_RDONLY | O_CLOEXEC);
			if (fd < 0)
				rc = fail(err, errlen, "%s: cannot open: %s", m->path, strerror(errno));
			else {
				rc = map_file(m, fd, info->raw_base, info->logical_size, o ? o->advice : 0,
				              err, errlen);
				close(fd);
			}
			if (!rc)
				rc = wire_image(m, img, type, m->map, NULL, err, errlen);
		}
	} else if (!rc && m->load == MODEL_LOAD_RESIDENT) {
		rc = read_compact(m, img, type, err, errlen);
	} else if (!rc) {
		/* check the tables before the region exists: a bad image fails
		 * without starting a single thread */
		static const char nothing[1];
		rc = wire_image(m, img, type, nothing, NULL, err, errlen);
		if (!rc) {
			m->region = fp_open(m->path, o ? &o->fp : NULL);
			if (!m->region)
				rc = fail(err, errlen, "%s", fp_last_error());
		}
		if (!rc)
			rc = wire_image(m, fp_region_image(m->region), type, fp_region_base(m->region),
			                NULL, err, errlen);
	}
	fp_image_close(img);
	return rc;
}

int model_open(struct model *m, const char *path, const struct model_options *o,
               char *err, size_t errlen)
{
	memset(m, 0, sizeof *m);
	if (strlen(path) >= sizeof m->path)
		return fail(err, errlen, "%.64s...: path too long", path);
	strcpy(m->path, path);
	m->format = model_detect(path, err, errlen);
	if (m->format < 0)
		return -1;
	m->load = o && o->load ? o->load : m->format == MODEL_FORMAT_IMAGE ? MODEL_LOAD_FLEXPAGE
	                                                                    : MODEL_LOAD_RESIDENT;
	int rc = m->format == MODEL_FORMAT_IMAGE ? open_image(m, o, err, errlen)
	                                         : open_llama2c(m, o, err, errlen);
	if (rc)
		model_close(m);
	return rc;
}

void model_close(struct model *m)
{
	if (m->region)
		fp_close(m->region);
	if (m->map)
		munmap(m->map, m->map_len);
	if (m->buf)
		munmap(m->buf, m->buf_len ? m->buf_len : 1);
	free(m->layers);
	m->region = NULL;
	m->map = m->buf = NULL;
	m->layers = NULL;
}
