/* Images and GGUF files: the configuration (an image's Llama meta, or the
 * llama.* keys of a GGUF file or of the GGUF an image was packed from),
 * every tensor checked against it, and the three loads: a compact resident
 * copy read chunk by chunk through the image reader (which verifies an
 * image's checksums), a map of a raw image or of the GGUF file, a flexpage
 * region (fp_open serves a GGUF file directly). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <flexkern/kernels.h>

#include "internal.h"

static int meta_int(const fp_image *img, const char *path, const char *key, int *v)
{
	char buf[64], *end;
	if (fp_image_meta(img, key, buf, sizeof buf))
		return model_fail(EINVAL, "%s: meta key '%s' is missing (not a model image?)", path, key);
	errno = 0;
	long x = strtol(buf, &end, 10);
	if (end == buf || *end || errno || x < -2147483647L || x > 2147483647L)
		return model_fail(EINVAL, "%s: meta key %s = '%s' is not an integer", path, key, buf);
	*v = (int)x;
	return 0;
}

static int read_meta(struct model *m, const fp_image *img, int *type)
{
	char buf[64];
	const char *p = m->path;
	if (fp_image_meta(img, "arch", buf, sizeof buf))
		return model_fail(EINVAL, "%s: meta key 'arch' is missing (not a model image?)", p);
	if (strcmp(buf, "llama"))
		return model_fail(EINVAL, "%s: meta arch = %s: not a Llama model%s", p, buf,
		                  strcmp(buf, "opaque") ? "" : " (packed as opaque bytes)");
	struct frt_config *c = &m->cfg;
	int rc;
	if ((rc = meta_int(img, p, "dim", &c->dim)) ||
	    (rc = meta_int(img, p, "hidden_dim", &c->hidden_dim)) ||
	    (rc = meta_int(img, p, "n_layers", &c->n_layers)) ||
	    (rc = meta_int(img, p, "n_heads", &c->n_heads)) ||
	    (rc = meta_int(img, p, "n_kv_heads", &c->n_kv_heads)) ||
	    (rc = meta_int(img, p, "vocab_size", &c->vocab_size)) ||
	    (rc = meta_int(img, p, "seq_len", &c->seq_len)) ||
	    (rc = meta_int(img, p, "shared_classifier", &m->shared_classifier)) ||
	    (rc = model_check_config(c, p, "meta key")))
		return rc;
	c->rope_theta = 10000.0f;
	c->norm_eps = 1e-5f;
	if (!fp_image_meta(img, "rope_theta", buf, sizeof buf))
		c->rope_theta = strtof(buf, NULL);
	if (!fp_image_meta(img, "norm_eps", buf, sizeof buf))
		c->norm_eps = strtof(buf, NULL);
	if (!(c->rope_theta > 0) || !(c->norm_eps >= 0))
		return model_fail(EINVAL, "%s: meta rope_theta or norm_eps is not a positive number", p);
	if (fp_image_meta(img, "type", buf, sizeof buf))
		return model_fail(EINVAL, "%s: meta key 'type' is missing", p);
	*type = fk_type_parse(buf);
	if (*type != FK_F32 && *type != FK_Q8_0 && *type != FK_Q4_0)
		return model_fail(EINVAL, "%s: meta type = %s: not f32, q8_0 or q4_0", p, buf);
	return 0;
}

/* The image's tensor for t, of type, or an error naming it. */
static const struct fp_tensor_desc *want_tensor(const fp_image *img, const char *path,
                                                const struct llama_tensor *t, int type)
{
	const struct fp_tensor_desc *d = fp_image_find(img, t->name);
	if (!d) {
		model_fail(EINVAL, "%s: tensor %s is missing", path, t->name);
		return NULL;
	}
	if ((int)d->type != type) {
		const char *tn = fp_type_name(d->type);
		model_fail(EINVAL, "%s: tensor %s is %s, expected %s", path, t->name, tn ? tn : "unknown",
		           fk_type_name(type));
		return NULL;
	}
	if (llama_check_shape(path, t, type, d->ndim, d->shape, d->size))
		return NULL;
	return d;
}

/* Check every tensor of the image and point the weights into memory laid
 * out as the image's logical bytes (base) or as a compact copy of its
 * chunks (at[]).  type: the meta's; a GGUF's tensors have their own. */
static int wire_image(struct model *m, const fp_image *img, int type, const char *base,
                      const uint64_t *at)
{
	const struct model_view v = {base, at, fp_image_info(img)->chunk_size};
	const fp_gguf *g = fp_image_gguf(img);
	if (g)
		return model_gguf_wire(m, g, &v);
	struct llama_tensor t;
	for (int i = 0; llama_tensor_at(&m->cfg, m->shared_classifier, i, &t); i++) {
		/* a matrix is of the meta's type, or f32 where its rows are not
		 * whole blocks (compression-aware packs keep those f32) */
		const struct fp_tensor_desc *own = fp_image_find(img, t.name);
		const int tt = llama_is_norm(t.role) ? FK_F32
		               : own && own->type == FP_TYPE_F32 && t.cols % FK_QK ? FK_F32 : type;
		const struct fp_tensor_desc *d = want_tensor(img, m->path, &t, tt);
		if (!d)
			return -EINVAL;
		llama_set(&m->weights, m->layers, &t, model_view_at(&v, d->offset), tt);
	}
	if (m->shared_classifier)
		m->weights.output = m->weights.token_embd;
	return 0;
}

/* A resident copy of the weights alone: each chunk's data, rounded up to
 * a page, one after another.  A tensor's chunks stay contiguous (every
 * chunk under a tensor but its last is full), and the padding after a
 * partial chunk (version 1 images: after every tensor) is left out. */
static int read_compact(struct model *m, const fp_image *img, int type)
{
	const struct fp_image_info *info = fp_image_info(img);
	uint64_t *at = malloc(sizeof *at * (info->n_chunks ? info->n_chunks : 1));
	if (!at)
		return model_fail(ENOMEM, "%s: out of memory", m->path);
	uint64_t len = 0;
	for (uint32_t i = 0; i < info->n_chunks; i++) {
		at[i] = len;
		len += (fp_image_chunk(img, i)->logical_len + 4095ull) / 4096 * 4096;
	}
	int rc = model_alloc_resident(m, len);
	char *bounce = rc ? NULL : aligned_alloc(4096, info->chunk_size);
	if (!rc && !bounce)
		rc = model_fail(ENOMEM, "%s: out of memory", m->path);
	for (uint32_t i = 0; !rc && i < info->n_chunks; i++) {
		errno = 0;
		if (fp_image_read_chunk(img, i, bounce))
			rc = model_fail(model_pager_errno(), "%s", fp_last_error());
		else
			memcpy((char *)m->buf + at[i], bounce, fp_image_chunk(img, i)->logical_len);
	}
	free(bounce);
	if (!rc)
		rc = wire_image(m, img, type, m->buf, at);
	free(at);
	return rc;
}

int model_open_image(struct model *m, const struct model_options *o)
{
	errno = 0;
	fp_image *img = fp_image_open_chunk(m->path, o ? o->fp.chunk_size : 0);
	if (!img)
		return model_fail(model_pager_errno(), "%s", fp_last_error());
	const struct fp_image_info *info = fp_image_info(img);
	const fp_gguf *g = fp_image_gguf(img);
	int type = FK_F32, rc = g ? model_gguf_config(m, g) : read_meta(m, img, &type);
	if (!rc)
		rc = model_alloc_layers(m);
	/* a GGUF's bytes are the file's; a packed image's, its logical layout */
	m->size = g ? fp_gguf_file_size(g) : info->logical_size;
	if (!rc && m->load == MODEL_LOAD_MMAP) {
		/* the logical bytes: a GGUF opened directly is the file itself, as
		 * llama.cpp maps it; a raw image lays them out from raw_base */
		const int direct = info->kind == FP_IMAGE_DIRECT;
		int fd = -1;
		if (!direct && !info->raw_base)
			rc = model_fail(EINVAL, "%s: --load mmap needs a raw image (this one is "
			                "compressed); pack it with --codec raw", m->path);
		else if ((fd = model_open_fd(m->path)) < 0)
			rc = fd;
		else
			rc = model_map_file(m, fd, direct ? 0 : info->raw_base,
			                    direct ? m->size : info->logical_size, o ? o->advice : 0);
		if (fd >= 0)
			close(fd);
		if (!rc)
			rc = wire_image(m, img, type, m->map, NULL);
	} else if (!rc && m->load == MODEL_LOAD_RESIDENT) {
		rc = read_compact(m, img, type);
	} else if (!rc) {
		/* check the tables before the region exists: a bad image fails
		 * without starting a single thread */
		static const char nothing[1];
		rc = wire_image(m, img, type, nothing, NULL);
		if (!rc)
			rc = model_open_region(m, o);
		if (!rc)
			rc = wire_image(m, fp_region_image(m->region), type, fp_region_base(m->region), NULL);
	}
	fp_image_close(img);
	return rc;
}
