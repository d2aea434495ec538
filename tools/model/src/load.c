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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <flexkern/kernels.h>

#include "internal.h"

int model_load_parse(const char *name)
{
	if (!strcmp(name, "resident"))
		return MODEL_LOAD_RESIDENT;
	if (!strcmp(name, "mmap"))
		return MODEL_LOAD_MMAP;
	if (!strcmp(name, "flexpage"))
		return MODEL_LOAD_FLEXPAGE;
	return model_fail(EINVAL, "'%s' is not resident, mmap or flexpage", name);
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

int model_default_load(int format)
{
	return format == MODEL_FORMAT_LLAMA2C ? MODEL_LOAD_RESIDENT : MODEL_LOAD_FLEXPAGE;
}

int model_open_fd(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		const int e = errno;
		return model_fail(e, "%s: cannot open: %s", path, strerror(e));
	}
	return fd;
}

int model_detect(const char *path)
{
	int fd = model_open_fd(path);
	if (fd < 0)
		return fd;
	char magic[8];
	ssize_t n = pread(fd, magic, sizeof magic, 0);
	if (n == (ssize_t)sizeof magic && !memcmp(magic, FP_IMAGE_MAGIC, 8)) {
		close(fd);
		return MODEL_FORMAT_IMAGE;
	}
	if (n >= 4 && !memcmp(magic, FP_GGUF_MAGIC, 4)) {
		close(fd);
		return MODEL_FORMAT_GGUF;
	}
	if (model_is_llama2c(path)) {
		close(fd);
		return MODEL_FORMAT_LLAMA2C;
	}
	/* say what is wrong with it as a checkpoint, the likelier intent */
	struct llama2c_layout lay;
	llama2c_read_layout(fd, "", &lay);
	close(fd);
	char why[512];
	snprintf(why, sizeof why, "%s", model_last_error());
	return model_fail(EINVAL, "%s: neither a flexpage image nor a llama2.c checkpoint, nor a "
	                  "GGUF (as a checkpoint: %s)", path, why[0] == ':' ? why + 2 : why);
}

/* ------------------------------------------------------------------ */
/* Memory                                                               */

int model_alloc_layers(struct model *m)
{
	m->layers = calloc((size_t)m->cfg.n_layers, sizeof *m->layers);
	if (!m->layers)
		return model_fail(ENOMEM, "%s: out of memory", m->path);
	m->weights.layers = m->layers;
	return 0;
}

int model_map_file(struct model *m, int fd, uint64_t off, uint64_t len, int advice)
{
	void *p = mmap(NULL, (size_t)len, PROT_READ, MAP_PRIVATE, fd, (off_t)off);
	if (p == MAP_FAILED) {
		const int e = errno;
		return model_fail(e, "%s: mmap of %llu bytes failed: %s", m->path,
		                  (unsigned long long)len, strerror(e));
	}
	m->map = p;
	m->map_len = (size_t)len;
	if (advice && madvise(p, (size_t)len, advice)) {
		const int e = errno;
		return model_fail(e, "%s: madvise failed: %s", m->path, strerror(e));
	}
	return 0;
}

int model_read_all(int fd, void *dst, size_t n, uint64_t off, const char *path)
{
	char *p = dst;
	while (n) {
		ssize_t r = pread(fd, p, n, (off_t)off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			const int e = r ? errno : EIO;
			return model_fail(e, "%s: read failed at offset %llu: %s", path,
			                  (unsigned long long)off, r ? strerror(e) : "the file shrank");
		}
		p += r;
		off += (uint64_t)r;
		n -= (size_t)r;
	}
	return 0;
}

/* Huge pages where the kernel has them: a decode streams every weight once
 * per token, and with 4 KiB pages it would also walk a page table every
 * 4 KiB. */
int model_alloc_resident(struct model *m, uint64_t len)
{
	m->buf_len = (size_t)len;
	void *p = mmap(NULL, len ? len : 1, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return model_fail(ENOMEM, "%s: out of memory for a resident copy (%llu bytes)", m->path,
		                  (unsigned long long)len);
	madvise(p, len ? len : 1, MADV_HUGEPAGE); /* advice only: ignore failure */
	m->buf = p;
	return 0;
}

int model_open_region(struct model *m, const struct model_options *o)
{
	errno = 0;
	m->region = fp_open(m->path, o ? &o->fp : NULL);
	if (!m->region)
		return model_fail(model_pager_errno(), "%s", fp_last_error());
	return 0;
}

/* ------------------------------------------------------------------ */
/* llama2.c checkpoints                                                 */

static void wire_llama2c(struct model *m, const char *base, const struct llama2c_layout *lay)
{
	struct llama_tensor t;
	for (int i = 0; llama_tensor_at(&m->cfg, m->shared_classifier, i, &t); i++)
		llama_set(&m->weights, m->layers, &t, base + llama2c_offset(lay, &t), FK_F32);
	if (m->shared_classifier)
		m->weights.output = m->weights.token_embd;
}

static int open_llama2c(struct model *m, const struct model_options *o)
{
	if (m->load == MODEL_LOAD_FLEXPAGE)
		return model_fail(EINVAL, "%s is a llama2.c checkpoint: --load flexpage needs an image "
		                  "(make one with: flexpage pack %s IMAGE)", m->path, m->path);
	int fd = model_open_fd(m->path);
	if (fd < 0)
		return fd;
	struct llama2c_layout lay;
	int rc = llama2c_read_layout(fd, m->path, &lay);
	if (!rc) {
		m->cfg = lay.cfg;
		m->shared_classifier = lay.shared_classifier;
		m->size = lay.file_size;
		rc = model_alloc_layers(m);
	}
	if (!rc && m->load == MODEL_LOAD_MMAP) {
		rc = model_map_file(m, fd, 0, lay.file_size, o ? o->advice : 0);
		if (!rc)
			wire_llama2c(m, m->map, &lay);
	} else if (!rc) {
		rc = model_alloc_resident(m, lay.file_size);
		if (!rc)
			rc = model_read_all(fd, m->buf, m->buf_len, 0, m->path);
		if (!rc)
			wire_llama2c(m, m->buf, &lay);
	}
	close(fd);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Opening and closing                                                  */

int model_open(struct model *m, const char *path, const struct model_options *o)
{
	memset(m, 0, sizeof *m);
	if (strlen(path) >= sizeof m->path)
		return model_fail(ENAMETOOLONG, "%.64s...: path too long", path);
	strcpy(m->path, path);
	m->format = model_detect(path);
	if (m->format < 0)
		return m->format;
	m->load = o && o->load ? o->load : model_default_load(m->format);
	int rc = m->format == MODEL_FORMAT_LLAMA2C ? open_llama2c(m, o) : model_open_image(m, o);
	if (rc)
		model_close(m);
	return rc;
}

const char *model_types(const struct model *m, char *buf, size_t len)
{
	int seen[8], n = 0;
	size_t at = 0;
	buf[0] = 0;
	struct llama_tensor t;
	for (int i = 0; llama_tensor_at(&m->cfg, m->shared_classifier, i, &t); i++) {
		if (llama_is_norm(t.role))
			continue;
		const int type = llama_get(&m->weights, m->layers, &t)->type;
		int k = 0;
		while (k < n && seen[k] != type)
			k++;
		if (k < n || n == 8)
			continue;
		seen[n++] = type;
		const char *name = fk_type_name(type);
		int w = snprintf(buf + at, len - at, "%s%s", n > 1 ? "+" : "", name ? name : "?");
		at = w < 0 || (size_t)w >= len - at ? len - 1 : at + (size_t)w;
	}
	return buf;
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
