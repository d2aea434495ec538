/* The GGUF reader: header, metadata (every value through every getter
 * and every string of a string array), tensor infos; then the llama
 * model's configuration read from that metadata, as flexpage run reads
 * it.  The input is the start of a file of 1 GiB, so that tensor
 * placement is checked against a file that can hold it as well as
 * against the bytes at hand (ENOBUFS: the header runs past them). */
#include <flexpage/flexpage.h>
#include <flexmodel/model.h>

#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define FILE_SIZE (1ull << 30)
#define MAX_STRINGS 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void read_value(const fp_gguf *g, const char *key)
{
	uint64_t u, n, len;
	int64_t i;
	double f;
	int b, elem;
	const char *s;
	const void *arr;
	(void)fp_gguf_get_u64(g, key, &u);
	(void)fp_gguf_get_i64(g, key, &i);
	(void)fp_gguf_get_f64(g, key, &f);
	(void)fp_gguf_get_bool(g, key, &b);
	if (!fp_gguf_get_str(g, key, &s, &len) && s[len] != 0)
		abort(); /* documented: NUL-terminated after len bytes */
	if (fp_gguf_get_arr(g, key, &elem, &n, &arr))
		return;
	for (uint64_t k = 0; k < n && k < MAX_STRINGS; k++) {
		if (fp_gguf_arr_str(g, key, k, &s, &len))
			break;
		volatile char sink = 0;
		for (uint64_t c = 0; c < len; c++)
			sink ^= s[c]; /* every byte it points at must be readable */
		(void)sink;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fp_gguf *g = fp_gguf_parse(data, size, FILE_SIZE, "fuzz.gguf");
	if (!g)
		return 0;
	for (uint64_t i = 0; i < fp_gguf_n_kv(g); i++) {
		const char *key = fp_gguf_key(g, i);
		if (fp_gguf_find(g, key) != (int64_t)i)
			abort(); /* keys are unique: each is found where it is */
		(void)fp_gguf_type(g, i);
		read_value(g, key);
	}
	for (uint64_t i = 0; i < fp_gguf_n_tensors(g); i++) {
		const struct fp_gguf_tensor *t = fp_gguf_tensor(g, i);
		if (fp_gguf_find_tensor(g, t->name) != t || t->offset + t->size > FILE_SIZE)
			abort();
	}
	struct model *m = calloc(1, sizeof *m);
	if (!m)
		abort();
	strcpy(m->path, "fuzz.gguf");
	(void)model_gguf_config(m, g);
	free(m);
	fp_gguf_close(g);
	return 0;
}
