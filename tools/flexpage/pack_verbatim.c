/* Packing a file byte for byte (flexpage pack --verbatim, and every GGUF):
 * the image's logical bytes are exactly the file's, so that offsets into
 * the file stay valid in the region.  The tensor table names what the file
 * holds: a GGUF's tensor infos, a llama2.c checkpoint's tensors (per layer,
 * under GGUF's names), or else one opaque tensor over the whole file. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <flexkern/kernels.h>

#include <flexmodel/model.h>

#include "cmds.h"

static int add_gguf_tensors(const char *in, fp_writer *w, char *err, size_t errlen)
{
	fp_gguf *g = fp_gguf_open(in);
	if (!g) {
		snprintf(err, errlen, "%s", fp_last_error());
		return -1;
	}
	int rc = 0;
	for (uint64_t i = 0; !rc && i < fp_gguf_n_tensors(g); i++) {
		const struct fp_gguf_tensor *t = fp_gguf_tensor(g, i);
		/* a GGUF scalar (no dimensions) is a tensor of one value */
		uint32_t ndim = t->n_dims ? t->n_dims : 1;
		rc = fp_writer_add_tensor_at(w, t->name, t->type, ndim, t->ne, t->offset);
	}
	char meta[64];
	snprintf(meta, sizeof meta, "format=gguf\ngguf.version=%u\n", fp_gguf_version(g));
	fp_gguf_close(g);
	if (!rc)
		rc = fp_writer_set_meta(w, meta);
	if (rc)
		snprintf(err, errlen, "%s", fp_last_error());
	return rc;
}

int pack_open_input(const char *in, uint64_t *size, char *err, size_t errlen)
{
	int fd = open(in, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st)) {
		snprintf(err, errlen, "%s: cannot open: %s", in, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	if (st.st_size == 0) {
		snprintf(err, errlen, "%s: the file is empty", in);
		close(fd);
		return -1;
	}
	*size = (uint64_t)st.st_size;
	return fd;
}

int pack_file_bytes(int fd, const char *in, uint64_t size, fp_writer *w, char *err, size_t errlen)
{
	size_t cap = 4 << 20;
	char *buf = malloc(cap);
	int rc = 0;
	if (!buf) {
		snprintf(err, errlen, "%s: out of memory", in);
		return -1;
	}
	for (uint64_t left = size; !rc && left;) {
		ssize_t n = read(fd, buf, left < cap ? left : cap);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			snprintf(err, errlen, "%s: read failed: %s", in, n ? strerror(errno) : "file shrank");
			rc = -1;
		} else if (fp_writer_write(w, buf, (size_t)n)) {
			snprintf(err, errlen, "%s", fp_last_error());
			rc = -1;
		} else {
			left -= (uint64_t)n;
		}
	}
	free(buf);
	return rc;
}

int pack_verbatim(const char *in, fp_writer *w, char *err, size_t errlen)
{
	uint64_t size;
	int fd = pack_open_input(in, &size, err, errlen);
	if (fd < 0)
		return -1;
	int rc;
	if (fp_file_is_gguf(in)) {
		rc = add_gguf_tensors(in, w, err, errlen);
	} else if (model_is_llama2c(in)) {
		rc = model_llama2c_tensor_table(in, w);
		if (rc)
			snprintf(err, errlen, "%s", model_last_error());
	} else {
		rc = fp_writer_add_tensor_at(w, "data", FP_TYPE_U8, 1, &size, 0) ||
		     fp_writer_set_meta(w, "arch=opaque\nformat=verbatim\n");
		if (rc)
			snprintf(err, errlen, "%s", fp_last_error());
	}
	if (!rc)
		rc = pack_file_bytes(fd, in, size, w, err, errlen);
	close(fd);
	return rc ? -1 : 0;
}
