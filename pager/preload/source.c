/* What serves a mapping of a file: the image FLEXPAGE_IMAGE names for it,
 * an image that holds it, the file itself when it is a GGUF, or nothing
 * (any other file is not a model: the kernel maps it, silently).  An image
 * must hold the file byte for byte: a verbatim (or GGUF) image of the
 * file's size whose first and last chunks equal the file's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "preload.h"

static int cmp_chunk(const fp_image *img, uint32_t i, int fd, uint8_t *a, uint8_t *b,
                     char *why, size_t n)
{
	const struct fp_chunk_desc *d = fp_image_chunk(img, i);
	if (fp_image_read_chunk(img, i, a)) {
		snprintf(why, n, "%s", fp_last_error());
		return -1;
	}
	size_t got = 0;
	while (got < d->logical_len) {
		ssize_t k = pread(fd, b + got, d->logical_len - got, (off_t)(d->logical_offset + got));
		if (k <= 0)
			break;
		got += (size_t)k;
	}
	if (got != d->logical_len || memcmp(a, b, d->logical_len)) {
		snprintf(why, n, "its bytes at offset %llu are not the file's (an image of another file?)",
		         (unsigned long long)d->logical_offset);
		return -1;
	}
	return 0;
}

/* 1 if img holds the file of fd (size bytes); else 0 and why. */
static int holds(const fp_image *img, int fd, uint64_t size, char *why, size_t n)
{
	const struct fp_image_info *info = fp_image_info(img);
	if (info->kind != FP_IMAGE_VERBATIM && info->kind != FP_IMAGE_DIRECT) {
		snprintf(why, n, "a packed image does not hold a file byte for byte "
		                 "(make one with flexpage pack --verbatim)");
		return 0;
	}
	if (info->data_bytes != size) {
		snprintf(why, n, "it holds %llu bytes, the file has %llu",
		         (unsigned long long)info->data_bytes, (unsigned long long)size);
		return 0;
	}
	uint8_t *a = malloc(info->chunk_size), *b = malloc(info->chunk_size);
	int ok = a && b && !cmp_chunk(img, 0, fd, a, b, why, n) &&
	         (info->n_chunks < 2 || !cmp_chunk(img, info->n_chunks - 1, fd, a, b, why, n));
	if (!a || !b)
		snprintf(why, n, "out of memory");
	free(a);
	free(b);
	return ok;
}

static int is_gguf(int fd)
{
	char magic[4];
	return pread(fd, magic, 4, 0) == 4 && !memcmp(magic, FP_GGUF_MAGIC, 4);
}

static void refused(struct pl_source *out, const char *fmt, const char *a, const char *b)
{
	out->kind = PL_REFUSED;
	snprintf(out->why, sizeof out->why, fmt, a, b);
	if (out->img)
		fp_image_close(out->img);
	out->img = NULL;
}

/* The image named for this file (FILE=IMAGE): it must hold the file. */
static void named_image(const char *image, int fd, const struct stat *st, struct pl_source *out)
{
	char why[600];
	out->img = fp_image_open_chunk(image, pl_config()->chunk);
	if (!out->img) {
		refused(out, "FLEXPAGE_IMAGE %s: %s", image, fp_last_error());
		return;
	}
	if (!holds(out->img, fd, (uint64_t)st->st_size, why, sizeof why)) {
		refused(out, "FLEXPAGE_IMAGE %s does not hold this file: %s", image, why);
		return;
	}
	out->kind = PL_IMAGE;
	snprintf(out->path, sizeof out->path, "%s", image);
}

/* An image named alone serves whichever file it holds. */
static int any_image(const char *image, int fd, const struct stat *st, struct pl_source *out)
{
	char why[600];
	fp_image *img = fp_image_open_chunk(image, pl_config()->chunk);
	if (!img) {
		struct stat is;
		/* Said once per image: it is tried for every file mapped. */
		if (!stat(image, &is))
			pl_refuse(is.st_dev, is.st_ino, "FLEXPAGE_IMAGE %s: %s", image, fp_last_error());
		else
			pl_refuse(0, 0, "FLEXPAGE_IMAGE %s: %s", image, fp_last_error());
		return 0;
	}
	if (!holds(img, fd, (uint64_t)st->st_size, why, sizeof why)) {
		fp_image_close(img);
		return 0;
	}
	out->kind = PL_IMAGE;
	out->img = img;
	snprintf(out->path, sizeof out->path, "%s", image);
	return 1;
}

void pl_find_source(int fd, const struct stat *st, const char *name, struct pl_source *out)
{
	const struct pl_config *c = pl_config();
	out->kind = PL_NOT_MODEL;
	out->img = NULL;
	out->why[0] = 0;
	for (int i = 0; i < c->n_images; i++) {
		struct stat fs;
		if (c->images[i].file && !stat(c->images[i].file, &fs) && fs.st_dev == st->st_dev &&
		    fs.st_ino == st->st_ino) {
			named_image(c->images[i].image, fd, st, out);
			return;
		}
	}
	for (int i = 0; i < c->n_images; i++)
		if (!c->images[i].file && any_image(c->images[i].image, fd, st, out))
			return;
	if (!is_gguf(fd))
		return;
	out->img = fp_image_open_chunk(name, c->chunk);
	if (!out->img) {
		refused(out, "%s%s", "a GGUF that cannot be paged: ", fp_last_error());
		return;
	}
	out->kind = PL_GGUF;
	snprintf(out->path, sizeof out->path, "%s", name);
}
