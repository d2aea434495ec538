/* The two readers of llama2.c tokenizer files, the runtime's
 * (frt_tokenizer_load) and the one that carries a vocabulary into a GGUF
 * (model_vocab_load); then a text encoded, decoded token by token and as
 * a whole.  Byte 0 of the input picks the vocabulary size asked for
 * (0: any, for the runtime's reader); the rest is the file. */
#include <flexrt/runtime.h>
#include <flexmodel/model.h>

#include <stdlib.h>
#include <string.h>

#include "input.h"
#include "internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const int vocab_sizes[8] = {0, 1, 3, 32, 259, 260, 512, 32000};

static void use(const frt_tokenizer *t)
{
	static const char text[] = "Once upon a time, \xe2\x96\x81 a caf\xc3\xa9 \xff<0x41>.";
	int ids[sizeof text + 3];
	int n = frt_tokenizer_encode(t, text, sizeof text - 1, 1, 0, ids, (int)(sizeof ids / sizeof *ids));
	if (n < 0)
		return;
	size_t len;
	for (int i = 0; i < n; i++)
		if (!frt_tokenizer_decode(t, i ? ids[i - 1] : -1, ids[i], &len))
			abort(); /* ids from encode are in range */
	char out[4 * sizeof text];
	if (frt_tokenizer_text(t, ids, n, out, sizeof out) < 0)
		abort();
	for (int id = 0; id < frt_tokenizer_vocab_size(t) && id < 600; id++)
		(void)frt_tokenizer_decode(t, 1, id, &len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	const int vocab = vocab_sizes[data[0] & 7];
	const char *path = fz_file(data + 1, size - 1, 0, NULL);
	frt_tokenizer *t = frt_tokenizer_load(path, vocab);
	if (t) {
		if (vocab && frt_tokenizer_vocab_size(t) != vocab)
			abort();
		use(t);
		frt_tokenizer_destroy(t);
	}
	if (vocab) {
		struct model_vocab v;
		if (!model_vocab_load(&v, path, vocab))
			model_vocab_free(&v);
	}
	return 0;
}
