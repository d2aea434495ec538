/* llama2.c checkpoints: the header's checks and where each tensor is.
 * A checkpoint stacks each tensor over the layers (all wq, then all wk...),
 * then the final norm, two unused RoPE tables and, when vocab_size is
 * negative, a classifier of its own. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <flexkern/kernels.h>

#include "internal.h"

static int read_header(int fd, int32_t h[7])
{
	ssize_t n = pread(fd, h, 7 * sizeof(int32_t), 0);
	return n == 7 * (ssize_t)sizeof(int32_t) ? 0 : -1;
}

int llama2c_read_layout(int fd, const char *path, struct llama2c_layout *lay)
{
	struct stat st;
	int32_t h[7];
	if (fstat(fd, &st)) {
		const int e = errno;
		return model_fail(e, "%s: cannot stat: %s", path, strerror(e));
	}
	if (st.st_size < 28 || read_header(fd, h))
		return model_fail(EINVAL, "%s: truncated: %lld bytes, a llama2.c header needs 28",
		                  path, (long long)st.st_size);
	memset(lay, 0, sizeof *lay);
	struct frt_config *c = &lay->cfg;
	*c = (struct frt_config){h[0], h[1], h[2], h[3], h[4], h[5], h[6], 10000.0f, 1e-5f};
	/* a negative vocab_size means the classifier follows as its own tensor */
	lay->shared_classifier = h[5] > 0;
	if (h[5] < 0 && h[5] != INT32_MIN)
		c->vocab_size = -h[5];
	if (h[5] == 0)
		return model_fail(EINVAL, "%s: header field vocab_size = 0 must not be zero", path);
	if (model_check_config(c, path, "header field"))
		return -EINVAL;

	const uint64_t d = (uint64_t)c->dim, hd = (uint64_t)c->hidden_dim, L = (uint64_t)c->n_layers;
	const uint64_t kv = d * (uint64_t)c->n_kv_heads / (uint64_t)c->n_heads;
	const uint64_t hs = d / (uint64_t)c->n_heads, V = (uint64_t)c->vocab_size;
	uint64_t at = 28;
	lay->token_embd = at; at += 4 * V * d;
	lay->rms_att = at;    at += 4 * L * d;
	lay->wq = at;         at += 4 * L * d * d;
	lay->wk = at;         at += 4 * L * kv * d;
	lay->wv = at;         at += 4 * L * kv * d;
	lay->wo = at;         at += 4 * L * d * d;
	lay->rms_ffn = at;    at += 4 * L * d;
	lay->w1 = at;         at += 4 * L * hd * d;
	lay->w2 = at;         at += 4 * L * d * hd;
	lay->w3 = at;         at += 4 * L * hd * d;
	lay->rms_final = at;  at += 4 * d;
	at += 4 * (uint64_t)c->seq_len * hs; /* freq_cis_real and _imag: unused */
	lay->wcls = lay->shared_classifier ? lay->token_embd : at;
	if (!lay->shared_classifier)
		at += 4 * V * d;
	lay->file_size = (uint64_t)st.st_size;

	if (lay->file_size != at) {
		const int shorter = lay->file_size < at;
		return model_fail(EINVAL,
		                  "%s: %s: the header (dim=%d hidden_dim=%d n_layers=%d n_heads=%d "
		                  "n_kv_heads=%d vocab_size=%d seq_len=%d) needs %llu bytes, the file has "
		                  "%llu (%llu %s)",
		                  path, shorter ? "truncated" : "size mismatch", h[0], h[1], h[2], h[3],
		                  h[4], h[5], h[6], (unsigned long long)at,
		                  (unsigned long long)lay->file_size,
		                  (unsigned long long)(shorter ? at - lay->file_size : lay->file_size - at),
		                  shorter ? "bytes missing" : "bytes too many");
	}
	return 0;
}

int model_is_llama2c(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	int32_t h[7];
	char magic[8];
	int ok = !read_header(fd, h) && pread(fd, magic, 8, 0) == 8 &&
	         memcmp(magic, FP_IMAGE_MAGIC, 8) != 0;
	close(fd);
	if (!ok)
		return 0;
	/* plausible dims that divide as the architecture needs: a random
	 * file passes this about never, while a checkpoint with a wrong size
	 * still counts, so that importing it says what is wrong */
	struct frt_config c = {h[0], h[1], h[2], h[3], h[4], h[5] < 0 && h[5] != INT32_MIN ? -h[5] : h[5],
	                       h[6], 0, 0};
	return model_check_config(&c, path, "") == 0;
}

uint64_t llama2c_offset(const struct llama2c_layout *lay, const struct llama_tensor *t)
{
	uint64_t base;
	switch (t->role) {
	case ROLE_TOKEN_EMBD: return lay->token_embd;
	case ROLE_OUTPUT_NORM: return lay->rms_final;
	case ROLE_OUTPUT: return lay->wcls;
	case ROLE_ATTN_NORM: base = lay->rms_att; break;
	case ROLE_WQ: base = lay->wq; break;
	case ROLE_WK: base = lay->wk; break;
	case ROLE_WV: base = lay->wv; break;
	case ROLE_WO: base = lay->wo; break;
	case ROLE_FFN_NORM: base = lay->rms_ffn; break;
	case ROLE_W1: base = lay->w1; break;
	case ROLE_W3: base = lay->w3; break;
	default: base = lay->w2; break;
	}
	/* each group stacks its tensor over the layers */
	return base + (uint64_t)t->layer * t->rows * t->cols * sizeof(float);
}
