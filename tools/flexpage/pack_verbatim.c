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

#include "cmds.h"
#include "model.h"

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

/* A checkpoint stacks each tensor over the layers: layer l's part of a
 * group is at the group's start + l x its size. */
static int add_llama2c_tensors(const char *in, fp_writer *w, char *err, size_t errlen)
{
	int fd = open(in, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errlen, "%s: cannot open: %s", in, strerror(errno));
		return -1;
	}
	struct llama2c_layout lay;
	int rc = llama2c_read_layout(fd, in, &lay, err, errlen);
	close(fd);
	if (rc)
		return -1;
	const struct frt_config *c = &lay.cfg;
	const uint64_t d = (uint64_t)c->dim, hd = (uint64_t)c->hidden_dim, V = (uint64_t)c->vocab_size;
	const uint64_t kv = d * (uint64_t)c->n_kv_heads / (uint64_t)c->n_heads;
	const struct {
		const char *suffix;
		uint64_t base, rows, cols;
	} per_layer[] = {
		{"attn_norm", lay.rms_att, 1, d}, {"attn_q", lay.wq, d, d},
		{"attn_k", lay.wk, kv, d},        {"attn_v", lay.wv, kv, d},
		{"attn_output", lay.wo, d, d},    {"ffn_norm", lay.rms_ffn, 1, d},
		{"ffn_gate", lay.w1, hd, d},      {"ffn_up", lay.w3, hd, d},
		{"ffn_down", lay.w2, d, hd},
	};
	uint64_t shape[2] = {d, V};
	rc = fp_writer_add_tensor_at(w, "token_embd.weight", FP_TYPE_F32, 2, shape, lay.token_embd);
	char name[FP_NAME_MAX];
	for (int l = 0; !rc && l < c->n_layers; l++)
		for (size_t i = 0; !rc && i < sizeof per_layer / sizeof per_layer[0]; i++) {
			snprintf(name, sizeof name, "blk.%d.%s.weight", l, per_layer[i].suffix);
			uint64_t rows = per_layer[i].rows, cols = per_layer[i].cols;
			shape[0] = cols;
			shape[1] = rows;
			rc = fp_writer_add_tensor_at(w, name, FP_TYPE_F32, rows == 1 ? 1 : 2, shape,
			                             per_layer[i].base + (uint64_t)l * rows * cols * 4);
		}
	shape[0] = d;
	if (!rc)
		rc = fp_writer_add_tensor_at(w, "output_norm.weight", FP_TYPE_F32, 1, shape,
		                             lay.rms_final);
	shape[1] = V;
	if (!rc && !lay.shared_classifier)
		rc = fp_writer_add_tensor_at(w, "output.weight", FP_TYPE_F32, 2, shape, lay.wcls);
	char meta[512];
	if (!rc && model_format_meta(c, lay.shared_classifier, FK_F32, meta, sizeof meta - 32) == 0) {
		strcat(meta, "format=llama2c\n");
		rc = fp_writer_set_meta(w, meta);
	}
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
		rc = add_llama2c_tensors(in, w, err, errlen);
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
